"""Compiled (numba) loops for ``shifts``: a stack of shifted windows of a grid and its backward.

As tensor operations each window costs a handful of dispatched operations (a select, two slices,
a copy or an add), a fixed few microseconds however small the grid; the ARM's contexts read 24
windows of every latent level and the upsampler 16, so on small grids the search's step was
mostly that dispatch. Here a grid's windows are one call. The values are the same to the bit:
each output is a copy, and the backward adds the windows' gradients in the same order as the
tensor loop does.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def copy_windows(out: np.ndarray, grid: np.ndarray, offsets: np.ndarray) -> None:
    """out[k, b] = grid[b, dy:dy + h, dx:dx + w] with (dy, dx) = offsets[k]; out (K, B, h, w)."""
    n_windows, n_planes, hgt, wid = out.shape
    for k in range(n_windows):
        dy, dx = offsets[k, 0], offsets[k, 1]
        for b in range(n_planes):
            for y in range(hgt):
                src = grid[b, y + dy]
                dst = out[k, b, y]
                for x in range(wid):
                    dst[x] = src[x + dx]


@numba.njit(cache=True, nogil=True)
def add_windows(grid_grad: np.ndarray, grad: np.ndarray, offsets: np.ndarray) -> None:
    """The backward of ``copy_windows``: grid_grad[b, dy:dy + h, dx:dx + w] += grad[k, b], k in order."""
    n_windows, n_planes, hgt, wid = grad.shape
    for k in range(n_windows):
        dy, dx = offsets[k, 0], offsets[k, 1]
        for b in range(n_planes):
            for y in range(hgt):
                dst = grid_grad[b, y + dy]
                src = grad[k, b, y]
                for x in range(wid):
                    dst[x + dx] += src[x]
