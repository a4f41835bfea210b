"""Exact integer arithmetic carried in float64 arrays.

The decoder works on integers that encode fixed-point numbers. Holding them in float64 keeps
BLAS and PyTorch convolutions available, and as long as every product and partial sum is an
integer below 2^53 in magnitude, each operation is exact, so the result does not depend on the
summation order, the thread count or the SIMD path. Magnitudes are bounded by ``clamp_exact``.
"""

from __future__ import annotations

import numpy as np

#: activations are clamped to +-2^ACT_LIMIT_BITS integer units before each multiply-accumulate
ACT_LIMIT_BITS = 26


def rescale(x: np.ndarray, from_frac: int, to_frac: int) -> np.ndarray:
    """Change the number of fractional bits, rounding half up when bits are dropped."""
    if from_frac > to_frac:
        return np.floor(x * (0.5 ** (from_frac - to_frac)) + 0.5)
    if from_frac < to_frac:
        return x * float(1 << (to_frac - from_frac))
    return x


def clamp_exact(x: np.ndarray) -> np.ndarray:
    limit = float(1 << ACT_LIMIT_BITS)
    return np.clip(x, -limit, limit)
