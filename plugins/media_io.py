"""Video in and out of lotto-media: files PyAV opens, y4m and NUT pipes, picture sequences.

Reading (:func:`open_video`) gives a :class:`VideoReader`: the stream's :class:`VideoFormat`
(known as soon as it is open: the first frame is decoded eagerly), the source's first audio track
as coded packets (never decoded: they go back into the output unchanged), and the frames in
display order with pts, duration, time base and colour tags. Frames keep their native pixel
format when it is one the codec takes (gray, rgb24, yuv420p, yuv420p10le) or a lossless repacking
of one (yuvj420p is yuv420p tagged full range, gbrp/bgr0/... are rgb24, nv12 is yuv420p, ...);
anything else is converted with a warning that names the conversion, because a picture never
changes silently.

Writing (:func:`open_video_writer`) goes to y4m (our own writer, :mod:`.y4m`, which keeps chroma
siting and the tags of a y4m source), NUT (rawvideo: any of the four formats, exact pts), MKV
(FFV1, lossless; pts kept, so VFR survives), MP4 (libx264 crf 18, delivery) or PNG pictures.
Outputs are written under a temporary name beside the target and renamed when closed, so an
error never leaves a partial file under the final name.

What each container keeps, and how:

- Colour tags reach MKV/MP4 through the stream's codec context, set before encoding. PyAV 18
  exposes no chroma location on frames or codec contexts, so only y4m carries it natively.
- MKV and NUT files written here carry ``LOTTO_*`` stream tags (exact time base, frame rate or
  ``vfr``, colour tags with chroma location, rotation) that this reader puts back; other software
  ignores them. Matroska rounds timestamps to milliseconds and NUT rescales its time base: with
  the tag, pts come back exactly in the original time base.
- Rotation is written as display-matrix side data (``VideoStream.set_display_rotation``, PyAV 18)
  in MKV and MP4; NUT has no display matrix (only the tag), y4m and PNG none at all (a warning).
- Audio packets are muxed byte for byte in MKV/MP4/NUT. PyAV 18 can describe an output audio stream
  only through an encoder's codec context, so the writer opens the codec's encoder with the
  source's rate and layout, then replaces its extradata with the source's: a codec this FFmpeg
  build cannot encode (e.g. a build without an MP3 encoder) cannot be carried, and that is an
  UnsupportedError. y4m and PNG cannot carry audio: it is dropped with one warning.
"""

from __future__ import annotations

import glob
import io
import itertools
import logging
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import av
import numpy as np

from lotto_media.audio import AudioPacket, AudioParams
from lotto_media.errors import InputError, LottoError, UnsupportedError
from lotto_media.frame import PIXEL_FORMATS, ColorTags, Frame, VideoFormat

from . import y4m
from .anchors import downsample_chroma, upsample_chroma
from .image_io import (_TEXT_ART_CODECS, _palette_has_transparency, _round_16_to_8, check_size, encode_png_array,
                       encode_png_bytes)

log = logging.getLogger(__name__)

Source = str | os.PathLike[str] | BinaryIO
Target = str | os.PathLike[str] | BinaryIO

#: what a writer can produce, by ``kind``
KINDS = ("y4m", "nut", "mkv", "mp4", "png")
_SUFFIX_KINDS = {".y4m": "y4m", ".nut": "nut", ".mkv": "mkv", ".mp4": "mp4", ".png": "png"}
_AV_FORMATS = {"nut": "nut", "mkv": "matroska", "mp4": "mp4"}
_Y4M_PIX_FMTS = ("gray", "yuv420p", "yuv420p10le")
#: picture files a folder source is made of (anything else in the folder is ignored)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm",
                            ".pgm", ".pnm", ".pam", ".gif", ".dpx", ".exr", ".tga", ".jp2", ".jxl"})
#: frame rate of picture sequences (what ffmpeg's image2 demuxer assumes)
PICTURE_RATE = Fraction(25)
_NUT_MAGIC = b"nut/multimedia container\0"
_SNIFF_BYTES = len(_NUT_MAGIC)
_PATTERN = re.compile(r"%0?\d*d")
_GLOB_CHARS = re.compile(r"[*?\[]")

# Stream tags lotto-media writes in MKV and NUT and reads back (see the module docstring).
_TAG_TIME_BASE = "LOTTO_TIME_BASE"
_TAG_FRAME_RATE = "LOTTO_FRAME_RATE"
_TAG_COLOR = "LOTTO_COLOR"
_TAG_ROTATION = "LOTTO_ROTATION"
_COLOR_FIELDS = ("color_range", "matrix", "primaries", "transfer", "chroma_location")
#: the "unspecified" value of each ColorTags field (H.273 uses 2, FFmpeg's enums 0)
_UNSPECIFIED = ColorTags()

# H.273 matrix code point -> (Kr, Kb, name)
_MATRICES: dict[int, tuple[float, float, str]] = {
    1: (0.2126, 0.0722, "BT.709"),
    5: (0.299, 0.114, "BT.601"),
    6: (0.299, 0.114, "BT.601"),
    9: (0.2627, 0.0593, "BT.2020"),
    10: (0.2627, 0.0593, "BT.2020"),
}


# ============================================================================ frames <-> PyAV


def from_av_frame(vf: av.VideoFrame, *, name: str = "<frame>") -> Frame:
    """A decoded PyAV frame as a :class:`Frame`: exact for gray, rgb24, yuv420p and yuv420p10le
    (odd sizes included; rows are copied line-size aware), lossless for repackings of them, and
    converted with a warning for anything else (see the module docstring). Keeps pts, time base,
    duration and the colour tags PyAV exposes."""
    return _convert(vf, name, log.warning)


