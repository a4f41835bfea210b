"""``lotto-media bench``: the files it writes, the fields of every point, failure isolation, and the
report plumbing. Most tests use the stand-in codec (tests/conftest.py); ``test_images_with_the_real_codec``
and ``test_video_lotto_rows_*`` go through the real one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lotto_media.options import EncodeOptions

from conftest import save_png, synthetic_rgb
from lotto_media.errors import InputError, UnsupportedError
from lotto_media.pipelines import bench_images, bench_speed, cli
from lotto_media.pipelines.bench_report import gap_section, mean_curves, psnr_at_rate

IMAGE_FIELDS = {"kind", "codec", "image", "param", "setting", "quality", "width", "height", "bytes", "bpp",
                "psnr_rgb", "psnr_r", "psnr_g", "psnr_b", "ms_ssim", "encode_s", "decode_s", "status"}
LOTTO_FIELDS = {"bit_exact", "lmbda", "steps", "search_s", "kmac_per_pixel", "psnr_reported"}
VIDEO_FIELDS = {"kind", "clip", "codec", "mode", "param", "setting", "frames", "bytes", "kbps", "psnr_y", "psnr_u",
                "psnr_v", "psnr_yuv", "encode_s_per_frame", "decode_fps", "status"}


@pytest.fixture(autouse=True)
def _quiet_svt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVT_LOG", "1")


def run(capsys, *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_points(path: Path) -> list[dict]:
    # strict JSON: json.loads would accept NaN/Infinity, so refuse them explicitly
    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name} in {path}")
    return [json.loads(line, parse_constant=no_constants) for line in path.read_text().splitlines()]


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


def write_y4m(path: Path, frames: list[list[np.ndarray]], fps: int = 25) -> Path:
    height, width = frames[0][0].shape
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for planes in frames:
            f.write(b"FRAME\n" + b"".join(p.astype(np.uint8).tobytes() for p in planes))
    return path


def tiny_clip(n: int = 3, height: int = 16, width: int = 24) -> list[list[np.ndarray]]:
    rgb = synthetic_rgb(height + n, width + n, seed=4)
    return [[rgb[t:t + height, t:t + width, 1], rgb[t:t + height:2, t:t + width:2, 0],
             rgb[t:t + height:2, t:t + width:2, 2]] for t in range(n)]


def test_images_writes_points_summary_and_plots(tmp_path, capsys, fake_codec):
    png = save_png(synthetic_rgb(16, 24), tmp_path / "tiny.png")
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "bench", "images", png, "--preset", "ultrafast", "--quality", "20,80",
                               "--anchors", "jpeg,x265", "--out", out)
    assert code == 0, stderr
    assert stdout == ""  # data goes to files, progress to stderr
    points = read_points(out / "points.jsonl")
    n_expected = 2 + 8 + 10  # two lotto qualities + default sweeps of jpeg and x265
    assert len(points) == n_expected
    assert stderr.count("lotto-media: bench [") == n_expected
    for point in points:
        assert point["status"] == "ok", point
        assert IMAGE_FIELDS <= set(point), IMAGE_FIELDS - set(point)
        assert point["image"] == "tiny" and (point["width"], point["height"]) == (24, 16)
        assert point["bpp"] == pytest.approx(8 * point["bytes"] / (24 * 16))
    lotto = [p for p in points if p["codec"].startswith("lotto")]
    assert {p["codec"] for p in lotto} == {"lotto-ultrafast"} and [p["quality"] for p in lotto] == [20, 80]
    assert all(LOTTO_FIELDS <= set(p) and p["bit_exact"] is True for p in lotto)
    assert {p["codec"] for p in points} == {"lotto-ultrafast", "jpeg", "x265"}
    assert all(p["param"] == "qp" for p in points if p["codec"] == "x265")
    # The stand-in keeps 4 bits per sample: measured PSNR must be what the metric says, not a copy.
    assert all(25 < p["psnr_rgb"] < 40 for p in lotto)
    summary = (out / "summary.md").read_text()
    assert "lotto-media bench images" in summary and "BD-rate" in summary and "BD-PSNR" in summary
    assert "machine:" in summary and "torch" in summary and "av " in summary and "command: `" in summary
    assert "| lotto-ultrafast |" in summary and "Against **x265**" in summary
    assert "PSNR gap to each anchor at the same rate" in summary
    bd = json.loads((out / "bd.json").read_text())
    assert set(bd["tiny"]["lotto-ultrafast"]) == {"jpeg", "x265"}
    assert bd["tiny"]["jpeg"]["x265"]["bd_rate"]["metric"] == "bd_rate"
    assert_png(out / "rd_tiny.png")
    assert_png(out / "rd_mean.png")


def test_images_passes_settings_to_the_codec_and_quiet_is_silent(tmp_path, capsys, fake_codec):
    png = save_png(synthetic_rgb(16, 24), tmp_path / "a.png")
    code, _, stderr = run(capsys, "bench", "images", png, "--preset", "fast", "--quality", "33", "--anchors",
                          "jpeg", "--out", tmp_path / "o", "--quiet", "--threads", "1")
    assert code == 0 and stderr == ""
    options = [arg for name, arg in fake_codec.calls if name == "encode_frame"]
    assert len(options) == 1
    assert options[0].quality == 33 and options[0].preset == "fast" and options[0].threads == 1


def test_folder_input_downscale_and_duplicate_names(tmp_path, capsys, fake_codec):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    save_png(synthetic_rgb(32, 48), tmp_path / "a" / "pic.png")
    save_png(synthetic_rgb(32, 48, seed=2), tmp_path / "b" / "pic.png")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    code, _, _ = run(capsys, "bench", "images", tmp_path / "a", tmp_path / "b", "--downscale", "2", "--quality",
                     "50", "--anchors", "jpeg", "--out", tmp_path / "o", "-q")
    assert code == 0
    points = read_points(tmp_path / "o" / "points.jsonl")
    assert {p["image"] for p in points} == {"pic", "pic_2"}
    assert {(p["width"], p["height"]) for p in points} == {(24, 16)}
    assert_png(tmp_path / "o" / "rd_pic_2.png")


def test_a_failing_point_is_recorded_and_the_others_still_run(tmp_path, capsys, fake_codec, monkeypatch):
    real = bench_images.encode_anchor

    def flaky(name, rgb, q):
        if q == 45:
            raise RuntimeError("encoder exploded")
        return real(name, rgb, q)

    monkeypatch.setattr(bench_images, "encode_anchor", flaky)
    png = save_png(synthetic_rgb(16, 24), tmp_path / "t.png")
    code, _, stderr = run(capsys, "bench", "images", png, "--quality", "50", "--anchors", "jpeg",
                          "--out", tmp_path / "o")
    assert code == 1
    points = read_points(tmp_path / "o" / "points.jsonl")
    failed = [p for p in points if p["status"] != "ok"]
    assert len(points) == 9 and len(failed) == 1
    assert failed[0]["status"] == "error" and "encoder exploded" in failed[0]["error"]
    assert "psnr_rgb" not in failed[0]  # no made-up numbers for a failed point
    assert "1 failed" in stderr
    assert "Points without a result" in (tmp_path / "o" / "summary.md").read_text()


def test_usage_errors(tmp_path, capsys):
    code, _, stderr = run(capsys, "bench", "images", tmp_path, "--quality", "abc")
    assert code == 2
    code, _, stderr = run(capsys, "bench", "images", tmp_path, "--anchors", "jpeg,vvc")
    assert code == 2 and "vvc" in stderr
    code, _, stderr = run(capsys, "bench", "images", tmp_path / "missing.png", "--out", tmp_path / "o")
    assert code == 1 and "missing.png" in stderr
    with pytest.raises(InputError, match="no images"):
        bench_images.collect_images([str(tmp_path)])


def test_anchor_points_of_an_earlier_run_are_reused_where_image_size_anchor_and_setting_match(
        tmp_path, capsys, fake_codec, monkeypatch):
    """--anchor-points takes an earlier run's anchor points for the same picture (name and size),
    anchor and setting instead of coding them again; everything else, lotto-media included, is
    measured. A reused point is the earlier record, marked with where it came from."""
    first = save_png(synthetic_rgb(16, 24), tmp_path / "tiny.png")
    code, _, stderr = run(capsys, "bench", "images", first, "--quality", "50", "--anchors", "jpeg",
                          "--out", tmp_path / "one")
    assert code == 0, stderr
    earlier = {(p["codec"], p["setting"]): p for p in read_points(tmp_path / "one" / "points.jsonl")}
    second = save_png(synthetic_rgb(16, 24, seed=3), tmp_path / "other.png")
    coded = []
    encode_anchor = bench_images.encode_anchor
    monkeypatch.setattr(bench_images, "encode_anchor", lambda codec, rgb, setting: (
        coded.append((codec, setting)) or encode_anchor(codec, rgb, setting)))
    code, _, stderr = run(capsys, "bench", "images", first, second, "--quality", "50,60", "--anchors", "jpeg,webp",
                          "--anchor-points", tmp_path / "one" / "points.jsonl", "--out", tmp_path / "two")
    assert code == 0, stderr
    points = read_points(tmp_path / "two" / "points.jsonl")
    assert len(points) == 2 * (2 + 8 + 8) and all(p["status"] == "ok" for p in points)
    reused = [p for p in points if p.get("reused_from")]
    assert sorted((p["image"], p["codec"]) for p in reused) == [("tiny", "jpeg")] * 8
    for point in reused:
        assert {k: v for k, v in point.items() if k != "reused_from"} == earlier[("jpeg", point["setting"])]
    assert sorted(set(coded)) == sorted({("webp", p["setting"]) for p in points if p["codec"] == "webp"}
                                        | {("jpeg", p["setting"]) for p in points if p["codec"] == "jpeg"})
    assert len(coded) == 8 + 8 + 8  # tiny's webp, other's jpeg and webp
    assert sum(1 for name, _ in fake_codec.calls if name == "encode_frame") == 1 + 4  # the first run's, then 2 x 2
    assert stderr.count("(reused)") == 8
    assert "anchor points reused from" in (tmp_path / "two" / "summary.md").read_text()
    assert "8 of 32" in (tmp_path / "two" / "summary.md").read_text()

    # another size of the same picture, or other pixels under the same name and size, are other points
    (tmp_path / "again").mkdir()
    impostor = save_png(synthetic_rgb(16, 24, seed=5), tmp_path / "again" / "tiny.png")
    for argv in (("--downscale", "2", first), (impostor,)):
        coded.clear()
        code, _, stderr = run(capsys, "bench", "images", *argv, "--no-lotto", "--anchors", "jpeg",
                              "--anchor-points", tmp_path / "one" / "points.jsonl", "--out", tmp_path / "three", "-q")
        assert code == 0 and len(coded) == 8, argv
        assert not any(p.get("reused_from") for p in read_points(tmp_path / "three" / "points.jsonl"))

    # points of runs that recorded no pixel digest match on name and size, and the summary says so
    undigested = tmp_path / "undigested.jsonl"
    undigested.write_text("".join(json.dumps({k: v for k, v in p.items() if k != "pixels_sha256"}) + "\n"
                                  for p in read_points(tmp_path / "one" / "points.jsonl")))
    coded.clear()
    code, _, stderr = run(capsys, "bench", "images", first, "--no-lotto", "--anchors", "jpeg",
                          "--anchor-points", undigested, "--out", tmp_path / "four", "-q")
    assert code == 0 and coded == []
    assert "8 matched on picture name and size alone" in (tmp_path / "four" / "summary.md").read_text()


def test_anchor_points_that_cannot_be_read_are_refused_by_name(tmp_path, capsys, fake_codec):
    png = save_png(synthetic_rgb(16, 24), tmp_path / "tiny.png")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"kind": "image", "codec": "jpeg"}\nnot json\n')
    video = tmp_path / "video.jsonl"
    video.write_text('{"kind": "video", "codec": "x265"}\n')
    for path, message in [(tmp_path / "missing.jsonl", "missing.jsonl: cannot read the points"),
                          (broken, "broken.jsonl: line 2 is not JSON"),
                          (video, "video.jsonl: line 1 is not a point of bench images")]:
        code, _, stderr = run(capsys, "bench", "images", png, "--anchors", "jpeg", "--anchor-points", path,
                              "--out", tmp_path / "o")
        assert code == 1 and message in stderr and "Traceback" not in stderr, stderr
        assert not (tmp_path / "o").exists()


def test_jobs_run_points_in_a_process_pool(tmp_path, capsys):
    png = save_png(synthetic_rgb(16, 24), tmp_path / "t.png")
    code, _, stderr = run(capsys, "bench", "images", png, "--no-lotto", "--anchors", "jpeg,webp",
                          "--jobs", "2", "--out", tmp_path / "o")
    assert code == 0, stderr
    points = read_points(tmp_path / "o" / "points.jsonl")
    assert len(points) == 16 and all(p["status"] == "ok" for p in points)
    assert "jobs: 2" in (tmp_path / "o" / "summary.md").read_text()


_ORPHAN_PARENT = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from lotto_media.pipelines import bench_jobs
pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=bench_jobs._exit_with_parent,
                           initargs=(os.getpid(),))
print(pool.submit(os.getpid).result(), flush=True)
pool.submit(time.sleep, 120)
time.sleep(0.5)
os._exit(0)  # as if killed: the pool is never shut down
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to watch the worker")
def test_pool_workers_exit_when_the_bench_process_dies(tmp_path):
    import subprocess
    import sys
    import time

    # output through a file, not a pipe: the worker inherits it and a pipe would stay open
    with open(tmp_path / "out.txt", "w") as out:
        subprocess.run([sys.executable, "-c", _ORPHAN_PARENT], stdout=out, timeout=120, check=True)
    worker = int((tmp_path / "out.txt").read_text().split()[0])
    deadline = time.monotonic() + 15
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(worker), "an orphaned bench worker kept running"


_INTERRUPTED = """
import sys, time
from lotto_media.pipelines import bench_jobs, bench_speed

