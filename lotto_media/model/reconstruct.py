"""The decoder's picture: latents -> pixels in exact integer (fixed-point) arithmetic.

Encoder and decoder both call ``reconstruct``; because every intermediate value is an integer
below 2^53 held in float64, each operation is exact whatever the summation order, so the result
is bit-identical on any machine, thread count or SIMD path, and equals what the encoder reports. Tensors are channels-first (C, H*W) torch
float64 and updated in place where possible: the decoder's cost is mostly memory traffic.
"""

from __future__ import annotations

import numpy as np
import torch

from . import chroma, pixel_kernels
from .latents import UPSAMPLE_PAD
from .synthesis import SYNTH_FRAC, coordinate_axis
from ..coding.params import QuantizedNetworks
from .random_weights import WEIGHT_FRAC

_ONE = float(1 << SYNTH_FRAC)

#: pixels per tile of the per-pixel networks: tiles stay in cache and avoid huge allocations
TILE = 8192


def _act_(a: torch.Tensor) -> torch.Tensor:
    """In place: x * clamp(x + 2, 0, 4) / 4 on SYNTH_FRAC fixed point, rounded half up, bounded
    (``pixel_kernels.act_``: one pass over the tensor)."""
    pixel_kernels.act_(a.numpy())
    return a


class _Affine:
    """rshift(W [x; extras] + b * 2^S, frac) for (in, P) inputs.

    Evaluated as floor((W / 2^frac) x + (b * 2^S / 2^frac + 1/2)): the power-of-two scaling and the
    rounding half are folded into the weights and bias, so one addmm and one floor replace a
    matmul and four array passes. Exact: only the exponents of the operands change."""

    def __init__(self, weight: torch.Tensor, frac: int, bias: torch.Tensor | None = None, n_first: int | None = None) -> None:
        scale = 0.5**frac
        scaled = weight.reshape(weight.shape[0], -1) * scale
        n_first = scaled.shape[1] if n_first is None else n_first
        self.first, self.rest = scaled[:, :n_first].contiguous(), scaled[:, n_first:].contiguous()
        base = bias * (_ONE * scale) if bias is not None else torch.zeros(weight.shape[0], dtype=torch.float64)
        self.bias = (base + 0.5).view(-1, 1)

    def __call__(self, x: torch.Tensor, *extras: torch.Tensor) -> torch.Tensor:
        """``extras``: the rows after x, in blocks; only as many rows as the weights have columns
        are read."""
        acc = torch.addmm(self.bias, self.first, x)
        column = 0
        for extra in extras:
            n = min(extra.shape[0], self.rest.shape[1] - column)
            if n <= 0:
                break
            acc.addmm_(self.rest[:, column : column + n], extra[:n])
            column += n
        return acc.floor_()


def _residual_conv3x3_into(out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                           frac: int) -> None:
    """out = x + act(rshift(conv3x3(x; weight) + bias * 2^S, frac)), bounded, for x and out
    (C, H, W), C-contiguous: the residual blocks of docs/FORMAT.md 3.4 step 2 (repeated-edge
    padding, no kernel flip)."""
    scale = 0.5**frac
    padded = pixel_kernels.edge_padded(x.numpy(), 1)
    pixel_kernels.conv3x3_residual_into(out.numpy(), padded, x.numpy(), np.ascontiguousarray(weight.numpy() * scale),
                                        bias.numpy() * (_ONE * scale) + 0.5)


def _upsample(u: torch.Tensor, kernel: torch.Tensor, frac: int, out_hw: tuple[int, int]) -> torch.Tensor:
    """2x transposed convolution of (c, h, w) to (c, H, W), rounded and bounded."""
    out = torch.empty(u.shape[0], *out_hw, dtype=torch.float64)
    _upsample_into(out, u, kernel, frac)
    return out


def _upsample_into(out: torch.Tensor, u: torch.Tensor, kernel: torch.Tensor, frac: int) -> None:
    """``_upsample`` written into ``out`` (c, H, W), a C-contiguous tensor or view."""
    padded = pixel_kernels.edge_padded(u.numpy(), UPSAMPLE_PAD)
    pixel_kernels.upsample_into(out.numpy(), padded, np.ascontiguousarray(kernel.numpy()), 0.5**frac)


def reconstruct(
    latents: list[np.ndarray],
    nets: QuantizedNetworks,
    random_weights: list[np.ndarray],
    mask: np.ndarray,
    height: int,
    width: int,
    bit_depth: int = 8,
    chroma_420: bool = False,
    prediction: list[np.ndarray] | None = None,
    zero_response: list[torch.Tensor] | None = None,
    *,
    n_levels: int,
) -> list[np.ndarray]:
    """Integer latents -> C planes, uint8 (or uint16 above 8 bits). With ``chroma_420`` channels 1
    and 2 become ceil(H/2) x ceil(W/2) chroma planes (2x2 integer average, see lotto_media.model.chroma).

    With a ``prediction`` (a predicted frame's motion-compensated reference, in the output's
    layout) the synthesis makes a residual instead of a picture: its output less its output for
    all-zero latents (``zero_response``, computed here when not given), so that zero latents copy
    the prediction (docs/FORMAT.md, Part 3 §3.6).

    ``n_levels``: the pyramid's levels among the latents; a latent grid after them is the second
    full-resolution grid (``ModelConfig.fine_grids``)."""
    planes = synthesis_output(latents, nets, random_weights, mask, height, width, chroma_420, n_levels=n_levels)
    peak = (1 << bit_depth) - 1
    dtype = np.uint8 if bit_depth <= 8 else np.uint16
    if prediction is None:
        return [_to_samples_(plane, peak).numpy().astype(dtype) for plane in planes]
    if len(prediction) != len(planes) or any(p.shape != tuple(q.shape) for p, q in zip(prediction, planes)):
        raise ValueError("the prediction's planes do not match the picture's")
    if zero_response is None:
        zero_response = synthesis_output([np.zeros_like(z) for z in latents], nets, random_weights, mask, height,
                                         width, chroma_420, n_levels=n_levels)
    return [
        _add_residual_(plane.sub_(zero), ref, peak).numpy().astype(dtype)
        for plane, zero, ref in zip(planes, zero_response, prediction)
    ]


