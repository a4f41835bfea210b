"""Picture quality and rate measures: MSE, PSNR (per plane, pooled RGB, weighted YUV), MS-SSIM, bpp.

Conventions (the benchmark tables and the encoder's own report rely on them):

- Every function compares a *reference* (the source) with a *test* picture of the same shape and
  works in float64 on the integer sample values; ``max_value`` is the peak sample value (255 for
  8-bit, 1023 for 10-bit).
- PSNR is capped at ``PSNR_CAP_DB`` (100 dB): identical pictures give exactly 100.0, never ``inf``,
  so every number stays finite and JSON-valid and curves can still be fitted. 100 dB is far above
  anything a lossy 8/10-bit codec reaches (an 8-bit picture with a single sample off by one already
  needs more than 10^5 pixels to exceed it).
- ``psnr_rgb`` pools the MSE of the three planes before taking the log (the usual "RGB PSNR" of
  learned-codec papers), which is not the mean of the three per-plane PSNRs.
- ``psnr_yuv`` is the JVET weighted average of per-plane PSNRs, (6·Y + U + V) / 8.
- MS-SSIM follows Wang, Simoncelli & Bovik (2003): 11x11 Gaussian window (sigma 1.5) applied
  without padding, C1 = (0.01·L)², C2 = (0.03·L)², five scales with weights
  (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average pooling between scales (an odd last row or
  column is dropped). Negative contrast-structure terms are clamped to 0 so fractional powers stay
  real. On colour pictures it is computed on each plane and averaged over planes.
  Small pictures: the number of scales is reduced to the largest n <= 5 whose coarsest scale is
  still at least 11 samples on its short side, and the first n weights are renormalised to sum to 1;
  below 11 samples the window shrinks to the largest odd size that fits (single-scale SSIM).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import InputError
from .frame import Frame

PSNR_CAP_DB = 100.0
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03

_PLANE_NAMES = {"gray": ("y",), "rgb24": ("r", "g", "b"), "yuv420p": ("y", "u", "v"), "yuv420p10le": ("y", "u", "v")}


def _pair(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref)
    test = np.asarray(test)
    if ref.shape != test.shape:
        raise InputError(f"cannot compare pictures of shapes {ref.shape} and {test.shape}")
    if ref.size == 0:
        raise InputError("cannot compare empty pictures")
    return ref.astype(np.float64), test.astype(np.float64)


def mse(ref: np.ndarray, test: np.ndarray) -> float:
    """Mean squared error over every sample of the two arrays."""
    a, b = _pair(ref, test)
    return float(np.mean((a - b) ** 2))


def psnr_from_mse(mse_value: float, max_value: float = 255.0) -> float:
    """PSNR in dB for a given MSE, capped at ``PSNR_CAP_DB`` (identical pictures give the cap)."""
    if mse_value <= 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(max_value * max_value / mse_value))


def psnr(ref: np.ndarray, test: np.ndarray, max_value: float = 255.0) -> float:
    """PSNR in dB over all samples of the two arrays (capped, see module notes)."""
    return psnr_from_mse(mse(ref, test), max_value)


def _check_frames(ref: Frame, test: Frame) -> None:
    if ref.pix_fmt != test.pix_fmt:
        raise InputError(f"cannot compare a {ref.pix_fmt} picture with a {test.pix_fmt} picture")
    if (ref.width, ref.height) != (test.width, test.height):
        raise InputError(
            f"cannot compare a {ref.width}x{ref.height} picture with a {test.width}x{test.height} picture"
        )


def plane_names(pix_fmt: str) -> tuple[str, ...]:
    """Short names of the planes of a pixel format, in plane order: r,g,b / y,u,v / y."""
    if pix_fmt not in _PLANE_NAMES:
        raise InputError(f"no plane names for pixel format {pix_fmt!r}")
    return _PLANE_NAMES[pix_fmt]


def psnr_planes(ref: Frame, test: Frame) -> dict[str, float]:
    """PSNR of each plane, keyed r,g,b (rgb24), y,u,v (yuv) or y (gray)."""
    _check_frames(ref, test)
    return {
        name: psnr(a, b, ref.max_value)
        for name, a, b in zip(plane_names(ref.pix_fmt), ref.planes, test.planes)
    }


def psnr_rgb(ref: Frame | np.ndarray, test: Frame | np.ndarray, max_value: float = 255.0) -> float:
    """PSNR of the MSE pooled over all planes (for rgb24: the usual RGB PSNR). Arrays are HxWx3."""
    if isinstance(ref, Frame) and isinstance(test, Frame):
        _check_frames(ref, test)
        if ref.pix_fmt != "rgb24":
            raise InputError(f"psnr_rgb needs rgb24 pictures, got {ref.pix_fmt}")
        pooled = float(np.mean([mse(a, b) for a, b in zip(ref.planes, test.planes)]))
        return psnr_from_mse(pooled, ref.max_value)
    return psnr(np.asarray(ref), np.asarray(test), max_value)


def psnr_yuv(planes: dict[str, float]) -> float:
    """Weighted YUV PSNR (6·Y + U + V) / 8 from per-plane PSNRs with keys y, u, v."""
    try:
        return (6.0 * planes["y"] + planes["u"] + planes["v"]) / 8.0
    except KeyError as missing:
        raise InputError(f"psnr_yuv needs y, u and v PSNRs, missing {missing}") from None


def bpp(nbytes: int, width: int, height: int) -> float:
    """Bits per pixel of a coded picture of ``nbytes`` bytes."""
    if width < 1 or height < 1:
        raise InputError(f"bpp needs a positive picture size, got {width}x{height}")
    return 8.0 * nbytes / (width * height)


# ----------------------------------------------------------------------------------------------
# SSIM / MS-SSIM


def _gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    k = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return k / k.sum()


def _filter_valid(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable correlation with ``kernel`` on both axes, keeping only fully covered positions."""
    k = kernel.size
    x = sliding_window_view(x, k, axis=0) @ kernel
    return sliding_window_view(x, k, axis=1) @ kernel


