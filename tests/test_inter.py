"""Predicted frames: drift-free decoding over a long group, a still scene, known motion, and the
packet and group-header layouts that carry them.

Frames are real: crops of the bundled Kodak picture, repeated with a little noise (a still camera)
or seen through a window that moves by known whole and fractional offsets.
"""

from __future__ import annotations

import io
import struct
from dataclasses import replace

import numpy as np
import pytest

from conftest import SAMPLES_DIR
from lotto_media.coding import bitstream, entropy
from lotto_media.coding.bitstream import FramePayload, FrameType, GroupHeader, MaskCoding
from lotto_media.coding.params import QuantizedNetworks
from lotto_media.container import read_container
from lotto_media.errors import FormatError, UnsupportedError
from lotto_media.frame import Frame
from lotto_media.model.motion import (MotionField, as_field, compensate, estimate_field, is_scene_cut, overlap_weights,
                                     shift_plane)
from lotto_media.options import EncodeOptions
from lotto_media.plugins.image_io import read_image
from lotto_media.stream import LottoReader, StreamDecoder
from test_stream import encode, force_temporal_taps, pan, same_planes, sheared, to_yuv420, two_motions

ULTRA = EncodeOptions(preset="ultrafast", steps=24, quality=50, threads=1)
#: enough search for the residuals to settle, still a few seconds on 2 cores at 40x32
SHORT_FAST = EncodeOptions(preset="fast", steps=160, quality=40, threads=1)


def picture() -> np.ndarray:
    return read_image(SAMPLES_DIR / "kodim23_192x128.png").to_array().astype(np.float64)


def still_scene(n: int, height: int = 32, width: int = 40) -> list[Frame]:
    """One real picture, each frame with fresh noise of one grey level (sensor noise)."""
    rng = np.random.default_rng(7)
    crop = picture()[40 : 40 + height, 60 : 60 + width]
    return [Frame.from_array(np.clip(crop + rng.normal(0, 1, crop.shape), 0, 255).round().astype(np.uint8), pts=k)
            for k in range(n)]


def moving_window(offsets: list[int], height: int = 32, width: int = 40) -> list[Frame]:
    """The picture seen through a window at ``offsets`` quarter samples from the left: windows of a
    4x larger grid moved by whole samples, then averaged 4x4 (an exact fractional shift of the
    continuous picture, made without the codec's interpolation)."""
    big = picture()
    frames = []
    for k, offset in enumerate(offsets):
        window = big[: 4 * height, offset : offset + 4 * width]
        small = window.reshape(height, 4, width, 4, 3).mean(axis=(1, 3))
        frames.append(Frame.from_array(small.round().astype(np.uint8), pts=k))
    return frames


def frame_payloads(data: bytes) -> list[FramePayload]:
    return [bitstream.unpack_frame(p.payload) for p in read_container(data).frames]


@pytest.mark.parametrize("bits", [8, 10])
def test_no_drift_over_a_group_of_16_predicted_frames(bits):
    frames = [to_yuv420(f, bits) for f in pan(17, height=16, width=24, step=1)]
    data, coded = encode(frames, gop=16, options=ULTRA)
    assert [p.frame_type for p in coded] == [FrameType.INTRA] + [FrameType.PREDICTED] * 15 + [FrameType.INTRA]
    decoded = list(LottoReader(io.BytesIO(data), "pan.lotto"))
    assert len(decoded) == 17
    assert all(same_planes(d, c.reconstruction) for d, c in zip(decoded, coded))
    assert decoded[0].pix_fmt == ("yuv420p" if bits == 8 else "yuv420p10le")
    # the second group decodes alone: frame 16 needs nothing of the first group
    alone = list(LottoReader(data, "pan.lotto", frames=range(16, 17)))
    assert len(alone) == 1 and same_planes(alone[0], coded[16].reconstruction)


def test_a_still_scene_costs_a_predicted_frame_less_than_a_quarter_of_the_intra_frame():
    frames = still_scene(4)
    data, coded = encode(frames, gop=4, options=SHORT_FAST)
    intra, later = coded[0], coded[2:]
    assert all(len(p.data) < len(intra.data) / 4 for p in later), [len(p.data) for p in coded]
    assert all(p.psnr >= intra.psnr for p in later), [p.psnr for p in coded]
    assert all(same_planes(d, c.reconstruction) for d, c in zip(LottoReader(data), coded))


