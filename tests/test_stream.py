"""Streams of frames: groups sharing their networks, masks coded as deltas, random access,
damage, timing, and format-version-2 golden files.

Frames are real: crops of the bundled Kodak picture moved by a few pixels per frame (a camera pan)
and 4:2:0 frames of the shared clips when ../shared/media is present.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLES_DIR, require_media
from lotto_media.coding import bitstream, entropy
from lotto_media.coding.bitstream import MaskCoding
from lotto_media.codec import inspect
from lotto_media.container import FrameChunk, GroupChunk, StreamReader, read_container, read_index, read_chunk_at
from lotto_media.errors import FormatError, InputError
from lotto_media.frame import Frame, VideoFormat
from lotto_media.options import EncodeOptions
from lotto_media.plugins.image_io import read_image
from lotto_media.stream import LottoReader, LottoWriter, StreamDecoder, StreamEncoder, encode_frames

GOLDEN_DIR = Path(__file__).parent / "golden"
FAST = EncodeOptions(preset="ultrafast", steps=24, quality=60, threads=1)


def pan(n: int, height: int = 24, width: int = 32, step: int = 2) -> list[Frame]:
    """n frames of a real picture seen through a window moving right by ``step`` pixels a frame."""
    picture = read_image(SAMPLES_DIR / "kodim23_192x128.png").to_array()
    return [Frame.from_array(np.ascontiguousarray(picture[40 : 40 + height, 60 + k * step : 60 + k * step + width]),
                             pts=3 * k) for k in range(n)]


def two_motions(n: int, height: int = 48, width: int = 64) -> list[Frame]:
    """A real picture whose left half pans right by 2 samples a frame while its right half pans
    left by 3: no single translation predicts both."""
    big = read_image(SAMPLES_DIR / "kodim23_192x128.png").to_array()
    frames = []
    for k in range(n):
        left = big[20 : 20 + height, 40 + 2 * k : 40 + 2 * k + width // 2]
        right = big[20 : 20 + height, 100 - 3 * k + width // 2 : 100 - 3 * k + width]
        frames.append(Frame.from_array(np.ascontiguousarray(np.concatenate([left, right], axis=1)), pts=k))
    return frames


def sheared(n: int, height: int = 48, width: int = 64) -> list[Frame]:
    """A real picture sheared a little more each frame (row y moves by k * y / 12 samples in
    frame k): the motion changes inside every block, which overlapped blocks predict better."""
    big = read_image(SAMPLES_DIR / "kodim23_192x128.png").to_array()
    frames = []
    for k in range(n):
        rows = [big[20 + y, 40 + (k * y) // 12 : 40 + (k * y) // 12 + width] for y in range(height)]
        frames.append(Frame.from_array(np.ascontiguousarray(np.stack(rows)), pts=k))
    return frames


def to_yuv420(frame: Frame, bits: int = 8) -> Frame:
    """BT.601 full-range 4:2:0 from RGB planes (an independent, plain conversion for test input)."""
    r, g, b = (p.astype(np.float64) for p in frame.planes)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = (b - y) * 0.564 + 128
    v = (r - y) * 0.713 + 128
    h, w = y.shape
    pad = lambda p: np.pad(p, ((0, h % 2), (0, w % 2)), mode="edge")  # noqa: E731
    sub = lambda p: pad(p).reshape((h + 1) // 2, 2, (w + 1) // 2, 2).mean(axis=(1, 3))  # noqa: E731
    scale = (1 << bits) - 1
    planes = [np.clip(np.round(p / 255 * scale), 0, scale) for p in (y, sub(u), sub(v))]
    dtype = np.uint8 if bits == 8 else np.uint16
    return Frame([p.astype(dtype) for p in planes], "yuv420p" if bits == 8 else "yuv420p10le", pts=frame.pts,
                 time_base=Fraction(1, 30))


def encode(frames: list[Frame], gop: int, options: EncodeOptions = FAST, frame_rate=None,
           inter: bool = True) -> tuple[bytes, list]:
    video = VideoFormat.of(frames[0], time_base=Fraction(1, 90), frame_rate=frame_rate, source="pan.y4m")
    encoder = StreamEncoder(video, options, gop=gop, n_frames=len(frames), inter=inter)
    buffer = io.BytesIO()
    with LottoWriter(buffer, encoder.header) as writer:
        coded = encode_frames(encoder, frames, writer)
    return buffer.getvalue(), coded


def force_temporal_taps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the encoder give its predicted frames' ARM all nine temporal taps, whatever their
    bits: where the refit would not keep them, the held ARM reads them with fixed weights (a
    tiny clip rarely pays for their parameters, and the tests need streams that use them)."""
    from dataclasses import replace as replace_

    from lotto_media.coding.params import QuantizedModule
    from lotto_media.search import arm_fit, inter

    def refit(nets, frames, **_):
        result = arm_fit.refit_arm(nets, frames, temporal=(9,))
        if result.nets.arm_temporal:
            return result
        arm = result.nets.arm
        w1 = arm.tensors[0]
        taps = np.zeros((w1.shape[0], 9), dtype=np.int64)
        taps[np.arange(w1.shape[0]), np.arange(w1.shape[0]) % 9] = (1 << arm.frac) // 2
        forced = QuantizedModule(arm.frac, (np.concatenate([w1, taps], axis=1), *arm.tensors[1:]))
        return replace_(result, nets=replace_(result.nets, arm=forced))

    monkeypatch.setattr(inter, "refit_arm", refit)


