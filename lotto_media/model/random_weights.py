"""The frozen random synthesis network, regenerated bit-exactly from the seed (never transmitted).

Each layer is W = Lambda . B (the Fourier-style init of LotteryCodec's random network):
B is a fixed basis of 4096 sampled cosines (64 low and 64 high frequencies x 32 phases) and
Lambda holds uniform random integers from the counter generator in ``rng``. The layer is then scaled
to the He standard deviation sqrt(2 / fan_in) and rounded to integers in units of 2^-WEIGHT_FRAC.
Everything is integer arithmetic (see docs/FORMAT.md "Random network" for the normative spec), so
every decoder gets the same weights whatever its platform, numpy build or thread count.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from .config import ModelConfig
from .fixedpoint import cos_fixed, round_sqrt_ratio
from .rng import uniform_int

WEIGHT_FRAC = 12  # a weight integer w means w / 2^12

# Basis geometry. Frequencies are nu = c * fan_in / 2^FREQ_FRAC turns per unit of t, t in [-1, 1]:
# low c = 1..64 covers (0, fan_in/16] turns (omega up to pi*fan_in/8 rad), high c = 64 + 3k,
# k = 1..64, covers (fan_in/16, fan_in/4] turns (omega up to pi*fan_in/2, the sampling limit
# of fan_in points spread over [-1, 1]).
N_LOW_FREQS = 64
N_HIGH_FREQS = 64
HIGH_FREQ_STEP = 3
N_PHASES = 32  # phases m / 32 turn, m = 0..31
FREQ_FRAC = 10
PHASE_BITS = 16  # cos arguments are integers in units of 2^-16 turn
BASIS_FRAC = 14  # basis values are integers in units of 2^-14
BASIS_ROWS = (N_LOW_FREQS + N_HIGH_FREQS) * N_PHASES  # 4096
LAMBDA_BOUND = 32767  # Lambda is uniform over the integers in [-32767, 32767]
SYNTH_STREAM_BASE = 256  # layer k draws its Lambda from rng stream 256 + k


def frequency_multipliers() -> np.ndarray:
    """c for the 128 basis frequencies, low then high (nu = c * fan_in / 2^FREQ_FRAC turns)."""
    low = np.arange(1, N_LOW_FREQS + 1, dtype=np.int64)
    high = N_LOW_FREQS + HIGH_FREQ_STEP * np.arange(1, N_HIGH_FREQS + 1, dtype=np.int64)
    return np.concatenate([low, high])


def basis_phases(fan_in: int) -> np.ndarray:
    """Integer phases (units of 2^-16 turn, not yet reduced) of the basis, shape (4096, fan_in).

    Row j = f * 32 + m samples cos(2*pi*(nu_f * t_i + m / 32)) at the fan_in points
    t_i = (2i - (fan_in - 1)) / (fan_in - 1), i.e. evenly spread over [-1, 1].
    """
    if fan_in < 1:
        raise ValueError(f"fan_in must be >= 1, got {fan_in}")
    n = fan_in
    phase_offsets = np.arange(N_PHASES, dtype=np.int64) << np.int64(PHASE_BITS - 5)
    if n == 1:
        # A single input sits at t = 0: only the phase term remains.
        sweep = np.zeros((frequency_multipliers().size, 1), dtype=np.int64)
    else:
        centred = 2 * np.arange(n, dtype=np.int64) - (n - 1)  # (2i - (n-1)), |.| <= n - 1
        # nu * t in units of 2^-16 turn is c * n * (2i - (n-1)) * 2^(16-10) / (n - 1), rounded
        # half up. |numerator| <= 256 * n^2 * 64 < 2^37 for n <= 2057 (ModelConfig's largest fan_in).
        products = frequency_multipliers()[:, None] * (n * centred[None, :])
        numerator = products << np.int64(PHASE_BITS - FREQ_FRAC)
        denominator = np.int64(n - 1)
        sweep = (2 * numerator + denominator) // (2 * denominator)
    phases = sweep[:, None, :] + phase_offsets[None, :, None]
    return phases.reshape(BASIS_ROWS, n)


@lru_cache(maxsize=1)
def _cos_table() -> np.ndarray:
    """cos_fixed at every one of the 2^16 phases: the basis reads it instead of evaluating the
    polynomial 4096 * fan_in times (identical values, a tenth of the work)."""
    table = cos_fixed(np.arange(1 << PHASE_BITS, dtype=np.int64), PHASE_BITS, BASIS_FRAC)
    table.setflags(write=False)
    return table


def fourier_basis(fan_in: int) -> np.ndarray:
    """The fixed cosine basis B, int64 of shape (4096, fan_in), values in [-2^14, 2^14]."""
    return _cos_table()[basis_phases(fan_in) & ((1 << PHASE_BITS) - 1)]


def layer_stream(layer_index: int) -> int:
    """The rng stream that draws Lambda for one synthesis layer."""
    return SYNTH_STREAM_BASE + layer_index


def random_layer(seed: int, layer_index: int, fan_out: int, fan_in: int) -> np.ndarray:
    """One layer's integer weights, shape (fan_out, fan_in), units of 2^-WEIGHT_FRAC, never 0."""
    lambdas = uniform_int(
        seed, layer_stream(layer_index), fan_out * BASIS_ROWS, -LAMBDA_BOUND, LAMBDA_BOUND + 1
    ).reshape(fan_out, BASIS_ROWS)
    # |Lambda| < 2^15 and |B| <= 2^14: each product is < 2^29 and the 4096-term sums are < 2^41,
    # so a float64 (BLAS) matmul of the integers is exact in any summation order and gives the
    # same integers as int64 arithmetic on every machine, several times faster.
    raw = (lambdas.astype(np.float64) @ fourier_basis(fan_in).astype(np.float64)).astype(np.int64)
    return _normalise(raw, fan_in)


