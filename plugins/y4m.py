"""YUV4MPEG2 (y4m) read and written by lotto-media itself, tag for tag.

y4m is how pictures travel through ffmpeg pipes (``ffmpeg -f yuv4mpegpipe -``). PyAV's muxer always
writes ``C420jpeg`` and cannot carry chroma siting, pixel aspect or unknown ``X`` tags, so a
y4m -> lotto -> y4m round trip through it would change the file. This module keeps every tag:

- the reader maps the ``C`` tag to a pixel format and FFmpeg's AVChromaLocation (``C420jpeg``/``C420``
  2 = centre, ``C420mpeg2`` 1 = left, ``C420paldv`` 3 = top left, ``C420p10`` 10-bit and ``Cmono`` gray,
  siting unspecified), ``XCOLORRANGE=LIMITED|FULL`` to AVColorRange 1/2, and keeps every other tag
  (``I``, ``A``, ``XYSCSS``, any ``X...``) verbatim in :attr:`Y4mHeader.extra_tags`;
- the writer puts them back, so a stream read and written unchanged is byte-identical when its
  tags are in the usual order (``W H F I A C X...``, the order ffmpeg writes).

y4m has no timestamps, RGB or colour matrix: frames get pts = index and time base 1/F, and writing
RGB is refused. Sizes are bounded before anything is allocated (a hostile header cannot ask for
gigabytes), frames are read one at a time from any binary stream (files and pipes alike), and a
truncated last frame is an error, not a silently shorter clip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import numpy as np

from lotto_media.errors import InputError, UnsupportedError
from lotto_media.frame import ColorTags, Frame, VideoFormat

log = logging.getLogger(__name__)

MAGIC = b"YUV4MPEG2"
FRAME_MAGIC = b"FRAME"
#: longest stream header line accepted (real ones are under 100 bytes)
MAX_HEADER_BYTES = 4096
#: longest FRAME line accepted (frame parameters are rare and short)
MAX_FRAME_HEADER_BYTES = 1024
#: largest width or height accepted, and largest picture (16K x 4K): beyond is a damaged header
MAX_SIDE = 16384
MAX_PIXELS = 1 << 26
#: y4m's default frame rate when the F tag is missing (what ffmpeg assumes)
DEFAULT_FRAME_RATE = Fraction(25)

# C tag value -> (pix_fmt, AVChromaLocation)
_COLORSPACES: dict[str, tuple[str, int]] = {
    "420jpeg": ("yuv420p", 2),
    "420": ("yuv420p", 2),
    "420mpeg2": ("yuv420p", 1),
    "420paldv": ("yuv420p", 3),
    "420p10": ("yuv420p10le", 0),
    "mono": ("gray", 0),
}
# C tag values we recognise but do not code, with FFmpeg's name, for the error message
_UNSUPPORTED_COLORSPACES: dict[str, str] = {
    "411": "yuv411p", "422": "yuv422p", "444": "yuv444p", "444alpha": "yuva444p",
    "420p9": "yuv420p9le", "420p12": "yuv420p12le", "420p14": "yuv420p14le", "420p16": "yuv420p16le",
    "422p9": "yuv422p9le", "422p10": "yuv422p10le", "422p12": "yuv422p12le", "422p14": "yuv422p14le",
    "422p16": "yuv422p16le", "444p9": "yuv444p9le", "444p10": "yuv444p10le", "444p12": "yuv444p12le",
    "444p14": "yuv444p14le", "444p16": "yuv444p16le", "mono9": "gray9le", "mono10": "gray10le",
    "mono12": "gray12le", "mono16": "gray16le",
}
_RANGE_TAG = "XCOLORRANGE"
_RANGES = {"LIMITED": 1, "FULL": 2}
_SUBSAMPLING_TAG = "XYSCSS"


def _subsampling_value(colorspace: str) -> str | None:
    """The XYSCSS value mjpegtools/ffmpeg pair with a C value (None: no XYSCSS for it)."""
    return {"420jpeg": "420JPEG", "420": "420JPEG", "420mpeg2": "420MPEG2", "420paldv": "420PALDV",
            "420p10": "420P10", "mono": "MONO"}.get(colorspace)


@dataclass(frozen=True)
class Y4mHeader:
    """A y4m stream header. ``colorspace`` is the C tag's value (``"420jpeg"``, ``"420p10"``,
    ``"mono"``, ...), ``color_range`` FFmpeg's AVColorRange from XCOLORRANGE (0 when absent), and
    ``extra_tags`` every other tag exactly as written (``"Ip"``, ``"A1:1"``, ``"XYSCSS=420JPEG"``),
    in stream order, so that writing the header again gives the same bytes."""

    width: int
    height: int
    frame_rate: Fraction = DEFAULT_FRAME_RATE
    colorspace: str = "420jpeg"
    color_range: int = 0
    extra_tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_size(self.width, self.height, "<y4m header>")
        if self.frame_rate <= 0:
            raise InputError(f"frame rate must be positive, got {self.frame_rate}")
        if self.colorspace not in _COLORSPACES:
            raise UnsupportedError(_unsupported_message("<y4m header>", self.colorspace))
        for tag in self.extra_tags:
            if not tag or any(c in tag for c in " \n\r\t") or tag[0] in "WHFC":
                raise ValueError(f"not a y4m extra tag: {tag!r}")

    @property
    def pix_fmt(self) -> str:
        return _COLORSPACES[self.colorspace][0]

    @property
    def chroma_location(self) -> int:
        return _COLORSPACES[self.colorspace][1]

    @property
    def color(self) -> ColorTags:
        return ColorTags(color_range=self.color_range, chroma_location=self.chroma_location)

    @property
    def frame_bytes(self) -> int:
        """Bytes of one frame's samples (after its FRAME line)."""
        return _frame_bytes(self.width, self.height, self.pix_fmt)

    def video_format(self, source: str = "") -> VideoFormat:
        """The stream as lotto-media describes it: time base 1/F, no rotation."""
        return VideoFormat(self.width, self.height, self.pix_fmt, time_base=1 / self.frame_rate,
                           frame_rate=self.frame_rate, color=self.color, source=source)

    def to_bytes(self) -> bytes:
        """The header line, newline included: ``W H F``, then the I and A tags (``Ip A0:0`` when
        absent), ``C``, the other extra tags (an XYSCSS made to agree with C), XYSCSS for 10-bit
        if none was kept, and XCOLORRANGE when the range is known."""
        rate = self.frame_rate
        before = [t for t in self.extra_tags if t[0] in "IA"]
        if not any(t[0] == "I" for t in before):
            before.insert(0, "Ip")
        if not any(t[0] == "A" for t in before):
            before.append("A0:0")
        subsampling = _subsampling_value(self.colorspace)
        after: list[str] = []
        for tag in self.extra_tags:
            if tag[0] in "IA" or tag.startswith(_RANGE_TAG + "="):
                continue
            if tag.startswith(_SUBSAMPLING_TAG + "="):
                if subsampling is None:
                    continue
                tag = f"{_SUBSAMPLING_TAG}={subsampling}"
            after.append(tag)
        if self.pix_fmt == "yuv420p10le" and not any(t.startswith(_SUBSAMPLING_TAG + "=") for t in after):
            after.append(f"{_SUBSAMPLING_TAG}={subsampling}")
        range_name = {v: k for k, v in _RANGES.items()}.get(self.color_range)
        if range_name is not None:
            after.append(f"{_RANGE_TAG}={range_name}")
        tokens = [MAGIC.decode(), f"W{self.width}", f"H{self.height}",
                  f"F{rate.numerator}:{rate.denominator}", *before, f"C{self.colorspace}", *after]
        return (" ".join(tokens) + "\n").encode("ascii")

    @classmethod
    def parse(cls, line: bytes, name: str = "<y4m>") -> "Y4mHeader":
        """Parse a header line (with or without its newline); errors name ``name``."""
        line = line.rstrip(b"\n")
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            raise InputError(f"{name}: y4m header is not ASCII") from None
        tokens = text.split(" ")
        if tokens[0] != MAGIC.decode():
            raise InputError(f"{name}: not a y4m stream (no YUV4MPEG2 signature)")
        width = height = None
        frame_rate: Fraction | None = None
        colorspace = "420jpeg"
        color_range = 0
        extra: list[str] = []
        for token in tokens[1:]:
            if not token:
                continue  # tolerate doubled spaces
            key, value = token[0], token[1:]
            if key == "W":
                width = _parse_int(value, "width", name)
            elif key == "H":
                height = _parse_int(value, "height", name)
            elif key == "F":
                frame_rate = _parse_ratio(value, name)
            elif key == "C":
                colorspace = value
            elif token.startswith(_RANGE_TAG + "=") and token[len(_RANGE_TAG) + 1:] in _RANGES:
                color_range = _RANGES[token[len(_RANGE_TAG) + 1:]]
            else:
                extra.append(token)
        if width is None or height is None:
            raise InputError(f"{name}: y4m header has no {'W' if width is None else 'H'} tag")
        _check_size(width, height, name)
        if colorspace not in _COLORSPACES:
            raise UnsupportedError(_unsupported_message(name, colorspace))
        if frame_rate is None:
            log.warning("%s: y4m header has no F tag; assuming %s fps", name, DEFAULT_FRAME_RATE)
            frame_rate = DEFAULT_FRAME_RATE
        return cls(width, height, frame_rate, colorspace, color_range, tuple(extra))

    @classmethod
    def for_video(cls, video: VideoFormat, extra_tags: Sequence[str] = ()) -> "Y4mHeader":
        """The header that describes ``video``, plus ``extra_tags`` kept from a y4m source (W, H,
        F, C and XCOLORRANGE among them are ignored: they come from ``video``). Chroma siting
        without a y4m name (bottom left, ...) is written as C420jpeg. A video without a constant
        frame rate gets F = 1/time base: y4m cannot carry timestamps."""
        if video.pix_fmt == "rgb24":
            raise UnsupportedError("y4m cannot carry rgb24 pictures (use NUT, MKV or PNG)")
        if video.pix_fmt == "gray":
            colorspace = "mono"
        elif video.pix_fmt == "yuv420p10le":
            colorspace = "420p10"
        else:
            colorspace = {1: "420mpeg2", 3: "420paldv"}.get(video.color.chroma_location, "420jpeg")
        kept = tuple(t for t in extra_tags
                     if t and t[0] not in "WHFC" and not t.startswith(_RANGE_TAG + "="))
        rate = video.frame_rate if video.frame_rate else 1 / video.time_base
        color_range = video.color.color_range if video.color.color_range in (1, 2) else 0
        return cls(video.width, video.height, Fraction(rate), colorspace, color_range, kept)


