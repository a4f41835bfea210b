"""Conventional codecs used as anchors for rate-distortion comparisons (JPEG, WebP, x264, x265, SVT-AV1).

Every anchor takes an 8-bit RGB picture and one quality knob, and returns the *counted* bytes, the
decoded RGB picture and the encode/decode wall times. What is counted (see docs/BENCH.md):

- ``jpeg`` (Pillow/libjpeg, 4:2:0, default tables, Huffman optimisation off): the JPEG codestream
  with APPn and COM segments removed (JFIF/EXIF headers are metadata a decoder does not need).
- ``webp`` (Pillow/libwebp, lossy, method 6): the payload of the ``VP8 `` chunk only (the 12-byte
  RIFF header and the 8-byte chunk header are container).
- ``x264``, ``x265`` (4:4:4) and ``x265-420``: the raw Annex-B elementary stream with every SEI NAL
  unit removed (x264 writes a ~680-byte version SEI; x265 is also run with ``info=0``); the
  counted stream is exactly what is decoded, so it is proven to decode alone.
- ``svtav1`` (4:2:0): the sum of the IVF frame payloads (temporal units), excluding the 32-byte IVF
  file header and the 12-byte per-frame headers.

Colour: the video codecs get YCbCr made here, not by swscale (whose settings move PSNR by dB):
BT.601 full range (the JFIF matrix, same as JPEG) computed in float64 and rounded; 4:2:0 chroma is
the 2x2 mean (centred siting), upsampled back with the centred bilinear (3/4, 1/4) filter. Metrics
are then computed in RGB on the pixels converted back, the same pixels every codec is judged on.
x264/x265 reject odd 4:2:0 sizes, so ``x265-420`` pads the picture to even size by repeating the
last row/column and crops after decoding (the padding is paid in bytes and noted in ``note``).

Video (``encode_video_anchor``) codes native Y, U, V planes (8 or 10 bit, 4:2:0) with x264/x265,
all-intra or with their default inter prediction.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from lotto_media.errors import InputError

# ----------------------------------------------------------------------------------------------
# Results and registry


@dataclass
class AnchorPoint:
    """One coded picture of an anchor codec."""

    codec: str
    param: str  # name of the knob: "quality", "qp" or "crf"
    setting: float
    bytes: int  # counted bytes (see module notes), == len(stream)
    decoded_rgb: np.ndarray  # HxWx3 uint8, same size as the input
    encode_s: float
    decode_s: float
    stream: bytes = b""  # exactly the bytes counted
    file_bytes: int = 0  # what the encoder's own file/container would take, for transparency
    note: str = ""


@dataclass(frozen=True)
class AnchorSpec:
    """How to run one anchor: its knob, the default sweep and the function doing the work."""

    name: str
    param: str
    default_settings: tuple[float, ...]  # spans roughly 0.1-3 bpp on 384x256 Kodak, low to high rate
    description: str
    encode: Callable[[np.ndarray, float], AnchorPoint]
    lower_is_better_quality: bool = False  # True for qp/crf: a higher setting means fewer bytes


# ----------------------------------------------------------------------------------------------
# Colour conversion (BT.601 full range, the JFIF matrix)

_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB


def rgb_to_ycbcr(rgb: np.ndarray) -> list[np.ndarray]:
    """HxWx3 uint8 RGB -> [Y, Cb, Cr] float64 planes in 0..255 (BT.601 full range)."""
    r, g, b = (rgb[..., c].astype(np.float64) for c in range(3))
    y = _KR * r + _KG * g + _KB * b
    cb = 128.0 + (b - y) / (2.0 * (1.0 - _KB))
    cr = 128.0 + (r - y) / (2.0 * (1.0 - _KR))
    return [y, cb, cr]


def ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """Full-resolution Y, Cb, Cr planes (any numeric type, 0..255) -> HxWx3 uint8 RGB."""
    y = y.astype(np.float64)
    cb = cb.astype(np.float64) - 128.0
    cr = cr.astype(np.float64) - 128.0
    r = y + 2.0 * (1.0 - _KR) * cr
    b = y + 2.0 * (1.0 - _KB) * cb
    g = (y - _KR * r - _KB * b) / _KG
    return _to_uint8(np.stack([r, g, b], axis=2))


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def downsample_chroma(plane: np.ndarray) -> np.ndarray:
    """2x2 mean (centred siting) to ceil(H/2) x ceil(W/2); odd edges repeat their last row/column."""
    h, w = plane.shape
    padded = np.pad(plane.astype(np.float64), ((0, h % 2), (0, w % 2)), mode="edge")
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).mean(axis=(1, 3))


def _upsample_axis(x: np.ndarray, axis: int) -> np.ndarray:
    # Each chroma sample sits between two luma samples: the output at 2i takes 3/4 of sample i and
    # 1/4 of its previous neighbour, the output at 2i+1 3/4 of sample i and 1/4 of the next one.
    n = x.shape[axis]
    prev = np.take(x, np.maximum(np.arange(n) - 1, 0), axis=axis)
    nxt = np.take(x, np.minimum(np.arange(n) + 1, n - 1), axis=axis)
    even = 0.75 * x + 0.25 * prev
    odd = 0.75 * x + 0.25 * nxt
    out = np.stack([even, odd], axis=axis + 1)
    shape = list(x.shape)
    shape[axis] = 2 * n
    return out.reshape(shape)


def upsample_chroma(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centred bilinear 2x upsampling of a chroma plane, cropped to ``height`` x ``width``."""
    up = _upsample_axis(_upsample_axis(plane.astype(np.float64), 0), 1)
    return up[:height, :width]


