"""The .lotto container: round trips, pipes, damage handling, limits, index and the golden layout.

Regenerate the golden file (only when the layout changes on purpose, with a format version bump):
    LOTTO_REGENERATE_GOLDEN=1 python -m pytest tests/test_container.py -k golden
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import pytest

from lotto_media.audio import AudioPacket, AudioParams
from lotto_media.model.config import ModelConfig
from lotto_media.container import (
    MAX_CHUNK_LENGTH,
    READ_PIECE,
    SIGNATURE,
    Container,
    ContainerWriter,
    FramePacket,
    SequenceHeader,
    critical_size,
    read_chunk_at,
    read_container,
    read_index,
)
from lotto_media.errors import FormatError, InputError, UnsupportedError
from lotto_media.frame import ColorTags

GOLDEN = Path(__file__).parent / "golden" / "container_v2.lotto"
#: written by format version 1 from the same inputs (ARM width 256 in the header, audio as one
#: trailer blob); every version-1 file must still read
GOLDEN_V1 = Path(__file__).parent / "golden" / "container_v1.lotto"


class PipeStream(io.RawIOBase):
    """A pipe as a reader or writer sees it: no seek, no tell, short reads; records read sizes."""

    def __init__(self, data: bytes = b"", max_piece: int = 7) -> None:
        self._buffer = io.BytesIO(data)
        self._max_piece = max_piece
        self.largest_request = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        raise OSError("illegal seek")

    def seek(self, *args: object) -> int:
        raise OSError("illegal seek")

    def read(self, size: int = -1) -> bytes:
        self.largest_request = max(self.largest_request, size)
        return self._buffer.read(min(size, self._max_piece) if size >= 0 else self._max_piece)

    def write(self, data: bytes) -> int:
        # Accept only part of each write, as a raw pipe may, to exercise the writer's loop.
        piece = bytes(data[: self._max_piece])
        return self._buffer.write(piece)

    def getvalue(self) -> bytes:
        return self._buffer.getvalue()


def chunk(chunk_type: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(chunk_type + payload)
    return struct.pack(">4sI", chunk_type, len(payload)) + payload + struct.pack(">I", crc)


def full_header() -> SequenceHeader:
    """Every field away from its default, so that a field dropped by the layout is noticed."""
    return SequenceHeader(
        width=1920,
        height=1080,
        pix_fmt="yuv420p10le",
        model=ModelConfig(
            seed=2**63 + 12345,
            synth_widths=(128, 64, 1024),
            n_levels=9,
            mod_hidden=1000,
            out_channels=3,
            mask_ratio=0.15,
        ),
        time_base=Fraction(1, 90000),
        frame_rate=Fraction(30000, 1001),
        color=ColorTags(color_range=1, matrix=9, primaries=9, transfer=16, chroma_location=2),
        preset="slow",
        lmbda=1.25e-4,
        quality=73.5,
        n_frames=3,
        gop=2,
        rotation=-90,
        source="clips/\u00e9t\u00e9 001.mov",
    )


AUDIO = AudioParams("opus", 48000, 2, "stereo", "fltp", Fraction(1, 48000), 96000, 960, b"OpusHead\x01\x02")
AUDIO_PACKETS = [
    AudioPacket(b"first packet", pts=-312, dts=-312, duration=960),
    AudioPacket(b"", pts=None, dts=None, duration=0, keyframe=False),
    AudioPacket(b"\xff" * 40, pts=2**40, dts=2**40 - 1, duration=960),
]


def write_sample(stream: object, header: SequenceHeader | None = None, extra: dict | None = None) -> None:
    """The fixed inputs of the golden file: 2 groups, 3 frames (one pts negative), audio, metadata."""
    with ContainerWriter(stream, header or full_header()) as writer:  # type: ignore[arg-type]
        writer.write_audio_header(AUDIO)
        g0 = writer.write_group(b"group zero header")
        writer.write_frame(b"frame-0 payload", g0, pts=-3003, duration=3003)
        writer.write_audio_packets(AUDIO_PACKETS[:2])
        writer.write_frame(b"", g0, pts=0)  # an empty codec payload is legal
        g1 = writer.write_group(b"\x00\x01\x02 group one")
        writer.write_frame(b"frame-2 \xff\xfe payload", g1, pts=2**40, duration=2**32 - 1)
        writer.write_audio_packets(AUDIO_PACKETS[2:])
        writer.write_metadata(extra or {"title": "Kodak \u00e9t\u00e9", "rotation": 90, "tags": [1, 2.5, None]})


def sample_bytes() -> bytes:
    buffer = io.BytesIO()
    write_sample(buffer)
    return buffer.getvalue()


EXPECTED_FRAMES = [
    FramePacket(0, -3003, b"frame-0 payload", 3003),
    FramePacket(0, 0, b""),
    FramePacket(1, 2**40, b"frame-2 \xff\xfe payload", 2**32 - 1),
]
EXPECTED_GROUPS = [b"group zero header", b"\x00\x01\x02 group one"]


def assert_is_sample(container: Container) -> None:
    assert container.header == full_header()
    assert container.groups == EXPECTED_GROUPS
    assert container.frames == EXPECTED_FRAMES
    assert container.audio == AUDIO
    assert container.audio_packets == AUDIO_PACKETS
    assert container.metadata == {"title": "Kodak \u00e9t\u00e9", "rotation": 90, "tags": [1, 2.5, None]}
    assert container.damage is None


# -- sequence header ------------------------------------------------------------------------


def test_signature_catches_text_mode_and_7bit_channels() -> None:
    assert len(SIGNATURE) == 8
    assert SIGNATURE[0] >= 0x80
    assert b"LOTTO" in SIGNATURE and b"\r\n" in SIGNATURE


@pytest.mark.parametrize(
    "header",
    [
        full_header(),
        SequenceHeader(1, 1, "gray", ModelConfig(out_channels=1, mask_ratio=0.0)),
        SequenceHeader(16384, 4096, "rgb24", ModelConfig(mask_ratio=0.1 + 0.2), preset="", quality=0.0),
        SequenceHeader(33, 17, "yuv420p", ModelConfig(seed=2**64 - 1), time_base=Fraction(2, 50), quality=100),
    ],
)
def test_sequence_header_round_trip_is_exact(header: SequenceHeader) -> None:
    parsed = SequenceHeader.from_bytes(header.to_bytes())
    assert parsed == header
    assert parsed.model == header.model  # mask_ratio as float64 bits: 0.1 + 0.2 survives exactly
    assert parsed.model.mask_ratio == header.model.mask_ratio
    assert isinstance(parsed.time_base, Fraction) and parsed.time_base == header.time_base
    assert parsed.to_bytes() == header.to_bytes()


def test_sequence_header_defaults() -> None:
    header = SequenceHeader.from_bytes(SequenceHeader(8, 8, "rgb24", ModelConfig()).to_bytes())
    assert header.time_base == Fraction(1, 1)
    assert header.frame_rate is None and header.quality is None and header.n_frames == 0
    assert header.color == ColorTags() and header.preset == "medium"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"width": 0}, "width"),
        ({"height": 16385}, "height"),
        ({"width": 16384, "height": 8192}, "picture size"),
        ({"pix_fmt": "bgr0"}, "pix_fmt"),
        ({"time_base": Fraction(0)}, "time_base"),
        ({"frame_rate": 29.97}, "frame_rate"),
        ({"color": ColorTags(color_range=3)}, "color_range"),
        ({"preset": "s\u00e9"}, "preset"),
        ({"lmbda": float("inf")}, "lmbda"),
        ({"quality": 101}, "quality"),
        ({"n_frames": -1}, "n_frames"),
    ],
)
def test_invalid_header_is_refused_when_built(kwargs: dict, field: str) -> None:
    args = {"width": 64, "height": 64, "pix_fmt": "rgb24", "model": ModelConfig(), **kwargs}
    with pytest.raises(InputError, match=field):
        SequenceHeader(**args)


def patched_header(offset: int, fmt: str, value: int) -> bytes:
    payload = bytearray(full_header().to_bytes())
    struct.pack_into(fmt, payload, offset, value)
    return bytes(payload)


@pytest.mark.parametrize(
    "offset, fmt, value, message",
    [
        (3, ">I", 0, "width 0 out of range 1..16384"),
        (3, ">I", 0xFFFFFFFF, "width 4294967295 out of range"),
        (7, ">I", 16385, "height 16385 out of range"),
        (3, ">Q", (16384 << 32) | 4097, "picture size 16384x4097 exceeds"),
        (11, ">B", 9, "pix_fmt code 9"),
        (16, ">I", 0, "time_base"),
        (24, ">I", 0, "frame_rate"),
        (28, ">B", 7, "color_range"),
        (43, ">H", 0, "synth_widths"),
        (49, ">B", 13, "n_levels"),
        (52, ">B", 2, "out_channels"),
        (53, ">d", 1.0, "mask ratio"),
        (61, ">d", -1.0, "lmbda"),
        (69, ">d", 250.0, "quality"),
        (85, ">B", 200, "preset length 200"),
        (0, ">B", 0, "format_version 0"),
        (33, ">h", 360, "rotation"),
        (86, ">H", 2000, "source length 2000"),
    ],
)
def test_absurd_header_fields_are_rejected_by_name(offset: int, fmt: str, value: int, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        SequenceHeader.from_bytes(patched_header(offset, fmt, value))


def test_newer_version_and_unknown_flags_are_unsupported() -> None:
    with pytest.raises(UnsupportedError, match="format_version 3"):
        SequenceHeader.from_bytes(patched_header(0, ">B", 3))
    for unknown in (0x0002, 0x8000):
        with pytest.raises(UnsupportedError, match=f"flags 0x{unknown:04x}"):
            SequenceHeader.from_bytes(patched_header(1, ">H", unknown | 0x0001))


def shdr_payload(data: bytes) -> bytes:
    """The sequence header's payload as the file holds it (Part 1 §3: type, u32 length, payload)."""
    at = data.index(b"SHDR")
    (length,) = struct.unpack_from(">I", data, at + 4)
    return data[at + 8 : at + 8 + length]