def slow_point(seconds):
    with open(sys.argv[1], "a") as log:
        log.write("started\\n")
    time.sleep(seconds)
    return {"status": "ok"}

if __name__ == "__main__":
    CALL
"""


def _interrupt_once_started(tmp_path, call: str, points: int) -> tuple[float, int, str, Path]:
    """Run ``call`` (a bench of slow points) in a process of its own, send it SIGINT (the bench
    process alone, as ``kill -INT`` does) once ``points`` have started, and return the seconds it
    took to exit after that, its status, its stderr and the file each point marks when it starts."""
    import signal
    import subprocess
    import sys
    import time

    script, started = tmp_path / "bench.py", tmp_path / "started.txt"
    script.write_text(_INTERRUPTED.replace("CALL", call))
    process = subprocess.Popen([sys.executable, str(script), str(started)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (started.exists() and started.read_text().count("started") == points):
        assert process.poll() is None and time.monotonic() < deadline, f"the bench did not start {points} points"
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    interrupted = time.monotonic()
    _, err = process.communicate(timeout=60)
    return time.monotonic() - interrupted, process.returncode, err, started


def test_ctrl_c_stops_a_bench_pool_at_once(tmp_path):
    """Ctrl-C (here on the bench process alone, as ``kill -INT`` sends it) drops the queued points and
    interrupts the running ones: a pool left alone would take the next point after each interrupted
    one, and the bench would wait for all six minutes of them."""
    import time

    seconds, status, err, started = _interrupt_once_started(
        tmp_path, "bench_jobs._run_all([60] * 6, slow_point, 2, print)", points=2)
    assert seconds < 8, "the pool went on after Ctrl-C"
    assert status != 0 and "KeyboardInterrupt" in err
    time.sleep(1)
    assert started.read_text().count("started") == 2, "a queued point started after Ctrl-C"


def test_ctrl_c_stops_a_speed_point_at_once(tmp_path):
    """``bench speed`` measures each preset in a process of its own; Ctrl-C on the bench alone stops
    that process's point instead of waiting a whole encode for it."""
    seconds, status, err, _ = _interrupt_once_started(tmp_path, "bench_speed._in_fresh_process(60, slow_point)",
                                                      points=1)
    assert seconds < 8, "the bench waited for the point after Ctrl-C"
    assert status != 0 and "KeyboardInterrupt" in err


