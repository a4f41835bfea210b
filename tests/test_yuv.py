"""YUV 4:2:0 in the core codec: native 8- and 10-bit planes, bit-exact decoding, honest PSNR reports,
and the integer chroma average checked against an independent formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import SAMPLES_DIR
from PIL import Image

from lotto_media import Frame, InputError
from lotto_media.coding import bitstream, entropy
from lotto_media.model import chroma
from lotto_media.codec import EncodeOptions, decode_frame, encode_frame, inspect
from lotto_media.container import read_container
from lotto_media.metrics import psnr, psnr_yuv
from lotto_media.model.random_weights import random_synthesis_weights
from lotto_media.model.reconstruct import reconstruct

FAST = {"preset": "ultrafast", "steps": 30, "quality": 60}


def photo_yuv420p(width: int, height: int) -> Frame:
    """The bundled Kodak sample, resized and converted to yuv420p by FFmpeg (PyAV)."""
    import av
    from lotto_media.plugins.anchors import planes_of

    with Image.open(SAMPLES_DIR / "kodim23_192x128.png") as img:
        rgb = np.asarray(img.convert("RGB").resize((width, height), Image.LANCZOS))
    video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
    return Frame(planes_of(video_frame), "yuv420p")


def ramp_10bit(width: int, height: int) -> Frame:
    """Smooth 10-bit planes spanning most of 0..1023 (values far above 255)."""
    y, x = np.mgrid[0:height, 0:width]
    luma = 100 + 800 * (0.6 * x / (width - 1) + 0.4 * y / (height - 1))
    cy, cx = np.mgrid[0 : (height + 1) // 2, 0 : (width + 1) // 2]
    u = 300 + 400 * cx / cx.max()
    v = 700 - 300 * cy / cy.max()
    return Frame([np.round(p).astype(np.uint16) for p in (luma, u, v)], "yuv420p10le")


@pytest.fixture(scope="module", params=["yuv420p", "yuv420p10le"])
def encoded(request):
    # 37x23 luma -> 19x12 chroma: odd sizes on purpose
    source = photo_yuv420p(37, 23) if request.param == "yuv420p" else ramp_10bit(37, 23)
    return source, encode_frame(source, EncodeOptions(**FAST))


def test_decode_equals_encoder_reconstruction_bit_for_bit(encoded):
    source, result = encoded
    decoded = decode_frame(result.data)
    dtype = np.uint8 if source.pix_fmt == "yuv420p" else np.uint16
    assert decoded.pix_fmt == source.pix_fmt and (decoded.width, decoded.height) == (37, 23)
    assert [p.shape for p in decoded.planes] == [(23, 37), (12, 19), (12, 19)]
    for a, b in zip(decoded.planes, result.reconstruction.planes):
        assert a.dtype == dtype and b.dtype == dtype and np.array_equal(a, b)


def test_inspect_reports_the_psnr_of_the_decoded_planes(encoded):
    source, result = encoded
    info = inspect(result.data)
    decoded = decode_frame(result.data)
    peak = source.max_value
    measured = {n: psnr(a, b, peak) for n, a, b in zip("yuv", source.planes, decoded.planes)}
    assert info.pix_fmt == source.pix_fmt
    assert set(info.psnr_planes) == {"y", "u", "v"}
    for name in "yuv":
        assert info.psnr_planes[name] == pytest.approx(measured[name], abs=5e-4)  # stored to 1/1000 dB
    assert info.psnr == pytest.approx(psnr_yuv(measured), abs=5e-4)  # stored to 1/1000 dB
    assert info.psnr > 15  # a broken synthesis gives noise far below this


def test_decoded_chroma_is_the_2x2_mean_of_the_full_resolution_synthesis(encoded):
    """The same stream reconstructed without the chroma reduction gives full-resolution U and V;
    averaging those samples must give the decoded chroma up to rounding (the decoder averages before
    rounding to the bit depth, so a difference of 1 is allowed)."""
    source, result = encoded
    container = read_container(result.data)
    config = container.header.model
    group = bitstream.unpack_group(container.groups[0], config)
    nets = group.nets
    config = config.with_arm_hidden(group.arm_hidden)
    payload = bitstream.unpack_frame(container.frames[0].payload)
    mask = entropy.decode_mask(payload.mask, config.n_random_weights(), config.n_kept())
    latents = entropy.decode_latents(payload.latents, config.grid_shapes(23, 37), nets.integer_arm())
    args = (latents, nets, random_synthesis_weights(config), mask, 23, 37, source.bit_depth)
    full = reconstruct(*args, n_levels=config.n_levels)
    reduced = reconstruct(*args, chroma_420=True, n_levels=config.n_levels)
    assert np.array_equal(reduced[0], full[0]) and np.array_equal(reduced[0], result.reconstruction.planes[0])
    blocks = np.pad(np.stack(full[1:]).astype(np.float64), ((0, 0), (0, 1), (0, 1)), mode="edge")
    blocks = blocks.reshape(2, 12, 2, 19, 2).transpose(0, 1, 3, 2, 4).reshape(2, 12, 19, 4)
    diff = np.abs(np.stack(reduced[1:]) - blocks.mean(axis=-1))
    # Each full sample is within 1/2 of its fixed-point value, the decoded chroma within 1/2 (plus
    # the fixed-point rounding, below 1/16) of their mean; clamped blocks are not bound by this.
    unclamped = np.all((blocks > 0) & (blocks < source.max_value), axis=-1)
    assert unclamped.mean() > 0.9 and diff[unclamped].max() <= 1.0


def test_10_bit_stays_10_bit():
    """Fails if 10-bit input were coded at 8 bits: the decoded samples exceed 255 and most are not
    on the grid of 8-bit values scaled to 10 bits; the PSNR is measured against peak 1023."""
    source = ramp_10bit(32, 24)
    result = encode_frame(source, EncodeOptions(preset="ultrafast", steps=120, quality=95))
    decoded = decode_frame(result.data)
    assert all(p.dtype == np.uint16 for p in decoded.planes)
    assert all(int(p.max()) > 255 for p in decoded.planes)
    eight_bit_grid = np.round(np.arange(256) * 1023 / 255).astype(np.uint16)
    assert np.mean(~np.isin(decoded.planes[0], eight_bit_grid)) > 0.5
    assert len(np.unique(decoded.planes[0])) > 256
    planes = result.info.psnr_planes
    assert planes["y"] > 38 and planes["u"] > 30 and planes["v"] > 30, planes


def test_psnr_floor_on_a_photo():
    """A real picture at a generous rate: a broken chroma path (wrong siting, swapped or untrained
    planes) falls far below these floors."""
    source = photo_yuv420p(48, 32)
    result = encode_frame(source, EncodeOptions(preset="ultrafast", steps=100, quality=90))
    planes = result.info.psnr_planes
    assert planes["y"] > 27 and planes["u"] > 23 and planes["v"] > 22, planes
    assert result.info.psnr > 26


def test_out_of_range_samples_are_refused():
    source = ramp_10bit(8, 6)
    source.planes[0][0, 0] = 1024
    with pytest.raises(InputError, match="1024 outside 0..1023"):
        encode_frame(source, EncodeOptions(**FAST))


# --- the chroma arithmetic ------------------------------------------------------------------


def reference_integer_average(x: np.ndarray) -> np.ndarray:
    """Independent formula: edge-pad to even sizes, sum each 2x2 block, (s + 2) >> 2 in int64."""
    c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    blocks = padded.reshape(c, (h + 1) // 2, 2, (w + 1) // 2, 2).sum(axis=(2, 4))
    return (blocks + 2) >> 2


@pytest.mark.parametrize("shape", [(2, 23, 37), (2, 1, 1), (2, 8, 6), (1, 5, 2), (2, 2, 7)])
def test_integer_average_matches_an_independent_reference(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-(2**41), 2**41, size=shape, dtype=np.int64)
    x[..., 0, 0] = 2**41 - 1  # the extremes stay exact
    x[..., -1, -1] = -(2**41)
    x.flat[1::7] = rng.integers(-8, 8, size=x.flat[1::7].shape)  # small values hit every rounding case
    got = chroma.integer_downsample(torch.from_numpy(x.astype(np.float64)))
    assert tuple(got.shape) == (shape[0], (shape[1] + 1) // 2, (shape[2] + 1) // 2)
    assert np.array_equal(got.numpy().astype(np.int64), reference_integer_average(x))


def test_rounding_is_half_up():
    x = torch.tensor([[[1.0, 1.0], [0.0, 0.0]], [[-1.0, -1.0], [0.0, 0.0]], [[-3.0, 0.0], [0.0, 0.0]]])
    assert chroma.integer_downsample(x.double()).flatten().tolist() == [1.0, 0.0, -1.0]  # 0.5, -0.5, -0.75


def test_float_downsample_is_the_integer_average_before_rounding():
    rng = np.random.default_rng(3)
    x = rng.integers(-4096, 4096, size=(2, 9, 7)).astype(np.float64)
    exact = torch.from_numpy(reference_integer_average(x.astype(np.int64)).astype(np.float64))
    mean = chroma.downsample(torch.from_numpy(x))
    assert torch.all((mean - exact).abs() <= 0.5)


def test_pack_target_keeps_the_chroma_planes_and_distortion_weights_6_1_1():
    source = photo_yuv420p(15, 9)
    target = chroma.pack_target(source.planes, 255)
    assert tuple(target.shape) == (3, 9, 15)
    for packed, plane in zip(target[1:, ::2, ::2], source.planes[1:]):
        assert torch.equal(packed, torch.from_numpy(plane.astype(np.float32) / np.float32(255)))
    recon = torch.rand(3, 9, 15, generator=torch.Generator().manual_seed(0))
    mses = [torch.mean((recon[0] - target[0]) ** 2)]
    mses += [torch.mean((c - t) ** 2) for c, t in zip(chroma.downsample(recon[1:]), target[1:, ::2, ::2])]
    expected = (6 * mses[0] + mses[1] + mses[2]) / 8
    assert float(chroma.distortion(recon, target)) == pytest.approx(float(expected), rel=1e-6)
    assert math.isclose(sum(chroma.PLANE_WEIGHTS), 8.0)
