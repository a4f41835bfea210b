"""Anchor codecs: colour conversion, what is counted as bytes (bitstream, not container), decoding
at the right size, and the video anchors on native 8/10-bit 4:2:0 planes."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from lotto_media.errors import InputError
from lotto_media.metrics import bpp, psnr
from lotto_media.plugins.anchors import (
    ANCHORS,
    downsample_chroma,
    encode_anchor,
    encode_video_anchor,
    ivf_frame_payloads,
    rgb_to_ycbcr,
    strip_sei,
    upsample_chroma,
    ycbcr_to_rgb,
)

from conftest import require_media, synthetic_rgb


@pytest.fixture(autouse=True)
def _quiet_svt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVT_LOG", "1")


def annexb_nal_types(stream: bytes, codec: str) -> list[int]:
    """NAL unit types of an Annex-B stream (independent of the module's parser)."""
    types, i = [], stream.find(b"\x00\x00\x01")
    while i >= 0:
        header = stream[i + 3]
        types.append(header & 0x1F if codec == "h264" else (header >> 1) & 0x3F)
        i = stream.find(b"\x00\x00\x01", i + 3)
    return types


def test_colour_conversion_round_trips():
    rgb = synthetic_rgb(23, 37, seed=3)
    y, cb, cr = rgb_to_ycbcr(rgb)
    assert np.array_equal(ycbcr_to_rgb(y, cb, cr), rgb)  # exact in float
    rounded = [np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (y, cb, cr)]
    assert np.abs(ycbcr_to_rgb(*rounded).astype(int) - rgb).max() <= 2
    grey = np.full((2, 2, 3), 77, np.uint8)
    y, cb, cr = rgb_to_ycbcr(grey)
    assert np.allclose(y, 77) and np.allclose(cb, 128) and np.allclose(cr, 128)


def test_chroma_resampling_keeps_flat_planes_and_handles_odd_sizes():
    plane = np.full((7, 9), 90.0)
    small = downsample_chroma(plane)
    assert small.shape == (4, 5) and np.allclose(small, 90)
    assert upsample_chroma(small, 7, 9).shape == (7, 9)
    assert np.allclose(upsample_chroma(small, 7, 9), 90)
    ramp = np.tile(np.arange(16.0), (8, 1))
    back = upsample_chroma(downsample_chroma(ramp), 8, 16)
    assert np.abs(back - ramp)[:, 1:-1].max() < 1e-9  # linear ramps survive away from the edges


@pytest.mark.parametrize("name", list(ANCHORS))
def test_every_anchor_decodes_to_the_input_size_with_sensible_quality(name: str, odd_rgb: np.ndarray):
    spec = ANCHORS[name]
    low, high = spec.default_settings[1], spec.default_settings[-2]
    cheap = encode_anchor(name, odd_rgb, low)
    rich = encode_anchor(name, odd_rgb, high)
    for point in (cheap, rich):
        assert point.codec == name and point.param == spec.param
        assert point.decoded_rgb.shape == odd_rgb.shape and point.decoded_rgb.dtype == np.uint8
        assert 0 < point.bytes <= point.file_bytes
        assert point.encode_s > 0 and point.decode_s > 0
    assert rich.bytes > cheap.bytes
    assert psnr(odd_rgb, rich.decoded_rgb) > psnr(odd_rgb, cheap.decoded_rgb) > 20


def test_x264_bytes_are_the_stream_without_the_version_sei(odd_rgb: np.ndarray):
    point = encode_anchor("x264", odd_rgb, 30)
    assert point.bytes == len(point.stream)
    assert b"x264 - core" not in point.stream and 6 not in annexb_nal_types(point.stream, "h264")
    assert point.file_bytes - point.bytes > 400  # the SEI x264 writes (~600-700 bytes)
    # The counted bytes alone decode to the picture that was measured.
    with av.open(io.BytesIO(point.stream), format="h264") as inp:
        frames = list(inp.decode(video=0))
    assert len(frames) == 1 and (frames[0].width, frames[0].height) == (37, 23)


def test_x265_bytes_are_the_raw_elementary_stream(odd_rgb: np.ndarray):
    point = encode_anchor("x265", odd_rgb, 30)
    types = annexb_nal_types(point.stream, "hevc")
    assert types[:3] == [32, 33, 34]  # VPS, SPS, PPS: a bare stream, no container box around it
    assert not {39, 40} & set(types) and b"x265" not in point.stream
    assert point.bytes == len(point.stream)


def test_x265_420_pads_odd_sizes_and_says_so(odd_rgb: np.ndarray):
    point = encode_anchor("x265-420", odd_rgb, 30)
    assert "padded to 38x24" in point.note
    assert point.decoded_rgb.shape == odd_rgb.shape


def test_svtav1_counts_ivf_frame_payloads_only(odd_rgb: np.ndarray):
    point = encode_anchor("svtav1", odd_rgb, 30)
    # IVF: 32-byte file header + 12-byte frame header per frame; one frame here.
    assert point.bytes == point.file_bytes - 32 - 12
    assert point.bytes == len(point.stream)


def test_ivf_parser_on_a_handmade_file():
    header = b"DKIF" + (0).to_bytes(2, "little") + (32).to_bytes(2, "little") + bytes(24)
    frames = [b"abc", b"defgh"]
    body = b"".join(len(f).to_bytes(4, "little") + bytes(8) + f for f in frames)
    assert ivf_frame_payloads(header + body) == frames
    with pytest.raises(InputError):
        ivf_frame_payloads(b"RIFF" + bytes(40))


def test_strip_sei_drops_only_sei_units():
    sps, sei, slice_ = b"\x00\x00\x00\x01\x67abc", b"\x00\x00\x01\x06\x05xx", b"\x00\x00\x01\x65data"
    assert strip_sei(sps + sei + slice_, "h264") == sps + slice_
    vps, hsei = b"\x00\x00\x00\x01\x40\x01v", b"\x00\x00\x01\x4e\x01s"  # types 32 and 39
    assert strip_sei(vps + hsei, "hevc") == vps


def test_jpeg_and_webp_count_the_codestream_not_the_headers(odd_rgb: np.ndarray):
    jpeg = encode_anchor("jpeg", odd_rgb, 75)
    assert jpeg.stream[:2] == b"\xff\xd8" and b"JFIF" not in jpeg.stream
    assert jpeg.file_bytes - jpeg.bytes == 18  # the JFIF APP0 segment
    with Image.open(io.BytesIO(jpeg.stream)) as img:  # still a valid JPEG on its own
        assert np.array_equal(np.asarray(img.convert("RGB")), jpeg.decoded_rgb)
    webp = encode_anchor("webp", odd_rgb, 75)
    assert webp.file_bytes - webp.bytes == 20  # RIFF header (12) + VP8 chunk header (8)


def test_bad_requests_are_user_errors(odd_rgb: np.ndarray):
    with pytest.raises(InputError, match="unknown anchor"):
        encode_anchor("vvc", odd_rgb, 30)
    with pytest.raises(InputError):
        encode_anchor("jpeg", odd_rgb, 0)
    with pytest.raises(InputError):
        encode_anchor("x265", odd_rgb, 60)
    with pytest.raises(InputError):
        encode_anchor("jpeg", odd_rgb.astype(np.float32), 50)


def yuv_clip(frames: int, height: int, width: int, bits: int = 8, moving: bool = True) -> list[list[np.ndarray]]:
    rgb = synthetic_rgb(height + 8, width + 8, seed=5)
    scale = (1 << (bits - 8))
    dtype = np.uint16 if bits > 8 else np.uint8
    clip = []
    for t in range(frames):
        shift = t if moving else 0
        y = rgb[shift:shift + height, shift:shift + width, 1].astype(np.uint16) * scale
        c = downsample_chroma(rgb[shift:shift + height, shift:shift + width, 0].astype(float)) * scale
        clip.append([y.astype(dtype), np.rint(c).astype(dtype), np.rint(c[::-1]).astype(dtype)])
    return clip


@pytest.mark.parametrize("name", ["x264", "x265"])
def test_video_anchor_keeps_10_bit_and_inter_beats_intra_on_a_static_clip(name: str):
    clip = yuv_clip(4, 16, 24, bits=10, moving=False)
    intra = encode_video_anchor(name, clip, "yuv420p10le", 30, intra=True, rate=Fraction(25))
    inter = encode_video_anchor(name, clip, "yuv420p10le", 30, intra=False, rate=Fraction(25))
    for result in (intra, inter):
        assert len(result.decoded) == 4
        assert result.decoded[0][0].dtype == np.uint16 and result.decoded[0][0].shape == (16, 24)
        assert result.decoded[0][1].shape == (8, 12)
        assert psnr(clip[0][0], result.decoded[0][0], 1023) > 30
        assert result.decoded[0][0].max() > 255  # really 10-bit samples, not 8-bit ones
    assert inter.bytes < intra.bytes  # repeated pictures cost almost nothing with inter prediction


def test_video_anchor_pads_odd_sizes():
    clip = yuv_clip(2, 15, 21)
    result = encode_video_anchor("x265", clip, "yuv420p", 32, intra=True)
    assert result.note == "padded to 22x16 for 4:2:0"
    assert [p.shape for p in result.decoded[0]] == [(15, 21), (8, 11), (8, 11)]
    with pytest.raises(InputError):
        encode_video_anchor("svtav1", clip, "yuv420p", 32, intra=True)


def test_default_sweeps_span_low_and_high_rates_on_kodak():
    kodak = require_media("images/kodak/kodim23.png")
    with Image.open(kodak) as img:
        rgb = np.asarray(img.convert("RGB").resize((384, 256), Image.Resampling.LANCZOS))
    for name in ("x265", "webp"):
        settings = ANCHORS[name].default_settings
        lowest = encode_anchor(name, rgb, settings[0])
        highest = encode_anchor(name, rgb, settings[-1])
        assert bpp(lowest.bytes, 384, 256) < 0.25
        assert bpp(highest.bytes, 384, 256) > 2.0
