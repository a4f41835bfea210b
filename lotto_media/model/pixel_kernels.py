"""Compiled (numba) loops of the decoder's picture reconstruction that BLAS cannot express.

The per-pixel networks' matrix products stay with BLAS (``reconstruct``). The rest is work per
sample: as tensor operations it takes several passes over picture-sized float64 arrays (five for
the activation) or unrolled windows (16 a sample for the 2x upsampler, 9 per channel for a 3x3
convolution); here each is one pass. The arithmetic is docs/FORMAT.md Part 3 §3.4's, on float64 holding
integers below 2^53, so the results are exact and equal to any other evaluation order.
"""

from __future__ import annotations

import numba
import numpy as np

from . import synthesis

# Written out here, not imported: numba's on-disk cache notices changes to this file only.
SYNTH_FRAC = 12
assert SYNTH_FRAC == synthesis.SYNTH_FRAC

#: stored activations are clamped to +-2^ACT_LIMIT_BITS (docs/FORMAT.md 3.4): with weights below
#: 2^16 and fan-ins below 2^11, every product and partial sum stays below 2^53
ACT_LIMIT_BITS = 26
_LIMIT = float(1 << ACT_LIMIT_BITS)
_ONE = float(1 << SYNTH_FRAC)
_ACT_SCALE = 0.5 ** (SYNTH_FRAC + 2)


@numba.njit(cache=True, nogil=True, inline="always")
def _bound(a: float) -> float:
    return min(max(a, -_LIMIT), _LIMIT)


@numba.njit(cache=True, nogil=True, inline="always")
def _act(a: float) -> float:
    """floor(1/2 + a * clamp(a + 2^(S+1), 0, 2^(S+2)) / 2^(S+2)), clamped to +-2^26."""
    t = min(max(a + 2.0 * _ONE, 0.0), 4.0 * _ONE)
    return _bound(np.floor(0.5 + _ACT_SCALE * a * t))


@numba.njit(cache=True, nogil=True)
def act_(x: np.ndarray) -> None:
    """In place on a C-contiguous array: ``act`` of every value, bounded."""
    flat = x.reshape(-1)
    for i in range(flat.size):
        flat[i] = _act(flat[i])


@numba.njit(cache=True, nogil=True)
def edge_padded(x: np.ndarray, pad: int, first: int, stop: int) -> np.ndarray:
    """Rows ``first - pad`` .. ``stop + pad - 1`` of (c, h, w) x with ``pad`` columns each side,
    x's edge samples repeated beyond its borders: (c, stop - first + 2 pad, w + 2 pad)."""
    channels, height, width = x.shape
    n_rows = stop - first + 2 * pad
    out = np.empty((channels, n_rows, width + 2 * pad))
    for c in range(channels):
        for r in range(n_rows):
            src = x[c, min(max(first - pad + r, 0), height - 1)]
            dst = out[c, r]
            for q in range(pad):
                dst[q] = src[0]
                dst[pad + width + q] = src[width - 1]
            dst[pad : pad + width] = src
    return out


@numba.njit(cache=True, nogil=True)
def upsample_into(out: np.ndarray, padded: np.ndarray, kernel: np.ndarray, scale: float, row_lo: int,
                  row_hi: int) -> None:
    """Rows ``row_lo`` .. ``row_hi - 1`` of the 2x transposed convolution of docs/FORMAT.md 3.4
    step 1, rounded and bounded.

    padded: ``edge_padded(u, 2, row_lo // 2, row_hi // 2)`` of the coarse grid u (c, h, w); kernel
    (8, 8); out (c, H, W) with H <= 2h, W <= 2w; scale = 2^-u. Output row 2p reads u's rows
    p - 2 .. p + 1 with kernel rows 7, 5, 3, 1; row 2p + 1 rows p - 1 .. p + 2 with kernel rows 6,
    4, 2, 0; columns likewise."""
    channels, height, width = out.shape
    top = row_lo // 2
    half = (width + 1) // 2
    even = np.empty(half)
    odd = np.empty(half)
    for c in range(channels):
        for oy in range(row_lo, row_hi):
            first_row = oy // 2 + (oy & 1) - top
            top_tap = 7 - (oy & 1)
            even[:] = 0.0
            odd[:] = 0.0
            for m in range(4):
                src = padded[c, first_row + m]
                ty = top_tap - 2 * m
                for n in range(4):
                    k_even = kernel[ty, 7 - 2 * n]
                    k_odd = kernel[ty, 6 - 2 * n]
                    for q in range(half):
                        even[q] += k_even * src[q + n]
                        odd[q] += k_odd * src[q + 1 + n]
            row = out[c, oy]
            for q in range(half):
                row[2 * q] = _bound(np.floor(even[q] * scale + 0.5))
                if 2 * q + 1 < width:
                    row[2 * q + 1] = _bound(np.floor(odd[q] * scale + 0.5))


@numba.njit(cache=True, nogil=True)
def conv3x3_residual_into(out: np.ndarray, padded: np.ndarray, residual: np.ndarray, weight: np.ndarray,
                          bias: np.ndarray, row_lo: int, row_hi: int) -> None:
    """Rows ``row_lo`` .. ``row_hi - 1`` of out = bound(residual + act(floor(conv3x3(x; weight) +
    bias))), docs/FORMAT.md 3.4 step 2.

    padded: ``edge_padded(x, 1, row_lo, row_hi)``; weight (o, c, 3, 3) and bias (o,) already
    scaled by 2^-m, the bias with the rounding's +1/2; residual and out (o, H, W)."""
    n_out, height, width = out.shape
    n_in = padded.shape[0]
    acc = np.empty(width)
    for o in range(n_out):
        for r in range(row_lo, row_hi):
            acc[:] = bias[o]
            for c in range(n_in):
                for ky in range(3):
                    src = padded[c, r - row_lo + ky]
                    for kx in range(3):
                        w = weight[o, c, ky, kx]
                        for q in range(width):
                            acc[q] += w * src[q + kx]
            res = residual[o, r]
            dst = out[o, r]
            for q in range(width):
                dst[q] = _bound(res[q] + _act(np.floor(acc[q])))
