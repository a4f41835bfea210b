"""Codec payloads carried by the container: the group header (small networks) and the frame
packet (frame header, mask, latents). Layouts are in docs/FORMAT.md, Part 3."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from . import params
from ..model.config import ModelConfig
from ..errors import FormatError, UnsupportedError

#: payload versions of format version 1 and 2 streams (the first byte of every GHDR / FRME payload)
GROUP_VERSION_1, GROUP_VERSION = 1, 2
FRAME_VERSION_1, FRAME_VERSION = 1, 2

_FRAME_HEAD_V2 = struct.Struct("<BBBBI")


class FrameType(IntEnum):
    """How a frame's pixels are made. INTRA frames use only their own latents and the group's
    networks; 1..255 are reserved for predicted frame types."""

    INTRA = 0


class MaskCoding(IntEnum):
    """How a frame's supermask is coded: whole, or as the positions where it differs from the
    mask of its reference frame (consecutive frames of a group keep most of their mask)."""

    ABSOLUTE = 0
    DELTA = 1


@dataclass(frozen=True)
class GroupHeader:
    """What the frames of a group share: the ARM width and the quantised small networks."""

    arm_hidden: int
    nets: params.QuantizedNetworks


def pack_group(nets: params.QuantizedNetworks, arm_hidden: int) -> bytes:
    """version 2 (u8) | ARM hidden width (u8) | the three modules' parameters."""
    if not 1 <= arm_hidden <= 255:
        raise ValueError(f"ARM hidden width {arm_hidden} does not fit the group header")
    return bytes([GROUP_VERSION, arm_hidden]) + params.to_bytes(nets)


def unpack_group(payload: bytes, config: ModelConfig, format_version: int = 2) -> GroupHeader:
    """Parse a GHDR payload. ``config`` is the stream's network; in format version 1 it also
    gives the ARM width, in version 2 the group header does."""
    if not payload:
        raise FormatError("group header: empty")
    expected = GROUP_VERSION_1 if format_version == 1 else GROUP_VERSION
    if payload[0] != expected:
        raise UnsupportedError(
            f"group header version {payload[0]} does not belong in a format-version-{format_version} stream "
            f"(expected {expected})"
        )
    position = 1
    arm_hidden = config.arm_hidden
    if format_version >= 2:
        if len(payload) < 2 or not payload[1]:
            raise FormatError("group header: missing or zero ARM width")
        arm_hidden = payload[1]
        position = 2
    group_config = config.with_arm_hidden(arm_hidden)
    nets, used = params.from_bytes(payload[position:], group_config)
    if used != len(payload) - position:
        raise FormatError(f"group header: {len(payload) - position - used} unexpected trailing bytes")
    return GroupHeader(arm_hidden, nets)


@dataclass(frozen=True)
class FramePayload:
    """A frame packet's codec bytes: its type, its mask coding, the frame it depends on (counted
    back in decode order within the group, 0 = none), and the mask and latent codes."""

    mask: bytes
    latents: bytes
    frame_type: FrameType = FrameType.INTRA
    mask_coding: MaskCoding = MaskCoding.ABSOLUTE
    reference: int = 0


def pack_frame(payload: FramePayload) -> bytes:
    """version (u8) | frame type (u8) | mask coding (u8) | reference (u8) | mask code length
    (u32 LE) | mask code | latent code."""
    if (payload.mask_coding == MaskCoding.DELTA) != (payload.reference > 0):
        raise ValueError("a delta-coded mask needs a reference frame, and only it does")
    head = _FRAME_HEAD_V2.pack(FRAME_VERSION, payload.frame_type, payload.mask_coding, payload.reference, len(payload.mask))
    return head + payload.mask + payload.latents


def unpack_frame(data: bytes, format_version: int = 2) -> FramePayload:
    if format_version == 1:
        return _unpack_frame_v1(data)
    if len(data) < _FRAME_HEAD_V2.size:
        raise FormatError("frame packet: truncated")
    version, frame_type, mask_coding, reference, mask_len = _FRAME_HEAD_V2.unpack_from(data, 0)
    if version != FRAME_VERSION:
        raise UnsupportedError(f"frame packet version {version} is not supported in format version 2 (expected {FRAME_VERSION})")
    if frame_type not in FrameType.__members__.values():
        raise UnsupportedError(f"frame packet: frame type {frame_type} is not supported by this build")
    if mask_coding not in MaskCoding.__members__.values():
        raise FormatError(f"frame packet: mask coding {mask_coding} unknown")
    if (mask_coding == MaskCoding.DELTA) != (reference > 0):
        raise FormatError(f"frame packet: mask coding {mask_coding} with reference {reference}")
    if mask_len > len(data) - _FRAME_HEAD_V2.size:
        raise FormatError("frame packet: mask length exceeds the packet")
    body = _FRAME_HEAD_V2.size
    return FramePayload(
        mask=bytes(data[body : body + mask_len]),
        latents=bytes(data[body + mask_len :]),
        frame_type=FrameType(frame_type),
        mask_coding=MaskCoding(mask_coding),
        reference=reference,
    )


def _unpack_frame_v1(data: bytes) -> FramePayload:
    """version (u8) | mask code length (u32 LE) | mask code | latent code."""
    if len(data) < 5:
        raise FormatError("frame packet: truncated")
    version, mask_len = struct.unpack_from("<BI", data, 0)
    if version != FRAME_VERSION_1:
        raise UnsupportedError(f"frame packet version {version} does not belong in a format-version-1 stream")
    if mask_len > len(data) - 5:
        raise FormatError("frame packet: mask length exceeds the packet")
    return FramePayload(bytes(data[5 : 5 + mask_len]), bytes(data[5 + mask_len :]))
