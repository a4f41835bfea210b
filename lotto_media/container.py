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
from typing import BinaryIO

from .config import ModelConfig
from .errors import FormatError, InputError, LottoError, UnsupportedError
from .frame import PIXEL_FORMATS, ColorTags

log = logging.getLogger(__name__)

#: ``\x8b`` (non-ASCII: catches 7-bit channels and text sniffing), ``LOTTO`` (recognisable in a hex
#: dump), ``\r\n`` (a text-mode copy in either direction changes these bytes).
SIGNATURE = b"\x8bLOTTO\r\n"
FORMAT_VERSION = 1

MAX_CHUNK_LENGTH = 1 << 30
MAX_DIMENSION = 16384
MAX_PIXELS = 1 << 26
#: Payloads are read from streams in pieces no larger than this, whatever the length field says.
READ_PIECE = 1 << 20

SHDR, GHDR, FRME, AUDIO, META, INDEX, SEND = b"SHDR", b"GHDR", b"FRME", b"audi", b"meta", b"indx", b"SEND"
#: Chunks that may only appear after every GHDR/FRME.
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
_SHDR_FIXED = struct.Struct(">BHIIBIIII5BQ3HBHHBdddIB")
SHDR_MIN_LENGTH = _SHDR_FIXED.size
SHDR_MAX_LENGTH = _SHDR_FIXED.size + 255
_FRAME_PREFIX = struct.Struct(">Iq")
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
    hint only: readers never rely on it). Bit depth is implied by ``pix_fmt``.
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

    def __post_init__(self) -> None:
        # Normalise the numeric types once so that equality after a round trip is plain equality
        # (numpy integers and Fractions given as ints are welcome).
        for name in ("width", "height", "n_frames"):
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
        if not isinstance(self.n_frames, int) or not 0 <= self.n_frames <= _U32_MAX:
            return f"n_frames {self.n_frames} out of range 0..{_U32_MAX}"
        return None

    @property
    def bit_depth(self) -> int:
        return PIXEL_FORMATS[self.pix_fmt][1]

    def to_bytes(self) -> bytes:
        """The SHDR payload (layout in docs/FORMAT.md, Part 1)."""
        model, color = self.model, self.color
        frame_rate = (0, 0) if self.frame_rate is None else (self.frame_rate.numerator, self.frame_rate.denominator)
        fixed = _SHDR_FIXED.pack(
            FORMAT_VERSION,
            0,  # flags: none defined in version 1
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
            model.seed,
            *model.synth_widths,
            model.n_levels,
            model.mod_hidden,
            model.arm_hidden,
            model.out_channels,
            model.mask_ratio,  # float64 bits: every Python float round-trips exactly
            self.lmbda,
            math.nan if self.quality is None else self.quality,
            self.n_frames,
            len(self.preset),
        )
        return fixed + self.preset.encode("ascii")

    @classmethod
    def from_bytes(cls, payload: bytes) -> "SequenceHeader":
        """Parse and validate an SHDR payload; FormatError (UnsupportedError for a newer version)."""
        if not SHDR_MIN_LENGTH <= len(payload) <= SHDR_MAX_LENGTH:
            raise FormatError(
                f"sequence header: length {len(payload)} out of range {SHDR_MIN_LENGTH}..{SHDR_MAX_LENGTH}"
            )
        fields = _SHDR_FIXED.unpack_from(payload)
        (version, flags, width, height, pix_code, tb_num, tb_den, fr_num, fr_den) = fields[:9]
        color_values = fields[9:14]
        seed, w1, w2, w3, n_levels, mod_hidden, arm_hidden, out_channels = fields[14:22]
        mask_ratio, lmbda, quality, n_frames, preset_length = fields[22:]

        if version == 0:
            raise FormatError("sequence header: format_version 0 is invalid")
        if version > FORMAT_VERSION:
            raise UnsupportedError(
                f"sequence header: format_version {version} is newer than this reader ({FORMAT_VERSION})"
            )
        if flags:
            raise UnsupportedError(f"sequence header: flags 0x{flags:04x} use features this reader lacks")
        if pix_code not in PIX_FMT_NAMES:
            raise FormatError(f"sequence header: pix_fmt code {pix_code} unknown (0..{len(PIX_FMT_NAMES) - 1})")
        if tb_num == 0 or tb_den == 0:
            raise FormatError(f"sequence header: time_base {tb_num}/{tb_den} must have non-zero terms")
        if (fr_num == 0) != (fr_den == 0):
            raise FormatError(f"sequence header: frame_rate {fr_num}/{fr_den} must be 0/0 (unknown) or positive")
        if len(payload) != SHDR_MIN_LENGTH + preset_length:
            raise FormatError(
                f"sequence header: preset length {preset_length} does not match the "
                f"{len(payload) - SHDR_MIN_LENGTH} bytes present"
            )
        try:
            preset = payload[SHDR_MIN_LENGTH:].decode("ascii")
        except UnicodeDecodeError:
            raise FormatError("sequence header: preset name is not ASCII") from None
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
    """One coded frame: the group whose header it needs, its timestamp, the codec's opaque bytes."""

    group: int
    pts: int
    payload: bytes

    def to_bytes(self) -> bytes:
        """The FRME payload: group u32, pts i64, then the codec bytes."""
        return _FRAME_PREFIX.pack(self.group, self.pts) + self.payload

    @classmethod
    def from_bytes(cls, payload: bytes) -> "FramePacket":
        if len(payload) < _FRAME_PREFIX.size:
            raise FormatError(
                f"frame packet of {len(payload)} bytes is shorter than its {_FRAME_PREFIX.size}-byte prefix"
            )
        group, pts = _FRAME_PREFIX.unpack_from(payload)
        return cls(group=group, pts=pts, payload=bytes(payload[_FRAME_PREFIX.size :]))


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
    audio: tuple[str, bytes] | None
    #: None when the file was complete and intact; otherwise one line saying what was lost and where.
    damage: str | None
    #: Bytes read from the source (the file size for an intact file).
    total_bytes: int
    #: The verified indx chunk, or None when the file had none (or reading stopped before it).
    index: ContainerIndex | None = None


