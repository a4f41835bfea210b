"""Codec payloads carried by the container: the group header (small networks) and the frame
packet (frame header, mask, latents). Layouts are in docs/FORMAT.md, Part 3."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from . import entropy, params
from ..model.motion import FIELD_BLOCKS, MotionField, as_field, vector_differences, vectors_from_differences
from ..model.config import ModelConfig
from ..errors import FormatError, UnsupportedError

#: payload versions of format version 1 and 2 streams (the first byte of every GHDR / FRME payload);
#: a version-2 stream's group with predicted frames has a version-3 header (it adds their networks)
GROUP_VERSION_1, GROUP_VERSION, GROUP_VERSION_PREDICTED = 1, 2, 3
FRAME_VERSION_1, FRAME_VERSION = 1, 2
#: a predicted frame whose motion is a field of block vectors (model.motion.MotionField), each
#: coded as its difference from the field's base vector (version 3) or from its
#: neighbours' median (version 4, model.motion.vector_differences); the encoder writes the shorter
FRAME_VERSION_FIELD, FRAME_VERSION_FIELD_PREDICTED = 3, 4
FIELD_VERSIONS = (FRAME_VERSION_FIELD, FRAME_VERSION_FIELD_PREDICTED)
#: a predicted frame whose prediction tools are listed in a byte after its mask code
#: (``PredictionTools``): so far, overlapped block compensation
FRAME_VERSION_TOOLS = 5
_FRAME_HEAD_V2 = struct.Struct("<BBBBI")
#: a predicted frame's motion vector, after its mask code
_MOTION = struct.Struct("<hh")
#: frame version 3: block size (u8), blocks per column and per row (u16 each), the translation
#: (i16 x, y), exp-Golomb order (u8) and length (u32) of the code of the block differences
_FIELD_HEAD = struct.Struct("<BHHhhBI")
_I16 = (-(1 << 15), (1 << 15) - 1)
#: largest exp-Golomb order of a motion field code (the group header's parameter codes too)
MAX_FIELD_ORDER = 15


class FrameType(IntEnum):
    """How a frame's pixels are made. INTRA frames use only their own latents and the group's
    networks. PREDICTED frames add the residual that their latents and the group's networks for
    predicted frames make to their reference frame's decoded picture; 2..255 are reserved."""

    INTRA = 0
    PREDICTED = 1


class MaskCoding(IntEnum):
    """How a frame's supermask is coded: whole, or as the positions where it differs from the
    mask of its reference frame (consecutive frames of a group keep most of their mask)."""

    ABSOLUTE = 0
    DELTA = 1


class PredictionTools:
    """The tools byte of a version-5 frame packet: bits 0-1 the motion (0 one vector, 1 a field,
    2 a field of overlapped blocks; 3 reserved), bit 2 a field's vectors coded against the
    neighbours' median (else against the base vector); bits 3-7 reserved, zero."""

    MOTION_MASK, VECTOR, FIELD, OVERLAPPED = 0b11, 0, 1, 2
    MEDIAN = 1 << 2
    KNOWN = 0b111


@dataclass(frozen=True)
class GroupHeader:
    """What the frames of a group share: the ARM width and the quantised small networks of its
    intra frames and, when it has predicted frames, those of its predicted frames."""

    arm_hidden: int
    nets: params.QuantizedNetworks
    predicted_arm_hidden: int = 0
    predicted_nets: params.QuantizedNetworks | None = None


def _network_set(nets: params.QuantizedNetworks, arm_hidden: int) -> bytes:
    if not 1 <= arm_hidden <= 255:
        raise ValueError(f"ARM hidden width {arm_hidden} does not fit the group header")
    return bytes([arm_hidden]) + params.to_bytes(nets)


