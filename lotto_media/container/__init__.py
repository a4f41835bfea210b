"""The ``.lotto`` sidecar container: a signature, then CRC-protected chunks (layout: docs/FORMAT.md, Part 1).

The codec's own packets (group headers, frame packets) are opaque bytes here; this package only
frames them, orders them and protects them. Its modules, each depending only on those before it:

* ``sources``: bytes from memory or a stream, read in bounded pieces;
* ``chunks``: the signature, the chunk types and limits, one chunk read with its CRC checked, the
  size of a file's critical chunks;
* ``header``: the sequence header;
* ``payloads``: frame packets, audio and metadata payloads;
* ``index``: the random-access index and reading a chunk by offset;
* ``writer``: ContainerWriter;
* ``reader``: StreamReader, read_container.
"""

from .chunks import (AUDIO, AUDIO_HEADER, AUDIO_PACKETS, FORMAT_VERSION, FRME, GHDR, INDEX, MAX_CHUNK_LENGTH,
                     META, SEND, SHDR, SIGNATURE, TRAILER_TYPES, critical_size)
from .header import (DEFAULT_MAX_PIXELS, MAX_DIMENSION, MAX_PIXELS, MAX_SOURCE_NAME, PIX_FMT_CODES,
                     PIX_FMT_NAMES, SHDR_MAX_LENGTH, SHDR_MIN_LENGTH, SequenceHeader, check_pixel_limit,
                     picture_size_problem)
from .index import ContainerIndex, IndexEntry, read_chunk_at, read_index
from .payloads import (FramePacket, decode_audio_header, decode_audio_packets, decode_audio_payload,
                       decode_metadata_payload, encode_audio_header, encode_audio_packets,
                       encode_audio_payload, encode_metadata_payload)
from .reader import (AudioHeaderChunk, AudioPacketsChunk, Container, FrameChunk, GroupChunk, StreamChunk,
                     StreamReader, read_container)
from .sources import READ_PIECE
from .writer import ContainerWriter

__all__ = [
    "AUDIO", "AUDIO_HEADER", "AUDIO_PACKETS", "FORMAT_VERSION", "FRME", "GHDR", "INDEX",
    "MAX_CHUNK_LENGTH", "META", "SEND", "SHDR", "SIGNATURE", "TRAILER_TYPES", "critical_size", "MAX_DIMENSION",
    "MAX_PIXELS", "MAX_SOURCE_NAME", "PIX_FMT_CODES", "PIX_FMT_NAMES", "SHDR_MAX_LENGTH",
    "SHDR_MIN_LENGTH", "SequenceHeader", "ContainerIndex", "IndexEntry", "read_chunk_at",
    "read_index", "FramePacket", "decode_audio_header", "decode_audio_packets",
    "decode_audio_payload", "decode_metadata_payload", "encode_audio_header",
    "encode_audio_packets", "encode_audio_payload", "encode_metadata_payload", "AudioHeaderChunk",
    "AudioPacketsChunk", "Container", "FrameChunk", "GroupChunk", "StreamChunk", "StreamReader",
    "read_container", "READ_PIECE", "ContainerWriter", "DEFAULT_MAX_PIXELS", "check_pixel_limit",
    "picture_size_problem",
]
