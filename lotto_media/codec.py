"""The public codec API: frames and arrays in, .lotto bytes out, and back."""

from __future__ import annotations

import io
import logging
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from . import __version__, bitstream, chroma, entropy
from .config import ENCODER_MOD_HIDDEN, ModelConfig, arm_hidden_for
from .container import ContainerWriter, SequenceHeader, read_container
from .errors import FormatError, InputError, UnsupportedError
from .frame import PIXEL_FORMATS, Frame
from .latents import level_shapes
from .metrics import bpp as bits_per_pixel
from .metrics import psnr_planes, psnr_rgb, psnr_yuv
from .model import count_kmac_per_pixel
from .random_weights import random_synthesis_weights
from .reconstruct import reconstruct
from .options import EncodeOptions
from .reports import EncodeResult, Progress, StreamInfo
from .train import ProgressCallback, search

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SUPPORTED_PIX_FMTS = ("rgb24", "gray", "yuv420p", "yuv420p10le")

__all__ = [
    "EncodeOptions", "EncodeResult", "Progress", "StreamInfo",
    "encode_frame", "decode_frame", "inspect", "encode_image", "decode_image",
]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise InputError(f"unknown device {name!r} (auto, cpu or cuda)")
    return torch.device(name)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    if threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _model_config(frame: Frame, options: EncodeOptions, lmbda: float) -> ModelConfig:
    return ModelConfig(
        seed=int(options.seed),
        arm_hidden=arm_hidden_for(lmbda),
        mod_hidden=ENCODER_MOD_HIDDEN,
        out_channels=1 if frame.pix_fmt == "gray" else 3,
        mask_ratio=float(options.mask_ratio),
    )


def _is_420(pix_fmt: str) -> bool:
    return PIXEL_FORMATS[pix_fmt][2]


def _check_samples(frame: Frame) -> None:
    """Refuse planes whose integers do not fit the format (e.g. 16-bit samples labelled 10-bit)."""
    for plane in frame.planes:
        if plane.dtype.kind not in "ui":
            raise InputError(f"{frame.pix_fmt} planes must hold integers, got {plane.dtype}")
        low, high = int(plane.min()), int(plane.max())
        if low < 0 or high > frame.max_value:
            value = low if low < 0 else high
            raise InputError(f"{frame.pix_fmt} sample value {value} outside 0..{frame.max_value}")


def _target(frame: Frame) -> torch.Tensor:
    """The search's (C, H, W) target on [0, 1]; 4:2:0 chroma in chroma.pack_target's layout."""
    if _is_420(frame.pix_fmt):
        return chroma.pack_target(frame.planes, frame.max_value)
    return torch.from_numpy(np.stack(frame.planes).astype(np.float32) / float(frame.max_value))


def _frame_psnr(source: Frame, reconstruction: Frame) -> tuple[float, dict[str, float]]:
    """The headline PSNR (RGB pooled, PSNR-YUV 6:1:1, or gray's) and the per-plane PSNRs."""
    by_plane = psnr_planes(source, reconstruction)
    if source.pix_fmt == "rgb24":
        return psnr_rgb(source, reconstruction), by_plane
    if _is_420(source.pix_fmt):
        return psnr_yuv(by_plane), by_plane
    return by_plane["y"], by_plane


def encode_frame(frame: Frame, options: EncodeOptions, progress: ProgressCallback | None = None) -> EncodeResult:
    """Search, quantise and entropy-code one picture into a complete .lotto file."""
    start = time.perf_counter()
    if frame.pix_fmt not in SUPPORTED_PIX_FMTS:
        raise UnsupportedError(
            f"pixel format {frame.pix_fmt} is not supported yet (supported: {', '.join(SUPPORTED_PIX_FMTS)})"
        )
    _check_samples(frame)
    lmbda = options.resolved_lmbda()
    schedule = options.schedule()
    config = _model_config(frame, options, lmbda)
    device = resolve_device(options.device)
    target = _target(frame)
    distortion = chroma.distortion if _is_420(frame.pix_fmt) else None
    with torch_threads(options.threads):
        result = search(target, config, schedule, lmbda, device, progress, distortion=distortion)
        weights = random_synthesis_weights(config)
        planes = reconstruct(result.latents, result.nets, weights, result.mask, frame.height, frame.width,
                             bit_depth=frame.bit_depth, chroma_420=_is_420(frame.pix_fmt))
        arm = result.nets.integer_arm()
        latent_code = entropy.encode_latents(result.latents, arm)
        estimated = entropy.estimate_latent_bits(result.latents, arm)
    reconstruction = Frame(list(planes), frame.pix_fmt, pts=frame.pts, time_base=frame.time_base, color=frame.color)
    psnr_all, quality_by_plane = _frame_psnr(frame, reconstruction)
    header = SequenceHeader(
        width=frame.width, height=frame.height, pix_fmt=frame.pix_fmt, model=config,
        color=frame.color, preset=options.preset, lmbda=lmbda, quality=options.quality, n_frames=1,
    )
    buffer = io.BytesIO()
    with ContainerWriter(buffer, header) as writer:
        group = writer.write_group(bitstream.pack_group(result.nets))
        writer.write_frame(bitstream.pack_frame(entropy.encode_mask(result.mask), latent_code), group, pts=frame.pts or 0)
        writer.write_metadata(
            {
                "encoder": f"lotto-media {__version__}",
                # 1/1000 dB is more than any PSNR means; full doubles would cost ~50 bytes
                "frames": [{"psnr": round(psnr_all, 3), "psnr_planes": {k: round(v, 3) for k, v in quality_by_plane.items()}}],
                "steps": result.steps,
            }
        )
    data = buffer.getvalue()
    return EncodeResult(
        data=data,
        reconstruction=reconstruction,
        info=inspect(data),
        steps=result.steps,
        search_seconds=result.seconds,
        encode_seconds=time.perf_counter() - start,
        latent_bytes=len(latent_code),
        estimated_latent_bits=estimated,
    )


