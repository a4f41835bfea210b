"""The command line's video features as a user runs them: ``transcode``, ``encode``, ``decode``
and ``info`` on real clips (tiny crops of the shared test sequences, so every search is short),
8-bit, 10-bit and odd sizes, audio carried packet for packet, variable frame rates, random
access, damaged streams, ffmpeg pipes, usage errors, and the PyAV consumer of ``.lotto``
streams (``lotto_media.plugins.lotto_av``).

Commands run in-process through ``cli.main`` unless a real process matters (shell pipes with
ffmpeg). Clips are built here from real frames, with lotto-media's writers or PyAV alone."""

from __future__ import annotations

import io
import itertools
import json
import os
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

from conftest import audio_of, require_media
from lotto_media.container import read_index
from lotto_media.errors import FormatError, UnsupportedError
from lotto_media.frame import Frame, VideoFormat
from lotto_media.pipelines import cli
from lotto_media.plugins import media_io
from lotto_media.plugins.lotto_av import LottoAVDecoder, decode_av_frames
from lotto_media.stream import LottoReader

CISCO = "video/CiscoVT2people_320x192_9f.y4m"
PARK_JOY_10 = "video/park_joy_90p_10_420_20f.y4m"
#: the fastest search that still codes something: every test here runs in a few seconds
ENC = ["--preset", "ultrafast", "--steps", "12", "--threads", "1", "--seed", "0"]
#: the options of the shared stream (two groups of two frames)
SHARED_ENC = [*ENC, "--gop", "2"]
#: the command a shell runs (``lotto-media`` of this interpreter)
LOTTO_SHELL = shlex.join([sys.executable, "-m", "lotto_media.pipelines"])


# ============================================================================ helpers

def crop(frame: Frame, x: int, y: int, width: int, height: int) -> Frame:
    """A width x height window of a 4:2:0 frame at an even (x, y), chroma cropped with it."""
    assert x % 2 == 0 and y % 2 == 0
    luma, *chroma = frame.planes
    cx, cy, cw, ch = x // 2, y // 2, (width + 1) // 2, (height + 1) // 2
    planes = [luma[y:y + height, x:x + width].copy()] + [p[cy:cy + ch, cx:cx + cw].copy() for p in chroma]
    return Frame(planes, frame.pix_fmt, pts=frame.pts, time_base=frame.time_base, color=frame.color,
                 duration=frame.duration)


def real_frames(relative: str, n: int, width: int, height: int, x: int = 0, y: int = 0) -> tuple[VideoFormat, list[Frame]]:
    """The first ``n`` frames of a shared clip, cropped, and their format (rate, time base, colour)."""
    with media_io.open_video(require_media(relative)) as reader:
        frames = [crop(f, x, y, width, height) for f in itertools.islice(reader.frames(), n)]
        source = reader.format
    video = VideoFormat(width, height, source.pix_fmt, time_base=source.time_base,
                        frame_rate=source.frame_rate, color=source.color)
    return video, frames


def write_clip(path: Path, video: VideoFormat, frames: list[Frame]) -> Path:
    """``frames`` written with lotto-media's own writers (y4m by our y4m writer, NUT, MKV)."""
    with media_io.open_video_writer(path, video) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def read_clip(path: Path) -> tuple[VideoFormat, list[Frame]]:
    with media_io.open_video(path) as reader:
        return reader.format, list(reader.frames())


def same_pictures(a: list[Frame], b: list[Frame]) -> bool:
    return len(a) == len(b) and all(
        (x.pix_fmt, x.width, x.height) == (y.pix_fmt, y.width, y.height)
        and all(p.dtype == q.dtype and np.array_equal(p, q) for p, q in zip(x.planes, y.planes))
        for x, y in zip(a, b))


def instants(frames: list[Frame]) -> list[Fraction]:
    """When each frame is shown, in seconds (exact)."""
    return [f.pts * f.time_base for f in frames]