def same_planes(a: Frame, b: Frame) -> bool:
    return a.pix_fmt == b.pix_fmt and all(np.array_equal(x, y) for x, y in zip(a.planes, b.planes))


@pytest.fixture(scope="module")
def five_frames() -> tuple[list[Frame], bytes, list]:
    frames = pan(5)
    data, coded = encode(frames, gop=2)
    return frames, data, coded


def test_the_same_clip_and_options_give_the_same_file(five_frames):
    """Encoding is a function of its input and options: a second encode of the clip writes the
    same bytes, statistics chunk included (no wall-clock seconds in it)."""
    frames, data, _ = five_frames
    again, _ = encode(frames, gop=2)
    assert again == data


def test_decoded_frames_equal_the_reconstructions_with_their_timing(five_frames):
    frames, data, coded = five_frames
    decoded = list(LottoReader(data, "pan.lotto"))
    assert len(decoded) == len(frames) == len(coded)
    for source, frame, packet in zip(frames, decoded, coded):
        assert same_planes(frame, packet.reconstruction)
        assert frame.pts == source.pts and frame.time_base == Fraction(1, 90)
        assert (frame.width, frame.height, frame.pix_fmt) == (32, 24, "rgb24")
        assert packet.psnr > 15  # a real picture, not noise, came back
    info = inspect(data)
    assert (info.frames, info.groups, info.gop, info.source) == (5, 3, 2, "pan.y4m")
    assert [d.group for d in info.frame_details] == [0, 0, 1, 1, 2]
    assert [d.psnr for d in info.frame_details] == pytest.approx([round(p.psnr, 3) for p in coded], abs=1e-3)


def test_groups_share_networks_and_later_frames_send_mask_deltas(five_frames):
    _, data, coded = five_frames
    container = read_container(data)
    assert len(container.groups) == 3 and len(container.frames) == 5
    payloads = [bitstream.unpack_frame(p.payload) for p in container.frames]
    assert [p.mask_coding for p in payloads] == [MaskCoding.ABSOLUTE, MaskCoding.DELTA] * 2 + [MaskCoding.ABSOLUTE]
    assert [p.reference for p in payloads] == [0, 1, 0, 1, 0]
    # the delta of a warm-started frame costs less than a whole mask
    assert len(payloads[1].mask) < len(payloads[0].mask)
    assert len(payloads[3].mask) < len(payloads[2].mask)
    # a frame packet carries no networks: the group header does, once per group
    group_bytes = [len(g) for g in container.groups]
    assert min(group_bytes) > max(len(p.latents) + len(p.mask) for p in payloads[1::2]) / 4


def test_a_middle_group_decodes_from_its_own_chunks_alone(five_frames):
    _, data, coded = five_frames
    index = read_index(data)
    header = StreamReader(data).header
    decoder = StreamDecoder(header, "pan.lotto")
    _, group_payload = read_chunk_at(data, index.group_offsets[1])
    decoder.add_group(1, group_payload)
    frames = []
    for entry in index.frames:
        if entry.group == 1:
            _, payload = read_chunk_at(data, entry.offset)
            from lotto_media.container import FramePacket
            frames.append(decoder.decode(FramePacket.from_bytes(payload)))
    assert len(frames) == 2
    assert same_planes(frames[0], coded[2].reconstruction) and same_planes(frames[1], coded[3].reconstruction)