def test_known_motion_is_recovered_and_predicted_frames_cost_a_quarter_of_the_intra_frame():
    offsets = [0, 3, 6, 10, 14]  # steps of 3/4 and of one whole sample
    frames = moving_window(offsets)
    data, coded = encode(frames, gop=5, options=SHORT_FAST)
    payloads = frame_payloads(data)
    assert payloads[0].motion == (0, 0)
    for payload, shift in zip(payloads[1:], [b - a for a, b in zip(offsets, offsets[1:])]):
        field = as_field(payload.motion)
        # the picture's translation, and most blocks' own vectors (a block where new content
        # enters at the edge may find a better match elsewhere)
        assert field.base == (shift, 0)
        vectors = field.vectors.reshape(-1, 2)
        assert (vectors == (shift, 0)).all(axis=1).mean() >= 0.6, vectors
    intra = coded[0]
    # measured: 316 B for the intra frame, then 132, 71, 59 and 55 B (Adam on the networks gave
    # 396, then 120, 51, 47, 55 B, each frame at a lower PSNR)
    assert all(len(p.data) <= len(intra.data) / 4 for p in coded[2:]), [len(p.data) for p in coded]
    assert all(same_planes(d, c.reconstruction) for d, c in zip(LottoReader(data), coded))


def test_whole_sample_motion_copies_samples_with_repeated_edges():
    plane = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    moved = shift_plane(plane, 2 << 2, -1 << 2, 2)  # two right, one up, in quarter samples
    rows = np.clip(np.arange(4) - 1, 0, 3)
    cols = np.clip(np.arange(5) + 2, 0, 4)
    assert np.array_equal(moved, plane[rows][:, cols])


