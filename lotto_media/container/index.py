"""The random-access index (indx): chunk offsets of every group header and frame, and finding
chunks by offset in a seekable file without reading what comes before them."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from ..errors import FormatError
from .chunks import INDEX, MAX_CHUNK_LENGTH, SEND, SIGNATURE, _CHUNK_HEAD, _CRC, ChunkError, _chunk_crc, read_chunk
from .sources import _MemorySource, _Source, _StreamSource

_INDEX_COUNTS = struct.Struct(">II")
_INDEX_GROUP = struct.Struct(">Q")
_INDEX_FRAME = struct.Struct(">QIq")
_INDEX_TAIL = struct.Struct(">I")
_SEND_CHUNK_SIZE = _CHUNK_HEAD.size + _CRC.size


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


def _source_at(source: bytes | BinaryIO, offset: int) -> _Source:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _MemorySource(source, offset)
    source.seek(offset)
    return _StreamSource(source, "<seek>")


def _read_at(source: bytes | BinaryIO, offset: int, size: int) -> bytes:
    return bytes(_source_at(source, offset).read(size))


def _source_size(source: bytes | BinaryIO) -> int:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return len(source)
    return source.seek(0, io.SEEK_END)


_CHUNK_AT_PROBLEMS = {
    ChunkError.END: "no chunk at byte {offset} (file too short)",
    ChunkError.SHORT_HEAD: "no chunk at byte {offset} (file too short)",
    ChunkError.BAD_TYPE: "no chunk at byte {offset} (bad chunk type {type!r})",
    ChunkError.BAD_LENGTH: "chunk at byte {offset}: length {length} exceeds the limit {limit}",
    ChunkError.TRUNCATED: "truncated in chunk at byte {offset}",
    ChunkError.BAD_CRC: "CRC mismatch in chunk at byte {offset}",
}


def read_chunk_at(source: bytes | BinaryIO, offset: int, name: str = "<stream>") -> tuple[str, bytes]:
    """Read and CRC-check the chunk starting at ``offset`` (e.g. from the index): (type, payload)."""
    try:
        chunk_type, payload = read_chunk(_source_at(source, offset))
    except ChunkError as error:
        raise FormatError(f"{name}: {error.message(_CHUNK_AT_PROBLEMS, offset=offset)}") from None
    return chunk_type.decode("ascii"), bytes(payload)


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
