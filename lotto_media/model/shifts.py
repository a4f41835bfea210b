"""Stacks of shifted windows of a grid, with a backward pass that sums into one buffer.

Both the ARM's causal context and the polyphase upsampler read a grid through a few dozen shifted
windows. Autograd's backward of each slice allocates and zero-fills a full-size gradient, then adds
them all up; summing the window gradients into one buffer is several times cheaper on a CPU.
"""

from __future__ import annotations

import torch


def _copy_windows(out: torch.Tensor, grid: torch.Tensor, offsets: tuple[tuple[int, int], ...]) -> None:
    """out[k] = grid's window at offsets[k], the window size that of out's last two axes."""
    hgt, wid = out.shape[-2:]
    for k, (dy, dx) in enumerate(offsets):
        out[k] = grid[..., dy : dy + hgt, dx : dx + wid]


def _sum_windows(grid_grad: torch.Tensor, grad: torch.Tensor, offsets: tuple[tuple[int, int], ...]) -> None:
    """The backward of ``_copy_windows``: each window's gradient grad[k] added into grid_grad."""
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
