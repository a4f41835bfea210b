"""Still images in and out through PyAV: any picture FFmpeg can decode becomes an 8-bit gray or
rgb24 ``Frame``; frames are written back as PNG.

The core codes gray and rgb24 only, so everything else is brought to one of them here, and every
conversion that loses information (alpha, bits beyond 8, YUV -> RGB) is logged as a warning: a
picture never changes silently.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import av
import numpy as np

from lotto_media.container.header import picture_size_problem
from lotto_media.errors import InputError, UnsupportedError
from lotto_media.frame import ColorTags, Frame

log = logging.getLogger(__name__)

# Still images hold full-range samples; RGB ones use H.273's identity matrix (code point 0).
_FULL_RANGE_RGB = ColorTags(color_range=2, matrix=0)
_FULL_RANGE_GRAY = ColorTags(color_range=2)


#: FFmpeg's decoders that render text as pictures (ANSI art and its kin): a README or a log file
#: would otherwise be coded as a picture, or a video, of its characters
_TEXT_ART_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})


def read_image(path: str | Path) -> Frame:
    """The first picture of an image file, as gray or rgb24 (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an image")
    try:
        if path.stat().st_size == 0:
            raise InputError(f"{path}: empty file")
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from exc
    return _read(str(path), str(path))


def read_image_bytes(data: bytes, name: str = "<stdin>") -> Frame:
    """Same as :func:`read_image` for an image held in memory (e.g. read from stdin)."""
    if not data:
        raise InputError(f"{name}: empty input")
    return _read(io.BytesIO(data), name)


def encode_png_bytes(frame: Frame) -> bytes:
    """A complete PNG file (8-bit gray or rgb24) holding ``frame``."""
    if frame.pix_fmt not in ("gray", "rgb24"):
        raise UnsupportedError(f"cannot write {frame.pix_fmt} as PNG (gray and rgb24 only)")
    return encode_png_array(frame.to_array(), frame.pix_fmt)


def encode_png_array(array: np.ndarray, pix_fmt: str) -> bytes:
    """A complete PNG file holding an interleaved array in one of the PNG encoder's formats:
    ``gray``/``rgb24`` (uint8) or ``gray16be``/``rgb48be`` (uint16, native-endian values: PyAV
    byte-swaps them). The 16-bit forms let a writer keep more than 8 bits per sample."""
    array = np.ascontiguousarray(array)
    video_frame = av.VideoFrame.from_ndarray(array, format=pix_fmt)
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = array.shape[1], array.shape[0], pix_fmt
    packets = codec.encode(video_frame) + codec.encode(None)
    return b"".join(bytes(packet) for packet in packets)


def write_image(frame: Frame, path: str | Path) -> None:
    """Write ``frame`` to ``path`` as PNG. The PNG is built in memory first, so an encoding
    failure never leaves a partial file; atomic replacement is the caller's business."""
    Path(path).write_bytes(encode_png_bytes(frame))


def _read(source: str | io.BytesIO, name: str) -> Frame:
    try:
        with av.open(source, mode="r") as container:
            if not container.streams.video:
                raise InputError(f"{name}: contains no picture")
            context = container.streams.video[0].codec_context
            if context.name in _TEXT_ART_CODECS:
                raise InputError(f"{name}: a text file, not a picture")
            # before decoding: a few bytes of PNG can claim a picture of gigabytes
            check_size(context.width, context.height, name)
            picture = next(container.decode(video=0), None)
    except InputError:
        raise
    except av.FFmpegError as exc:
        raise InputError(f"{name}: not a readable image ({_ffmpeg_reason(exc)})") from exc
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{name}: not a readable image ({exc})") from exc
    if picture is None:
        raise InputError(f"{name}: contains no decodable picture")
    check_size(picture.width, picture.height, name)
    return _to_frame(picture, name)


def check_size(width: int, height: int, name: str) -> None:
    """Refuse a picture the .lotto format cannot hold, naming the file; a size of 0 is unknown
    (a demuxer that leaves it to the decoder) and passes."""
    if width and height:
        problem = picture_size_problem(width, height)
        if problem:
            raise InputError(f"{name}: {problem}")


def _ffmpeg_reason(exc: av.FFmpegError) -> str:
    # FFmpeg's message already names the file when it has one; keep only the reason.
    return str(getattr(exc, "strerror", None) or exc).strip()


def _to_frame(picture: av.VideoFrame, name: str) -> Frame:
    pixel_format = picture.format
    colour_components = [c for c in pixel_format.components if not c.is_alpha]
    has_alpha = len(colour_components) < len(pixel_format.components)
    is_gray = (
        not pixel_format.has_palette and not pixel_format.is_rgb and len(colour_components) == 1
    )
    deep = max(c.bits for c in colour_components) > 8

    if pixel_format.has_palette:
        has_alpha = _palette_has_transparency(picture)
    if has_alpha:
        log.warning("%s: alpha channel dropped", name)
    if not is_gray and not pixel_format.is_rgb and not pixel_format.has_palette:
        log.warning("%s: %s converted to rgb24 (the codec takes rgb24 or gray)",
                    name, pixel_format.name)

    target = ("gray" if is_gray else "rgb24") if not deep else ("gray16le" if is_gray else "rgb48le")
    try:
        array = picture.reformat(format=target).to_ndarray()
    except (ValueError, av.FFmpegError) as exc:
        raise InputError(f"{name}: cannot convert {pixel_format.name} pixels ({exc})") from exc
    if deep:
        log.warning("%s: %d-bit samples rounded to 8 bits",
                    name, max(c.bits for c in colour_components))
        array = _round_16_to_8(array)
    planes = Frame.from_array(np.ascontiguousarray(array))
    color = _FULL_RANGE_RGB if planes.pix_fmt == "rgb24" else _FULL_RANGE_GRAY
    return Frame(planes.planes, planes.pix_fmt, color=color)


def _round_16_to_8(array: np.ndarray) -> np.ndarray:
    """round(v / 257) without floats: 257 maps 8-bit 0..255 exactly onto 16-bit 0..65535, and
    v/257 never lands on a half, so (v + 128) // 257 is the rounded value."""
    return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _palette_has_transparency(picture: av.VideoFrame) -> bool:
    """Whether a used palette entry is not fully opaque. FFmpeg stores the palette as 256
    native-endian 32-bit ARGB words in plane 1; alpha is the most significant byte."""
    entries = np.frombuffer(picture.planes[1], dtype=np.uint32, count=256)
    indices, _ = picture.to_ndarray()  # PyAV gives (indices, palette) for pal8
    used = np.unique(indices)
    return bool(np.any((entries[used] >> 24) != 0xFF))
