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