# ----------------------------------------------------------------------------------------------
# Bitstream bookkeeping


def _annexb_nal_spans(data: bytes) -> list[tuple[int, int, int]]:
    """(start of start code, start of NAL header, end) of every NAL unit of an Annex-B stream."""
    starts: list[tuple[int, int]] = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        begin = i - 1 if i > 0 and data[i - 1] == 0 else i  # 4-byte start code
        starts.append((begin, i + 3))
        i = data.find(b"\x00\x00\x01", i + 3)
    return [(b, h, starts[k + 1][0] if k + 1 < len(starts) else len(data)) for k, (b, h) in enumerate(starts)]


def strip_sei(data: bytes, codec: str) -> bytes:
    """Drop every SEI NAL unit (H.264 type 6, HEVC types 39/40): they carry no picture data."""
    kept = []
    for begin, header, end in _annexb_nal_spans(data):
        if header >= len(data):
            continue
        if codec == "h264":
            is_sei = data[header] & 0x1F == 6
        elif codec == "hevc":
            is_sei = (data[header] >> 1) & 0x3F in (39, 40)
        else:
            raise ValueError(f"unknown Annex-B codec {codec!r}")
        if not is_sei:
            kept.append(data[begin:end])
    return b"".join(kept)


def ivf_frame_payloads(data: bytes) -> list[bytes]:
    """Frame payloads of an IVF file (32-byte header, then 12-byte frame headers + payloads)."""
    if len(data) < 32 or data[:4] != b"DKIF":
        raise InputError("not an IVF stream")
    header_len = int.from_bytes(data[6:8], "little")
    pos = header_len
    payloads = []
    while pos + 12 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "little")
        payloads.append(data[pos + 12 : pos + 12 + size])
        pos += 12 + size
    return payloads


def jpeg_strip_metadata(data: bytes) -> bytes:
    """Remove APPn (0xE0-0xEF) and COM (0xFE) segments from a JPEG codestream."""
    if data[:2] != b"\xff\xd8":
        raise InputError("not a JPEG codestream")
    out = [data[:2]]
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise InputError("damaged JPEG codestream")
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: entropy-coded data follows up to EOI, keep the rest
            out.append(data[pos:])
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            out.append(data[pos : pos + 2 + length])
        pos += 2 + length
    return b"".join(out)


