"""Quality and rate measures: known values, conventions (PSNR cap, pooling), and cross-checks of
SSIM/MS-SSIM against independent implementations (scikit-image, scipy)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.signal import convolve2d
from skimage.metrics import structural_similarity

from lotto_media.errors import InputError
from lotto_media.frame import Frame
from lotto_media.metrics import (
    MS_SSIM_WEIGHTS,
    PSNR_CAP_DB,
    bpp,
    frame_quality,
    ms_ssim,
    ms_ssim_scales,
    mse,
    psnr,
    psnr_planes,
    psnr_rgb,
    psnr_yuv,
    ssim,
)


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 128 + 60 * np.sin(x / 7.0) * np.cos(y / 5.0)
    return np.clip(base[..., None] + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)


def noisy(image: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).round().astype(np.uint8)


def test_mse_and_psnr_known_values():
    a = np.full((4, 5), 100, np.uint8)
    b = a + 2
    assert mse(a, b) == 4.0
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 4))
    assert psnr(a.astype(np.uint16) * 4, b.astype(np.uint16) * 4, 1023) == pytest.approx(10 * math.log10(1023**2 / 64))
    # uint8 arithmetic must not wrap: 0 vs 255 is an error of 255, not 1.
    assert mse(np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8)) == 255.0**2


def test_identical_pictures_give_the_cap_and_stay_json_valid():
    a = textured(8, 8)
    assert psnr(a, a) == PSNR_CAP_DB == 100.0
    assert psnr_rgb(Frame.from_array(a), Frame.from_array(a)) == 100.0
    json.dumps(frame_quality(Frame.from_array(a), Frame.from_array(a)), allow_nan=False)
    # Tiny errors on a huge picture would exceed the cap: they are clamped to it too.
    big = np.zeros((1000, 1000), np.uint8)
    off = big.copy()
    off[0, 0] = 1
    assert psnr(big, off) == 100.0


def test_psnr_rgb_pools_mse_rather_than_averaging_plane_psnrs():
    ref = textured(16, 16)
    test = ref.copy()
    test[..., 0] = np.clip(test[..., 0].astype(int) + 1, 0, 255)
    test[..., 2] = noisy(ref[..., 2], 10)
    f_ref, f_test = Frame.from_array(ref), Frame.from_array(test)
    per_plane = [mse(ref[..., c], test[..., c]) for c in range(3)]
    assert psnr_rgb(f_ref, f_test) == pytest.approx(10 * math.log10(255**2 / np.mean(per_plane)))
    planes = psnr_planes(f_ref, f_test)
    assert list(planes) == ["r", "g", "b"]
    assert planes["g"] == 100.0
    assert psnr_rgb(f_ref, f_test) != pytest.approx(np.mean(list(planes.values())))
    assert psnr_rgb(ref, test) == pytest.approx(psnr_rgb(f_ref, f_test))


def test_plane_names_for_gray_and_yuv_and_weighted_yuv_psnr():
    gray = textured(6, 9)[..., 0]
    assert list(psnr_planes(Frame.from_array(gray), Frame.from_array(gray))) == ["y"]
    y = textured(6, 9)[..., 0]
    c = textured(3, 5)[..., 1]
    yuv = Frame([y, c, c], "yuv420p")
    yuv2 = Frame([noisy(y, 3), c, noisy(c, 6)], "yuv420p")
    planes = psnr_planes(yuv, yuv2)
    assert list(planes) == ["y", "u", "v"] and planes["u"] == 100.0
    assert psnr_yuv(planes) == pytest.approx((6 * planes["y"] + planes["u"] + planes["v"]) / 8)
    quality = frame_quality(yuv, yuv2)
    assert quality["psnr_yuv"] == pytest.approx(psnr_yuv(planes))
    assert "psnr_rgb" not in quality and 0 < quality["ms_ssim"] < 1
    with pytest.raises(InputError):
        psnr_yuv({"y": 30.0})


def test_mismatched_pictures_are_refused():
    with pytest.raises(InputError):
        mse(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(InputError):
        psnr_planes(Frame.from_array(textured(4, 4)), Frame.from_array(textured(4, 6)))
    with pytest.raises(InputError):
        psnr_planes(Frame.from_array(textured(4, 4)), Frame.from_array(textured(4, 4)[..., 0]))


def test_bpp():
    assert bpp(1000, 100, 80) == pytest.approx(1.0)
    assert bpp(0, 3, 3) == 0.0
    with pytest.raises(InputError):
        bpp(10, 0, 5)


def test_single_scale_ssim_matches_scikit_image():
    ref = textured(40, 52)
    test = noisy(ref, 12)
    expected = structural_similarity(ref, test, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=255)
    assert ssim(ref, test) == pytest.approx(expected, abs=1e-9)


def test_ms_ssim_scale_count_follows_the_picture_size():
    assert ms_ssim_scales(256, 384) == 5
    assert ms_ssim_scales(176, 500) == 5
    assert ms_ssim_scales(175, 500) == 4
    assert ms_ssim_scales(16, 24) == 1
    assert ms_ssim_scales(22, 22) == 2


def test_ms_ssim_on_a_small_picture_is_plain_ssim():
    ref = textured(16, 24)
    test = noisy(ref, 10)
    assert ms_ssim(ref, test) == pytest.approx(ssim(ref, test))
    # Smaller than the 11x11 window: still a number in (0, 1], 1 for identical pictures.
    tiny = textured(5, 7)
    assert 0 < ms_ssim(tiny, noisy(tiny, 20)) < 1
    assert ms_ssim(tiny, tiny) == pytest.approx(1.0)


def _reference_ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Independent straight transcription of Wang et al. 2003 (one plane, five scales)."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = a.astype(float), b.astype(float)
    result = 1.0
    for level, weight in enumerate(MS_SSIM_WEIGHTS):
        f = lambda x: convolve2d(x, window, mode="valid")  # noqa: E731 (symmetric window)
        ma, mb = f(a), f(b)
        va, vb, cov = f(a * a) - ma**2, f(b * b) - mb**2, f(a * b) - ma * mb
        cs = np.mean((2 * cov + c2) / (va + vb + c2))
        if level == 4:
            result *= np.mean((2 * ma * mb + c1) / (ma**2 + mb**2 + c1) * (2 * cov + c2) / (va + vb + c2)) ** weight
        else:
            result *= cs**weight
            a = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4
            b = (b[0::2, 0::2] + b[1::2, 0::2] + b[0::2, 1::2] + b[1::2, 1::2]) / 4
    return float(result)


def test_five_scale_ms_ssim_matches_an_independent_transcription():
    ref = textured(192, 208)[..., 1]
    test = noisy(ref, 15)
    assert ms_ssim_scales(*ref.shape) == 5
    assert ms_ssim(ref, test) == pytest.approx(_reference_ms_ssim(ref, test), rel=1e-9)


def test_ms_ssim_orders_distortions_and_averages_colour_channels():
    ref = textured(64, 64)
    light, heavy = noisy(ref, 4), noisy(ref, 30)
    assert ms_ssim(ref, ref) == pytest.approx(1.0)
    assert 1.0 > ms_ssim(ref, light) > ms_ssim(ref, heavy) > 0.0
    per_channel = [ms_ssim(ref[..., c], heavy[..., c]) for c in range(3)]
    assert ms_ssim(ref, heavy) == pytest.approx(np.mean(per_channel))