def pack_group(header: GroupHeader) -> bytes:
    """version 2 (u8) | ARM hidden width (u8) | the three modules' parameters; a group with
    predicted frames: version 3 (u8) | the same for intra frames | the same for predicted frames."""
    intra = _network_set(header.nets, header.arm_hidden)
    if header.predicted_nets is None:
        return bytes([GROUP_VERSION]) + intra
    return bytes([GROUP_VERSION_PREDICTED]) + intra + _network_set(header.predicted_nets, header.predicted_arm_hidden)


def unpack_group(payload: bytes, config: ModelConfig, format_version: int = 2) -> GroupHeader:
    """Parse a GHDR payload. ``config`` is the stream's network; in format version 1 it also
    gives the ARM width, in version 2 the group header does."""
    if not payload:
        raise FormatError("group header: empty")
    allowed = (GROUP_VERSION_1,) if format_version == 1 else (GROUP_VERSION, GROUP_VERSION_PREDICTED)
    if payload[0] not in allowed:
        raise UnsupportedError(
            f"group header version {payload[0]} does not belong in a format-version-{format_version} stream "
            f"(expected {' or '.join(map(str, allowed))})"
        )
    if format_version == 1:
        nets, used = params.from_bytes(payload[1:], config)
        position = 1 + used
        header = GroupHeader(config.arm_hidden, nets)
    else:
        arm_hidden, nets, position = _read_network_set(payload, 1, config)
        header = GroupHeader(arm_hidden, nets)
        if payload[0] == GROUP_VERSION_PREDICTED:
            p_arm_hidden, p_nets, position = _read_network_set(payload, position, config)
            header = GroupHeader(arm_hidden, nets, p_arm_hidden, p_nets)
    if position != len(payload):
        raise FormatError(f"group header: {len(payload) - position} unexpected trailing bytes")
    return header


def _read_network_set(payload: bytes, position: int, config: ModelConfig) -> tuple[int, params.QuantizedNetworks, int]:
    if len(payload) <= position or not payload[position]:
        raise FormatError("group header: missing or zero ARM width")
    arm_hidden = payload[position]
    nets, used = params.from_bytes(payload[position + 1 :], config.with_arm_hidden(arm_hidden))
    return arm_hidden, nets, position + 1 + used


@dataclass(frozen=True)
class FramePayload:
    """A frame packet's codec bytes: its type, its mask coding, the frame it depends on (counted
    back in decode order within the group, 0 = none), and the mask and latent codes."""

    mask: bytes
    latents: bytes
    frame_type: FrameType = FrameType.INTRA
    mask_coding: MaskCoding = MaskCoding.ABSOLUTE
    reference: int = 0
    #: a predicted frame's motion (model.motion.MotionField; (mx, my) for one translation), in
    #: quarter samples of the first plane
    motion: MotionField | tuple[int, int] = (0, 0)


def _reference_problem(frame_type: int, mask_coding: int, reference: int) -> bool:
    """A frame refers to an earlier one exactly when its mask is a delta or it is predicted."""
    return (mask_coding == MaskCoding.DELTA or frame_type == FrameType.PREDICTED) != (reference > 0)


def pack_frame(payload: FramePayload) -> bytes:
    """version (u8) | frame type (u8) | mask coding (u8) | reference (u8) | mask code length
    (u32 LE) | mask code | [predicted frames: the motion] | latent code. The motion is one vector
    (x, y: i16 LE each) in version 2, a field of block vectors in version 3 or 4 (``_pack_field``);
    a predicted frame whose field is one translation is written as version 2. A field of
    overlapped blocks is version 5: the tools byte (``PredictionTools``), then the field."""
    if _reference_problem(payload.frame_type, payload.mask_coding, payload.reference):
        raise ValueError("a delta-coded mask or a predicted frame needs a reference frame, and only they do")
    field = as_field(payload.motion)
    version, motion = FRAME_VERSION, b""
    if payload.frame_type != FrameType.PREDICTED:
        if field.vectors.any():
            raise ValueError("only a predicted frame has motion")
    elif field.overlapped and not field.is_translation:
        median, motion = _pack_field(field)
        version, motion = FRAME_VERSION_TOOLS, bytes([PredictionTools.OVERLAPPED | (PredictionTools.MEDIAN if median else 0)]) + motion
    elif field.is_translation:
        motion = _MOTION.pack(*(int(v) for v in field.vectors[0, 0]))
    else:
        median, motion = _pack_field(field)
        version = FRAME_VERSION_FIELD_PREDICTED if median else FRAME_VERSION_FIELD
    head = _FRAME_HEAD_V2.pack(version, payload.frame_type, payload.mask_coding, payload.reference, len(payload.mask))
    return head + payload.mask + motion + payload.latents