def run(capsys, *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lotto_frames(path: Path, **kwargs) -> list[Frame]:
    return list(LottoReader(path.read_bytes(), path.name, **kwargs))


def info_json(capsys, path: Path) -> dict:
    code, out, err = run(capsys, "info", path, "--json")
    assert code == 0, err
    return json.loads(out)


def assert_one_error_line(err: str, *fragments: str) -> str:
    """Exactly one ``lotto-media: error:`` line, holding every fragment; returns it."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("lotto-media: error: ")]
    assert len(errors) == 1, err
    for fragment in fragments:
        assert fragment in errors[0], err
    return errors[0]


def tone_clip(path: Path, video: VideoFormat, frames: list[Frame], codec: str) -> None:
    """An MKV built with PyAV alone: the frames losslessly (FFV1) and a 440 Hz tone in ``codec``."""
    rate = 48000
    with av.open(str(path), "w", format="matroska") as out:
        vstream = out.add_stream("ffv1", rate=video.frame_rate)
        vstream.width, vstream.height, vstream.pix_fmt = video.width, video.height, video.pix_fmt
        astream = out.add_stream(codec, rate=rate)
        astream.layout = "mono"
        ctx = astream.codec_context
        sample_format = ctx.codec.audio_formats[0].name
        frame_size = ctx.frame_size or 960
        seconds = len(frames) / float(video.frame_rate)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
        if sample_format.startswith("s16"):
            tone = (tone * 32767).astype(np.int16)
        elif sample_format.startswith("s32"):
            tone = (tone * 2**31 * 0.999).astype(np.int32)
        for start in range(0, tone.size, frame_size):
            chunk = tone[None, start:start + frame_size]
            audio_frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=sample_format, layout="mono")
            audio_frame.sample_rate, audio_frame.pts = rate, start
            audio_frame.time_base = Fraction(1, rate)
            for packet in astream.encode(audio_frame):
                out.mux(packet)
        for index, frame in enumerate(frames):
            vf = media_io.to_av_frame(frame)
            vf.pts, vf.time_base = index, 1 / video.frame_rate
            for packet in vstream.encode(vf):
                out.mux(packet)
        for stream in (astream, vstream):
            for packet in stream.encode(None):
                out.mux(packet)


def audio_codec() -> str:
    """AAC when this FFmpeg build encodes it, else FLAC. (Not Opus: the end trimming of its last
    packet is packet side data, which the .lotto audio packets do not carry, so a decoder outputs
    a few more samples than the source's.)"""
    for codec in ("aac", "flac"):
        try:
            av.Codec(codec, "w")
        except (ValueError, av.FFmpegError):
            continue
        return codec
    pytest.skip("this FFmpeg build has no AAC or FLAC encoder")


def need_ffmpeg() -> str:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("the ffmpeg command-line tool is not on PATH (.ci/run installs it: apt-get install ffmpeg)")
    return ffmpeg


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """A shell pipeline; fails if any command of it fails (pipefail). One PyTorch thread, as in
    this process (see ``one_torch_thread``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True,
                          timeout=120)


# ============================================================================ the shared stream

@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Decode with one PyTorch thread (encodes say --threads 1). Pixels do not depend on it; time
    does: on a busy 2-core machine two threads spin against each other, 10-50x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cisco(tmp_path_factory) -> SimpleNamespace:
    """4 real frames (48x32 crop of CiscoVT2people, 12 fps) as a y4m clip, transcoded once into
    a two-group stream, with the encoder's reconstructions in ``decoded.mkv``."""
    directory = tmp_path_factory.mktemp("cisco")
    video, frames = real_frames(CISCO, 4, 48, 32, x=120, y=40)
    clip = write_clip(directory / "clip.y4m", video, frames)
    lotto, decoded = directory / "clip.lotto", directory / "decoded.mkv"
    code = cli.main(["transcode", str(clip), "-o", str(lotto), "--decoded", str(decoded), *SHARED_ENC, "-q"])
    assert code == 0
    return SimpleNamespace(dir=directory, clip=clip, video=video, frames=frames, lotto=lotto,
                           decoded=decoded, reconstructions=read_clip(decoded)[1])


# ============================================================================ transcode and decode

def test_transcode_then_decode_gives_the_encoders_reconstructions(capsys, cisco, tmp_path):
    source_video, source = read_clip(cisco.clip)
    code, _, err = run(capsys, "decode", cisco.lotto, "-o", tmp_path / "out.y4m")
    assert code == 0, err
    video, decoded = read_clip(tmp_path / "out.y4m")
    # exactly what the encoder reconstructed (and not merely the source copied through)
    assert same_pictures(decoded, cisco.reconstructions)
    assert not same_pictures(decoded, source)
    # size, pixel format, rate, frame count and timing of the source
    assert (video.width, video.height, video.pix_fmt, video.frame_rate) == (48, 32, "yuv420p", Fraction(12))
    assert len(decoded) == len(source) == 4
    assert [f.pts for f in decoded] == [f.pts for f in source] == [0, 1, 2, 3]
    assert instants(decoded) == instants(source)
    # the check copy keeps the source's timing too
    decoded_video, _ = read_clip(cisco.decoded)
    assert decoded_video.frame_rate == Fraction(12)
    assert instants(cisco.reconstructions) == instants(source)
    # decoding is repeatable: the same file again
    code, _, err = run(capsys, "decode", cisco.lotto, "-o", tmp_path / "again.y4m")
    assert code == 0, err
    assert (tmp_path / "again.y4m").read_bytes() == (tmp_path / "out.y4m").read_bytes()


def test_transcode_of_an_mp4_clip_keeps_its_timestamps(capsys, tmp_path):
    """An MP4 as cameras write it (H.264, 30000/1001 fps, time base 1/30000), of which --frames 0:3
    codes the first three frames."""
    video, frames = real_frames(CISCO, 4, 48, 32, x=120, y=40)
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 30000)
        for index, frame in enumerate(frames):
            vf = media_io.to_av_frame(frame)
            vf.pts, vf.time_base = index * 1001, Fraction(1, 30000)
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    source_video, source = read_clip(clip)
    assert source_video.time_base == Fraction(1, 30000) and len(source) == 4

    lotto, decoded = tmp_path / "clip.lotto", tmp_path / "decoded.nut"
    code, _, err = run(capsys, "transcode", clip, "-o", lotto, "--decoded", decoded, "--frames", "0:3", *ENC)
    assert code == 0, err
    assert "3 frames 48x32 yuv420p" in err
    info = info_json(capsys, lotto)
    assert (info["frames"], info["time_base"], info["frame_rate"]) == (3, "1/30000", "30000/1001")
    assert [d["pts"] for d in info["frame_details"]] == [0, 1001, 2002]

    code, _, err = run(capsys, "decode", lotto, "-o", tmp_path / "out.y4m")
    assert code == 0, err
    video, out = read_clip(tmp_path / "out.y4m")
    _, reconstructions = read_clip(decoded)
    assert same_pictures(out, reconstructions) and len(out) == 3
    assert (video.width, video.height, video.pix_fmt, video.frame_rate) == (48, 32, "yuv420p", Fraction(30000, 1001))
    assert instants(out) == instants(reconstructions) == instants(source[:3])
    # and to MP4 for delivery: PyAV alone reads 3 frames at the source's instants
    code, _, err = run(capsys, "decode", lotto, "-o", tmp_path / "out.mp4")
    assert code == 0, err
    with av.open(str(tmp_path / "out.mp4")) as container:
        seconds = [float(vf.pts * vf.time_base) for vf in container.decode(video=0)]
    assert seconds == pytest.approx([float(t) for t in instants(source[:3])], abs=1e-3)


def test_ten_bit_stays_ten_bit_end_to_end(capsys, tmp_path):
    video, frames = real_frames(PARK_JOY_10, 3, 32, 24, x=64, y=32)
    assert video.pix_fmt == "yuv420p10le"
    clip = write_clip(tmp_path / "clip10.y4m", video, frames)
    assert b" C420p10" in clip.read_bytes()[:80]
    lotto, decoded = tmp_path / "clip10.lotto", tmp_path / "decoded.mkv"
    code, _, err = run(capsys, "transcode", clip, "-o", lotto, "--decoded", decoded, *ENC)
    assert code == 0, err
    assert info_json(capsys, lotto)["pix_fmt"] == "yuv420p10le"
    _, reconstructions = read_clip(decoded)
    for suffix in (".y4m", ".mkv"):
        out = tmp_path / f"out{suffix}"
        code, _, err = run(capsys, "decode", lotto, "-o", out)
        assert code == 0, err
        out_video, out_frames = read_clip(out)
        assert out_video.pix_fmt == "yuv420p10le" and len(out_frames) == 3
        assert all(p.dtype == np.uint16 for f in out_frames for p in f.planes)
        assert max(int(f.planes[0].max()) for f in out_frames) > 255  # real 10-bit samples
        assert same_pictures(out_frames, reconstructions)
    assert b" C420p10" in (tmp_path / "out.y4m").read_bytes()[:80]
    with av.open(str(tmp_path / "out.mkv")) as container:  # other software sees 10 bits too
        assert next(container.decode(video=0)).format.name == "yuv420p10le"


def test_an_odd_size_420_clip_round_trips(capsys, tmp_path):
    video, frames = real_frames(CISCO, 3, 23, 17, x=140, y=50)
    clip = write_clip(tmp_path / "odd.y4m", video, frames)
    lotto, decoded = tmp_path / "odd.lotto", tmp_path / "decoded.nut"
    code, _, err = run(capsys, "transcode", clip, "-o", lotto, "--decoded", decoded, *ENC)
    assert code == 0, err
    _, reconstructions = read_clip(decoded)
    for suffix in (".y4m", ".mkv"):
        code, _, err = run(capsys, "decode", lotto, "-o", tmp_path / f"out{suffix}")
        assert code == 0, err
        out_video, out = read_clip(tmp_path / f"out{suffix}")
        assert (out_video.width, out_video.height) == (23, 17)
        assert [p.shape for p in out[0].planes] == [(17, 23), (9, 12), (9, 12)]
        assert same_pictures(out, reconstructions) and len(out) == 3


def test_audio_is_carried_packet_for_packet(capsys, tmp_path):
    codec = audio_codec()
    video, frames = real_frames(CISCO, 4, 48, 32, x=120, y=40)
    source = tmp_path / "tone.mkv"
    tone_clip(source, video, frames, codec)
    lotto, decoded = tmp_path / "tone.lotto", tmp_path / "decoded.mkv"
    code, _, err = run(capsys, "transcode", source, "-o", lotto, "--decoded", decoded, *ENC)
    assert code == 0, err
    assert "audio carried" in err
    code, _, err = run(capsys, "decode", lotto, "-o", tmp_path / "out.mkv")
    assert code == 0, err

    source_codec, source_packets, source_samples = audio_of(source)
    assert len(source_packets) >= 5 and source_samples >= 10000
    for out in (tmp_path / "out.mkv", decoded):
        out_codec, out_packets, out_samples = audio_of(out)
        assert out_codec == source_codec
        assert len(out_packets) == len(source_packets)
        assert out_packets == source_packets
        assert out_samples == source_samples
    assert len(read_clip(tmp_path / "out.mkv")[1]) == 4


@pytest.mark.parametrize("writer", ["lotto-media", "pyav"])
def test_variable_frame_rate_timestamps_survive(capsys, tmp_path, writer):
    """pts 0, 1, 3, 7 at time base 1/30: a NUT written by lotto-media (VFR tagged, exact time
    base) and an MKV written by PyAV alone (Matroska keeps milliseconds)."""
    _, pictures = real_frames(CISCO, 4, 48, 32, x=120, y=40)
    pts = [0, 1, 3, 7]
    frames = [Frame(f.planes, f.pix_fmt, pts=p, time_base=Fraction(1, 30), duration=1) for f, p in zip(pictures, pts)]
    if writer == "lotto-media":
        source = write_clip(tmp_path / "vfr.nut", VideoFormat.of(frames[0], frame_rate=None), frames)
    else:
        source = tmp_path / "vfr.mkv"
        with av.open(str(source), "w") as out:
            stream = out.add_stream("ffv1", rate=30)
            stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
            for frame in frames:
                for packet in stream.encode(media_io.to_av_frame(frame)):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    source_video, source_frames = read_clip(source)
    expected = [Fraction(p, 30) for p in pts]
    lotto = tmp_path / "vfr.lotto"
    code, _, err = run(capsys, "transcode", source, "-o", lotto, *ENC)
    assert code == 0, err

    info = info_json(capsys, lotto)
    lotto_pts = [d["pts"] for d in info["frame_details"]]
    assert lotto_pts == [f.pts for f in source_frames]
    assert info["time_base"] == f"{source_video.time_base.numerator}/{source_video.time_base.denominator}"
    stream_frames = lotto_frames(lotto)
    assert [f.pts for f in stream_frames] == lotto_pts
    if writer == "lotto-media":
        assert lotto_pts == pts and info["time_base"] == "1/30" and info["frame_rate"] is None
        code, out, _ = run(capsys, "info", lotto)
        assert "variable frame rate" in out
    else:
        assert [float(t) for t in instants(stream_frames)] == pytest.approx([float(t) for t in expected], abs=1e-3)

    out = tmp_path / "back.mkv"
    code, _, err = run(capsys, "decode", lotto, "-o", out)
    assert code == 0, err
    _, back = read_clip(out)
    assert instants(back) == instants(stream_frames)  # exactly, through lotto-media's reader
    with av.open(str(out)) as container:  # and in any player, to Matroska's millisecond
        seconds = [float(vf.pts * vf.time_base) for vf in container.decode(video=0)]
    assert seconds == pytest.approx([float(t) for t in expected], abs=1e-3)


# ============================================================================ random access and damage

@pytest.mark.parametrize("selection, expected", [("1:3", [1, 2]), ("2:4", [2, 3]), ("3:", [3])])
def test_decode_frames_selects_exactly_those_frames(capsys, cisco, tmp_path, selection, expected):
    assert info_json(capsys, cisco.lotto)["groups"] == 2
    out = tmp_path / "part.nut"
    code, _, err = run(capsys, "decode", cisco.lotto, "-o", out, "--frames", selection)
    assert code == 0, err
    _, part = read_clip(out)
    assert [f.pts for f in part] == expected
    assert same_pictures(part, [cisco.reconstructions[i] for i in expected])


def test_a_cut_stream_decodes_every_frame_before_the_cut_and_exits_1(capsys, cisco, tmp_path):
    data = cisco.lotto.read_bytes()
    third = read_index(data).frames[2]
    cut = tmp_path / "cut.lotto"
    cut.write_bytes(data[: third.offset + 30])  # inside the third frame's chunk
    out = tmp_path / "cut.y4m"
    code, stdout, err = run(capsys, "decode", cut, "-o", out)
    assert code == 1 and stdout == ""
    line = assert_one_error_line(err, "cut.lotto", "truncated")
    assert sum("truncated" in l for l in err.splitlines()) == 1, err  # the loss is named once
    assert "2 of" in line
    _, frames = read_clip(out)
    assert same_pictures(frames, cisco.reconstructions[:2])
    # quiet: the error line alone
    code, _, err = run(capsys, "decode", cut, "-o", out, "-y", "-q")
    assert code == 1 and len(err.strip().splitlines()) == 1, err


@pytest.fixture(scope="module")
def newer_frame(cisco) -> bytes:
    """The shared clip as one group of 4 whose third frame packet claims a packet version this
    build does not know (its chunk is intact: only the payload is refused)."""
    from lotto_media.options import EncodeOptions
    from lotto_media.stream import LottoWriter, StreamEncoder

    encoder = StreamEncoder(cisco.video, EncodeOptions(preset="ultrafast", steps=4, threads=1), gop=4)
    packets = [p for f in cisco.frames for p in encoder.encode(f)] + encoder.flush()
    third = [p for p in packets if p.kind == "frame"][2]
    third.data = bytes([third.data[0] + 1]) + third.data[1:]
    buffer = io.BytesIO()
    with LottoWriter(buffer, encoder.header) as writer:
        writer.write(packets)
    return buffer.getvalue()


def test_a_frame_that_does_not_decode_keeps_the_frames_before_it(capsys, cisco, newer_frame, tmp_path):
    stream = tmp_path / "newer.lotto"
    stream.write_bytes(newer_frame)
    out = tmp_path / "newer.nut"
    code, _, err = run(capsys, "decode", stream, "-o", out)
    assert code == 1
    line = assert_one_error_line(err, "newer.lotto: frame at pts 2", "version")
    assert line.count("newer.lotto") == 1, line  # named once
    _, frames = read_clip(out)
    assert [f.pts for f in frames] == [0, 1]
    assert same_pictures(frames, lotto_frames(stream, frames=range(0, 2)))


# ============================================================================ ffmpeg pipes

def test_ffmpeg_pipe_into_encode(capsys, cisco, tmp_path):
    """``ffmpeg -i CLIP -f yuv4mpegpipe - | lotto-media encode - -o x.lotto``"""
    ffmpeg = shlex.quote(need_ffmpeg())
    clip_mkv = write_clip(tmp_path / "clip.mkv", cisco.video, cisco.frames)  # a container ffmpeg decodes
    encode = shell(f"{ffmpeg} -v error -i {clip_mkv.name} -f yuv4mpegpipe - | "
                   f"{LOTTO_SHELL} encode - -o piped.lotto {' '.join(SHARED_ENC)}", tmp_path)
    assert encode.returncode == 0, encode.stderr.decode()
    assert "4 frames 48x32 yuv420p" in encode.stderr.decode()
    assert info_json(capsys, tmp_path / "piped.lotto")["frames"] == 4
    # the same pixels came through the pipe: the (deterministic) search found the same frames
    # as the transcode of the y4m file did
    assert same_pictures(lotto_frames(tmp_path / "piped.lotto"), cisco.reconstructions)


def test_decode_pipe_into_ffmpeg(capsys, cisco, tmp_path):
    """``lotto-media decode x.lotto -o - | ffmpeg -i - out.mkv``: the pipe carries what decoding
    to a file writes, byte for byte (tee keeps a copy), and ffmpeg reads every frame."""
    ffmpeg = shlex.quote(need_ffmpeg())
    lotto = shlex.quote(str(cisco.lotto))
    decode = shell(f"{LOTTO_SHELL} decode {lotto} -o - | tee pipe.y4m | "
                   f"{ffmpeg} -v error -i - out.mkv -c:v ffv1 exact.mkv", tmp_path)
    assert decode.returncode == 0, decode.stderr.decode()
    with av.open(str(tmp_path / "out.mkv")) as container:  # ffmpeg's default (lossy) encoder
        assert sum(1 for _ in container.decode(video=0)) == 4
    code, _, err = run(capsys, "decode", cisco.lotto, "-o", tmp_path / "file.y4m")
    assert code == 0, err
    assert (tmp_path / "pipe.y4m").read_bytes() == (tmp_path / "file.y4m").read_bytes()
    _, from_file = read_clip(tmp_path / "file.y4m")
    _, through_ffmpeg = read_clip(tmp_path / "exact.mkv")
    assert len(from_file) == 4 and same_pictures(through_ffmpeg, from_file)
    assert same_pictures(from_file, cisco.reconstructions)


# ============================================================================ the PyAV consumer

def test_pyav_consumes_lotto_frames_like_any_decoder(cisco, tmp_path):
    frames = list(decode_av_frames(cisco.lotto))
    assert [vf.pts for vf in frames] == [0, 1, 2, 3]
    assert all(vf.time_base == Fraction(1, 12) for vf in frames)
    assert {(vf.width, vf.height, vf.format.name) for vf in frames} == {(48, 32, "yuv420p")}
    assert same_pictures([media_io.from_av_frame(vf) for vf in frames], cisco.reconstructions)

    # PyAV encodes them like frames of any other decoder, and reads the MP4 back
    out = tmp_path / "consumer.mp4"
    with LottoAVDecoder(cisco.lotto) as decoder, av.open(str(out), "w") as container:
        assert decoder.format.frame_rate == Fraction(12)
        stream = container.add_stream("libx264", rate=decoder.format.frame_rate)
        stream.width, stream.height, stream.pix_fmt = decoder.format.width, decoder.format.height, "yuv420p"
        for vf in decoder:
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with av.open(str(out)) as container:
        back = list(container.decode(video=0))
    assert len(back) == 4 and (back[0].width, back[0].height) == (48, 32)
    assert [float(vf.pts * vf.time_base) for vf in back] == pytest.approx([0, 1 / 12, 2 / 12, 3 / 12], abs=1e-3)


def test_pyav_consumer_takes_bytes_and_file_objects_and_selects_frames(cisco):
    data = cisco.lotto.read_bytes()
    with open(cisco.lotto, "rb") as stream:
        from_file_object = [media_io.from_av_frame(vf) for vf in decode_av_frames(stream)]
    assert same_pictures(from_file_object, cisco.reconstructions)
    part = list(decode_av_frames(data, "clip.lotto", frames=range(1, 3)))
    assert [vf.pts for vf in part] == [1, 2]
    assert same_pictures([media_io.from_av_frame(vf) for vf in part], cisco.reconstructions[1:3])
    with pytest.raises(FormatError):
        decode_av_frames(b"not a lotto stream")  # refused when opened, not at the first frame


def test_pyav_consumer_gives_the_intact_frames_of_a_cut_stream_then_raises(cisco):
    data = cisco.lotto.read_bytes()
    cut = data[: read_index(data).frames[2].offset + 30]
    got = []
    with pytest.raises(FormatError, match="truncated"):
        for vf in decode_av_frames(cut, "cut.lotto"):
            got.append(media_io.from_av_frame(vf))
    assert same_pictures(got, cisco.reconstructions[:2])
    decoder = LottoAVDecoder(cut, "cut.lotto", strict=False)
    assert len(list(decoder)) == 2 and "truncated" in decoder.damage


def test_pyav_consumer_of_a_frame_that_does_not_decode(newer_frame):
    with pytest.raises(UnsupportedError, match="frame at pts 2"):
        for _ in decode_av_frames(newer_frame, "newer.lotto"):
            pass
    decoder = LottoAVDecoder(newer_frame, "newer.lotto", strict=False)
    assert [vf.pts for vf in decoder] == [0, 1] and "frame at pts 2" in decoder.damage


# ============================================================================ info and encode

def test_info_lists_every_frame(capsys, cisco):
    details = info_json(capsys, cisco.lotto)
    assert (details["frames"], details["groups"]) == (4, 2)
    rows = details["frame_details"]
    assert [(d["index"], d["group"], d["pts"]) for d in rows] == [(0, 0, 0), (1, 0, 1), (2, 1, 2), (3, 1, 3)]
    assert all(d["bytes"] > 0 and d["psnr"] > 15 for d in rows)
    assert [d["frame_type"] for d in rows] == ["INTRA", "PREDICTED"] * 2
    assert sum(d["bytes"] for d in rows) < cisco.lotto.stat().st_size

    code, out, _ = run(capsys, "info", cisco.lotto)
    assert code == 0
    assert "4 in 2 group(s) of up to 2, 12.000 fps" in out
    table = out[out.index("frame  group  type"):].splitlines()[1:]
    assert len(table) == 4
    for line, d in zip(table, rows):
        index, group, frame_type, pts, size, psnr = line.split()
        assert (int(index), int(group), int(pts), int(size)) == (d["index"], d["group"], d["pts"], d["bytes"])
        assert frame_type == d["frame_type"][0] and float(psnr) == pytest.approx(d["psnr"], abs=0.01)


def test_a_one_frame_video_is_coded_as_a_picture(capsys, cisco, tmp_path):
    """The header (mask ratio included) is written before any frame is coded: the encoder looks
    two frames ahead, so one frame, whether the whole input or a --frames selection, gets a
    picture's mask ratio and header, and two frames or more those of a stream with predicted frames."""
    def described(path: Path) -> tuple[float, int, int]:
        """(mask ratio, the header's frame-count hint, frames in the stream)"""
        info = info_json(capsys, path)
        return info["mask_ratio"], LottoReader(path.read_bytes(), path.name).header.n_frames, info["frames"]

    def transcoded(*selection: str) -> tuple[float, int, int]:
        out = tmp_path / f"clip{len(list(tmp_path.iterdir()))}.lotto"
        code, _, err = run(capsys, "transcode", cisco.clip, "-o", out, *selection, *ENC, "--quality", "40", "-q")
        assert code == 0, err
        return described(out)

    one_frame = write_clip(tmp_path / "one.y4m", cisco.video, cisco.frames[:1])
    code, _, err = run(capsys, "encode", one_frame, "-o", tmp_path / "one.lotto", *ENC, "--quality", "40", "-q")
    assert code == 0, err
    assert described(tmp_path / "one.lotto") == transcoded("--frames", "2:3") == transcoded("--frames", "3:") == (0.2, 1, 1)
    assert transcoded("--frames", "2:4") == (0.05, 0, 2)
    assert transcoded() == (0.05, 0, 4)


def test_encode_of_a_video_codes_every_frame(capsys, cisco, tmp_path):
    out = tmp_path / "encoded.lotto"
    code, stdout, err = run(capsys, "encode", cisco.clip, "-o", out, *ENC, "--json")
    assert code == 0, err
    assert json.loads(stdout)["frames"] == 4
    assert len(lotto_frames(out)) == len(cisco.frames) == 4
    assert info_json(capsys, out)["frames"] == 4


# ============================================================================ usage errors

@pytest.mark.parametrize("argv", [
    ["encode", "clip.y4m", "-o", "x.lotto", "--gop", "0"],
    ["transcode", "clip.y4m", "--gop", "0"],
    ["decode", "x.lotto", "-o", "x.y4m", "--frames", "5:2"],
    ["transcode", "clip.y4m", "--frames", "5:2"],
])
def test_bad_gop_and_frame_ranges_are_usage_errors(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert ("--gop" in err) or ("--frames" in err)


def test_decode_of_a_video_to_one_png_says_what_to_write(capsys, cisco, tmp_path):
    code, out, err = run(capsys, "decode", cisco.lotto, "-o", tmp_path / "x.png")
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert_one_error_line(err, "x.png", "video file", "%04d")
    assert not (tmp_path / "x.png").exists() and list(tmp_path.iterdir()) == []