def test_flag_bit_0_is_the_second_full_resolution_grid() -> None:
    assert SequenceHeader.from_bytes(patched_header(1, ">H", 0)).model.fine_grids == 1
    header = SequenceHeader.from_bytes(patched_header(1, ">H", 1))
    assert header.model.fine_grids == 2
    assert header.to_bytes()[1:3] == b"\x00\x01"
    # version 1 defines no flags
    legacy = bytearray(shdr_payload(GOLDEN_V1.read_bytes()))
    assert legacy[0] == 1 and legacy[1:3] == b"\x00\x00"
    legacy[2] = 1
    with pytest.raises(UnsupportedError, match="flags 0x0001"):
        SequenceHeader.from_bytes(bytes(legacy))


def test_header_length_is_checked_before_use() -> None:
    with pytest.raises(FormatError, match="length 10"):
        SequenceHeader.from_bytes(b"\x01" * 10)
    data = bytearray(sample_bytes())
    struct.pack_into(">I", data, 12, 0xFFFFFFFF)  # the SHDR length field
    with pytest.raises(FormatError, match=r"x\.lotto: sequence header length 4294967295"):
        read_container(bytes(data), "x.lotto")


# -- round trips ----------------------------------------------------------------------------


def test_round_trip_through_bytes() -> None:
    data = sample_bytes()
    container = read_container(data, "x.lotto")
    assert_is_sample(container)
    assert container.total_bytes == len(data)
    assert container.index is not None and len(container.index.frames) == 3