def test_frame_selection_decodes_only_what_it_asks_for(five_frames):
    _, data, coded = five_frames
    reader = LottoReader(data, "pan.lotto", frames=range(3, 4))
    (frame,) = list(reader)
    assert same_planes(frame, coded[3].reconstruction) and reader.frames_read == 1
    assert reader.stopped_early and reader.damage is None


def test_a_cut_stream_gives_every_frame_before_the_cut(five_frames):
    _, data, coded = five_frames
    offsets = [e.offset for e in read_index(data).frames]
    cut = data[: offsets[3] + 30]  # inside frame 3
    reader = LottoReader(cut, "cut.lotto")
    frames = list(reader)
    assert len(frames) == 3
    assert all(same_planes(f, p.reconstruction) for f, p in zip(frames, coded))
    assert reader.damage is not None and "truncated in FRME chunk 4" in reader.damage
    assert "3 of 5 frames intact" in reader.damage


def test_a_pipe_is_read_frame_by_frame(five_frames):
    _, data, coded = five_frames

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.position = 0
            self.high_water = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            piece = data[self.position : self.position + min(len(buffer), 64)]
            buffer[: len(piece)] = piece
            self.position += len(piece)
            return len(piece)

    pipe = Pipe()
    reader = LottoReader(pipe, "pipe")
    positions = []
    for frame, packet in zip(reader, coded):
        assert same_planes(frame, packet.reconstruction)
        positions.append(pipe.position)
    assert positions == sorted(positions) and positions[0] < len(data) / 2  # not read whole first


def test_an_odd_size_420_stream_and_a_10_bit_one_round_trip():
    for bits in (8, 10):
        frames = [to_yuv420(f, bits) for f in pan(3, height=17, width=23)]
        data, coded = encode(frames, gop=3)
        decoded = list(LottoReader(data))
        assert [f.pix_fmt for f in decoded] == [frames[0].pix_fmt] * 3
        assert decoded[0].planes[1].shape == (9, 12)
        assert all(same_planes(f, p.reconstruction) for f, p in zip(decoded, coded))
        if bits == 10:
            assert decoded[0].planes[0].dtype == np.uint16 and int(decoded[0].planes[0].max()) > 255


def test_encoder_refuses_frames_of_another_format():
    frames = pan(2)
    encoder = StreamEncoder(VideoFormat.of(frames[0]), FAST, gop=4)
    encoder.encode(frames[0])
    with pytest.raises(InputError, match="frame 1 is 24x24 rgb24, the stream is 32x24 rgb24"):
        encoder.encode(Frame.from_array(frames[1].to_array()[:, :24]))
    with pytest.raises(InputError, match="gop"):
        StreamEncoder(VideoFormat.of(frames[0]), FAST, gop=0)


def test_sharing_and_warm_start_beat_independent_pictures():
    """The same frames coded as one group and as independent pictures (gop 1), same options: the
    group costs less of the search's own objective D + lambda R (R in bits per pixel, networks
    and masks included), and its later frames take fewer steps."""
    frames = pan(3, height=32, width=48, step=1)
    options = EncodeOptions(preset="fast", steps=200, quality=40, threads=1)
    lmbda = options.resolved_lmbda()
    pixels = 32 * 48

    def objective(data: bytes, coded: list) -> float:
        distortion = sum(10 ** (-p.psnr / 10) for p in coded)  # MSE on [0, 1] samples
        return distortion + lmbda * 8 * len(data) / pixels

    shared, shared_coded = encode(frames, gop=4, options=options)
    alone, alone_coded = encode(frames, gop=1, options=options)
    assert len(shared) < 0.8 * len(alone)
    assert objective(shared, shared_coded) < objective(alone, alone_coded)
    # the first predicted frame fits the group's networks for predicted frames: the later ones
    # only their latents, in fewer steps
    assert all(p.steps < shared_coded[0].steps for p in shared_coded[2:])


# -- golden files: format version 2 ----------------------------------------------------------------