def _pack_field(field: MotionField) -> tuple[bool, bytes]:
    """(against the median, motion bytes): block (u8) | rows, cols (u16 LE each) | base x, y (i16 LE
    each) | k (u8) | code length L (u32 LE) | L bytes: the signed exp-Golomb code (order k) of each
    block's vector less its predicted vector, blocks in raster order, padded with zero bits to a
    byte. The prediction is the base vector (version 3) or the neighbours' median (version 4,
    ``vector_differences``); the shorter code is written (the median on a tie)."""
    rows, cols = field.vectors.shape[:2]
    if field.block not in FIELD_BLOCKS[1:] or not (1 <= rows < 1 << 16 and 1 <= cols < 1 << 16):
        raise ValueError(f"a motion field of {rows}x{cols} blocks of {field.block} does not fit the frame packet")
    if field.vectors.min() < _I16[0] or field.vectors.max() > _I16[1] or not all(_I16[0] <= v <= _I16[1] for v in field.base):
        raise ValueError("motion vectors must fit 16 bits")
    candidates = []
    for median, differences in ((True, vector_differences(field)), (False, field.vectors - np.array(field.base))):
        flat = differences.reshape(-1)
        k = entropy.best_exp_golomb_order(flat)
        code = entropy.exp_golomb_encode(flat, k)
        candidates.append((median, _FIELD_HEAD.pack(field.block, rows, cols, *field.base, k, len(code)) + code))
    return min(candidates, key=lambda candidate: len(candidate[1]))  # the first, the median's, on a tie


def _unpack_field(data: bytes, at: int, median: bool, overlapped: bool = False) -> tuple[MotionField, int]:
    """A motion field whose vectors are coded against the neighbours' median or the base vector."""
    if len(data) < at + _FIELD_HEAD.size:
        raise FormatError("frame packet: truncated motion field")
    block, rows, cols, base_x, base_y, k, length = _FIELD_HEAD.unpack_from(data, at)
    if block not in FIELD_BLOCKS[1:] or not rows or not cols:
        raise FormatError(f"frame packet: motion field of {rows}x{cols} blocks of {block} samples")
    if k > MAX_FIELD_ORDER:
        raise FormatError(f"frame packet: motion field code order {k} (at most {MAX_FIELD_ORDER})")
    at += _FIELD_HEAD.size
    if length > len(data) - at:
        raise FormatError("frame packet: motion field code exceeds the packet")
    count = 2 * rows * cols
    if count > 8 * length:  # every value takes at least one bit: refused before anything of its size
        raise FormatError(f"frame packet: {count} motion values cannot fit {length} bytes")
    values, used = entropy.exp_golomb_decode(data[at : at + length], count, k, "frame packet: motion field")
    if used != length:
        raise FormatError("frame packet: motion field code has unused bytes")
    differences = values.reshape(rows, cols, 2)
    if np.abs(differences).max() > _I16[1] - _I16[0]:  # no two 16-bit vectors differ by more
        raise FormatError("frame packet: motion vector difference beyond 16 bits")
    if median:
        vectors = vectors_from_differences(differences, (base_x, base_y))
    else:
        vectors = differences + np.array([base_x, base_y])
    if vectors.min() < _I16[0] or vectors.max() > _I16[1]:
        raise FormatError("frame packet: motion vector beyond 16 bits")
    return MotionField(block, vectors, (base_x, base_y), overlapped), at + length