def test_round_trip_through_pipes() -> None:
    out_pipe = PipeStream()
    write_sample(out_pipe)  # the writer never asks the pipe for tell()/seek()
    data = out_pipe.getvalue()
    assert data == sample_bytes()
    in_pipe = PipeStream(data)
    container = read_container(in_pipe, "pipe")
    assert_is_sample(container)
    assert container.total_bytes == len(data)


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "a.lotto"
    with path.open("wb") as stream:
        write_sample(stream)
    with path.open("rb") as stream:
        assert_is_sample(read_container(stream, str(path)))


def test_critical_size_leaves_out_only_the_ancillary_chunks() -> None:
    """What benchmarks count: the file less its audio, metadata and index chunks. Stripping those
    chunks here (by the chunk layout of FORMAT.md Part 1 §3) must leave a file of exactly that size
    that still reads to the same groups and frames."""
    data = sample_bytes()
    kept, offset, dropped = bytearray(data[:8]), 8, set()
    while offset < len(data):
        chunk_type, length = struct.unpack(">4sI", data[offset:offset + 8])
        if chunk_type[:1].isupper():
            kept += data[offset:offset + 12 + length]
        else:
            dropped.add(chunk_type)
        offset += 12 + length
    assert dropped == {b"audh", b"audp", b"meta", b"indx"}
    assert critical_size(data) == len(kept) < len(data)
    stripped = read_container(bytes(kept), "stripped.lotto")
    assert stripped.groups == EXPECTED_GROUPS and stripped.frames == EXPECTED_FRAMES and stripped.damage is None
    with pytest.raises(ValueError, match="runs past the end"):
        critical_size(data[:-3])
    with pytest.raises(ValueError, match="signature"):
        critical_size(b"GIF89a" + data[6:])