def webp_payload_size(data: bytes) -> int:
    """Bytes of the image chunks (VP8, VP8L, ALPH) of a WebP file, without RIFF and chunk headers."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise InputError("not a WebP file")
    pos, total = 12, 0
    while pos + 8 <= len(data):
        tag = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if tag in (b"VP8 ", b"VP8L", b"ALPH"):
            total += size
        pos += 8 + size + (size & 1)  # chunks are padded to even size
    return total


# ----------------------------------------------------------------------------------------------
# PyAV helpers


def _frame_from_planes(planes: Sequence[np.ndarray], pix_fmt: str, width: int, height: int) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, pix_fmt)
    dtype = np.uint16 if pix_fmt.endswith("10le") else np.uint8
    for dst, src in zip(frame.planes, planes):
        # Rows of a PyAV plane are padded to line_size bytes: write them with that stride.
        row = np.zeros((dst.height, dst.line_size // np.dtype(dtype).itemsize), dtype=dtype)
        row[:, : dst.width] = src
        dst.update(row.astype("<u2" if dtype == np.uint16 else np.uint8).tobytes())
    return frame


def planes_of(frame: av.VideoFrame) -> list[np.ndarray]:
    """Native planes of a decoded frame as 2-D arrays (uint8, or uint16 for >8-bit formats)."""
    dtype = np.dtype("<u2") if frame.format.name.endswith(("10le", "12le")) else np.dtype(np.uint8)
    out = []
    for plane in frame.planes:
        rows = np.frombuffer(bytes(plane), dtype=dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
        out.append(rows[:, : plane.width].astype(np.uint16 if dtype.itemsize == 2 else np.uint8))
    return out


def _encode_video(
    codec: str,
    container_format: str,
    frames: Sequence[Sequence[np.ndarray]],
    pix_fmt: str,
    width: int,
    height: int,
    options: dict[str, str],
    rate: Fraction = Fraction(25),
    gop_size: int | None = None,
    full_range: bool = False,
) -> tuple[bytes, float]:
    """Encode planar frames into an in-memory elementary stream; returns (file bytes, seconds)."""
    buf = io.BytesIO()
    start = time.perf_counter()
    with av.open(buf, "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        ctx = stream.codec_context
        ctx.options = options
        if gop_size is not None:
            ctx.gop_size = gop_size
        if full_range:
            ctx.color_range = 2  # tags our full-range conversion in the VUI; it does not change the coding
        for index, planes in enumerate(frames):
            frame = _frame_from_planes(planes, pix_fmt, width, height)
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue(), time.perf_counter() - start


def _decode_video(data: bytes, container_format: str) -> tuple[list[list[np.ndarray]], float]:
    start = time.perf_counter()
    with av.open(io.BytesIO(data), format=container_format) as inp:
        decoded = [planes_of(frame) for frame in inp.decode(video=0)]
    return decoded, time.perf_counter() - start


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise InputError(f"anchors need an HxWx3 uint8 RGB picture, got {rgb.dtype} {rgb.shape}")
    return rgb


# ----------------------------------------------------------------------------------------------
# Image anchors


def _encode_jpeg(rgb: np.ndarray, quality: float) -> AnchorPoint:
    from PIL import Image

    q = int(round(quality))
    if not 1 <= q <= 100:
        raise InputError(f"jpeg quality must be in 1..100, got {quality}")
    buf = io.BytesIO()
    start = time.perf_counter()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=q)
    encode_s = time.perf_counter() - start
    stream = jpeg_strip_metadata(buf.getvalue())
    start = time.perf_counter()
    with Image.open(io.BytesIO(stream)) as img:
        decoded = np.asarray(img.convert("RGB"))
    decode_s = time.perf_counter() - start
    return AnchorPoint("jpeg", "quality", q, len(stream), decoded, encode_s, decode_s, stream, len(buf.getvalue()))


def _encode_webp(rgb: np.ndarray, quality: float) -> AnchorPoint:
    from PIL import Image

    if not 0 <= quality <= 100:
        raise InputError(f"webp quality must be in 0..100, got {quality}")
    buf = io.BytesIO()
    start = time.perf_counter()
    Image.fromarray(rgb).save(buf, format="WEBP", quality=float(quality), method=6)
    encode_s = time.perf_counter() - start
    data = buf.getvalue()
    start = time.perf_counter()
    with Image.open(io.BytesIO(data)) as img:
        decoded = np.asarray(img.convert("RGB"))
    decode_s = time.perf_counter() - start
    return AnchorPoint("webp", "quality", quality, webp_payload_size(data), decoded, encode_s, decode_s, b"", len(data))


def _x26x_options(codec: str, qp: int) -> dict[str, str]:
    if not 0 <= qp <= 51:
        raise InputError(f"{codec} qp must be in 0..51, got {qp}")
    if codec == "libx264":
        return {"qp": str(qp), "preset": "veryslow", "tune": "psnr"}
    return {"preset": "veryslow", "tune": "psnr", "x265-params": f"qp={qp}:info=0:log-level=error"}


def _encode_x26x(rgb: np.ndarray, qp: float, *, name: str, codec: str, chroma_420: bool) -> AnchorPoint:
    q = int(round(qp))
    height, width = rgb.shape[:2]
    note = ""
    source = rgb
    if chroma_420 and (height % 2 or width % 2):
        # x264/x265 refuse odd 4:2:0 sizes: pay for one repeated row/column, crop it after decoding.
        source = np.pad(rgb, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        note = f"padded to {source.shape[1]}x{source.shape[0]} for 4:2:0"
    ph, pw = source.shape[:2]
    y, cb, cr = rgb_to_ycbcr(source)
    if chroma_420:
        cb, cr = downsample_chroma(cb), downsample_chroma(cr)
    planes = [_to_uint8(p) for p in (y, cb, cr)]
    bitstream = "h264" if codec == "libx264" else "hevc"
    pix_fmt = "yuv420p" if chroma_420 else "yuv444p"
    file_data, encode_s = _encode_video(
        codec, bitstream, [planes], pix_fmt, pw, ph, _x26x_options(codec, q), full_range=True
    )
    stream = strip_sei(file_data, bitstream)
    decoded, decode_s = _decode_video(stream, bitstream)
    if len(decoded) != 1:
        raise InputError(f"{name} produced {len(decoded)} pictures instead of 1")
    dy, dcb, dcr = decoded[0]
    if chroma_420:
        dcb, dcr = upsample_chroma(dcb, ph, pw), upsample_chroma(dcr, ph, pw)
    out = ycbcr_to_rgb(dy, dcb, dcr)[:height, :width]
    return AnchorPoint(name, "qp", q, len(stream), out, encode_s, decode_s, stream, len(file_data), note)


def _encode_svtav1(rgb: np.ndarray, crf: float) -> AnchorPoint:
    q = int(round(crf))
    if not 1 <= q <= 63:
        raise InputError(f"svtav1 crf must be in 1..63, got {crf}")
    height, width = rgb.shape[:2]
    y, cb, cr = rgb_to_ycbcr(rgb)
    planes = [_to_uint8(y), _to_uint8(downsample_chroma(cb)), _to_uint8(downsample_chroma(cr))]
    options = {"crf": str(q), "preset": "4"}
    file_data, encode_s = _encode_video(
        "libsvtav1", "ivf", [planes], "yuv420p", width, height, options, full_range=True
    )
    payloads = ivf_frame_payloads(file_data)
    decoded, decode_s = _decode_video(file_data, "ivf")
    if len(decoded) != 1:
        raise InputError(f"svtav1 produced {len(decoded)} pictures instead of 1")
    dy, dcb, dcr = decoded[0]
    out = ycbcr_to_rgb(dy, upsample_chroma(dcb, height, width), upsample_chroma(dcr, height, width))
    stream = b"".join(payloads)
    return AnchorPoint("svtav1", "crf", q, len(stream), out, encode_s, decode_s, stream, len(file_data))


def _spec(name: str, param: str, settings: tuple[float, ...], description: str,
          encode: Callable[[np.ndarray, float], AnchorPoint]) -> AnchorSpec:
    return AnchorSpec(name, param, settings, description, encode, lower_is_better_quality=param != "quality")


ANCHORS: dict[str, AnchorSpec] = {
    spec.name: spec
    for spec in (
        _spec("jpeg", "quality", (5, 10, 20, 30, 45, 60, 75, 90), "JPEG (Pillow/libjpeg), 4:2:0", _encode_jpeg),
        _spec("webp", "quality", (0, 5, 15, 30, 50, 70, 85, 95), "WebP lossy (Pillow/libwebp), method 6", _encode_webp),
        _spec("x264", "qp", (47, 43, 39, 35, 31, 27, 23, 19), "x264 intra 4:4:4, veryslow, tune psnr",
              lambda rgb, q: _encode_x26x(rgb, q, name="x264", codec="libx264", chroma_420=False)),
        _spec("x265", "qp", (47, 43, 39, 35, 31, 27, 23, 19, 15, 11), "x265 intra 4:4:4, veryslow, tune psnr",
              lambda rgb, q: _encode_x26x(rgb, q, name="x265", codec="libx265", chroma_420=False)),
        _spec("x265-420", "qp", (47, 43, 39, 35, 31, 27, 23, 19), "x265 intra 4:2:0, veryslow, tune psnr",
              lambda rgb, q: _encode_x26x(rgb, q, name="x265-420", codec="libx265", chroma_420=True)),
        _spec("svtav1", "crf", (58, 50, 42, 34, 26, 18, 10, 4), "SVT-AV1 4:2:0, preset 4, tune psnr", _encode_svtav1),
    )
}


def anchor_names() -> list[str]:
    return list(ANCHORS)


def get_anchor(name: str) -> AnchorSpec:
    if name not in ANCHORS:
        raise InputError(f"unknown anchor {name!r} (choose from {', '.join(ANCHORS)})")
    return ANCHORS[name]


def encode_anchor(name: str, rgb: np.ndarray, q: float) -> AnchorPoint:
    """Code ``rgb`` (HxWx3 uint8) with anchor ``name`` at setting ``q`` (its own knob, see ANCHORS)."""
    return get_anchor(name).encode(_check_rgb(rgb), q)


# ----------------------------------------------------------------------------------------------
# Video anchors (native 4:2:0 planes)

VIDEO_ANCHORS: dict[str, str] = {"x264": "libx264", "x265": "libx265"}
VIDEO_DEFAULT_QPS: tuple[int, ...] = (42, 37, 32, 27, 22)  # JVET common-test-condition QPs plus 42


@dataclass
class VideoAnchorResult:
    """A clip coded by x264/x265: counted bytes and decoded native planes per frame."""

    codec: str
    mode: str  # "intra" or "inter"
    qp: int
    bytes: int
    decoded: list[list[np.ndarray]]
    encode_s: float
    decode_s: float
    note: str = ""
    file_bytes: int = 0


def encode_video_anchor(
    name: str,
    frames: Sequence[Sequence[np.ndarray]],
    pix_fmt: str,
    qp: int,
    *,
    intra: bool,
    rate: Fraction = Fraction(25),
) -> VideoAnchorResult:
    """Code a clip of native Y, U, V planes (``yuv420p`` or ``yuv420p10le``) at constant ``qp``.

    ``intra=True`` makes every frame an IDR (keyint 1); otherwise the encoder's default GOP and
    B-frames are used. Odd widths/heights are padded by repeating the last luma row/column (the
    chroma planes already have the padded size) and cropped after decoding.
    """
    if name not in VIDEO_ANCHORS:
        raise InputError(f"unknown video anchor {name!r} (choose from {', '.join(VIDEO_ANCHORS)})")
    if pix_fmt not in ("yuv420p", "yuv420p10le"):
        raise InputError(f"video anchors code yuv420p or yuv420p10le, got {pix_fmt}")
    if not frames:
        raise InputError("no frames to code")
    codec = VIDEO_ANCHORS[name]
    bitstream = "h264" if codec == "libx264" else "hevc"
    height, width = frames[0][0].shape
    ph, pw = height + height % 2, width + width % 2
    note = f"padded to {pw}x{ph} for 4:2:0" if (ph, pw) != (height, width) else ""
    padded = [[np.pad(p[0], ((0, ph - height), (0, pw - width)), mode="edge"), p[1], p[2]] for p in frames]
    options = _x26x_options(codec, int(qp))
    # Video keeps the encoders' default preset and tuning; only SEI, logging and the GOP differ.
    options["preset"] = "medium"
    del options["tune"]
    if intra:
        if codec == "libx264":
            options["x264-params"] = "keyint=1"
        else:
            options["x265-params"] += ":keyint=1"
    file_data, encode_s = _encode_video(
        codec, bitstream, padded, pix_fmt, pw, ph, options, rate=rate, gop_size=1 if intra else None
    )
    stream = strip_sei(file_data, bitstream)
    decoded, decode_s = _decode_video(stream, bitstream)
    if len(decoded) != len(frames):
        raise InputError(f"{name} decoded {len(decoded)} frames out of {len(frames)}")
    cropped = [[d[0][:height, :width], d[1], d[2]] for d in decoded]
    return VideoAnchorResult(name, "intra" if intra else "inter", int(qp), len(stream), cropped,
                             encode_s, decode_s, note, len(file_data))
