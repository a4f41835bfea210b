"""Hostile .lotto files: mutations of real files of every kind must decode or fail cleanly.

Seeds are the committed golden files (tests/golden): pictures in rgb24 (format version 1), gray,
a 3-frame rgb24 stream, a 10-bit 4:2:0 stream with odd sizes, 4:2:0 streams with predicted
frames (one with a version-5 group header: range-coded parameters), and the two container layout files (audio, index, opaque codec payloads). Mutations: bit
flips, byte overwrites and insertions, truncations (at every chunk boundary, near them, and at
random lengths), chunks duplicated, moved, swapped and removed, chunk lengths set to huge values,
and fields (dimensions, counts, lengths, codec payload lengths, emptied latent streams, metadata
numbers) set to extreme values with the CRC recomputed so that the change reaches the parsers.

Every case goes through the public paths: ``codec.inspect`` (and what ``info`` prints of it),
``codec.decode_frame``, the index (``container.read_index``, ``read_chunk_at``), and
``stream.LottoReader`` iterating every frame from a pipe-like stream.
Each either succeeds or raises a ``LottoError`` whose message is one line starting with the name
given; any other exception fails the test, and so does a case that runs for too long.

Cases are derandomised (the same on every run and machine). The default run does about 5000
cases: 2100 random ones and about 2950 of the deterministic sweeps (some 30 s on 2 CPU cores).
For a nightly run, set the number of random cases, e.g.
``LOTTO_FUZZ_EXAMPLES=200000 python -m pytest tests/test_fuzz.py`` (about 20 minutes per 100000 on
2 cores).
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import threading
import zlib
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lotto_media.codec import decode_frame, inspect
from lotto_media.container import read_chunk_at, read_index
from lotto_media.errors import LottoError
from lotto_media.pipelines import cli
from lotto_media.stream import LottoReader, torch_threads

GOLDEN = Path(__file__).parent / "golden"
SEED_FILES = (
    "kodim23_24x16_v1.lotto",
    "pan_gray_1f_v2.lotto",
    "pan_rgb_3f_v2.lotto",
    "pan_yuv420p10_odd_2f_v2.lotto",
    "pan_yuv420p_inter_4f_v2.lotto",
    "two_motions_yuv420p_field_3f_v2.lotto",
    "pan_yuv420p_temporal_4f_ghdr5.lotto",
    "container_v2.lotto",
    "container_v1.lotto",
)
SIGNATURE = b"\x8bLOTTO\r\n"

#: random cases over all the random tests; the deterministic sweeps add about 2950
TOTAL_EXAMPLES = int(os.environ.get("LOTTO_FUZZ_EXAMPLES", "2100"))
#: a case takes milliseconds; the deadline only catches one that takes seconds (e.g. work that
#: grows with a claimed size), with room for a busy machine
DEADLINE = timedelta(seconds=5)
#: a case still running after this long is a hang: it is interrupted and fails
WATCHDOG_SECONDS = 30


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Pictures of a few hundred pixels: more threads only add overhead on a shared machine."""
    with torch_threads(1):
        yield


