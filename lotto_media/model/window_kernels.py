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


@numba.njit(cache=True, nogil=True, inline="always")
def _check_windows(windows_shape: tuple[int, int, int, int], grid_shape: tuple[int, int, int],
                   offsets: np.ndarray) -> None:
    """Every window inside the grid (the loops below do not check their indices)."""
    n_windows, n_planes, hgt, wid = windows_shape
    if offsets.shape[0] != n_windows or offsets.shape[1] != 2 or grid_shape[0] != n_planes:
        raise ValueError("windows, offsets and grid do not match")
    for k in range(n_windows):
        dy, dx = offsets[k, 0], offsets[k, 1]
        if dy < 0 or dx < 0 or dy + hgt > grid_shape[1] or dx + wid > grid_shape[2]:
            raise ValueError("a window reaches outside the grid")


@numba.njit(cache=True, nogil=True)
def copy_windows(out: np.ndarray, grid: np.ndarray, offsets: np.ndarray) -> None:
    """out[k, b] = grid[b, dy:dy + h, dx:dx + w] with (dy, dx) = offsets[k]; out (K, B, h, w)."""
    _check_windows(out.shape, grid.shape, offsets)
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
    _check_windows(grad.shape, grid_grad.shape, offsets)
    n_windows, n_planes, hgt, wid = grad.shape
    for k in range(n_windows):
        dy, dx = offsets[k, 0], offsets[k, 1]
        for b in range(n_planes):
            for y in range(hgt):
                dst = grid_grad[b, y + dy]
                src = grad[k, b, y]
                for x in range(wid):
                    dst[x + dx] += src[x]
