"""The public codec API for one picture: frames and arrays in, .lotto bytes out, and back.

Thin wrappers over lotto_media.stream (a stream of one frame in one group); video goes through
``StreamEncoder`` / ``LottoReader`` directly.
"""

from __future__ import annotations

import io
import logging
import math
import time
from dataclasses import replace

import numpy as np

from .coding.bitstream import unpack_frame, unpack_group
from .container import (DEFAULT_MAX_PIXELS, FORMAT_VERSION, FrameChunk, GroupChunk, SequenceHeader, StreamReader,
                        check_pixel_limit, critical_size)
from .errors import FormatError, UnsupportedError
from .frame import Frame, VideoFormat
from .metrics import bpp as bits_per_pixel
from .model.synthesis import count_kmac_per_pixel
from .options import EncodeOptions
from .reports import EncodeResult, FrameInfo, Progress, StreamInfo
from .stream import SUPPORTED_PIX_FMTS, LottoReader, LottoWriter, StreamEncoder, resolve_device, torch_threads
from .search.train import ProgressCallback

log = logging.getLogger(__name__)

__all__ = [
    "EncodeOptions", "EncodeResult", "Progress", "StreamInfo", "SUPPORTED_PIX_FMTS", "FORMAT_VERSION",
    "DEFAULT_MAX_PIXELS",
    "encode_frame", "decode_frame", "inspect", "encode_image", "decode_image", "resolve_device", "torch_threads",
    "coded_bytes",
]


def coded_bytes(data: bytes) -> int:
    """Bytes of a whole .lotto file that its decoding needs (signature and critical chunks: what
    benchmarks count), without the encoder's statistics, the index and audio."""
    return critical_size(data)


def encode_frame(frame: Frame, options: EncodeOptions, progress: ProgressCallback | None = None) -> EncodeResult:
    """Search, quantise and entropy-code one picture into a complete .lotto file."""
    start = time.perf_counter()
    encoder = StreamEncoder(VideoFormat.of(frame), options, gop=1, n_frames=1, progress=progress)
    packets = encoder.encode(frame) + encoder.flush()
    buffer = io.BytesIO()
    with LottoWriter(buffer, encoder.header) as writer:
        writer.write(packets)
    data = buffer.getvalue()
    (coded,) = [p for p in packets if p.kind == "frame"]
    latent_bytes = len(unpack_frame(coded.data).latents)
    assert coded.reconstruction is not None
    return EncodeResult(
        data=data,
        reconstruction=coded.reconstruction,
        info=inspect(data),
        steps=coded.steps,
        search_seconds=coded.seconds,
        encode_seconds=time.perf_counter() - start,
        latent_bytes=latent_bytes,
        estimated_latent_bits=coded.estimated_latent_bits,
    )


#: enough bytes to hold the signature and the largest sequence header
HEADER_PREFIX_BYTES = 4096


def stream_header(prefix: bytes, name: str = "<stream>") -> SequenceHeader:
    """The sequence header of a stream from its first bytes (HEADER_PREFIX_BYTES suffice)."""
    return StreamReader(prefix[:HEADER_PREFIX_BYTES], name).header


