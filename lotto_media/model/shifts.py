"""Stacks of shifted windows of a grid, with a backward pass that sums into one buffer.

Both the ARM's causal context and the polyphase upsampler read a grid through a few dozen shifted
windows. Autograd's backward of each slice allocates and zero-fills a full-size gradient, then adds
them all up; summing the window gradients into one buffer is several times cheaper on a CPU.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from . import window_kernels

#: windows of at most this many samples a plane go through the compiled loops while torch runs on
#: more than one thread; larger ones through torch, whose copies then use every thread. Measured on
#: 2 cores (AMX Xeon), 24 windows forward and backward: 48x32 12 + 18 us against 90 + 168 for
#: torch's loop, 160x90 99 + 184 against 140 + 222, 192x128 181 + 327 against 225 + 282 (level),
#: 384x256 724 + 1,230 against 400 + 435; on one thread level or quicker at every size (384x256
#: 640 + 1,106 against 700 + 1,100).
COMPILED_WINDOW_AREA = 1 << 15


def _compiled(windows: torch.Tensor, grid: torch.Tensor) -> bool:
    """Whether a stack of ``windows`` of ``grid`` (or their gradients) goes through
    ``window_kernels``: both on the CPU in one float dtype, the windows small enough or torch on
    one thread (see COMPILED_WINDOW_AREA)."""
    return (windows.device.type == "cpu" and windows.dtype in (torch.float32, torch.float64)
            and grid.dtype == windows.dtype
            and (windows.shape[-2] * windows.shape[-1] <= COMPILED_WINDOW_AREA or torch.get_num_threads() == 1))


@lru_cache(maxsize=16)
def _offset_array(offsets: tuple[tuple[int, int], ...]) -> np.ndarray:
    """The (K, 2) int64 array of a (module-constant) offsets tuple, made once."""
    array = np.asarray(offsets, dtype=np.int64)
    array.flags.writeable = False
    return array


def _windows_array(windows: torch.Tensor, written: bool) -> np.ndarray:
    """A (K, ..., h, w) stack as a (K, B, h, w) array; a view where it is ``written``."""
    shape = (windows.shape[0], -1, *windows.shape[-2:])
    return (windows.view(shape) if written else windows.detach().reshape(shape)).numpy()


def _grid_array(grid: torch.Tensor, written: bool) -> np.ndarray:
    """A (..., H, W) grid as a (B, H, W) array; a view where it is ``written``."""
    shape = (-1, *grid.shape[-2:])
    return (grid.view(shape) if written else grid.detach().reshape(shape)).numpy()


def _copy_windows(out: torch.Tensor, grid: torch.Tensor, offsets: tuple[tuple[int, int], ...]) -> None:
    """out[k] = grid's window at offsets[k], the window size that of out's last two axes."""
    if _compiled(out, grid):
        window_kernels.copy_windows(_windows_array(out, written=True), _grid_array(grid, written=False),
                                    _offset_array(offsets))
    else:
        _copy_windows_looped(out, grid, offsets)


def _sum_windows(grid_grad: torch.Tensor, grad: torch.Tensor, offsets: tuple[tuple[int, int], ...]) -> None:
    """The backward of ``_copy_windows``: each window's gradient grad[k] added into grid_grad."""
    if _compiled(grad, grid_grad):
        window_kernels.add_windows(_grid_array(grid_grad, written=True), _windows_array(grad, written=False),
                                   _offset_array(offsets))
    else:
        _sum_windows_looped(grid_grad, grad, offsets)


def _copy_windows_looped(out: torch.Tensor, grid: torch.Tensor, offsets: tuple[tuple[int, int], ...]) -> None:
    """``_copy_windows`` as tensor operations, a window at a time."""
    hgt, wid = out.shape[-2:]
    for k, (dy, dx) in enumerate(offsets):
        out[k] = grid[..., dy : dy + hgt, dx : dx + wid]


def _sum_windows_looped(grid_grad: torch.Tensor, grad: torch.Tensor, offsets: tuple[tuple[int, int], ...]) -> None:
    """``_sum_windows`` as tensor operations, a window at a time."""
    hgt, wid = grad.shape[-2:]
    for k, (dy, dx) in enumerate(offsets):
        grid_grad[..., dy : dy + hgt, dx : dx + wid] += grad[k]


class _ShiftedWindows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grid: torch.Tensor, offsets: tuple[tuple[int, int], ...], size: tuple[int, int]) -> torch.Tensor:  # type: ignore[override]
        out = grid.new_empty(len(offsets), *grid.shape[:-2], *size)
        _copy_windows(out, grid, offsets)
        ctx.offsets, ctx.grid_shape = offsets, grid.shape
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        grid_grad = grad.new_zeros(ctx.grid_shape)
        _sum_windows(grid_grad, grad, ctx.offsets)
        return grid_grad, None, None


def shifted_windows(grid: torch.Tensor, offsets: tuple[tuple[int, int], ...], size: tuple[int, int]) -> torch.Tensor:
    """grid (..., H, W) -> (len(offsets), ..., h, w) with window k = grid[..., dy:dy+h, dx:dx+w]."""
    return _ShiftedWindows.apply(grid, tuple(offsets), tuple(size))


class _JoinedWindows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, offsets: tuple[tuple[int, int], ...], sizes: tuple[tuple[int, int], ...],  # type: ignore[override]
                dtype: torch.dtype, *grids: torch.Tensor) -> torch.Tensor:
        out = grids[0].new_empty(len(offsets), sum(hgt * wid for hgt, wid in sizes), dtype=dtype)
        for block, grid in zip(_blocks(out, sizes), grids):
            _copy_windows(block, grid, offsets)
        ctx.offsets, ctx.sizes = offsets, sizes
        ctx.grids = [(grid.shape, grid.dtype) for grid in grids]
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        grads: list[torch.Tensor] = []
        for block, (shape, dtype) in zip(_blocks(grad, ctx.sizes), ctx.grids):
            grid_grad = grad.new_zeros(shape, dtype=dtype)
            _sum_windows(grid_grad, block, ctx.offsets)
            grads.append(grid_grad)
        return (None, None, None, *grads)


def _blocks(joined: torch.Tensor, sizes: tuple[tuple[int, int], ...]) -> list[torch.Tensor]:
    """(K, sum h_i * w_i) -> views (K, h_i, w_i), one per grid."""
    pieces = joined.split([hgt * wid for hgt, wid in sizes], dim=1)
    return [piece.view(joined.shape[0], hgt, wid) for piece, (hgt, wid) in zip(pieces, sizes)]


def joined_windows(grids: list[torch.Tensor], offsets: tuple[tuple[int, int], ...],
                   sizes: list[tuple[int, int]], dtype: torch.dtype | None = None) -> torch.Tensor:
    """2-D grids (H_i, W_i) -> (len(offsets), sum h_i * w_i): ``shifted_windows`` of each grid
    (its window size ``sizes[i]``), flattened and joined along the last axis, written once, in
    ``dtype`` (default: the grids'). The same values as concatenating the flattened windows and
    casting them, without the concatenation's and the cast's copies of the whole stack; the
    gradient reaches each grid in its own dtype."""
    return _JoinedWindows.apply(tuple(offsets), tuple(tuple(s) for s in sizes), dtype or grids[0].dtype, *grids)
