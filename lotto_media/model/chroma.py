"""YUV 4:2:0: how three full-resolution synthesis channels become Y, U and V planes.

The synthesis always emits C channels at the luma size. For 4:2:0 the U and V channels are reduced
to the chroma plane size ceil(H/2) x ceil(W/2) by a 2x2 average; an odd last row or column is
replicated, so every chroma sample averages exactly four values (no edge special case in either
the float or the integer form). This module holds the three forms of that one idea:

- the float reduction and the plane-weighted distortion the search minimises;
- the target layout the search receives (a (3, H, W) tensor, see ``pack_target``);
- the exact integer reduction the decoder applies to the fixed-point synthesis output
  (docs/FORMAT.md, Part 3 §3.4 step 4).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: distortion weights of the Y, U and V planes (the JVET habit, as in PSNR-YUV)
PLANE_WEIGHTS: tuple[float, float, float] = (6.0, 1.0, 1.0)
#: the integer 2x2 sum of four fixed-point values is brought back to the same fixed point by a
#: round-half-up shift of this many bits (the sum of 4 values / 4)
SUM_SHIFT = 2

#: ``distortion(reconstruction, target) -> scalar`` for (C, H, W) float tensors on [0, 1]
Distortion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def chroma_shape(height: int, width: int) -> tuple[int, int]:
    """Chroma plane size of a 4:2:0 picture with an H x W luma plane."""
    return (height + 1) // 2, (width + 1) // 2


# --- training (float) --------------------------------------------------------------------------

def downsample(channels: torch.Tensor) -> torch.Tensor:
    """(C, H, W) float -> (C, ceil(H/2), ceil(W/2)): 2x2 mean, odd edges replicated. Differentiable."""
    height, width = channels.shape[-2:]
    x = channels.unsqueeze(0)
    if height % 2 or width % 2:
        x = F.pad(x, (0, width % 2, 0, height % 2), mode="replicate")
    return F.avg_pool2d(x, 2)[0]


def pack_target(planes: Sequence[np.ndarray], peak: int) -> torch.Tensor:
    """Native Y, U, V planes -> (3, H, W) float32 on [0, 1] (divided by ``peak``), chroma repeated 2x2.

    The search takes one (C, H, W) target for every pixel format; repeating each chroma sample
    over its 2x2 block keeps the chroma planes exactly recoverable as ``target[1:, ::2, ::2]``.
    """
    luma = planes[0]
    height, width = luma.shape
    full = [luma.astype(np.float32)]
    for plane in planes[1:]:
        full.append(np.repeat(np.repeat(plane.astype(np.float32), 2, axis=0), 2, axis=1)[:height, :width])
    return torch.from_numpy(np.stack(full) / np.float32(peak))


def distortion(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(6 mse_Y + mse_U + mse_V) / 8 of a (3, H, W) synthesis output against a ``pack_target`` target."""
    wy, wu, wv = PLANE_WEIGHTS
    mse_y = torch.mean((recon[0] - target[0]) ** 2)
    chroma = downsample(recon[1:])
    chroma_target = target[1:, ::2, ::2]
    mse_u = torch.mean((chroma[0] - chroma_target[0]) ** 2)
    mse_v = torch.mean((chroma[1] - chroma_target[1]) ** 2)
    return (wy * mse_y + wu * mse_u + wv * mse_v) / (wy + wu + wv)


# --- decoding (exact integers) -----------------------------------------------------------------

def sum_2x2(channels: torch.Tensor) -> torch.Tensor:
    """(C, H, W) integers (any dtype holding them exactly) -> (C, ceil(H/2), ceil(W/2)) sums of each
    2x2 block, the last row/column repeated when H or W is odd."""
    height, width = channels.shape[-2:]
    rows = torch.arange(0, height, 2)
    cols = torch.arange(0, width, 2)
    rows1 = (rows + 1).clamp_(max=height - 1)
    cols1 = (cols + 1).clamp_(max=width - 1)
    top, bottom = channels[:, rows], channels[:, rows1]
    return top[:, :, cols] + top[:, :, cols1] + bottom[:, :, cols] + bottom[:, :, cols1]


def integer_downsample(channels: torch.Tensor) -> torch.Tensor:
    """Fixed-point (C, H, W) synthesis outputs (integers in float64) -> the chroma planes in the same
    fixed point: ``floor((a + b + c + d + 2) / 4)``, i.e. the sum of the 2x2 block rounded half up by
    ``SUM_SHIFT`` bits. Exact: the inputs are integers below 2^41 (the last layer's sums stay below 2^53 before its
    12-bit shift), so every sum is below 2^43 and the scaling by 1/4 is a power of two."""
    return sum_2x2(channels).mul_(0.5**SUM_SHIFT).add_(0.5).floor_()