def read_header(stream: BinaryIO, name: str = "<y4m>") -> Y4mHeader:
    """Read and parse the header line at the start of ``stream`` (at most MAX_HEADER_BYTES)."""
    line = stream.readline(MAX_HEADER_BYTES + 1)
    if not line:
        raise InputError(f"{name}: empty input")
    if not line.startswith(MAGIC):
        raise InputError(f"{name}: not a y4m stream (no YUV4MPEG2 signature)")
    if not line.endswith(b"\n"):
        if len(line) > MAX_HEADER_BYTES:
            raise InputError(f"{name}: y4m header longer than {MAX_HEADER_BYTES} bytes")
        raise InputError(f"{name}: y4m header is truncated (no end of line)")
    return Y4mHeader.parse(line, name)


class Y4mReader:
    """Frames of a y4m stream, read one at a time (the input is never read whole).

    ``header`` and ``format`` are known once constructed; iterating yields :class:`Frame` objects
    with pts = frame index, time base 1/F, duration 1 and the header's colour tags. The stream is
    not closed by the reader: its owner closes it.
    """

    def __init__(self, stream: BinaryIO, name: str = "<y4m>") -> None:
        self._stream = stream
        self.name = name
        self.header = read_header(stream, name)
        self.format = self.header.video_format(name)
        self._index = 0

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self) -> Iterator[Frame]:
        """The remaining frames, in order; raises InputError on a damaged or truncated frame."""
        header = self.header
        size = header.frame_bytes
        while True:
            line = self._stream.readline(MAX_FRAME_HEADER_BYTES + 1)
            if not line:
                return
            index = self._index
            if not line.endswith(b"\n"):
                if len(line) > MAX_FRAME_HEADER_BYTES:
                    raise InputError(f"{self.name}: frame {index + 1} (pts {index}): FRAME line too long")
                raise InputError(f"{self.name}: frame {index + 1} (pts {index}) is truncated "
                                 f"(the stream ends inside its FRAME line)")
            if not (line.startswith(FRAME_MAGIC) and line[len(FRAME_MAGIC):len(FRAME_MAGIC) + 1] in (b" ", b"\n")):
                raise InputError(f"{self.name}: frame {index + 1} (pts {index}): expected a FRAME "
                                 f"line, found {line[:16]!r}")
            data = _read_exact(self._stream, size)
            if len(data) < size:
                raise InputError(f"{self.name}: frame {index + 1} (pts {index}) is truncated: "
                                 f"{len(data)} of {size} bytes")
            planes = _split_planes(data, header.width, header.height, header.pix_fmt)
            if header.pix_fmt == "yuv420p10le" and max(int(p.max()) for p in planes) > 1023:
                raise InputError(f"{self.name}: frame {index + 1} (pts {index}) has samples above "
                                 f"1023 for a 10-bit stream")
            self._index += 1
            yield Frame(planes, header.pix_fmt, pts=index, time_base=1 / header.frame_rate,
                        color=header.color, duration=1)


