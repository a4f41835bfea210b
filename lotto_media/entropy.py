"""Range coding of latents, mask and network parameters.

Latents: the integer ARM gives each latent a Laplace mean and log-scale; both are quantised to
an index into integer probability tables built once from integer-only arithmetic
(``fixedpoint.exp_neg_fixed``), so every probability the coder sees is identical on every machine.
A symbol is the residual ``latent - round(mean)`` inside a window of +-WINDOW, or an escape
followed by the latent value in a second, uniform stream. Decoding proceeds in wavefronts: all
latents whose causal context is complete are decoded together with one vectorised call.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import constriction
import numpy as np

from .arm import ARM_FRAC, ContextLayout, IntegerArm
from .errors import FormatError
from .fixedpoint import exp_neg_fixed, rounding_shift
from .latents import LATENT_MAX, LATENT_MIN

#: residual window: symbols 0..2*WINDOW are residuals -WINDOW..WINDOW, symbol 2*WINDOW+1 escapes
WINDOW = 31
ESCAPE = 2 * WINDOW + 1
N_SYMBOLS = ESCAPE + 1
#: mean offsets in [-1/2, 1/2) are quantised to MEAN_BINS bins (bin k centred on (2k+1)/64 - 1/2)
MEAN_BINS = 32
#: log-scale bins: ln(scale) = LOG_SCALE_MIN_8THS / 8 + j / 8, j in [0, SCALE_BINS)
LOG_SCALE_MIN_8THS = -36
SCALE_BINS = 73
#: table probabilities are integers in units of 2^-PROB_BITS
PROB_BITS = 31
#: round(e^5 * 2^20): lets exp_neg_fixed (x >= 0 only) produce 1/scale = e^5 * e^-(ln scale + 5)
E5_Q20 = 155622629
#: probability precision (bits) of constriction's default range coder
CODER_PRECISION = 24
#: latents per constriction call when encoding (bounds the probability array's memory)
ENCODE_BATCH = 16384

_LATENT_RANGE = LATENT_MAX - LATENT_MIN + 1


@lru_cache(maxsize=1)
def laplace_tables() -> np.ndarray:
    """(MEAN_BINS * SCALE_BINS, N_SYMBOLS) float64 array of integer probabilities (units 2^-31).

    Row ``mean_bin * SCALE_BINS + scale_bin``. Built with integer arithmetic only; pinned by a test.
    """
    j = np.arange(SCALE_BINS, dtype=np.int64)
    # exponent ln(scale) + 5 in 16 fractional bits: (j - 36 + 40) / 8
    e_minus = exp_neg_fixed((j + LOG_SCALE_MIN_8THS + 40) << 13, 16, 30)  # e^-(s+5) * 2^30
    inv_scale = rounding_shift(e_minus * np.int64(E5_Q20), 30)  # e^-s * 2^20
    k = np.arange(MEAN_BINS, dtype=np.int64)
    mean64 = 2 * k + 1 - MEAN_BINS  # mean offset in 1/64 units
    r = np.arange(-WINDOW, WINDOW + 2, dtype=np.int64)  # boundaries r - 1/2
    x64 = 64 * r[None, :] - 32 - mean64[:, None]  # (MEAN_BINS, 2*WINDOW+2), 6 fractional bits
    y = np.abs(x64)[:, None, :] * inv_scale[None, :, None]  # 26 fractional bits, < 2^38
    tail = exp_neg_fixed(rounding_shift(y, 10), 16, PROB_BITS - 1)  # 2^30 * e^(-|x|/b)
    cdf = np.where(x64[:, None, :] >= 0, (np.int64(1) << PROB_BITS) - tail, tail)
    probs = np.diff(cdf, axis=2)
    escape = (np.int64(1) << PROB_BITS) - (cdf[:, :, -1] - cdf[:, :, 0])
    table = np.concatenate([probs, escape[:, :, None]], axis=2)
    table = np.maximum(table, 1).reshape(MEAN_BINS * SCALE_BINS, N_SYMBOLS)
    table.setflags(write=False)
    return table.astype(np.float64)


def table_index(mu: np.ndarray, log_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer ARM outputs (ARM_FRAC bits) -> (centre latent, probability-table row).

    centre = round(mu), mean_bin = the 1/32 bin of mu - centre in [-1/2, 1/2), scale_bin = the
    nearest 1/8 step of ln(scale) from LOG_SCALE_MIN_8THS / 8 (docs/FORMAT.md 3.3); the
    arithmetic below is the same, folded into few exact float64 operations.
    """
    one = float(1 << ARM_FRAC)
    t = np.floor(mu * (MEAN_BINS / one) + MEAN_BINS / 2)  # floor((mu + one/2) * 32 / one)
    centre = np.floor(t * (1.0 / MEAN_BINS))
    mean_bin = t - MEAN_BINS * centre
    scale_bin = np.floor(log_scale * (8 / one) + (0.5 - LOG_SCALE_MIN_8THS))
    np.clip(scale_bin, 0, SCALE_BINS - 1, out=scale_bin)
    rows = (mean_bin * SCALE_BINS + scale_bin).astype(np.int64)
    return np.clip(centre, LATENT_MIN, LATENT_MAX).astype(np.int64), rows


