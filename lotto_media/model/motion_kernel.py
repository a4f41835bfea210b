"""Block motion compensation (docs/FORMAT.md Part 3 §3.6) as one compiled (numba) pass.

Written with array operations, a field's compensation takes a dozen passes over picture-sized
int64 arrays per vector a sample blends (gathers of the four neighbours, the weights, the sums):
about an eighth of a low-rate predicted frame's decode. Here each sample is computed where it
lies, from its block's vector and, overlapped, its nearer neighbours' ones. Integer arithmetic
throughout, so the samples equal those of ``motion.shift_plane`` block by block (the tests hold
them to it) whatever the evaluation order.
"""

from __future__ import annotations

import numba
import numpy as np

#: fractional bits of an overlapped block's weights along one axis (``motion.OVERLAP_BITS``); set
#: here because numba's on-disk cache notices changes to this file only
OVERLAP_BITS = 7


@numba.njit(cache=True, nogil=True, inline="always")
def _bilinear(reference: np.ndarray, y: int, x: int, mx: int, my: int, frac: int) -> int:
    """The reference at (x + mx / 2^frac, y + my / 2^frac): the four samples around it (whole
    positions clamped to the plane) weighted bilinearly, rounded half up."""
    height, width = reference.shape
    one = 1 << frac
    fy, fx = my & (one - 1), mx & (one - 1)
    y0, x0 = y + (my >> frac), x + (mx >> frac)
    y1, x1 = min(max(y0 + 1, 0), height - 1), min(max(x0 + 1, 0), width - 1)
    y0, x0 = min(max(y0, 0), height - 1), min(max(x0, 0), width - 1)
    acc = (one - fy) * ((one - fx) * reference[y0, x0] + fx * reference[y0, x1])
    acc += fy * ((one - fx) * reference[y1, x0] + fx * reference[y1, x1])
    return (acc + (1 << (2 * frac - 1))) >> (2 * frac)


@numba.njit(cache=True, nogil=True)
def _axis(length: int, size: int, blocks: int) -> np.ndarray:
    """Along one axis, for each sample: its block, the neighbouring block on its nearer side (its
    own beyond the outer blocks) and its index in its block (the last blocks run to the edge)."""
    table = np.empty((length, 3), dtype=np.int64)
    for position in range(length):
        own = min(position // size, blocks - 1)
        within = min(position - own * size, size - 1)
        nearer = own - 1 if 2 * within + 1 < size else own + 1
        table[position, 0], table[position, 1], table[position, 2] = own, min(max(nearer, 0), blocks - 1), within
    return table


@numba.njit(cache=True, nogil=True)
def compensate_blocks(reference: np.ndarray, vectors: np.ndarray, size: int, frac: int, weights: np.ndarray,
                      overlapped: bool) -> np.ndarray:
    """The int64 plane ``reference`` displaced block by block: blocks of ``size`` samples,
    (rows, cols, 2) ``vectors`` (mx, my) in 2^-frac samples. ``overlapped``: each sample blends
    the predictions of its own block's vector and of its nearer neighbours' (horizontally,
    vertically and diagonally) with ``weights`` (its own block's share along an axis, in
    2^-OVERLAP_BITS, by its index in the block), rounded half up."""
    height, width = reference.shape
    along_y = _axis(height, size, vectors.shape[0])
    along_x = _axis(width, size, vectors.shape[1])
    full = 1 << OVERLAP_BITS
    half = 1 << (2 * OVERLAP_BITS - 1)
    out = np.empty((height, width), dtype=np.int64)
    for y in range(height):
        own_y, near_y = along_y[y, 0], along_y[y, 1]
        if not overlapped:
            for x in range(width):
                own_x = along_x[x, 0]
                out[y, x] = _bilinear(reference, y, x, vectors[own_y, own_x, 0], vectors[own_y, own_x, 1], frac)
            continue
        wy = weights[along_y[y, 2]]
        for x in range(width):
            own_x, near_x, wx = along_x[x, 0], along_x[x, 1], weights[along_x[x, 2]]
            total = half + wy * wx * _bilinear(reference, y, x, vectors[own_y, own_x, 0], vectors[own_y, own_x, 1],
                                               frac)
            total += wy * (full - wx) * _bilinear(reference, y, x, vectors[own_y, near_x, 0],
                                                  vectors[own_y, near_x, 1], frac)
            total += (full - wy) * wx * _bilinear(reference, y, x, vectors[near_y, own_x, 0],
                                                  vectors[near_y, own_x, 1], frac)
            total += (full - wy) * (full - wx) * _bilinear(reference, y, x, vectors[near_y, near_x, 0],
                                                           vectors[near_y, near_x, 1], frac)
            out[y, x] = total >> (2 * OVERLAP_BITS)
    return out
