"""Our y4m reader/writer: byte-exact round trips on real clips, agreement with FFmpeg's own y4m
demuxer, odd sizes, tag mapping, and the errors a damaged or hostile header must give."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import require_media
from lotto_media.errors import InputError, UnsupportedError
from lotto_media.frame import ColorTags, Frame, VideoFormat
from lotto_media.plugins import y4m

SHARED_Y4M = ["video/park_joy_90p_8_420.y4m", "video/park_joy_90p_10_420_20f.y4m",
              "video/CiscoVT2people_320x192_9f.y4m"]


def _pyav_planes(path: Path) -> list[list[np.ndarray]]:
    """Planes as FFmpeg's y4m demuxer decodes them (copied row by row, skipping line padding)."""
    out = []
    with av.open(str(path)) as container:
        for vf in container.decode(video=0):
            dtype = np.dtype("<u2") if vf.format.name.endswith("10le") else np.dtype(np.uint8)
            planes = []
            for plane in vf.planes:
                rows = np.frombuffer(bytes(plane), dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
                planes.append(rows[:, : plane.width].copy())
            out.append(planes)
    return out


def _synthetic(pix_fmt: str, width: int, height: int, count: int, seed: int = 0) -> list[Frame]:
    rng = np.random.default_rng(seed)
    peak, dtype = (1024, np.uint16) if pix_fmt == "yuv420p10le" else (256, np.uint8)
    shapes = [(height, width)]
    if pix_fmt != "gray":
        shapes += [((height + 1) // 2, (width + 1) // 2)] * 2
    return [Frame([rng.integers(0, peak, s).astype(dtype) for s in shapes], pix_fmt, pts=i)
            for i in range(count)]


def _y4m_bytes(header: bytes, frames: list[Frame]) -> bytes:
    return header + b"".join(b"FRAME\n" + b"".join(p.astype(p.dtype.newbyteorder("<")).tobytes()
                                                   for p in f.planes) for f in frames)


@pytest.mark.parametrize("relative", SHARED_Y4M)
def test_round_trip_is_byte_exact(relative: str) -> None:
    path = require_media(relative)
    data = path.read_bytes()
    with path.open("rb") as stream:
        reader = y4m.Y4mReader(stream, str(path))
        out = io.BytesIO()
        writer = y4m.Y4mWriter(out, reader.format, reader.header.extra_tags)
        for frame in reader:
            writer.write(frame)
        writer.close()
    assert out.getvalue() == data


@pytest.mark.parametrize("relative", SHARED_Y4M[:2])
def test_planes_equal_what_ffmpeg_decodes(relative: str) -> None:
    path = require_media(relative)
    expected = _pyav_planes(path)
    with path.open("rb") as stream:
        frames = list(y4m.Y4mReader(stream, str(path)))
    assert len(frames) == len(expected)
    for index, (frame, planes) in enumerate(zip(frames, expected)):
        assert frame.pts == index
        for ours, theirs in zip(frame.planes, planes):
            assert ours.dtype == (np.uint16 if frame.pix_fmt == "yuv420p10le" else np.uint8)
            np.testing.assert_array_equal(ours, theirs)


def test_shared_headers_map_to_formats() -> None:
    path8 = require_media(SHARED_Y4M[0])
    path10 = require_media(SHARED_Y4M[1])
    with path8.open("rb") as s8, path10.open("rb") as s10:
        h8, h10 = y4m.read_header(s8), y4m.read_header(s10)
    assert (h8.width, h8.height, h8.frame_rate, h8.pix_fmt) == (160, 90, Fraction(50), "yuv420p")
    assert h8.chroma_location == 2 and h8.extra_tags == ("Ip", "A0:0", "XYSCSS=420JPEG")
    assert h10.pix_fmt == "yuv420p10le" and h10.extra_tags == ("Ip", "A0:0", "XYSCSS=420P10")
    video = h10.video_format("x")
    assert video.time_base == Fraction(1, 50) and video.frame_rate == Fraction(50)


@pytest.mark.parametrize("tag, pix_fmt, chroma", [
    ("C420jpeg", "yuv420p", 2), ("C420", "yuv420p", 2), ("C420mpeg2", "yuv420p", 1),
    ("C420paldv", "yuv420p", 3), ("C420p10 XYSCSS=420P10", "yuv420p10le", 0), ("Cmono", "gray", 0),
    ("", "yuv420p", 2),
])
def test_colourspace_tags(tag: str, pix_fmt: str, chroma: int) -> None:
    header = y4m.Y4mHeader.parse(f"YUV4MPEG2 W4 H2 F30000:1001 {tag}".strip().encode())
    assert (header.pix_fmt, header.chroma_location) == (pix_fmt, chroma)
    assert header.frame_rate == Fraction(30000, 1001)


def test_range_and_unknown_tags_are_kept() -> None:
    line = b"YUV4MPEG2 W8 H6 F25:1 It A16:15 C420mpeg2 XCOLORRANGE=FULL XLOTTO=1 Zfuture\n"
    header = y4m.Y4mHeader.parse(line)
    assert header.color == ColorTags(color_range=2, chroma_location=1)
    assert header.extra_tags == ("It", "A16:15", "XLOTTO=1", "Zfuture")
    assert header.to_bytes() == b"YUV4MPEG2 W8 H6 F25:1 It A16:15 C420mpeg2 XLOTTO=1 Zfuture XCOLORRANGE=FULL\n"


def test_writer_header_from_video_format() -> None:
    video10 = VideoFormat(17, 11, "yuv420p10le", time_base=Fraction(1, 24), frame_rate=Fraction(24),
                          color=ColorTags(color_range=1))
    assert y4m.Y4mHeader.for_video(video10).to_bytes() == \
        b"YUV4MPEG2 W17 H11 F24:1 Ip A0:0 C420p10 XYSCSS=420P10 XCOLORRANGE=LIMITED\n"
    paldv = VideoFormat(4, 4, "yuv420p", frame_rate=Fraction(25), color=ColorTags(chroma_location=3))
    # a kept XYSCSS is made to agree with the new siting
    assert y4m.Y4mHeader.for_video(paldv, ("Ip", "A1:1", "XYSCSS=420JPEG")).to_bytes() == \
        b"YUV4MPEG2 W4 H4 F25:1 Ip A1:1 C420paldv XYSCSS=420PALDV\n"
    gray = VideoFormat(4, 4, "gray", time_base=Fraction(1, 30), frame_rate=None)
    assert y4m.Y4mHeader.for_video(gray).to_bytes() == b"YUV4MPEG2 W4 H4 F30:1 Ip A0:0 Cmono\n"
    with pytest.raises(UnsupportedError, match="rgb24"):
        y4m.Y4mHeader.for_video(VideoFormat(4, 4, "rgb24"))


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le", "gray"])
def test_odd_size_round_trip(tmp_path: Path, pix_fmt: str) -> None:
    frames = _synthetic(pix_fmt, 17, 11, 3)
    video = VideoFormat(17, 11, pix_fmt, time_base=Fraction(1, 25), frame_rate=Fraction(25))
    path = tmp_path / "odd.y4m"
    with path.open("wb") as out:
        writer = y4m.Y4mWriter(out, video)
        for frame in frames:
            writer.write(frame)
    with path.open("rb") as stream:
        back = list(y4m.Y4mReader(stream, str(path)))
    assert [f.pts for f in back] == [0, 1, 2]
    assert all(f.time_base == Fraction(1, 25) and f.duration == 1 for f in back)
    for ours, theirs in zip(frames, back):
        for a, b in zip(ours.planes, theirs.planes):
            np.testing.assert_array_equal(a, b)
    if pix_fmt != "gray":  # FFmpeg agrees on the odd chroma size (ceil(W/2) x ceil(H/2))
        for theirs, planes in zip(back, _pyav_planes(path)):
            for a, b in zip(theirs.planes, planes):
                np.testing.assert_array_equal(a, b)


class _Trickle(io.RawIOBase):
    """A pipe that returns at most 7 bytes per read and counts what was read."""

    def __init__(self, data: bytes) -> None:
        self._data, self.consumed = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data[self.consumed:self.consumed + min(7, len(buffer))]
        buffer[: len(chunk)] = chunk
        self.consumed += len(chunk)
        return len(chunk)


def test_reads_short_reads_lazily() -> None:
    frames = _synthetic("yuv420p", 5, 3, 4, seed=3)
    header = b"YUV4MPEG2 W5 H3 F25:1 C420jpeg\n"
    data = _y4m_bytes(header, frames)
    pipe = _Trickle(data)
    reader = y4m.Y4mReader(pipe, "<pipe>")
    first = next(iter(reader))
    frame_size = 15 + 2 * 3 * 2
    assert pipe.consumed == len(header) + len(b"FRAME\n") + frame_size  # one frame, not the stream
    rest = list(reader.frames())
    assert [f.pts for f in [first, *rest]] == [0, 1, 2, 3]
    np.testing.assert_array_equal(rest[-1].planes[2], frames[-1].planes[2])


def test_frame_parameters_are_accepted() -> None:
    frames = _synthetic("gray", 3, 2, 1)
    data = b"YUV4MPEG2 W3 H2 F1:1 Cmono\nFRAME Ixyz\n" + frames[0].planes[0].tobytes()
    (frame,) = y4m.Y4mReader(io.BytesIO(data))
    np.testing.assert_array_equal(frame.planes[0], frames[0].planes[0])


def test_truncated_last_frame_is_an_error() -> None:
    data = _y4m_bytes(b"YUV4MPEG2 W4 H4 F25:1\n", _synthetic("yuv420p", 4, 4, 3))[:-5]
    reader = y4m.Y4mReader(io.BytesIO(data), "clip.y4m")
    with pytest.raises(InputError, match=r"clip\.y4m: frame 3 \(pts 2\) is truncated: 19 of 24 bytes"):
        list(reader)


def test_truncated_frame_line_is_an_error() -> None:
    data = _y4m_bytes(b"YUV4MPEG2 W4 H4 F25:1\n", _synthetic("yuv420p", 4, 4, 1)) + b"FRA"
    with pytest.raises(InputError, match=r"clip: frame 2 .*truncated"):
        list(y4m.Y4mReader(io.BytesIO(data), "clip"))


def test_bad_frame_marker_is_an_error() -> None:
    data = b"YUV4MPEG2 W2 H2 F25:1 Cmono\nFRAMEX\n" + bytes(4)
    with pytest.raises(InputError, match="expected a FRAME line"):
        list(y4m.Y4mReader(io.BytesIO(data), "clip"))


def test_ten_bit_samples_are_bounded() -> None:
    frame = _synthetic("yuv420p10le", 2, 2, 1)[0]
    frame.planes[0][0, 0] = 4000
    data = _y4m_bytes(b"YUV4MPEG2 W2 H2 F25:1 C420p10\n", [frame])
    with pytest.raises(InputError, match="above 1023"):
        list(y4m.Y4mReader(io.BytesIO(data), "clip"))


@pytest.mark.parametrize("header, error, message", [
    (b"", InputError, "empty input"),
    (b"RIFF....", InputError, "not a y4m stream"),
    (b"YUV4MPEG2 W16 H16 F25:1", InputError, "truncated"),
    (b"YUV4MPEG2 H16 F25:1\n", InputError, "no W tag"),
    (b"YUV4MPEG2 W16 H-3 F25:1\n", InputError, "height"),
    (b"YUV4MPEG2 W100000 H100000 F25:1\n", InputError, "100000x100000 refused"),
    (b"YUV4MPEG2 W16384 H16384 F25:1\n", InputError, "refused"),
    (b"YUV4MPEG2 W99999999999999999999 H2 F25:1\n", InputError, "absurdly large"),
    (b"YUV4MPEG2 W16 H16 F0:0\n", InputError, "F0:0"),
    (b"YUV4MPEG2 W16 H16 F25\n", InputError, "F25"),
    (b"YUV4MPEG2 W16 H16 F25:1 C444\n", UnsupportedError, r"C444 \(yuv444p\)"),
    (b"YUV4MPEG2 W16 H16 F25:1 C422p10\n", UnsupportedError, "C422p10"),
    (b"YUV4MPEG2 W16 H16 F25:1 Cweird\n", UnsupportedError, "Cweird"),
    (b"YUV4MPEG2 W16 H16 F25:1 X" + b"a" * 5000 + b"\n", InputError, "longer than"),
    (b"YUV4MPEG2 W16 H16 \xff\n", InputError, "not ASCII"),
])
def test_header_errors(header: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        y4m.Y4mReader(io.BytesIO(header), "bad.y4m")
    assert str(info.value).startswith("bad.y4m: ") and "\n" not in str(info.value)


def test_missing_frame_rate_defaults_to_25(caplog: pytest.LogCaptureFixture) -> None:
    header = y4m.Y4mHeader.parse(b"YUV4MPEG2 W2 H2", "clip")
    assert header.frame_rate == 25
    assert "no F tag" in caplog.text


def test_writer_refuses_mismatched_frames() -> None:
    writer = y4m.Y4mWriter(io.BytesIO(), VideoFormat(4, 4, "yuv420p", frame_rate=Fraction(25)), name="out")
    with pytest.raises(InputError, match="does not match"):
        writer.write(_synthetic("yuv420p", 5, 4, 1)[0])