def test_images_with_the_real_codec(tmp_path, capsys):
    """End to end with the real search: one tiny image, ultrafast (2 steps), two anchors."""
    png = save_png(synthetic_rgb(16, 24), tmp_path / "tiny.png")
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "bench", "images", png, "--preset", "ultrafast", "--steps", "2",
                          "--quality", "50", "--anchors", "jpeg,webp", "--out", out, "--threads", "1")
    assert code == 0, stderr
    points = read_points(out / "points.jsonl")
    assert len(points) == 1 + 8 + 8
    for point in points:
        assert point["status"] == "ok", point
        assert IMAGE_FIELDS <= set(point)
    (lotto,) = [p for p in points if p["codec"] == "lotto-ultrafast"]
    assert LOTTO_FIELDS <= set(lotto)
    assert lotto["bit_exact"] is True and lotto["steps"] == 2
    assert lotto["psnr_rgb"] == pytest.approx(lotto["psnr_reported"], abs=5e-4)  # the file stores 1/1000 dB
    assert (out / "summary.md").exists() and (out / "rd_mean.png").exists()


def test_video_anchors_and_unsupported_lotto_rows(tmp_path, capsys, fake_codec, monkeypatch):
    def refuse_yuv(video, options, **kwargs):
        raise UnsupportedError(f"pixel format {video.pix_fmt} is not supported yet")

    import lotto_media.stream
    monkeypatch.setattr(lotto_media.stream, "StreamEncoder", refuse_yuv)
    monkeypatch.setitem(__import__("sys").modules, "lotto_media.codec", fake_codec.module())
    clip = write_y4m(tmp_path / "clip.y4m", tiny_clip(3))
    out = tmp_path / "v"
    code, stdout, stderr = run(capsys, "bench", "video", clip, "--frames", "2", "--qp", "30,38",
                               "--quality", "50", "--gop", "1", "--out", out)
    assert code == 0, stderr  # unsupported is a result, not a failure
    assert stdout == ""
    points = read_points(out / "video_points.jsonl")
    assert len(points) == 1 + 2 * 2 * 2  # lotto + {x264,x265} x {intra,inter} x 2 QPs
    (lotto,) = [p for p in points if p["codec"].startswith("lotto")]
    assert lotto["status"] == "unsupported" and "yuv420p" in lotto["error"]
    anchors = [p for p in points if not p["codec"].startswith("lotto")]
    assert {p["codec"] for p in anchors} == {"x264-intra", "x264-inter", "x265-intra", "x265-inter"}
    for point in anchors:
        assert point["status"] == "ok" and VIDEO_FIELDS <= set(point), point
        assert point["frames"] == 2 and point["pix_fmt"] == "yuv420p"
        assert point["kbps"] == pytest.approx(point["bytes"] * 8 / (2 / 25) / 1000)
        assert point["psnr_yuv"] == pytest.approx((6 * point["psnr_y"] + point["psnr_u"] + point["psnr_v"]) / 8)
    by = {(p["codec"], p["setting"]): p for p in anchors}
    assert by[("x265-intra", 30)]["bytes"] > by[("x265-intra", 38)]["bytes"]
    summary = (out / "video_summary.md").read_text()
    assert "unsupported" in summary and "x265-inter" in summary
    assert_png(out / "rd_video_clip.png")