GOLDEN_STREAMS = {
    # name: the frames it codes (see golden_frames); the planes' sha256 is in digests_v2.txt
    "pan_rgb_3f_v2.lotto": "rgb24",
    "pan_yuv420p10_odd_2f_v2.lotto": "yuv420p10le",
    "pan_yuv420p_inter_4f_v2.lotto": "yuv420p-inter",
    "pan_gray_1f_v2.lotto": "gray",
    "two_motions_yuv420p_field_3f_v2.lotto": "yuv420p-field-v3",
    "two_motions_yuv420p_predicted_field_3f_v2.lotto": "yuv420p-field",
    "sheared_yuv420p_overlapped_3f_v2.lotto": "yuv420p-overlapped",
    "pan_yuv420p_temporal_4f_v2.lotto": "yuv420p-temporal",
    "pan_rgb_3f_ghdr5.lotto": "rgb24",
    "pan_yuv420p_temporal_4f_ghdr5.lotto": "yuv420p-temporal",
    # quality 90: a second full-resolution latent grid (sequence header flag bit 0)
    "pan_rgb_3f_grid2.lotto": "rgb24-grid2",
    "pan_yuv420p_temporal_4f_grid2.lotto": "yuv420p-temporal-grid2",
}
#: written by earlier encoders and kept as they are (never regenerated), so that real streams of the
#: older layouts stay tested: frame versions 2 (one vector), 3 (every field coded against the base
#: vector) and 4 (fields against the neighbours' median); group header versions 2-4 (exp-Golomb
#: parameters: every file but the ghdr5 ones)
LEGACY_GOLDEN = {name for name in GOLDEN_STREAMS if "_ghdr5" not in name and "_grid2" not in name}


def golden_frames(kind: str) -> tuple[list[Frame], int, bool]:
    """(frames, gop, inter): the rgb24 and 10-bit streams are intra frames sharing their group's
    networks; the third an intra frame and three predicted frames (the picture moves one sample a
    frame; the vectors the encoder found against its decoded frames are whole, fractional, negative).
    A ``-grid2`` kind codes the same frames (at medium, quality 90)."""
    kind = kind.removesuffix("-grid2")
    if kind == "rgb24":
        return pan(3, height=16, width=24), 2, False
    if kind == "yuv420p10le":
        return [to_yuv420(f, 10) for f in pan(2, height=11, width=13)], 2, False
    if kind == "gray":  # one picture: the fuzz tests' seed of a gray file
        (frame,) = pan(1, height=9, width=14)
        return [Frame([to_yuv420(frame).planes[0]], "gray", pts=frame.pts)], 1, False
    if kind == "yuv420p-field":  # predicted frames whose motion is a field of block vectors
        return [to_yuv420(f) for f in two_motions(3, height=48, width=64)], 3, True
    if kind == "yuv420p-overlapped":  # fields compensated with overlapped blocks
        return [to_yuv420(f) for f in sheared(3)], 3, True
    return [to_yuv420(f) for f in pan(4, height=15, width=22, step=1)], 4, True


@pytest.mark.parametrize("name", list(GOLDEN_STREAMS))
def test_version_2_golden_streams_decode_to_pinned_pixels(name, monkeypatch):
    path = GOLDEN_DIR / name
    digests_path = GOLDEN_DIR / "digests_v2.txt"
    kind = GOLDEN_STREAMS[name]
    if kind.startswith("yuv420p-temporal"):  # predicted frames whose ARM has temporal taps
        force_temporal_taps(monkeypatch)
    if os.environ.get("LOTTO_REGENERATE_GOLDEN") and name not in LEGACY_GOLDEN:
        frames, gop, inter = golden_frames(kind)
        options = EncodeOptions(preset="ultrafast", steps=12, quality=50, threads=1)
        if kind.endswith("-grid2"):  # long enough for the second grid to fill
            options = replace(options, preset="medium", quality=90, steps=80)
        data, _ = encode(frames, gop=gop, options=options, inter=inter)
        path.write_bytes(data)
    data = path.read_bytes()
    decoded_latents = []
    finish = entropy.LatentDecoding.finish
    monkeypatch.setattr(entropy.LatentDecoding, "finish",
                        lambda self: (finish(self), decoded_latents.append(self.latents())) and None)
    digest = hashlib.sha256(b"".join(p.tobytes() for f in LottoReader(data, name) for p in f.planes)).hexdigest()
    if os.environ.get("LOTTO_REGENERATE_GOLDEN"):
        lines = dict(l.split() for l in digests_path.read_text().splitlines()) if digests_path.exists() else {}
        lines[name] = digest
        digests_path.write_text("".join(f"{k} {v}\n" for k, v in sorted(lines.items())))
    pinned = dict(l.split() for l in digests_path.read_text().splitlines())
    assert digest == pinned[name], f"{name} decodes to other pixels: a format break (bump the version)"
    assert read_container(data).header.model.fine_grids == (2 if kind.endswith("-grid2") else 1)
    if kind.endswith("-grid2"):  # the second grid is used: by the intra frame, and by predicted frames
        # whose temporal taps read a previous predicted frame's
        second_grids = [np.any(latents[-1] != 0) for latents in decoded_latents]
        assert second_grids[0] and (kind == "rgb24-grid2" or any(second_grids[k] and second_grids[k - 1]
                                                                  for k in range(2, len(second_grids))))
    versions = [p.payload[0] for p in read_container(data).frames]
    if GOLDEN_STREAMS[name] == "yuv420p-field-v3":
        assert versions[0] == bitstream.FRAME_VERSION and bitstream.FRAME_VERSION_FIELD in versions[1:]
    if GOLDEN_STREAMS[name] == "yuv420p-field":
        assert versions[0] == bitstream.FRAME_VERSION and bitstream.FRAME_VERSION_FIELD_PREDICTED in versions[1:]
    if GOLDEN_STREAMS[name] == "yuv420p-overlapped":
        assert versions[0] == bitstream.FRAME_VERSION and bitstream.FRAME_VERSION_COMPACT in versions[1:]
    group_versions = {payload[0] for payload in read_container(data).groups}
    if name in LEGACY_GOLDEN:
        assert group_versions <= {bitstream.GROUP_VERSION, bitstream.GROUP_VERSION_PREDICTED,
                                  bitstream.GROUP_VERSION_TEMPORAL}
    else:
        assert group_versions == {bitstream.GROUP_VERSION_CODED}
    if GOLDEN_STREAMS[name] == "yuv420p-temporal":
        flags = bitstream.GroupFlags.PREDICTED | bitstream.GroupFlags.TEMPORAL
        assert read_container(data).groups[0][:2 if name not in LEGACY_GOLDEN else 1] == (
            bytes([bitstream.GROUP_VERSION_TEMPORAL]) if name in LEGACY_GOLDEN
            else bytes([bitstream.GROUP_VERSION_CODED, flags]))
    assert StreamReader(data).header.format_version == 2


