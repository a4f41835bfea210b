"""Latent pyramid: grid sizes, quantisation proxies, and the learned 2x upsampler."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .shifts import shifted_windows

#: latents are integers in this range (inclusive)
LATENT_MIN, LATENT_MAX = -64, 63
#: separable bicubic (a = -0.75) 2x kernel laid out for a stride-2 transposed convolution
BICUBIC_2X = (-0.0234375, -0.0703125, 0.2265625, 0.8671875, 0.8671875, 0.2265625, -0.0703125, -0.0234375)
UPSAMPLE_KERNEL = len(BICUBIC_2X)
#: replicate-padding of the coarse grid; with transposed-conv padding UPSAMPLE_CROP the output is
#: exactly twice the input size and output sample 2i sits at input position i - 1/4
UPSAMPLE_PAD = 2
UPSAMPLE_CROP = 3 + 2 * UPSAMPLE_PAD


def level_shapes(height: int, width: int, n_levels: int) -> list[tuple[int, int]]:
    return [(math.ceil(height / 2**i), math.ceil(width / 2**i)) for i in range(n_levels)]


def bicubic_kernel() -> torch.Tensor:
    k = torch.tensor(BICUBIC_2X, dtype=torch.float32)
    return torch.outer(k, k)


def replicate_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad the last two dimensions of a (C, H, W) or (N, C, H, W) tensor by repeating the edge
    samples (torch's replication pad: several times quicker, forward and backward, than an index
    gather; docs/RESULTS.md)."""
    return F.pad(x, (pad, pad, pad, pad), mode="replicate")


#: polyphase form of the stride-2 transposed convolution: output parity (a, b) is a 4x4 correlation
#: of the padded grid with taps K[a + 6 - 2m, b + 6 - 2n]; phases interleave one sample shifted
_PHASE_TAPS = tuple(6 - 2 * m for m in range(4))
_WINDOW_OFFSETS = tuple((i, j) for i in range(4) for j in range(4))


#: flat index into the 8x8 kernel of each phase's taps: phase (a, b), tap (m, n) -> K[a + 6 - 2m, b + 6 - 2n]
_PHASE_INDEX = torch.tensor([(a + ta) * UPSAMPLE_KERNEL + b + tb for a in (0, 1) for b in (0, 1)
                             for ta in _PHASE_TAPS for tb in _PHASE_TAPS])


def polyphase_taps(kernel: torch.Tensor) -> torch.Tensor:
    """8x8 transposed-conv kernel -> (4 phases, 16 taps), each phase's 4x4 taps row-major."""
    return kernel.reshape(-1)[_PHASE_INDEX.to(kernel.device)].view(4, 16)


def upsample2x(x: torch.Tensor, kernel: torch.Tensor, out_hw: tuple[int, int], *,
               convolution: bool | None = None) -> torch.Tensor:
    """(c, h, w) -> (c, H, W) with H <= 2h, W <= 2w, one shared 8x8 kernel for every channel.

    The transposed convolution of docs/FORMAT.md computed as four 4x4 polyphase filters. On a CPU
    over 16 shifted windows and one matmul: about twice as fast (forward and backward) as
    ``conv_transpose2d`` with its single input channel, and as one convolution with the four
    phases as output channels (384x256, one thread: 15 ms against 29 for a whole pyramid).
    ``convolution`` (default: off a CPU) uses that convolution: one operation where the windows
    are 33, which is what a GPU step pays for."""
    return _upsample2x(x, polyphase_taps(kernel), out_hw, convolution)


def _upsample2x(x: torch.Tensor, taps: torch.Tensor, out_hw: tuple[int, int], convolution: bool | None) -> torch.Tensor:
    c, h, w = x.shape
    padded = replicate_pad(x, UPSAMPLE_PAD)
    if convolution is None:
        convolution = x.device.type != "cpu"
    if convolution:
        phases = F.conv2d(padded.unsqueeze(1), taps.view(4, 1, 4, 4))  # (c, 4, h + 1, w + 1)
        up = phases.view(c, 2, 2, h + 1, w + 1).permute(0, 3, 1, 4, 2)
    else:
        windows = shifted_windows(padded, _WINDOW_OFFSETS, (h + 1, w + 1))
        up = (taps @ windows.view(16, -1)).view(2, 2, c, h + 1, w + 1).permute(2, 3, 0, 4, 1)
    return up.reshape(c, 2 * h + 2, 2 * w + 2)[:, 1 : 1 + out_hw[0], 1 : 1 + out_hw[1]]


def noisy_soft_round(latents: list[torch.Tensor], temperature: float, noise_a: float,
                     generator: torch.Generator) -> list[torch.Tensor]:
    """The search's quantisation proxy of every level, soft_round(soft_round(z) + noise), made on
    all levels at once: one pass instead of one per level, since on a small picture or a GPU the
    cost of each operation, not its size, is what a step pays."""
    flat = torch.cat([z.reshape(-1) for z in latents])
    noise = kumaraswamy_noise(flat.shape, noise_a, generator, flat.device)
    proxy = soft_round(soft_round(flat, temperature) + noise, temperature)
    return [piece.view(z.shape) for piece, z in zip(proxy.split([z.numel() for z in latents]), latents)]


def upsample_pyramid(levels: list[torch.Tensor], kernel: torch.Tensor, *,
                     convolution: bool | None = None) -> torch.Tensor:
    """Progressive upsampling: u_last = L_last, u_k = [L_k, up(u_{k+1})]. Returns (n_levels, H, W)."""
    taps = polyphase_taps(kernel)  # once for every level
    u = levels[-1].unsqueeze(0)
    for level in reversed(levels[:-1]):
        u = torch.cat([level.unsqueeze(0), _upsample2x(u, taps, tuple(level.shape), convolution)], dim=0)
    return u


def soft_round(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """Differentiable rounding that tends to round() as the temperature goes to 0."""
    floor = torch.floor(x)
    r = x - floor - 0.5
    return floor + 0.5 + 0.5 * torch.tanh(r / temperature) / math.tanh(0.5 / temperature)


def kumaraswamy_noise(shape: torch.Size, a: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Noise in [-0.5, 0.5] from a Kumaraswamy(a, b) law whose mode is 0.5 (a = 1: uniform)."""
    b = ((a - 1.0) / 0.5**a + 1.0) / a
    u = torch.rand(shape, generator=generator, device=device).clamp(1e-6, 1 - 1e-6)
    return (1.0 - (1.0 - u) ** (1.0 / b)) ** (1.0 / a) - 0.5


def quantise_ste(x: torch.Tensor) -> torch.Tensor:
    """Hard rounding with a straight-through gradient."""
    return x + (torch.round(x) - x).detach()


def to_integers(levels: list[torch.Tensor]) -> list[np.ndarray]:
    return [
        torch.round(z.detach()).clamp(LATENT_MIN, LATENT_MAX).cpu().numpy().astype(np.int64) for z in levels
    ]