def test_video_lotto_rows_with_the_real_codec(tmp_path, capsys):
    """Native yuv420p through the real search (ultrafast, 2 steps): the clip as one stream in
    groups of 2 and as independent frames, each decoded back bit-exactly."""
    clip = write_y4m(tmp_path / "c.y4m", tiny_clip(3, height=15, width=21))  # odd sizes
    code, _, stderr = run(capsys, "bench", "video", clip, "--frames", "2", "--qp", "34", "--quality", "50",
                          "--anchors", "x264", "--out", tmp_path / "v", "--preset", "ultrafast", "--steps", "2",
                          "--gop", "2,1")
    assert code == 0, stderr
    points = read_points(tmp_path / "v" / "video_points.jsonl")
    statuses = {p["codec"]: p["status"] for p in points}
    assert statuses == {"lotto-ultrafast-gop2": "ok", "lotto-ultrafast-intra": "ok", "x264-intra": "ok",
                        "x264-inter": "ok"}
    grouped = next(p for p in points if p["codec"] == "lotto-ultrafast-gop2")
    assert grouped["gop"] == 2 and grouped["later_frame_s"] is not None and grouped["bit_exact"] is True
    (lotto,) = [p for p in points if p["codec"] == "lotto-ultrafast-intra"]
    assert VIDEO_FIELDS <= set(lotto) and lotto["frames"] == 2 and lotto["pix_fmt"] == "yuv420p"
    assert lotto["bit_exact"] is True and lotto["steps"] == 2 and lotto["bytes"] > 0
    # counted: the stream less the encoder's per-frame statistics and the index
    assert 0 < lotto["bytes"] < lotto["file_bytes"]
    for key in ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv"):
        assert isinstance(lotto[key], float) and 5 < lotto[key] < 100, (key, lotto[key])
    assert lotto["psnr_yuv"] == pytest.approx((6 * lotto["psnr_y"] + lotto["psnr_u"] + lotto["psnr_v"]) / 8)
    assert "lotto-ultrafast-gop2" in (tmp_path / "v" / "video_summary.md").read_text()