class Y4mWriter:
    """Writes a y4m header (at construction) and FRAME records to a binary stream.

    ``extra_tags`` are the tags a y4m source carried (:attr:`Y4mHeader.extra_tags`); they are
    written back. Frames must match ``video`` in size and pixel format. The stream is flushed but
    not closed by :meth:`close`: its owner closes it.
    """

    def __init__(self, stream: BinaryIO, video: VideoFormat, extra_tags: Sequence[str] = (),
                 name: str = "<y4m>") -> None:
        self._stream = stream
        self.name = name
        self.video = video
        self.header = Y4mHeader.for_video(video, extra_tags)
        self._dtype = np.dtype("<u2") if video.pix_fmt == "yuv420p10le" else np.dtype(np.uint8)
        stream.write(self.header.to_bytes())
        self.frames_written = 0

    def write(self, frame: Frame) -> None:
        if not self.video.matches(frame):
            raise InputError(f"{self.name}: frame {frame.width}x{frame.height} {frame.pix_fmt} does not "
                             f"match the stream's {self.video.width}x{self.video.height} {self.video.pix_fmt}")
        self._stream.write(FRAME_MAGIC + b"\n")
        for plane in frame.planes:
            self._stream.write(np.ascontiguousarray(plane, dtype=self._dtype).tobytes())
        self.frames_written += 1

    def close(self) -> None:
        self._stream.flush()


