"""The README's "ffmpeg recipes", run as written, and the Python helpers that build the same
command lines (``lotto_media.plugins.ffmpeg``).

The recipes are read from README.md itself (every ```sh block of the "## ffmpeg recipes"
section), so an edit that breaks one breaks this test. Each block runs with ``bash -euo
pipefail`` in one scratch directory, in order (the decoding recipes use what the encoding ones
wrote), on a 3-frame ``source.mp4`` (the bundled Cisco sample, x264, with an AAC tone). Two
things change, and only these: ``lotto-media`` is this interpreter's ``python -m
lotto_media.pipelines``, and ``--preset fast`` becomes a few ultrafast steps on one thread."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

from conftest import REPO_DIR, SAMPLES_DIR, audio_of
from lotto_media.container import read_container
from lotto_media.errors import InputError, LottoError
from lotto_media.pipelines import cli
from lotto_media.stream import LottoReader

lf = pytest.importorskip("lotto_media.plugins.ffmpeg",
                         reason="ffmpeg-python is not installed (pip install -e '.[test]' installs it)")
from lotto_media.options import EncodeOptions  # noqa: E402

README = REPO_DIR / "README.md"
SECTION = "## ffmpeg recipes"
#: what the recipes say, and what the test runs instead (fast enough for a 2-core machine)
RECIPE_PRESET = "--preset fast"
TEST_PRESET = "--preset ultrafast --steps 8 --threads 1"
#: the frames of the test clip and their size (from samples/cisco_96x64_5f.y4m, 12 fps)
N_FRAMES, WIDTH, HEIGHT = 3, 96, 64
FAST = EncodeOptions(preset="ultrafast", steps=8, threads=1)
BLOCK_TIMEOUT_S = 300


def need_ffmpeg() -> str:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("the ffmpeg command-line tool is not on PATH (.ci/run installs it: apt-get install ffmpeg)")
    return ffmpeg


def recipe_blocks(text: str) -> list[str]:
    """The ```sh blocks of the README's ffmpeg recipes section (up to the next ``## `` heading)."""
    start = text.find(f"\n{SECTION}\n")
    assert start >= 0, f"README.md has no {SECTION!r} section"
    end = text.find("\n## ", start + len(SECTION) + 2)
    section = text[start:end if end >= 0 else len(text)]
    return re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)


def runnable(block: str) -> str:
    """The block as the test runs it: ``lotto-media`` pinned to this interpreter (a shell
    function, so the lines stay as written), fast encodes. Every encode must name the preset,
    or the test would silently run the slow default."""
    for line in block.splitlines():
        if re.search(r"lotto-media (encode|transcode)\b", line):
            assert RECIPE_PRESET in line, f"recipe encodes without {RECIPE_PRESET!r}: {line}"
    prelude = f'lotto-media() {{ {shlex.quote(sys.executable)} -m lotto_media.pipelines "$@"; }}\n'
    return prelude + block.replace(RECIPE_PRESET, TEST_PRESET)


def make_source(ffmpeg: str, path: Path) -> Path:
    """3 real frames (96x64, 12 fps) in x264 with a 440 Hz AAC tone of the same length."""
    seconds = N_FRAMES / 12
    subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
                    "-i", str(SAMPLES_DIR / "cisco_96x64_5f.y4m"),
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                    "-frames:v", str(N_FRAMES), "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", str(path)], check=True, timeout=60)
    return path


def lotto_info(capsys, path: Path) -> dict:
    """``lotto-media info --json`` (in this process: the command itself, without a second start-up)."""
    capsys.readouterr()
    code = cli.main(["info", "--json", str(path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def video_of(path: Path) -> SimpleNamespace:
    """Codec, size, pixel format, frames (as numpy planes) and their instants of a file's video."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(video=0))
        return SimpleNamespace(codec=stream.codec_context.codec.name, width=stream.width, height=stream.height,
                               pix_fmt=frames[0].format.name, count=len(frames),
                               instants=[f.pts * f.time_base for f in frames],
                               planes=[_planes(f) for f in frames] if frames[0].format.name == "yuv420p" else None,
                               audio=[s.codec_context.codec.name for s in container.streams.audio])


def _planes(vf: av.VideoFrame) -> list[np.ndarray]:
    """The Y, U, V planes of a yuv420p frame, without line padding."""
    widths = (vf.width, (vf.width + 1) // 2, (vf.width + 1) // 2)
    heights = (vf.height, (vf.height + 1) // 2, (vf.height + 1) // 2)
    return [np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:h, :w].copy()
            for plane, w, h in zip(vf.planes, widths, heights)]


def relative(instants: list[Fraction]) -> list[Fraction]:
    return [t - instants[0] for t in instants]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_source(need_ffmpeg(), tmp_path_factory.mktemp("source") / "source.mp4")


@pytest.fixture(scope="module")
def recipes(tmp_path_factory, source) -> SimpleNamespace:
    """Every recipe block run in order in one directory holding ``source.mp4``."""
    directory = tmp_path_factory.mktemp("recipes")
    shutil.copy(source, directory / "source.mp4")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = []
    for block in recipe_blocks(README.read_text(encoding="utf-8")):
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", runnable(block)], cwd=directory, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=BLOCK_TIMEOUT_S)
        runs.append((block, done))
    return SimpleNamespace(dir=directory, runs=runs)


def recipe_output(recipes, name: str) -> Path:
    path = recipes.dir / name
    assert path.exists(), f"no recipe wrote {name} (README.md's {SECTION!r} section changed?)"
    return path


# ============================================================================ the README's recipes

def test_the_readme_has_the_recipes_the_issue_asks_for():
    blocks = recipe_blocks(README.read_text(encoding="utf-8"))
    text = "\n".join(blocks)
    assert len(blocks) >= 3
    assert "-f yuv4mpegpipe - | lotto-media encode - -o" in text
    assert "-f nut - | lotto-media encode - -o" in text
    assert "-map 0:v -map 1:a" in text and "-c:a copy" in text
    assert "-vf 'scale=" in text and "-pix_fmt yuv420p10le" in text
    # copy-pasteable: no prompts, no placeholders, no continuation lines
    assert not re.search(r"^\s*[$>] |<[A-Za-z_]+>|\\$", text, flags=re.M)


def test_every_recipe_runs_as_written(recipes):
    assert recipes.runs
    for block, done in recipes.runs:
        assert done.returncode == 0, f"recipe failed:\n{block}\n--- stderr:\n{done.stderr.decode(errors='replace')}"


def test_y4m_pipe_into_encode(capsys, recipes):
    info = lotto_info(capsys, recipe_output(recipes, "clip.lotto"))
    assert (info["frames"], info["width"], info["height"], info["pix_fmt"]) == (N_FRAMES, WIDTH, HEIGHT, "yuv420p")
    assert info["damage"] is None


def test_nut_pipe_keeps_timestamps_and_audio(capsys, recipes, source):
    stream = recipe_output(recipes, "clip-nut.lotto")
    info = lotto_info(capsys, stream)
    assert (info["frames"], info["width"], info["height"]) == (N_FRAMES, WIDTH, HEIGHT)
    reader = LottoReader(stream.read_bytes(), stream.name)
    frames = list(reader)
    assert reader.audio is not None
    # NUT carried the timestamps: the same instants as the source's frames (ffmpeg may shift
    # the whole clip to make the audio start at 0, so compared from the first frame)
    assert relative([f.pts * f.time_base for f in frames]) == relative(video_of(source).instants)
    # and decode put the source's audio packets back, unchanged
    decoded = recipe_output(recipes, "clip-nut.mkv")
    assert video_of(decoded).count == N_FRAMES
    codec, packets, _ = audio_of(decoded)
    source_codec, source_packets, _ = audio_of(source)
    assert codec == source_codec == "aac" and packets == source_packets


def test_decode_into_mp4_with_the_sources_audio(recipes, source):
    mp4 = video_of(recipe_output(recipes, "clip.mp4"))
    assert (mp4.codec, mp4.width, mp4.height, mp4.count) == ("h264", WIDTH, HEIGHT, N_FRAMES)
    assert mp4.audio == ["aac"]
    assert audio_of(recipes.dir / "clip.mp4")[1] == audio_of(source)[1]  # -c:a copy: the same packets


def test_decode_into_lossless_mkv_holds_the_decoded_pixels(recipes, source):
    mkv = video_of(recipe_output(recipes, "clip.mkv"))
    assert (mkv.codec, mkv.width, mkv.height, mkv.count) == ("ffv1", WIDTH, HEIGHT, N_FRAMES)
    assert mkv.audio == ["aac"]
    decoded = list(LottoReader((recipes.dir / "clip.lotto").read_bytes(), "clip.lotto"))
    for frame, planes in zip(decoded, mkv.planes):
        assert all(np.array_equal(a, b) for a, b in zip(frame.planes, planes))


def test_scale_and_crop_before_encoding(capsys, recipes):
    info = lotto_info(capsys, recipe_output(recipes, "small.lotto"))
    # half of 96x64 is 48x32; the centre three quarters of that is 36x24
    assert (info["frames"], info["width"], info["height"], info["pix_fmt"]) == (N_FRAMES, 36, 24, "yuv420p")


def test_ten_bit_pipe_codes_ten_bits(capsys, recipes):
    stream = recipe_output(recipes, "clip10.lotto")
    info = lotto_info(capsys, stream)
    assert (info["frames"], info["width"], info["height"], info["pix_fmt"]) == (N_FRAMES, WIDTH, HEIGHT, "yuv420p10le")
    frame = next(iter(LottoReader(stream.read_bytes(), stream.name)))
    assert frame.planes[0].dtype == np.uint16 and int(frame.planes[0].max()) > 255


# ============================================================================ helpers: command lines

def test_y4m_pipe_argv():
    argv = lf.to_y4m_pipe("in put.mp4", scale=("iw/2", -2), crop="iw*3/4:ih*3/4", pix_fmt="yuv420p10le", frames=3)
    assert argv[:5] == ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
    assert argv[argv.index("-i") + 1] == "in put.mp4"
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph.index("scale=iw/2:-2") < graph.index("crop=iw*3/4:ih*3/4")  # scale first, then crop
    assert argv[argv.index("-map") + 1].startswith("[")  # the filtered video, nothing else
    options = dict(zip(argv[:-1], argv[1:]))
    assert options["-f"] == "yuv4mpegpipe" and options["-pix_fmt"] == "yuv420p10le"
    assert options["-strict"] == "-1" and options["-frames:v"] == "3"
    assert argv[-1] == "pipe:"
    plain = lf.to_y4m_pipe("-", cmd="/opt/ffmpeg")
    assert plain[0] == "/opt/ffmpeg" and plain[plain.index("-i") + 1] == "pipe:"
    assert "-filter_complex" not in plain and "-pix_fmt" not in plain


def test_nut_pipe_argv():
    argv = lf.to_nut_pipe("in.mkv", crop=(64, 48, 8, 0), audio=True)
    options = dict(zip(argv[:-1], argv[1:]))
    assert options["-f"] == "nut" and options["-c:v"] == "rawvideo" and options["-c:a"] == "copy"
    assert "crop=64:48:8:0" in options["-filter_complex"]
    maps = [argv[i + 1] for i, a in enumerate(argv) if a == "-map"]
    assert len(maps) == 2 and maps[1] == "0:a:0?"  # audio when there is some
    video_only = lf.to_nut_pipe("in.mkv")
    assert "-c:a" not in video_only and [video_only[i + 1] for i, a in enumerate(video_only) if a == "-map"] == ["0:v:0"]


def test_mux_decoded_argv():
    argv = lf.mux_decoded("-", "source.mp4", "out.mp4")
    assert argv[-1] == "out.mp4" and "-n" in argv and "-y" not in argv
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-i"] == ["pipe:", "source.mp4"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-map"] == ["0:v:0", "1:a:0"]
    options = dict(zip(argv[:-1], argv[1:]))
    assert options["-c:v"] == "libx264" and options["-crf"] == "18" and options["-c:a"] == "copy"
    lossless = lf.mux_decoded("decoded.y4m", None, "out.mkv", video_codec="ffv1", overwrite=True, shortest=True)
    assert "-crf" not in lossless and "-y" in lossless and "-shortest" in lossless
    assert [lossless[i + 1] for i, a in enumerate(lossless) if a == "-map"] == ["0:v:0", "0:a:0?"]


@pytest.mark.parametrize("call, fragment", [
    (lambda: lf.to_y4m_pipe("a.mp4", pix_fmt="rgb24"), "to_nut_pipe"),
    (lambda: lf.to_y4m_pipe("a.mp4", pix_fmt="yuv422p"), "yuv422p"),
    (lambda: lf.to_nut_pipe("a.mp4", pix_fmt="yuv444p"), "yuv444p"),
    (lambda: lf.to_nut_pipe("a.mp4", audio=True, frames=4), "audio"),
    (lambda: lf.to_y4m_pipe("a.mp4", scale=(640,)), "scale"),
    (lambda: lf.to_y4m_pipe("a.mp4", crop="1:2:3"), "crop"),
    (lambda: lf.to_y4m_pipe("a.mp4", frames=0), "frames"),
])
def test_builders_refuse_what_cannot_work(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()


def test_only_the_ffmpeg_plugin_imports_ffmpeg_python():
    pattern = re.compile(r"^\s*(import ffmpeg\b|from ffmpeg\b)", re.M)
    offenders = [str(p.relative_to(REPO_DIR)) for folder in ("lotto_media", "plugins", "pipelines")
                 for p in (REPO_DIR / folder).rglob("*.py")
                 if pattern.search(p.read_text(encoding="utf-8")) and p != REPO_DIR / "plugins" / "ffmpeg.py"]
    assert offenders == []


# ============================================================================ helpers: runners

def test_encode_with_ffmpeg_then_decode_with_ffmpeg(source, tmp_path):
    need_ffmpeg()
    lotto = tmp_path / "clip.lotto"
    result = lf.encode_with_ffmpeg(source, lotto, FAST, crop=(64, 48))
    assert (result.frames, result.audio) == (N_FRAMES, True)
    # one group, or more where a predicted frame costs enough to restart one (8 steps a frame here)
    assert result.groups == len(read_container(lotto.read_bytes()).groups) >= 1
    assert result.bytes == lotto.stat().st_size and "rawvideo" in result.argv
    reader = LottoReader(lotto.read_bytes(), lotto.name)
    frames = list(reader)
    assert (reader.header.width, reader.header.height, len(frames)) == (64, 48, N_FRAMES)
    assert relative([f.pts * f.time_base for f in frames]) == relative(video_of(source).instants)

    mkv = tmp_path / "clip.mkv"
    decoded = lf.decode_with_ffmpeg(lotto, mkv, audio_from=source, video_codec="ffv1", threads=1)
    assert (decoded.frames, decoded.damage, decoded.audio) == (N_FRAMES, None, True)
    back = video_of(mkv)
    assert (back.codec, back.width, back.height, back.count, back.audio) == ("ffv1", 64, 48, N_FRAMES, ["aac"])
    assert all(np.array_equal(a, b) for f, planes in zip(frames, back.planes) for a, b in zip(f.planes, planes))
    assert audio_of(mkv)[1] == audio_of(source)[1]
    # the .lotto's own audio (carried through the NUT pipe) when no source is named
    mp4 = tmp_path / "own.mp4"
    assert lf.decode_with_ffmpeg(lotto, mp4, threads=1).frames == N_FRAMES
    assert video_of(mp4).audio == ["aac"] and sorted(p.name for p in tmp_path.iterdir()) == ["clip.lotto", "clip.mkv", "own.mp4"]


def test_encode_with_ffmpeg_through_y4m_scaled_to_ten_bits(source, tmp_path):
    need_ffmpeg()
    result = lf.encode_with_ffmpeg(source, tmp_path / "x.lotto", FAST, via="y4m", scale=(48, -2),
                                   pix_fmt="yuv420p10le", frames=2)
    assert (result.frames, result.audio) == (2, False)
    header = LottoReader((tmp_path / "x.lotto").read_bytes()).header
    assert (header.width, header.height, header.pix_fmt) == (48, 32, "yuv420p10le")


def test_an_ffmpeg_failure_is_one_line_naming_the_input(tmp_path):
    need_ffmpeg()
    missing = tmp_path / "missing.mp4"
    with pytest.raises(lf.FFmpegError) as caught:
        lf.encode_with_ffmpeg(missing, tmp_path / "x.lotto", FAST)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{missing}: ffmpeg failed (exit status 1)")
    assert "No such file or directory" in message and caught.value.returncode == 1
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


def test_an_ffmpeg_filter_error_names_its_cause(source, tmp_path):
    need_ffmpeg()
    with pytest.raises(lf.FFmpegError, match=r"Parsed_crop_0: Invalid too big") as caught:
        lf.encode_with_ffmpeg(source, tmp_path / "x.lotto", FAST, crop=(500, 500))
    assert isinstance(caught.value, LottoError) and "\n" not in str(caught.value)
    assert "Parsed_crop_0" in caught.value.stderr and list(tmp_path.iterdir()) == []


def test_decode_with_an_encoder_ffmpeg_lacks(source, tmp_path):
    need_ffmpeg()
    lotto = tmp_path / "x.lotto"
    lf.encode_with_ffmpeg(source, lotto, FAST, frames=1)
    with pytest.raises(lf.FFmpegError, match="Unknown encoder 'no-such-codec'"):
        lf.decode_with_ffmpeg(lotto, tmp_path / "x.mp4", video_codec="no-such-codec")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.lotto"]


def test_a_failure_on_lotto_medias_side_keeps_its_own_error(tmp_path):
    """ffmpeg is still writing (a clip longer than the pipe's buffer) when the encoder fails: the
    encoder's error goes on, ffmpeg is stopped, nothing is left behind."""
    ffmpeg = need_ffmpeg()
    long_clip = tmp_path / "long.mkv"
    subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi",
                    "-i", "testsrc=size=96x64:rate=25:duration=12", "-c:v", "ffv1", str(long_clip)],
                   check=True, timeout=60)

    def give_up(_progress) -> None:
        raise InputError("stopped by the test")

    with pytest.raises(InputError, match="stopped by the test") as caught:
        lf.encode_with_ffmpeg(long_clip, tmp_path / "x.lotto", FAST, progress=give_up)
    assert not isinstance(caught.value, lf.FFmpegError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mkv"]


def test_missing_binary_and_existing_output_are_refused_before_anything_runs(tmp_path):
    source = tmp_path / "in.mp4"
    with pytest.raises(lf.FFmpegNotFoundError, match="no-such-ffmpeg: the ffmpeg program is not installed"):
        lf.encode_with_ffmpeg(source, tmp_path / "x.lotto", FAST, cmd="no-such-ffmpeg")
    existing = tmp_path / "x.lotto"
    existing.write_bytes(b"keep")
    with pytest.raises(LottoError, match="already exists"):
        lf.encode_with_ffmpeg(source, existing, FAST)
    assert existing.read_bytes() == b"keep"