def test_video_lotto_rows_stay_10_bit(tmp_path, capsys):
    """A hand-written 10-bit y4m (C420p10, little-endian 16-bit samples) is coded at 10 bits."""
    clip = [[(p.astype(np.uint16) * 4 + 1) for p in planes] for planes in tiny_clip(1)]
    path = tmp_path / "c10.y4m"
    with path.open("wb") as f:
        f.write(b"YUV4MPEG2 W24 H16 F25:1 Ip A1:1 C420p10\n")
        f.write(b"FRAME\n" + b"".join(p.astype("<u2").tobytes() for p in clip[0]))
    code, _, stderr = run(capsys, "bench", "video", path, "--quality", "50", "--anchors", "x264", "--qp", "34",
                          "--out", tmp_path / "v", "--preset", "ultrafast", "--steps", "2", "--gop", "1", "-q")
    assert code == 0, stderr
    (lotto,) = [p for p in read_points(tmp_path / "v" / "video_points.jsonl") if p["codec"].startswith("lotto")]
    assert lotto["status"] == "ok" and lotto["pix_fmt"] == "yuv420p10le" and lotto["bit_exact"] is True
    assert 5 < lotto["psnr_yuv"] < 100


def test_video_keeps_10_bit_clips_10_bit(tmp_path, capsys):
    clip = Path(__file__).resolve().parents[2] / "shared" / "media" / "video" / "park_joy_90p_10_420_20f.y4m"
    if not clip.exists():
        pytest.skip(f"test media {clip} not found (../shared/media is not part of a fresh clone)")
    code, _, stderr = run(capsys, "bench", "video", clip, "--frames", "2", "--qp", "32", "--anchors", "x265",
                          "--no-lotto", "--out", tmp_path / "v", "-q")
    assert code == 0, stderr
    points = read_points(tmp_path / "v" / "video_points.jsonl")
    assert {p["pix_fmt"] for p in points} == {"yuv420p10le"}
    assert all(30 < p["psnr_y"] < 60 for p in points)