def decode_frame(data: bytes, name: str = "<stream>", *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Frame:
    """The first frame of a .lotto stream. A stream with larger frames than ``max_pixels``
    (None: what the format allows) raises LimitError before anything is decoded."""
    reader = LottoReader(data, name, frames=range(0, 1), read_to_end=True, max_pixels=max_pixels)
    frames = list(reader)
    if frames:
        return frames[0]
    raise FormatError(f"{name}: no intact frame" + (f" ({reader.damage})" if reader.damage else ""))


def inspect(data: bytes, name: str = "<stream>", *, max_pixels: int | None = None) -> StreamInfo:
    """Describe a stream without decoding its pictures: size, format, rate, groups, frames.
    ``max_pixels`` refuses (LimitError) what a decoder with that limit would refuse."""
    reader = StreamReader(data, name)
    h = reader.header
    check_pixel_limit(h, max_pixels, name)
    # the encoder's per-frame statistics are in the metadata chunk, at the end: filled in after
    details: list[FrameInfo] = []
    arm_widths: list[int] = []
    for item in reader.chunks():
        if isinstance(item, GroupChunk):
            try:
                arm_widths.append(unpack_group(item.payload, h.model, h.format_version).arm_hidden)
            except (FormatError, UnsupportedError):  # described as unknown: decoding says why
                arm_widths.append(0)
        elif isinstance(item, FrameChunk):
            packet = item.packet
            try:
                kind = unpack_frame(packet.payload, h.format_version).frame_type.name
            except (FormatError, UnsupportedError):
                kind = "?"
            details.append(FrameInfo(index=len(details), group=packet.group, pts=packet.pts, duration=packet.duration,
                                     frame_type=kind, bytes=len(packet.payload), psnr=math.nan, psnr_planes={}))
    if not details:
        raise FormatError(f"{name}: no intact frame" + (f" ({reader.damage})" if reader.damage else ""))
    meta = reader.metadata
    records = meta.get("frames") if isinstance(meta.get("frames"), list) else []
    for i, record in enumerate(records[: len(details)]):
        if isinstance(record, dict):
            # a one-picture file keeps its steps beside the frames, not in its frame's record
            steps = record.get("steps", meta.get("steps") if len(records) == 1 else None)
            details[i] = replace(details[i], psnr=_number(record.get("psnr")),
                                 psnr_planes=_planes(record.get("psnr_planes")), steps=int(_number(steps, 0)))
    first = details[0]
    frames = len(details)
    psnrs = [d.psnr for d in details if math.isfinite(d.psnr)]
    return StreamInfo(
        width=h.width,
        height=h.height,
        pix_fmt=h.pix_fmt,
        frames=frames,
        bytes=reader.total_bytes,
        bpp=bits_per_pixel(reader.total_bytes, h.width, h.height) / frames,
        psnr=first.psnr if frames == 1 else (sum(psnrs) / len(psnrs) if psnrs else math.nan),
        psnr_planes=first.psnr_planes if frames == 1 else _mean_planes(details),
        preset=h.preset,
        lmbda=h.lmbda,
        quality=h.quality,
        mask_ratio=h.model.mask_ratio,
        seed=h.model.seed,
        kmac_per_pixel=round(count_kmac_per_pixel(h.model.with_arm_hidden(arm_widths[0] or h.model.arm_hidden),
                                                  h.height, h.width), 3),
        synth_widths=tuple(h.model.synth_widths),
        format_version=h.format_version,
        damage=reader.damage,
        mod_hidden=h.model.mod_hidden,
        arm_hidden=arm_widths[0] or h.model.arm_hidden,
        n_levels=h.model.n_levels,
        fine_grids=h.model.fine_grids,
        groups=len(arm_widths),
        gop=h.gop,
        time_base=h.time_base,
        frame_rate=h.frame_rate,
        rotation=h.rotation,
        source=h.source,
        frame_details=details,
    )


def _number(value: object, default: float = math.nan) -> float:
    """A finite float from a metadata field, else ``default`` (huge or odd JSON values included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    try:
        number = float(value)
    except OverflowError:
        return default
    return number if math.isfinite(number) else default


def _planes(value: object) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    planes = {str(k): _number(v) for k, v in value.items()}
    return {k: v for k, v in planes.items() if math.isfinite(v)}


def _mean_planes(details: list[FrameInfo]) -> dict[str, float]:
    keys = set.intersection(*(set(d.psnr_planes) for d in details)) if details else set()
    return {k: sum(d.psnr_planes[k] for d in details) / len(details) for k in sorted(keys)}


def encode_image(array: np.ndarray, *, progress: ProgressCallback | None = None, **options: object) -> bytes:
    """HxWx3 or HxW uint8 array -> .lotto bytes. Options are those of EncodeOptions."""
    return encode_frame(Frame.from_array(array), EncodeOptions(**options), progress).data


def decode_image(data: bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    return decode_frame(data, max_pixels=max_pixels).to_array()
