"""Codec payloads carried by the container: the group header (small networks) and the frame
packet (frame header, mask, latents). Layouts are in docs/FORMAT.md, Part 3."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Callable

import numpy as np

from . import entropy, params
from ..model.motion import FIELD_BLOCKS, MotionField, as_field, vector_differences, vectors_from_differences
from ..model.arm import MAX_TEMPORAL
from ..model.config import ModelConfig
from ..errors import FormatError, UnsupportedError

#: payload versions of format version 1 and 2 streams (the first byte of every GHDR / FRME payload);
#: a version-2 stream's group with predicted frames has a version-3 header (it adds their networks)
GROUP_VERSION_1, GROUP_VERSION, GROUP_VERSION_PREDICTED, GROUP_VERSION_TEMPORAL = 1, 2, 3, 4
#: the header this encoder writes: a flags byte (``GroupFlags``) says which of the above layouts
#: it has, and each network set's parameters are range-coded (``params.set_to_bytes``) where
#: versions 2-4 coded them with exp-Golomb
GROUP_VERSION_CODED = 5
FRAME_VERSION_1, FRAME_VERSION = 1, 2
#: a predicted frame whose motion is a field of block vectors (model.motion.MotionField), each
#: coded as its difference from the field's base vector (version 3) or from its
#: neighbours' median (version 4, model.motion.vector_differences); earlier encoders wrote them,
#: this one writes every predicted frame as version 5 (``pack_frame`` writes them on request)
FRAME_VERSION_FIELD, FRAME_VERSION_FIELD_PREDICTED = 3, 4
FIELD_VERSIONS = (FRAME_VERSION_FIELD, FRAME_VERSION_FIELD_PREDICTED)
#: a predicted frame in the compact layout: a tools byte (``PredictionTools``: the motion's kind,
#: overlapped blocks, the vector code, a kept mask) and varints where versions 2-4 have fixed fields
FRAME_VERSION_COMPACT = 5
_FRAME_HEAD_V2 = struct.Struct("<BBBBI")
#: version, frame type, mask coding, reference: the first four bytes of every version-2+ packet
_FRAME_HEAD = struct.Struct("<BBBB")
_U32 = struct.Struct("<I")
#: a delta mask code of no change (u32 count 0), what a version-5 packet leaves out (tools bit 3)
EMPTY_MASK_DELTA = bytes(4)
#: version 5: log2 of a field's block size less 3, in the low bits of its first byte
_BLOCK_CODES = (8, 16, 32, 64)
#: version 5's varints are at most 5 bytes (values below 2^35)
MAX_VARINT_BYTES = 5
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
    neighbours' median (else against the base vector), bit 3 the frame keeps its reference's
    mask (no mask code follows); bits 4-7 reserved, zero."""

    MOTION_MASK, VECTOR, FIELD, OVERLAPPED = 0b11, 0, 1, 2
    MEDIAN = 1 << 2
    SAME_MASK = 1 << 3
    KNOWN = 0b1111


class GroupFlags:
    """The flags byte of a version-5 group header: bit 0 a network set for predicted frames
    follows the intra frames' one, bit 1 their ARM has temporal taps; bits 2-7 reserved, zero."""

    PREDICTED = 1
    TEMPORAL = 2
    KNOWN = 0b11


@dataclass(frozen=True)
class GroupHeader:
    """What the frames of a group share: the ARM width and the quantised small networks of its
    intra frames and, when it has predicted frames, those of its predicted frames."""

    arm_hidden: int
    nets: params.QuantizedNetworks
    predicted_arm_hidden: int = 0
    predicted_nets: params.QuantizedNetworks | None = None


def _network_set(nets: params.QuantizedNetworks, arm_hidden: int, legacy: bool = False) -> bytes:
    """ARM width (u8), the ARM's temporal taps (u8) when it has any, the modules' parameters."""
    if not 1 <= arm_hidden <= 255:
        raise ValueError(f"ARM hidden width {arm_hidden} does not fit the group header")
    taps = bytes([nets.arm_temporal]) if nets.arm_temporal else b""
    return bytes([arm_hidden]) + taps + (params.to_bytes(nets) if legacy else params.set_to_bytes(nets))


