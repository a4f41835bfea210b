"""The lotto-media command line: exit statuses, stdout/stderr discipline, safe output files.

Most tests run ``main()`` in-process against a fake codec (tests/conftest.py) so they are fast and
test the CLI alone; the ``real`` tests at the end go through the actual codec."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import save_png, synthetic_rgb
from lotto_media.errors import InputError, LottoError
from lotto_media.pipelines import cli, fileio
from lotto_media.pipelines.progress import ProgressBar, format_seconds

REAL_OPTIONS = ["--preset", "ultrafast", "--steps", "20", "--seed", "0", "--threads", "1"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_subprocess(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lotto_media.pipelines", *map(str, argv)],
                          cwd=cwd, capture_output=True, timeout=300)


def assert_one_error_line(err: str, *fragments: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lotto-media: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def files_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def read_png(path_or_bytes) -> np.ndarray:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source) as image:
        return np.asarray(image).copy()


class _Terminal(io.TextIOWrapper):
    def isatty(self) -> bool:
        return True


# --------------------------------------------------------------------------- usage (exit 2)

@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["encode"],
    ["encode", "x.png", "--preset", "turbo"],
    ["encode", "x.png", "--quality", "101"],
    ["encode", "x.png", "--quality", "50", "--lmbda", "0.001"],
    ["encode", "x.png", "--mask-ratio", "1"],
    ["encode", "x.png", "--threads", "0"],
    ["encode", "x.png", "--seed", "-1"],
    ["decode", "x.lotto", "--no-such-option"],
    ["info"],
])
def test_usage_errors_exit_2(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert "usage:" in err and "Traceback" not in err


def test_stdin_without_output_name_is_a_usage_error(capsys, fake_codec, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert run(capsys, "encode", "-")[0] == 2
    assert run(capsys, "decode", "-")[0] == 2
    assert fake_codec.calls == []


def test_json_with_stdout_output_is_a_usage_error(capsys, fake_codec, tiny_png):
    code, _, err = run(capsys, "encode", tiny_png, "-o", "-", "--json")
    assert code == 2 and "--json" in err
    assert fake_codec.calls == []


def test_usage_error_from_the_real_entry_point(tmp_path):
    usage = run_subprocess(tmp_path, "encode", "x.png", "--preset", "turbo")
    assert usage.returncode == 2 and b"invalid choice" in usage.stderr and usage.stdout == b""


def test_version_and_help_exit_0(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("lotto-media ")
    code, out, _ = run(capsys, "encode", "--help")
    assert code == 0 and "--quality" in out and "--steps" not in out  # --steps stays hidden


def test_log_level_is_accepted_before_and_after_the_command(capsys, fake_codec, tiny_png):
    code, _, err = run(capsys, "--log-level", "debug", "encode", tiny_png, "-q")
    assert code == 0 and "lotto-media: info: " in err
    code, _, err = run(capsys, "encode", tiny_png, "-q", "-y", "--log-level", "info")
    assert code == 0 and "lotto-media: info: " in err
    assert run(capsys, "encode", tiny_png, "-q", "-y") == (0, "", "")  # default: warnings only


@pytest.mark.parametrize("kind", ["images", "video", "speed"])
def test_every_bench_takes_the_log_level_after_its_name(kind):
    args = cli.build_parser().parse_args(["bench", kind, "--log-level", "debug"]
                                         + (["clip.y4m"] if kind != "speed" else []))
    assert args.log_level == "debug"


def test_help_texts_show_single_percent_signs(capsys):
    # argparse %-formats option help but prints descriptions verbatim: a doubled % there shows
    for command in ("encode", "decode", "transcode", "batch", "info"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "%%" not in out, command


# --------------------------------------------------------------------------- encode (fake codec)

def test_encode_writes_the_stream_and_a_summary(capsys, fake_codec, tiny_png, tiny_rgb):
    code, out, err = run(capsys, "encode", tiny_png)  # default output: tiny.lotto
    assert code == 0 and out == ""
    stream = tiny_png.with_suffix(".lotto")
    assert files_in(tiny_png.parent) == {"tiny.png", "tiny.lotto"}
    decoded = fake_codec.decode_frame(stream.read_bytes())
    np.testing.assert_array_equal(decoded.to_array(), (tiny_rgb & 0xF0) | 0x08)
    assert err.startswith(f"lotto-media: {stream}: 24x16 rgb24, {stream.stat().st_size} bytes")
    assert "PSNR" in err and "bpp" in err and len(err.splitlines()) == 1


def test_encode_passes_every_option_to_the_codec(capsys, fake_codec, tiny_png, tmp_path):
    code, _, _ = run(capsys, "encode", tiny_png, "-o", tmp_path / "a.lotto", "--quality", "80",
                     "--preset", "fast", "--mask-ratio", "0.5", "--seed", "7", "--device", "cpu",
                     "--threads", "2", "--steps", "33")
    assert code == 0
    (_, options), = fake_codec.calls
    assert (options.quality, options.lmbda, options.preset, options.mask_ratio, options.seed,
            options.device, options.threads, options.steps) == (80, None, "fast", 0.5, 7, "cpu", 2, 33)
    run(capsys, "encode", tiny_png, "-o", tmp_path / "b.lotto", "--lmbda", "0.004")
    options = fake_codec.calls[-1][1]
    assert (options.lmbda, options.quality, options.preset, options.steps) == (0.004, None, "medium", None)


def test_encode_refuses_to_overwrite_without_y(capsys, fake_codec, tiny_png, tmp_path):
    target = tmp_path / "out.lotto"
    target.write_bytes(b"precious")
    code, _, err = run(capsys, "encode", tiny_png, "-o", target)
    assert code == 1
    assert_one_error_line(err, str(target), "-y")
    assert target.read_bytes() == b"precious"
    assert fake_codec.calls == []  # refused before spending time on the search
    code, _, _ = run(capsys, "encode", tiny_png, "-o", target, "-y", "-q")
    assert code == 0 and target.read_bytes().startswith(b"FAKELOTTO")


def test_encode_refuses_to_overwrite_its_input(capsys, fake_codec, tiny_png):
    code, _, err = run(capsys, "encode", tiny_png, "-o", tiny_png, "-y")
    assert code == 1 and "input" in err
    assert tiny_png.read_bytes()[:4] == b"\x89PNG"


def test_encode_to_stdout_pipe_carries_only_data(capfdbinary, fake_codec, tiny_png):
    code = cli.main(["encode", str(tiny_png), "-o", "-"])
    out, err = capfdbinary.readouterr()
    assert code == 0
    assert out.startswith(b"FAKELOTTO") and fake_codec.inspect(out).width == 24  # whole stream, nothing else
    assert b"<stdout>" in err  # the summary went to stderr
    assert files_in(tiny_png.parent) == {"tiny.png"}


def test_encode_refuses_to_write_to_a_terminal(capsys, fake_codec, tiny_png, monkeypatch):
    terminal = _Terminal(io.BytesIO())
    monkeypatch.setattr(sys, "stdout", terminal)
    code = cli.main(["encode", str(tiny_png), "-o", "-"])
    assert code == 1
    assert terminal.buffer.getvalue() == b""
    assert_one_error_line(capsys.readouterr().err, "terminal")
    assert fake_codec.calls == []


def test_encode_reads_stdin(capsys, fake_codec, tiny_png, tiny_rgb, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(tiny_png.read_bytes())))
    code, _, _ = run(capsys, "encode", "-", "-o", tmp_path / "s.lotto", "-q")
    assert code == 0
    decoded = fake_codec.decode_frame((tmp_path / "s.lotto").read_bytes())
    np.testing.assert_array_equal(decoded.to_array(), (tiny_rgb & 0xF0) | 0x08)


def test_encode_json_prints_the_stream_description(capsys, fake_codec, tiny_png):
    code, out, err = run(capsys, "encode", tiny_png, "--json", "-q")
    assert code == 0 and err == ""
    record = json.loads(out)
    assert (record["width"], record["height"], record["pix_fmt"]) == (24, 16, "rgb24")
    assert record["bytes"] == tiny_png.with_suffix(".lotto").stat().st_size


def test_quiet_encode_prints_nothing(capsys, fake_codec, tiny_png):
    assert run(capsys, "encode", tiny_png, "-q") == (0, "", "")


def test_warnings_are_shown_in_the_cli_voice(capsys, fake_codec, tmp_path, tiny_rgb):
    rgba = save_png(np.dstack([tiny_rgb, np.full(tiny_rgb.shape[:2], 128, np.uint8)]), tmp_path / "a.png")
    code, _, err = run(capsys, "encode", rgba, "-q")
    assert code == 0
    assert err == f"lotto-media: warning: {rgba}: alpha channel dropped\n"
    code, _, err = run(capsys, "--log-level", "error", "encode", rgba, "-q", "-y")
    assert (code, err) == (0, "")


@pytest.mark.parametrize("failure", [InputError("tiny.png: picture too small"), KeyboardInterrupt()])
def test_failed_encode_leaves_no_output_and_no_temp_file(capsys, fake_codec, tiny_png, monkeypatch, failure):
    def fail(*_args, **_kwargs):
        raise failure
    monkeypatch.setattr(fake_codec, "encode_frame", fail)
    monkeypatch.setitem(sys.modules, "lotto_media.codec", fake_codec.module())
    code, out, err = run(capsys, "encode", tiny_png)
    assert code == (1 if isinstance(failure, InputError) else 130)
    assert_one_error_line(err)
    assert out == ""
    assert files_in(tiny_png.parent) == {"tiny.png"}


def test_interrupt_while_writing_removes_the_temporary_file(capsys, fake_codec, tiny_png, monkeypatch, tmp_path):
    def interrupted_replace(src, dst):
        assert Path(src).exists() and Path(src).parent == Path(dst).parent  # temp file next to target
        raise KeyboardInterrupt
    monkeypatch.setattr(fileio.os, "replace", interrupted_replace)
    code, _, _ = run(capsys, "encode", tiny_png, "-o", tmp_path / "x.lotto")
    assert code == 130
    assert files_in(tmp_path) == {"tiny.png"}


def test_missing_input_from_the_real_entry_point(tmp_path):
    result = run_subprocess(tmp_path, "encode", "nope.png", "-o", "out.lotto")
    assert result.returncode == 1
    assert_one_error_line(result.stderr.decode(), "nope.png")
    assert result.stdout == b""
    assert files_in(tmp_path) == set()


def test_not_an_image_and_missing_output_directory_fail_cleanly(capsys, fake_codec, tmp_path, tiny_png):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    code, _, err = run(capsys, "encode", text, "-o", tmp_path / "n.lotto")
    assert code == 1
    assert_one_error_line(err, str(text))
    code, _, err = run(capsys, "encode", tiny_png, "-o", tmp_path / "no" / "dir" / "x.lotto")
    assert code == 1
    assert_one_error_line(err, "does not exist")
    assert files_in(tmp_path) == {"notes.txt", "tiny.png"}


# --------------------------------------------------------------------------- decode / info (fake)

@pytest.fixture
def fake_stream(fake_codec, tmp_path, tiny_rgb) -> Path:
    from lotto_media.frame import Frame
    path = tmp_path / "pic.lotto"
    path.write_bytes(fake_codec.encode_frame(Frame.from_array(tiny_rgb), cli._codec().EncodeOptions()).data)
    fake_codec.calls.clear()
    return path


def test_decode_writes_a_png_next_to_the_input(capsys, fake_stream, tiny_rgb):
    code, out, err = run(capsys, "decode", fake_stream)
    assert code == 0 and out == ""
    np.testing.assert_array_equal(read_png(fake_stream.with_suffix(".png")), (tiny_rgb & 0xF0) | 0x08)
    assert err == f"lotto-media: {fake_stream.with_suffix('.png')}: 24x16 rgb24\n"


def test_decode_to_stdout_and_from_stdin(capfdbinary, fake_stream, tiny_rgb, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(fake_stream.read_bytes())))
    code = cli.main(["decode", "-", "-o", "-", "-q"])
    out, err = capfdbinary.readouterr()
    assert (code, err) == (0, b"")
    np.testing.assert_array_equal(read_png(out), (tiny_rgb & 0xF0) | 0x08)


def test_decode_refuses_to_overwrite_and_non_png_names(capsys, fake_stream):
    existing = fake_stream.with_suffix(".png")
    existing.write_bytes(b"keep")
    code, _, err = run(capsys, "decode", fake_stream)
    assert code == 1 and existing.read_bytes() == b"keep"
    assert_one_error_line(err, "-y")
    code, _, err = run(capsys, "decode", fake_stream, "-o", fake_stream.with_suffix(".jpg"))
    assert code == 1
    assert_one_error_line(err, "PNG")


def test_decode_of_a_file_with_damage_outside_the_frame_warns(capsys, fake_stream, tiny_rgb):
    data = bytearray(fake_stream.read_bytes())
    data[-1] ^= 0xFF  # the trailer, not the picture
    fake_stream.write_bytes(bytes(data))
    code, _, err = run(capsys, "decode", fake_stream, "-q")
    assert code == 0
    assert err == f"lotto-media: warning: {fake_stream}: index chunk damaged; frames are intact\n"
    np.testing.assert_array_equal(read_png(fake_stream.with_suffix(".png")), (tiny_rgb & 0xF0) | 0x08)


def test_info_table_and_json(capsys, fake_stream):
    code, out, err = run(capsys, "info", fake_stream)
    assert code == 0 and err == ""
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert rows["dimensions"] == "24x16" and rows["pixel format"] == "rgb24"
    assert rows["damage"] == "none" and rows["frames"] == "1"
    assert rows["size"].startswith(f"{fake_stream.stat().st_size} bytes")
    code, out, _ = run(capsys, "info", fake_stream, "--json")
    record = json.loads(out)
    assert code == 0 and record["width"] == 24 and record["damage"] is None


def test_json_never_carries_nan(capsys, fake_codec, fake_stream, monkeypatch):
    original = fake_codec.inspect

    def without_psnr(data, name="<stream>", **options):
        info = original(data, name, **options)
        info.psnr = float("nan")
        return info
    monkeypatch.setattr(fake_codec, "inspect", without_psnr)
    monkeypatch.setitem(sys.modules, "lotto_media.codec", fake_codec.module())
    code, out, _ = run(capsys, "info", fake_stream, "--json")
    assert code == 0 and json.loads(out)["psnr"] is None
    assert "unknown" in run(capsys, "info", fake_stream)[1]


@pytest.mark.parametrize("content", [b"", b"plain text, not a stream\n", b"FAKELOTTO\n\x00\x00"])
def test_decode_and_info_of_bad_files_fail_in_one_line(capsys, fake_codec, tmp_path, content):
    bad = tmp_path / "bad.lotto"
    bad.write_bytes(content)
    for argv in (["decode", bad], ["info", bad]):
        code, out, err = run(capsys, *argv)
        assert code == 1 and out == ""
        assert_one_error_line(err, str(bad))
    assert files_in(tmp_path) == {"bad.lotto"}


# --------------------------------------------------------------------------- progress rendering

class _Step:
    def __init__(self, step: int, frame: int = 0, frames: int = 1) -> None:
        self.step, self.total, self.phase = step, 40, "soft"
        self.loss, self.psnr, self.bpp, self.elapsed_s, self.eta_s = 0.0123, 27.5, 0.8, step, 40 - step
        self.frame, self.frames = frame, frames


def test_progress_bar_shows_step_psnr_bpp_and_eta():
    stream = io.StringIO()
    with ProgressBar("pic.png", enabled=True, stream=stream, min_interval=0) as bar:
        for step in (0, 10, 20):
            bar(_Step(step))
        drawn = stream.getvalue()
    assert "20/40" in drawn and "PSNR 27.50 dB" in drawn and "0.800 bpp" in drawn
    assert "ETA 20s" in drawn and "pic.png [soft]" in drawn
    assert "frame" not in drawn  # a picture has no frame counter


def test_progress_bar_of_a_video_names_the_frame_and_restarts_per_group():
    stream = io.StringIO()
    with ProgressBar("clip.y4m", enabled=True, stream=stream, min_interval=0) as bar:
        bar(_Step(30, frame=1, frames=20))
        bar(_Step(5, frame=16, frames=20))  # the next group's search counts from 0 again
        drawn = stream.getvalue()
    assert "frame 2/20" in drawn and "frame 17/20" in drawn and "5/40" in drawn


def test_progress_bar_stays_silent_off_a_terminal():
    stream = io.StringIO()  # not a TTY
    bar = ProgressBar("pic.png", stream=stream)
    bar(_Step(5))
    bar.close()
    assert not bar.enabled and stream.getvalue() == ""


def test_cli_hands_no_progress_callback_when_stderr_is_not_a_terminal(capsys, tiny_png, fake_codec, monkeypatch):
    received = []
    original = fake_codec.encode_frame
    monkeypatch.setattr(fake_codec, "encode_frame",
                        lambda frame, options, progress=None: received.append(progress) or original(frame, options))
    monkeypatch.setitem(sys.modules, "lotto_media.codec", fake_codec.module())
    assert run(capsys, "encode", tiny_png)[0] == 0
    assert received == [None]


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 42.4, 185, 3720, float("nan"))] == ["0s", "42s", "3m05s", "1h02m", "?"]


# --------------------------------------------------------------------------- the real codec

@pytest.fixture(scope="module")
def real_encoding(tmp_path_factory):
    """The CLI's encode of a 24x16 picture, and the in-process encoder's result for the same
    options: their pictures must agree, since encoding is deterministic for fixed options, seed
    and thread count."""
    from lotto_media.codec import EncodeOptions, encode_frame
    from lotto_media.plugins.image_io import read_image

    folder = tmp_path_factory.mktemp("real")
    source = save_png(synthetic_rgb(16, 24), folder / "tiny.png")
    stream = folder / "tiny.lotto"
    assert cli.main(["encode", str(source), "-o", str(stream), "-q", *REAL_OPTIONS]) == 0
    options = EncodeOptions(preset="ultrafast", steps=20, seed=0, threads=1)
    return source, stream, encode_frame(read_image(source), options)


def test_real_decode_equals_the_encoders_reconstruction(capsys, real_encoding):
    source, stream, result = real_encoding
    decoded = stream.with_name("decoded.png")
    code, _, err = run(capsys, "decode", stream, "-o", decoded, "-y")
    assert code == 0, err
    np.testing.assert_array_equal(read_png(decoded), result.reconstruction.to_array())


def test_real_info_reports_the_psnr_of_the_decoded_picture(capsys, real_encoding):
    source, stream, _ = real_encoding
    decoded = stream.with_name("decoded_for_psnr.png")
    assert run(capsys, "decode", stream, "-o", decoded, "-y", "-q")[0] == 0
    code, out, _ = run(capsys, "info", stream, "--json")
    assert code == 0
    record = json.loads(out)
    assert (record["width"], record["height"], record["pix_fmt"], record["frames"]) == (24, 16, "rgb24", 1)
    assert record["bytes"] == stream.stat().st_size
    reference = read_png(source).astype(np.float64)
    mse = np.mean((reference - read_png(decoded)) ** 2)
    assert record["psnr"] == pytest.approx(10 * np.log10(255.0**2 / mse), abs=5e-4)  # stored to 1/1000 dB
    table = run(capsys, "info", stream)[1]
    assert f"{record['psnr']:.2f} dB" in table and "ultrafast" in table
    assert (record["n_levels"], record["fine_grids"]) == (7, 1) and re.search(r"^latent grids +7 levels$", table, re.M)


def test_info_names_a_second_full_resolution_grid(capsys):
    golden = Path(__file__).parent / "golden" / "pan_rgb_3f_grid2.lotto"
    code, out, _ = run(capsys, "info", golden)
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.split("\n\n")[0].splitlines())
    assert code == 0 and rows["latent grids"] == "7 levels + a second full-resolution grid"
    code, out, _ = run(capsys, "info", golden, "--json")
    assert code == 0 and (json.loads(out)["n_levels"], json.loads(out)["fine_grids"]) == (7, 2)


def test_real_decode_pipes_png_to_stdout(real_encoding, tmp_path):
    _, stream, _ = real_encoding
    from lotto_media.codec import decode_frame
    piped = run_subprocess(tmp_path, "decode", stream, "-o", "-")
    assert piped.returncode == 0, piped.stderr
    np.testing.assert_array_equal(read_png(piped.stdout), decode_frame(stream.read_bytes()).to_array())
    assert files_in(tmp_path) == set()


def test_real_encode_to_stdout_pipe(capfdbinary, real_encoding):
    source, _, _ = real_encoding
    code = cli.main(["encode", str(source), "-o", "-", "-q", *REAL_OPTIONS])
    out, err = capfdbinary.readouterr()
    assert (code, err) == (0, b"")
    # stdout holds one complete stream and nothing else: it decodes, its size is what it says,
    # and the PSNR it records is that of its own picture.
    from lotto_media.codec import decode_frame, inspect
    info = inspect(out)
    assert info.bytes == len(out)
    mse = np.mean((read_png(source).astype(np.float64) - decode_frame(out).to_array()) ** 2)
    assert info.psnr == pytest.approx(10 * np.log10(255.0**2 / mse), abs=5e-4)  # stored to 1/1000 dB


def _damaged(kind: str, data: bytes) -> bytes:
    middle = len(data) // 2
    return {
        "truncated": data[:middle],
        "bit_flipped": data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1:],
        "wrong_signature": b"X" + data[1:],
        "empty": b"",
        "text": b"lotto-media is great\n",
    }[kind]


@pytest.mark.parametrize("kind", ["truncated", "bit_flipped", "wrong_signature", "empty", "text"])
def test_real_damaged_files_fail_cleanly(capsys, real_encoding, tmp_path, kind):
    _, stream, _ = real_encoding
    bad = tmp_path / f"{kind}.lotto"
    bad.write_bytes(_damaged(kind, stream.read_bytes()))
    for argv in (["decode", bad], ["decode", bad, "-o", tmp_path / "explicit.png"], ["info", bad]):
        code, out, err = run(capsys, *argv)
        assert code == 1, (argv, err)
        assert out == ""
        assert_one_error_line(err, str(bad))
    assert files_in(tmp_path) == {bad.name}


def test_real_stream_missing_its_tail_still_decodes_with_a_warning(capsys, real_encoding, tmp_path):
    from lotto_media.codec import decode_frame
    _, stream, _ = real_encoding
    cut = tmp_path / "cut.lotto"
    cut.write_bytes(stream.read_bytes()[:-3])  # the end chunk is lost, the picture is intact
    code, _, err = run(capsys, "decode", cut, "-q")
    assert code == 0
    assert err.startswith("lotto-media: warning: ") and len(err.splitlines()) == 1
    np.testing.assert_array_equal(read_png(cut.with_suffix(".png")), decode_frame(stream.read_bytes()).to_array())


def test_real_failed_encode_leaves_nothing(capsys, tmp_path, tiny_png):
    # the parser refuses what the codec would refuse (a search needs 2 steps), before any work
    code, _, err = run(capsys, "encode", tiny_png, "--preset", "ultrafast", "--steps", "1")
    assert code == 2 and "--steps" in err and "steps must be in 2.." in err
    # a failure inside the codec leaves no output either: here, a device this machine lacks
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: --device cuda does not fail here")
    code, _, err = run(capsys, "encode", tiny_png, "--preset", "ultrafast", "--device", "cuda")
    assert code == 1
    assert_one_error_line(err)
    assert files_in(tmp_path) == {"tiny.png"}



def test_real_yuv_stream_info_and_decode(capsys, tmp_path):
    """info shows PSNR-YUV and the y, u, v PSNRs; decode refuses a yuv stream in one line (PNG only)."""
    from lotto_media import Frame
    from lotto_media.codec import EncodeOptions, encode_frame

    rgb = synthetic_rgb(16, 24)
    frame = Frame([rgb[:, :, 1], rgb[::2, ::2, 0].copy(), rgb[::2, ::2, 2].copy()], "yuv420p")
    result = encode_frame(frame, EncodeOptions(preset="ultrafast", steps=2, seed=0, threads=1))
    stream = tmp_path / "yuv.lotto"
    stream.write_bytes(result.data)
    code, out, _ = run(capsys, "info", stream)
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    planes = result.info.psnr_planes
    assert code == 0 and rows["pixel format"] == "yuv420p"
    assert rows["PSNR"].startswith(f"{result.info.psnr:.2f} dB PSNR-YUV")
    assert f"(y {planes['y']:.2f}, u {planes['u']:.2f}, v {planes['v']:.2f})" in rows["PSNR"]
    code, out, err = run(capsys, "decode", stream, "-o", tmp_path / "out.png")
    assert code == 1 and out == "" and "yuv420p" in err
    assert_one_error_line(err)
    assert files_in(tmp_path) == {"yuv.lotto"}


@pytest.mark.parametrize("option, field, parse, values", [
    ("--quality", "quality", float, ["-1", "0", "50", "100", "100.5", "nan"]),
    ("--lmbda", "lmbda", float, ["0", "1e-9", "9.99", "10", "-1", "inf"]),
    ("--mask-ratio", "mask_ratio", float, ["-0.1", "0", "0.99", "1"]),
    ("--seed", "seed", int, ["-1", "0", str(2**64 - 1), str(2**64)]),
    ("--threads", "threads", int, ["0", "1", "4096", "4097"]),
    ("--steps", "steps", int, ["1", "2", str(10**9), str(10**9 + 1)]),
])
def test_parser_refuses_exactly_what_the_codec_refuses_in_the_same_words(capsys, option, field, parse, values):
    from lotto_media.options import EncodeOptions

    for text in values:
        try:
            EncodeOptions(**{field: parse(text)})
            codec_error = None
        except LottoError as exc:
            codec_error = str(exc)
        try:
            cli.build_parser().parse_args(["encode", "in.png", option, text])
            parser_error = None
        except SystemExit:
            parser_error = capsys.readouterr().err
        assert (parser_error is None) == (codec_error is None), (option, text, parser_error, codec_error)
        if codec_error is not None:
            assert codec_error in parser_error, (option, text)


def test_progress_json_writes_parsable_lines_on_stderr_only(capsys, tmp_path, tiny_png):
    output = tmp_path / "out.lotto"
    code, out, err = run(capsys, "encode", tiny_png, "-o", output, "--preset", "ultrafast", "--steps", "6",
                         "--progress", "json")
    assert code == 0 and out == ""
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines and all(r["event"] == "progress" and r["input"] == str(tiny_png) for r in lines)
    assert lines[-1]["step"] == lines[-1]["total"]  # the end of the search is always reported
    code, _, err = run(capsys, "encode", tiny_png, "-o", output, "-y", "--preset", "ultrafast", "--steps", "6",
                       "--progress", "json", "-q")
    assert code == 0 and err == ""


def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for inner, subsub in _subparsers(sub):
                    yield f"{name} {inner}", subsub


def test_every_command_help_has_examples_that_the_parser_accepts():
    import shlex

    commands = dict(_subparsers(cli.build_parser()))
    assert {"encode", "decode", "info", "transcode", "batch", "bench", "bench images"} <= set(commands)
    for name, sub in commands.items():
        help_text = sub.format_help()
        assert "examples:\n" in help_text, name
        lines = [line.strip() for line in help_text.split("examples:\n", 1)[1].splitlines() if line.strip()]
        assert lines, name
        for line in lines:
            for piece in line.split("|"):
                argv = shlex.split(piece)
                if argv and argv[0] == "lotto-media":
                    cli.build_parser().parse_args(argv[1:])  # a usage error raises SystemExit
