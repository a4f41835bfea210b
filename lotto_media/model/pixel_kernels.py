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
def floor_act_(x: np.ndarray) -> None:
    """In place on a C-contiguous array: ``act`` of the floor of every value (a layer's rounding
    shift, whose +1/2 is in its bias, and its activation in one pass)."""
    flat = x.reshape(-1)
    for i in range(flat.size):
        flat[i] = _act(np.floor(flat[i]))


@numba.njit(cache=True, nogil=True)
def coordinate_layer_into(out: np.ndarray, weight: np.ndarray, xs: np.ndarray, ys: np.ndarray, first: int) -> None:
    """The synthesis' first layer for pixels ``first`` .. ``first + n - 1`` of a picture
    ``xs.size`` wide: out[o, i] = act(floor(weight[o, 0] x + weight[o, 1] y + 1/2)) with (x, y)
    the pixel's coordinates (docs/FORMAT.md 3.4 step 3), weight already scaled by 2^-frac; out
    (o, n) C-contiguous. Its input is two numbers a pixel: as a matrix product it is a pass that
    writes the layer, then two more to round and activate it."""
    n_out, n = out.shape
    width = xs.size
    column_terms = np.empty(width)
    for o in range(n_out):
        wx, wy = weight[o, 0], weight[o, 1]
        for q in range(width):
            column_terms[q] = wx * xs[q]
        row = out[o]
        i = 0
        while i < n:  # one picture row (or what of it the tile holds) at a time
            y = (first + i) // width
            column = (first + i) - y * width
            run = min(width - column, n - i)
            base = wy * ys[y] + 0.5
            # slices, not offsets into the whole arrays: so indexed, the loop vectorises (2.4x faster)
            segment, terms = row[i : i + run], column_terms[column : column + run]
            for q in range(run):
                segment[q] = _act(np.floor(terms[q] + base))
            i += run


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
    for c in range(channels):
        for oy in range(row_lo, row_hi):
            first_row = oy // 2 + (oy & 1) - top
            top_tap = 7 - (oy & 1)
            s0, s1 = padded[c, first_row], padded[c, first_row + 1]
            s2, s3 = padded[c, first_row + 2], padded[c, first_row + 3]
            k0, k1, k2, k3 = kernel[top_tap], kernel[top_tap - 2], kernel[top_tap - 4], kernel[top_tap - 6]
            row = out[c, oy]
            # the 16 taps of a sample in one sum: one store a sample instead of one a tap
            for q in range(half):
                even = (k0[7] * s0[q] + k0[5] * s0[q + 1] + k0[3] * s0[q + 2] + k0[1] * s0[q + 3]
                        + k1[7] * s1[q] + k1[5] * s1[q + 1] + k1[3] * s1[q + 2] + k1[1] * s1[q + 3]
                        + k2[7] * s2[q] + k2[5] * s2[q + 1] + k2[3] * s2[q + 2] + k2[1] * s2[q + 3]
                        + k3[7] * s3[q] + k3[5] * s3[q + 1] + k3[3] * s3[q + 2] + k3[1] * s3[q + 3])
                row[2 * q] = _bound(np.floor(even * scale + 0.5))
            for q in range(width // 2):
                odd = (k0[6] * s0[q + 1] + k0[4] * s0[q + 2] + k0[2] * s0[q + 3] + k0[0] * s0[q + 4]
                       + k1[6] * s1[q + 1] + k1[4] * s1[q + 2] + k1[2] * s1[q + 3] + k1[0] * s1[q + 4]
                       + k2[6] * s2[q + 1] + k2[4] * s2[q + 2] + k2[2] * s2[q + 3] + k2[0] * s2[q + 4]
                       + k3[6] * s3[q + 1] + k3[4] * s3[q + 2] + k3[2] * s3[q + 3] + k3[0] * s3[q + 4])
                row[2 * q + 1] = _bound(np.floor(odd * scale + 0.5))


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
                top, mid, bottom = padded[c, r - row_lo], padded[c, r - row_lo + 1], padded[c, r - row_lo + 2]
                w = weight[o, c]
                # the nine taps of an input channel in one sum: one store a sample instead of nine
                for q in range(width):
                    acc[q] += (w[0, 0] * top[q] + w[0, 1] * top[q + 1] + w[0, 2] * top[q + 2]
                               + w[1, 0] * mid[q] + w[1, 1] * mid[q + 1] + w[1, 2] * mid[q + 2]
                               + w[2, 0] * bottom[q] + w[2, 1] * bottom[q + 1] + w[2, 2] * bottom[q + 2])
            res = residual[o, r]
            dst = out[o, r]
            for q in range(width):
                dst[q] = _bound(res[q] + _act(np.floor(acc[q])))