def pack_group(header: GroupHeader, *, legacy: bool = False) -> bytes:
    """version 5 (u8) | flags (u8, ``GroupFlags``) | the intra frames' network set | with
    predicted frames, theirs. A network set: ARM hidden width (u8), the ARM's temporal-tap count
    (u8) when it has taps, the range-coded parameters (``params.set_to_bytes``).

    ``legacy`` writes what earlier encoders wrote (for tests of the decoder's older paths):
    version 2 (intra frames only), 3 (with predicted frames) or 4 (their ARM has temporal taps),
    no flags byte, each set's parameters coded with exp-Golomb (``params.to_bytes``)."""
    if header.nets.arm_temporal:
        raise ValueError("the intra frames' ARM cannot have temporal taps")
    sets = _network_set(header.nets, header.arm_hidden, legacy)
    predicted = header.predicted_nets
    if predicted is not None:
        sets += _network_set(predicted, header.predicted_arm_hidden, legacy)
    if legacy:
        version = (GROUP_VERSION if predicted is None
                   else GROUP_VERSION_TEMPORAL if predicted.arm_temporal else GROUP_VERSION_PREDICTED)
        return bytes([version]) + sets
    flags = 0 if predicted is None else GroupFlags.PREDICTED | (GroupFlags.TEMPORAL if predicted.arm_temporal else 0)
    return bytes([GROUP_VERSION_CODED, flags]) + sets


def unpack_group(payload: bytes, config: ModelConfig, format_version: int = 2) -> GroupHeader:
    """Parse a GHDR payload. ``config`` is the stream's network; in format version 1 it also
    gives the ARM width, in version 2 the group header does."""
    if not payload:
        raise FormatError("group header: empty")
    allowed = ((GROUP_VERSION_1,) if format_version == 1
               else (GROUP_VERSION, GROUP_VERSION_PREDICTED, GROUP_VERSION_TEMPORAL, GROUP_VERSION_CODED))
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
        if payload[0] == GROUP_VERSION_CODED:
            if len(payload) < 2:
                raise FormatError("group header: flags byte missing")
            flags, position, read = payload[1], 2, params.set_from_bytes
            if flags & ~GroupFlags.KNOWN:
                raise FormatError(f"group header: unknown flags 0x{flags:02x}")
            if flags & GroupFlags.TEMPORAL and not flags & GroupFlags.PREDICTED:
                raise FormatError("group header: temporal taps flagged without predicted frames' networks")
            predicted, temporal = bool(flags & GroupFlags.PREDICTED), bool(flags & GroupFlags.TEMPORAL)
        else:
            position, read = 1, params.from_bytes
            predicted = payload[0] in (GROUP_VERSION_PREDICTED, GROUP_VERSION_TEMPORAL)
            temporal = payload[0] == GROUP_VERSION_TEMPORAL
        arm_hidden, nets, position = _read_network_set(payload, position, config, read)
        header = GroupHeader(arm_hidden, nets)
        if predicted:
            p_arm_hidden, p_nets, position = _read_network_set(payload, position, config, read, temporal=temporal)
            header = GroupHeader(arm_hidden, nets, p_arm_hidden, p_nets)
    if position != len(payload):
        raise FormatError(f"group header: {len(payload) - position} unexpected trailing bytes")
    return header


def _read_network_set(payload: bytes, position: int, config: ModelConfig,
                      read: Callable[[bytes, ModelConfig], tuple[params.QuantizedNetworks, int]], *,
                      temporal: bool = False) -> tuple[int, params.QuantizedNetworks, int]:
    if len(payload) <= position or not payload[position]:
        raise FormatError("group header: missing or zero ARM width")
    arm_hidden = payload[position]
    position += 1
    taps = 0
    if temporal:
        if len(payload) <= position or not 1 <= payload[position] <= MAX_TEMPORAL:
            raise FormatError(f"group header: the predicted frames' ARM needs 1..{MAX_TEMPORAL} temporal taps")
        taps = payload[position]
        position += 1
    nets, used = read(payload[position:], config.with_arm_hidden(arm_hidden).with_arm_temporal(taps))
    return arm_hidden, nets, position + used


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