@dataclass(frozen=True)
class CoderHead:
    """The ARM's output layer with ``table_index``'s scalings folded in, so that one matmul gives
    t = floor(mu * 32/256 + 16) (= 32 * centre + mean_bin) and the unclipped scale bin
    floor(log_scale * 8/256 + 36.5) directly. Exact: floor(floor(y) / 2^k + c) equals
    floor(y / 2^k + c) for an integer c * 2^k, and the folded weights are the ARM's dyadic
    weights scaled by powers of two."""

    weight: np.ndarray
    bias: np.ndarray

    @classmethod
    def for_arm(cls, arm: IntegerArm) -> CoderHead:
        weight, bias = arm.output_layer()
        one = float(1 << ARM_FRAC)
        scale = np.array([MEAN_BINS / one, 8 / one])
        offset = np.array([MEAN_BINS / 2, 0.5 - LOG_SCALE_MIN_8THS])
        return cls(np.ascontiguousarray(weight * scale), bias * scale + offset)

    def table_index(self, arm: IntegerArm, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Same result as ``table_index(*arm(context))`` with fewer array passes."""
        out = arm.hidden(context) @ self.weight
        out += self.bias
        np.floor(out, out=out)
        t = out[:, 0].astype(np.int64)
        scale_bin = out[:, 1]
        # np.maximum/np.minimum rather than np.clip: clip's Python-level checks cost ~9 us a call,
        # more than the arithmetic on a wavefront's few dozen latents
        np.maximum(scale_bin, 0, out=scale_bin)
        np.minimum(scale_bin, SCALE_BINS - 1, out=scale_bin)
        rows = (t & (MEAN_BINS - 1)) * SCALE_BINS
        rows += scale_bin.astype(np.int64)
        centre = t >> 5  # floor(t / MEAN_BINS)
        np.maximum(centre, LATENT_MIN, out=centre)
        np.minimum(centre, LATENT_MAX, out=centre)
        return centre, rows


def _model() -> constriction.stream.model.Categorical:
    return constriction.stream.model.Categorical(perfect=False)


def _to_bytes(words: np.ndarray) -> bytes:
    return np.asarray(words, dtype="<u4").tobytes()


def _to_words(data: bytes, what: str) -> np.ndarray:
    if len(data) % 4:
        raise FormatError(f"{what}: {len(data)} bytes is not a whole number of 32-bit words")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


@dataclass(frozen=True)
class LatentSymbols:
    """What the coder sees for a set of latents, in wavefront order."""

    symbols: np.ndarray  # int32 in [0, N_SYMBOLS)
    rows: np.ndarray  # table rows
    escapes: np.ndarray  # latent values of the escaped symbols, in order


def latent_symbols(latents: list[np.ndarray], arm: IntegerArm) -> LatentSymbols:
    layout = ContextLayout.for_shapes([q.shape for q in latents])
    buf = layout.scatter(latents)
    order = np.concatenate(layout.wavefronts())
    context = buf[layout.all_context_indices()[order]]
    values = buf[layout.all_positions()[order]]
    centre, rows = CoderHead.for_arm(arm).table_index(arm, context)
    residual = values - centre
    escaped = np.abs(residual) > WINDOW
    symbols = np.where(escaped, ESCAPE, residual + WINDOW).astype(np.int32)
    return LatentSymbols(symbols, rows, values[escaped])


def estimate_latent_bits(latents: list[np.ndarray], arm: IntegerArm) -> float:
    """Ideal code length of the latents under the coder's own tables (escapes included)."""
    s = latent_symbols(latents, arm)
    table = laplace_tables()
    # constriction gives every symbol at least one unit of its 24-bit precision
    p = np.maximum(table[s.rows, s.symbols] / table[s.rows].sum(axis=1), 2.0**-CODER_PRECISION)
    return float(-np.log2(p).sum() + s.escapes.size * np.log2(_LATENT_RANGE))


def encode_latents(latents: list[np.ndarray], arm: IntegerArm) -> bytes:
    """Two streams: u32 byte length of the main stream, the main stream, the escape stream."""
    s = latent_symbols(latents, arm)
    table = laplace_tables()
    model = _model()
    main = constriction.stream.queue.RangeEncoder()
    for start in range(0, s.symbols.size, ENCODE_BATCH):
        stop = start + ENCODE_BATCH
        main.encode(s.symbols[start:stop], model, table[s.rows[start:stop]])
    escape = constriction.stream.queue.RangeEncoder()
    if s.escapes.size:
        escape.encode((s.escapes - LATENT_MIN).astype(np.int32), constriction.stream.model.Uniform(_LATENT_RANGE))
    main_bytes = _to_bytes(main.get_compressed())
    return len(main_bytes).to_bytes(4, "little") + main_bytes + _to_bytes(escape.get_compressed())


def decode_latents(data: bytes, shapes: list[tuple[int, int]], arm: IntegerArm) -> list[np.ndarray]:
    if len(data) < 4:
        raise FormatError("latent stream: truncated")
    main_len = int.from_bytes(data[:4], "little")
    if main_len > len(data) - 4:
        raise FormatError("latent stream: main stream length exceeds the packet")
    main = constriction.stream.queue.RangeDecoder(_to_words(data[4 : 4 + main_len], "latent stream"))
    escape = constriction.stream.queue.RangeDecoder(_to_words(data[4 + main_len :], "escape stream"))
    uniform = constriction.stream.model.Uniform(_LATENT_RANGE)
    layout = ContextLayout.for_shapes(shapes)
    buf = np.zeros(layout.size, dtype=np.int64)
    fronts = layout.wavefronts()
    order = np.concatenate(fronts)
    # Positions and levels in wavefront order, so that each wavefront is a contiguous slice; the
    # (n, 24) neighbour indices are built per wavefront to keep memory at a few bytes per latent.
    positions = layout.all_positions()[order]
    levels = np.concatenate([np.full(h * w, i, dtype=np.int64) for i, (h, w) in enumerate(shapes)])[order]
    offsets = np.stack([layout.neighbour_offsets(i) for i in range(len(shapes))])
    bounds = np.cumsum([0] + [f.size for f in fronts])
    table = laplace_tables()
    model = _model()
    head = CoderHead.for_arm(arm)
    try:
        for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            front = positions[start:stop]
            centre, rows = head.table_index(arm, buf[front[:, None] + offsets[levels[start:stop]]])
            values = np.asarray(main.decode(model, table[rows]), dtype=np.int64)
            escaped = values == ESCAPE
            values += centre - WINDOW
            if escaped.any():
                n_escaped = int(escaped.sum())
                values[escaped] = np.asarray(escape.decode(uniform, n_escaped), dtype=np.int64) + LATENT_MIN
            buf[front] = values
    except (ValueError, RuntimeError, AssertionError) as exc:  # constriction reports exhausted/invalid data
        raise FormatError(f"latent stream: cannot be decoded ({exc})") from None
    return layout.gather(buf)


# --- mask -------------------------------------------------------------------------------------


def encode_mask(mask: np.ndarray) -> bytes:
    """Binary mask with a fixed Bernoulli probability n_kept / n (both known to the decoder)."""
    mask = np.asarray(mask, dtype=bool)
    n_kept = int(mask.sum())
    coder = constriction.stream.queue.RangeEncoder()
    coder.encode(mask.astype(np.int32), constriction.stream.model.Categorical(_mask_probs(mask.size, n_kept), perfect=False))
    return _to_bytes(coder.get_compressed())


def decode_mask(data: bytes, n: int, n_kept: int) -> np.ndarray:
    coder = constriction.stream.queue.RangeDecoder(_to_words(data, "mask"))
    try:
        bits = np.asarray(
            coder.decode(constriction.stream.model.Categorical(_mask_probs(n, n_kept), perfect=False), n)
        )
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise FormatError(f"mask: cannot be decoded ({exc})") from None
    mask = bits.astype(bool)
    if int(mask.sum()) != n_kept:
        raise FormatError(f"mask: {int(mask.sum())} weights kept, header says {n_kept}")
    return mask


def _mask_probs(n: int, n_kept: int) -> np.ndarray:
    return np.array([max(n - n_kept, 1), max(n_kept, 1)], dtype=np.float64)


# --- signed exp-Golomb for network parameters ------------------------------------------------


def exp_golomb_encode(values: np.ndarray, k: int) -> bytes:
    """Signed (zigzag) exp-Golomb of order k, MSB first, zero-padded to a whole byte."""
    bits: list[str] = []
    for v in np.asarray(values, dtype=np.int64).ravel().tolist():
        u = 2 * v if v >= 0 else -2 * v - 1
        code = u + (1 << k)
        n = code.bit_length()
        bits.append("0" * (n - 1 - k) + format(code, "b"))
    s = "".join(bits)
    s += "0" * (-len(s) % 8)
    return int(s, 2).to_bytes(len(s) // 8, "big") if s else b""


def exp_golomb_decode(data: bytes, count: int, k: int, what: str) -> tuple[np.ndarray, int]:
    """Returns (values, bytes consumed)."""
    s = "".join(format(b, "08b") for b in data)
    pos, out = 0, []
    for _ in range(count):
        zeros = 0
        while pos < len(s) and s[pos] == "0":
            zeros += 1
            pos += 1
        if zeros > 40 or pos + zeros + k + 1 > len(s):
            raise FormatError(f"{what}: truncated or corrupt parameter code")
        code = int(s[pos : pos + zeros + k + 1], 2)
        pos += zeros + k + 1
        u = code - (1 << k)
        out.append(u // 2 if u % 2 == 0 else -(u + 1) // 2)
    return np.array(out, dtype=np.int64), (pos + 7) // 8


def best_exp_golomb_order(values: np.ndarray) -> int:
    u = np.abs(np.asarray(values, dtype=np.int64)) * 2 + 1
    costs = [int(np.sum(2 * np.floor(np.log2(u + (1 << k))) - k + 1)) for k in range(16)]
    return int(np.argmin(costs))