def to_av_frame(frame: Frame) -> av.VideoFrame:
    """``frame`` as a PyAV frame in the same pixel format (rgb24 interleaved, as FFmpeg stores it),
    with pts, time base, duration and colour range/matrix/primaries/transfer. Works for odd sizes
    and 10-bit, which ``VideoFrame.from_ndarray`` refuses for 4:2:0."""
    vf = av.VideoFrame(frame.width, frame.height, frame.pix_fmt)
    itemsize = 2 if frame.pix_fmt == "yuv420p10le" else 1
    if frame.pix_fmt == "rgb24":
        _plane_view(vf.planes[0], 1, 3)[...] = frame.to_array()
    else:
        for plane, array in zip(vf.planes, frame.planes):
            _plane_view(plane, itemsize, 1)[...] = array
    if frame.pts is not None:
        vf.pts = frame.pts
    if frame.time_base is not None:
        vf.time_base = frame.time_base
    if frame.duration:
        vf.duration = frame.duration
    color = frame.color
    vf.color_range, vf.colorspace = color.color_range, color.matrix
    vf.color_primaries, vf.color_trc = color.primaries, color.transfer
    return vf


def _plane_view(plane: av.video.plane.VideoPlane, itemsize: int, channels: int) -> np.ndarray:
    """A writable (height, width[, channels]) numpy view of a PyAV plane, skipping the padding at
    the end of each row (rows are ``line_size`` bytes; 10-bit samples are little-endian)."""
    dtype = np.dtype("<u2") if itemsize == 2 else np.dtype(np.uint8)
    rows = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // itemsize)
    view = rows[:, : plane.width * channels]
    return view.reshape(plane.height, plane.width, channels) if channels > 1 else view


def _planes_of(vf: av.VideoFrame, pix_fmt: str) -> list[np.ndarray]:
    """Copies of the planes of ``vf``, which is in ``pix_fmt`` (or its full-range twin)."""
    if pix_fmt == "rgb24":
        packed = _plane_view(vf.planes[0], 1, 3)
        return [np.ascontiguousarray(packed[:, :, c]) for c in range(3)]
    itemsize = 2 if pix_fmt == "yuv420p10le" else 1
    dtype = np.uint16 if itemsize == 2 else np.uint8
    return [_plane_view(p, itemsize, 1).astype(dtype) for p in vf.planes[: PIXEL_FORMATS[pix_fmt][0]]]