def pack_frame(payload: FramePayload, version: int | None = None) -> bytes:
    """The frame packet (docs/FORMAT.md 3.2). Intra frames: version 2, version (u8) | frame type
    (u8) | mask coding (u8) | reference (u8) | mask code length (u32 LE) | mask code | latent code.
    Predicted frames: version 5 unless ``version`` asks for an older layout (2: one vector, i16 x
    and y after the mask code; 3 or 4: a field coded against the base vector or the neighbours'
    median, ``_field_bytes``): the same four bytes, the tools byte (``PredictionTools``), the
    mask code's length (varint) and code unless the mask is the reference's, the motion
    (``_compact_motion``), the latent code."""
    if _reference_problem(payload.frame_type, payload.mask_coding, payload.reference):
        raise ValueError("a delta-coded mask or a predicted frame needs a reference frame, and only they do")
    field = as_field(payload.motion)
    head = _FRAME_HEAD.pack(FRAME_VERSION, payload.frame_type, payload.mask_coding, payload.reference)
    if payload.frame_type != FrameType.PREDICTED:
        if field.vectors.any():
            raise ValueError("only a predicted frame has motion")
        if version not in (None, FRAME_VERSION):
            raise ValueError(f"an intra frame is written as version {FRAME_VERSION}")
        return head + _U32.pack(len(payload.mask)) + payload.mask + payload.latents
    if version in (None, FRAME_VERSION_COMPACT):
        tools, motion = _compact_motion(field)
        mask = _varint(len(payload.mask)) + payload.mask
        if payload.mask_coding == MaskCoding.DELTA and payload.mask == EMPTY_MASK_DELTA:
            tools, mask = tools | PredictionTools.SAME_MASK, b""
        return bytes([FRAME_VERSION_COMPACT]) + head[1:] + bytes([tools]) + mask + motion + payload.latents
    if field.overlapped and not field.is_translation:
        raise ValueError("overlapped blocks need frame version 5")
    if version == FRAME_VERSION and field.is_translation:
        motion = _MOTION.pack(*(int(v) for v in field.vectors[0, 0]))
    elif version in FIELD_VERSIONS and field.block:
        motion = _field_bytes(field, version == FRAME_VERSION_FIELD_PREDICTED)
    else:
        raise ValueError(f"frame version {version} cannot carry this motion")
    return bytes([version]) + head[1:] + _U32.pack(len(payload.mask)) + payload.mask + motion + payload.latents


def _compact_motion(field: MotionField) -> tuple[int, bytes]:
    """(tools bits, motion bytes) of version 5. One vector: zigzag varints of x and y. A field:
    a byte log2(B) - 3 + 4k, varints rows and cols, zigzag varints of the base vector, the
    varint length L of the code, then the L bytes of the signed exp-Golomb code (order k) of each
    block's vector less its predicted vector: the neighbours' median or the base vector,
    whichever code is shorter (the median on a tie)."""
    if field.is_translation:
        mx, my = (int(v) for v in field.vectors[0, 0])
        _check_vector_range(field)
        return PredictionTools.VECTOR, _varint(_zigzag(mx)) + _varint(_zigzag(my))
    _check_field(field)
    rows, cols = field.vectors.shape[:2]
    candidates = []
    for median in (True, False):
        k, code = _difference_code(field, median)
        head = bytes([_BLOCK_CODES.index(field.block) | k << 2]) + _varint(rows) + _varint(cols)
        head += _varint(_zigzag(field.base[0])) + _varint(_zigzag(field.base[1])) + _varint(len(code))
        candidates.append((median, head + code))
    median, motion = min(candidates, key=lambda candidate: len(candidate[1]))  # the median's on a tie
    kind = PredictionTools.OVERLAPPED if field.overlapped else PredictionTools.FIELD
    return kind | (PredictionTools.MEDIAN if median else 0), motion


def _check_vector_range(field: MotionField) -> None:
    values = [int(field.vectors.min()), int(field.vectors.max()), *field.base]
    if not all(_I16[0] <= v <= _I16[1] for v in values):
        raise ValueError("motion vectors must fit 16 bits")


def _check_field(field: MotionField) -> None:
    rows, cols = field.vectors.shape[:2]
    if field.block not in FIELD_BLOCKS[1:] or not (1 <= rows < 1 << 16 and 1 <= cols < 1 << 16):
        raise ValueError(f"a motion field of {rows}x{cols} blocks of {field.block} does not fit the frame packet")
    _check_vector_range(field)