def test_real_clip_frames_round_trip_as_a_stream():
    """Real 4:2:0 frames of a shared clip (cropped small): decoded = reconstructed, pts kept."""
    path = require_media("video/park_joy_90p_10_420_20f.y4m")
    from lotto_media.plugins import y4m

    with open(path, "rb") as stream:
        reader = y4m.Y4mReader(stream, str(path))
        frames = []
        for frame in reader:
            frames.append(Frame([frame.planes[0][:16, :24], frame.planes[1][:8, :12], frame.planes[2][:8, :12]],
                                frame.pix_fmt, pts=frame.pts, time_base=frame.time_base))
            if len(frames) == 3:
                break
    data, coded = encode(frames, gop=3)
    decoded = list(LottoReader(data))
    assert [f.pix_fmt for f in decoded] == ["yuv420p10le"] * 3
    assert [f.pts for f in decoded] == [f.pts for f in frames]
    assert all(same_planes(f, p.reconstruction) for f, p in zip(decoded, coded))


def test_the_encoder_prunes_less_of_the_random_network_in_video_at_low_rates():
    """The mask ratio the sequence header records: 0.05 for a stream with predicted frames at
    quality 50 or less, 0.2 at higher qualities, for pictures and all-intra streams; a ratio
    given is kept. The decoder reads it from the header, so a stream of each decodes exactly."""
    from lotto_media.stream import sequence_header

    video = VideoFormat.of(pan(1)[0], time_base=Fraction(1, 90), source="pan.y4m")

    def ratio(quality: float, gop: int = 16, n_frames: int = 0, inter: bool = True, **given: float) -> float:
        options = EncodeOptions(quality=quality, **given)
        return sequence_header(video, options, gop, n_frames, inter).model.mask_ratio

    assert ratio(30) == ratio(50) == ratio(45, n_frames=9) == 0.05
    assert ratio(51) == ratio(75) == 0.2
    assert ratio(30, gop=1) == ratio(30, n_frames=1) == ratio(30, inter=False) == 0.2
    assert ratio(30, mask_ratio=0.3) == 0.3 and ratio(75, mask_ratio=0.0) == 0.0
    frames = pan(3, height=16, width=24, step=1)
    data, coded = encode(frames, gop=3, options=EncodeOptions(preset="ultrafast", steps=12, quality=40, threads=1))
    assert read_container(data).header.model.mask_ratio == 0.05
    assert all(same_planes(d, c.reconstruction) for d, c in zip(LottoReader(data), coded))
