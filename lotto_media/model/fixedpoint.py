"""Integer-only cos, exp(-x) and square roots (defined in docs/FORMAT.md "Random network").

Anything the decoder computes must be bit-identical on every machine, and float transcendental
functions (libm, numpy's SIMD kernels) are not. These helpers use only int64 additions,
multiplications, arithmetic right shifts and masks, with hard-coded polynomial coefficients, so
their output is fixed by this file. Right shifts of negative numbers floor (numpy's int64 ``>>`` is
arithmetic), and "rounding shift by s" always means ``(v + 2^(s-1)) >> s`` (round half up).

The polynomial coefficients were fitted once (least squares, then rounded to integers) and are
part of the format: changing one changes decoded output.
"""

from __future__ import annotations

import math

import numpy as np

# --- cos -----------------------------------------------------------------------------------

COS_FRAC = 30  # internal fixed point of the quarter-wave polynomial
# cos(pi/2 * x) ~= sum_k COS_COEFFS[k] * u^k / 2^30 with u = x^2, x in [0, 1].
# COS_COEFFS[0] is exactly 2^30 (cos 0 = 1) and the coefficients sum to exactly 0, so the
# polynomial gives exactly 0 at x = 1 (cos pi/2 = 0). Max error about 2^-38 before rounding.
COS_COEFFS = (1073741824, -1324675878, 272375559, -22401986, 987030, -27032, 483)
COS_MAX_PHASE_BITS = 32
COS_MAX_OUT_FRAC = 24


def cos_fixed(phase: np.ndarray, phase_bits: int, out_frac: int) -> np.ndarray:
    """round(cos(2*pi*phase / 2^phase_bits) * 2^out_frac), within +-2 units, integer only.

    ``phase`` is any int64 array (reduced modulo 2^phase_bits, negatives included);
    2 <= phase_bits <= 32, 0 <= out_frac <= 24. Exact at multiples of a quarter turn.
    """
    if not 2 <= phase_bits <= COS_MAX_PHASE_BITS:
        raise ValueError(f"phase_bits must be in 2..{COS_MAX_PHASE_BITS}, got {phase_bits}")
    if not 0 <= out_frac <= COS_MAX_OUT_FRAC:
        raise ValueError(f"out_frac must be in 0..{COS_MAX_OUT_FRAC}, got {out_frac}")
    p = np.asarray(phase, dtype=np.int64) & np.int64((1 << phase_bits) - 1)
    quarter_bits = phase_bits - 2
    quarter = np.int64(1 << quarter_bits)
    quadrant = p >> np.int64(quarter_bits)
    r = p & (quarter - np.int64(1))
    # cos is even about 0 and pi and odd about pi/2, so every quadrant reads the same quarter wave:
    # quadrants 1 and 3 run it backwards (sin theta = cos(pi/2 - theta)), 1 and 2 negate it.
    odd = (quadrant & np.int64(1)) == 1
    r = np.where(odd, quarter - r, r)
    negative = (quadrant == 1) | (quadrant == 2)
    # x = r / quarter in COS_FRAC bits: exact, as quarter_bits <= 30.
    x = r << np.int64(COS_FRAC - quarter_bits)
    # x <= 2^30, so x*x <= 2^60: no int64 overflow.
    u = rounding_shift(x * x, COS_FRAC)
    acc = np.full_like(u, COS_COEFFS[-1])
    for coeff in COS_COEFFS[-2::-1]:
        # Every partial Horner sum is below 1.6 * 2^30 and u <= 2^30, so acc*u < 2^61.
        acc = np.int64(coeff) + rounding_shift(acc * u, COS_FRAC)
    magnitude = np.clip(acc, 0, 1 << COS_FRAC)
    magnitude = rounding_shift(magnitude, COS_FRAC - out_frac)
    return np.where(negative, -magnitude, magnitude)


# --- exp(-x) -------------------------------------------------------------------------------