def _field_bytes(field: MotionField, median: bool) -> bytes:
    """Versions 3 and 4: block (u8) | rows, cols (u16 LE each) | base x, y (i16 LE each) | k (u8) |
    code length L (u32 LE) | L bytes: the signed exp-Golomb code (order k) of each block's vector
    less its predicted vector (the base vector in version 3, the neighbours' median in version 4,
    ``vector_differences``), blocks in raster order, padded with zero bits to a byte."""
    _check_field(field)
    rows, cols = field.vectors.shape[:2]
    k, code = _difference_code(field, median)
    return _FIELD_HEAD.pack(field.block, rows, cols, *field.base, k, len(code)) + code


def _difference_code(field: MotionField, median: bool) -> tuple[int, bytes]:
    """(k, code): the signed exp-Golomb code, of the order k that makes it shortest, of each
    block's vector less its predicted vector (the neighbours' median, or the base vector), blocks
    in raster order, x then y."""
    differences = vector_differences(field) if median else field.vectors - np.array(field.base)
    flat = differences.reshape(-1)
    k = entropy.best_exp_golomb_order(flat)
    return k, entropy.exp_golomb_encode(flat, k)


def _varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits a byte, least significant first, the top bit set on all but the last."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zigzag(value: int) -> int:
    """0, -1, 1, -2, ... -> 0, 1, 2, 3, ..."""
    return 2 * value if value >= 0 else -2 * value - 1


