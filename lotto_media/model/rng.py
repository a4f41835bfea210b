"""Portable counter-based random numbers (integer only, defined in docs/FORMAT.md "Random network").

The decoder must regenerate the random synthesis network bit-exactly on any platform and any
library version, so we cannot use a library PRNG whose stream may change between releases. Instead,
element ``i`` of stream ``stream`` under seed ``seed`` is a pure function of ``(seed, stream, i)``:

    key = mix64(seed XOR mix64(stream XOR STREAM_SALT))
    out64[i] = mix64(key + (i + 1) * GOLDEN_GAMMA  mod 2^64)
    u32[i] = out64[i] >> 32

``mix64`` is the SplitMix64 finaliser, so ``out64`` is exactly the SplitMix64 sequence started from
state ``key``. Random access by counter means nothing depends on how a caller slices its requests.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64 increment (odd, 2^64 / golden ratio)
MIX_MUL_1 = 0xBF58476D1CE4E5B9  # SplitMix64 finaliser multipliers
MIX_MUL_2 = 0x94D049BB133111EB
# Salting the stream number keeps stream 0 from hashing the bare seed, so that
# (seed, stream) pairs with small values do not produce related keys.
STREAM_SALT = 0x6C6F74746F2D6D64  # ASCII "lotto-md"


def mix64(value: int) -> int:
    """SplitMix64 finaliser on one Python int in [0, 2^64); a bijection of 64-bit words."""
    z = value & MASK64
    z = ((z ^ (z >> 30)) * MIX_MUL_1) & MASK64
    z = ((z ^ (z >> 27)) * MIX_MUL_2) & MASK64
    return z ^ (z >> 31)


def mix64_array(values: np.ndarray) -> np.ndarray:
    """Vectorised ``mix64`` on a uint64 array (multiplications wrap modulo 2^64 on purpose)."""
    z = np.asarray(values, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX_MUL_1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX_MUL_2)
    return z ^ (z >> np.uint64(31))


def stream_key(seed: int, stream: int) -> int:
    """The SplitMix64 starting state of one (seed, stream) pair."""
    _check_word("seed", seed)
    _check_word("stream", stream)
    return mix64(seed ^ mix64(stream ^ STREAM_SALT))


def uniform_u64(seed: int, stream: int, count: int) -> np.ndarray:
    """Elements 0..count-1 of a stream as uint64 words."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    key = np.uint64(stream_key(seed, stream))
    counters = np.arange(1, count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        states = key + counters * np.uint64(GOLDEN_GAMMA)
    return mix64_array(states)


def uniform_u32(seed: int, stream: int, count: int) -> np.ndarray:
    """Elements 0..count-1 of a stream as uint32: the high half of each 64-bit output."""
    return (uniform_u64(seed, stream, count) >> np.uint64(32)).astype(np.uint32)


def uniform_int(seed: int, stream: int, count: int, low: int, high: int) -> np.ndarray:
    """Integers in [low, high) as int64: ``low + (u32 * (high - low)) >> 32``.

    The multiply-shift maps 2^32 inputs onto ``high - low`` outputs; each output value gets
    either floor or ceil of 2^32 / (high - low) inputs, a bias below 2^-16 for spans up to 2^16.
    """
    span = high - low
    if not 1 <= span <= 1 << 32:
        raise ValueError(f"need 1 <= high - low <= 2^32, got [{low}, {high})")
    if not (-(1 << 62) <= low and high <= 1 << 62):
        raise ValueError(f"bounds must fit comfortably in int64, got [{low}, {high})")
    u = uniform_u32(seed, stream, count).astype(np.uint64)
    # u < 2^32 and span <= 2^32, so the product fits in uint64 without wrapping.
    offsets = (u * np.uint64(span)) >> np.uint64(32)
    return offsets.astype(np.int64) + np.int64(low)


def _check_word(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= MASK64:
        raise InputError(f"{name} must be an integer in [0, 2^64), got {value!r}")
