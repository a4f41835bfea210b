"""Writing a .lotto stream.

The writer counts offsets itself instead of calling ``tell()``, so it can write to a pipe; the
random-access index therefore costs nothing extra and is always written.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from ..audio import AudioPacket, AudioParams
from ..errors import InputError
from .chunks import (AUDIO_HEADER, AUDIO_PACKETS, FRME, GHDR, INDEX, MAX_CHUNK_LENGTH, META, SEND, SHDR,
                     SIGNATURE, _CHUNK_HEAD, _CRC, _I64_MAX, _I64_MIN, _U32_MAX, _chunk_crc)
from .header import SequenceHeader
from .index import ContainerIndex, IndexEntry
from .payloads import FramePacket, encode_audio_header, encode_audio_packets, encode_metadata_payload


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