def test_speed_records_every_figure(tmp_path, capsys, fake_codec):
    code, _, stderr = run(capsys, "bench", "speed", "--presets", "ultrafast,fast", "--max-steps", "5",
                          "--in-process", "--downscale", "8", "--out", tmp_path / "s")
    assert code == 0, stderr
    points = read_points(tmp_path / "s" / "speed.jsonl")
    assert [p["preset"] for p in points] == ["ultrafast", "fast"]
    for p in points:
        assert p["status"] == "ok"
        assert (p["width"], p["height"]) == (48, 32)
        assert p["steps_run"] == 3  # the stand-in reports 3
        assert p["preset_steps"] == EncodeOptions(quality=p["quality"], preset=p["preset"]).schedule().total_steps
        assert p["extrapolated"] is True and p["s_per_frame"] > 0
        # timed from the progress reports (the stand-in reports steps 0..2, 10 ms apart)
        assert p["s_per_step"] == pytest.approx(0.01)
        assert p["pixel_steps_per_s"] == pytest.approx(48 * 32 / 0.01)
        assert p["s_per_frame"] == pytest.approx(p["fixed_s"] + p["preset_steps"] * 0.01)
        assert p["decode_ns_per_pixel"] > 0 and p["decode_cold_ns_per_pixel"] > 0 and p["kmac_per_pixel"] == 4.9 and p["peak_rss_mb"] > 10
    requested = [arg.steps for name, arg in fake_codec.calls if name == "encode_frame"]
    assert requested == [5, 5]
    assert "pixel-steps/s" in (tmp_path / "s" / "speed.md").read_text()


def test_seconds_per_step_falls_back_to_the_search_mean():
    assert bench_speed._seconds_per_step([(1, 5.0), (11, 6.0)], 9.0, 11) == pytest.approx(0.1)
    assert bench_speed._seconds_per_step([(1, 5.0)], 9.0, 3) == pytest.approx(3.0)


def test_mean_curve_keeps_only_settings_every_image_has():
    records = [
        {"status": "ok", "codec": "c", "image": "a", "setting": 1, "bpp": 1.0, "psnr_rgb": 30.0},
        {"status": "ok", "codec": "c", "image": "b", "setting": 1, "bpp": 3.0, "psnr_rgb": 34.0},
        {"status": "ok", "codec": "c", "image": "a", "setting": 2, "bpp": 2.0, "psnr_rgb": 33.0},
        {"status": "error", "codec": "c", "image": "b", "setting": 2},
    ]
    assert mean_curves(records, "bpp", "psnr_rgb", "image") == {"c": [(2.0, 32.0)]}