def _frame_bytes(width: int, height: int, pix_fmt: str) -> int:
    luma = width * height
    sample = 2 if pix_fmt == "yuv420p10le" else 1
    if pix_fmt == "gray":
        return luma * sample
    return (luma + 2 * ((width + 1) // 2) * ((height + 1) // 2)) * sample


def _split_planes(data: bytearray, width: int, height: int, pix_fmt: str) -> list[np.ndarray]:
    dtype = np.dtype("<u2") if pix_fmt == "yuv420p10le" else np.dtype(np.uint8)
    samples = np.frombuffer(data, dtype=dtype)
    shapes = [(height, width)]
    if pix_fmt != "gray":
        shapes += [((height + 1) // 2, (width + 1) // 2)] * 2
    planes, start = [], 0
    for rows, cols in shapes:
        plane = samples[start:start + rows * cols].reshape(rows, cols)
        planes.append(plane.astype(np.uint16) if dtype.itemsize == 2 else plane)
        start += rows * cols
    return planes


def _read_exact(stream: BinaryIO, size: int) -> bytearray:
    """Up to ``size`` bytes; fewer only at the end of the stream. Pipes and raw files may return
    short reads, so read until full or EOF. The buffer is writable, so the planes are too."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        chunk = stream.read(size - filled)
        if not chunk:
            break
        view[filled:filled + len(chunk)] = chunk
        filled += len(chunk)
    del view
    if filled < size:
        del buffer[filled:]
    return buffer


def _check_size(width: int, height: int, name: str) -> None:
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE) or width * height > MAX_PIXELS:
        raise InputError(f"{name}: y4m picture size {width}x{height} refused (sides 1..{MAX_SIDE}, "
                         f"at most {MAX_PIXELS} pixels): a damaged header?")


def _parse_int(value: str, what: str, name: str) -> int:
    if not value.isdigit() or len(value) > 9:
        raise InputError(f"{name}: y4m {what} {value!r} is not a number (or absurdly large)")
    return int(value)


def _parse_ratio(value: str, name: str) -> Fraction:
    num, sep, den = value.partition(":")
    if not sep or not num.isdigit() or not den.isdigit() or len(num) > 9 or len(den) > 9 \
            or int(num) == 0 or int(den) == 0:
        raise InputError(f"{name}: y4m frame rate F{value} is not a positive ratio n:d")
    return Fraction(int(num), int(den))


def _unsupported_message(name: str, colorspace: str) -> str:
    ffmpeg_name = _UNSUPPORTED_COLORSPACES.get(colorspace)
    what = f"C{colorspace} ({ffmpeg_name})" if ffmpeg_name else f"C{colorspace}"
    return (f"{name}: y4m colour space {what} is not supported; lotto-media reads 4:2:0 (8 or 10 bit) "
            f"and mono: convert with e.g. ffmpeg -pix_fmt yuv420p")