def encode_audio_payload(codec: str, data: bytes) -> bytes:
    """The audi payload: codec name length u8, codec name (ASCII), then the audio bytes as-is."""
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

    Group headers and frames are written as they come. Audio and metadata may be given at any time;
    they are written by ``close()`` after the last frame, followed by the index and the end marker.
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
        self._audio: bytes | None = None
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

    def write_frame(self, payload: bytes, group: int, pts: int = 0) -> None:
        """Write a frame packet that decodes with the header of ``group`` (already written)."""
        self._check_open()
        if not 0 <= group < self.n_groups:
            raise InputError(f"frame refers to group {group}, but only {self.n_groups} group header(s) were written")
        if not _I64_MIN <= pts <= _I64_MAX:
            raise InputError(f"frame pts {pts} does not fit in 64 bits")
        offset = self.bytes_written
        self._write_chunk(FRME, FramePacket(group, pts, payload).to_bytes())
        self._index.frames.append(IndexEntry(offset, group, pts))

    def write_audio(self, codec: str, payload: bytes) -> None:
        """Carry the source audio as-is (written at ``close()``); at most once per file."""
        self._check_open()
        if self._audio is not None:
            raise InputError("audio was already given for this .lotto file")
        self._audio = self._checked_length(encode_audio_payload(codec, payload), "audio")

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
        if self._audio is not None:
            self._write_chunk(AUDIO, self._audio)
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