def test_downscale_uses_rounded_sizes():
    rgb = synthetic_rgb(51, 77)
    assert bench_images.downscale_lanczos(rgb, 2.0).shape == (26, 38, 3)
    assert bench_images.downscale_lanczos(rgb, 1.0) is rgb


def test_reports_name_the_vector_instructions_and_bfloat16_that_set_the_encoder_speed():
    """medium's search runs bfloat16 steps only on CPUs where they pay (``bfloat16_steps``), and the
    step speed follows torch's kernels: a timing means little without them."""
    import torch

    from lotto_media.search.train import bfloat16_steps
    from lotto_media.pipelines import bench_report

    def machine_line(machine: dict) -> str:
        return next(line for line in bench_report._machine_lines("cmd", machine) if line.startswith("- machine:"))

    machine = bench_report.machine_info()
    assert machine["vector_isa"] == torch.backends.cpu.get_cpu_capability()
    assert machine["bfloat16_steps"] == bfloat16_steps(torch.device("cpu"))
    line = machine_line(machine)
    assert f"torch kernels {machine['vector_isa']}" in line
    assert ("float32 steps" in line) != machine["bfloat16_steps"]
    with_bf16 = machine_line({**machine, "vector_isa": "AVX512", "bfloat16_steps": True})
    assert "torch kernels AVX512, bfloat16 steps" in with_bf16 and "float32" not in with_bf16
    assert "torch kernels AVX2, float32 steps" in machine_line({**machine, "vector_isa": "AVX2",
                                                               "bfloat16_steps": False})
    assert "precision unknown" in machine_line({k: v for k, v in machine.items() if k != "bfloat16_steps"})


def test_psnr_at_rate_interpolates_in_log_rate_and_never_extrapolates():
    curve = [(0.5, 30.0), (2.0, 36.0), (8.0, 40.0)]
    assert psnr_at_rate(curve, 1.0) == pytest.approx(33.0)  # halfway in log-rate from 0.5 to 2
    assert psnr_at_rate(curve, 4.0) == pytest.approx(38.0)
    assert psnr_at_rate(curve, 2.0) == pytest.approx(36.0)
    assert psnr_at_rate(curve, 0.25) is None and psnr_at_rate(curve, 9.0) is None
    assert psnr_at_rate([], 1.0) is None
    assert psnr_at_rate(list(reversed(curve)), 1.0) == pytest.approx(33.0)  # any order
    assert psnr_at_rate([(0.0, 20.0), (2.0, float("nan")), *curve], 1.0) == pytest.approx(33.0)  # unusable points dropped
    assert psnr_at_rate(curve, 0.0) is None and psnr_at_rate(curve, float("nan")) is None


def test_gap_table_counts_the_points_beyond_the_anchor_instead_of_bounding_them():
    def point(codec, image, setting, bpp, psnr):
        return {"codec": codec, "image": image, "setting": setting, "bpp": bpp, "psnr_rgb": psnr, "status": "ok"}
    records = [point("x265", image, qp, bpp, psnr) for image in ("a", "b")
               for qp, bpp, psnr in ((30, 0.5, 30.0), (20, 2.0, 36.0))]
    records += [point("lotto-medium", "a", 90, 1.0, 31.0), point("lotto-medium", "b", 90, 1.0, 32.0),
                point("lotto-medium", "a", 99, 4.0, 37.0), point("lotto-medium", "b", 99, 1.0, 34.0)]
    lines = gap_section(records, ["lotto-medium", "x265"], ["x265"])
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("| lotto")]
    rows = {row[1]: row[2] for row in cells}
    # x265 gives 33 dB at 1 bpp on both images: gaps 2 and 1 dB
    assert rows["90"] == "+1.50 [2/2]"
    # image a at 4 bpp lies beyond x265's 2 bpp: left out, not compared with 36 dB
    assert rows["99"] == "-1.00 [1/2]"
    # no anchor point within reach on any image: counted, no number
    records += [point("lotto-medium", image, 100, 9.0, 40.0) for image in ("a", "b")]
    lines = gap_section(records, ["lotto-medium", "x265"], ["x265"])
    assert any(line.startswith("| lotto-medium | 100 | - [0/2] |") for line in lines)
