"""The ``.lotto`` sidecar container: a signature, then CRC-protected chunks (layout: docs/FORMAT.md, Part 1).

The codec's own packets (group headers, frame packets) are opaque bytes here; this module only frames
them, orders them and protects them. Design choices, and why:

* Chunks in the PNG style (type, length, payload, CRC-32) so that any damage is *detected* and the
  reader can stop at the first bad chunk and still hand back every intact frame before it.
* The writer counts offsets itself instead of calling ``tell()``, so it can write to a pipe; the
  random-access index therefore costs nothing extra and is always written.
* Nothing the reader allocates is sized by an unchecked field: lengths are checked against the chunk
  limit, and payloads are read in bounded pieces, so a corrupt length can only cost the bytes that
  are really there.
"""

from __future__ import annotations

import io
import json
import logging
import math
import operator
import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO, Iterator

from ..model.config import ModelConfig
from ..errors import FormatError, InputError, LottoError, UnsupportedError
from ..audio import AudioPacket, AudioParams
from ..frame import PIXEL_FORMATS, ColorTags

log = logging.getLogger(__name__)

#: ``\x8b`` (non-ASCII: catches 7-bit channels and text sniffing), ``LOTTO`` (recognisable in a hex
#: dump), ``\r\n`` (a text-mode copy in either direction changes these bytes).
SIGNATURE = b"\x8bLOTTO\r\n"
#: the version this build writes; it reads every version from 1 up to it
FORMAT_VERSION = 2

MAX_CHUNK_LENGTH = 1 << 30
MAX_DIMENSION = 16384
MAX_PIXELS = 1 << 26
#: Payloads are read from streams in pieces no larger than this, whatever the length field says.
READ_PIECE = 1 << 20

SHDR, GHDR, FRME, AUDIO, META, INDEX, SEND = b"SHDR", b"GHDR", b"FRME", b"audi", b"meta", b"indx", b"SEND"
#: version 2 audio: the codec parameters once, then batches of coded packets, anywhere among the frames
AUDIO_HEADER, AUDIO_PACKETS = b"audh", b"audp"
#: Chunks that may only appear after every GHDR/FRME (``audi`` is version 1's only).
TRAILER_TYPES = (AUDIO, META, INDEX)

#: pixel format codes stored in the sequence header; the names are those of ``frame.PIXEL_FORMATS``.
PIX_FMT_CODES: dict[str, int] = {"gray": 0, "rgb24": 1, "yuv420p": 2, "yuv420p10le": 3}
PIX_FMT_NAMES: dict[int, str] = {code: name for name, code in PIX_FMT_CODES.items()}
assert set(PIX_FMT_CODES) == set(PIXEL_FORMATS), "every pixel format needs a code in the container"

_U32_MAX = 2**32 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_MAX_COLOR_RANGE = 2  # AVColorRange: unspecified, limited, full
_MAX_CHROMA_LOCATION = 6  # AVChromaLocation: unspecified, left, center, topleft, top, bottomleft, bottom

_CHUNK_HEAD = struct.Struct(">4sI")
_CRC = struct.Struct(">I")
# version, flags, width, height, pix_fmt, time base (2), frame rate (2), colour (5), seed,
# synth widths (3), n_levels, mod_hidden, arm_hidden, out_channels, mask_ratio, lmbda, quality,
# n_frames, preset length; the preset name follows.
_SHDR_FIXED_V1 = struct.Struct(">BHIIBIIII5BQ3HBHHBdddIB")
# version 2: version, flags, width, height, pix_fmt, time base (2), frame rate (2), colour (5),
# rotation, seed, synth widths (3), n_levels, mod_hidden, out_channels, mask_ratio, lmbda,
# quality, n_frames, gop, preset length, source length; the preset name and the source name
# follow. The ARM width moved to the group header.
_SHDR_FIXED = struct.Struct(">BHIIBIIII5BhQ3HBHBdddIIBH")
SHDR_MIN_LENGTH = min(_SHDR_FIXED_V1.size, _SHDR_FIXED.size)
MAX_SOURCE_NAME = 1024
SHDR_MAX_LENGTH = _SHDR_FIXED.size + 255 + MAX_SOURCE_NAME
_FRAME_PREFIX_V1 = struct.Struct(">Iq")
#: version 2: group, pts, duration (0 = unknown)
_FRAME_PREFIX = struct.Struct(">IqI")
_INDEX_COUNTS = struct.Struct(">II")
_INDEX_GROUP = struct.Struct(">Q")
_INDEX_FRAME = struct.Struct(">QIq")
_INDEX_TAIL = struct.Struct(">I")
_SEND_CHUNK_SIZE = _CHUNK_HEAD.size + _CRC.size


def _chunk_crc(chunk_type: bytes, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(chunk_type))


def _is_printable_ascii(text: str) -> bool:
    return all(0x20 < ord(c) < 0x7F for c in text)


# --------------------------------------------------------------------------------------------
# Sequence header
# --------------------------------------------------------------------------------------------