class _BodyReader:
    """Reads the chunks after SHDR, in order, until SEND or the first damage."""

    def __init__(self, source: _Source, header: SequenceHeader) -> None:
        self.source = source
        self.header = header
        self.groups: list[bytes] = []
        self.frames: list[FramePacket] = []
        self.metadata: dict = {}
        self.audio: tuple[str, bytes] | None = None
        self.index: ContainerIndex | None = None
        self.observed = ContainerIndex()  # offsets as actually read, to verify the indx chunk
        self.in_trailer = False
        self.chunk_counts: dict[bytes, int] = {}
        self.last_type: bytes | None = None
        self.damaged_type: bytes | None = None
        self.unsupported = False  # the damage is an unknown critical chunk, not corruption

    def read(self) -> str | None:
        """Consume chunks; returns None when SEND was reached cleanly, else the damage message."""
        try:
            while True:
                start = self.source.position
                chunk_type, payload = self._next_chunk(start)
                if chunk_type == SEND:
                    return self._finish(start, payload)
                self._dispatch(chunk_type, payload, start)
                self.last_type = chunk_type
        except _Damage as damage:
            self.unsupported = damage.unsupported
            return str(damage)

    def _label(self, chunk_type: bytes, start: int) -> str:
        return f"{chunk_type.decode('ascii')} chunk {self.chunk_counts[chunk_type]} at byte {start}"

    def _next_chunk(self, start: int) -> tuple[bytes, bytes | memoryview]:
        self.damaged_type = None
        head = bytes(self.source.read(_CHUNK_HEAD.size))
        if not head:
            raise _Damage(f"missing end marker (SEND): file ends at byte {start}")
        if len(head) < _CHUNK_HEAD.size:
            raise _Damage(f"truncated in a chunk header at byte {start}")
        chunk_type, length = _CHUNK_HEAD.unpack(head)
        if not chunk_type.isalpha() or not chunk_type.isascii():
            raise _Damage(f"bad chunk type {chunk_type!r} at byte {start}")
        self.chunk_counts[chunk_type] = self.chunk_counts.get(chunk_type, 0) + 1
        self.damaged_type = chunk_type
        label = self._label(chunk_type, start)
        if length > MAX_CHUNK_LENGTH:
            raise _Damage(f"{label}: length {length} exceeds the limit {MAX_CHUNK_LENGTH}")
        payload = self.source.read(length)
        crc = bytes(self.source.read(_CRC.size))
        if len(payload) < length or len(crc) < _CRC.size:
            raise _Damage(f"truncated in {label}")
        if _CRC.unpack(crc)[0] != _chunk_crc(chunk_type, payload):
            raise _Damage(f"CRC mismatch in {label}")
        return chunk_type, payload

    def _dispatch(self, chunk_type: bytes, payload: bytes | memoryview, start: int) -> None:
        label = self._label(chunk_type, start)
        if chunk_type in (GHDR, FRME) and self.in_trailer:
            raise _Damage(f"{label}: comes after the audio/metadata/index chunks")
        if self.last_type == INDEX:
            raise _Damage(f"{label}: only SEND may follow the index")
        try:
            if chunk_type == GHDR:
                self.observed.group_offsets.append(start)
                self.groups.append(bytes(payload))
            elif chunk_type == FRME:
                self._add_frame(payload, start)
            elif chunk_type == SHDR:
                raise FormatError("second sequence header")
            elif chunk_type in TRAILER_TYPES:
                self.in_trailer = True
                self._add_trailer_chunk(chunk_type, payload)
            elif chunk_type[:1].isupper():
                raise _Damage(f"{label}: unknown critical chunk (written by a newer version?)", unsupported=True)
            else:
                log.debug("skipping unknown ancillary chunk %s", label)
        except FormatError as error:
            raise _Damage(f"{label}: {error}") from None

    def _add_frame(self, payload: bytes | memoryview, start: int) -> None:
        packet = FramePacket.from_bytes(payload)
        if packet.group >= len(self.groups):
            raise FormatError(f"frame refers to group {packet.group}, but only {len(self.groups)} group(s) precede it")
        self.observed.frames.append(IndexEntry(start, packet.group, packet.pts))
        self.frames.append(packet)

    def _add_trailer_chunk(self, chunk_type: bytes, payload: bytes | memoryview) -> None:
        if self.chunk_counts[chunk_type] > 1:
            raise FormatError("appears twice")
        if chunk_type == AUDIO:
            self.audio = decode_audio_payload(payload)
        elif chunk_type == META:
            self.metadata = decode_metadata_payload(payload)
        else:
            index = ContainerIndex.from_bytes(payload)
            if index != self.observed:
                raise FormatError("index disagrees with the chunks read")
            self.index = index

    def _finish(self, start: int, payload: bytes | memoryview) -> str | None:
        if len(payload):
            return f"{self._label(SEND, start)}: end marker is not empty"
        trailing = self.source.trailing_bytes()
        if trailing:
            return f"{trailing} unexpected bytes after the end marker at byte {self.source.position}"
        return None

    def frames_note(self) -> str:
        intact = len(self.frames)
        if self.header.n_frames:
            return f"{intact} of {self.header.n_frames} frames intact"
        if self.damaged_type == FRME:
            return f"{intact} of {intact + 1}+ frames intact"
        return f"{intact} frames intact"


def read_container(source: bytes | BinaryIO, name: str = "<stream>") -> Container:
    """Read a whole .lotto file from bytes or a binary stream (pipes included).

    A bad signature or sequence header raises FormatError (UnsupportedError for a newer format
    version). Any damage after the header stops reading: every intact frame before it is returned
    with ``damage`` describing what was lost, unless no frame is intact, in which case FormatError
    (UnsupportedError for an unknown critical chunk) is raised with that description.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        reader_source: _Source = _MemorySource(source)
    else:
        reader_source = _StreamSource(source, name)
    header = _read_sequence_header(reader_source, name)
    body = _BodyReader(reader_source, header)
    damage = body.read()
    if damage is not None:
        damage = f"{damage}; {body.frames_note()}"
        if not body.frames:
            error = UnsupportedError if body.unsupported else FormatError
            raise error(f"{name}: {damage}")
        log.warning("%s: %s", name, damage)
    return Container(
        header=header,
        groups=body.groups,
        frames=body.frames,
        metadata=body.metadata,
        audio=body.audio,
        damage=damage,
        total_bytes=reader_source.position,
        index=body.index,
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