def _normalise(raw: np.ndarray, fan_in: int) -> np.ndarray:
    """Scale to RMS sqrt(2 / fan_in), round to WEIGHT_FRAC bits, replace zeros by +-1 unit.

    With S = sum(raw^2) and M = raw.size, each weight is
    sign(raw) * round(sqrt(raw^2 * 2^(2*WEIGHT_FRAC) * 2M / (fan_in * S))), computed exactly with
    Python integers (raw^2 reaches 2^82, beyond int64).
    """
    values = [int(v) for v in raw.ravel()]
    total_square = sum(v * v for v in values)
    count = len(values)
    denominator = fan_in * total_square
    scale = (2 * count) << (2 * WEIGHT_FRAC)
    out = np.empty(count, dtype=np.int64)
    for index, v in enumerate(values):
        magnitude = round_sqrt_ratio(v * v * scale, denominator) if denominator else 0
        # A zero weight would be a connection the mask cannot switch on; keep the pre-rounding sign.
        out[index] = (-1 if v < 0 else 1) * max(magnitude, 1)
    return out.reshape(raw.shape)


def random_synthesis_weights(config: ModelConfig) -> list[np.ndarray]:
    """Integer weights (out, in) of every random synthesis layer, in units of 2^-WEIGHT_FRAC.

    Depends only on config.seed and the layer shapes (synth_widths, mod_hidden, out_channels).
    The arrays are read-only and shared: the same network serves every frame of a stream and
    both the encoder's search and its reconstruction.
    """
    return list(_synthesis_weights(config.seed, tuple(config.synth_layer_shapes())))


def clear_weight_cache() -> None:
    """Forget the generated networks (for measuring a decoder's cold start)."""
    _synthesis_weights.cache_clear()


@lru_cache(maxsize=4)
def _synthesis_weights(seed: int, shapes: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, ...]:
    layers = tuple(random_layer(seed, index, fan_out, fan_in) for index, (fan_out, fan_in) in enumerate(shapes))
    for layer in layers:
        layer.setflags(write=False)
    return layers


def weights_as_float(weights: list[np.ndarray]) -> list[np.ndarray]:
    """float32 copies w / 2^WEIGHT_FRAC.

    Exact: after normalisation w^2 <= sum(w^2) = 2^24 * 2 * fan_out, so |w| < 2^18 < 2^24.
    """
    return [w.astype(np.float32) / np.float32(1 << WEIGHT_FRAC) for w in weights]


def weights_digest(config: ModelConfig) -> str:
    """sha256 hex of the little-endian int64 bytes of all layers, in order, each row-major."""
    digest = hashlib.sha256()
    for layer in random_synthesis_weights(config):
        digest.update(np.ascontiguousarray(layer, dtype="<i8").tobytes())
    return digest.hexdigest()