def _unpack_tools(data: bytes, at: int) -> tuple[MotionField | tuple[int, int], int]:
    """A version-5 packet's tools byte and motion; returns the motion and where the latents start."""
    if len(data) <= at:
        raise FormatError("frame packet: truncated prediction tools")
    tools = data[at]
    at += 1
    kind = tools & PredictionTools.MOTION_MASK
    if tools & ~PredictionTools.KNOWN or kind > PredictionTools.OVERLAPPED:
        raise FormatError(f"frame packet: prediction tools byte {tools:#04x} has reserved values")
    motion: MotionField | tuple[int, int]
    if kind == PredictionTools.VECTOR:
        if tools & PredictionTools.MEDIAN:
            raise FormatError("frame packet: a median vector code without a motion field")
        if len(data) < at + _MOTION.size:
            raise FormatError("frame packet: truncated motion vector")
        motion = _MOTION.unpack_from(data, at)
        at += _MOTION.size
    else:
        motion, at = _unpack_field(data, at, bool(tools & PredictionTools.MEDIAN), kind == PredictionTools.OVERLAPPED)
    return motion, at


def unpack_frame(data: bytes, format_version: int = 2) -> FramePayload:
    if format_version == 1:
        return _unpack_frame_v1(data)
    if len(data) < _FRAME_HEAD_V2.size:
        raise FormatError("frame packet: truncated")
    version, frame_type, mask_coding, reference, mask_len = _FRAME_HEAD_V2.unpack_from(data, 0)
    if version not in (FRAME_VERSION, *FIELD_VERSIONS, FRAME_VERSION_TOOLS):
        raise UnsupportedError(f"frame packet version {version} is not supported in format version 2 "
                               f"(expected {FRAME_VERSION} to {FRAME_VERSION_TOOLS})")
    if version in (*FIELD_VERSIONS, FRAME_VERSION_TOOLS) and frame_type != FrameType.PREDICTED:
        raise FormatError(f"frame packet: version {version} is for predicted frames")
    if frame_type not in FrameType.__members__.values():
        raise UnsupportedError(f"frame packet: frame type {frame_type} is not supported by this build")
    if mask_coding not in MaskCoding.__members__.values():
        raise FormatError(f"frame packet: mask coding {mask_coding} unknown")
    if _reference_problem(frame_type, mask_coding, reference):
        raise FormatError(f"frame packet: frame type {frame_type} and mask coding {mask_coding} with reference {reference}")
    if frame_type == FrameType.PREDICTED and reference > 1:
        raise UnsupportedError(f"frame packet: a predicted frame with reference {reference} (only 1, the previous frame)")
    if mask_len > len(data) - _FRAME_HEAD_V2.size:
        raise FormatError("frame packet: mask length exceeds the packet")
    body = _FRAME_HEAD_V2.size
    latents_at = body + mask_len
    motion: MotionField | tuple[int, int] = (0, 0)
    if version == FRAME_VERSION_TOOLS:
        motion, latents_at = _unpack_tools(data, latents_at)
    elif version in FIELD_VERSIONS:
        motion, latents_at = _unpack_field(data, latents_at, version == FRAME_VERSION_FIELD_PREDICTED)
    elif frame_type == FrameType.PREDICTED:
        if len(data) < latents_at + _MOTION.size:
            raise FormatError("frame packet: truncated motion vector")
        motion = _MOTION.unpack_from(data, latents_at)
        latents_at += _MOTION.size
    return FramePayload(
        mask=bytes(data[body : body + mask_len]),
        latents=bytes(data[latents_at:]),
        frame_type=FrameType(frame_type),
        mask_coding=MaskCoding(mask_coding),
        reference=reference,
        motion=motion,
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
