"""``lotto-media batch``: a folder of real pictures (crops of the bundled Kodak picture) and one
corrupt file, coded in parallel, resumed after SIGINT and SIGKILL, decoded back, and the same batch
on a local Ray giving the same bytes and report lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES_DIR
from lotto_media import codec
from lotto_media.pipelines import batch, cli
from lotto_media.plugins.image_io import read_image

#: few steps: these tests are about files and processes, not about quality
FAST = ("--preset", "ultrafast", "--steps", "8", "--threads", "1")
N_PICTURES = 5


def make_pictures(folder: Path, n: int = N_PICTURES, *, corrupt: bool = True) -> list[Path]:
    """``n`` distinct 40x32 crops of a real picture, two of them in a subfolder, one truncated PNG
    and one text file (not media: a folder walk leaves it out)."""
    source = Image.open(SAMPLES_DIR / "kodim23_192x128.png").convert("RGB")
    paths = []
    for i in range(n):
        path = folder / ("sub" if i >= 3 else "") / f"p{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        source.crop((i * 30, i * 15, i * 30 + 40, i * 15 + 32)).save(path)
        paths.append(path)
    if corrupt:
        (folder / "broken.png").write_bytes(paths[0].read_bytes()[:60])
    (folder / "notes.txt").write_text("not a picture")
    return paths


def run_cli(capsys, *argv: object) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def read_report(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255 ** 2 / mse))


def test_batch_codes_a_folder_reports_each_file_and_resumes_without_work(tmp_path, capsys):
    pictures = make_pictures(tmp_path / "in")
    report_path = tmp_path / "report.jsonl"
    status, out, err = run_cli(capsys, "batch", tmp_path / "in", "-o", tmp_path / "out", *FAST,
                               "--jobs", "1", "--report", report_path)
    assert status == 1
    assert out == ""
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "broken.png" in errors[0], err
    assert "5 encoded, 0 skipped, 1 failed of 6 inputs" in err

    records = {Path(r["input"]).name: r for r in read_report(report_path)}
    assert set(records) == {"broken.png"} | {p.name for p in pictures}
    assert records["broken.png"]["status"] == "failed" and "broken.png" in records["broken.png"]["error"]
    outputs = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert outputs == sorted(p.relative_to(tmp_path / "in").with_suffix(".lotto") for p in pictures)
    for picture in pictures:
        record = records[picture.name]
        output = Path(record["output"])
        assert record["status"] == "ok" and record["bytes"] == output.stat().st_size
        # the PSNR reported is the one the decoded file has against the source
        decoded = codec.decode_frame(output.read_bytes()).to_array()
        assert abs(psnr(decoded, read_image(picture).to_array()) - record["psnr"]) < 0.01
        assert record["bpp"] == pytest.approx(record["bytes"] * 8 / (40 * 32), rel=1e-3)

    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.lotto")}
    status, _, err = run_cli(capsys, "batch", tmp_path / "in", "-o", tmp_path / "out", *FAST,
                             "--skip-existing", "--report", report_path)
    assert status == 1  # the broken file still fails
    assert "0 encoded, 5 skipped, 1 failed" in err
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.lotto")} == before
    assert sorted(r["status"] for r in read_report(report_path)) == ["failed"] + ["skipped"] * 5

    # without --skip-existing or -y an existing output is an error, never replaced
    status, _, err = run_cli(capsys, "batch", pictures[0], "-o", tmp_path / "out", *FAST)
    assert status == 1 and "already exists" in err
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.lotto")} == before


def test_batch_decode_mirrors_the_tree_to_png(tmp_path, capsys):
    pictures = make_pictures(tmp_path / "in", 3, corrupt=False)
    assert run_cli(capsys, "batch", tmp_path / "in", "-o", tmp_path / "coded", *FAST, "-j", "1")[0] == 0
    status, _, err = run_cli(capsys, "batch", tmp_path / "coded", "-o", tmp_path / "decoded", "--decode",
                             "--report", tmp_path / "r.jsonl")
    assert status == 0, err
    for picture in pictures:
        coded = tmp_path / "coded" / picture.relative_to(tmp_path / "in").with_suffix(".lotto")
        png = tmp_path / "decoded" / picture.relative_to(tmp_path / "in")
        np.testing.assert_array_equal(read_image(png).to_array(), codec.decode_frame(coded.read_bytes()).to_array())
    assert [r["status"] for r in read_report(tmp_path / "r.jsonl")] == ["ok"] * 3


def test_batch_codes_a_video_and_decodes_it_to_mkv(tmp_path, capsys):
    clip = tmp_path / "in" / "clip.y4m"
    clip.parent.mkdir()
    clip.write_bytes((SAMPLES_DIR / "cisco_96x64_5f.y4m").read_bytes())
    status, _, err = run_cli(capsys, "batch", tmp_path / "in", "-o", tmp_path / "coded", *FAST, "--frames", "0:2",
                             "--report", tmp_path / "r.jsonl")
    assert status == 0, err
    (record,) = read_report(tmp_path / "r.jsonl")
    assert (record["kind"], record["frames"], record["width"], record["height"]) == ("video", 2, 96, 64)
    status, _, err = run_cli(capsys, "batch", tmp_path / "coded", "-o", tmp_path / "decoded", "--decode")
    assert status == 0, err
    import av

    with av.open(str(tmp_path / "decoded" / "clip.mkv")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 2


def test_plan_mirrors_globs_and_keeps_colliding_inputs_out(tmp_path):
    (tmp_path / "in" / "a").mkdir(parents=True)
    for name in ("a/x.png", "a/x.jpg", "a/y.png", "z.mp4"):
        (tmp_path / "in" / name).write_bytes(b"")
    plan = batch.plan_jobs([str(tmp_path / "in" / "**" / "*.png"), str(tmp_path / "nothing"),
                            str(tmp_path / "in" / "*.webp")], tmp_path / "out")
    assert [(Path(j.input).name, Path(j.output).relative_to(tmp_path / "out")) for j in plan.jobs] == [
        ("x.png", Path("a/x.lotto")), ("y.png", Path("a/y.lotto"))]
    assert [f["error"].split(": ", 1)[1] for f in plan.failures] == ["no such file or directory", "no file matches"]

    plan = batch.plan_jobs([str(tmp_path / "in")], tmp_path / "in" / "out")
    assert [Path(j.output).relative_to(tmp_path / "in" / "out") for j in plan.jobs] == [Path("a/y.lotto"), Path("z.lotto")]
    assert sorted(Path(f["input"]).name for f in plan.failures) == ["x.jpg", "x.png"]
    assert all("would write" in f["error"] for f in plan.failures)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    assert "no pictures or videos" in batch.plan_jobs([str(empty)], tmp_path / "out").failures[0]["error"]


@pytest.mark.parametrize("n_jobs, jobs, threads, cores, expected", [
    (10, None, None, 8, (8, 1)), (3, None, None, 8, (3, 2)), (10, 2, None, 8, (2, 4)),
    (10, None, 4, 8, (2, 4)), (10, None, 16, 8, (1, 16)), (10, 4, 4, 8, (4, 4)), (1, None, None, 2, (1, 2)),
])
def test_thread_split_never_oversubscribes_unless_asked(n_jobs, jobs, threads, cores, expected):
    assert batch.split_threads(n_jobs, jobs, threads, cores) == expected


def _start(tmp_path: Path, *argv: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "lotto_media.pipelines", "batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
               "--preset", "ultrafast", "--steps", "300", "--threads", "1", *argv]
    # a shell without job control starts background commands with SIGINT ignored, and a child
    # inherits that: give the batch the default disposition a terminal's Ctrl-C would meet
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_outputs(tmp_path: Path, process: subprocess.Popen, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(list((tmp_path / "out").rglob("*.lotto"))) < count:
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "the batch made no output in time"
        time.sleep(0.05)


def _assert_outputs_complete(tmp_path: Path) -> set[Path]:
    """Every file under a final name decodes intact."""
    outputs = set(p for p in (tmp_path / "out").rglob("*") if p.is_file() and not p.name.endswith(".part"))
    for output in outputs:
        assert output.suffix == ".lotto"
        info = codec.inspect(output.read_bytes(), str(output))
        assert info.damage is None
        codec.decode_frame(output.read_bytes(), str(output))
    return outputs


def test_interrupted_and_killed_batches_leave_no_partial_output_and_resume(tmp_path):
    pictures = make_pictures(tmp_path / "in", corrupt=False)
    # Ctrl-C in the middle of a pool of two workers: exit 130, the running jobs' outputs removed.
    # An interrupted worker stops there: one that went on with the queued jobs would keep the
    # batch alive until the parent's 10 s wait ran out, then be killed, perhaps mid-write.
    process = _start(tmp_path, "--jobs", "2")
    _wait_for_outputs(tmp_path, process, 1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    # the parent kills (and says so) a worker still alive STOP_TIMEOUT_S after the interrupt: a
    # signal of a worker that went on, where the seconds elapsed depend on the machine's load
    assert "did not stop" not in err, f"the workers went on after Ctrl-C: {err}"
    assert process.returncode == 130, err
    assert "interrupted" in err
    first = _assert_outputs_complete(tmp_path)
    assert 1 <= len(first) < N_PICTURES
    assert not list((tmp_path / "out").rglob("*.part"))

    # SIGKILL gives no chance to clean up: a temporary file may remain, never a final name
    process = _start(tmp_path, "--jobs", "1", "--skip-existing")
    _wait_for_outputs(tmp_path, process, len(first) + 1)
    process.kill()
    process.wait(timeout=30)
    second = _assert_outputs_complete(tmp_path)
    assert first < second and len(second) < N_PICTURES

    process = _start(tmp_path, "--skip-existing", "--report", str(tmp_path / "r.jsonl"))
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert len(_assert_outputs_complete(tmp_path)) == N_PICTURES
    statuses = {Path(r["input"]).name: r["status"] for r in read_report(tmp_path / "r.jsonl")}
    assert statuses == {p.name: ("skipped" if (tmp_path / "out" / p.relative_to(tmp_path / "in")).with_suffix(".lotto")
                                 in second else "ok") for p in pictures}


def test_ray_engine_gives_the_same_outputs_and_report(tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'lotto-media[ray]')")
    make_pictures(tmp_path / "in", 3)
    lines = {}
    for engine in ("local", "ray"):
        status, _, err = run_cli(capsys, "batch", tmp_path / "in", "-o", tmp_path / engine, *FAST, "--engine", engine,
                                 "--report", tmp_path / f"{engine}.jsonl")
        assert status == 1, err  # the broken picture
        lines[engine] = sorted((json.dumps({k: v for k, v in r.items() if k != "seconds"}, sort_keys=True)
                                .replace(str(tmp_path / engine), "OUT")) for r in read_report(tmp_path / f"{engine}.jsonl"))
    assert lines["ray"] == lines["local"]
    local = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.lotto"))
    assert local and local == sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*.lotto"))
    for relative in local:
        assert (tmp_path / "ray" / relative).read_bytes() == (tmp_path / "local" / relative).read_bytes()


def test_batch_usage_errors(tmp_path, capsys):
    make_pictures(tmp_path / "in", 1, corrupt=False)
    for argv, message in [(("--skip-existing", "-y"), "exclude each other"),
                          (("--address", "auto"), "--engine ray"),
                          (("--decode", "--quality", "50"), "--decode takes none"),
                          (("--jobs", "0"), "at least 1")]:
        status, _, err = run_cli(capsys, "batch", tmp_path / "in", "-o", tmp_path / "out", *argv)
        assert status == 2 and message in err, (argv, err)
    (tmp_path / "file").write_text("x")
    status, _, err = run_cli(capsys, "batch", tmp_path / "in", "-o", tmp_path / "file")
    assert status == 1 and "not a directory" in err
