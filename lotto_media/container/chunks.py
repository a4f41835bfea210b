"""Chunk framing: the signature, the chunk types, the limits, and reading one chunk with its CRC.

Chunks are in the PNG style (type, length, payload, CRC-32) so that any damage is *detected* and
the reader can stop at the first bad chunk and still hand back every intact frame before it.
Lengths are checked against the chunk limit before anything is read.
"""

from __future__ import annotations

import struct
import zlib

from .sources import _MemorySource, _Source

#: ``\x8b`` (non-ASCII: catches 7-bit channels and text sniffing), ``LOTTO`` (recognisable in a hex
#: dump), ``\r\n`` (a text-mode copy in either direction changes these bytes).
SIGNATURE = b"\x8bLOTTO\r\n"
#: the version this build writes; it reads every version from 1 up to it
FORMAT_VERSION = 2

MAX_CHUNK_LENGTH = 1 << 30

SHDR, GHDR, FRME, AUDIO, META, INDEX, SEND = b"SHDR", b"GHDR", b"FRME", b"audi", b"meta", b"indx", b"SEND"
#: version 2 audio: the codec parameters once, then batches of coded packets, anywhere among the frames
AUDIO_HEADER, AUDIO_PACKETS = b"audh", b"audp"
#: Chunks that may only appear after every GHDR/FRME (``audi`` is version 1's only).
TRAILER_TYPES = (AUDIO, META, INDEX)

_U32_MAX = 2**32 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

_CHUNK_HEAD = struct.Struct(">4sI")
_CRC = struct.Struct(">I")


def _chunk_crc(chunk_type: bytes, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(chunk_type))


def _is_printable_ascii(text: str) -> bool:
    return all(0x20 < ord(c) < 0x7F for c in text)


class ChunkError(Exception):
    """Why ``read_chunk`` returned no chunk: ``problem`` is the check that failed (one of the
    class constants); ``chunk_type`` and ``length`` are set once the chunk head was read. Each
    caller words the message for its own context."""

    #: nothing at all where a chunk head should be
    END = "end"
    #: fewer bytes than a chunk head
    SHORT_HEAD = "short head"
    #: not four ASCII letters, or not the type expected
    BAD_TYPE = "bad type"
    #: the length is outside the range allowed
    BAD_LENGTH = "bad length"
    #: the payload or the CRC is cut short
    TRUNCATED = "truncated"
    BAD_CRC = "bad crc"

    def __init__(self, problem: str, chunk_type: bytes | None = None, length: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.chunk_type = chunk_type
        self.length = length

    def message(self, wording: dict[str, str], **context: object) -> str:
        """The problem in a caller's words: ``wording`` maps each problem to a format string that
        may use ``{type}``, ``{length}``, ``{limit}`` (the chunk limit) and the ``context`` fields."""
        return wording[self.problem].format(type=self.chunk_type, length=self.length, limit=MAX_CHUNK_LENGTH, **context)


def read_chunk(
    source: _Source, expect: bytes | None = None, lengths: tuple[int, int] | None = None
) -> tuple[bytes, bytes | memoryview]:
    """Read one chunk from ``source``: (type, payload), the CRC checked. ``expect``: the only type
    accepted; ``lengths``: the payload lengths accepted (default 0..MAX_CHUNK_LENGTH), checked
    before the payload is read. Raises ChunkError naming the first check that failed."""
    head = bytes(source.read(_CHUNK_HEAD.size))
    if len(head) < _CHUNK_HEAD.size:
        raise ChunkError(ChunkError.SHORT_HEAD if head else ChunkError.END)
    chunk_type, length = _CHUNK_HEAD.unpack(head)
    if (expect is not None and chunk_type != expect) or not chunk_type.isalpha() or not chunk_type.isascii():
        raise ChunkError(ChunkError.BAD_TYPE, chunk_type, length)
    low, high = (0, MAX_CHUNK_LENGTH) if lengths is None else lengths
    if not low <= length <= high:
        raise ChunkError(ChunkError.BAD_LENGTH, chunk_type, length)
    payload = source.read(length)
    crc = bytes(source.read(_CRC.size))
    if len(payload) < length or len(crc) < _CRC.size:
        raise ChunkError(ChunkError.TRUNCATED, chunk_type, length)
    if _CRC.unpack(crc)[0] != _chunk_crc(chunk_type, payload):
        raise ChunkError(ChunkError.BAD_CRC, chunk_type, length)
    return chunk_type, payload


def critical_size(data: bytes | memoryview) -> int:
    """Bytes of a whole .lotto file that a decoder needs: the signature and every critical chunk
    (framing and CRC included), without the ancillary ones (metadata, index, audio). This is what
    benchmarks count, as they count a video anchor's elementary stream without its SEI messages."""
    if bytes(data[: len(SIGNATURE)]) != SIGNATURE:
        raise ValueError("not a .lotto file (bad signature)")
    source = _MemorySource(data, len(SIGNATURE))
    size = len(SIGNATURE)
    while source.trailing_bytes():
        offset = source.position
        try:
            chunk_type, payload = read_chunk(source)
        except ChunkError as error:
            raise ValueError(error.message(_SIZE_WORDING, offset=offset)) from None
        if chunk_type[:1].isupper():
            size += _CHUNK_HEAD.size + len(payload) + _CRC.size
    return size


_SIZE_WORDING = {
    ChunkError.END: "no chunk at byte {offset}",
    ChunkError.SHORT_HEAD: "chunk head cut short at byte {offset}",
    ChunkError.BAD_TYPE: "chunk type {type!r} at byte {offset} is not four ASCII letters",
    ChunkError.BAD_LENGTH: "chunk {type!r} at byte {offset} is longer than {limit} bytes",
    ChunkError.TRUNCATED: "chunk {type!r} at byte {offset} runs past the end",
    ChunkError.BAD_CRC: "chunk {type!r} at byte {offset} fails its CRC",
}