EXP_FRAC = 31  # fraction bits of the exponent's fractional part f
EXP_ACC_FRAC = 32  # fixed point of the 2^-f polynomial's value (one more bit of headroom than f)
LOG2E_FRAC = 38
LOG2E_Q = 396564993198  # round(log2(e) * 2^38)
# 2^-f ~= sum_k EXP2_COEFFS[k] * f^k / 2^32 for f in [0, 1); EXP2_COEFFS[0] = 2^32 exactly.
# Max error about 2^-34.8 before rounding.
EXP2_COEFFS = (4294967296, -2977044460, 1031764701, -238385821, 41299193, -5703695, 633067, -46634)
EXP_MAX_IN_FRAC = 16
EXP_MAX_OUT_FRAC = 30
# exp(-64) * 2^30 is about 1.7e-19: every input at or beyond 64 rounds to 0, so clamp there.
EXP_ZERO_FROM = 64


def exp_neg_fixed(x: np.ndarray, in_frac: int, out_frac: int) -> np.ndarray:
    """round(exp(-x / 2^in_frac) * 2^out_frac) within +-2 units, for int64 x >= 0, integer only.

    0 <= in_frac <= 16, 0 <= out_frac <= 30; any x up to the int64 limit (large x give 0).
    Exact at x = 0 (gives 2^out_frac) and non-increasing in x.
    """
    if not 0 <= in_frac <= EXP_MAX_IN_FRAC:
        raise ValueError(f"in_frac must be in 0..{EXP_MAX_IN_FRAC}, got {in_frac}")
    if not 0 <= out_frac <= EXP_MAX_OUT_FRAC:
        raise ValueError(f"out_frac must be in 0..{EXP_MAX_OUT_FRAC}, got {out_frac}")
    v = np.asarray(x, dtype=np.int64)
    if np.any(v < 0):
        raise ValueError("exp_neg_fixed needs x >= 0")
    limit = np.int64(EXP_ZERO_FROM << in_frac)
    underflow = v >= limit
    v = np.minimum(v, limit)
    # v <= 2^22 and LOG2E_Q < 2^39, so t < 2^61. t = v * log2(e) with in_frac + 38 fraction bits.
    t = v * np.int64(LOG2E_Q)
    t = rounding_shift(t, in_frac + LOG2E_FRAC - EXP_FRAC)  # now EXP_FRAC fraction bits
    whole = t >> np.int64(EXP_FRAC)
    frac = t & np.int64((1 << EXP_FRAC) - 1)
    acc = np.full_like(frac, EXP2_COEFFS[-1])
    for coeff in EXP2_COEFFS[-2::-1]:
        # Partial Horner sums below the constant term are at most ln(2) * 2^32 in magnitude and
        # frac < 2^31, so every product is below 0.7 * 2^63: no int64 overflow.
        acc = np.int64(coeff) + rounding_shift(acc * frac, EXP_FRAC)
    # acc ~ 2^-frac * 2^32; the result is acc * 2^(out_frac - 32 - whole), rounded.
    # The shift is >= 2 since out_frac <= 30; beyond 62 the result is 0 anyway (acc <= 2^32).
    shift = np.minimum(whole + np.int64(EXP_ACC_FRAC - out_frac), np.int64(62))
    result = (acc + (np.int64(1) << (shift - np.int64(1)))) >> shift
    return np.where(underflow, np.int64(0), result)


# --- helpers -------------------------------------------------------------------------------


def rounding_shift(value: np.ndarray, shift: int) -> np.ndarray:
    """Round-half-up division by 2^shift: ``(value + 2^(shift-1)) >> shift`` (floor shift)."""
    if shift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}")
    v = np.asarray(value, dtype=np.int64)
    if shift == 0:
        return v
    return (v + np.int64(1 << (shift - 1))) >> np.int64(shift)


def round_div(numerator: int, denominator: int) -> int:
    """Round-half-up integer division ``floor(n / d + 1/2)`` on Python ints, d > 0."""
    if denominator <= 0:
        raise ValueError(f"denominator must be > 0, got {denominator}")
    return (2 * numerator + denominator) // (2 * denominator)


def round_sqrt_ratio(numerator: int, denominator: int) -> int:
    """``floor(sqrt(n / d) + 1/2)`` exactly, on Python ints (n >= 0, d > 0).

    sqrt(q) + 1/2 >= k  <=>  4q >= (2k - 1)^2, and (2k - 1)^2 is an integer, so the answer is
    ``(isqrt(floor(4n / d)) + 1) // 2`` with no float anywhere.
    """
    if numerator < 0 or denominator <= 0:
        raise ValueError("round_sqrt_ratio needs numerator >= 0 and denominator > 0")
    return (math.isqrt((4 * numerator) // denominator) + 1) // 2