def _checked_container(data: bytes, name: str):
    container = read_container(data, name)
    if not container.frames:
        raise FormatError(f"{name}: no intact frame" + (f" ({container.damage})" if container.damage else ""))
    return container


def decode_frame(data: bytes, name: str = "<stream>") -> Frame:
    container = _checked_container(data, name)
    header = container.header
    if header.pix_fmt not in SUPPORTED_PIX_FMTS:
        raise UnsupportedError(f"{name}: pixel format {header.pix_fmt} is not supported by this build")
    packet = container.frames[0]
    config = header.model
    if config.out_channels != (1 if header.pix_fmt == "gray" else 3):
        raise FormatError(f"{name}: {config.out_channels} synthesis outputs cannot make {header.pix_fmt} pictures")
    try:
        nets = bitstream.unpack_group(container.groups[packet.group], config)
        payload = bitstream.unpack_frame(packet.payload)
        mask = entropy.decode_mask(payload.mask, config.n_random_weights(), config.n_kept())
        shapes = level_shapes(header.height, header.width, config.n_levels)
        latents = entropy.decode_latents(payload.latents, shapes, nets.integer_arm())
    except FormatError as exc:
        raise FormatError(f"{name}: {exc}") from None
    planes = reconstruct(latents, nets, random_synthesis_weights(config), mask, header.height, header.width,
                         bit_depth=PIXEL_FORMATS[header.pix_fmt][1], chroma_420=_is_420(header.pix_fmt))
    return Frame(list(planes), header.pix_fmt, pts=packet.pts, time_base=header.time_base, color=header.color)


def inspect(data: bytes, name: str = "<stream>") -> StreamInfo:
    container = _checked_container(data, name)
    h = container.header
    frames_meta = container.metadata.get("frames") or [{}]
    first = frames_meta[0] if isinstance(frames_meta, list) and frames_meta and isinstance(frames_meta[0], dict) else {}
    psnr = first.get("psnr")
    planes = first.get("psnr_planes") if isinstance(first.get("psnr_planes"), dict) else {}
    return StreamInfo(
        width=h.width,
        height=h.height,
        pix_fmt=h.pix_fmt,
        frames=len(container.frames),
        bytes=container.total_bytes,
        bpp=bits_per_pixel(container.total_bytes, h.width, h.height) / max(1, len(container.frames)),
        psnr=float(psnr) if isinstance(psnr, (int, float)) else float("nan"),
        psnr_planes={str(k): float(v) for k, v in planes.items() if isinstance(v, (int, float))},
        preset=h.preset,
        lmbda=h.lmbda,
        quality=h.quality,
        mask_ratio=h.model.mask_ratio,
        seed=h.model.seed,
        kmac_per_pixel=round(count_kmac_per_pixel(h.model, h.height, h.width), 3),
        synth_widths=tuple(h.model.synth_widths),
        mod_hidden=h.model.mod_hidden,
        arm_hidden=h.model.arm_hidden,
        format_version=FORMAT_VERSION,
        damage=container.damage,
    )


def encode_image(array: np.ndarray, *, progress: ProgressCallback | None = None, **options: object) -> bytes:
    """HxWx3 or HxW uint8 array -> .lotto bytes. Options are those of EncodeOptions."""
    return encode_frame(Frame.from_array(array), EncodeOptions(**options), progress).data


def decode_image(data: bytes) -> np.ndarray:
    return decode_frame(data).to_array()
