"""Codec payloads carried by the container: the group header (small networks) and the frame
packet (mask + latents). Layouts are in docs/FORMAT.md."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from . import params
from .config import ModelConfig
from .errors import FormatError, UnsupportedError

GROUP_VERSION = 1
FRAME_VERSION = 1


def pack_group(nets: params.QuantizedNetworks) -> bytes:
    return bytes([GROUP_VERSION]) + params.to_bytes(nets)


def unpack_group(payload: bytes, config: ModelConfig) -> params.QuantizedNetworks:
    if not payload:
        raise FormatError("group header: empty")
    if payload[0] != GROUP_VERSION:
        raise UnsupportedError(f"group header version {payload[0]} is not supported (this build reads {GROUP_VERSION})")
    nets, used = params.from_bytes(payload[1:], config)
    if used != len(payload) - 1:
        raise FormatError(f"group header: {len(payload) - 1 - used} unexpected trailing bytes")
    return nets


@dataclass(frozen=True)
class FramePayload:
    mask: bytes
    latents: bytes


def pack_frame(mask_code: bytes, latent_code: bytes) -> bytes:
    """version (u8) | mask code length (u32 LE) | mask code | latent code."""
    return struct.pack("<BI", FRAME_VERSION, len(mask_code)) + mask_code + latent_code


def unpack_frame(payload: bytes) -> FramePayload:
    if len(payload) < 5:
        raise FormatError("frame packet: truncated")
    version, mask_len = struct.unpack_from("<BI", payload, 0)
    if version != FRAME_VERSION:
        raise UnsupportedError(f"frame packet version {version} is not supported (this build reads {FRAME_VERSION})")
    if mask_len > len(payload) - 5:
        raise FormatError("frame packet: mask length exceeds the packet")
    return FramePayload(bytes(payload[5 : 5 + mask_len]), bytes(payload[5 + mask_len :]))