def _as_fraction(value: object, what: str) -> Fraction:
    if isinstance(value, Fraction):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Fraction(value)
    raise InputError(f"sequence header: {what} must be a Fraction, got {value!r}")


def _check_fraction(value: Fraction, what: str) -> str | None:
    if value <= 0:
        return f"{what} {value} must be positive"
    if value.numerator > _U32_MAX or value.denominator > _U32_MAX:
        return f"{what} {value} does not fit in 32-bit numerator/denominator (use e.g. Fraction(30000, 1001))"
    return None


@dataclass(frozen=True)
class SequenceHeader:
    """What a decoder needs before the first group: picture format, timing, colour, network, settings.

    ``frame_rate`` None means unknown (variable-frame-rate sources carry pts per frame instead);
    ``quality`` None means the encoder was given lambda directly; ``n_frames`` 0 means unknown (a
    hint only: readers never rely on it); ``gop`` is the longest group the encoder makes (0
    unknown, a hint). Bit depth is implied by ``pix_fmt``. ``rotation`` is the display rotation
    (degrees counter-clockwise) and ``source`` the name of the file the frames came from.

    ``model`` is the stream's network: one random synthesis network for the whole stream (its
    shape includes the modulation width, since the synthesis' last layer reads o0). In format
    version 2 each group header carries the ARM width, so ``model.arm_hidden`` of a version-2
    header is only the default and the groups' own widths apply. ``format_version`` is the
    version read (1 or 2); the writer always writes FORMAT_VERSION.
    """

    width: int
    height: int
    pix_fmt: str
    model: ModelConfig
    time_base: Fraction = Fraction(1, 1)
    frame_rate: Fraction | None = None
    color: ColorTags = ColorTags()
    preset: str = "medium"
    lmbda: float = 0.0
    quality: float | None = None
    n_frames: int = 0
    gop: int = 0
    rotation: int = 0
    source: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        # Normalise the numeric types once so that equality after a round trip is plain equality
        # (numpy integers and Fractions given as ints are welcome).
        for name in ("width", "height", "n_frames", "gop", "rotation"):
            value = getattr(self, name)
            if not isinstance(value, int) and hasattr(value, "__index__"):
                object.__setattr__(self, name, operator.index(value))
        object.__setattr__(self, "time_base", _as_fraction(self.time_base, "time_base"))
        if self.frame_rate is not None:
            object.__setattr__(self, "frame_rate", _as_fraction(self.frame_rate, "frame_rate"))
        object.__setattr__(self, "lmbda", float(self.lmbda))
        if self.quality is not None:
            object.__setattr__(self, "quality", float(self.quality))
        problem = self._first_problem()
        if problem:
            raise InputError(f"sequence header: {problem}")

    def _first_problem(self) -> str | None:
        """The first invalid field, described for a user; None when the header is valid."""
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= MAX_DIMENSION:
                return f"{name} {value} out of range 1..{MAX_DIMENSION}"
        if self.width * self.height > MAX_PIXELS:
            return f"picture size {self.width}x{self.height} exceeds {MAX_PIXELS} pixels"
        if self.pix_fmt not in PIX_FMT_CODES:
            return f"pix_fmt {self.pix_fmt!r} unknown (choose from {', '.join(PIX_FMT_CODES)})"
        if not isinstance(self.model, ModelConfig):
            return f"model must be a ModelConfig, got {type(self.model).__name__}"
        problem = _check_fraction(self.time_base, "time_base")
        if problem:
            return problem
        if self.frame_rate is not None:
            problem = _check_fraction(self.frame_rate, "frame_rate")
            if problem:
                return problem
        if not isinstance(self.color, ColorTags):
            return f"color must be ColorTags, got {type(self.color).__name__}"
        for name, value in vars(self.color).items():
            if not isinstance(value, int) or not 0 <= value <= 255:
                return f"color {name} {value} out of range 0..255"
        if self.color.color_range > _MAX_COLOR_RANGE:
            return f"color color_range {self.color.color_range} out of range 0..{_MAX_COLOR_RANGE}"
        if self.color.chroma_location > _MAX_CHROMA_LOCATION:
            return f"color chroma_location {self.color.chroma_location} out of range 0..{_MAX_CHROMA_LOCATION}"
        if not isinstance(self.preset, str) or len(self.preset) > 255 or not _is_printable_ascii(self.preset):
            return f"preset {self.preset!r} must be at most 255 printable ASCII characters"
        if not math.isfinite(self.lmbda) or self.lmbda < 0:
            return f"lmbda {self.lmbda} must be finite and >= 0"
        if self.quality is not None and not 0.0 <= self.quality <= 100.0:
            return f"quality {self.quality} out of range 0..100"
        for name in ("n_frames", "gop"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= _U32_MAX:
                return f"{name} {value} out of range 0..{_U32_MAX}"
        if not isinstance(self.rotation, int) or not -360 < self.rotation < 360:
            return f"rotation {self.rotation} out of range -359..359"
        if not isinstance(self.source, str) or len(self.source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_NAME:
            return f"source name must be a string of at most {MAX_SOURCE_NAME} UTF-8 bytes"
        if self.format_version not in (1, FORMAT_VERSION):
            return f"format_version {self.format_version} unknown"
        return None

    @property
    def bit_depth(self) -> int:
        return PIXEL_FORMATS[self.pix_fmt][1]

    def to_bytes(self) -> bytes:
        """The SHDR payload of format version 2 (layout in docs/FORMAT.md, Part 1)."""
        if self.format_version != FORMAT_VERSION:
            raise InputError(f"this build writes format version {FORMAT_VERSION} only")
        model, color = self.model, self.color
        frame_rate = (0, 0) if self.frame_rate is None else (self.frame_rate.numerator, self.frame_rate.denominator)
        source = self.source.encode("utf-8", "replace")
        fixed = _SHDR_FIXED.pack(
            FORMAT_VERSION,
            0,  # flags: none defined in version 2
            self.width,
            self.height,
            PIX_FMT_CODES[self.pix_fmt],
            self.time_base.numerator,
            self.time_base.denominator,
            *frame_rate,
            color.color_range,
            color.matrix,
            color.primaries,
            color.transfer,
            color.chroma_location,
            self.rotation,
            model.seed,
            *model.synth_widths,
            model.n_levels,
            model.mod_hidden,
            model.out_channels,
            model.mask_ratio,  # float64 bits: every Python float round-trips exactly
            self.lmbda,
            math.nan if self.quality is None else self.quality,
            self.n_frames,
            self.gop,
            len(self.preset),
            len(source),
        )
        return fixed + self.preset.encode("ascii") + source

    @classmethod
    def from_bytes(cls, payload: bytes) -> "SequenceHeader":
        """Parse and validate an SHDR payload of version 1 or 2; FormatError (UnsupportedError for
        a newer version)."""
        if not SHDR_MIN_LENGTH <= len(payload) <= SHDR_MAX_LENGTH:
            raise FormatError(
                f"sequence header: length {len(payload)} out of range {SHDR_MIN_LENGTH}..{SHDR_MAX_LENGTH}"
            )
        version = payload[0]
        if version == 0:
            raise FormatError("sequence header: format_version 0 is invalid")
        if version > FORMAT_VERSION:
            raise UnsupportedError(
                f"sequence header: format_version {version} is newer than this reader ({FORMAT_VERSION})"
            )
        layout = _SHDR_FIXED_V1 if version == 1 else _SHDR_FIXED
        if len(payload) < layout.size:
            raise FormatError(f"sequence header: length {len(payload)} is shorter than version {version}'s {layout.size}")
        fields = list(layout.unpack_from(payload))
        (version, flags, width, height, pix_code, tb_num, tb_den, fr_num, fr_den) = fields[:9]
        color_values = fields[9:14]
        if version == 1:
            rotation, gop, source_length = 0, 0, 0
            seed, w1, w2, w3, n_levels, mod_hidden, arm_hidden, out_channels = fields[14:22]
            mask_ratio, lmbda, quality, n_frames, preset_length = fields[22:]
        else:
            rotation = fields[14]
            seed, w1, w2, w3, n_levels, mod_hidden, out_channels = fields[15:22]
            arm_hidden = ModelConfig.arm_hidden
            mask_ratio, lmbda, quality, n_frames, gop, preset_length, source_length = fields[22:]
        if flags:
            raise UnsupportedError(f"sequence header: flags 0x{flags:04x} use features this reader lacks")
        if pix_code not in PIX_FMT_NAMES:
            raise FormatError(f"sequence header: pix_fmt code {pix_code} unknown (0..{len(PIX_FMT_NAMES) - 1})")
        if tb_num == 0 or tb_den == 0:
            raise FormatError(f"sequence header: time_base {tb_num}/{tb_den} must have non-zero terms")
        if (fr_num == 0) != (fr_den == 0):
            raise FormatError(f"sequence header: frame_rate {fr_num}/{fr_den} must be 0/0 (unknown) or positive")
        if len(payload) != layout.size + preset_length + source_length:
            raise FormatError(
                f"sequence header: preset length {preset_length} and source length {source_length} do not "
                f"match the {len(payload) - layout.size} bytes present"
            )
        try:
            preset = payload[layout.size : layout.size + preset_length].decode("ascii")
        except UnicodeDecodeError:
            raise FormatError("sequence header: preset name is not ASCII") from None
        try:
            source = payload[layout.size + preset_length :].decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("sequence header: source name is not UTF-8") from None
        try:
            model = ModelConfig(
                seed=seed,
                synth_widths=(w1, w2, w3),
                n_levels=n_levels,
                mod_hidden=mod_hidden,
                arm_hidden=arm_hidden,
                out_channels=out_channels,
                mask_ratio=mask_ratio,
            )
            return cls(
                width=width,
                height=height,
                pix_fmt=PIX_FMT_NAMES[pix_code],
                model=model,
                time_base=Fraction(tb_num, tb_den),
                frame_rate=None if fr_num == 0 else Fraction(fr_num, fr_den),
                color=ColorTags(*color_values),
                preset=preset,
                lmbda=lmbda,
                quality=None if math.isnan(quality) else quality,
                n_frames=n_frames,
                gop=gop,
                rotation=rotation,
                source=source,
                format_version=version,
            )
        except InputError as error:
            # The same checks that stop a user building a bad header reject a bad stream.
            message = str(error)
            prefix = "" if message.startswith("sequence header:") else "sequence header: model "
            raise FormatError(prefix + message) from None


# --------------------------------------------------------------------------------------------
# Packets, index, container
# --------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class IndexEntry:
    """Where a frame's FRME chunk starts (bytes from the signature), its group and pts."""

    offset: int
    group: int
    pts: int


@dataclass
class ContainerIndex:
    """The indx chunk: chunk offsets of every GHDR (in group order) and every FRME (in decode order)."""

    group_offsets: list[int] = field(default_factory=list)
    frames: list[IndexEntry] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        parts = [_INDEX_COUNTS.pack(len(self.group_offsets), len(self.frames))]
        parts += [_INDEX_GROUP.pack(offset) for offset in self.group_offsets]
        parts += [_INDEX_FRAME.pack(e.offset, e.group, e.pts) for e in self.frames]
        body_length = sum(len(p) for p in parts)
        # The trailing total length lets a seeking reader find the index from the end of the file.
        return b"".join(parts) + _INDEX_TAIL.pack(body_length + _INDEX_TAIL.size)

    @classmethod
    def from_bytes(cls, payload: bytes | memoryview) -> "ContainerIndex":
        if len(payload) < _INDEX_COUNTS.size + _INDEX_TAIL.size:
            raise FormatError(f"index of {len(payload)} bytes is too short")
        n_groups, n_frames = _INDEX_COUNTS.unpack_from(payload)
        expected = _INDEX_COUNTS.size + n_groups * _INDEX_GROUP.size + n_frames * _INDEX_FRAME.size + _INDEX_TAIL.size
        if expected != len(payload):
            raise FormatError(
                f"index counts ({n_groups} groups, {n_frames} frames) do not match its {len(payload)} bytes"
            )
        (tail,) = _INDEX_TAIL.unpack_from(payload, len(payload) - _INDEX_TAIL.size)
        if tail != len(payload):
            raise FormatError(f"index tail length {tail} does not match its {len(payload)} bytes")
        position = _INDEX_COUNTS.size
        groups = [offset for (offset,) in _INDEX_GROUP.iter_unpack(payload[position : position + n_groups * 8])]
        position += n_groups * _INDEX_GROUP.size
        frame_bytes = payload[position : position + n_frames * _INDEX_FRAME.size]
        frames = [IndexEntry(*entry) for entry in _INDEX_FRAME.iter_unpack(frame_bytes)]
        return cls(group_offsets=groups, frames=frames)


@dataclass
class Container:
    """Everything read from a .lotto file (see ``read_container``)."""

    header: SequenceHeader
    groups: list[bytes]
    frames: list[FramePacket]
    metadata: dict
    #: the source's audio (format version 2): codec parameters and every packet, in order
    audio: AudioParams | None
    audio_packets: list[AudioPacket]
    #: None when the file was complete and intact; otherwise one line saying what was lost and where.
    damage: str | None
    #: Bytes read from the source (the file size for an intact file).
    total_bytes: int
    #: The verified indx chunk, or None when the file had none (or reading stopped before it).
    index: ContainerIndex | None = None
    #: a version-1 ``audi`` chunk: (codec name, bytes as the encoder stored them)
    legacy_audio: tuple[str, bytes] | None = None


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


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


class ContainerWriter:
    """Writes a .lotto stream to any binary stream, pipes included (offsets are counted, not asked).

    Group headers, frames and audio packets are written as they come (audio interleaved with the
    frames, so nothing waits in memory). Metadata may be given at any time; it is written by
    ``close()`` after the last frame, followed by the index and the end marker.
    Used as a context manager, an exception inside the block leaves the end marker out, so that a
    reader reports the file as incomplete instead of trusting it.
    """

    def __init__(self, stream: BinaryIO, header: SequenceHeader, index: bool | None = None) -> None:
        """``index``: write the indx chunk; by default only when the file holds more than one
        frame (a single picture has nothing to seek, and the index would cost it 52 bytes)."""
        if isinstance(stream, io.TextIOBase):
            raise InputError("cannot write a .lotto stream to a text-mode stream (open it with 'wb')")
        if not isinstance(header, SequenceHeader):
            raise InputError(f"header must be a SequenceHeader, got {type(header).__name__}")
        self._stream = stream
        self.header = header
        self.bytes_written = 0
        self._index = ContainerIndex()
        self._audio_header_written = False
        self._metadata: bytes | None = None
        self._closed = False
        self._write_index = index
        self._write_bytes(SIGNATURE)
        self._write_chunk(SHDR, header.to_bytes())

    def __enter__(self) -> "ContainerWriter":
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True  # no SEND: the partial file must read as damaged, not as complete
            self._flush()

    @property
    def n_groups(self) -> int:
        return len(self._index.group_offsets)

    @property
    def n_frames(self) -> int:
        return len(self._index.frames)

    def write_group(self, payload: bytes) -> int:
        """Write a group header (the codec's opaque bytes); returns its group index (0, 1, ...)."""
        self._check_open()
        self._index.group_offsets.append(self.bytes_written)
        self._write_chunk(GHDR, payload)
        return self.n_groups - 1

    def write_frame(self, payload: bytes, group: int, pts: int = 0, duration: int = 0) -> None:
        """Write a frame packet that decodes with the header of ``group`` (already written)."""
        self._check_open()
        if not 0 <= group < self.n_groups:
            raise InputError(f"frame refers to group {group}, but only {self.n_groups} group header(s) were written")
        if not _I64_MIN <= pts <= _I64_MAX:
            raise InputError(f"frame pts {pts} does not fit in 64 bits")
        if not 0 <= duration <= _U32_MAX:
            raise InputError(f"frame duration {duration} out of range 0..{_U32_MAX}")
        offset = self.bytes_written
        self._write_chunk(FRME, FramePacket(group, pts, payload, duration).to_bytes())
        self._index.frames.append(IndexEntry(offset, group, pts))

    def write_audio_header(self, params: AudioParams) -> None:
        """The source's audio codec parameters; once, before any audio packet."""
        self._check_open()
        if self._audio_header_written:
            raise InputError("the audio header was already written for this .lotto file")
        self._write_chunk(AUDIO_HEADER, self._checked_length(encode_audio_header(params), "audio header"))
        self._audio_header_written = True

    def write_audio_packets(self, packets: list[AudioPacket]) -> None:
        """Coded audio packets, unchanged, written now (call it between frames to interleave)."""
        self._check_open()
        if not self._audio_header_written:
            raise InputError("audio packets need the audio header first (write_audio_header)")
        if packets:
            self._write_chunk(AUDIO_PACKETS, self._checked_length(encode_audio_packets(list(packets)), "audio packets"))

    def write_metadata(self, meta: dict) -> None:
        """Free-form metadata as a JSON object (written at ``close()``); at most once per file."""
        self._check_open()
        if self._metadata is not None:
            raise InputError("metadata was already given for this .lotto file")
        self._metadata = self._checked_length(encode_metadata_payload(meta), "metadata")

    def close(self) -> None:
        """Write audio, metadata, index and the end marker; flush, but leave the stream open."""
        if self._closed:
            return
        self._closed = True
        if self._metadata is not None:
            self._write_chunk(META, self._metadata)
        if self._write_index or (self._write_index is None and self.n_frames > 1):
            self._write_chunk(INDEX, self._checked_length(self._index.to_bytes(), "index"))
        self._write_chunk(SEND, b"")
        self._flush()

    # -- internals ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise InputError("the .lotto writer is already closed")

    @staticmethod
    def _checked_length(payload: bytes, what: str) -> bytes:
        if len(payload) > MAX_CHUNK_LENGTH:
            raise InputError(f"{what} of {len(payload)} bytes exceeds the chunk limit of {MAX_CHUNK_LENGTH} bytes")
        return payload

    def _write_chunk(self, chunk_type: bytes, payload: bytes) -> None:
        self._checked_length(payload, chunk_type.decode("ascii"))
        # Three writes rather than one concatenation: a payload may be large.
        self._write_bytes(_CHUNK_HEAD.pack(chunk_type, len(payload)))
        self._write_bytes(payload)
        self._write_bytes(_CRC.pack(_chunk_crc(chunk_type, payload)))

    def _write_bytes(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._stream.write(view)
            if written is None:  # streams that do not report a count write everything
                written = len(view)
            if written <= 0:
                raise OSError("the output stream accepted no bytes")
            view = view[written:]
        self.bytes_written += len(data)

    def _flush(self) -> None:
        flush = getattr(self._stream, "flush", None)
        if flush is not None:
            flush()


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


class _MemorySource:
    """Bytes already in memory: reads are zero-copy slices, never longer than what is there."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self.position = 0

    def read(self, size: int) -> memoryview:
        piece = self._view[self.position : self.position + size]
        self.position += len(piece)
        return piece

    def trailing_bytes(self) -> int:
        return len(self._view) - self.position


class _StreamSource:
    """A binary stream (file, pipe, socket): read in bounded pieces so that a corrupt length field
    only ever costs the bytes actually present."""

    def __init__(self, stream: BinaryIO, name: str) -> None:
        if isinstance(stream, io.TextIOBase):
            raise InputError(f"{name}: stream is in text mode; open it in binary mode ('rb')")
        self._stream = stream
        self._name = name
        self.position = 0

    def read(self, size: int) -> bytes:
        pieces = bytearray()
        while len(pieces) < size:
            piece = self._stream.read(min(size - len(pieces), READ_PIECE))
            if isinstance(piece, str):
                raise InputError(f"{self._name}: stream is in text mode; open it in binary mode ('rb')")
            if not piece:  # end of stream (b"" or None from a drained non-blocking source)
                break
            pieces += piece
        self.position += len(pieces)
        return bytes(pieces)

    def trailing_bytes(self) -> int:
        """Bytes left after the current position, when the stream can tell without consuming a pipe."""
        try:
            if not self._stream.seekable():
                return 0
            here = self._stream.tell()
            end = self._stream.seek(0, io.SEEK_END)
            self._stream.seek(here)
            return max(0, end - here)
        except (OSError, AttributeError, ValueError):
            return 0


_Source = _MemorySource | _StreamSource


def _describe_bad_signature(head: bytes) -> str:
    if not head:
        return "empty file"
    if SIGNATURE.startswith(head):
        return "truncated inside the signature"
    if head.startswith(SIGNATURE[:6] + b"\n"):
        return "not a .lotto file (bad signature: CR LF became LF, was the file copied in text mode?)"
    if head[:1] == bytes([SIGNATURE[0] & 0x7F]) and head[1:6] == b"LOTTO":
        return "not a .lotto file (bad signature: high bit stripped by a 7-bit transfer)"
    return "not a .lotto file (bad signature)"


def _read_sequence_header(source: _Source, name: str) -> SequenceHeader:
    head = bytes(source.read(len(SIGNATURE)))
    if head != SIGNATURE:
        raise FormatError(f"{name}: {_describe_bad_signature(head)}")
    chunk_head = bytes(source.read(_CHUNK_HEAD.size))
    if len(chunk_head) < _CHUNK_HEAD.size:
        raise FormatError(f"{name}: truncated before the sequence header")
    chunk_type, length = _CHUNK_HEAD.unpack(chunk_head)
    if chunk_type != SHDR:
        raise FormatError(f"{name}: first chunk is {chunk_type!r}, expected the sequence header (SHDR)")
    if not SHDR_MIN_LENGTH <= length <= SHDR_MAX_LENGTH:
        raise FormatError(
            f"{name}: sequence header length {length} out of range {SHDR_MIN_LENGTH}..{SHDR_MAX_LENGTH}"
        )
    payload = source.read(length)
    crc = bytes(source.read(_CRC.size))
    if len(payload) < length or len(crc) < _CRC.size:
        raise FormatError(f"{name}: truncated in the sequence header")
    if _CRC.unpack(crc)[0] != _chunk_crc(SHDR, payload):
        raise FormatError(f"{name}: sequence header CRC mismatch")
    try:
        return SequenceHeader.from_bytes(bytes(payload))
    except LottoError as error:
        raise type(error)(f"{name}: {error}") from None


class _Damage(Exception):
    """Internal: reading stops at this chunk; ``unsupported`` marks a valid-looking but unknown chunk."""

    def __init__(self, message: str, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


@dataclass(frozen=True)
class GroupChunk:
    """A group header as read: its index (0, 1, ... in file order), the codec bytes, its offset."""

    index: int
    payload: bytes
    offset: int


@dataclass(frozen=True)
class FrameChunk:
    """A frame packet as read, with the offset of its chunk."""

    packet: FramePacket
    offset: int


@dataclass(frozen=True)
class AudioHeaderChunk:
    params: AudioParams


@dataclass(frozen=True)
class AudioPacketsChunk:
    packets: list[AudioPacket]


StreamChunk = GroupChunk | FrameChunk | AudioHeaderChunk | AudioPacketsChunk


class StreamReader:
    """Reads a .lotto stream incrementally: the sequence header when opened, then one chunk at a
    time from ``chunks()``, so that a long stream read from a pipe is never held whole in memory.

    Opening raises FormatError for a bad signature or sequence header (UnsupportedError for a
    newer format version). After ``chunks()`` is exhausted, ``damage`` is None when the stream
    ended cleanly with its end marker, otherwise one line saying what was lost and where (and
    ``unsupported`` tells whether the cause is an unknown critical chunk rather than corruption);
    ``metadata`` and ``index`` hold the trailer chunks that were read.
    """

    def __init__(self, source: bytes | bytearray | memoryview | BinaryIO, name: str = "<stream>") -> None:
        self.name = name
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._source: _Source = _MemorySource(source)
        else:
            self._source = _StreamSource(source, name)
        self.header = _read_sequence_header(self._source, name)
        self.metadata: dict = {}
        self.index: ContainerIndex | None = None
        self.legacy_audio: tuple[str, bytes] | None = None
        self.damage: str | None = None
        self.unsupported = False
        self.n_groups = 0
        self.n_frames = 0
        self._observed = ContainerIndex()  # offsets as actually read, to verify the indx chunk
        self._in_trailer = False
        self._audio_header_seen = False
        self._counts: dict[bytes, int] = {}
        self._last_type: bytes | None = None
        self._damaged_type: bytes | None = None
        self._started = False

    @property
    def total_bytes(self) -> int:
        """Bytes read from the source so far (the file size once an intact file is read)."""
        return self._source.position

    def chunks(self) -> Iterator[StreamChunk]:
        """Yield group headers, frames and audio in file order until the end marker or the first
        damage (then recorded in ``damage``). Can be iterated once."""
        if self._started:
            raise InputError(f"{self.name}: the stream was already read")
        self._started = True
        try:
            while True:
                start = self._source.position
                chunk_type, payload = self._next_chunk(start)
                if chunk_type == SEND:
                    self.damage = self._finish(start, payload)
                    break
                item = self._dispatch(chunk_type, payload, start)
                self._last_type = chunk_type
                if item is not None:
                    yield item
        except _Damage as damage:
            self.unsupported = damage.unsupported
            self.damage = str(damage)
        if self.damage is not None:
            self.damage = f"{self.damage}; {self._frames_note()}"

    def _label(self, chunk_type: bytes, start: int) -> str:
        return f"{chunk_type.decode('ascii')} chunk {self._counts[chunk_type]} at byte {start}"

    def _next_chunk(self, start: int) -> tuple[bytes, bytes | memoryview]:
        self._damaged_type = None
        head = bytes(self._source.read(_CHUNK_HEAD.size))
        if not head:
            raise _Damage(f"missing end marker (SEND): file ends at byte {start}")
        if len(head) < _CHUNK_HEAD.size:
            raise _Damage(f"truncated in a chunk header at byte {start}")
        chunk_type, length = _CHUNK_HEAD.unpack(head)
        if not chunk_type.isalpha() or not chunk_type.isascii():
            raise _Damage(f"bad chunk type {chunk_type!r} at byte {start}")
        self._counts[chunk_type] = self._counts.get(chunk_type, 0) + 1
        self._damaged_type = chunk_type
        label = self._label(chunk_type, start)
        if length > MAX_CHUNK_LENGTH:
            raise _Damage(f"{label}: length {length} exceeds the limit {MAX_CHUNK_LENGTH}")
        payload = self._source.read(length)
        crc = bytes(self._source.read(_CRC.size))
        if len(payload) < length or len(crc) < _CRC.size:
            raise _Damage(f"truncated in {label}")
        if _CRC.unpack(crc)[0] != _chunk_crc(chunk_type, payload):
            raise _Damage(f"CRC mismatch in {label}")
        return chunk_type, payload

    def _dispatch(self, chunk_type: bytes, payload: bytes | memoryview, start: int) -> StreamChunk | None:
        label = self._label(chunk_type, start)
        version = self.header.format_version
        if chunk_type in (GHDR, FRME, AUDIO_HEADER, AUDIO_PACKETS) and self._in_trailer:
            raise _Damage(f"{label}: comes after the metadata/index chunks")
        if self._last_type == INDEX:
            raise _Damage(f"{label}: only SEND may follow the index")
        try:
            if chunk_type == GHDR:
                self._observed.group_offsets.append(start)
                self.n_groups += 1
                return GroupChunk(self.n_groups - 1, bytes(payload), start)
            if chunk_type == FRME:
                packet = FramePacket.from_bytes(payload, version)
                if packet.group >= self.n_groups:
                    raise FormatError(f"frame refers to group {packet.group}, but only {self.n_groups} group(s) precede it")
                self._observed.frames.append(IndexEntry(start, packet.group, packet.pts))
                self.n_frames += 1
                return FrameChunk(packet, start)
            if chunk_type == SHDR:
                raise FormatError("second sequence header")
            if version >= 2 and chunk_type == AUDIO_HEADER:
                if self._audio_header_seen:
                    raise FormatError("appears twice")
                self._audio_header_seen = True
                return AudioHeaderChunk(decode_audio_header(payload))
            if version >= 2 and chunk_type == AUDIO_PACKETS:
                if not self._audio_header_seen:
                    raise FormatError("audio packets before the audio header")
                return AudioPacketsChunk(decode_audio_packets(payload))
            if chunk_type in TRAILER_TYPES:
                self._in_trailer = True
                self._add_trailer_chunk(chunk_type, payload)
                return None
            if chunk_type[:1].isupper():
                raise _Damage(f"{label}: unknown critical chunk (written by a newer version?)", unsupported=True)
            log.debug("skipping unknown ancillary chunk %s", label)
            return None
        except FormatError as error:
            raise _Damage(f"{label}: {error}") from None

    def _add_trailer_chunk(self, chunk_type: bytes, payload: bytes | memoryview) -> None:
        if self._counts[chunk_type] > 1:
            raise FormatError("appears twice")
        if chunk_type == AUDIO:
            self.legacy_audio = decode_audio_payload(payload)
        elif chunk_type == META:
            self.metadata = decode_metadata_payload(payload)
        else:
            index = ContainerIndex.from_bytes(payload)
            if index != self._observed:
                raise FormatError("index disagrees with the chunks read")
            self.index = index

    def _finish(self, start: int, payload: bytes | memoryview) -> str | None:
        if len(payload):
            return f"{self._label(SEND, start)}: end marker is not empty"
        trailing = self._source.trailing_bytes()
        if trailing:
            return f"{trailing} unexpected bytes after the end marker at byte {self._source.position}"
        return None

    def _frames_note(self) -> str:
        intact = self.n_frames
        if self.header.n_frames:
            return f"{intact} of {self.header.n_frames} frames intact"
        if self._damaged_type == FRME:
            return f"{intact} of {intact + 1}+ frames intact"
        return f"{intact} frames intact"


def read_container(source: bytes | BinaryIO, name: str = "<stream>") -> Container:
    """Read a whole .lotto file from bytes or a binary stream (pipes included).

    A bad signature or sequence header raises FormatError (UnsupportedError for a newer format
    version). Any damage after the header stops reading: every intact frame before it is returned
    with ``damage`` describing what was lost, unless no frame is intact, in which case FormatError
    (UnsupportedError for an unknown critical chunk) is raised with that description. Long
    streams are better read chunk by chunk with ``StreamReader``.
    """
    reader = StreamReader(source, name)
    groups: list[bytes] = []
    frames: list[FramePacket] = []
    audio: AudioParams | None = None
    audio_packets: list[AudioPacket] = []
    for item in reader.chunks():
        if isinstance(item, GroupChunk):
            groups.append(item.payload)
        elif isinstance(item, FrameChunk):
            frames.append(item.packet)
        elif isinstance(item, AudioHeaderChunk):
            audio = item.params
        else:
            audio_packets.extend(item.packets)
    if reader.damage is not None:
        if not frames:
            error = UnsupportedError if reader.unsupported else FormatError
            raise error(f"{name}: {reader.damage}")
        log.warning("%s: %s", name, reader.damage)
    return Container(
        header=reader.header,
        groups=groups,
        frames=frames,
        metadata=reader.metadata,
        audio=audio,
        audio_packets=audio_packets,
        damage=reader.damage,
        total_bytes=reader.total_bytes,
        index=reader.index,
        legacy_audio=reader.legacy_audio,
    )


# --------------------------------------------------------------------------------------------
# Random access (seekable files only)
# --------------------------------------------------------------------------------------------


def _read_at(source: bytes | BinaryIO, offset: int, size: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(memoryview(source)[offset : offset + size])
    source.seek(offset)
    return _StreamSource(source, "<seek>").read(size)


def _source_size(source: bytes | BinaryIO) -> int:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return len(source)
    return source.seek(0, io.SEEK_END)


def read_chunk_at(source: bytes | BinaryIO, offset: int, name: str = "<stream>") -> tuple[str, bytes]:
    """Read and CRC-check the chunk starting at ``offset`` (e.g. from the index): (type, payload)."""
    head = _read_at(source, offset, _CHUNK_HEAD.size)
    if len(head) < _CHUNK_HEAD.size:
        raise FormatError(f"{name}: no chunk at byte {offset} (file too short)")
    chunk_type, length = _CHUNK_HEAD.unpack(head)
    if not chunk_type.isalpha() or not chunk_type.isascii():
        raise FormatError(f"{name}: no chunk at byte {offset} (bad chunk type {chunk_type!r})")
    if length > MAX_CHUNK_LENGTH:
        raise FormatError(f"{name}: chunk at byte {offset}: length {length} exceeds the limit {MAX_CHUNK_LENGTH}")
    body = _read_at(source, offset + _CHUNK_HEAD.size, length + _CRC.size)
    if len(body) < length + _CRC.size:
        raise FormatError(f"{name}: truncated in chunk at byte {offset}")
    payload, crc = body[:length], body[length:]
    if _CRC.unpack(crc)[0] != _chunk_crc(chunk_type, payload):
        raise FormatError(f"{name}: CRC mismatch in chunk at byte {offset}")
    return chunk_type.decode("ascii"), payload


def read_index(source: bytes | BinaryIO, name: str = "<stream>") -> ContainerIndex:
    """Find the index from the end of a complete file without reading the frames (seekable sources).

    Raises FormatError when the file has no intact index before its end marker; fall back to
    ``read_container`` then. The offsets are checked to point at GHDR/FRME chunks lazily, by
    ``read_chunk_at``, not here.
    """
    size = _source_size(source)
    tail_start = size - _SEND_CHUNK_SIZE - _CRC.size - _INDEX_TAIL.size
    if tail_start < len(SIGNATURE):
        raise FormatError(f"{name}: too short to hold an index")
    tail = _read_at(source, tail_start, size - tail_start)
    send = tail[-_SEND_CHUNK_SIZE:]
    if send != _CHUNK_HEAD.pack(SEND, 0) + _CRC.pack(_chunk_crc(SEND, b"")):
        raise FormatError(f"{name}: no end marker (SEND) at the end of the file; the file is incomplete")
    (index_length,) = _INDEX_TAIL.unpack_from(tail)
    index_start = size - _SEND_CHUNK_SIZE - _CRC.size - index_length - _CHUNK_HEAD.size
    if index_length > MAX_CHUNK_LENGTH or index_start < len(SIGNATURE):
        raise FormatError(f"{name}: no index before the end marker")
    chunk_type, payload = read_chunk_at(source, index_start, name)
    if chunk_type != INDEX.decode("ascii"):
        raise FormatError(f"{name}: no index before the end marker")
    try:
        return ContainerIndex.from_bytes(payload)
    except FormatError as error:
        raise FormatError(f"{name}: {error}") from None