def fuzz_settings(share: float) -> settings:
    return settings(max_examples=max(1, round(TOTAL_EXAMPLES * share)), derandomize=True, database=None,
                    deadline=DEADLINE, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------- chunks


class Chunk:
    """One chunk as bytes: type, payload, and the CRC as stored (``crc=None``: recompute)."""

    def __init__(self, kind: bytes, payload: bytes, crc: int | None = None, length: int | None = None) -> None:
        self.kind, self.payload, self.crc, self.length = kind, bytes(payload), crc, length

    def to_bytes(self) -> bytes:
        crc = zlib.crc32(self.payload, zlib.crc32(self.kind)) if self.crc is None else self.crc
        length = len(self.payload) if self.length is None else self.length
        return struct.pack(">4sI", self.kind, length) + self.payload + struct.pack(">I", crc)

    def with_payload(self, payload: bytes) -> "Chunk":
        return Chunk(self.kind, payload)


def split_chunks(data: bytes) -> list[Chunk]:
    """The chunks of an intact file (the seeds), CRCs as stored."""
    assert data.startswith(SIGNATURE)
    chunks, position = [], len(SIGNATURE)
    while position < len(data):
        kind, length = struct.unpack_from(">4sI", data, position)
        payload = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack_from(">I", data, position + 8 + length)
        chunks.append(Chunk(kind, payload, crc))
        position += 12 + length
    assert position == len(data)
    return chunks


def join_chunks(chunks: list[Chunk]) -> bytes:
    return SIGNATURE + b"".join(c.to_bytes() for c in chunks)


def boundaries(data: bytes) -> list[int]:
    """Offsets where a chunk starts, plus the end of the signature and of the file."""
    offsets, position = [len(SIGNATURE)], len(SIGNATURE)
    for chunk in split_chunks(data):
        position += 12 + len(chunk.payload)
        offsets.append(position)
    return offsets


SEEDS = {name: (GOLDEN / name).read_bytes() for name in SEED_FILES}


def format_version(chunks: list[Chunk]) -> int:
    """The version byte of the first sequence header (2 when a mutation left none)."""
    return next((c.payload[0] for c in chunks if c.kind == b"SHDR" and c.payload), 2)


#: (offset, width) of the sequence header's sizes and counts (big-endian), by format version
_SHDR_FIELDS = {
    1: [(3, 4), (7, 4), (12, 4), (16, 4), (20, 4), (41, 2), (43, 2), (45, 2), (47, 1), (48, 2), (50, 2),
        (52, 1), (77, 4), (81, 1)],
    2: [(3, 4), (7, 4), (12, 4), (16, 4), (20, 4), (43, 2), (45, 2), (47, 2), (49, 1), (50, 2), (52, 1),
        (77, 4), (81, 4), (85, 1), (86, 2)],
}


def known_fields(chunks: list[Chunk]) -> list[tuple[int, int, int, str]]:
    """(chunk index, offset, width, byte order) of the length, count and dimension fields the
    parsers read: container fields are big-endian, the codec's little-endian."""
    version = format_version(chunks)
    fields = []
    for index, chunk in enumerate(chunks):
        p = chunk.payload
        if chunk.kind == b"SHDR":
            fields += [(index, offset, width, ">") for offset, width in _SHDR_FIELDS.get(version, [])]
        elif chunk.kind == b"FRME":
            prefix = 12 if version == 1 else 16
            fields += [(index, 0, 4, ">"), (index, prefix - 4, 4, ">")]  # group; duration (v1: pts)
            if version == 1 and len(p) >= prefix + 5:
                mask_len = struct.unpack_from("<I", p, prefix + 1)[0]
                fields += [(index, prefix, 1, "<"), (index, prefix + 1, 4, "<"), (index, prefix + 5 + mask_len, 4, "<")]
            elif version == 2 and len(p) >= prefix + 8:
                mask_len = struct.unpack_from("<I", p, prefix + 4)[0]
                latents = prefix + 8 + mask_len + (4 if p[prefix + 1] == 1 else 0)
                fields += [(index, prefix + k, 1, "<") for k in range(4)]  # version, type, mask coding, reference
                fields += [(index, prefix + 4, 4, "<"), (index, latents, 4, "<")]
                if p[prefix + 2] == 1:  # a mask delta: its flip count
                    fields.append((index, prefix + 8, 4, "<"))
                if p[prefix + 1] == 1:  # a predicted frame: its motion vector
                    fields += [(index, prefix + 8 + mask_len, 2, "<"), (index, prefix + 10 + mask_len, 2, "<")]
        elif chunk.kind == b"GHDR" and len(p) > 23 and p[0] == 5:
            # version, flags, ARM width, the three steps, the first and last tensor models, word count
            fields += [(index, k, 1, "<") for k in (0, 1, 2, 3, 4, 5, 6, 20)] + [(index, 21, 2, "<")]
        elif chunk.kind == b"GHDR" and len(p) > 2:
            position = 1 if version == 1 else 2
            fields += [(index, 0, 1, "<")] + ([(index, 1, 1, "<")] if version == 2 else [])
            for _ in range(3):  # frac, order, code length of each module
                if position + 6 > len(p):
                    break
                fields += [(index, position, 1, "<"), (index, position + 1, 1, "<"), (index, position + 2, 4, "<")]
                position += 6 + struct.unpack_from("<I", p, position + 2)[0]
        elif chunk.kind in (b"indx", b"audp") and len(p) >= 8:
            fields += [(index, 0, 4, ">"), (index, 4, 4, ">")]
            if chunk.kind == b"audp":
                fields.append((index, 4 + 25, 4, ">"))  # the first packet's size
        elif chunk.kind == b"audh" and p:
            fields.append((index, 0, 1, ">"))
            fields.append((index, len(p) - 4, 4, ">") if len(p) >= 4 else (index, 0, 1, ">"))
    return [f for f in fields if f[1] + f[2] <= len(chunks[f[0]].payload)]


def extreme_values(width: int) -> list[int]:
    top = (1 << (8 * width)) - 1
    values = [0, 1, 2, 3, 255, 1023, 1024, 1025, 16383, 16384, 16385, 40_000_001, 1 << 26, (1 << 30) + 1,
              top, top - 1, top >> 1, (top >> 1) + 1]
    return sorted({v & top for v in values})


def put_int(payload: bytes, offset: int, width: int, order: str, value: int) -> bytes:
    raw = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "big" if order == ">" else "little")
    return payload[:offset] + raw + payload[offset + width :]