def _plan_conversion(fmt: av.VideoFormat) -> tuple[str, str, str | None]:
    """For a pixel format the codec does not take: (our pix_fmt, the format swscale converts to,
    what is lost, or None for a lossless repacking)."""
    colour = [c for c in fmt.components if not c.is_alpha]
    alpha = "alpha dropped" if len(colour) < len(fmt.components) else None
    bits = max(c.bits for c in colour)
    rounded = f"{bits}-bit samples rounded to 8 bits"
    if fmt.has_palette:
        return "rgb24", "rgb24", None  # the caller checks the palette for transparency
    if fmt.is_bayer:
        return "rgb24", "rgb24", "Bayer pattern demosaiced by swscale"
    if fmt.is_rgb:
        if bits <= 8:
            return "rgb24", "rgb24", alpha
        return "rgb24", "rgb48le", ", ".join(filter(None, [rounded, alpha]))
    if len(colour) == 1:
        if bits <= 8:
            return "gray", "gray", alpha
        return "gray", "gray16le", ", ".join(filter(None, [rounded, alpha]))
    if len(colour) == 3 and not fmt.name.startswith("xyz"):  # YUV (4:4:4 chroma has no is_chroma flag)
        target = "yuv420p" if bits <= 8 else "yuv420p10le"
        is_420 = (colour[1].width, colour[1].height) == ((fmt.width + 1) // 2, (fmt.height + 1) // 2)
        lost = []
        if not is_420:
            lost.append("chroma subsampled to 4:2:0 by swscale")
        if bits not in (8, 10):
            lost.append(f"{bits}-bit samples {'rounded to 10' if bits > 10 else 'scaled to 10'} bits")
        if alpha:
            lost.append(alpha)
        return target, target, ", ".join(lost) or None
    return "rgb24", "rgb24", "converted to rgb24 by swscale"


def _convert(vf: av.VideoFrame, name: str, warn: Callable[[str], None]) -> Frame:
    fmt = vf.format
    color = _color_of(vf)
    if fmt.name in PIXEL_FORMATS:
        pix_fmt, planes = fmt.name, _planes_of(vf, fmt.name)
    elif fmt.name == "yuvj420p":
        # The same samples as yuv420p, full range: retag, never rescale.
        pix_fmt, planes = "yuv420p", _planes_of(vf, "yuv420p")
        color = ColorTags(2, color.matrix, color.primaries, color.transfer, color.chroma_location)
    else:
        pix_fmt, via, lost = _plan_conversion(fmt)
        if fmt.has_palette and _palette_has_transparency(vf):
            lost = "transparency dropped"
        if lost:
            warn(f"{name}: {fmt.name} converted to {pix_fmt} ({lost})")
        full = fmt.name.startswith("yuvj") or vf.color_range == 2
        # The same range on both sides of YUV -> YUV and gray -> gray: swscale changes the layout,
        # never the levels. RGB (and palettes) are full range.
        level = 2 if full else 1
        src_range = 2 if fmt.is_rgb or fmt.has_palette else level
        dst_range = 2 if pix_fmt == "rgb24" else level
        try:
            converted = vf.reformat(format=via, src_color_range=src_range, dst_color_range=dst_range)
        except (ValueError, av.FFmpegError) as exc:
            raise InputError(f"{name}: cannot convert {fmt.name} pixels ({exc})") from exc
        if via in ("rgb48le", "gray16le"):
            array = _round_16_to_8(converted.to_ndarray())
            planes = [array] if array.ndim == 2 else [np.ascontiguousarray(array[:, :, c]) for c in range(3)]
        else:
            planes = _planes_of(converted, pix_fmt)
        if pix_fmt in ("yuv420p", "yuv420p10le"):
            color = ColorTags(2 if full else color.color_range, color.matrix, color.primaries,
                              color.transfer, color.chroma_location)
        elif pix_fmt == "rgb24" and not (fmt.is_rgb or fmt.has_palette):
            color = ColorTags(2, 0, color.primaries, color.transfer)  # RGB made from YUV or XYZ
    return Frame(planes, pix_fmt, pts=vf.pts, time_base=vf.time_base, color=color,
                 duration=vf.duration or None)


def _color_of(vf: av.VideoFrame) -> ColorTags:
    return ColorTags(color_range=int(vf.color_range), matrix=int(vf.colorspace),
                     primaries=int(vf.color_primaries), transfer=int(vf.color_trc))


class _WarnOnce:
    """Logs each distinct warning once per reader or writer, not once per frame."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, message: str) -> None:
        if message not in self._seen:
            self._seen.add(message)
            log.warning("%s", message)


# ============================================================================ reading


class VideoReader:
    """One open video source. ``format`` describes every frame; ``audio`` is the source's first
    audio track (None without one); ``y4m_tags`` the extra tags of a y4m source (pass them to
    :func:`open_video_writer` to write them back). Frames come from :meth:`frames` (one pass);
    the audio packets demuxed while reading them from :meth:`take_audio_packets`.
    Use as a context manager, or call :meth:`close`."""

    def __init__(self, name: str, video: VideoFormat, frames: Iterator[Frame], resources: ExitStack,
                 *, audio: AudioParams | None = None, audio_buffer: list[AudioPacket] | None = None,
                 y4m_tags: tuple[str, ...] = ()) -> None:
        self.name = name
        self.format = video
        self.audio = audio
        self.y4m_tags = y4m_tags
        self._frames = frames
        self._audio_buffer = audio_buffer if audio_buffer is not None else []
        self._resources = resources

    def frames(self) -> Iterator[Frame]:
        """The frames not read yet, in display order (a second call continues where the first
        stopped). Damaged input raises InputError naming the source."""
        return self._frames

    __iter__ = frames

    def take_audio_packets(self) -> list[AudioPacket]:
        """The audio packets demuxed so far and not taken yet, in stream order; once
        :meth:`frames` is exhausted, all the rest."""
        packets = list(self._audio_buffer)
        self._audio_buffer.clear()
        return packets

    def close(self) -> None:
        self._resources.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_video(source: Source, *, name: str | None = None) -> VideoReader:
    """Open a video (see the module docstring). ``source`` is a path (any file PyAV opens; y4m
    files go through our own reader so their tags survive), a picture pattern (``dir/%04d.png``),
    a folder of pictures (sorted by name), a glob (``dir/*.png``), ``"-"`` for stdin (y4m or NUT)
    or a readable binary file object. ``name`` is what messages call it. Problems are
    InputError with a one-line message naming the source."""
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text == "-":
            return _open_stream(sys.stdin.buffer, name or "<stdin>", pipe_only=True)
        return _open_path(text, name or text)
    return _open_stream(source, name or str(getattr(source, "name", "<stream>")), pipe_only=False)


def _open_path(text: str, name: str) -> VideoReader:
    path = Path(text)
    if path.is_dir():
        pictures = sorted(p for p in path.iterdir()
                          if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
        if not pictures:
            raise InputError(f"{name}: folder holds no pictures ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return _open_pictures(pictures, name)
    if path.exists():
        try:
            size = path.stat().st_size
            with path.open("rb") as probe:
                head = probe.read(_SNIFF_BYTES)
        except OSError as exc:
            raise InputError(f"{name}: {exc.strerror or exc}") from exc
        if size == 0:
            raise InputError(f"{name}: empty file")
        if head.startswith(y4m.MAGIC):
            stack = ExitStack()
            stream = stack.enter_context(path.open("rb"))
            return _with_cleanup(stack, lambda: _open_y4m(stream, name, stack))
        return _open_container(text, name, None)
    if _GLOB_CHARS.search(text):
        matches = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
        if not matches:
            raise InputError(f"{name}: no file matches")
        return _open_pictures(matches, name)
    if _PATTERN.search(text):
        return _open_container(text, name, None)
    raise InputError(f"{name}: no such file")


def _open_stream(stream: BinaryIO, name: str, *, pipe_only: bool) -> VideoReader:
    """A binary stream: sniffed without losing bytes (seek back, or replay what was read)."""
    head, stream = _sniff(stream)
    if not head:
        raise InputError(f"{name}: empty input")
    stack = ExitStack()
    if head.startswith(y4m.MAGIC):
        return _with_cleanup(stack, lambda: _open_y4m(stream, name, stack))
    if head.startswith(_NUT_MAGIC):
        return _open_container(stream, name, "nut")
    if pipe_only:
        raise InputError(f"{name}: not a y4m or NUT stream (pipe ffmpeg's -f yuv4mpegpipe or -f nut)")
    return _open_container(stream, name, None)


def _sniff(stream: BinaryIO) -> tuple[bytes, BinaryIO]:
    """The first bytes of ``stream`` and a stream that still starts with them."""
    seekable = getattr(stream, "seekable", None)
    if seekable is not None and seekable():
        start = stream.tell()
        head = stream.read(_SNIFF_BYTES)
        stream.seek(start)
        return head, stream
    head = b""
    while len(head) < _SNIFF_BYTES:
        chunk = stream.read(_SNIFF_BYTES - len(head))
        if not chunk:
            break
        head += chunk
    return head, io.BufferedReader(_Replay(head, stream))


class _Replay(io.RawIOBase):
    """A non-seekable stream whose first bytes were read for sniffing: gives them back first."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _with_cleanup(stack: ExitStack, build: Callable[[], VideoReader]) -> VideoReader:
    """Run ``build``; close what ``stack`` holds if it fails."""
    try:
        return build()
    except BaseException:
        stack.close()
        raise


def _open_y4m(stream: BinaryIO, name: str, stack: ExitStack) -> VideoReader:
    reader = y4m.Y4mReader(stream, name)
    return VideoReader(name, reader.format, reader.frames(), stack, y4m_tags=reader.header.extra_tags)


def _open_container(source: str | BinaryIO, name: str, format_name: str | None) -> VideoReader:
    try:
        container = av.open(source, mode="r", format=format_name)
    except av.FFmpegError as exc:
        if isinstance(exc, FileNotFoundError):
            raise InputError(f"{name}: no such file") from exc
        raise InputError(f"{name}: not a video or picture FFmpeg can read ({_reason(exc)})") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{name}: cannot open ({exc})") from exc
    stack = ExitStack()
    stack.callback(container.close)
    return _with_cleanup(stack, lambda: _container_reader(container, name, stack))


def _container_reader(container: av.container.InputContainer, name: str, stack: ExitStack) -> VideoReader:
    if not container.streams.video:
        raise InputError(f"{name}: has no video stream")
    video = container.streams.video[0]
    if video.codec_context is None:
        raise InputError(f"{name}: this FFmpeg build has no decoder for its video stream")
    if video.codec_context.name in _TEXT_ART_CODECS:
        raise InputError(f"{name}: a text file, not a video or picture (FFmpeg would draw its characters "
                         f"as {video.codec_context.name} art)")
    check_size(video.codec_context.width, video.codec_context.height, name)  # before any frame is decoded
    video.codec_context.thread_type = "AUTO"  # frame threads too: the order of frames is unchanged
    audio_stream = container.streams.audio[0] if container.streams.audio else None
    audio = _audio_params(audio_stream, name) if audio_stream is not None else None
    if audio is None:
        audio_stream = None
    tags = {k.upper(): v for k, v in video.metadata.items()}
    timing = _Timing(video.time_base or Fraction(1, 25), _parse_fraction(tags.get(_TAG_TIME_BASE)))
    color_tag = _parse_color(tags.get(_TAG_COLOR))
    buffer: list[AudioPacket] = []
    warn = _WarnOnce()
    first_frames: list[tuple[int, Frame]] = []  # (display rotation, frame) of the first frame

    def decoded() -> Iterator[Frame]:
        streams = [video] + ([audio_stream] if audio_stream is not None else [])
        index = 0
        try:
            for packet in container.demux(*streams):
                if packet.stream.type == "audio":
                    if packet.size:
                        buffer.append(AudioPacket(bytes(packet), packet.pts, packet.dts,
                                                  packet.duration or 0, packet.is_keyframe))
                    continue
                for vf in packet.decode():
                    check_size(vf.width, vf.height, name)
                    frame = timing.apply(_convert(vf, name, warn))
                    if color_tag is not None:
                        frame.color = _fill_unspecified(frame.color, color_tag)
                    if not first_frames:
                        first_frames.append((int(round(vf.rotation)), frame))
                    elif not _same_layout(frame, first_frames[0][1]):
                        first = first_frames[0][1]
                        raise InputError(f"{name}: frame {index + 1} is {frame.width}x{frame.height} "
                                         f"{frame.pix_fmt}, the stream started as {first.width}x"
                                         f"{first.height} {first.pix_fmt} (size changes are not supported)")
                    yield frame
                    index += 1
        except av.FFmpegError as exc:
            raise InputError(f"{name}: cannot decode frame {index + 1} ({_reason(exc)})") from exc

    frames = decoded()
    first = next(frames, None)
    if first is None:
        raise InputError(f"{name}: no decodable video frame")
    rotation = first_frames[0][0]
    if rotation == 0 and tags.get(_TAG_ROTATION, "").lstrip("-").isdigit():
        rotation = int(tags[_TAG_ROTATION])
    rate_tag = tags.get(_TAG_FRAME_RATE)
    frame_rate = None if rate_tag == "vfr" else _parse_fraction(rate_tag) or _positive(video.average_rate)
    video_format = VideoFormat(first.width, first.height, first.pix_fmt, time_base=timing.time_base,
                               frame_rate=frame_rate, color=first.color, rotation=rotation, source=name)
    return VideoReader(name, video_format, itertools.chain([first], frames), stack, audio=audio,
                       audio_buffer=buffer)


class _Timing:
    """Puts frame times back in the time base of the file's writer. MKV rounds times to 1/1000 s
    and NUT rescales its time base, so files written here carry the original time base in a tag;
    pts and durations are rescaled back to it, which is exact because the muxer rounded to the
    nearest tick and the tag is only used when an original tick is no smaller than the
    container's. Frames without pts get the next expected one."""

    def __init__(self, stream_time_base: Fraction, original: Fraction | None) -> None:
        self._stream = stream_time_base
        self.time_base = original if original is not None and original >= stream_time_base else stream_time_base
        self._next = 0

    def apply(self, frame: Frame) -> Frame:
        source = frame.time_base or self._stream
        if frame.pts is not None:
            frame.pts = _rescale(frame.pts, source, self.time_base)
        else:
            frame.pts = self._next
        if frame.duration:
            frame.duration = _rescale(frame.duration, source, self.time_base) or None
        frame.time_base = self.time_base
        self._next = frame.pts + (frame.duration or 1)
        return frame


def _same_layout(a: Frame, b: Frame) -> bool:
    return (a.width, a.height, a.pix_fmt) == (b.width, b.height, b.pix_fmt)


def _rescale(value: int, source: Fraction, target: Fraction) -> int:
    return value if source == target else round(value * source / target)


def _audio_params(stream: av.audio.stream.AudioStream, name: str) -> AudioParams | None:
    ctx = stream.codec_context
    if ctx is None:
        log.warning("%s: audio stream %d has no decoder in this FFmpeg build; it is ignored", name, stream.index)
        return None
    return AudioParams(
        codec=ctx.codec.canonical_name, sample_rate=int(ctx.sample_rate), channels=int(ctx.channels),
        layout=ctx.layout.name, sample_format=ctx.format.name if ctx.format is not None else "",
        time_base=stream.time_base or Fraction(1, int(ctx.sample_rate) or 1),
        bit_rate=int(ctx.bit_rate or 0), frame_size=int(ctx.frame_size or 0),
        extradata=bytes(ctx.extradata or b""))


def _open_pictures(paths: Sequence[Path], name: str) -> VideoReader:
    """A folder or glob of pictures: one frame per file, pts = index at 25 fps (as image2 does)."""
    warn = _WarnOnce()
    time_base = 1 / PICTURE_RATE

    def decode(index: int, path: Path) -> Frame:
        try:
            if path.stat().st_size == 0:
                raise InputError(f"{path}: empty file")
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise InputError(f"{path}: contains no picture")
                context = container.streams.video[0].codec_context
                check_size(context.width, context.height, str(path))
                vf = next(container.decode(video=0), None)
        except av.FFmpegError as exc:
            raise InputError(f"{path}: not a readable picture ({_reason(exc)})") from exc
        if vf is None:
            raise InputError(f"{path}: contains no decodable picture")
        frame = _convert(vf, str(path), warn)
        frame.pts, frame.time_base, frame.duration = index, time_base, 1
        return frame

    first = decode(0, paths[0])
    video = VideoFormat(first.width, first.height, first.pix_fmt, time_base=time_base,
                        frame_rate=PICTURE_RATE, color=first.color, source=name)

    def frames() -> Iterator[Frame]:
        yield first
        for index, path in enumerate(paths[1:], start=1):
            frame = decode(index, path)
            if not video.matches(frame):
                raise InputError(f"{path}: {frame.width}x{frame.height} {frame.pix_fmt} differs from the "
                                 f"first picture's {video.width}x{video.height} {video.pix_fmt}")
            yield frame

    return VideoReader(name, video, frames(), ExitStack())


# ============================================================================ writing


class VideoWriter:
    """Writes frames (and audio packets) to one target; see :func:`open_video_writer`.

    Frames must match ``video`` in size and pixel format; their pts (in their own time base,
    rescaled to ``video.time_base``) must increase; a frame without pts follows the previous one.
    :meth:`close` finishes the file and gives it its final name; leaving a ``with`` block by an
    exception calls :meth:`abort` instead, which removes everything written.
    """

    def __init__(self, kind: str, name: str, video: VideoFormat, audio: AudioParams | None,
                 outputs: "_Outputs") -> None:
        self.kind = kind
        self.name = name
        self.video = video
        self.audio = audio
        self._outputs = outputs
        self._warn = _WarnOnce()
        self._last_pts: int | None = None
        self._next_pts = 0
        self._closed = False

    # --- public
    def write(self, frame: Frame) -> None:
        self._check_open()
        if not self.video.matches(frame):
            raise InputError(f"{self.name}: frame {frame.width}x{frame.height} {frame.pix_fmt} does not match "
                             f"the stream's {self.video.width}x{self.video.height} {self.video.pix_fmt}")
        self._write(frame, self._pts_of(frame))

    def write_audio(self, packet: AudioPacket) -> None:
        self._check_open()
        self._write_audio(packet)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self.name}: writer is closed")

    def close(self) -> None:
        """Finish writing and publish the output under its final name."""
        if self._closed:
            return
        self._closed = True
        try:
            self._finish()
        except BaseException:
            self._outputs.discard()
            raise
        self._outputs.commit()

    def abort(self) -> None:
        """Stop and remove everything written (nothing appears under the final name)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._release()
        finally:
            self._outputs.discard()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # --- for the kinds
    def _write(self, frame: Frame, pts: int) -> None:
        raise NotImplementedError

    def _write_audio(self, packet: AudioPacket) -> None:
        self._warn_audio_dropped()

    def _warn_audio_dropped(self) -> None:
        self._warn(f"{self.name}: {self.kind} cannot carry audio; the audio track is dropped")

    def _finish(self) -> None:
        """Flush and close the file(s); errors here discard the output."""

    def _release(self) -> None:
        """Close what is open without finishing it (on abort)."""

    def _pts_of(self, frame: Frame) -> int:
        if frame.pts is None:
            pts = self._next_pts
        else:
            pts = _rescale(frame.pts, frame.time_base or self.video.time_base, self.video.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            raise InputError(f"{self.name}: frame pts {pts} does not follow {self._last_pts} "
                             f"(timestamps must increase)")
        duration = _rescale(frame.duration, frame.time_base or self.video.time_base, self.video.time_base) \
            if frame.duration else 1
        self._last_pts, self._next_pts = pts, pts + max(duration, 1)
        return pts


def open_video_writer(target: Target, video: VideoFormat, audio: AudioParams | None = None, *,
                      kind: str | None = None, overwrite: bool = False,
                      y4m_tags: Sequence[str] = ()) -> VideoWriter:
    """A writer for ``target``: a path, ``"-"`` (stdout) or a writable binary file object.

    ``kind`` (one of :data:`KINDS`) defaults to the extension: ``.y4m``, ``.nut``, ``.mkv``,
    ``.mp4``, ``.png``; a name with a ``%d``/``%04d`` pattern ending in ``.png`` is a PNG sequence
    (numbered from 1), a plain ``.png`` holds one picture. For ``"-"`` and file objects the default
    is y4m when the pixel format fits it, else NUT. An existing target is refused unless
    ``overwrite``. ``audio`` declares the audio track that :meth:`VideoWriter.write_audio` fills;
    ``y4m_tags`` are a y4m source's extra tags (:attr:`VideoReader.y4m_tags`) to write back.
    """
    if isinstance(target, (str, os.PathLike)) and os.fspath(target) != "-":
        text = os.fspath(target)
        kind = kind or _kind_of(text)
        if kind not in KINDS:
            raise UnsupportedError(f"{text}: unknown output kind {kind!r} (one of {', '.join(KINDS)})")
        if kind == "png":
            return _PictureWriter(text, video, audio, _Outputs(overwrite))
        outputs = _Outputs(overwrite)
        part = outputs.reserve(Path(text))
        return _with_discard(outputs, lambda: _file_writer(kind, part, text, video, audio, outputs, y4m_tags))
    if isinstance(target, (str, os.PathLike)):
        stream: BinaryIO = sys.stdout.buffer
        name = "<stdout>"
        if stream.isatty():
            raise LottoError("refusing to write binary video to a terminal (redirect stdout)")
    else:
        stream, name = target, str(getattr(target, "name", "<stream>"))
    kind = kind or ("y4m" if video.pix_fmt in _Y4M_PIX_FMTS else "nut")
    if kind not in ("y4m", "nut", "mkv", "mp4"):
        raise UnsupportedError(f"{name}: cannot write {kind!r} to a stream (y4m, nut, mkv or mp4)")
    return _file_writer(kind, stream, name, video, audio, _Outputs(overwrite), y4m_tags)


def _kind_of(text: str) -> str:
    suffix = Path(text).suffix.lower()
    if _PATTERN.search(Path(text).name) and suffix != ".png":
        raise UnsupportedError(f"{text}: picture sequences are written as PNG (name them like out_%04d.png)")
    if suffix not in _SUFFIX_KINDS:
        raise UnsupportedError(f"{text}: unknown output extension {suffix or '(none)'!r} "
                               f"(.y4m, .nut, .mkv, .mp4 or a .png pattern)")
    return _SUFFIX_KINDS[suffix]


def _file_writer(kind: str, output: Path | BinaryIO, name: str, video: VideoFormat,
                 audio: AudioParams | None, outputs: "_Outputs", y4m_tags: Sequence[str]) -> VideoWriter:
    if kind == "y4m":
        return _Y4mVideoWriter(output, name, video, audio, outputs, y4m_tags)
    return _ContainerWriter(kind, output, name, video, audio, outputs)


def _with_discard(outputs: "_Outputs", build: Callable[[], VideoWriter]) -> VideoWriter:
    try:
        return build()
    except BaseException:
        outputs.discard()
        raise


class _Outputs:
    """Files written under temporary names (``.name.<random>.part`` beside the final one) and
    renamed when the writer closes; discarded on failure."""

    def __init__(self, overwrite: bool) -> None:
        self.overwrite = overwrite
        self._pending: list[tuple[Path, Path]] = []

    def reserve(self, final: Path) -> Path:
        """Create an empty temporary file for ``final`` and return its path."""
        if final.exists() and not self.overwrite:
            raise LottoError(f"{final}: already exists (allow overwriting to replace it)")
        if final.is_dir():
            raise LottoError(f"{final}: is a directory")
        for _ in range(8):
            part = final.with_name(f".{final.name}.{secrets.token_hex(4)}.part")
            try:
                part.open("xb").close()
            except FileExistsError:
                continue
            except OSError as exc:
                raise LottoError(f"{final}: cannot write ({exc.strerror or exc})") from exc
            self._pending.append((part, final))
            return part
        raise LottoError(f"{final}: cannot create a temporary file beside it")

    def commit(self) -> None:
        pending, self._pending = self._pending, []
        try:
            for part, final in pending:
                if final.exists() and not self.overwrite:
                    raise LottoError(f"{final}: appeared while writing; not replaced")
                os.replace(part, final)
        finally:
            for part, _ in pending:
                part.unlink(missing_ok=True)

    def discard(self) -> None:
        pending, self._pending = self._pending, []
        for part, _ in pending:
            part.unlink(missing_ok=True)


class _Y4mVideoWriter(VideoWriter):
    def __init__(self, output: Path | BinaryIO, name: str, video: VideoFormat, audio: AudioParams | None,
                 outputs: _Outputs, y4m_tags: Sequence[str]) -> None:
        super().__init__("y4m", name, video, audio, outputs)
        if video.pix_fmt not in _Y4M_PIX_FMTS:
            raise UnsupportedError(f"{name}: y4m cannot carry {video.pix_fmt} (write .nut, .mkv or .png)")
        if video.frame_rate is None:
            self._warn(f"{name}: y4m has a constant frame rate only: timestamps are dropped "
                       f"(F = 1/time base = {1 / video.time_base})")
        if video.rotation:
            self._warn(f"{name}: y4m cannot carry the rotation ({video.rotation} degrees); it is dropped")
        if audio is not None:
            self._warn_audio_dropped()
        self._file: BinaryIO | None = output.open("wb") if isinstance(output, Path) else None
        try:
            self._y4m = y4m.Y4mWriter(self._file or output, video, y4m_tags, name)  # type: ignore[arg-type]
        except BaseException:
            self._release()
            raise

    def _write(self, frame: Frame, pts: int) -> None:
        self._y4m.write(frame)

    def _finish(self) -> None:
        self._y4m.close()
        if self._file is not None:
            self._file.close()

    def _release(self) -> None:
        if self._file is not None:
            self._file.close()


class _ContainerWriter(VideoWriter):
    """NUT (rawvideo), MKV (FFV1) and MP4 (libx264) through PyAV."""

    def __init__(self, kind: str, output: Path | BinaryIO, name: str, video: VideoFormat,
                 audio: AudioParams | None, outputs: _Outputs) -> None:
        super().__init__(kind, name, video, audio, outputs)
        codec, pix_fmt, color, self._prepare = self._plan(kind, video)
        try:
            self._container = av.open(str(output) if isinstance(output, Path) else output, "w",
                                      format=_AV_FORMATS[kind])
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise LottoError(f"{name}: cannot write ({exc})") from exc
        try:
            self._stream = self._add_video_stream(codec, pix_fmt, color)
            self._audio_stream = _add_audio_stream(self._container, audio, name) if audio is not None else None
        except BaseException:
            self._container.close()
            raise
        self._durations: dict[int, int] = {}

    def _plan(self, kind: str, video: VideoFormat) -> tuple[str, str, ColorTags, Callable[[Frame], av.VideoFrame]]:
        """(codec, coded pixel format, colour tags of the coded stream, Frame -> PyAV frame)."""
        fmt = video.pix_fmt
        if kind == "nut":
            return "rawvideo", fmt, video.color, to_av_frame
        if kind == "mkv":
            if fmt == "rgb24":  # FFV1 has no 8-bit planar RGB; bgr0 is the same samples repacked
                return "ffv1", "bgr0", video.color, lambda f: to_av_frame(f).reformat(format="bgr0")
            return "ffv1", fmt, video.color, to_av_frame
        if video.width % 2 or video.height % 2:
            raise UnsupportedError(f"{self.name}: libx264 needs an even width and height for 4:2:0, "
                                   f"got {video.width}x{video.height} (write .mkv or .nut, or crop)")
        if fmt in ("yuv420p", "yuv420p10le"):
            return "libx264", fmt, video.color, to_av_frame
        if fmt == "gray":
            self._warn(f"{self.name}: gray written as yuv420p with neutral chroma (H.264 players expect 4:2:0)")
            return "libx264", "yuv420p", video.color, _gray_to_yuv420
        kr, kb, matrix_name = _matrix_for(ColorTags(matrix=2), video.height)
        self._warn(f"{self.name}: rgb24 converted to yuv420p for H.264 ({matrix_name} matrix, limited "
                   f"range, chroma 2x2 averaged)")
        matrix = 1 if matrix_name == "BT.709" else 6
        color = ColorTags(1, matrix, video.color.primaries, video.color.transfer)
        return "libx264", "yuv420p", color, lambda f: to_av_frame(_rgb_to_yuv420(f, kr, kb, color))

    def _add_video_stream(self, codec: str, pix_fmt: str, color: ColorTags) -> av.video.stream.VideoStream:
        video = self.video
        # Without a constant rate, the time base's tick is the nominal rate (encoders and muxers
        # want one; the pts carry the real timing).
        tick_rate = 1 / video.time_base
        rate = video.frame_rate or (tick_rate if tick_rate <= 1000 else None)
        stream = self._container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, pix_fmt
        stream.time_base = video.time_base
        ctx = stream.codec_context
        ctx.time_base = video.time_base
        ctx.color_range, ctx.colorspace = color.color_range, color.matrix
        ctx.color_primaries, ctx.color_trc = color.primaries, color.transfer
        if codec == "libx264":
            ctx.options = {"crf": "18"}
        elif codec == "ffv1":
            ctx.options = _ffv1_options(video.width, video.height, pix_fmt, video.time_base)
        if video.rotation:
            if self.kind == "nut":
                self._warn(f"{self.name}: NUT has no display matrix; the rotation ({video.rotation} degrees) "
                           f"is kept only in a tag lotto-media reads")
            else:
                stream.set_display_rotation(video.rotation)
        if self.kind in ("nut", "mkv"):
            stream.metadata[_TAG_TIME_BASE] = str(video.time_base)
            stream.metadata[_TAG_FRAME_RATE] = str(video.frame_rate) if video.frame_rate else "vfr"
            stream.metadata[_TAG_COLOR] = " ".join(f"{f}={getattr(video.color, f)}" for f in _COLOR_FIELDS)
            if video.rotation:
                stream.metadata[_TAG_ROTATION] = str(video.rotation)
        return stream

    def _write(self, frame: Frame, pts: int) -> None:
        vf = self._prepare(frame)
        vf.pts, vf.time_base = pts, self.video.time_base
        duration = self._next_pts - pts
        self._durations[pts] = duration
        try:
            self._mux_video(self._stream.encode(vf))
        except av.FFmpegError as exc:
            raise LottoError(f"{self.name}: cannot encode frame at pts {pts} ({_reason(exc)})") from exc

    def _mux_video(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            duration = self._durations.pop(packet.pts, 0) if packet.pts is not None else 0
            if not packet.duration and duration:
                packet.duration = duration
            self._container.mux(packet)

    def _write_audio(self, packet: AudioPacket) -> None:
        if self._audio_stream is None or self.audio is None:
            raise ValueError(f"{self.name}: no audio track declared (pass audio= to open_video_writer)")
        out = av.Packet(packet.data)
        out.pts, out.dts = packet.pts, packet.dts
        out.duration = packet.duration
        out.time_base = self.audio.time_base
        out.is_keyframe = packet.keyframe
        out.stream = self._audio_stream
        try:
            self._container.mux(out)
        except av.FFmpegError as exc:
            raise LottoError(f"{self.name}: cannot mux audio packet at pts {packet.pts} ({_reason(exc)})") from exc

    def _finish(self) -> None:
        try:
            self._mux_video(self._stream.encode(None))
        finally:
            self._container.close()

    def _release(self) -> None:
        try:
            self._container.close()
        except (av.FFmpegError, OSError, ValueError):
            pass  # an unfinished file is being thrown away


def _ffv1_options(width: int, height: int, pix_fmt: str, time_base: Fraction) -> dict[str, str]:
    """FFmpeg's default FFV1 (version 3, slices chosen from the thread count) refuses some small
    pictures (4:2:0 at 5x3, 4x7, ...: no valid slice count); version 1 has no slices and takes
    any size. A throwaway encoder tells which one this size needs."""
    probe = av.CodecContext.create("ffv1", "w")
    probe.width, probe.height, probe.pix_fmt, probe.time_base = width, height, pix_fmt, time_base
    try:
        probe.open()
    except av.FFmpegError:
        return {"level": "1"}
    return {}


def _add_audio_stream(container: av.container.OutputContainer, audio: AudioParams, name: str) -> av.audio.stream.AudioStream:
    """An output stream described by ``audio``, for packets muxed as they are. PyAV 18 creates
    audio streams only with an encoder's codec context (``add_mux_stream`` sets the sample rate
    alone), so the encoder is opened here with the source's parameters, then its extradata is
    replaced by the source's (the muxer writes the stream header from the context)."""
    try:
        encoder = av.Codec(audio.codec, "w")
    except (ValueError, av.FFmpegError) as exc:
        raise UnsupportedError(f"{name}: cannot carry {audio.codec} audio: PyAV needs a {audio.codec} encoder "
                               f"to describe the stream and this FFmpeg build has none") from exc
    try:
        stream = container.add_stream(encoder.name, rate=audio.sample_rate)
        ctx = stream.codec_context
        ctx.layout = audio.layout
        formats = [f.name for f in encoder.audio_formats or ()]
        # The sample format only matters to an encoder; the packets are never re-encoded.
        ctx.format = audio.sample_format if audio.sample_format in formats or not formats else formats[0]
        if audio.bit_rate:
            ctx.bit_rate = audio.bit_rate
        ctx.time_base = audio.time_base
        stream.time_base = audio.time_base
        if encoder.experimental:
            ctx.options = {"strict": "experimental"}
        ctx.open()
        ctx.extradata = audio.extradata or None
    except (ValueError, av.FFmpegError) as exc:
        raise UnsupportedError(f"{name}: cannot set up the {audio.codec} audio stream "
                               f"({audio.sample_rate} Hz {audio.layout}): {exc}") from exc
    return stream


class _PictureWriter(VideoWriter):
    """PNG pictures: one file per frame from a ``%d`` pattern, or a single ``.png``.

    gray and rgb24 are written as they are; YUV becomes RGB here (not in swscale), 8-bit to rgb24
    and 10-bit to 16-bit rgb48 PNG, with a warning naming the matrix. Pictures are written under
    temporary names and all renamed on close."""

    def __init__(self, pattern: str, video: VideoFormat, audio: AudioParams | None, outputs: _Outputs) -> None:
        super().__init__("png", pattern, video, audio, outputs)
        name = Path(pattern).name
        self._pattern = pattern if _PATTERN.search(name) else None
        if self._pattern is not None:
            bare = name.replace("%%", "")
            if len(_PATTERN.findall(bare)) != 1 or "%" in _PATTERN.sub("", bare):
                raise UnsupportedError(f"{pattern}: a picture pattern holds exactly one %d or %0Nd")
        if audio is not None:
            self._warn_audio_dropped()
        if self._pattern is None and Path(pattern).exists() and not outputs.overwrite:
            raise LottoError(f"{pattern}: already exists (allow overwriting to replace it)")
        if video.rotation:
            self._warn(f"{pattern}: PNG cannot carry the rotation ({video.rotation} degrees); it is dropped")
        self._count = 0

    def _write(self, frame: Frame, pts: int) -> None:
        if self._pattern is None and self._count:
            raise LottoError(f"{self.name}: holds one picture; name the output like out_%04d.png for a sequence")
        final = Path(self._pattern % (self._count + 1)) if self._pattern else Path(self.name)
        data = self._encode(frame)
        part = self._outputs.reserve(final)
        part.write_bytes(data)
        self._count += 1

    def _encode(self, frame: Frame) -> bytes:
        if frame.pix_fmt in ("gray", "rgb24"):
            return encode_png_bytes(frame)
        rgb, matrix_name = _yuv_to_rgb(frame)
        range_name = "full" if frame.color.color_range == 2 else "limited"
        if frame.pix_fmt == "yuv420p":
            self._warn(f"{self.name}: yuv420p converted to rgb24 PNG ({matrix_name} matrix, {range_name} "
                       f"range, chroma upsampled bilinearly)")
            return encode_png_array(np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8), "rgb24")
        self._warn(f"{self.name}: yuv420p10le converted to 16-bit rgb48 PNG ({matrix_name} matrix, "
                   f"{range_name} range, chroma upsampled bilinearly)")
        return encode_png_array(np.clip(np.rint(rgb * 65535), 0, 65535).astype(np.uint16), "rgb48be")


# ============================================================================ colour helpers


def _matrix_for(color: ColorTags, height: int) -> tuple[float, float, str]:
    """(Kr, Kb, name) of the stream's matrix; unspecified: BT.601 up to 576 rows, else BT.709
    (what players assume)."""
    if color.matrix in _MATRICES:
        return _MATRICES[color.matrix]
    return _MATRICES[6] if height <= 576 else _MATRICES[1]


def _yuv_to_rgb(frame: Frame) -> tuple[np.ndarray, str]:
    """HxWx3 float RGB on [0, 1] from 4:2:0 planes, and the matrix's name."""
    kr, kb, name = _matrix_for(frame.color, frame.height)
    scale = float(1 << (frame.bit_depth - 8))
    y = frame.planes[0].astype(np.float64)
    u, v = (upsample_chroma(p, frame.height, frame.width) for p in frame.planes[1:])
    if frame.color.color_range == 2:
        peak = float(frame.max_value)
        luma, cb, cr = y / peak, (u - 128 * scale) / peak, (v - 128 * scale) / peak
    else:
        luma, cb, cr = (y - 16 * scale) / (219 * scale), (u - 128 * scale) / (224 * scale), (v - 128 * scale) / (224 * scale)
    r = luma + 2 * (1 - kr) * cr
    b = luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.stack([r, g, b], axis=2), 0.0, 1.0), name


def _rgb_to_yuv420(frame: Frame, kr: float, kb: float, color: ColorTags) -> Frame:
    """rgb24 -> limited-range yuv420p (chroma: 2x2 mean), for H.264 delivery."""
    r, g, b = (p.astype(np.float64) / 255 for p in frame.planes)
    luma = kr * r + (1 - kr - kb) * g + kb * b
    cb, cr = (b - luma) / (2 * (1 - kb)), (r - luma) / (2 * (1 - kr))

    def quantise(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)

    planes = [quantise(16 + 219 * luma), quantise(downsample_chroma(128 + 224 * cb)),
              quantise(downsample_chroma(128 + 224 * cr))]
    return Frame(planes, "yuv420p", pts=frame.pts, time_base=frame.time_base, color=color, duration=frame.duration)


def _gray_to_yuv420(frame: Frame) -> av.VideoFrame:
    chroma = np.full(((frame.height + 1) // 2, (frame.width + 1) // 2), 128, np.uint8)
    return to_av_frame(Frame([frame.planes[0], chroma, chroma.copy()], "yuv420p", pts=frame.pts,
                             time_base=frame.time_base, color=frame.color, duration=frame.duration))


# ============================================================================ small parsers


def _reason(exc: av.FFmpegError) -> str:
    return str(getattr(exc, "strerror", None) or exc).strip()


def _positive(rate: Fraction | None) -> Fraction | None:
    return Fraction(rate) if rate else None


def _parse_fraction(text: str | None) -> Fraction | None:
    if not text:
        return None
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _parse_color(text: str | None) -> ColorTags | None:
    if not text:
        return None
    values: dict[str, int] = {}
    for item in text.split():
        key, _, value = item.partition("=")
        if key in _COLOR_FIELDS and value.isdigit():
            values[key] = int(value)
    return ColorTags(**values) if values else None


def _fill_unspecified(color: ColorTags, fallback: ColorTags) -> ColorTags:
    """``color`` with each unspecified field taken from ``fallback``."""
    return ColorTags(**{f: getattr(color, f) if getattr(color, f) != getattr(_UNSPECIFIED, f)
                        else getattr(fallback, f) for f in _COLOR_FIELDS})
