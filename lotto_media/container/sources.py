"""Where the container's bytes are read from: memory or a binary stream, pipes included.

Nothing the reader allocates is sized by an unchecked field: payloads are read in bounded pieces,
so a corrupt length can only cost the bytes that are really there.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from ..errors import InputError

#: Payloads are read from streams in pieces no larger than this, whatever the length field says.
READ_PIECE = 1 << 20


class _MemorySource:
    """Bytes already in memory: reads are zero-copy slices, never longer than what is there."""

    def __init__(self, data: bytes | bytearray | memoryview, start: int = 0) -> None:
        self._view = memoryview(data).cast("B")
        self.position = start

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