def test_writer_counts_bytes_and_close_is_idempotent() -> None:
    buffer = io.BytesIO()
    writer = ContainerWriter(buffer, full_header())
    assert writer.bytes_written == len(buffer.getvalue()) > len(SIGNATURE)
    group = writer.write_group(b"g")
    writer.write_frame(b"f", group)
    writer.close()
    size = len(buffer.getvalue())
    assert writer.bytes_written == size
    writer.close()
    assert len(buffer.getvalue()) == size and not buffer.closed
    with pytest.raises(InputError, match="closed"):
        writer.write_group(b"late")


def test_writer_refuses_misuse() -> None:
    writer = ContainerWriter(io.BytesIO(), full_header())
    with pytest.raises(InputError, match="group 0"):
        writer.write_frame(b"f", 0)
    writer.write_group(b"g")
    with pytest.raises(InputError, match="pts"):
        writer.write_frame(b"f", 0, pts=2**63)
    with pytest.raises(InputError, match="JSON"):
        writer.write_metadata({"x": float("nan")})
    with pytest.raises(InputError, match="audio header first"):
        writer.write_audio_packets([AUDIO_PACKETS[0]])
    with pytest.raises(InputError, match="codec name is empty"):
        writer.write_audio_header(AudioParams("", 1, 1, "mono", "s16", Fraction(1, 1)))
    writer.write_audio_header(AUDIO)
    with pytest.raises(InputError, match="already"):
        writer.write_audio_header(AUDIO)
    with pytest.raises(InputError, match="duration"):
        writer.write_frame(b"f", 0, duration=-1)
    with pytest.raises(InputError, match="text-mode"):
        ContainerWriter(io.StringIO(), full_header())  # type: ignore[arg-type]


def test_exception_inside_writer_leaves_a_detectably_incomplete_file() -> None:
    buffer = io.BytesIO()
    with pytest.raises(RuntimeError):
        with ContainerWriter(buffer, full_header()) as writer:
            writer.write_frame(b"a", writer.write_group(b"g"))
            raise RuntimeError("encoder crashed")
    container = read_container(buffer.getvalue())
    assert container.frames == [FramePacket(0, 0, b"a")]
    assert container.damage is not None and "missing end marker" in container.damage


# -- chunks: unknown, misplaced ---------------------------------------------------------------


def test_unknown_ancillary_chunk_is_skipped() -> None:
    buffer = io.BytesIO()
    with ContainerWriter(buffer, full_header()) as writer:
        writer.write_group(b"g")
        writer._write_chunk(b"xTRa", b"private extension data")
        writer.write_frame(b"f", 0, pts=5)
    container = read_container(buffer.getvalue())
    assert container.damage is None
    assert container.frames == [FramePacket(0, 5, b"f")]


def test_unknown_critical_chunk_is_rejected() -> None:
    buffer = io.BytesIO()
    with ContainerWriter(buffer, full_header()) as writer:
        writer.write_group(b"g")
        writer._write_chunk(b"XTRA", b"needed to decode what follows")
        writer.write_frame(b"f", 0)
    with pytest.raises(UnsupportedError, match="unknown critical chunk"):
        read_container(buffer.getvalue(), "x.lotto")

    buffer = io.BytesIO()
    with ContainerWriter(buffer, full_header()) as writer:
        writer.write_frame(b"f0", writer.write_group(b"g"))
        writer._write_chunk(b"XTRA", b"")
        writer.write_frame(b"f1", 0)
    container = read_container(buffer.getvalue())
    assert container.frames == [FramePacket(0, 0, b"f0")]
    assert container.damage is not None and "XTRA chunk 1" in container.damage


def body_after_header() -> bytes:
    return SIGNATURE + chunk(b"SHDR", full_header().to_bytes())


@pytest.mark.parametrize(
    "chunks, message",
    [
        ([(b"FRME", struct.pack(">IqI", 0, 0, 0) + b"f")], "refers to group 0"),
        ([(b"GHDR", b"g"), (b"FRME", struct.pack(">IqI", 1, 0, 0))], "refers to group 1"),
        ([(b"GHDR", b"g"), (b"FRME", b"short")], "prefix"),
        ([(b"GHDR", b"g"), (b"SHDR", full_header().to_bytes())], "second sequence header"),
        ([(b"GHDR", b"g"), (b"meta", b"[1, 2]")], "not a JSON object"),
    ],
)
def test_structural_damage_without_an_intact_frame_is_an_error(chunks: list, message: str) -> None:
    data = body_after_header() + b"".join(chunk(t, p) for t, p in chunks) + chunk(b"SEND", b"")
    with pytest.raises(FormatError, match=message):
        read_container(data)