def test_half_sample_motion_is_the_rounded_mean_of_neighbours():
    plane = np.array([[0, 3, 10, 255]], dtype=np.uint8)
    (moved,) = compensate([plane], (2, 0), chroma_420=False)  # half a sample right
    expected = [(0 + 3 + 1) // 2, (3 + 10 + 1) // 2, (10 + 255 + 1) // 2, 255]
    assert moved.tolist() == [expected]


def test_chroma_of_420_reads_the_vector_in_eighth_samples():
    luma = np.zeros((2, 8), dtype=np.uint16)
    chroma_plane = np.array([[0, 8, 16, 24]], dtype=np.uint16)
    _, moved, _ = compensate([luma, chroma_plane, chroma_plane], (4, 0), chroma_420=True)  # 1 luma sample
    assert moved.tolist() == [[4, 12, 20, 24]]  # half a chroma sample


def test_predicted_frame_packets_carry_their_motion_and_reference():
    payload = FramePayload(b"m", b"latents", frame_type=FrameType.PREDICTED, mask_coding=MaskCoding.DELTA,
                           reference=1, motion=(-7, 300))
    data = bitstream.pack_frame(payload)
    assert bitstream.unpack_frame(data) == payload
    # version 5 (FORMAT.md 3.2): head, tools 0 (one vector), varint mask length and code, zigzag
    # varints of -7 (13) and 300 (600 = 0xD8 0x04)
    assert data == bytes([5, 1, 1, 1, 0, 1]) + b"m" + bytes([13, 0xD8, 0x04]) + b"latents"
    with pytest.raises(FormatError, match="motion"):
        bitstream.unpack_frame(data[:8])
    version_2 = bitstream.pack_frame(payload, version=2)
    assert version_2 == bytes([2, 1, 1, 1]) + struct.pack("<I", 1) + b"m" + struct.pack("<hh", -7, 300) + b"latents"
    assert bitstream.unpack_frame(version_2) == payload
    with pytest.raises(FormatError, match="motion"):
        bitstream.unpack_frame(version_2[: 8 + 1 + 3])
    two_back = bytearray(data)
    two_back[3] = 2
    with pytest.raises(UnsupportedError, match="reference 2"):
        bitstream.unpack_frame(bytes(two_back))
    no_reference = bytearray(bitstream.pack_frame(FramePayload(b"m", b"l", frame_type=FrameType.PREDICTED,
                                                               reference=1)))
    no_reference[3] = 0
    with pytest.raises(FormatError, match="reference 0"):
        bitstream.unpack_frame(bytes(no_reference))


def _field(block: int, vectors: list[list[tuple[int, int]]], base: tuple[int, int] = (0, 0)) -> MotionField:
    return MotionField(block, np.array(vectors, dtype=np.int64), base)


@pytest.mark.parametrize("bits", [8, 10])
def test_a_uniform_field_compensates_as_its_translation(bits):
    frame = to_yuv420(pan(1, height=23, width=37)[0], bits)  # odd sizes: chroma 12 x 19
    for mv in [(5, -3), (-9, 7), (16, 0)]:
        rows, cols = MotionField.grid(8, 23, 37)
        field = _field(8, [[mv] * cols for _ in range(rows)])
        for a, b in zip(compensate(frame.planes, field, True), compensate(frame.planes, mv, True)):
            assert np.array_equal(a, b)


def test_each_block_follows_its_own_vector():
    """Every sample of a block equals the whole plane shifted by that block's vector (luma in
    quarter samples, 4:2:0 chroma by the same integers in eighth samples over blocks half as wide)."""
    frame = to_yuv420(pan(1, height=40, width=48)[0])
    vectors = [[(5, -3), (0, 0), (-13, 6)], [(2, 9), (-4, -4), (7, 1)], [(0, 8), (-1, 0), (3, -7)]]
    moved = compensate(frame.planes, _field(16, vectors), chroma_420=True)
    for plane, out, size, frac in [(frame.planes[0], moved[0], 16, 2), (frame.planes[1], moved[1], 8, 3)]:
        for r, row in enumerate(vectors):
            for c, (mx, my) in enumerate(row):
                block = (slice(r * size, (r + 1) * size), slice(c * size, (c + 1) * size))
                assert np.array_equal(out[block], shift_plane(plane, mx, my, frac)[block]), (r, c)


@pytest.mark.parametrize("overlapped", [False, True])
def test_vectors_reaching_beyond_the_picture_read_its_repeated_edges(overlapped):
    """Vectors of several times the plane's size: every position is clamped to the plane (without
    overlap each block equals ``shift_plane`` by its vector; with overlap the plane equals FORMAT.md
    3.6's blend of such shifts)."""
    frame = to_yuv420(pan(1, height=24, width=40)[0], 10)
    vectors = [[(-400, 0), (0, 333), (161, -97)], [(5, 5), (-258, -401), (1000, 1000)]]
    field = MotionField(16, np.array(vectors, dtype=np.int64), (0, 0), overlapped=overlapped)
    moved = compensate(frame.planes, field, chroma_420=True)
    uniform = MotionField(16, np.array([[(1000, -1000)] * 3] * 2, dtype=np.int64), (0, 0), overlapped=overlapped)
    for plane, out, whole, size, frac in [(frame.planes[0], moved[0], compensate(frame.planes, uniform, True)[0], 16, 2),
                                          (frame.planes[1], moved[1], compensate(frame.planes, uniform, True)[1], 8, 3)]:
        assert np.array_equal(whole, np.full_like(plane, plane[0, -1]))  # far right and up: the top-right sample
        if overlapped:
            assert np.array_equal(out, _overlapped_by_the_format(plane, field, size, frac))
            continue
        for r, row in enumerate(vectors):
            for c, (mx, my) in enumerate(row):
                block = (slice(r * size, (r + 1) * size), slice(c * size, (c + 1) * size))
                assert np.array_equal(out[block], shift_plane(plane, mx, my, frac)[block]), (r, c)


#: FORMAT.md 3.6's tables of the own block's weight (first halves; the tables are symmetric)
FORMAT_OVERLAP_WEIGHTS = {
    4: [88, 123],
    8: [76, 100, 117, 127],
    16: [70, 83, 94, 105, 113, 120, 125, 128],
    32: [67, 73, 80, 86, 91, 97, 102, 107, 111, 115, 119, 122, 124, 126, 127, 128],
    64: [66, 69, 72, 75, 78, 81, 84, 87, 90, 93, 96, 98, 101, 103, 106, 108, 110, 112, 114, 116, 118, 120, 121,
         123, 124, 125, 126, 126, 127, 128, 128, 128],
}


def test_overlap_weights_are_the_format_tables():
    for size, half in FORMAT_OVERLAP_WEIGHTS.items():
        assert overlap_weights(size).tolist() == half + half[::-1]


def _overlapped_by_the_format(plane: np.ndarray, field: MotionField, size: int, frac: int) -> np.ndarray:
    """FORMAT.md 3.6's overlapped compensation sample by sample, from whole-plane shifts."""
    rows, cols = field.vectors.shape[:2]
    shifted = {(r, c): shift_plane(plane, *field.vectors[r, c], frac).astype(np.int64)
               for r in range(rows) for c in range(cols)}
    table = {s: np.array(h + h[::-1]) for s, h in FORMAT_OVERLAP_WEIGHTS.items()}[size]

    def axis(q: int, n: int) -> tuple[int, int, int]:
        own = min(q // size, n - 1)
        p = min(q - own * size, size - 1)
        near = min(max(own - 1 if 2 * p + 1 < size else own + 1, 0), n - 1)
        return own, near, int(table[p])

    out = np.empty(plane.shape, dtype=np.int64)
    for y in range(plane.shape[0]):
        oy, ny, wy = axis(y, rows)
        for x in range(plane.shape[1]):
            ox, nx, wx = axis(x, cols)
            total = (wy * wx * shifted[oy, ox][y, x] + wy * (128 - wx) * shifted[oy, nx][y, x]
                     + (128 - wy) * wx * shifted[ny, ox][y, x] + (128 - wy) * (128 - wx) * shifted[ny, nx][y, x])
            out[y, x] = (total + 8192) >> 14
    return out


@pytest.mark.parametrize("bits", [8, 10])
def test_overlapped_blocks_blend_their_neighbours_as_the_format_says(bits):
    frame = to_yuv420(pan(1, height=37, width=45)[0], bits)  # partial blocks; chroma 19 x 23
    vectors = [[(5, -3), (0, 0), (-13, 6)], [(2, 9), (-4, -4), (7, 1)], [(0, 8), (-1, 0), (3, -7)]]
    field = MotionField(16, np.array(vectors, dtype=np.int64), (0, 0), overlapped=True)
    moved = compensate(frame.planes, field, chroma_420=True)
    plain = compensate(frame.planes, replace(field, overlapped=False), chroma_420=True)
    layouts = [(frame.planes[0], 16, 2), (frame.planes[1], 8, 3), (frame.planes[2], 8, 3)]
    for k, (plane, size, frac) in enumerate(layouts):
        assert moved[k].dtype == plane.dtype
        assert np.array_equal(moved[k], _overlapped_by_the_format(plane, field, size, frac)), k
        assert not np.array_equal(moved[k], plain[k])
    # the middle of a block keeps its own vector; a uniform field is its translation
    assert np.array_equal(moved[0][24:26, 24:26], plain[0][24:26, 24:26])
    rows, cols = MotionField.grid(8, 37, 45)
    uniform = MotionField(8, np.array([[(-6, 3)] * cols] * rows, dtype=np.int64), (0, 0), overlapped=True)
    for a, b in zip(compensate(frame.planes, uniform, True), compensate(frame.planes, (-6, 3), True)):
        assert np.array_equal(a, b)


def test_version_5_packets_are_compact_and_damage_is_refused():
    field = _field(16, [[(3, -1), (4, 0)], [(-20, 7), (4, 0)]], base=(4, 0))
    payload = FramePayload(bitstream.EMPTY_MASK_DELTA, b"latents", frame_type=FrameType.PREDICTED,
                           mask_coding=MaskCoding.DELTA, reference=1, motion=replace(field, overlapped=True))
    data = bitstream.pack_frame(payload)
    # FORMAT.md 3.2 by hand: tools 2 (overlapped field, base-vector code) | 8 (the reference's mask:
    # no mask code); block 16 (code 1) with k = 1; rows 2, cols 2; base 4 -> 8, 0 -> 0; the code
    base_code = entropy.exp_golomb_encode(np.array([-1, -1, 0, 0, -24, 7, 0, 0]), 1)
    assert data == bytes([5, 1, 1, 1, 2 | 8, 1 | 1 << 2, 2, 2, 8, 0, len(base_code)]) + base_code + b"latents"
    assert bitstream.unpack_frame(data) == payload
    assert bitstream.unpack_frame(data).motion != field  # overlapped is part of the motion
    # a field that moves together away from the base: the neighbours' median (bit 2); a mask code
    together = _field(16, [[(40, -21), (41, -21), (41, -20)], [(40, -20), (41, -20), (41, -20)]])
    changed = replace(payload, mask=b"\x01\x00\x00\x00xyz", motion=together)
    packed = bitstream.pack_frame(changed)
    assert packed[4] == 1 | 4 and packed[5:13] == bytes([7]) + changed.mask
    assert bitstream.unpack_frame(packed) == changed
    damaged = {
        "has reserved values": (4, 0x0B),       # motion kind 3
        "reserved values": (4, 0x1A),           # bit 4
        "median vector code without a motion field": (4, 0x04 | 0x08),
        "order 63": (5, 0xFD),                  # k from the field byte's top bits
        "field of 0x2 blocks": (6, 0),
        "code length 100": (10, 100),           # beyond the packet
    }
    for problem, (offset, value) in damaged.items():
        bad = bytearray(data)
        bad[offset] = value
        with pytest.raises(FormatError, match=problem):
            bitstream.unpack_frame(bytes(bad))
    absolute = bytearray(data)
    absolute[2] = MaskCoding.ABSOLUTE
    with pytest.raises(FormatError, match="absolute mask coding"):
        bitstream.unpack_frame(bytes(absolute))
    endless = bytes([5, 1, 1, 1, 0]) + b"\xff" * 6  # a mask length with no last byte
    with pytest.raises(FormatError, match="longer than 5 bytes"):
        bitstream.unpack_frame(endless)
    huge_vector = bytes([5, 1, 1, 1, 8]) + bytes([0x80, 0x80, 0x04, 0])  # zigzag 65536: beyond 16 bits
    with pytest.raises(FormatError, match="motion vector 65536"):
        bitstream.unpack_frame(huge_vector)
    with pytest.raises(FormatError, match="truncated"):
        bitstream.unpack_frame(data[:5])
    intra = bytearray(data)
    intra[1], intra[3] = FrameType.INTRA, 0
    with pytest.raises(FormatError, match="for predicted frames"):
        bitstream.unpack_frame(bytes(intra))
    with pytest.raises(ValueError, match="need frame version 5"):
        bitstream.pack_frame(payload, version=4)


def test_motion_field_packets_round_trip_and_damage_is_refused():
    field = _field(16, [[(3, -1), (4, 0)], [(-20, 7), (4, 0)]], base=(4, 0))
    payload = FramePayload(b"m", b"latents", frame_type=FrameType.PREDICTED, mask_coding=MaskCoding.DELTA,
                           reference=1, motion=field)
    # the older layouts, which readers still decode: differences from the base (version 3), from
    # the neighbours' median (version 4)
    data = bitstream.pack_frame(payload, version=bitstream.FRAME_VERSION_FIELD)
    assert data[0] == bitstream.FRAME_VERSION_FIELD
    parsed = bitstream.unpack_frame(data)
    assert parsed.motion == field and parsed.latents == b"latents" and parsed.mask == b"m"
    together = _field(16, [[(40, -21), (41, -21), (41, -20)], [(40, -20), (41, -20), (41, -20)]], base=(0, 0))
    packed = bitstream.pack_frame(replace(payload, motion=together), version=bitstream.FRAME_VERSION_FIELD_PREDICTED)
    assert packed[0] == bitstream.FRAME_VERSION_FIELD_PREDICTED
    assert bitstream.unpack_frame(packed).motion == together
    # version 4 of the first field, written by hand: each vector less its prediction from FORMAT.md
    # §3.2: (0,0) the base (4,0); (0,1) its left (3,-1); (1,0) its top (3,-1); (1,1), in the last
    # column, the median of left (-20,7), top (4,0) and top-left (3,-1): (3,0)
    median_code = entropy.exp_golomb_encode(np.array([-1, -1, 1, 1, -23, 8, 1, 0]), 1)
    by_hand = (bytes([bitstream.FRAME_VERSION_FIELD_PREDICTED]) + data[1:9]
               + struct.pack("<BHHhhBI", 16, 2, 2, 4, 0, 1, len(median_code)) + median_code + b"latents")
    assert bitstream.unpack_frame(by_hand).motion == field
    # a difference no two 16-bit vectors can have
    huge_code = entropy.exp_golomb_encode(np.array([65536, 0, 0, 0, 0, 0, 0, 0]), 0)
    huge = data[:9] + struct.pack("<BHHhhBI", 16, 2, 2, 4, 0, 0, len(huge_code)) + huge_code + b"latents"
    with pytest.raises(FormatError, match="difference beyond 16 bits"):
        bitstream.unpack_frame(huge)
    # one vector for every block travels as one vector
    uniform = bitstream.pack_frame(replace(payload, motion=_field(16, [[(4, 0), (4, 0)]], base=(4, 0))))
    assert uniform[4] == 0 and bitstream.unpack_frame(uniform).motion == (4, 0)
    field_at = 8 + 1  # head, then the 1-byte mask code
    damaged = {
        "blocks of 12 samples": (field_at, 12),          # not 8, 16, 32 or 64
        "cannot fit": (field_at + 1, 200),               # 200 x 2 blocks in a few bytes
        "exceeds the packet": (field_at + 10, 255),      # code length beyond the packet
        "order 99": (field_at + 9, 99),                  # exp-Golomb order beyond 15
    }
    for problem, (offset, value) in damaged.items():
        bad = bytearray(data)
        bad[offset] = value
        with pytest.raises(FormatError, match=problem):
            bitstream.unpack_frame(bytes(bad))
    with pytest.raises(FormatError, match="motion field"):
        bitstream.unpack_frame(data[: field_at + 5])
    intra = bytearray(data)
    intra[1], intra[3] = FrameType.INTRA, 0
    with pytest.raises(FormatError, match="for predicted frames"):
        bitstream.unpack_frame(bytes(intra))


def test_two_motions_are_coded_as_a_field_that_decodes_exactly():
    frames = two_motions(3)
    data, coded = encode(frames, gop=3, options=SHORT_FAST)
    payloads = frame_payloads(data)
    assert [p.frame_type for p in payloads] == [FrameType.INTRA, FrameType.PREDICTED, FrameType.PREDICTED]
    fields = [p.motion for p in payloads[1:]]
    assert all(isinstance(f, MotionField) and f.block == 16 for f in fields), fields
    for field in fields:
        # the outer blocks of each half carry its motion (quarter samples), within half a sample:
        # the search matches the source against the decoded, not the original, reference
        for column, truth in ((0, (8, 0)), (-1, (-12, 0))):
            error = np.abs(field.vectors[:, column] - np.array(truth)).max(axis=-1)
            assert (error <= 2).mean() >= 0.6, field.vectors
    assert all(same_planes(d, c.reconstruction) for d, c in zip(LottoReader(data), coded))


def test_a_field_for_another_picture_size_is_refused():
    frames = two_motions(2)
    data, _ = encode(frames, gop=2, options=SHORT_FAST)
    container = read_container(data)
    payload = bitstream.unpack_frame(container.frames[1].payload)
    assert isinstance(payload.motion, MotionField)
    small = replace(payload, motion=_field(16, [[(0, 0), (4, 0)], [(8, 0), (0, 4)]]))  # the picture has 3x4
    decoder = StreamDecoder(container.header, "two.lotto")
    decoder.add_group(0, container.groups[0])
    decoder.decode(container.frames[0])
    packet = replace(container.frames[1], payload=bitstream.pack_frame(small))
    with pytest.raises(FormatError, match="motion field of 2x2 blocks, where the picture has 3x4"):
        decoder.decode(packet)


def same_group(a: GroupHeader, b: GroupHeader) -> bool:
    """Two group headers with the same widths and the same integers in every network."""
    def same_nets(x: QuantizedNetworks | None, y: QuantizedNetworks | None) -> bool:
        if x is None or y is None:
            return x is y
        return all(x.module(n).frac == y.module(n).frac and len(x.module(n).tensors) == len(y.module(n).tensors)
                   and all(np.array_equal(p, q) for p, q in zip(x.module(n).tensors, y.module(n).tensors))
                   for n in ("arm", "upsampler", "modulation"))
    return ((a.arm_hidden, a.predicted_arm_hidden) == (b.arm_hidden, b.predicted_arm_hidden)
            and same_nets(a.nets, b.nets) and same_nets(a.predicted_nets, b.predicted_nets))


def test_a_group_with_predicted_frames_sends_both_network_sets():
    frames = pan(3, height=16, width=24, step=1)
    data, _ = encode(frames, gop=3, options=ULTRA)
    (group_payload,) = read_container(data).groups
    header = read_container(data).header
    group = bitstream.unpack_group(group_payload, header.model)
    assert group_payload[:2] == bytes([bitstream.GROUP_VERSION_CODED, bitstream.GroupFlags.PREDICTED])
    assert group.predicted_nets is not None
    assert bitstream.pack_group(group) == group_payload
    intra_only = bitstream.pack_group(GroupHeader(group.arm_hidden, group.nets))
    assert intra_only[:2] == bytes([bitstream.GROUP_VERSION_CODED, 0])
    assert same_group(bitstream.unpack_group(intra_only, header.model), GroupHeader(group.arm_hidden, group.nets))
    with pytest.raises(FormatError, match="trailing"):
        bitstream.unpack_group(group_payload + b"\0", header.model)
    # the headers of earlier encoders (versions 2 and 3, exp-Golomb parameters) read to the same networks
    legacy = bitstream.pack_group(group, legacy=True)
    assert legacy[0] == bitstream.GROUP_VERSION_PREDICTED and len(legacy) > len(group_payload)
    assert same_group(bitstream.unpack_group(legacy, header.model), group)
    legacy_intra = bitstream.pack_group(GroupHeader(group.arm_hidden, group.nets), legacy=True)
    assert legacy_intra[0] == bitstream.GROUP_VERSION
    assert same_group(bitstream.unpack_group(legacy_intra, header.model), GroupHeader(group.arm_hidden, group.nets))


def test_a_version_5_group_header_refuses_unknown_flags_and_damaged_parameters():
    frames = pan(3, height=16, width=24, step=1)
    data, _ = encode(frames, gop=3, options=ULTRA)
    (payload,) = read_container(data).groups
    model = read_container(data).header.model

    def patched(position: int, value: int) -> bytes:
        return payload[:position] + bytes([value]) + payload[position + 1 :]

    for flags, message in ((0b100, "unknown flags"), (0x80, "unknown flags"),
                           (bitstream.GroupFlags.TEMPORAL, "temporal taps flagged without")):
        with pytest.raises(FormatError, match=message):
            bitstream.unpack_group(patched(1, flags), model)
    # the intra set: ARM width, three step bytes, then one model byte per tensor (scale code <= 36)
    first_model = 2 + 1 + 3
    with pytest.raises(FormatError, match="scale code 37 out of range"):
        bitstream.unpack_group(patched(first_model, 37), model)
    with pytest.raises(FormatError, match="quantisation step"):
        bitstream.unpack_group(patched(3, 13), model)
    for cut in (1, 2, 5, first_model + 3, len(payload) // 2, len(payload) - 4, len(payload) - 1):
        with pytest.raises(FormatError):
            bitstream.unpack_group(payload[:cut], model)
    # any flipped bit of the range-coded parameters is refused or decodes to other networks
    group = bitstream.unpack_group(payload, model)
    rng = np.random.default_rng(0)
    for position in rng.integers(first_model + 20, len(payload), 40).tolist():
        damaged = patched(position, payload[position] ^ (1 << int(rng.integers(8))))
        try:
            assert not same_group(bitstream.unpack_group(damaged, model), group)
        except FormatError:
            pass


def test_temporal_taps_travel_in_the_group_header_and_decode_exactly(monkeypatch):
    force_temporal_taps(monkeypatch)
    frames = [to_yuv420(f) for f in pan(4, height=16, width=24, step=1)]
    data, coded = encode(frames, gop=4, options=ULTRA)
    (group_payload,) = read_container(data).groups
    header = read_container(data).header
    group = bitstream.unpack_group(group_payload, header.model)
    assert group_payload[:2] == bytes([bitstream.GROUP_VERSION_CODED,
                                       bitstream.GroupFlags.PREDICTED | bitstream.GroupFlags.TEMPORAL])
    assert group.predicted_nets.arm_temporal == 9 and group.nets.arm_temporal == 0
    assert bitstream.pack_group(group) == group_payload
    decoded = list(LottoReader(data, "pan.lotto"))
    assert all(same_planes(d, c.reconstruction) for d, c in zip(decoded, coded))
    # the tap count sits after the predicted set's ARM width: 0 or more than 9 taps are refused,
    # in version 5 and in the version-4 layout of earlier encoders
    legacy = bitstream.pack_group(group, legacy=True)
    assert legacy[0] == bitstream.GROUP_VERSION_TEMPORAL
    assert same_group(bitstream.unpack_group(legacy, header.model), group)
    for payload, head in ((group_payload, 2), (legacy, 1)):
        intra_length = len(bitstream.pack_group(GroupHeader(group.arm_hidden, group.nets),
                                                legacy=payload is legacy)) - head
        taps_at = head + intra_length + 1
        assert payload[taps_at] == 9
        for bad in (0, 10, 255):
            damaged = payload[:taps_at] + bytes([bad]) + payload[taps_at + 1 :]
            with pytest.raises(FormatError, match="temporal taps"):
                bitstream.unpack_group(damaged, header.model)
        with pytest.raises(FormatError):
            bitstream.unpack_group(payload[: taps_at + 1], header.model)


def test_predicted_frames_with_a_second_full_resolution_grid_decode_exactly(monkeypatch):
    """At quality 90 (medium) every frame carries a second full-resolution latent grid, predicted
    frames too, whose temporal taps read the previous frame's second grid: still no drift."""
    force_temporal_taps(monkeypatch)
    frames = [to_yuv420(f) for f in pan(4, height=16, width=24, step=1)]
    data, coded = encode(frames, gop=4, options=replace(ULTRA, preset="medium", quality=90))
    assert read_container(data).header.model.fine_grids == 2
    assert [p.frame_type for p in coded] == [FrameType.INTRA] + [FrameType.PREDICTED] * 3
    decoded = list(LottoReader(data, "pan.lotto"))
    assert len(decoded) == 4 and all(same_planes(d, c.reconstruction) for d, c in zip(decoded, coded))



def test_a_predicted_frame_without_its_reference_is_refused():
    frames = pan(3, height=16, width=24, step=1)
    data, _ = encode(frames, gop=3, options=ULTRA)
    container = read_container(data)
    decoder = StreamDecoder(container.header, "pan.lotto")
    decoder.add_group(0, container.groups[0])
    with pytest.raises(FormatError, match="refers to frame 1 back, but its group has 0 before it"):
        decoder.decode(container.frames[1])
    group = bitstream.unpack_group(container.groups[0], container.header.model)
    decoder.add_group(0, bitstream.pack_group(GroupHeader(group.arm_hidden, group.nets)))
    decoder.decode(container.frames[0])
    with pytest.raises(FormatError, match="without networks for predicted frames"):
        decoder.decode(container.frames[1])


def test_a_scene_cut_starts_a_new_group():
    still = still_scene(3)
    other = [Frame.from_array(np.ascontiguousarray(picture()[90:122, 0:40].astype(np.uint8)), pts=3 + k) for k in range(2)]
    data, coded = encode(still + other, gop=16, options=ULTRA)
    assert [p.frame_type for p in coded] == [FrameType.INTRA, FrameType.PREDICTED, FrameType.PREDICTED,
                                             FrameType.INTRA, FrameType.PREDICTED]
    assert len(read_container(data).groups) == 2
    assert all(same_planes(d, c.reconstruction) for d, c in zip(LottoReader(data), coded))


@pytest.mark.parametrize("n_still, n_after, gop", [(1, 0, 16), (3, 0, 16), (3, 2, 4)])
def test_a_predicted_frame_costing_far_more_than_its_intra_frame_restarts_the_group(n_still, n_after, gop):
    """Strong fresh noise on the same picture is no scene cut (the motion explains most of the
    variance) but no prediction helps it: as a predicted frame it costs many times the group's
    intra frame, so it is coded again as the intra frame of a new group, whose predicted frames
    (the same noisy picture with a little more noise) follow; nothing is lost. With one frame
    before it, the first group keeps no predicted frame (nor networks for them); with gop 4 the
    restart happens in ``encode`` (the group is full) and the frames after it wait for ``flush``."""
    rng = np.random.default_rng(11)
    still = still_scene(n_still)
    noisy = np.clip(picture()[40:72, 60:100] + rng.normal(0, 40, (32, 40, 3)), 0, 255)
    after = [Frame.from_array(np.clip(noisy + (rng.normal(0, 1, noisy.shape) if k else 0), 0, 255).round()
                              .astype(np.uint8), pts=n_still + k) for k in range(1 + n_after)]
    assert not is_scene_cut(*(np.mean(np.stack(f.planes), axis=0) for f in (still[-1], after[0])))  # as the encoder judges RGB
    data, coded = encode(still + after, gop=gop, options=ULTRA)
    kinds = [FrameType.INTRA] + [FrameType.PREDICTED] * (n_still - 1)
    assert [p.frame_type for p in coded] == kinds + kinds[:1] + [FrameType.PREDICTED] * n_after
    assert [p.pts for p in coded] == list(range(n_still + 1 + n_after))
    container = read_container(data)
    assert [f.group for f in container.frames] == [0] * n_still + [1] * (1 + n_after)
    assert (bitstream.unpack_group(container.groups[0], container.header.model).predicted_nets is None) == (n_still == 1)
    assert all(same_planes(d, c.reconstruction) for d, c in zip(LottoReader(data), coded))


def _exp_golomb_length(value: int) -> int:
    """Bits of the order-0 signed exp-Golomb code of one value (zigzag: 1 -> 1, -1 -> 2, 2 -> 3...)."""
    mapped = 2 * value - 1 if value > 0 else -2 * value
    return 2 * int(np.floor(np.log2(mapped + 1))) + 1


def test_block_vectors_weigh_their_bits_against_the_prediction_error():
    """A still, smooth scene (a gentle ramp) with strong sensor noise: fractional vectors lower the
    prediction error a little by averaging the reference's noise. Chosen on error alone the field
    is full of them; weighed against their bits, fewer survive, and the field's error plus lambda
    times its vector bits is no larger."""
    rng = np.random.default_rng(3)
    ramp = 60 + np.add.outer(np.arange(48) * 0.7, np.arange(64) * 0.4)
    reference, target = (np.clip(ramp + rng.normal(0, 6, ramp.shape), 0, 255).round().astype(np.int64) for _ in range(2))
    lmbda, peak = 2e-3, 255

    def rate_distortion(field: MotionField) -> float:
        predicted = compensate([reference], field, chroma_420=False)[0]
        differences = (as_field(field).vectors - np.array(as_field(field).base)).reshape(-1)
        bits = sum(_exp_golomb_length(int(d)) for d in differences)
        return float(np.sum((predicted - target) ** 2)) + lmbda * peak**2 * bits

    free = estimate_field(reference, target, lmbda / 100, peak, rate_weight=0.0)
    weighed = estimate_field(reference, target, lmbda / 100, peak, rate_weight=100.0)
    moving = lambda f: int(np.any(as_field(f).vectors != np.array(as_field(f).base), axis=-1).sum())  # noqa: E731
    assert moving(free) > moving(weighed)
    assert rate_distortion(weighed) <= rate_distortion(free) * 1.01



def test_a_sheared_picture_is_predicted_with_overlapped_blocks_that_decode_exactly():
    frames = [to_yuv420(f) for f in sheared(3)]
    data, coded = encode(frames, gop=3, options=SHORT_FAST)
    payloads = frame_payloads(data)
    assert all(isinstance(p.motion, MotionField) and p.motion.overlapped for p in payloads[1:])
    assert all(same_planes(d, c.reconstruction) for d, c in zip(LottoReader(data), coded))
