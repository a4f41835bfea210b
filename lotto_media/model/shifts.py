"""Stacks of shifted windows of a grid, with a backward pass that sums into one buffer.

Both the ARM's causal context and the polyphase upsampler read a grid through a few dozen shifted
windows. Autograd's backward of each slice allocates and zero-fills a full-size gradient, then adds
them all up; summing the window gradients into one buffer is several times cheaper on a CPU.
"""

from __future__ import annotations

import torch


class _ShiftedWindows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grid: torch.Tensor, offsets: tuple[tuple[int, int], ...], size: tuple[int, int]) -> torch.Tensor:  # type: ignore[override]
        hgt, wid = size
        out = grid.new_empty(len(offsets), *grid.shape[:-2], hgt, wid)
        for k, (dy, dx) in enumerate(offsets):
            out[k] = grid[..., dy : dy + hgt, dx : dx + wid]
        ctx.offsets, ctx.size, ctx.grid_shape = offsets, size, grid.shape
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        hgt, wid = ctx.size
        grid_grad = grad.new_zeros(ctx.grid_shape)
        for k, (dy, dx) in enumerate(ctx.offsets):
            grid_grad[..., dy : dy + hgt, dx : dx + wid] += grad[k]
        return grid_grad, None, None


def shifted_windows(grid: torch.Tensor, offsets: tuple[tuple[int, int], ...], size: tuple[int, int]) -> torch.Tensor:
    """grid (..., H, W) -> (len(offsets), ..., h, w) with window k = grid[..., dy:dy+h, dx:dx+w]."""
    return _ShiftedWindows.apply(grid, tuple(offsets), tuple(size))


class _JoinedWindows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, offsets: tuple[tuple[int, int], ...], sizes: tuple[tuple[int, int], ...],  # type: ignore[override]
                dtype: torch.dtype, *grids: torch.Tensor) -> torch.Tensor:
        total = sum(hgt * wid for hgt, wid in sizes)
        out = grids[0].new_empty(len(offsets), total, dtype=dtype)
        start = 0
        for grid, (hgt, wid) in zip(grids, sizes):
            block = out[:, start : start + hgt * wid].view(len(offsets), hgt, wid)
            for k, (dy, dx) in enumerate(offsets):
                block[k] = grid[dy : dy + hgt, dx : dx + wid]
            start += hgt * wid
        ctx.offsets, ctx.sizes = offsets, sizes
        ctx.grid_shapes = [grid.shape for grid in grids]
        ctx.grid_dtypes = [grid.dtype for grid in grids]
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        grads: list[torch.Tensor] = []
        start = 0
        for shape, dtype, (hgt, wid) in zip(ctx.grid_shapes, ctx.grid_dtypes, ctx.sizes):
            block = grad[:, start : start + hgt * wid].view(len(ctx.offsets), hgt, wid)
            grid_grad = grad.new_zeros(shape, dtype=dtype)
            for k, (dy, dx) in enumerate(ctx.offsets):
                grid_grad[dy : dy + hgt, dx : dx + wid] += block[k]
            grads.append(grid_grad)
            start += hgt * wid
        return (None, None, None, *grads)


def joined_windows(grids: list[torch.Tensor], offsets: tuple[tuple[int, int], ...],
                   sizes: list[tuple[int, int]], dtype: torch.dtype | None = None) -> torch.Tensor:
    """2-D grids (H_i, W_i) -> (len(offsets), sum h_i * w_i): ``shifted_windows`` of each grid
    (its window size ``sizes[i]``), flattened and joined along the last axis, written once, in
    ``dtype`` (default: the grids'). The same values as concatenating the flattened windows and
    casting them, without the concatenation's and the cast's copies of the whole stack; the
    gradient reaches each grid in its own dtype."""
    return _JoinedWindows.apply(tuple(offsets), tuple(tuple(s) for s in sizes), dtype or grids[0].dtype, *grids)
