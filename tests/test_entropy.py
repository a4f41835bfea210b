"""Entropy coding units: latents (escapes included), mask and exp-Golomb parameter codes."""

from __future__ import annotations

import numpy as np
import pytest

from lotto_media.arm import IntegerArm
from lotto_media.entropy import (
    ESCAPE,
    decode_latents,
    decode_mask,
    encode_latents,
    encode_mask,
    estimate_latent_bits,
    exp_golomb_decode,
    exp_golomb_encode,
    latent_symbols,
)
from lotto_media.errors import FormatError


def random_arm(seed: int, hidden: int = 8, frac: int = 8, scale: float = 0.0) -> IntegerArm:
    rng = np.random.default_rng(seed)
    w = lambda *shape: np.round(rng.normal(0, 0.3, shape) * (1 << frac)).astype(np.float64)  # noqa: E731
    b3 = np.array([0.0, scale * (1 << frac)])
    return IntegerArm(w(hidden, 24), w(hidden), w(hidden, hidden), w(hidden), w(2, hidden), b3, frac)


SHAPES = [(13, 17), (7, 9), (4, 5), (2, 3), (1, 2), (1, 1)]


@pytest.mark.parametrize("spread", [0.7, 3.0, 40.0])
def test_latents_round_trip_and_match_the_estimate(spread: float):
    rng = np.random.default_rng(int(spread * 10))
    latents = [np.clip(np.round(rng.laplace(0, spread, s)), -64, 63).astype(np.int64) for s in SHAPES]
    arm = random_arm(1, scale=np.log(spread))
    data = encode_latents(latents, arm)
    decoded = decode_latents(data, SHAPES, arm)
    assert all(np.array_equal(a, b) for a, b in zip(latents, decoded))
    estimate = estimate_latent_bits(latents, arm)
    assert abs(8 * len(data) - estimate) <= 0.02 * estimate + 8 * 12


def test_large_values_take_the_escape_path():
    latents = [np.full(s, 63, dtype=np.int64) for s in SHAPES]
    latents[0][::2, ::3] = -64
    arm = random_arm(2, scale=-4.0)  # a confident model around 0: the extremes must escape
    assert (latent_symbols(latents, arm).symbols == ESCAPE).any()
    decoded = decode_latents(encode_latents(latents, arm), SHAPES, arm)
    assert all(np.array_equal(a, b) for a, b in zip(latents, decoded))


def test_truncated_latent_streams_fail_cleanly():
    rng = np.random.default_rng(5)
    latents = [np.round(rng.laplace(0, 2.0, s)).astype(np.int64) for s in SHAPES]
    arm = random_arm(3, scale=np.log(2.0))
    data = encode_latents(latents, arm)
    for cut in (0, 3, 5, len(data) // 2):
        try:
            decoded = decode_latents(data[:cut], SHAPES, arm)
        except FormatError:
            continue
        # A range decoder may run past its end without noticing; it must then not claim success
        # with the original values (the container's CRC is what detects damage).
        assert not all(np.array_equal(a, b) for a, b in zip(latents, decoded))


@pytest.mark.parametrize("kept", [1, 17, 1000, 1722, 1723])
def test_mask_round_trip(kept: int):
    rng = np.random.default_rng(kept)
    mask = np.zeros(1723, dtype=bool)
    mask[rng.choice(1723, kept, replace=False)] = True
    assert np.array_equal(decode_mask(encode_mask(mask), 1723, kept), mask)


def test_mask_with_the_wrong_count_is_rejected():
    mask = np.zeros(100, dtype=bool)
    mask[:30] = True
    with pytest.raises(FormatError, match="kept"):
        decode_mask(encode_mask(mask), 100, 31)


@pytest.mark.parametrize("k", [0, 3, 9])
def test_exp_golomb_round_trip(k: int):
    values = np.array([0, 1, -1, 2, -2, 65536, -65536, 12345, -7], dtype=np.int64)
    code = exp_golomb_encode(values, k)
    decoded, used = exp_golomb_decode(code, values.size, k, "test")
    assert np.array_equal(decoded, values) and used == len(code)
    with pytest.raises(FormatError):
        exp_golomb_decode(code[:-2], values.size, k, "test")


@pytest.mark.parametrize("frac", [3, 8, 12])
def test_coder_head_gives_the_table_index_of_the_arm_outputs(frac: int):
    """The decoder's folded output layer equals FORMAT.md's table index of the ARM's (mu, s),
    including centres and scales beyond the clipping limits."""
    from lotto_media.entropy import CoderHead, table_index

    rng = np.random.default_rng(frac)
    for scale in (0.0, 5.0, -6.0):
        arm = random_arm(frac, hidden=12, frac=frac, scale=scale)
        context = rng.integers(-64, 64, (5000, 24)) * rng.integers(0, 2, (5000, 1))
        expected = table_index(*arm(context))
        got = CoderHead.for_arm(arm).table_index(arm, context)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected))
        assert len(np.unique(expected[1])) > 20  # many table rows exercised
