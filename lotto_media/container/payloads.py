"""Chunk payloads other than the headers: frame packets (FRME), audio (audh/audp, and version 1's
audi) and metadata (meta). The codec's own bytes inside a frame packet are opaque here."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from fractions import Fraction

from ..audio import AudioPacket, AudioParams
from ..errors import FormatError, InputError
from .chunks import FORMAT_VERSION, _I64_MAX, _I64_MIN, _U32_MAX, _is_printable_ascii
from .header import _as_fraction, _check_fraction

_FRAME_PREFIX_V1 = struct.Struct(">Iq")
#: version 2: group, pts, duration (0 = unknown)
_FRAME_PREFIX = struct.Struct(">IqI")


@dataclass
class FramePacket:
    """One coded frame: the group whose header it needs, its timestamp and duration (in the
    stream's time base; duration 0 = unknown), the codec's opaque bytes."""

    group: int
    pts: int
    payload: bytes
    duration: int = 0

    def to_bytes(self) -> bytes:
        """The version-2 FRME payload: group u32, pts i64, duration u32, then the codec bytes."""
        return _FRAME_PREFIX.pack(self.group, self.pts, self.duration) + self.payload

    @classmethod
    def from_bytes(cls, payload: bytes | memoryview, format_version: int = FORMAT_VERSION) -> "FramePacket":
        prefix = _FRAME_PREFIX_V1 if format_version == 1 else _FRAME_PREFIX
        if len(payload) < prefix.size:
            raise FormatError(f"frame packet of {len(payload)} bytes is shorter than its {prefix.size}-byte prefix")
        values = prefix.unpack_from(payload)
        duration = values[2] if format_version >= 2 else 0
        return cls(group=values[0], pts=values[1], payload=bytes(payload[prefix.size :]), duration=duration)


def encode_audio_payload(codec: str, data: bytes) -> bytes:
    """The version-1 audi payload: codec name length u8, codec name (ASCII), then the bytes as-is."""
    if not isinstance(codec, str) or not 1 <= len(codec) <= 255 or not _is_printable_ascii(codec):
        raise InputError(f"audio codec name {codec!r} must be 1..255 printable ASCII characters")
    return bytes([len(codec)]) + codec.encode("ascii") + bytes(data)


def decode_audio_payload(payload: bytes | memoryview) -> tuple[str, bytes]:
    if len(payload) < 1 or len(payload) < 1 + payload[0] or payload[0] == 0:
        raise FormatError("audio chunk: codec name length does not match the bytes present")
    name_end = 1 + payload[0]
    codec = bytes(payload[1:name_end]).decode("ascii", errors="replace")
    if not _is_printable_ascii(codec):
        raise FormatError("audio chunk: codec name is not printable ASCII")
    return codec, bytes(payload[name_end:])


_AUDIO_NUMBERS = struct.Struct(">IHIIQI")
_AUDIO_PACKET_HEAD = struct.Struct(">BqqqI")
_AUDIO_KEY, _AUDIO_HAS_PTS, _AUDIO_HAS_DTS = 1, 2, 4


def _short_text(text: str, what: str) -> bytes:
    raw = text.encode("ascii", "replace")
    if len(raw) > 255 or not (raw == b"" or _is_printable_ascii(text)):
        raise InputError(f"audio {what} {text!r} must be at most 255 printable ASCII characters")
    return bytes([len(raw)]) + raw


def encode_audio_header(params: AudioParams) -> bytes:
    """The audh payload: codec, layout and sample format names (u8 length + ASCII each), then
    sample rate u32, channels u16, time base u32/u32, bit rate u64, frame size u32, extradata
    length u32 and the extradata."""
    if not params.codec:
        raise InputError("audio codec name is empty")
    tb = _as_fraction(params.time_base, "audio time_base")
    problem = _check_fraction(tb, "audio time_base")
    if problem:
        raise InputError(problem)
    numbers = (params.sample_rate, params.channels, tb.numerator, tb.denominator, params.bit_rate, params.frame_size)
    limits = (_U32_MAX, 0xFFFF, _U32_MAX, _U32_MAX, 2**64 - 1, _U32_MAX)
    if any(not 0 <= v <= limit for v, limit in zip(numbers, limits)):
        raise InputError(f"audio parameters out of range: {params}")
    return (
        _short_text(params.codec, "codec")
        + _short_text(params.layout, "layout")
        + _short_text(params.sample_format, "sample format")
        + _AUDIO_NUMBERS.pack(*numbers)
        + struct.pack(">I", len(params.extradata))
        + bytes(params.extradata)
    )


def decode_audio_header(payload: bytes | memoryview) -> AudioParams:
    data, position, texts = bytes(payload), 0, []
    for what in ("codec", "layout", "sample format"):
        if position >= len(data) or position + 1 + data[position] > len(data):
            raise FormatError(f"audio header: {what} name runs past the chunk")
        raw = data[position + 1 : position + 1 + data[position]]
        text = raw.decode("ascii", "replace")
        if raw and not _is_printable_ascii(text):
            raise FormatError(f"audio header: {what} name is not printable ASCII")
        texts.append(text)
        position += 1 + len(raw)
    if not texts[0]:
        raise FormatError("audio header: empty codec name")
    if len(data) < position + _AUDIO_NUMBERS.size + 4:
        raise FormatError("audio header: truncated")
    rate, channels, tb_num, tb_den, bit_rate, frame_size = _AUDIO_NUMBERS.unpack_from(data, position)
    position += _AUDIO_NUMBERS.size
    (extra_length,) = struct.unpack_from(">I", data, position)
    position += 4
    if extra_length != len(data) - position:
        raise FormatError(f"audio header: extradata length {extra_length} does not match the {len(data) - position} bytes present")
    if tb_num == 0 or tb_den == 0:
        raise FormatError(f"audio header: time base {tb_num}/{tb_den} must have non-zero terms")
    return AudioParams(texts[0], rate, channels, texts[1], texts[2], Fraction(tb_num, tb_den), bit_rate, frame_size,
                       data[position:])


def encode_audio_packets(packets: list[AudioPacket]) -> bytes:
    """The audp payload: count u32, then per packet flags u8 (1 key, 2 pts present, 4 dts
    present), pts i64, dts i64, duration i64, size u32 and the packet's bytes unchanged."""
    parts = [struct.pack(">I", len(packets))]
    for p in packets:
        flags = (_AUDIO_KEY if p.keyframe else 0) | (_AUDIO_HAS_PTS if p.pts is not None else 0) | (
            _AUDIO_HAS_DTS if p.dts is not None else 0)
        for value in (p.pts, p.dts, p.duration):
            if value is not None and not _I64_MIN <= value <= _I64_MAX:
                raise InputError(f"audio packet time {value} does not fit in 64 bits")
        parts.append(_AUDIO_PACKET_HEAD.pack(flags, p.pts or 0, p.dts or 0, p.duration, len(p.data)))
        parts.append(bytes(p.data))
    return b"".join(parts)


def decode_audio_packets(payload: bytes | memoryview) -> list[AudioPacket]:
    data = bytes(payload)
    if len(data) < 4:
        raise FormatError("audio packets: truncated")
    (count,) = struct.unpack_from(">I", data)
    # every packet needs its head: a count larger than that is damage, not a reason to allocate
    if count > (len(data) - 4) // _AUDIO_PACKET_HEAD.size:
        raise FormatError(f"audio packets: count {count} does not fit the {len(data)}-byte chunk")
    position, packets = 4, []
    for _ in range(count):
        if position + _AUDIO_PACKET_HEAD.size > len(data):
            raise FormatError("audio packets: truncated packet header")
        flags, pts, dts, duration, size = _AUDIO_PACKET_HEAD.unpack_from(data, position)
        position += _AUDIO_PACKET_HEAD.size
        if flags & ~(_AUDIO_KEY | _AUDIO_HAS_PTS | _AUDIO_HAS_DTS):
            raise FormatError(f"audio packets: unknown flags 0x{flags:02x}")
        if size > len(data) - position:
            raise FormatError("audio packets: packet runs past the chunk")
        packets.append(AudioPacket(data[position : position + size], pts if flags & _AUDIO_HAS_PTS else None,
                                   dts if flags & _AUDIO_HAS_DTS else None, duration, bool(flags & _AUDIO_KEY)))
        position += size
    if position != len(data):
        raise FormatError(f"audio packets: {len(data) - position} stray bytes")
    return packets


def encode_metadata_payload(meta: dict) -> bytes:
    """Canonical JSON (sorted keys, no NaN) so that the same metadata always gives the same bytes."""
    if not isinstance(meta, dict):
        raise InputError(f"metadata must be a dict, got {type(meta).__name__}")
    try:
        text = json.dumps(meta, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InputError(f"metadata cannot be stored as JSON: {error}") from None
    return text.encode("utf-8")


def decode_metadata_payload(payload: bytes | memoryview) -> dict:
    try:
        meta = json.loads(bytes(payload).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FormatError("metadata chunk is not valid UTF-8 JSON") from None
    if not isinstance(meta, dict):
        raise FormatError("metadata chunk is not a JSON object")
    return meta
