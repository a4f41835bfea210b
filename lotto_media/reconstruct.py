"""The decoder's picture: latents -> pixels in exact integer (fixed-point) arithmetic.

Encoder and decoder both call ``reconstruct``; because every intermediate value is an integer
below 2^53 held in float64 (see ``exact``), the result is bit-identical on any machine, thread
count or SIMD path, and equals what the encoder reports.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .config import ModelConfig
from .exact import clamp_exact, rescale
from .latents import UPSAMPLE_CROP, UPSAMPLE_PAD
from .model import SYNTH_FRAC, pixel_coordinates
from .params import QuantizedNetworks
from .random_weights import WEIGHT_FRAC

_ONE = float(1 << SYNTH_FRAC)


def activation_exact(a: np.ndarray) -> np.ndarray:
    """x * clamp(x + 2, 0, 4) / 4 on SYNTH_FRAC fixed point, rounded half up."""
    t = np.clip(a + 2 * _ONE, 0.0, 4 * _ONE)
    return np.floor(a * t * (0.5 ** (SYNTH_FRAC + 2)) + 0.5)


def _linear(x: np.ndarray, weight: np.ndarray, weight_frac: int, bias: np.ndarray | None = None) -> np.ndarray:
    acc = clamp_exact(x) @ weight.T
    if bias is not None:
        acc = acc + bias * _ONE
    return rescale(acc, SYNTH_FRAC + weight_frac, SYNTH_FRAC)


def _conv3x3(img: np.ndarray, weight: np.ndarray, bias: np.ndarray, frac: int) -> np.ndarray:
    """(C, H, W) fixed point -> (C, H, W), replicate padding, as in training."""
    x = torch.from_numpy(clamp_exact(img)).unsqueeze(0)
    x = F.pad(x, (1, 1, 1, 1), mode="replicate")
    acc = F.conv2d(x, torch.from_numpy(weight), torch.from_numpy(bias * _ONE))[0].numpy()
    return rescale(acc, SYNTH_FRAC + frac, SYNTH_FRAC)


def _upsample(u: np.ndarray, kernel: np.ndarray, frac: int, out_hw: tuple[int, int]) -> np.ndarray:
    x = torch.from_numpy(clamp_exact(u)).unsqueeze(1)
    x = F.pad(x, (UPSAMPLE_PAD,) * 4, mode="replicate")
    k = torch.from_numpy(kernel).view(1, 1, *kernel.shape)
    up = F.conv_transpose2d(x, k, stride=2, padding=UPSAMPLE_CROP)[:, 0, : out_hw[0], : out_hw[1]].numpy()
    return rescale(up, SYNTH_FRAC + frac, SYNTH_FRAC)


def reconstruct(
    latents: list[np.ndarray],
    nets: QuantizedNetworks,
    random_weights: list[np.ndarray],
    mask: np.ndarray,
    config: ModelConfig,
    height: int,
    width: int,
    bit_depth: int = 8,
) -> np.ndarray:
    """Integer latents -> (C, H, W) uint8 (or uint16) planes."""
    (kernel,) = nets.upsampler.exact()
    u = latents[-1][None].astype(np.float64) * _ONE
    for level in reversed(latents[:-1]):
        up = _upsample(u, kernel, nets.upsampler.frac, level.shape)
        u = np.concatenate([level[None].astype(np.float64) * _ONE, up], axis=0)
    features = u.reshape(u.shape[0], -1).T

    w0, b0, w1, b1, wr2, br2, wr3, br3 = nets.modulation.exact()
    mf = nets.modulation.frac
    o0 = activation_exact(_linear(features, w0, mf, b0))
    o1 = activation_exact(_linear(o0, w1, mf, b1))
    img1 = np.ascontiguousarray(o1.T.reshape(3, height, width))
    img2 = img1 + activation_exact(_conv3x3(img1, wr2, br2, mf))
    img3 = img2 + activation_exact(_conv3x3(img2, wr3, br3, mf))
    o2 = img2.reshape(3, -1).T
    o3 = img3.reshape(3, -1).T

    layers, start = [], 0
    flat_mask = np.asarray(mask, dtype=bool)
    for w in random_weights:
        layers.append(np.where(flat_mask[start : start + w.size].reshape(w.shape), w, 0).astype(np.float64))
        start += w.size
    coords = pixel_coordinates(height, width).astype(np.float64)
    h = activation_exact(_linear(coords, layers[0], WEIGHT_FRAC))
    h = activation_exact(_linear(np.concatenate([h, o3, o2], axis=1), layers[1], WEIGHT_FRAC))
    h = activation_exact(_linear(np.concatenate([h, o3, o2, o1], axis=1), layers[2], WEIGHT_FRAC))
    out = _linear(np.concatenate([h, o3, o2, o1, o0], axis=1), layers[3], WEIGHT_FRAC)
    peak = (1 << bit_depth) - 1
    pixels = np.clip(np.floor((out + _ONE) * peak * (0.5 ** (SYNTH_FRAC + 1)) + 0.5), 0, peak)
    dtype = np.uint8 if bit_depth <= 8 else np.uint16
    return np.ascontiguousarray(pixels.T.reshape(-1, height, width)).astype(dtype)
