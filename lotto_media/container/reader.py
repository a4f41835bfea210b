"""Reading a .lotto stream, whole (``read_container``) or chunk by chunk (``StreamReader``).

Reading stops at the first damaged chunk and hands back every intact frame before it, with one
line saying what was lost and where.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from ..audio import AudioPacket, AudioParams
from ..errors import FormatError, InputError, LottoError, UnsupportedError
from .chunks import (AUDIO, AUDIO_HEADER, AUDIO_PACKETS, FRME, GHDR, INDEX, META, SEND, SHDR, SIGNATURE,
                     TRAILER_TYPES, ChunkError, read_chunk)
from .header import SHDR_MAX_LENGTH, SHDR_MIN_LENGTH, SequenceHeader
from .index import ContainerIndex, IndexEntry
from .payloads import (FramePacket, decode_audio_header, decode_audio_packets, decode_audio_payload,
                       decode_metadata_payload)
from .sources import _MemorySource, _Source, _StreamSource

log = logging.getLogger(__name__)


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


_SHDR_PROBLEMS = {
    ChunkError.END: "truncated before the sequence header",
    ChunkError.SHORT_HEAD: "truncated before the sequence header",
    ChunkError.BAD_TYPE: "first chunk is {type!r}, expected the sequence header (SHDR)",
    ChunkError.BAD_LENGTH: f"sequence header length {{length}} out of range {SHDR_MIN_LENGTH}..{SHDR_MAX_LENGTH}",
    ChunkError.TRUNCATED: "truncated in the sequence header",
    ChunkError.BAD_CRC: "sequence header CRC mismatch",
}


def _read_sequence_header(source: _Source, name: str) -> SequenceHeader:
    head = bytes(source.read(len(SIGNATURE)))
    if head != SIGNATURE:
        raise FormatError(f"{name}: {_describe_bad_signature(head)}")
    try:
        _, payload = read_chunk(source, expect=SHDR, lengths=(SHDR_MIN_LENGTH, SHDR_MAX_LENGTH))
    except ChunkError as error:
        raise FormatError(f"{name}: {error.message(_SHDR_PROBLEMS)}") from None
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


#: the chunk-reading problems found after the chunk's type was read
_BODY_PROBLEMS = (ChunkError.BAD_LENGTH, ChunkError.TRUNCATED, ChunkError.BAD_CRC)
_CHUNK_PROBLEMS = {
    ChunkError.END: "missing end marker (SEND): file ends at byte {start}",
    ChunkError.SHORT_HEAD: "truncated in a chunk header at byte {start}",
    ChunkError.BAD_TYPE: "bad chunk type {type!r} at byte {start}",
    ChunkError.BAD_LENGTH: "{label}: length {length} exceeds the limit {limit}",
    ChunkError.TRUNCATED: "truncated in {label}",
    ChunkError.BAD_CRC: "CRC mismatch in {label}",
}


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
        try:
            chunk_type, payload = read_chunk(self._source)
        except ChunkError as error:
            # a chunk whose type was read is counted, so that the message can say which one it was
            label = self._count(error.chunk_type, start) if error.problem in _BODY_PROBLEMS else None
            raise _Damage(error.message(_CHUNK_PROBLEMS, start=start, label=label)) from None
        self._count(chunk_type, start)
        return chunk_type, payload

    def _count(self, chunk_type: bytes, start: int) -> str:
        """Count a chunk whose type was read (it is now the one any damage is in); its label."""
        self._counts[chunk_type] = self._counts.get(chunk_type, 0) + 1
        self._damaged_type = chunk_type
        return self._label(chunk_type, start)

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