def synthesis_output(
    latents: list[np.ndarray],
    nets: QuantizedNetworks,
    random_weights: list[np.ndarray],
    mask: np.ndarray,
    height: int,
    width: int,
    chroma_420: bool = False,
    *,
    n_levels: int,
) -> list[torch.Tensor]:
    """The synthesis' fixed-point output planes (SYNTH_FRAC bits, float64 holding integers), 4:2:0
    chroma already reduced: what ``reconstruct`` maps to samples. ``n_levels`` as ``reconstruct``'s."""
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))  # noqa: E731
    (kernel,) = [t(a) for a in nets.upsampler.exact()]
    if not n_levels <= len(latents) <= n_levels + 1:
        raise ValueError(f"{len(latents)} latent grids for a pyramid of {n_levels} levels")
    second_grid = latents[n_levels] if len(latents) > n_levels else None

    def channels(k: int) -> int:
        """U_k's channels: levels k..L-1, and at full resolution the second grid after them
        (docs/FORMAT.md 3.4 step 1)."""
        return n_levels - k + (k == 0 and second_grid is not None)

    # each U_k filled in place rather than concatenated: a concatenation would hold both copies
    u = None
    for k in reversed(range(n_levels)):
        finer = torch.empty(channels(k), *latents[k].shape, dtype=torch.float64)
        torch.mul(t(latents[k]), _ONE, out=finer[0])
        if u is not None:
            _upsample_into(finer[1 : u.shape[0] + 1], u, kernel, nets.upsampler.frac)
        u = finer
    if second_grid is not None:
        torch.mul(t(second_grid), _ONE, out=u[n_levels])
    pixels = height * width
    features = u.reshape(u.shape[0], pixels)
    tiles = [slice(start, min(start + TILE, pixels)) for start in range(0, pixels, TILE)]

    w0, b0, w1, b1, wr2, br2, wr3, br3 = [t(a) for a in nets.modulation.exact()]
    mf = nets.modulation.frac
    fc0, fc1 = _Affine(w0, mf, b0), _Affine(w1, mf, b1)
    # [o3; o2; o1] in one tensor: synthesis layers 2..4 read its first 6, then all 9 rows after
    # their hidden input, without a concatenation
    modulations = torch.empty(9, pixels, dtype=torch.float64)
    o3, o2, o1 = modulations[0:3], modulations[3:6], modulations[6:9]
    for tile in tiles:
        o1[:, tile] = _act_(fc1(_act_(fc0(features[:, tile]))))
    _residual_conv3x3_into(o2.view(3, height, width), o1.view(3, height, width), wr2, br2, mf)
    _residual_conv3x3_into(o3.view(3, height, width), o2.view(3, height, width), wr3, br3, mf)

    layers, start = [], 0
    flat_mask = np.asarray(mask, dtype=bool)
    for w in random_weights:
        layers.append(t(np.where(flat_mask[start : start + w.size].reshape(w.shape), w, 0)))
        start += w.size
    first = _Affine(layers[0], WEIGHT_FRAC)
    # layers 2..4 read [hidden; o3, o2, ...]: their weights split after the hidden columns
    rewound = [_Affine(w, WEIGHT_FRAC, n_first=width_in) for w, width_in in zip(layers[1:], (w.shape[0] for w in layers[:-1]))]
    # coordinates per tile (those of the picture would be 16 bytes a pixel, held throughout)
    xs, ys = t(coordinate_axis(width)), t(coordinate_axis(height))
    out = torch.empty(layers[3].shape[0], pixels, dtype=torch.float64)
    for tile in tiles:
        o0 = _act_(fc0(features[:, tile]))  # recomputed: cheaper than keeping 24 rows a pixel
        mods = modulations[:, tile]
        index = torch.arange(tile.start, tile.stop)
        h = _act_(first(torch.stack([xs[index % width], ys[index // width]])))
        h = _act_(rewound[0](h, mods))
        h = _act_(rewound[1](h, mods))
        out[:, tile] = rewound[2](h, mods, o0)
    planes = list(out.view(-1, height, width))
    if chroma_420:
        # Averaging the fixed-point outputs (S fraction bits), not the samples, leaves the rounding
        # to the bit depth as chroma's only coarse rounding, as for luma.
        planes[1:] = list(chroma.integer_downsample(out.view(-1, height, width)[1:]))
    return planes


def _to_samples_(x: torch.Tensor, peak: int) -> torch.Tensor:
    """In place: fixed-point synthesis output -> clamp(floor((x + 2^S) * peak / 2^(S+1) + 1/2), 0, peak)."""
    return x.add_(_ONE).mul_(peak * 0.5 ** (SYNTH_FRAC + 1)).add_(0.5).floor_().clamp_(0, peak)


def _add_residual_(x: torch.Tensor, reference: np.ndarray, peak: int) -> torch.Tensor:
    """In place: fixed-point residual x -> clamp(reference + floor(x * peak / 2^(S+1) + 1/2), 0, peak):
    the residual scale is that of a picture (``_to_samples_``) without its mid-grey offset."""
    x.mul_(peak * 0.5 ** (SYNTH_FRAC + 1)).add_(0.5).floor_()
    return x.add_(torch.from_numpy(reference.astype(np.float64))).clamp_(0, peak)