@pytest.mark.parametrize(
    "chunks, message",
    [
        ([(b"meta", b"{}"), (b"GHDR", b"g2")], "comes after"),
        ([(b"SHDR", full_header().to_bytes())], "second sequence header"),
        ([(b"meta", b"{}"), (b"meta", b"{}")], "appears twice"),
        ([(b"indx", struct.pack(">III", 0, 0, 12))], "index disagrees"),
        ([(b"SEND", b"x")], "not empty"),
    ],
)
def test_structural_damage_after_a_frame_keeps_the_frame(chunks: list, message: str) -> None:
    frame = chunk(b"GHDR", b"g") + chunk(b"FRME", struct.pack(">IqI", 0, 7, 0) + b"f")
    data = body_after_header() + frame + b"".join(chunk(t, p) for t, p in chunks) + chunk(b"SEND", b"")
    container = read_container(data)
    assert container.frames == [FramePacket(0, 7, b"f")]
    assert container.damage is not None and message in container.damage


def test_trailing_bytes_after_end_marker_are_reported() -> None:
    container = read_container(sample_bytes() + b"junk")
    assert container.frames == EXPECTED_FRAMES
    assert container.damage is not None and "4 unexpected bytes" in container.damage


# -- damage: truncation, bit flips, absurd lengths ---------------------------------------------


def test_truncation_at_every_offset() -> None:
    data = sample_bytes()
    previous = 0
    for end in range(len(data) + 1):
        try:
            container = read_container(data[:end], "cut.lotto")
        except FormatError as error:
            assert str(error).startswith("cut.lotto: ")
            intact = 0
        else:
            intact = len(container.frames)
            assert container.frames == EXPECTED_FRAMES[:intact]
            assert (container.damage is None) == (end == len(data)), end
            if container.damage:
                assert f"{intact} of 3 frames intact" in container.damage
        assert intact >= previous, f"intact frames decreased at offset {end}"
        previous = intact
    assert previous == 3


def test_truncation_through_a_pipe_reports_what_is_intact() -> None:
    data = sample_bytes()
    full = read_container(data)
    third_frame = full.index.frames[2].offset  # type: ignore[union-attr]
    container = read_container(PipeStream(data[: third_frame + 20]), "pipe")
    assert container.frames == EXPECTED_FRAMES[:2]
    assert container.damage == f"truncated in FRME chunk 3 at byte {third_frame}; 2 of 3 frames intact"

    # Without a frame-count hint the reader can only say that at least one more frame existed.
    buffer = io.BytesIO()
    write_sample(buffer, header=SequenceHeader(8, 8, "gray", ModelConfig(out_channels=1)))
    cut = buffer.getvalue()[: read_container(buffer.getvalue()).index.frames[2].offset + 20]  # type: ignore[union-attr]
    assert read_container(cut).damage.endswith("; 2 of 3+ frames intact")  # type: ignore[union-attr]


def test_every_single_bit_flip_is_detected() -> None:
    data = sample_bytes()
    for position in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[position] ^= 1 << bit
            try:
                container = read_container(bytes(damaged))
            except FormatError:
                continue
            where = f"byte {position} bit {bit}"
            assert container.damage is not None, f"flip at {where} went unnoticed"
            n = len(container.frames)
            assert container.frames == EXPECTED_FRAMES[:n], f"flip at {where} changed a frame"
            assert container.groups == EXPECTED_GROUPS[: len(container.groups)]
            assert container.header == full_header()


