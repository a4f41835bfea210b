"""Predicted frames: drift-free decoding over a long group, a still scene, known motion, and the
packet and group-header layouts that carry them.

Frames are real: crops of the bundled Kodak picture, repeated with a little noise (a still camera)
or seen through a window that moves by known whole and fractional offsets.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from conftest import SAMPLES_DIR
from lotto_media.coding import bitstream
from lotto_media.coding.bitstream import FramePayload, FrameType, GroupHeader, MaskCoding
from lotto_media.container import read_container
from lotto_media.errors import FormatError, UnsupportedError
from lotto_media.frame import Frame
from lotto_media.model.motion import compensate, shift_plane
from lotto_media.options import EncodeOptions
from lotto_media.plugins.image_io import read_image
from lotto_media.stream import LottoReader, StreamDecoder
from test_stream import encode, pan, same_planes, to_yuv420

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


def test_known_motion_is_recovered_and_predicted_frames_cost_a_fifth_of_the_intra_frame():
    offsets = [0, 3, 6, 10, 14]  # steps of 3/4 and of one whole sample
    frames = moving_window(offsets)
    data, coded = encode(frames, gop=5, options=SHORT_FAST)
    motion = [p.motion for p in frame_payloads(data)]
    assert motion == [(0, 0)] + [(b - a, 0) for a, b in zip(offsets, offsets[1:])]
    intra = coded[0]
    assert all(len(p.data) <= len(intra.data) / 5 for p in coded[2:]), [len(p.data) for p in coded]
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
    with pytest.raises(FormatError, match="motion"):
        bitstream.unpack_frame(data[: 8 + 1 + 3])
    two_back = bytearray(data)
    two_back[3] = 2
    with pytest.raises(UnsupportedError, match="reference 2"):
        bitstream.unpack_frame(bytes(two_back))
    no_reference = bytearray(bitstream.pack_frame(FramePayload(b"m", b"l", frame_type=FrameType.PREDICTED,
                                                               reference=1)))
    no_reference[3] = 0
    with pytest.raises(FormatError, match="reference 0"):
        bitstream.unpack_frame(bytes(no_reference))


def test_a_group_with_predicted_frames_sends_both_network_sets():
    frames = pan(3, height=16, width=24, step=1)
    data, _ = encode(frames, gop=3, options=ULTRA)
    (group_payload,) = read_container(data).groups
    header = read_container(data).header
    group = bitstream.unpack_group(group_payload, header.model)
    assert group_payload[0] == bitstream.GROUP_VERSION_PREDICTED and group.predicted_nets is not None
    assert bitstream.pack_group(group) == group_payload
    intra_only = bitstream.pack_group(GroupHeader(group.arm_hidden, group.nets))
    assert intra_only[0] == bitstream.GROUP_VERSION
    with pytest.raises(FormatError, match="trailing"):
        bitstream.unpack_group(group_payload + b"\0", header.model)


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