# --------------------------------------------------------------------------- the check


class Hang(BaseException):
    """A case ran past WATCHDOG_SECONDS (BaseException: nothing in the decoder may swallow it)."""


@contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise Hang(f"a case ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Pipe(io.RawIOBase):
    """A non-seekable reader handing out bytes in small pieces, as a pipe does."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data, self._position = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        piece = self._data[self._position : self._position + min(len(buffer), 4099)]
        buffer[: len(piece)] = piece
        self._position += len(piece)
        return len(piece)


def check_message(text: str, name: str) -> None:
    assert "\n" not in text and text.strip() == text, f"not one line: {text!r}"
    assert text.startswith(f"{name}: ") and len(text) > len(name) + 3, f"does not name {name}: {text!r}"


def decode_everything(data: bytes, name: str) -> None:
    """Every public decode path on ``data``: a result, or a LottoError with a clean message."""
    with watchdog(WATCHDOG_SECONDS):
        try:
            info = inspect(data, name)
        except LottoError as exc:
            check_message(str(exc), name)
        else:
            assert info.frames >= 1 and info.width >= 1 and info.height >= 1
            if info.damage is not None:
                assert "\n" not in info.damage
            cli.format_info_table(name, info)  # what `info` prints, hostile metadata included
            json.dumps(cli._json_safe(info.to_dict()), allow_nan=False)
        try:
            frame = decode_frame(data, name)
        except LottoError as exc:
            check_message(str(exc), name)
        else:
            assert frame.planes[0].ndim == 2
        try:  # random access: the index found from the end of the file, and the chunks it points at
            index = read_index(data, name)
            for offset in index.group_offsets[:4] + [entry.offset for entry in index.frames[:4]]:
                read_chunk_at(data, offset, name)
        except LottoError as exc:
            check_message(str(exc), name)
        try:
            reader = LottoReader(io.BufferedReader(Pipe(data)), name, warn=False)
            for frame in reader:
                assert (frame.width, frame.height, frame.pix_fmt) == (reader.header.width, reader.header.height,
                                                                      reader.header.pix_fmt)
            if reader.damage is not None:
                assert "\n" not in reader.damage
        except LottoError as exc:
            check_message(str(exc), name)


# --------------------------------------------------------------------------- deterministic sweeps


def test_the_seeds_are_intact_files_of_every_kind():
    kinds = set()
    for name, data in SEEDS.items():
        assert join_chunks(split_chunks(data)) == data
        if name.startswith("container"):
            continue
        reader = LottoReader(data, name)
        frames = list(reader)
        assert frames and reader.damage is None
        kinds.add((reader.header.pix_fmt, reader.header.format_version, len(frames) > 1))
    assert {k[0] for k in kinds} == {"rgb24", "gray", "yuv420p", "yuv420p10le"} and {k[1] for k in kinds} == {1, 2}
    assert bytes([1]) in [c.payload[16 + 1 : 16 + 2] for c in split_chunks(SEEDS["pan_yuv420p_inter_4f_v2.lotto"])
                          if c.kind == b"FRME"]  # a predicted frame


def _sweep_cases(data: bytes) -> Iterator[tuple[str, bytes]]:
    chunks = split_chunks(data)
    for cut in sorted({min(len(data), max(0, b + d)) for b in [0, *boundaries(data)] for d in (-5, -4, -1, 0, 1, 8)}):
        yield f"truncated at {cut}", data[:cut]
    for i in range(len(chunks)):
        yield f"chunk {i} removed", join_chunks(chunks[:i] + chunks[i + 1 :])
        yield f"chunk {i} duplicated", join_chunks(chunks[: i + 1] + chunks[i:])
        yield f"chunk {i} emptied", join_chunks(chunks[:i] + [chunks[i].with_payload(b"")] + chunks[i + 1 :])
        if i + 1 < len(chunks):
            swapped = chunks[:i] + [chunks[i + 1], chunks[i]] + chunks[i + 2 :]
            yield f"chunks {i} and {i + 1} swapped", join_chunks(swapped)
        for length in (len(chunks[i].payload) + 1, 1 << 30, (1 << 30) + 1, (1 << 32) - 1):
            changed = Chunk(chunks[i].kind, chunks[i].payload, chunks[i].crc, length)
            yield f"chunk {i} length {length}", join_chunks(chunks[:i] + [changed] + chunks[i + 1 :])


@pytest.mark.parametrize("seed", SEED_FILES)
def test_truncations_and_chunk_surgery_fail_cleanly(seed: str):
    """Every chunk boundary (and a few bytes either side), every chunk removed, duplicated,
    emptied, swapped with the next, and given a length that lies."""
    for _, data in _sweep_cases(SEEDS[seed]):
        decode_everything(data, f"fuzz-{seed}")


@pytest.mark.parametrize("seed", SEED_FILES)
def test_every_known_field_at_extreme_values_with_the_crc_recomputed(seed: str):
    chunks = split_chunks(SEEDS[seed])
    for index, offset, width, order in known_fields(chunks):
        for value in extreme_values(width)[:: 2 if width > 1 else 3]:
            changed = list(chunks)
            changed[index] = chunks[index].with_payload(put_int(chunks[index].payload, offset, width, order, value))
            decode_everything(join_chunks(changed), f"fuzz-{seed}")


# --------------------------------------------------------------------------- random mutations

Mutation = Callable[[st.DataObject, bytes], bytes]


def _position(data: st.DataObject, size: int) -> int:
    return data.draw(st.integers(0, max(0, size - 1)))


def flip_bit(data: st.DataObject, blob: bytes) -> bytes:
    if not blob:
        return blob
    bit = data.draw(st.integers(0, 8 * len(blob) - 1))
    out = bytearray(blob)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def overwrite_bytes(data: st.DataObject, blob: bytes) -> bytes:
    position = _position(data, len(blob))
    patch = data.draw(st.binary(min_size=1, max_size=8))
    return blob[:position] + patch + blob[position + len(patch) :]


def insert_bytes(data: st.DataObject, blob: bytes) -> bytes:
    position = data.draw(st.integers(0, len(blob)))
    return blob[:position] + data.draw(st.binary(min_size=1, max_size=16)) + blob[position:]


def truncate(data: st.DataObject, blob: bytes) -> bytes:
    return blob[: data.draw(st.integers(0, len(blob)))]


def _chunks_of(blob: bytes) -> list[Chunk] | None:
    try:
        return split_chunks(blob)
    except (AssertionError, struct.error):
        return None


def _chunk_mutation(change: Callable[[st.DataObject, list[Chunk]], list[Chunk]]) -> Mutation:
    """A mutation of whole chunks; a file no longer made of chunks gets a bit flip instead."""

    def mutate(data: st.DataObject, blob: bytes) -> bytes:
        chunks = _chunks_of(blob)
        if not chunks:
            return flip_bit(data, blob)
        return join_chunks(change(data, chunks))

    mutate.__name__ = change.__name__
    return mutate


@_chunk_mutation
def flip_bit_crc_recomputed(data: st.DataObject, chunks: list[Chunk]) -> list[Chunk]:
    index = _position(data, len(chunks))
    if chunks[index].payload:
        chunks[index] = chunks[index].with_payload(flip_bit(data, chunks[index].payload))
    return chunks


@_chunk_mutation
def overwrite_crc_recomputed(data: st.DataObject, chunks: list[Chunk]) -> list[Chunk]:
    index = _position(data, len(chunks))
    payload = chunks[index].payload
    if payload:
        width = data.draw(st.sampled_from([w for w in (1, 2, 4, 8) if w <= len(payload)] or [1]))
        offset = data.draw(st.integers(0, len(payload) - width))
        value = data.draw(st.sampled_from(extreme_values(width)) | st.integers(0, (1 << (8 * width)) - 1))
        chunks[index] = chunks[index].with_payload(
            put_int(payload, offset, width, data.draw(st.sampled_from("<>")), value))
    return chunks


@_chunk_mutation
def field_crc_recomputed(data: st.DataObject, chunks: list[Chunk]) -> list[Chunk]:
    fields = known_fields(chunks)
    if fields:
        index, offset, width, order = data.draw(st.sampled_from(fields))
        value = data.draw(st.sampled_from(extreme_values(width)) | st.integers(0, (1 << (8 * width)) - 1))
        chunks[index] = chunks[index].with_payload(put_int(chunks[index].payload, offset, width, order, value))
    return chunks


@_chunk_mutation
def payload_cut_crc_recomputed(data: st.DataObject, chunks: list[Chunk]) -> list[Chunk]:
    """A payload shortened, emptied or extended (e.g. an emptied latent stream), CRC made good."""
    index = _position(data, len(chunks))
    payload = chunks[index].payload
    start = data.draw(st.integers(0, len(payload)))
    stop = data.draw(st.integers(start, len(payload)))
    filler = data.draw(st.sampled_from([b"", bytes(4), b"\xff" * 4, bytes(64)]))
    chunks[index] = chunks[index].with_payload(payload[:start] + filler + payload[stop:])
    return chunks


@_chunk_mutation
def length_field_lies(data: st.DataObject, chunks: list[Chunk]) -> list[Chunk]:
    index = _position(data, len(chunks))
    chunk = chunks[index]
    length = data.draw(st.sampled_from([0, len(chunk.payload) - 1, len(chunk.payload) + 1, 1 << 30, (1 << 30) + 1,
                                        (1 << 31), (1 << 32) - 1]) | st.integers(0, (1 << 32) - 1))
    chunks[index] = Chunk(chunk.kind, chunk.payload, chunk.crc, max(0, length))
    return chunks


@_chunk_mutation
def duplicate_chunk(data: st.DataObject, chunks: list[Chunk]) -> list[Chunk]:
    source = _position(data, len(chunks))
    chunks.insert(data.draw(st.integers(0, len(chunks))), chunks[source])
    return chunks


@_chunk_mutation
def remove_chunk(data: st.DataObject, chunks: list[Chunk]) -> list[Chunk]:
    del chunks[_position(data, len(chunks))]
    return chunks


@_chunk_mutation
def move_chunk(data: st.DataObject, chunks: list[Chunk]) -> list[Chunk]:
    chunk = chunks.pop(_position(data, len(chunks)))
    chunks.insert(data.draw(st.integers(0, len(chunks))), chunk)
    return chunks


@_chunk_mutation
def swap_chunks(data: st.DataObject, chunks: list[Chunk]) -> list[Chunk]:
    i, j = _position(data, len(chunks)), _position(data, len(chunks))
    chunks[i], chunks[j] = chunks[j], chunks[i]
    return chunks


_HUGE = "9" * 400
_METADATA = [
    '{"frames":[{"psnr":%s,"steps":%s,"psnr_planes":{"y":%s}}]}' % (_HUGE, _HUGE, _HUGE),
    '{"frames":[{"psnr":1e999,"steps":-1e308},{"psnr":-1e308}],"steps":1e400}',
    '{"frames":[{"psnr":%s}]}' % ("9" * 5000),  # beyond Python's int-from-text limit
    '{"frames":' + "[" * 5000 + "]" * 5000 + "}",
    '{"frames":[null,true,"x",{"psnr":"30","psnr_planes":[1,2]}]}',
    '{"frames":{"psnr":30}}',
    '[1,2,3]',
    '{"a":NaN}',
    '"\\ud800"',
]


@_chunk_mutation
def hostile_metadata(data: st.DataObject, chunks: list[Chunk]) -> list[Chunk]:
    text = data.draw(st.sampled_from(_METADATA)).encode("utf-8", "surrogatepass")
    metas = [i for i, c in enumerate(chunks) if c.kind == b"meta"]
    if metas:
        chunks[metas[0]] = chunks[metas[0]].with_payload(text)
    return chunks


RAW_MUTATIONS: list[Mutation] = [flip_bit, overwrite_bytes, insert_bytes, truncate, length_field_lies]
CRC_MUTATIONS: list[Mutation] = [flip_bit_crc_recomputed, overwrite_crc_recomputed, field_crc_recomputed,
                                 payload_cut_crc_recomputed, hostile_metadata]
CHUNK_MUTATIONS: list[Mutation] = [duplicate_chunk, remove_chunk, move_chunk, swap_chunks]


def _mutated(data: st.DataObject, mutations: list[Mutation], at_most: int) -> tuple[str, bytes]:
    seed = data.draw(st.sampled_from(SEED_FILES))
    blob = SEEDS[seed]
    for _ in range(data.draw(st.integers(1, at_most))):
        blob = data.draw(st.sampled_from(mutations))(data, blob)
    return seed, blob


@fuzz_settings(0.3)
@given(st.data())
def test_raw_damage_fails_cleanly(data: st.DataObject):
    seed, blob = _mutated(data, RAW_MUTATIONS, 3)
    decode_everything(blob, f"fuzz-{seed}")


@fuzz_settings(0.45)
@given(st.data())
def test_damage_behind_a_good_crc_fails_cleanly(data: st.DataObject):
    seed, blob = _mutated(data, CRC_MUTATIONS, 2)
    decode_everything(blob, f"fuzz-{seed}")


@fuzz_settings(0.25)
@given(st.data())
def test_rearranged_and_mixed_damage_fails_cleanly(data: st.DataObject):
    seed, blob = _mutated(data, CHUNK_MUTATIONS + CRC_MUTATIONS + RAW_MUTATIONS, 3)
    decode_everything(blob, f"fuzz-{seed}")


def test_the_check_itself_catches_what_it_must():
    """The harness fails a non-LottoError, a message without the name, a multi-line message."""
    with pytest.raises(AssertionError):
        check_message("frame 3: damaged", "x.lotto")
    with pytest.raises(AssertionError):
        check_message("x.lotto: two\nlines", "x.lotto")
    check_message("x.lotto: frame at pts 0: latent stream: data ends early", "x.lotto")
