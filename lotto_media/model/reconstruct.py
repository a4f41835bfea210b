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
from .latents import UPSAMPLE_PAD, polyphase_taps, replicate_pad
from .synthesis import SYNTH_FRAC, coordinate_axis
from ..coding.params import QuantizedNetworks
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


_ACT_SCALE = 0.5 ** (SYNTH_FRAC + 2)
_HALF = torch.tensor(0.5, dtype=torch.float64)


def _act_(a: torch.Tensor) -> torch.Tensor:
    """x * clamp(x + 2, 0, 4) / 4 on SYNTH_FRAC fixed point, rounded half up, bounded.

    floor(1/2 + 2^-(S+2) * x * t) in one addcmul: the product is an integer below 2^53 and the
    scaling a power of two, so this is exact (and equal to scaling, adding and flooring apart)."""
    t = (a + 2 * _ONE).clamp_(0.0, 4 * _ONE)
    return _bound_(torch.addcmul(_HALF, a, t, value=_ACT_SCALE, out=t).floor_())


class _Affine:
    """rshift(W [x; extra] + b * 2^S, frac) for (in, P) inputs.

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

    def __call__(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        acc = torch.addmm(self.bias, self.first, x)
        if extra is not None:
            acc.addmm_(self.rest, extra[: self.rest.shape[1]])
        return acc.floor_()


#: (dy, dx) of the 3x3 taps in the row order of the convolution's unrolled weights
_TAPS_3X3 = tuple((dy, dx) for dy in range(3) for dx in range(3))


def _conv3x3(img: torch.Tensor, layer: _Affine) -> torch.Tensor:
    """(C, H, W) -> (C, H*W) with repeated-edge padding, as in training. PyTorch's float64
    convolution on CPU is a slow reference loop; nine shifted windows and a matmul are BLAS. Row
    bands bound the unrolled windows to about TILE pixels."""
    c, h, w = img.shape
    padded = replicate_pad(img, 1)
    out = torch.empty(layer.first.shape[0], h * w, dtype=torch.float64)
    band = max(1, TILE // w)
    for r0 in range(0, h, band):
        r1 = min(h, r0 + band)
        windows = torch.stack([padded[:, r0 + dy : r1 + dy, dx : dx + w] for dy, dx in _TAPS_3X3])
        out[:, r0 * w : r1 * w] = layer(windows.reshape(9 * c, -1))
    return out


def _upsample(u: torch.Tensor, kernel: torch.Tensor, frac: int, out_hw: tuple[int, int]) -> torch.Tensor:
    """2x transposed convolution of (c, h, w) to (c, H, W), rounded and bounded."""
    out = torch.empty(u.shape[0], *out_hw, dtype=torch.float64)
    _upsample_into(out, u, kernel, frac)
    return out


def _upsample_into(out: torch.Tensor, u: torch.Tensor, kernel: torch.Tensor, frac: int) -> None:
    """``_upsample`` written into ``out`` (c, H, W), which may be a view.

    Four 4x4 polyphase filters evaluated with one matmul: PyTorch has no fast float64 convolution
    on CPU, BLAS has a fast float64 matmul. Each output parity (a, b) is a 4x4 correlation of the
    padded grid with taps K[a+6-2m, b+6-2n]; the four phases interleave into the output shifted
    by one sample (a test checks this equals the transposed convolution of docs/FORMAT.md). The
    16 shifted windows cost 24 float64 per output sample, so they are made for a band of rows at
    a time (each sample is an exact integer sum, whatever the banding)."""
    c, h, w = u.shape
    height, width = out.shape[1:]
    x = replicate_pad(u, UPSAMPLE_PAD)  # (c, h+4, w+4)
    taps = polyphase_taps(kernel)  # (4 phases, 16), shared with training
    band = max(1, TILE // (w + 1))
    for i0 in range(0, h + 1, band):  # phase rows i0..i1-1 make output rows 2 i0 - 1 .. 2 i1 - 2
        i1 = min(h + 1, i0 + band)
        windows = F.unfold(x[:, i0 : i1 + 3].unsqueeze(1), kernel_size=4)  # (c, 16, (i1-i0)*(w+1))
        phases = (taps @ windows).view(c, 2, 2, i1 - i0, w + 1).permute(0, 3, 1, 4, 2)
        phases = phases.reshape(c, 2 * (i1 - i0), 2 * w + 2)
        first, stop = max(2 * i0, 1), min(2 * i1, height + 1)
        if first < stop:
            out[:, first - 1 : stop - 1] = phases[:, first - 2 * i0 : stop - 2 * i0, 1 : 1 + width]
    _bound_(_rshift_(out, frac))


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
) -> list[np.ndarray]:
    """Integer latents -> C planes, uint8 (or uint16 above 8 bits). With ``chroma_420`` channels 1
    and 2 become ceil(H/2) x ceil(W/2) chroma planes (2x2 integer average, see lotto_media.model.chroma).

    With a ``prediction`` (a predicted frame's motion-compensated reference, in the output's
    layout) the synthesis makes a residual instead of a picture: its output less its output for
    all-zero latents (``zero_response``, computed here when not given), so that zero latents copy
    the prediction (docs/FORMAT.md, Part 3 §3.6)."""
    planes = synthesis_output(latents, nets, random_weights, mask, height, width, chroma_420)
    peak = (1 << bit_depth) - 1
    dtype = np.uint8 if bit_depth <= 8 else np.uint16
    if prediction is None:
        return [_to_samples_(plane, peak).numpy().astype(dtype) for plane in planes]
    if len(prediction) != len(planes) or any(p.shape != tuple(q.shape) for p, q in zip(prediction, planes)):
        raise ValueError("the prediction's planes do not match the picture's")
    if zero_response is None:
        zero_response = synthesis_output([np.zeros_like(z) for z in latents], nets, random_weights, mask, height,
                                         width, chroma_420)
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
) -> list[torch.Tensor]:
    """The synthesis' fixed-point output planes (SYNTH_FRAC bits, float64 holding integers), 4:2:0
    chroma already reduced: what ``reconstruct`` maps to samples."""
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))  # noqa: E731
    (kernel,) = [t(a) for a in nets.upsampler.exact()]
    u = t(latents[-1])[None] * _ONE
    for level in reversed(latents[:-1]):
        # filled in place rather than concatenated: a concatenation would hold both copies
        finer = torch.empty(u.shape[0] + 1, *level.shape, dtype=torch.float64)
        torch.mul(t(level), _ONE, out=finer[0])
        _upsample_into(finer[1:], u, kernel, nets.upsampler.frac)
        u = finer
    pixels = height * width
    features = u.reshape(u.shape[0], pixels)
    tiles = [slice(start, min(start + TILE, pixels)) for start in range(0, pixels, TILE)]

    w0, b0, w1, b1, wr2, br2, wr3, br3 = [t(a) for a in nets.modulation.exact()]
    mf = nets.modulation.frac
    fc0, fc1 = _Affine(w0, mf, b0), _Affine(w1, mf, b1)
    # the 3x3 weights (out, in, ky, kx) unrolled as (out, tap, in) to match the stacked windows
    res2, res3 = (_Affine(wr.permute(0, 2, 3, 1), mf, br) for wr, br in ((wr2, br2), (wr3, br3)))
    o1 = torch.empty(3, pixels, dtype=torch.float64)
    for tile in tiles:
        o1[:, tile] = _act_(fc1(_act_(fc0(features[:, tile]))))
    # the residual sums in place in the activation's own tensor: two picture-sized copies fewer
    o2 = _bound_(_act_(_conv3x3(o1.view(3, height, width), res2)).add_(o1))
    o3 = _bound_(_act_(_conv3x3(o2.view(3, height, width), res3)).add_(o2))

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
        o0 = _act_(fc0(features[:, tile]))  # recomputed: cheaper than keeping 48 rows
        rewind = torch.cat([o3[:, tile], o2[:, tile], o1[:, tile], o0], dim=0)  # layers 2..4 read 6, 9, all rows
        index = torch.arange(tile.start, tile.stop)
        h = _act_(first(torch.stack([xs[index % width], ys[index // width]])))
        h = _act_(rewound[0](h, rewind))
        h = _act_(rewound[1](h, rewind))
        out[:, tile] = rewound[2](h, rewind)
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