def test_absurd_chunk_length_is_damage_not_allocation() -> None:
    data = bytearray(sample_bytes())
    frame_offset = read_container(bytes(data)).index.frames[1].offset  # type: ignore[union-attr]
    struct.pack_into(">I", data, frame_offset + 4, 0xFFFFFFFF)
    container = read_container(bytes(data))
    assert len(container.frames) == 1
    assert "length 4294967295 exceeds the limit" in container.damage  # type: ignore[operator]

    # Just below the limit: from bytes this is truncation; from a pipe it is read in bounded pieces.
    struct.pack_into(">I", data, frame_offset + 4, MAX_CHUNK_LENGTH)
    pipe = PipeStream(bytes(data), max_piece=1 << 30)
    container = read_container(pipe)
    assert pipe.largest_request <= READ_PIECE
    assert container.damage is not None and container.damage.startswith("truncated in FRME chunk 2")
    assert read_container(bytes(data)).damage == container.damage


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda d: b"", "empty file"),
        (lambda d: d[:5], "truncated inside the signature"),
        (lambda d: b"GIF89a" + d[6:], "not a .lotto file"),
        (lambda d: d.replace(b"\r\n", b"\n", 1), "text mode"),
        (lambda d: bytes([d[0] & 0x7F]) + d[1:], "7-bit"),
        (lambda d: d[:8] + chunk(b"GHDR", b"g"), "expected the sequence header"),
        (lambda d: d[:30], "truncated in the sequence header"),
        (lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], "sequence header CRC mismatch"),
    ],
)
def test_damaged_start_is_a_format_error_naming_the_file(mangle: object, message: str) -> None:
    with pytest.raises(FormatError, match=message) as error:
        read_container(mangle(sample_bytes()), "x.lotto")  # type: ignore[operator]
    assert str(error.value).startswith("x.lotto: ")


def test_text_mode_stream_is_refused() -> None:
    with pytest.raises(InputError, match="binary mode"):
        read_container(io.StringIO("text"), "x.lotto")  # type: ignore[arg-type]


# -- index ----------------------------------------------------------------------------------


def test_index_offsets_point_at_the_chunks() -> None:
    data = sample_bytes()
    container = read_container(data)
    index = container.index
    assert index is not None and read_index(io.BytesIO(data)) == index == read_index(data)
    assert len(index.group_offsets) == 2
    for offset, expected in zip(index.group_offsets, EXPECTED_GROUPS):
        assert data[offset : offset + 4] == b"GHDR"
        assert read_chunk_at(data, offset) == ("GHDR", expected)
    for entry, expected in zip(index.frames, EXPECTED_FRAMES, strict=True):
        assert (entry.group, entry.pts) == (expected.group, expected.pts)
        chunk_type, payload = read_chunk_at(io.BytesIO(data), entry.offset)
        assert chunk_type == "FRME" and FramePacket.from_bytes(payload) == expected


@pytest.mark.parametrize("frames, index, expected", [(1, None, False), (2, None, True), (1, True, True), (3, False, False)])
def test_the_index_is_written_for_several_frames_or_on_request(frames: int, index: bool | None, expected: bool) -> None:
    buffer = io.BytesIO()
    with ContainerWriter(buffer, full_header(), index=index) as writer:
        group = writer.write_group(b"nets")
        for pts in range(frames):
            writer.write_frame(b"frame", group, pts=pts)
    container = read_container(buffer.getvalue())
    assert len(container.frames) == frames and not container.damage
    assert (container.index is not None) == expected
    if not expected:
        with pytest.raises(FormatError):
            read_index(buffer.getvalue())


def test_read_index_refuses_an_incomplete_file() -> None:
    with pytest.raises(FormatError, match="end marker"):
        read_index(sample_bytes()[:-1])


# -- golden file ----------------------------------------------------------------------------


def test_golden_file_is_reproduced_byte_for_byte() -> None:
    data = sample_bytes()
    if os.environ.get("LOTTO_REGENERATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_bytes(data)
    assert GOLDEN.exists(), f"{GOLDEN} is missing (regenerate it, see the module docstring)"
    assert data == GOLDEN.read_bytes(), "the container layout changed: bump the format version"


def test_golden_file_reads_back() -> None:
    assert_is_sample(read_container(GOLDEN.read_bytes(), GOLDEN.name))


def test_version_1_golden_file_still_reads() -> None:
    container = read_container(GOLDEN_V1.read_bytes(), GOLDEN_V1.name)
    header = container.header
    assert header.format_version == 1
    assert header.model == ModelConfig(seed=2**63 + 12345, synth_widths=(128, 64, 1024), n_levels=9, mod_hidden=1000,
                                       arm_hidden=256, out_channels=3, mask_ratio=0.15)
    assert (header.width, header.height, header.pix_fmt, header.n_frames) == (1920, 1080, "yuv420p10le", 3)
    assert (header.gop, header.rotation, header.source) == (0, 0, "")
    assert container.groups == EXPECTED_GROUPS
    assert container.frames == [FramePacket(p.group, p.pts, p.payload) for p in EXPECTED_FRAMES]
    assert container.legacy_audio == ("opus", b"OpusHead\x01\x02 audio bytes")
    assert container.audio is None and container.damage is None
