"""Integer cos / exp(-x) / sqrt helpers against float references, and their exactness properties."""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

import numpy as np
import pytest

from lotto_media.model.fixedpoint import (
    cos_fixed,
    exp_neg_fixed,
    round_div,
    round_sqrt_ratio,
    rounding_shift,
)


def cos_reference(phase: np.ndarray, phase_bits: int, out_frac: int) -> np.ndarray:
    turns = np.mod(phase, 1 << phase_bits) / float(1 << phase_bits)
    return np.round(np.cos(2 * np.pi * turns) * 2.0**out_frac)


@pytest.mark.parametrize("phase_bits", [2, 3, 5, 12, 16])
@pytest.mark.parametrize("out_frac", [0, 8, 14, 16, 24])
def test_cos_dense_grid_within_two_units(phase_bits: int, out_frac: int) -> None:
    # Two full turns, one of them negative, so the modulo reduction is exercised too.
    phase = np.arange(-(1 << phase_bits), 1 << phase_bits, dtype=np.int64)
    error = np.abs(cos_fixed(phase, phase_bits, out_frac) - cos_reference(phase, phase_bits, out_frac))
    assert error.max() <= 2


@pytest.mark.parametrize("out_frac", [12, 16, 24])
def test_cos_24_bit_phases_within_two_units(out_frac: int) -> None:
    rng = np.random.default_rng(7)
    phase = rng.integers(-(1 << 40), 1 << 40, size=200_000, dtype=np.int64)
    error = np.abs(cos_fixed(phase, 24, out_frac) - cos_reference(phase, 24, out_frac))
    assert error.max() <= 2


def test_cos_exact_at_quarter_turns_and_symmetric() -> None:
    bits, frac = 16, 14
    quarters = np.array([0, 1, 2, 3, 4, -1, -2], dtype=np.int64) << np.int64(bits - 2)
    np.testing.assert_array_equal(
        cos_fixed(quarters, bits, frac), [1 << frac, 0, -(1 << frac), 0, 1 << frac, 0, -(1 << frac)]
    )
    phase = np.arange(0, 1 << bits, 37, dtype=np.int64)
    values = cos_fixed(phase, bits, frac)
    np.testing.assert_array_equal(cos_fixed(-phase, bits, frac), values)  # even
    np.testing.assert_array_equal(cos_fixed(phase + (5 << bits), bits, frac), values)  # periodic
    np.testing.assert_array_equal(cos_fixed((1 << (bits - 1)) - phase, bits, frac), -values)  # cos(pi-x)


@pytest.mark.parametrize("in_frac", [0, 4, 8, 16])
@pytest.mark.parametrize("out_frac", [0, 16, 24, 30])
def test_exp_neg_dense_grid_within_two_units_and_monotone(in_frac: int, out_frac: int) -> None:
    stop = min(70 << in_frac, 1 << 21)  # past the point where everything rounds to 0 (or a big chunk)
    x = np.arange(0, stop, dtype=np.int64)
    got = exp_neg_fixed(x, in_frac, out_frac)
    reference = np.round(np.exp(-x / 2.0**in_frac) * 2.0**out_frac)
    assert np.abs(got - reference).max() <= 2
    assert got[0] == 1 << out_frac
    assert np.all(np.diff(got) <= 0), "probability tables rely on exp(-x) never increasing"


def test_exp_neg_underflow_and_huge_inputs() -> None:
    x = np.array([64 << 16, 1 << 40, (1 << 62) + 12345], dtype=np.int64)
    np.testing.assert_array_equal(exp_neg_fixed(x, 16, 30), [0, 0, 0])
    # exp(-21) * 2^30 ~ 0.81 rounds to 1, exp(-22) * 2^30 ~ 0.30 rounds to 0.
    np.testing.assert_array_equal(exp_neg_fixed(np.array([21, 22]), 0, 30), [1, 0])


def test_exp_neg_rejects_negative_input() -> None:
    with pytest.raises(ValueError):
        exp_neg_fixed(np.array([3, -1]), 4, 16)


def test_vectorised_equals_elementwise() -> None:
    rng = np.random.default_rng(3)
    phases = rng.integers(-(1 << 30), 1 << 30, size=300, dtype=np.int64)
    batch = cos_fixed(phases, 20, 16)
    single = [int(cos_fixed(np.array([p]), 20, 16)[0]) for p in phases]
    assert batch.tolist() == single
    assert int(cos_fixed(np.int64(phases[0]), 20, 16)) == single[0]  # 0-d input works too

    xs = rng.integers(0, 40 << 12, size=300, dtype=np.int64)
    batch = exp_neg_fixed(xs, 12, 30)
    single = [int(exp_neg_fixed(np.array([x]), 12, 30)[0]) for x in xs]
    assert batch.tolist() == single
    # Shape is preserved for 2-D inputs.
    assert exp_neg_fixed(xs.reshape(20, 15), 12, 30).tolist() == batch.reshape(20, 15).tolist()


def test_argument_ranges_are_checked() -> None:
    with pytest.raises(ValueError):
        cos_fixed(np.zeros(2, dtype=np.int64), 1, 8)
    with pytest.raises(ValueError):
        cos_fixed(np.zeros(2, dtype=np.int64), 16, 25)
    with pytest.raises(ValueError):
        exp_neg_fixed(np.zeros(2, dtype=np.int64), 17, 8)
    with pytest.raises(ValueError):
        exp_neg_fixed(np.zeros(2, dtype=np.int64), 8, 31)


def test_rounding_helpers() -> None:
    assert rounding_shift(np.array([5, 6, 7, -5, -6, -7]), 2).tolist() == [1, 2, 2, -1, -1, -2]
    assert [round_div(n, 4) for n in (5, 6, 7, -5, -6, -7)] == [1, 2, 2, -1, -1, -2]


def test_round_sqrt_ratio_is_exact() -> None:
    getcontext().prec = 80
    rng = np.random.default_rng(11)
    cases = [(0, 1), (1, 4), (9, 4), (2, 1), (10**40 + 7, 3), (2**100, 2**37 + 1)]
    cases += [(int(n), int(d)) for n, d in zip(rng.integers(0, 10**9, 500), rng.integers(1, 10**4, 500))]
    for n, d in cases:
        expected = int((Decimal(n) / Decimal(d)).sqrt() + Decimal("0.5"))  # int() floors positives
        assert round_sqrt_ratio(n, d) == expected, (n, d)
    assert round_sqrt_ratio(2, 1) == round(math.sqrt(2))