def _read_varint(data: bytes, at: int, what: str, limit: int) -> tuple[int, int]:
    """A varint of at most ``MAX_VARINT_BYTES`` bytes whose value is at most ``limit``."""
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if at + i >= len(data):
            raise FormatError(f"frame packet: truncated {what}")
        byte = data[at + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if value > limit:
                raise FormatError(f"frame packet: {what} {value} (at most {limit})")
            return value, at + i + 1
    raise FormatError(f"frame packet: {what} longer than {MAX_VARINT_BYTES} bytes")


def _read_signed(data: bytes, at: int, what: str) -> tuple[int, int]:
    """A zigzag varint that must fit 16 bits."""
    value, at = _read_varint(data, at, what, 2 * _I16[1] + 1)
    return (value >> 1) ^ -(value & 1), at


def _unpack_field(data: bytes, at: int, median: bool) -> tuple[MotionField, int]:
    """A version-3 or -4 motion field (``_field_bytes``) and where the latent code starts."""
    if len(data) < at + _FIELD_HEAD.size:
        raise FormatError("frame packet: truncated motion field")
    block, rows, cols, base_x, base_y, k, length = _FIELD_HEAD.unpack_from(data, at)
    if block not in FIELD_BLOCKS[1:] or not rows or not cols:
        raise FormatError(f"frame packet: motion field of {rows}x{cols} blocks of {block} samples")
    if k > MAX_FIELD_ORDER:
        raise FormatError(f"frame packet: motion field code order {k} (at most {MAX_FIELD_ORDER})")
    return _field_code(data, at + _FIELD_HEAD.size, block, rows, cols, (base_x, base_y), k, length, median)


def _field_code(data: bytes, at: int, block: int, rows: int, cols: int, base: tuple[int, int], k: int, length: int,
                median: bool, overlapped: bool = False) -> tuple[MotionField, int]:
    """The field whose vector differences are the ``length`` bytes at ``at``."""
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
        vectors = vectors_from_differences(differences, base)
    else:
        vectors = differences + np.array(base)
    if vectors.min() < _I16[0] or vectors.max() > _I16[1]:
        raise FormatError("frame packet: motion vector beyond 16 bits")
    return MotionField(block, vectors, base, overlapped), at + length


def _unpack_compact(data: bytes, mask_coding: int) -> tuple[bytes, MotionField | tuple[int, int], int]:
    """Version 5 after its first four bytes: (mask code, motion, where the latent code starts)."""
    at = _FRAME_HEAD.size
    if len(data) <= at:
        raise FormatError("frame packet: truncated prediction tools")
    tools = data[at]
    at += 1
    kind = tools & PredictionTools.MOTION_MASK
    if tools & ~PredictionTools.KNOWN or kind > PredictionTools.OVERLAPPED:
        raise FormatError(f"frame packet: prediction tools byte {tools:#04x} has reserved values")
    if tools & PredictionTools.SAME_MASK:
        if mask_coding != MaskCoding.DELTA:
            raise FormatError("frame packet: the reference's mask kept, with an absolute mask coding")
        mask = EMPTY_MASK_DELTA
    else:
        mask_len, at = _read_varint(data, at, "mask length", len(data))
        if mask_len > len(data) - at:
            raise FormatError("frame packet: mask length exceeds the packet")
        mask, at = bytes(data[at : at + mask_len]), at + mask_len
    motion: MotionField | tuple[int, int]
    if kind == PredictionTools.VECTOR:
        if tools & PredictionTools.MEDIAN:
            raise FormatError("frame packet: a median vector code without a motion field")
        mx, at = _read_signed(data, at, "motion vector")
        my, at = _read_signed(data, at, "motion vector")
        return mask, (mx, my), at
    if len(data) <= at:
        raise FormatError("frame packet: truncated motion field")
    first = data[at]
    k, block = first >> 2, _BLOCK_CODES[first & 3]
    if k > MAX_FIELD_ORDER:
        raise FormatError(f"frame packet: motion field code order {k} (at most {MAX_FIELD_ORDER})")
    rows, at = _read_varint(data, at + 1, "motion field rows", (1 << 16) - 1)
    cols, at = _read_varint(data, at, "motion field columns", (1 << 16) - 1)
    if not rows or not cols:
        raise FormatError(f"frame packet: motion field of {rows}x{cols} blocks of {block} samples")
    base_x, at = _read_signed(data, at, "base vector")
    base_y, at = _read_signed(data, at, "base vector")
    length, at = _read_varint(data, at, "motion field code length", len(data))
    field, at = _field_code(data, at, block, rows, cols, (base_x, base_y), k, length,
                            bool(tools & PredictionTools.MEDIAN), kind == PredictionTools.OVERLAPPED)
    return mask, field, at


def unpack_frame(data: bytes, format_version: int = 2) -> FramePayload:
    if format_version == 1:
        return _unpack_frame_v1(data)
    if len(data) < _FRAME_HEAD.size:
        raise FormatError("frame packet: truncated")
    version, frame_type, mask_coding, reference = _FRAME_HEAD.unpack_from(data, 0)
    if version not in (FRAME_VERSION, *FIELD_VERSIONS, FRAME_VERSION_COMPACT):
        raise UnsupportedError(f"frame packet version {version} is not supported in format version 2 "
                               f"(expected {FRAME_VERSION} to {FRAME_VERSION_COMPACT})")
    if version in (*FIELD_VERSIONS, FRAME_VERSION_COMPACT) and frame_type != FrameType.PREDICTED:
        raise FormatError(f"frame packet: version {version} is for predicted frames")
    if frame_type not in FrameType.__members__.values():
        raise UnsupportedError(f"frame packet: frame type {frame_type} is not supported by this build")
    if mask_coding not in MaskCoding.__members__.values():
        raise FormatError(f"frame packet: mask coding {mask_coding} unknown")
    if _reference_problem(frame_type, mask_coding, reference):
        raise FormatError(f"frame packet: frame type {frame_type} and mask coding {mask_coding} with reference {reference}")
    if frame_type == FrameType.PREDICTED and reference > 1:
        raise UnsupportedError(f"frame packet: a predicted frame with reference {reference} (only 1, the previous frame)")
    motion: MotionField | tuple[int, int] = (0, 0)
    if version == FRAME_VERSION_COMPACT:
        mask, motion, latents_at = _unpack_compact(data, mask_coding)
    else:
        if len(data) < _FRAME_HEAD_V2.size:
            raise FormatError("frame packet: truncated")
        (mask_len,) = _U32.unpack_from(data, _FRAME_HEAD.size)
        if mask_len > len(data) - _FRAME_HEAD_V2.size:
            raise FormatError("frame packet: mask length exceeds the packet")
        mask = bytes(data[_FRAME_HEAD_V2.size : _FRAME_HEAD_V2.size + mask_len])
        latents_at = _FRAME_HEAD_V2.size + mask_len
        if version in FIELD_VERSIONS:
            motion, latents_at = _unpack_field(data, latents_at, version == FRAME_VERSION_FIELD_PREDICTED)
        elif frame_type == FrameType.PREDICTED:
            if len(data) < latents_at + _MOTION.size:
                raise FormatError("frame packet: truncated motion vector")
            motion = _MOTION.unpack_from(data, latents_at)
            latents_at += _MOTION.size
    return FramePayload(
        mask=mask,
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
