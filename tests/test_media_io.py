"""Video readers and writers on PyAV: the shared clips, lossless round trips through y4m, NUT and
MKV (odd sizes, 10-bit, VFR), audio carried packet for packet, PNG sequences, pipes, MP4 delivery
and the errors a user sees."""

from __future__ import annotations

import io
import itertools
import logging
import os
import sys
import threading
import types
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import audio_of, require_media, save_png
from lotto_media.audio import AudioPacket, AudioParams
from lotto_media.errors import InputError, LottoError, UnsupportedError
from lotto_media.frame import ColorTags, Frame, VideoFormat
from lotto_media.plugins import media_io

PARK_JOY_8 = "video/park_joy_90p_8_420.y4m"
PARK_JOY_10 = "video/park_joy_90p_10_420_20f.y4m"


def _synthetic(pix_fmt: str, width: int, height: int, pts: list[int], time_base: Fraction = Fraction(1, 30),
               color: ColorTags = ColorTags(), seed: int = 0) -> list[Frame]:
    rng = np.random.default_rng(seed)
    peak, dtype = (1024, np.uint16) if pix_fmt == "yuv420p10le" else (256, np.uint8)
    shapes = [(height, width)] * (1 if pix_fmt == "gray" else 3)
    if pix_fmt.startswith("yuv"):
        shapes[1:] = [((height + 1) // 2, (width + 1) // 2)] * 2
    return [Frame([rng.integers(0, peak, s).astype(dtype) for s in shapes], pix_fmt, pts=p,
                  time_base=time_base, color=color, duration=1) for p in pts]


def _write(path: Path | str, frames: list[Frame], **fields: object) -> Path:
    video = VideoFormat.of(frames[0], **fields)
    with media_io.open_video_writer(path, video) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def _read(source: object, **kwargs: object) -> tuple[VideoFormat, list[Frame]]:
    with media_io.open_video(source, **kwargs) as reader:  # type: ignore[arg-type]
        return reader.format, list(reader.frames())


def _assert_same_pictures(expected: list[Frame], actual: list[Frame]) -> None:
    assert len(actual) == len(expected)
    for a, b in zip(expected, actual):
        assert (b.pix_fmt, b.width, b.height) == (a.pix_fmt, a.width, a.height)
        for pa, pb in zip(a.planes, b.planes):
            assert pb.dtype == pa.dtype
            np.testing.assert_array_equal(pa, pb)


# ---------------------------------------------------------------------------- the shared clips

@pytest.mark.parametrize("relative, size, pix_fmt, rate", [
    (PARK_JOY_8, (160, 90), "yuv420p", Fraction(50)),
    (PARK_JOY_10, (160, 90), "yuv420p10le", Fraction(50)),
    ("video/bus_cif_17f.y4m", (352, 288), "yuv420p", Fraction(30)),
    ("video/CiscoVT2people_320x192_9f.y4m", (320, 192), "yuv420p", Fraction(12)),
    ("video/carphone_pristine.mp4", (176, 144), "yuv420p", Fraction(30000, 1001)),
    ("video/realshort.mp4", (320, 240), "yuv420p", None),
])
def test_reads_first_frames_of_shared_clips(relative: str, size: tuple[int, int], pix_fmt: str,
                                            rate: Fraction | None) -> None:
    path = require_media(relative)
    with media_io.open_video(path) as reader:
        video = reader.format
        frames = list(itertools.islice(reader.frames(), 3))
    assert (video.width, video.height, video.pix_fmt) == (*size, pix_fmt)
    if rate is not None:
        assert video.frame_rate == rate
    assert len(frames) == 3
    assert all(f.pix_fmt == pix_fmt and (f.width, f.height) == size for f in frames)
    assert frames[0].pts == 0 and frames[0].pts < frames[1].pts < frames[2].pts
    assert all(f.time_base == video.time_base for f in frames)
    if relative.endswith(".y4m"):
        assert [f.pts for f in frames] == [0, 1, 2] and video.time_base == 1 / rate
        assert frames[0].planes[0].dtype == (np.uint16 if pix_fmt == "yuv420p10le" else np.uint8)


def test_mp4_audio_track_is_described() -> None:
    path = require_media("video/realshort.mp4")
    with media_io.open_video(path) as reader:
        audio = reader.audio
        assert audio is not None and (audio.codec, audio.sample_rate, audio.layout) == ("aac", 48000, "mono")
        assert audio.extradata and audio.time_base == Fraction(1, 48000)
        packets = reader.take_audio_packets()  # those demuxed before the first picture
        for _ in reader.frames():
            packets += reader.take_audio_packets()
        packets += reader.take_audio_packets()
        assert reader.take_audio_packets() == []
    with av.open(str(path)) as container:
        expected = [(bytes(p), p.pts) for p in container.demux(audio=0) if p.size]
    assert [(p.data, p.pts) for p in packets] == expected


@pytest.mark.parametrize("relative", [PARK_JOY_8, PARK_JOY_10])
@pytest.mark.parametrize("suffix", [".nut", ".mkv", ".y4m"])
def test_shared_y4m_round_trips_losslessly(tmp_path: Path, relative: str, suffix: str) -> None:
    with media_io.open_video(require_media(relative)) as reader:
        video, tags = reader.format, reader.y4m_tags
        frames = list(itertools.islice(reader.frames(), 4))
    out = tmp_path / f"clip{suffix}"
    with media_io.open_video_writer(out, video, y4m_tags=tags) as writer:
        for frame in frames:
            writer.write(frame)
    back_video, back = _read(out)
    _assert_same_pictures(frames, back)
    assert [f.pts for f in back] == [0, 1, 2, 3]
    assert back_video.time_base == video.time_base and back_video.frame_rate == video.frame_rate
    assert back_video.color == video.color  # chroma siting included (LOTTO_COLOR in NUT/MKV)
    if suffix == ".y4m":
        source = require_media(relative).read_bytes()
        assert out.read_bytes() == source[: len(out.read_bytes())]  # same header and frames


# ---------------------------------------------------------------------------- lossless kinds

@pytest.mark.parametrize("suffix", [".y4m", ".nut", ".mkv"])
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le", "gray", "rgb24"])
def test_odd_size_round_trip(tmp_path: Path, suffix: str, pix_fmt: str) -> None:
    if suffix == ".y4m" and pix_fmt == "rgb24":
        with pytest.raises(UnsupportedError, match="y4m cannot carry rgb24"):
            _write(tmp_path / "x.y4m", _synthetic(pix_fmt, 17, 11, [0]))
        assert list(tmp_path.iterdir()) == []
        return
    color = ColorTags(1, 1, 1, 1, 1) if pix_fmt.startswith("yuv") else ColorTags()
    frames = _synthetic(pix_fmt, 17, 11, [0, 1, 2], color=color)
    video, back = _read(_write(tmp_path / f"odd{suffix}", frames, frame_rate=Fraction(30)))
    _assert_same_pictures(frames, back)
    assert [f.pts for f in back] == [0, 1, 2] and video.frame_rate == 30
    if pix_fmt.startswith("yuv") and suffix != ".y4m":
        assert video.color == color and back[0].color == color


@pytest.mark.parametrize("suffix", [".nut", ".mkv"])
def test_vfr_timestamps_survive(tmp_path: Path, suffix: str) -> None:
    frames = _synthetic("yuv420p", 8, 6, [0, 1, 3, 7], Fraction(1, 30))
    out = _write(tmp_path / f"vfr{suffix}", frames, frame_rate=None)
    video, back = _read(out)
    assert [f.pts for f in back] == [0, 1, 3, 7]
    assert all(f.time_base == Fraction(1, 30) for f in back)
    assert video.frame_rate is None and video.time_base == Fraction(1, 30)
    # other software sees the same instants (in the container's own time base)
    with av.open(str(out)) as container:
        seconds = [float(vf.pts * vf.time_base) for vf in container.decode(video=0)]
    assert seconds == pytest.approx([0, 1 / 30, 3 / 30, 7 / 30], abs=1e-3)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_rotation_is_written_as_display_matrix(tmp_path: Path, suffix: str) -> None:
    frames = _synthetic("yuv420p", 8, 6, [0, 1])
    out = _write(tmp_path / f"rot{suffix}", frames, rotation=90, frame_rate=Fraction(30))
    assert _read(out)[0].rotation == 90
    with av.open(str(out)) as container:
        assert next(container.decode(video=0)).rotation == 90


def test_writer_rescales_frame_time_base(tmp_path: Path) -> None:
    frames = _synthetic("gray", 4, 4, [0, 2, 4], Fraction(1, 60))
    out = tmp_path / "rescaled.nut"
    with media_io.open_video_writer(out, VideoFormat(4, 4, "gray", time_base=Fraction(1, 30))) as writer:
        for frame in frames:
            writer.write(frame)
        with pytest.raises(InputError, match="must increase"):
            writer.write(_synthetic("gray", 4, 4, [1], Fraction(1, 30))[0])
    assert [f.pts for f in _read(out)[1]] == [0, 1, 2]


# ---------------------------------------------------------------------------- audio

def _clip_with_tone(path: Path, frames: list[Frame]) -> None:
    """An MP4 built with PyAV alone: real frames in H.264 and a 440 Hz tone in AAC."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=50)
        video.width, video.height, video.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(9600) / 48000)).astype(np.float32)
        for start in range(0, tone.size, 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, start
            for packet in audio.encode(chunk):
                out.mux(packet)
        for index, frame in enumerate(frames):
            vf = media_io.to_av_frame(frame)
            vf.pts, vf.time_base = index, Fraction(1, 50)
            for packet in video.encode(vf):
                out.mux(packet)
        for stream in (audio, video):
            for packet in stream.encode(None):
                out.mux(packet)


@pytest.mark.parametrize("suffix", [".mkv", ".nut", ".mp4"])
def test_audio_packets_survive_reader_to_writer(tmp_path: Path, suffix: str) -> None:
    with media_io.open_video(require_media(PARK_JOY_8)) as reader:
        pictures = list(itertools.islice(reader.frames(), 5))
    source = tmp_path / "tone.mp4"
    _clip_with_tone(source, pictures)
    out = tmp_path / f"copy{suffix}"
    with media_io.open_video(source) as reader, \
            media_io.open_video_writer(out, reader.format, reader.audio) as writer:
        for frame in reader.frames():
            writer.write(frame)
            for packet in reader.take_audio_packets():
                writer.write_audio(packet)
        for packet in reader.take_audio_packets():
            writer.write_audio(packet)
    codec, packets, samples = audio_of(source)
    out_codec, out_packets, out_samples = audio_of(out)
    assert (out_codec, out_packets) == (codec, packets)
    assert len(packets) >= 9 and samples >= 9600
    # NUT cannot signal the encoder's priming samples (MP4 has an edit list, MKV CodecDelay), so
    # a NUT decoder outputs one more frame of silence; the packets are the same.
    assert out_samples == samples + (1024 if suffix == ".nut" else 0)
    assert len(_read(out)[1]) == 5


def test_audio_is_dropped_with_a_warning_by_y4m(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    audio = AudioParams("aac", 48000, 1, "mono", "fltp", Fraction(1, 48000))
    frames = _synthetic("yuv420p", 4, 4, [0])
    with media_io.open_video_writer(tmp_path / "a.y4m", VideoFormat.of(frames[0]), audio) as writer:
        writer.write(frames[0])
        writer.write_audio(AudioPacket(b"x", 0, 0))
        writer.write_audio(AudioPacket(b"y", 1024, 1024))
    dropped = [r for r in caplog.records if "cannot carry audio" in r.getMessage()]
    assert len(dropped) == 1 and "dropped" in dropped[0].getMessage()


# ---------------------------------------------------------------------------- pictures

def test_png_sequence_round_trip(tmp_path: Path) -> None:
    frames = _synthetic("rgb24", 7, 5, [0, 1, 2])
    _write(tmp_path / "out_%04d.png", frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_0001.png", "out_0002.png", "out_0003.png"]
    for source in (tmp_path / "out_%04d.png", tmp_path, str(tmp_path / "*.png")):
        video, back = _read(source)
        _assert_same_pictures(frames, back)
        assert [f.pts for f in back] == [0, 1, 2] and video.frame_rate == 25


def test_gray_folder_is_read_in_name_order(tmp_path: Path) -> None:
    for index, value in [(10, 30), (2, 20), (1, 10)]:
        save_png(np.full((3, 5), value, np.uint8), tmp_path / f"p{index:02d}.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    video, frames = _read(tmp_path)
    assert video.pix_fmt == "gray"
    assert [int(f.planes[0][0, 0]) for f in frames] == [10, 20, 30]


def test_yuv_to_png_warns_and_converts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    grey = [Frame([np.full((4, 6), v, np.uint8), np.full((2, 3), 128, np.uint8), np.full((2, 3), 128, np.uint8)],
                  "yuv420p", color=ColorTags(color_range=1, matrix=1)) for v in (16, 235)]
    _write(tmp_path / "f%d.png", grey)
    assert "yuv420p converted to rgb24 PNG (BT.709 matrix, limited range" in caplog.text
    _, back = _read(tmp_path / "f%d.png")
    assert back[0].pix_fmt == "rgb24"
    assert int(back[0].planes[0].max()) == 0 and int(back[1].planes[1].min()) == 255


def test_ten_bit_to_sixteen_bit_png(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    frame = Frame([np.full((3, 3), 940, np.uint16), np.full((2, 2), 512, np.uint16), np.full((2, 2), 512, np.uint16)],
                  "yuv420p10le")
    _write(tmp_path / "deep.png", [frame])
    assert "16-bit rgb48 PNG" in caplog.text
    with av.open(str(tmp_path / "deep.png")) as container:
        vf = next(container.decode(video=0))
    assert vf.format.name == "rgb48be" and int(vf.to_ndarray().min()) == 65535


def test_single_png_holds_one_picture(tmp_path: Path) -> None:
    frames = _synthetic("gray", 4, 4, [0, 1])
    with pytest.raises(LottoError, match="holds one picture"):
        _write(tmp_path / "one.png", frames)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- pipes

def _nut_bytes(frames: list[Frame]) -> bytes:
    buffer = io.BytesIO()
    with media_io.open_video_writer(buffer, VideoFormat.of(frames[0]), kind="nut") as writer:
        for frame in frames:
            writer.write(frame)
    return buffer.getvalue()


def _y4m_bytes(frames: list[Frame]) -> bytes:
    buffer = io.BytesIO()
    with media_io.open_video_writer(buffer, VideoFormat.of(frames[0], frame_rate=Fraction(30))) as writer:
        for frame in frames:
            writer.write(frame)
    return buffer.getvalue()


def _feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> threading.Thread:
    """Make sys.stdin a real pipe fed with ``data`` by a thread (not seekable, short reads)."""
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as pipe:
            try:
                pipe.write(data)
            except BrokenPipeError:
                pass

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    stdin = os.fdopen(read_fd, "rb")
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=stdin))
    return thread


@pytest.mark.parametrize("container", ["y4m", "nut"])
def test_stdin_is_sniffed(monkeypatch: pytest.MonkeyPatch, container: str) -> None:
    frames = _synthetic("yuv420p", 9, 5, [0, 1, 2])
    data = _y4m_bytes(frames) if container == "y4m" else _nut_bytes(frames)
    thread = _feed_stdin(monkeypatch, data)
    with media_io.open_video("-") as reader:
        assert reader.name == "<stdin>"
        back = list(reader.frames())
    thread.join(5)
    sys.stdin.buffer.close()
    _assert_same_pictures(frames, back)
    assert [f.pts for f in back] == [0, 1, 2]


def test_stdin_that_is_neither_y4m_nor_nut(monkeypatch: pytest.MonkeyPatch) -> None:
    thread = _feed_stdin(monkeypatch, b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(InputError, match=r"<stdin>: not a y4m or NUT stream"):
        media_io.open_video("-")
    thread.join(5)
    sys.stdin.buffer.close()


def test_file_objects_are_sniffed(tmp_path: Path) -> None:
    frames = _synthetic("yuv420p10le", 5, 3, [0, 1])
    for data in (_y4m_bytes(frames), _nut_bytes(frames)):
        _assert_same_pictures(frames, _read(io.BytesIO(data), name="mem")[1])
    mkv = _write(tmp_path / "x.mkv", frames)
    _assert_same_pictures(frames, _read(io.BytesIO(mkv.read_bytes()))[1])


def test_stdout_gets_y4m_or_nut(monkeypatch: pytest.MonkeyPatch) -> None:
    for pix_fmt, magic in [("yuv420p", b"YUV4MPEG2 "), ("rgb24", b"nut/multimedia container\0")]:
        stdout = io.BytesIO()
        monkeypatch.setattr(sys, "stdout", types.SimpleNamespace(buffer=stdout))
        frames = _synthetic(pix_fmt, 5, 3, [0, 1])
        with media_io.open_video_writer("-", VideoFormat.of(frames[0], frame_rate=Fraction(30))) as writer:
            for frame in frames:
                writer.write(frame)
        assert stdout.getvalue().startswith(magic)
        _assert_same_pictures(frames, _read(io.BytesIO(stdout.getvalue()))[1])


# ---------------------------------------------------------------------------- delivery MP4

def test_mp4_plays_back(tmp_path: Path) -> None:
    with media_io.open_video(require_media(PARK_JOY_8)) as reader:
        video = reader.format
        frames = list(itertools.islice(reader.frames(), 6))
    out = tmp_path / "delivery.mp4"
    with media_io.open_video_writer(out, video) as writer:
        for frame in frames:
            writer.write(frame)
    with av.open(str(out)) as container:
        decoded = list(container.decode(video=0))
        assert container.streams.video[0].codec_context.name == "h264"
    assert len(decoded) == 6 and (decoded[0].width, decoded[0].height) == (160, 90)
    y = np.frombuffer(bytes(decoded[0].planes[0]), np.uint8).reshape(90, -1)[:, :160]
    assert np.abs(y.astype(int) - frames[0].planes[0]).mean() < 3  # crf 18: close to the source


def test_mp4_refuses_odd_sizes(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError, match="even width and height.*17x11"):
        _write(tmp_path / "odd.mp4", _synthetic("yuv420p", 17, 11, [0]))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- atomic writing

def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    frames = _synthetic("yuv420p", 8, 6, [0, 1])
    for suffix in (".mkv", ".y4m", "_%03d.png"):
        with pytest.raises(RuntimeError):
            with media_io.open_video_writer(tmp_path / f"x{suffix}", VideoFormat.of(frames[0])) as writer:
                writer.write(frames[0])
                raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_existing_target_needs_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "x.nut"
    target.write_bytes(b"keep")
    frames = _synthetic("gray", 4, 4, [0])
    with pytest.raises(LottoError, match="already exists"):
        media_io.open_video_writer(target, VideoFormat.of(frames[0]))
    assert target.read_bytes() == b"keep"
    with media_io.open_video_writer(target, VideoFormat.of(frames[0]), overwrite=True) as writer:
        writer.write(frames[0])
    assert _read(target)[1][0].pix_fmt == "gray"
    assert [p.name for p in tmp_path.iterdir()] == ["x.nut"]


def test_unknown_output_kind(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError, match="unknown output extension '.avi'"):
        media_io.open_video_writer(tmp_path / "x.avi", VideoFormat(4, 4, "gray"))


# ---------------------------------------------------------------------------- frames <-> PyAV

@pytest.mark.parametrize("pix_fmt", ["gray", "rgb24", "yuv420p", "yuv420p10le"])
@pytest.mark.parametrize("size", [(1, 1), (17, 11), (64, 3)])
def test_av_frame_conversions_are_exact(pix_fmt: str, size: tuple[int, int]) -> None:
    color = ColorTags(color_range=2, matrix=1, primaries=9, transfer=16)
    (frame,) = _synthetic(pix_fmt, *size, [42], Fraction(1, 90000), color=color)
    vf = media_io.to_av_frame(frame)
    assert (vf.format.name, vf.width, vf.height, vf.pts, vf.time_base) == (pix_fmt, *size, 42, Fraction(1, 90000))
    back = media_io.from_av_frame(vf)
    _assert_same_pictures([frame], [back])
    assert back.color == color and (back.pts, back.time_base) == (42, Fraction(1, 90000))


def _av_frame(pix_fmt: str, width: int = 9, height: int = 5) -> av.VideoFrame:
    vf = av.VideoFrame(width, height, pix_fmt)
    for plane in vf.planes:
        np.frombuffer(plane, np.uint8)[:] = 100
    return vf


@pytest.mark.parametrize("pix_fmt, target, warning", [
    ("yuv422p", "yuv420p", "yuv422p converted to yuv420p (chroma subsampled to 4:2:0"),
    ("rgba", "rgb24", "rgba converted to rgb24 (alpha dropped)"),
    ("gray16le", "gray", "gray16le converted to gray (16-bit samples rounded to 8 bits)"),
    ("yuv420p12le", "yuv420p10le", "12-bit samples rounded to 10 bits"),
    ("nv12", "yuv420p", None),
    ("gbrp", "rgb24", None),
])
def test_other_formats_are_converted_with_a_warning(caplog: pytest.LogCaptureFixture, pix_fmt: str,
                                                    target: str, warning: str | None) -> None:
    with caplog.at_level(logging.WARNING):
        frame = media_io.from_av_frame(_av_frame(pix_fmt), name="pic")
    assert frame.pix_fmt == target
    if warning is None:
        assert caplog.records == []
    else:
        (record,) = caplog.records
        assert record.getMessage().startswith("pic: ") and warning in record.getMessage()


def test_yuvj420p_is_full_range_yuv420p_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    vf = _av_frame("yuvj420p")
    np.frombuffer(vf.planes[0], np.uint8)[:] = 3  # a full-range value, not rescaled
    frame = media_io.from_av_frame(vf)
    assert frame.pix_fmt == "yuv420p" and frame.color.color_range == 2
    assert int(frame.planes[0].min()) == 3 and caplog.records == []


def test_reader_warns_once_per_conversion(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "yuv444.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 9, 5, "yuv444p"
        for index in range(3):
            vf = _av_frame("yuv444p")
            vf.pts = index
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    video, frames = _read(path)
    assert video.pix_fmt == "yuv420p" and len(frames) == 3
    assert caplog.text.count("yuv444p converted to yuv420p") == 1


# ---------------------------------------------------------------------------- input errors

def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=8000)
        stream.layout = "mono"
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.int16), format="s16", layout="mono")
        samples.sample_rate, samples.pts = 8000, 0
        for packet in stream.encode(samples) + stream.encode(None):
            out.mux(packet)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.mp4", "no such file"),
    (lambda d: d / "missing_%04d.png", "no such file"),
    (lambda d: d / "nothing*.png", "no file matches"),
    (lambda d: (d / "empty.mp4").write_bytes(b"") or d / "empty.mp4", "empty file"),
    (lambda d: (d / "notes.mp4").write_text("hello, not a video\n") and d / "notes.mp4",
     "not a video or picture FFmpeg can read"),
    (lambda d: _audio_only(d / "sound.mka"), "has no video stream"),
    (lambda d: (d / "pictures").mkdir() or d / "pictures", "folder holds no pictures"),
    (lambda d: (d / "cut.y4m").write_bytes(b"YUV4MPEG2 W4 H4 F25:1\nFRAME\n" + bytes(5)) and d / "cut.y4m",
     r"frame 1 \(pts 0\) is truncated"),
])
def test_input_errors_name_the_file(tmp_path: Path, make, message: str) -> None:
    source = make(tmp_path)
    with pytest.raises(InputError, match=message) as info:
        with media_io.open_video(source) as reader:
            list(reader.frames())
    text = str(info.value)
    assert text.startswith(str(source)) and "\n" not in text