def _ssim_terms(a: np.ndarray, b: np.ndarray, kernel: np.ndarray, max_value: float) -> tuple[float, float]:
    """Mean luminance·contrast·structure (SSIM) and mean contrast·structure (cs) over the picture."""
    c1 = (_K1 * max_value) ** 2
    c2 = (_K2 * max_value) ** 2
    mu_a = _filter_valid(a, kernel)
    mu_b = _filter_valid(b, kernel)
    var_a = _filter_valid(a * a, kernel) - mu_a * mu_a
    var_b = _filter_valid(b * b, kernel) - mu_b * mu_b
    cov = _filter_valid(a * b, kernel) - mu_a * mu_b
    cs_map = (2.0 * cov + c2) / (var_a + var_b + c2)
    lum_map = (2.0 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1)
    return float(np.mean(lum_map * cs_map)), float(np.mean(cs_map))


def ms_ssim_scales(height: int, width: int) -> int:
    """Number of MS-SSIM scales used for a picture of this size (1..5, see module notes)."""
    short = min(height, width)
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and (short >> scales) >= SSIM_WINDOW:
        scales += 1
    return scales


def _ms_ssim_plane(a: np.ndarray, b: np.ndarray, max_value: float) -> float:
    scales = ms_ssim_scales(*a.shape)
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales])
    if scales < len(MS_SSIM_WEIGHTS):
        # Only a truncated set is renormalised: the standard five weights are used as published
        # (they sum to 1.0001).
        weights = weights / weights.sum()
    short = min(a.shape)
    size = SSIM_WINDOW if short >= SSIM_WINDOW else (short if short % 2 else short - 1)
    kernel = _gaussian_kernel(size, SSIM_SIGMA)
    value = 1.0
    for scale in range(scales):
        ssim_value, cs_value = _ssim_terms(a, b, kernel, max_value)
        last = scale == scales - 1
        term = max(ssim_value if last else cs_value, 0.0)
        value *= term ** weights[scale]
        if not last:
            h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
            a = a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
            b = b[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return float(value)


def ms_ssim(ref: np.ndarray, test: np.ndarray, max_value: float = 255.0) -> float:
    """MS-SSIM of an HxW or HxWxC picture (colour: mean over channels). 1.0 means identical."""
    a, b = _pair(ref, test)
    if a.ndim == 2:
        return _ms_ssim_plane(a, b, max_value)
    if a.ndim == 3:
        return float(np.mean([_ms_ssim_plane(a[..., c], b[..., c], max_value) for c in range(a.shape[2])]))
    raise InputError(f"ms_ssim needs an HxW or HxWxC picture, got shape {a.shape}")


def ssim(ref: np.ndarray, test: np.ndarray, max_value: float = 255.0) -> float:
    """Single-scale SSIM (Gaussian 11x11 window, no padding), mean over channels for colour."""
    a, b = _pair(ref, test)
    short = min(a.shape[:2])
    size = SSIM_WINDOW if short >= SSIM_WINDOW else (short if short % 2 else short - 1)
    kernel = _gaussian_kernel(size, SSIM_SIGMA)
    if a.ndim == 2:
        return _ssim_terms(a, b, kernel, max_value)[0]
    return float(np.mean([_ssim_terms(a[..., c], b[..., c], kernel, max_value)[0] for c in range(a.shape[2])]))


def frame_quality(ref: Frame, test: Frame) -> dict[str, float]:
    """Every quality number the reports use, as a JSON-ready dict.

    Keys: ``psnr_<plane>`` for each plane, ``psnr_rgb`` (rgb24) or ``psnr_yuv`` (yuv) and
    ``ms_ssim`` (RGB: mean over R, G, B; YUV and gray: on the luma plane only, because the chroma
    planes of 4:2:0 are too small for five scales and luma dominates perceived structure).
    """
    planes = psnr_planes(ref, test)
    out = {f"psnr_{name}": value for name, value in planes.items()}
    if ref.pix_fmt == "rgb24":
        out["psnr_rgb"] = psnr_rgb(ref, test)
        out["ms_ssim"] = ms_ssim(ref.to_array(), test.to_array(), ref.max_value)
    else:
        if set(planes) == {"y", "u", "v"}:
            out["psnr_yuv"] = psnr_yuv(planes)
        out["ms_ssim"] = ms_ssim(ref.planes[0], test.planes[0], ref.max_value)
    return out
