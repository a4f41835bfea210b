"""The decoder's picture: latents -> pixels in exact integer (fixed-point) arithmetic.

Encoder and decoder both call ``reconstruct``; because every intermediate value is an integer
below 2^53 held in float64, each operation is exact whatever the summation order, so the result
is bit-identical on any machine, thread count or SIMD path, and equals what the encoder reports. Tensors are channels-first (C, H*W) torch
float64 and updated in place where possible: the decoder's cost is mostly memory traffic.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import chroma
from .latents import UPSAMPLE_PAD, replicate_pad
from .model import SYNTH_FRAC, pixel_coordinates
from .params import QuantizedNetworks
from .random_weights import WEIGHT_FRAC

#: stored activations are clamped to +-2^ACT_LIMIT_BITS: with weights below 2^16 and fan-ins
#: below 2^11, every product and partial sum stays below 2^53
ACT_LIMIT_BITS = 26
_ONE = float(1 << SYNTH_FRAC)
_LIMIT = float(1 << ACT_LIMIT_BITS)


#: pixels per tile of the per-pixel networks: tiles stay in cache and avoid huge allocations
TILE = 8192


def _rshift_(x: torch.Tensor, bits: int) -> torch.Tensor:
    """In place: floor(x / 2^bits + 1/2)."""
    if bits:
        x.mul_(0.5**bits)
    return x.add_(0.5).floor_()


def _bound_(x: torch.Tensor) -> torch.Tensor:
    """In place: clamp a stored activation to +-2^ACT_LIMIT_BITS so that every later product and
    sum stays an exact integer in float64."""
    return x.clamp_(-_LIMIT, _LIMIT)


def _act_(a: torch.Tensor) -> torch.Tensor:
    """In place: x * clamp(x + 2, 0, 4) / 4 on SYNTH_FRAC fixed point, rounded half up, bounded."""
    t = (a + 2 * _ONE).clamp_(0.0, 4 * _ONE)
    a.mul_(t)
    return _bound_(_rshift_(a, SYNTH_FRAC + 2))


def _linear(x: torch.Tensor, weight: torch.Tensor, weight_frac: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """(in, P) -> (out, P): rshift(W x + b * 2^S, weight_frac)."""
    acc = weight @ x
    if bias is not None:
        acc.add_(bias.view(-1, 1) * _ONE)
    return _rshift_(acc, weight_frac)


def _rewound(weight: torch.Tensor, hidden: torch.Tensor, rewind: torch.Tensor, weight_frac: int) -> torch.Tensor:
    """weight @ [hidden; rewind[:k]] without building the concatenation (exact either way)."""
    n_hidden = hidden.shape[0]
    acc = weight[:, :n_hidden] @ hidden
    acc.addmm_(weight[:, n_hidden:], rewind[: weight.shape[1] - n_hidden])
    return _rshift_(acc, weight_frac)


def _conv3x3(img: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, frac: int) -> torch.Tensor:
    """(C, H, W) -> (C, H, W), repeated-edge padding, as in training."""
    x = replicate_pad(img, 1).unsqueeze(0)
    acc = F.conv2d(x, weight, bias * _ONE)[0]
    return _rshift_(acc, frac)


def _upsample(u: torch.Tensor, kernel: torch.Tensor, frac: int, out_hw: tuple[int, int]) -> torch.Tensor:
    """2x transposed convolution as four 4x4 polyphase filters evaluated with one matmul: PyTorch
    has no fast float64 convolution on CPU, BLAS has a fast float64 matmul."""
    c, h, w = u.shape
    x = replicate_pad(u, UPSAMPLE_PAD)  # (c, h+4, w+4)
    # Each output parity (a, b) is a 4x4 correlation of the padded grid with taps K[a+6-2m, b+6-2n];
    # the four phases interleave into the output shifted by one sample. A test checks this equals
    # the transposed convolution of docs/FORMAT.md.
    windows = F.unfold(x.unsqueeze(1), kernel_size=4)  # (c, 16, (h+1)*(w+1))
    taps = torch.stack(
        [kernel[a + 6 - 2 * torch.arange(4)][:, b + 6 - 2 * torch.arange(4)].reshape(16) for a in (0, 1) for b in (0, 1)]
    )  # (4 phases, 16)
    phases = taps @ windows  # (c, 4, (h+1)*(w+1))
    phases = phases.view(c, 2, 2, h + 1, w + 1).permute(0, 3, 1, 4, 2).reshape(c, 2 * h + 2, 2 * w + 2)
    out = phases[:, 1 : 1 + out_hw[0], 1 : 1 + out_hw[1]].contiguous()
    return _bound_(_rshift_(out, frac))


def reconstruct(
    latents: list[np.ndarray],
    nets: QuantizedNetworks,
    random_weights: list[np.ndarray],
    mask: np.ndarray,
    height: int,
    width: int,
    bit_depth: int = 8,
    chroma_420: bool = False,
) -> list[np.ndarray]:
    """Integer latents -> C planes, uint8 (or uint16 above 8 bits). With ``chroma_420`` channels 1
    and 2 become ceil(H/2) x ceil(W/2) chroma planes (2x2 integer average, see lotto_media.chroma)."""
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))  # noqa: E731
    (kernel,) = [t(a) for a in nets.upsampler.exact()]
    u = t(latents[-1])[None] * _ONE
    for level in reversed(latents[:-1]):
        up = _upsample(u, kernel, nets.upsampler.frac, level.shape)
        u = torch.cat([t(level)[None] * _ONE, up], dim=0)
    pixels = height * width
    features = u.reshape(u.shape[0], pixels)
    tiles = [slice(start, min(start + TILE, pixels)) for start in range(0, pixels, TILE)]

    w0, b0, w1, b1, wr2, br2, wr3, br3 = [t(a) for a in nets.modulation.exact()]
    mf = nets.modulation.frac
    o1 = torch.empty(3, pixels, dtype=torch.float64)
    for tile in tiles:
        o1[:, tile] = _act_(_linear(_act_(_linear(features[:, tile], w0, mf, b0)), w1, mf, b1))
    o2 = _bound_(o1 + _act_(_conv3x3(o1.view(3, height, width), wr2, br2, mf)).view(3, pixels))
    o3 = _bound_(o2 + _act_(_conv3x3(o2.view(3, height, width), wr3, br3, mf)).view(3, pixels))

    layers, start = [], 0
    flat_mask = np.asarray(mask, dtype=bool)
    for w in random_weights:
        layers.append(t(np.where(flat_mask[start : start + w.size].reshape(w.shape), w, 0)))
        start += w.size
    coords = t(pixel_coordinates(height, width).T)
    peak = (1 << bit_depth) - 1
    out = torch.empty(layers[3].shape[0], pixels, dtype=torch.float64)
    for tile in tiles:
        o0 = _act_(_linear(features[:, tile], w0, mf, b0))  # recomputed: cheaper than keeping 48 rows
        rewind = torch.cat([o3[:, tile], o2[:, tile], o1[:, tile], o0], dim=0)  # layers 2..4 read 6, 9, all rows
        h = _act_(_linear(coords[:, tile], layers[0], WEIGHT_FRAC))
        h = _act_(_rewound(layers[1], h, rewind, WEIGHT_FRAC))
        h = _act_(_rewound(layers[2], h, rewind, WEIGHT_FRAC))
        out[:, tile] = _rewound(layers[3], h, rewind, WEIGHT_FRAC)
    planes = list(out.view(-1, height, width))
    if chroma_420:
        # Averaging the fixed-point outputs (S fraction bits), not the samples, leaves the rounding
        # to the bit depth as chroma's only coarse rounding, as for luma.
        planes[1:] = list(chroma.integer_downsample(out.view(-1, height, width)[1:]))
    dtype = np.uint8 if bit_depth <= 8 else np.uint16
    return [_to_samples_(plane, peak).numpy().astype(dtype) for plane in planes]


def _to_samples_(x: torch.Tensor, peak: int) -> torch.Tensor:
    """In place: fixed-point synthesis output -> clamp(floor((x + 2^S) * peak / 2^(S+1) + 1/2), 0, peak)."""
    return x.add_(_ONE).mul_(peak * 0.5 ** (SYNTH_FRAC + 1)).add_(0.5).floor_().clamp_(0, peak)
