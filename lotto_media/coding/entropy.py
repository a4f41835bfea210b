"""Range coding of latents, mask and network parameters.

Latents: the integer ARM gives each latent a Laplace mean and log-scale; both are quantised to
an index into integer probability tables built once from integer-only arithmetic
(``fixedpoint.exp_neg_fixed``), so every probability the coder sees is identical on every machine.
A symbol is the residual ``latent - round(mean)`` inside a window of +-WINDOW, or an escape
followed by the latent value in a second, uniform stream. Decoding walks wavefronts (a latent's
causal context lies in earlier ones): version 2 in compiled code (``latent_kernel``), version 1
with one vectorised constriction call per wavefront.

Two coding versions (``version=`` keyword, default 2; docs/FORMAT.md, Part 3 §3.5):

- version 1 hands the 2^-31 integer tables to constriction's ``Categorical(perfect=False)`` as
  floats and lets its float quantiser pick the 24-bit frequencies.
- version 2 derives 24-bit integer frequencies from the same tables with an integer-only rule
  (``laplace_frequencies``) and hands constriction ``frequency - 1`` so that its quantiser is the
  identity (its scale is then exactly 1.0).

Either way a stream is accepted only if it is word for word what the encoder writes for the
decoded symbols: running out of data, unused trailing words and any other non-canonical tail
raise ``FormatError`` (constriction's decoder alone shifts in zeros past the end and never
notices; version 1 streams were always written by that encoder, so the rule holds for them too).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import constriction
import numpy as np

from ..model.arm import ARM_FRAC, N_CONTEXT, PAD, WAVEFRONT_SLOPE, ContextLayout, IntegerArm
from ..errors import FormatError
from ..model.fixedpoint import exp_neg_fixed, rounding_shift
from ..model.latents import LATENT_MAX, LATENT_MIN
from . import latent_kernel

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
#: version 2: every row of integer frequencies sums to exactly 2^FREQ_BITS, each entry >= 1
FREQ_BITS = CODER_PRECISION
FREQ_TOTAL = 1 << FREQ_BITS
#: entropy-coding versions this module reads and writes
VERSIONS = (1, 2)

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


@lru_cache(maxsize=1)
def laplace_frequencies() -> np.ndarray:
    """Version 2: (MEAN_BINS * SCALE_BINS, N_SYMBOLS) int64 frequencies in units of 2^-FREQ_BITS.

    Integer-only, from ``laplace_tables()`` (t, units 2^-31), per row: S = sum(t),
    C_i = t_0 + ... + t_(i-1) (C_0 = 0, C_64 = S), F_i = floor(C_i * (2^24 - 64) / S) + i,
    frequency_i = F_(i+1) - F_i. Hence every frequency is >= 1 and every row sums to exactly
    2^24 (F_0 = 0, F_64 = 2^24). Pinned by a test; docs/FORMAT.md 3.5.2.
    """
    t = laplace_tables().astype(np.int64)
    total = t.sum(axis=1, keepdims=True)  # in [2^31, 2^31 + 64)
    cum = np.concatenate([np.zeros((t.shape[0], 1), dtype=np.int64), np.cumsum(t, axis=1)], axis=1)
    # cum * (2^24 - 64) < 2^56: exact in int64; // floors (both operands are non-negative)
    bounds = cum * np.int64(FREQ_TOTAL - N_SYMBOLS) // total + np.arange(N_SYMBOLS + 1, dtype=np.int64)
    freq = np.diff(bounds, axis=1)
    freq.setflags(write=False)
    return freq


def coder_weights(frequencies: np.ndarray) -> np.ndarray:
    """What version 2 hands to ``Categorical(perfect=False)`` for integer ``frequencies`` (rows
    summing to 2^24, entries >= 1): ``frequency - 1`` as float64 (exact in float32 too).

    constriction's fast quantiser gives symbol i the left cumulative floor(P_i * scale) + i with
    P_i the float sum of the inputs before i and scale = (2^24 - n) / sum(inputs). With inputs
    f - 1 the sum is exactly 2^24 - n, so scale is exactly 1.0, every P_i is an exact integer
    (< 2^24), and the left cumulatives are exactly f_0 + ... + f_(i-1): the coder uses the
    frequencies unchanged (docs/FORMAT.md 3.5.3.3; checked against a reference coder
    by the tests)."""
    return (np.asarray(frequencies, dtype=np.int64) - 1).astype(np.float64)


@lru_cache(maxsize=1)
def _latent_weights_v2() -> np.ndarray:
    weights = coder_weights(laplace_frequencies()).astype(np.float32)
    weights.setflags(write=False)
    return weights


#: main-stream symbols per re-encoding call in version 1, whose 64-float rows are gathered per
#: symbol (2 MB a call)
_V1_REENCODE_BATCH = 4096


def _reencode_into(coder: constriction.stream.queue.RangeEncoder, rows: np.ndarray, symbols: np.ndarray) -> None:
    """Append to ``coder`` the words version 1's ``encode_latents`` writes for these main-stream
    symbols, with the very float rows its encoder used (constriction's quantiser then gives the
    same frequencies)."""
    model = _model()
    table = laplace_tables()
    for start in range(0, rows.size, _V1_REENCODE_BATCH):
        stop = start + _V1_REENCODE_BATCH
        coder.encode(symbols[start:stop], model, table[rows[start:stop]])


def bernoulli_frequency(n_ones: int, n: int) -> int:
    """Version-2 frequency (units 2^-24) of symbol 1 in a binary stream of n symbols of which
    n_ones are 1 (0 < n_ones < n): round(n_ones * 2^24 / n), half up, clamped to [1, 2^24 - 1].
    Symbol 0 has 2^24 minus that."""
    if not 0 < n_ones < n:
        raise ValueError(f"a Bernoulli model needs 0 < n_ones < n, got {n_ones} of {n}")
    f1 = (2 * n_ones * FREQ_TOTAL + n) // (2 * n)
    return min(max(f1, 1), FREQ_TOTAL - 1)


def _check_version(version: int) -> None:
    if version not in VERSIONS:
        raise ValueError(f"entropy coding version must be one of {VERSIONS}, got {version!r}")


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


#: version 2's estimate of a stream termination beyond the ideal code length (it lies in [0, 32))
_TERMINATION_BITS = 16


def _model() -> constriction.stream.model.Categorical:
    return constriction.stream.model.Categorical(perfect=False)


def _to_bytes(words: np.ndarray) -> bytes:
    return np.asarray(words, dtype="<u4").tobytes()


def _to_words(data: bytes, what: str) -> np.ndarray:
    if len(data) % 4:
        raise FormatError(f"{what}: {len(data)} bytes is not a whole number of 32-bit words")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def _ends_early(what: str, n_words: int, needed: int, unit: str, decoded: int | None = None) -> FormatError:
    """A stream shorter than the encoder's output for what was decoded (or, with ``decoded``,
    for its first symbols: docs/FORMAT.md 3.5.5's early refusal)."""
    if decoded is None:
        return FormatError(f"{what}: data ends early ({n_words} words; the decoded {unit} take {needed})")
    return FormatError(f"{what}: data ends early ({n_words} words; the first {decoded} {unit} already take {needed})")


def _unused_words(what: str, extra: int, unit: str) -> FormatError:
    return FormatError(f"{what}: {extra} unused words after the last {unit[:-1]}")


def _not_encoder_output(what: str, unit: str) -> FormatError:
    return FormatError(f"{what}: the words are not the encoder's output for the decoded {unit} (corrupt data)")


def _check_stream_end(words: np.ndarray, expected: np.ndarray, what: str, unit: str) -> None:
    """The end-of-stream rule: a stream is valid only if it is word for word what the encoder
    writes for the symbols decoded from it (docs/FORMAT.md 3.5.5)."""
    expected = np.asarray(expected, dtype=np.uint32)
    if words.size < expected.size:
        raise _ends_early(what, words.size, expected.size, unit)
    if words.size > expected.size:
        raise _unused_words(what, words.size - expected.size, unit)
    if not np.array_equal(words, expected):
        raise _not_encoder_output(what, unit)


def _check_not_run_out(coder: constriction.stream.queue.RangeEncoder, n_words: int, what: str, unit: str,
                       decoded: int) -> None:
    """Refuse a stream as soon as re-encoding what was decoded so far needs more words than it has.

    The encoder's output for the first k symbols has R_k + 1 or R_k + 2 words (R_k renormalisations,
    then the termination) and the whole stream's at least R_k + 1: so once the prefix takes
    ``n_words + 2`` words, the whole stream takes more than ``n_words`` (docs/FORMAT.md 3.5.5).
    constriction's decoder shifts in zeros past the end without a word; this check stops the
    decoding within a piece of where the data ran out, instead of after every latent a header
    may claim."""
    if coder.num_words() > n_words + 1:
        raise _ends_early(what, n_words, coder.num_words() - 1, unit, decoded)


@dataclass(frozen=True)
class LatentSymbols:
    """What the coder sees for a set of latents, in wavefront order."""

    symbols: np.ndarray  # int32 in [0, N_SYMBOLS)
    rows: np.ndarray  # table rows
    escapes: np.ndarray  # latent values of the escaped symbols, in order


def latent_layout(shapes: list[tuple[int, int]], arm: IntegerArm) -> ContextLayout:
    """The context layout an ARM reads: its first layer's inputs beyond the 24 spatial neighbours
    are temporal taps (docs/FORMAT.md 3.3)."""
    return ContextLayout.for_shapes(shapes, arm.temporal_taps)


def latent_symbols(latents: list[np.ndarray], arm: IntegerArm,
                   previous: list[np.ndarray] | None = None) -> LatentSymbols:
    """``previous``: the previous frame's latents, which an ARM with temporal taps reads (None:
    zeros, as for a group's first predicted frame)."""
    layout = latent_layout([q.shape for q in latents], arm)
    buf = layout.scatter(latents, previous=previous)
    offsets = layout.offset_table()
    head = CoderHead.for_arm(arm)
    symbols, rows, escapes = [], [], []
    for piece in layout.pieces():
        context = buf[piece.positions[:, None] + offsets[piece.levels]]
        values = buf[piece.positions]
        centre, piece_rows = head.table_index(arm, context)
        residual = values - centre
        escaped = np.abs(residual) > WINDOW
        symbols.append(np.where(escaped, ESCAPE, residual + WINDOW).astype(np.int32))
        rows.append(piece_rows)
        escapes.append(values[escaped])
    if not symbols:
        return LatentSymbols(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return LatentSymbols(np.concatenate(symbols), np.concatenate(rows), np.concatenate(escapes))


def estimate_latent_bits(latents: list[np.ndarray], arm: IntegerArm, *, version: int = 2,
                         previous: list[np.ndarray] | None = None) -> float:
    """Code length of the latents under the coder's own tables (escapes included).

    version 1: the ideal code length under the float tables (no stream overhead).
    version 2: the ideal code length under the exact integer frequencies the coder uses,
    -sum log2(f / 2^24) + 7 bits per escape, plus the framing the encoder really writes: the
    32-bit main-stream length and, per non-empty stream, the 16 bits a termination costs on
    average (between 0 and 32 beyond the ideal length; docs/FORMAT.md 3.5.6).
    """
    _check_version(version)
    s = latent_symbols(latents, arm, previous)
    if version == 1:
        table = laplace_tables()
        # constriction gives every symbol at least one unit of its 24-bit precision
        p = np.maximum(table[s.rows, s.symbols] / table[s.rows].sum(axis=1), 2.0**-CODER_PRECISION)
        return float(-np.log2(p).sum() + s.escapes.size * np.log2(_LATENT_RANGE))
    return _code_length(s.rows, s.symbols, s.escapes.size)


def _code_length(rows: np.ndarray, symbols: np.ndarray, n_escapes: int) -> float:
    """Version 2's code length of symbols coded with these table rows (``estimate_latent_bits``)."""
    freq = laplace_frequencies()[rows, symbols]
    bits = FREQ_BITS * freq.size - float(np.log2(freq.astype(np.float64)).sum())
    bits += n_escapes * np.log2(_LATENT_RANGE)
    streams = int(freq.size > 0) + int(n_escapes > 0)
    return float(bits + 32 + _TERMINATION_BITS * streams)


def latent_contexts(latents: list[np.ndarray], taps: int = 0,
                    previous: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every latent's ARM input (n, 24 + taps) and its value, int8, in no particular order: what
    ``context_code_length`` needs to price the latents under many ARMs without walking the
    wavefronts each time."""
    layout = ContextLayout.for_shapes([q.shape for q in latents], taps)
    buf = layout.scatter(latents, dtype=np.int8, previous=previous)
    positions = []
    for level, (h, w) in enumerate(layout.shapes):
        rows = np.arange(PAD, h + PAD, dtype=np.int64)[:, None] * (w + 2 * PAD)
        positions.append((layout.bases[level] + rows + np.arange(PAD, w + PAD, dtype=np.int64)).ravel())
    levels = np.repeat(np.arange(len(layout.shapes)), [p.size for p in positions])
    flat = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
    return buf[flat[:, None] + layout.offset_table()[levels]], buf[flat]


def context_code_length(context: np.ndarray, values: np.ndarray, arm: IntegerArm) -> float:
    """``estimate_latent_bits`` (version 2) from ``latent_contexts``' output; the ARM reads the
    first 24 + its temporal taps columns."""
    centre, rows = CoderHead.for_arm(arm).table_index(arm, context[:, : N_CONTEXT + arm.temporal_taps])
    residual = values - centre
    escaped = np.abs(residual) > WINDOW
    symbols = np.where(escaped, ESCAPE, residual + WINDOW)
    return _code_length(rows, symbols, int(escaped.sum()))


def encode_latents(latents: list[np.ndarray], arm: IntegerArm, *, version: int = 2,
                   previous: list[np.ndarray] | None = None) -> bytes:
    """Two streams: u32 byte length of the main stream, the main stream, the escape stream.

    version 1 codes with the float tables, version 2 with the integer frequencies. ``previous``:
    as for ``latent_symbols``."""
    _check_version(version)
    s = latent_symbols(latents, arm, previous)
    table = laplace_tables() if version == 1 else _latent_weights_v2()
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


def decode_latents(
    data: bytes, shapes: list[tuple[int, int]], arm: IntegerArm, *, version: int = 2,
    previous: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Inverse of ``encode_latents``: ``LatentDecoding`` run to the end, each level's latents as an
    int64 array."""
    decoding = LatentDecoding(data, shapes, arm, version=version, previous=previous)
    decoding.decode_to(decoding.n_fronts)
    decoding.finish()
    return decoding.latents()


class LatentDecoding:
    """One picture's latents, decoded a band of wavefronts at a time (``decode_to``), so that the
    synthesis of the rows already complete (``rows_ready``) can run while later rows decode.

    Both streams must be exactly the encoder's output for the symbols decoded from them
    (docs/FORMAT.md 3.5.5, both versions): data that runs out, unused words after the termination
    or a corrupt tail raise FormatError. A stream too short for the latents its header claims is
    refused where its data runs out: version 2 checks every word as it decodes (``latent_kernel``),
    version 1 re-encodes piece by piece of the wavefront walk (and decodes the whole picture at its
    first ``decode_to``). ``finish`` checks the streams' ends. Memory: one byte per latent for the
    buffer (two with temporal taps) and the int64 result (version 1: and a few MB per piece)."""

    def __init__(self, data: bytes, shapes: list[tuple[int, int]], arm: IntegerArm, *, version: int = 2,
                 previous: list[np.ndarray] | None = None) -> None:
        _check_version(version)
        if len(data) < 4:
            raise FormatError("latent stream: truncated")
        main_len = int.from_bytes(data[:4], "little")
        if main_len > len(data) - 4:
            raise FormatError("latent stream: main stream length exceeds the packet")
        self._main_words = _to_words(data[4 : 4 + main_len], "latent stream")
        self._escape_words = _to_words(data[4 + main_len :], "latent stream: escape stream")
        self.layout = latent_layout(shapes, arm)
        n_latents = sum(h * w for h, w in shapes)
        if self._main_words.size == 0 and n_latents:
            raise FormatError(f"latent stream: the main stream is empty, but {n_latents} latents are coded")
        self._arm, self._version = arm, version
        #: the wavefronts of docs/FORMAT.md 3.3, and how many are decoded
        self.n_fronts = max((w - 1 + WAVEFRONT_SLOPE * (h - 1) + 1 for h, w in shapes), default=0)
        self.fronts_done = 0
        # int8 holds whatever a stream decodes to: a centre in -64..63 plus a residual in -31..31,
        # or an escaped value in -64..63
        self._buf = self.layout.scatter([], dtype=np.int8, previous=previous)
        if version == 2:
            self._state = latent_kernel.new_state(self._main_words, self._escape_words)
            head = CoderHead.for_arm(arm)
            w1, b1, w2, b2 = arm.folded_hidden_layers()
            self._kernel_args = (
                self._buf, np.array(self.layout.shapes, dtype=np.int64).reshape(-1, 2),
                np.array(self.layout.bases, dtype=np.int64), self.layout.offset_table(), w1, b1, w2, b2,
                head.weight, head.bias, _left_cumulatives())

    def decode_to(self, front_stop: int) -> None:
        """Decode the wavefronts before ``front_stop``. Safe to call without the GIL's help from a
        thread of its own: the compiled decoder releases it."""
        front_stop = min(front_stop, self.n_fronts)
        if front_stop <= self.fronts_done:
            return
        if self._version == 1:
            _decode_latents_v1(self._main_words, self._escape_words, self.layout, self._buf, self._arm)
            self.fronts_done = self.n_fronts
            return
        self._raise_for(latent_kernel.decode_fronts(self._state, self._main_words, self._escape_words,
                                                    *self._kernel_args, front_stop).tolist())
        self.fronts_done = front_stop

    def finish(self) -> None:
        """After the last wavefront: refuse streams that do not end as the encoder's would."""
        if self.fronts_done < self.n_fronts:
            raise ValueError("the latents are not all decoded")
        if self._version == 2:
            self._raise_for(latent_kernel.finish(self._state, self._main_words, self._escape_words).tolist())

    def rows_ready(self) -> list[int]:
        """Per level, the rows whose latents are all decoded: row r of a level w wide is complete
        with wavefront w - 1 + 4 r (so every row once all ``n_fronts`` are)."""
        return [min(h, max(0, (self.fronts_done - w) // WAVEFRONT_SLOPE + 1)) for h, w in self.layout.shapes]

    def views(self) -> list[np.ndarray]:
        """Each level's latents as an (h, w) int8 view of the decoding buffer: rows are final once
        ``rows_ready`` counts them."""
        return [self.layout.level_view(self._buf, i) for i in range(len(self.layout.shapes))]

    def latents(self) -> list[np.ndarray]:
        """Each level's latents as int64 arrays (copies)."""
        return self.layout.gather(self._buf)

    def _raise_for(self, verdict: list[int]) -> None:
        """``latent_kernel``'s verdict as the same messages as version 1's checks."""
        outcome, stream, decoded, needed = verdict
        if outcome == latent_kernel.OK:
            return
        main = stream == latent_kernel.MAIN
        what, words = ("latent stream", self._main_words) if main else ("latent stream: escape stream", self._escape_words)
        unit = "latents" if main else "escapes"
        if outcome == latent_kernel.INVALID:
            raise FormatError(f"{what}: cannot be decoded (a symbol outside every interval: corrupt data)")
        if outcome == latent_kernel.RAN_OUT:
            raise _ends_early(what, words.size, needed, "latents", decoded)
        if outcome == latent_kernel.TOO_FEW_WORDS:
            raise _ends_early(what, words.size, needed, unit)
        if outcome == latent_kernel.UNUSED_WORDS:
            raise _unused_words(what, words.size - needed, unit)
        raise _not_encoder_output(what, unit)


def _decode_latents_v1(main_words: np.ndarray, escape_words: np.ndarray, layout: ContextLayout,
                       buf: np.ndarray, arm: IntegerArm) -> None:
    main_shadow = constriction.stream.queue.RangeEncoder()
    escape_shadow = constriction.stream.queue.RangeEncoder()
    uniform = constriction.stream.model.Uniform(_LATENT_RANGE)
    decoded = 0
    for size, rows, symbols, escapes in _decode_pieces_v1(main_words, escape_words, layout, buf, arm):
        decoded += size
        _reencode_into(main_shadow, rows, symbols)
        _check_not_run_out(main_shadow, main_words.size, "latent stream", "latents", decoded)
        if escapes.size:
            escape_shadow.encode(escapes.astype(np.int32), uniform)
            _check_not_run_out(escape_shadow, escape_words.size, "latent stream: escape stream", "latents", decoded)
    _check_stream_end(main_words, main_shadow.get_compressed(), "latent stream", "latents")
    _check_stream_end(escape_words, escape_shadow.get_compressed(), "latent stream: escape stream", "escapes")


@lru_cache(maxsize=1)
def _left_cumulatives() -> np.ndarray:
    """(rows, N_SYMBOLS + 1) uint64: version 2's left cumulative frequencies, 2^24 at the end."""
    freq = laplace_frequencies()
    cum = np.zeros((freq.shape[0], N_SYMBOLS + 1), dtype=np.uint64)
    cum[:, 1:] = np.cumsum(freq, axis=1)
    cum.setflags(write=False)
    return cum


def _decode_pieces_v1(main_words: np.ndarray, escape_words: np.ndarray, layout: ContextLayout,
                      buf: np.ndarray, arm: IntegerArm) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Version 1: constriction decodes each wavefront with the float tables. Yields, per piece of
    the wavefront walk, its size, its latents' table rows and symbols and its escaped values."""
    main = constriction.stream.queue.RangeDecoder(main_words)
    escape = constriction.stream.queue.RangeDecoder(escape_words)
    uniform = constriction.stream.model.Uniform(_LATENT_RANGE)
    offsets = layout.offset_table()
    table = laplace_tables()
    model = _model()
    head = CoderHead.for_arm(arm)
    try:
        for piece in layout.pieces():
            piece_rows = np.empty(piece.size, dtype=np.int64)
            piece_symbols = np.empty(piece.size, dtype=np.int32)
            piece_escapes = [np.zeros(0, dtype=np.int64)]
            for start, stop in zip(piece.bounds[:-1], piece.bounds[1:]):
                front = piece.positions[start:stop]
                centre, rows = head.table_index(arm, buf[front[:, None] + offsets[piece.levels[start:stop]]])
                symbols = main.decode(model, table[rows])
                piece_rows[start:stop] = rows
                piece_symbols[start:stop] = symbols
                values = np.asarray(symbols, dtype=np.int64)
                escaped = values == ESCAPE
                values += centre - WINDOW
                if escaped.any():
                    coded = np.asarray(escape.decode(uniform, int(escaped.sum())), dtype=np.int64)
                    piece_escapes.append(coded)
                    values[escaped] = coded + LATENT_MIN
                buf[front] = values
            yield piece.size, piece_rows, piece_symbols, np.concatenate(piece_escapes)
    except (ValueError, RuntimeError, AssertionError) as exc:  # constriction reports invalid data
        raise FormatError(f"latent stream: cannot be decoded ({exc})") from None


# --- mask -------------------------------------------------------------------------------------


def encode_mask(mask: np.ndarray, *, version: int = 2) -> bytes:
    """Binary mask with a fixed Bernoulli probability n_kept / n (both known to the decoder).

    version 1: constriction's float quantisation of [n - n_kept, n_kept]. version 2: the integer
    frequencies of ``bernoulli_frequency``; a mask keeping none or all weights is 0 bytes."""
    _check_version(version)
    mask = np.asarray(mask, dtype=bool)
    if version >= 2:
        return _encode_bits(mask.ravel())
    n_kept = int(mask.sum())
    coder = constriction.stream.queue.RangeEncoder()
    coder.encode(mask.astype(np.int32), constriction.stream.model.Categorical(_mask_probs(mask.size, n_kept), perfect=False))
    return _to_bytes(coder.get_compressed())


def decode_mask(data: bytes, n: int, n_kept: int, *, version: int = 2) -> np.ndarray:
    _check_version(version)
    if version >= 2:
        return _decode_bits(data, n, n_kept, "mask", "weights kept, header says")
    words = _to_words(data, "mask")
    if words.size == 0 and n:
        raise FormatError(f"mask: the stream is empty, but {n} bits are coded")
    model = constriction.stream.model.Categorical(_mask_probs(n, n_kept), perfect=False)
    try:
        symbols = np.asarray(constriction.stream.queue.RangeDecoder(words).decode(model, n), dtype=np.int32)
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise FormatError(f"mask: cannot be decoded ({exc})") from None
    mask = symbols.astype(bool)
    if int(mask.sum()) != n_kept:
        raise FormatError(f"mask: {int(mask.sum())} weights kept, header says {n_kept}")
    shadow = constriction.stream.queue.RangeEncoder()
    shadow.encode(symbols, model)
    _check_stream_end(words, shadow.get_compressed(), "mask", "bits")
    return mask


def _mask_probs(n: int, n_kept: int) -> np.ndarray:
    return np.array([max(n - n_kept, 1), max(n_kept, 1)], dtype=np.float64)


def encode_mask_delta(mask: np.ndarray, reference: np.ndarray) -> bytes:
    """A mask coded relative to a reference mask (e.g. the previous frame's): u32 little-endian
    count c of the positions where the two differ, then the n XOR bits coded like a version-2
    mask with c ones (nothing when c is 0 or n). An unchanged mask costs 4 bytes."""
    mask = np.asarray(mask, dtype=bool)
    reference = np.asarray(reference, dtype=bool)
    if mask.shape != reference.shape:
        raise ValueError(f"mask shape {mask.shape} differs from the reference's {reference.shape}")
    flips = (mask ^ reference).ravel()
    n_flips = int(flips.sum())
    if n_flips >= 1 << 32:
        raise ValueError(f"{n_flips} flipped positions do not fit the delta's u32 count")
    return n_flips.to_bytes(4, "little") + _encode_bits(flips)


def decode_mask_delta(data: bytes, reference: np.ndarray, n_kept: int) -> np.ndarray:
    """Inverse of ``encode_mask_delta``; the decoded mask (shape of ``reference``) must keep
    exactly n_kept weights."""
    reference = np.asarray(reference, dtype=bool)
    n = reference.size
    if len(data) < 4:
        raise FormatError(f"mask delta: truncated ({len(data)} bytes; the flip count takes 4)")
    n_flips = int.from_bytes(data[:4], "little")
    if n_flips > n:
        raise FormatError(f"mask delta: {n_flips} flipped positions, but the mask has {n} weights")
    flips = _decode_bits(data[4:], n, n_flips, "mask delta", "positions flipped, its count says")
    mask = reference.ravel() ^ flips
    kept = int(mask.sum())
    if kept != n_kept:
        raise FormatError(f"mask delta: the decoded mask keeps {kept} weights, header says {n_kept}")
    return mask.reshape(reference.shape)


def _bernoulli_model(n_ones: int, n: int) -> constriction.stream.model.Categorical:
    f1 = bernoulli_frequency(n_ones, n)
    return constriction.stream.model.Categorical(coder_weights(np.array([FREQ_TOTAL - f1, f1])), perfect=False)


def _encode_bits(bits: np.ndarray) -> bytes:
    """Version 2: n binary symbols, n_ones of them 1, each coded with ``bernoulli_frequency``;
    0 bytes when every bit is equal (n_ones in {0, n} is known to the decoder)."""
    n, n_ones = bits.size, int(bits.sum())
    if n_ones in (0, n):
        return b""
    coder = constriction.stream.queue.RangeEncoder()
    coder.encode(bits.astype(np.int32), _bernoulli_model(n_ones, n))
    return _to_bytes(coder.get_compressed())


def _decode_bits(data: bytes, n: int, n_ones: int, what: str, count_says: str) -> np.ndarray:
    if not 0 <= n_ones <= n:
        raise FormatError(f"{what}: {n_ones} ones among {n} bits")
    words = _to_words(data, what)
    if n_ones in (0, n):
        if words.size:
            raise FormatError(f"{what}: {words.size} unused words (all {n} bits equal: nothing is coded)")
        return np.full(n, n_ones == n, dtype=bool)
    if words.size == 0:
        raise FormatError(f"{what}: the stream is empty, but {n} bits are coded")
    model = _bernoulli_model(n_ones, n)
    try:
        symbols = constriction.stream.queue.RangeDecoder(words).decode(model, n)
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise FormatError(f"{what}: cannot be decoded ({exc})") from None
    bits = np.asarray(symbols).astype(bool)
    count = int(bits.sum())
    if count != n_ones:
        raise FormatError(f"{what}: {count} {count_says} {n_ones}")
    shadow = constriction.stream.queue.RangeEncoder()
    shadow.encode(np.asarray(symbols, dtype=np.int32), model)
    _check_stream_end(words, shadow.get_compressed(), what, "bits")
    return bits


# --- network parameters: range-coded with a Laplace model per tensor (group header version 5) ----

#: a tensor's values v are coded as q = floor(v / 2^shift) with a latent table row (§3.5.2) and
#: the shift's low bits uniformly; shift in 0..PARAM_MAX_SHIFT
PARAM_MAX_SHIFT = 3
#: the row's scale bin is 2 * scale_code, scale_code in 0..PARAM_MAX_SCALE_CODE
PARAM_MAX_SCALE_CODE = (SCALE_BINS - 1) // 2
#: an escaped q (|q| > WINDOW): a sign, then |q| - WINDOW - 1 as two uniform bytes
_PARAM_ESCAPE_RANGE = 1 << 16
_PARAM_ESCAPE_BITS = 1 + 16


@dataclass(frozen=True)
class ParameterModel:
    """How one tensor's integers are coded: ``shift`` low bits sent uniformly, the rest ``q`` with
    the latent table row of scale bin ``2 * scale_code`` and mean bin 16 (mean +1/64) for shift 0
    or 0 (mean -31/64) for a shift, where floor(v / 2^shift) sits half a step low."""

    shift: int
    scale_code: int

    @property
    def row(self) -> int:
        return (16 if self.shift == 0 else 0) * SCALE_BINS + 2 * self.scale_code

    def to_byte(self) -> int:
        return self.shift << 6 | self.scale_code

    @classmethod
    def from_byte(cls, byte: int, what: str) -> ParameterModel:
        shift, scale_code = byte >> 6, byte & 63
        if scale_code > PARAM_MAX_SCALE_CODE:
            raise FormatError(f"{what}: parameter model scale code {scale_code} out of range "
                              f"(0..{PARAM_MAX_SCALE_CODE})")
        return cls(shift, scale_code)


@lru_cache(maxsize=1)
def _parameter_symbol_bits() -> np.ndarray:
    """-log2 of every latent table frequency (units of 2^-24): the ideal cost of each symbol."""
    return FREQ_BITS - np.log2(laplace_frequencies().astype(np.float64))


def _split_parameters(values: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    q = np.asarray(values, dtype=np.int64) >> shift  # floor division, negative values included
    return q, np.asarray(values, dtype=np.int64) - (q << shift)


def _costs_by_scale(values: np.ndarray, shift: int) -> np.ndarray:
    """Bits of a tensor's values (flat int64) under each scale code with ``shift``: the symbols'
    information, 17 bits more per escape, ``shift`` bits per value."""
    q, _ = _split_parameters(values, shift)
    symbols = np.where(np.abs(q) <= WINDOW, q + WINDOW, ESCAPE)
    counts = np.bincount(symbols, minlength=N_SYMBOLS).astype(np.float64)
    rows = _parameter_symbol_bits()[ParameterModel(shift, 0).row + 2 * np.arange(PARAM_MAX_SCALE_CODE + 1)]
    return rows @ counts + counts[ESCAPE] * _PARAM_ESCAPE_BITS + shift * values.size


def parameter_code_length(values: np.ndarray, model: ParameterModel) -> float:
    """Bits of a tensor's values under ``model`` (information content; docs/FORMAT.md 3.5.4.5)."""
    return float(_costs_by_scale(np.ravel(np.asarray(values, dtype=np.int64)), model.shift)[model.scale_code])


def best_parameter_model(values: np.ndarray) -> ParameterModel:
    """The model of the fewest bits for a tensor's values (the first such, in shift then scale
    order)."""
    values = np.ravel(np.asarray(values, dtype=np.int64))
    costs = np.stack([_costs_by_scale(values, shift) for shift in range(PARAM_MAX_SHIFT + 1)])
    shift, scale_code = np.unravel_index(int(np.argmin(costs)), costs.shape)
    return ParameterModel(int(shift), int(scale_code))


@lru_cache(maxsize=16)
def _uniform_model(n: int) -> constriction.stream.model.Categorical:
    return constriction.stream.model.Categorical(coder_weights(np.full(n, FREQ_TOTAL // n)), perfect=False)


def _parameter_symbols(values: np.ndarray, model: ParameterModel
                       ) -> list[tuple[np.ndarray, constriction.stream.model.Categorical]]:
    """The (symbols, model) pieces that code one tensor, in stream order: every q (escape for
    |q| > WINDOW), then each escape's sign and two bytes of |q| - WINDOW - 1, then the low bits."""
    q, low = _split_parameters(np.ravel(values), model.shift)
    inside = np.abs(q) <= WINDOW
    main = np.where(inside, q + WINDOW, ESCAPE).astype(np.int32)
    pieces = [(main, _parameter_table(model.row))]
    for value in q[~inside].tolist():
        magnitude = abs(value) - WINDOW - 1
        if magnitude >= _PARAM_ESCAPE_RANGE:
            raise ValueError(f"parameter {value << model.shift} is beyond what the parameter code can carry")
        pieces.append((np.array([int(value < 0)], dtype=np.int32), _uniform_model(2)))
        pieces.append((np.array([magnitude >> 8, magnitude & 255], dtype=np.int32), _uniform_model(256)))
    if model.shift:
        pieces.append((low.astype(np.int32), _uniform_model(1 << model.shift)))
    return pieces


def _parameter_table(row: int) -> constriction.stream.model.Categorical:
    return constriction.stream.model.Categorical(_latent_weights_v2()[row].astype(np.float64), perfect=False)


def _encode_tensor(coder: constriction.stream.queue.RangeEncoder, values: np.ndarray, model: ParameterModel) -> None:
    for symbols, piece_model in _parameter_symbols(values, model):
        if symbols.size:
            coder.encode(symbols, piece_model)


def encode_parameters(tensors: list[np.ndarray], models: list[ParameterModel]) -> bytes:
    """Every tensor's integers, in order, as one range-coder stream (docs/FORMAT.md 3.5.4.5)."""
    coder = constriction.stream.queue.RangeEncoder()
    for values, model in zip(tensors, models):
        _encode_tensor(coder, values, model)
    return _to_bytes(coder.get_compressed())


def decode_parameters(data: bytes, shapes: list[tuple[int, ...]], models: list[ParameterModel], limit: int,
                      what: str) -> list[np.ndarray]:
    """Inverse of ``encode_parameters``; every value must satisfy |v| <= ``limit``. Each tensor
    decoded is coded again alongside, so that a stream that runs out is refused at the tensor
    where its data ends, and one that is not the encoder's output once all are decoded."""
    words = _to_words(data, what)
    if words.size == 0:
        raise FormatError(f"{what}: the parameter stream is empty")
    decoder = constriction.stream.queue.RangeDecoder(words)
    shadow = constriction.stream.queue.RangeEncoder()
    tensors = []
    try:
        for index, (shape, model) in enumerate(zip(shapes, models)):
            n = int(np.prod(shape))
            q = np.asarray(decoder.decode(_parameter_table(model.row), n), dtype=np.int64) - WINDOW
            for position in np.flatnonzero(q == ESCAPE - WINDOW).tolist():
                negative = int(decoder.decode(_uniform_model(2), 1)[0])
                high, low_byte = (int(b) for b in decoder.decode(_uniform_model(256), 2))
                magnitude = (high << 8 | low_byte) + WINDOW + 1
                q[position] = -magnitude if negative else magnitude
            low = (np.asarray(decoder.decode(_uniform_model(1 << model.shift), n), dtype=np.int64)
                   if model.shift else np.zeros(n, dtype=np.int64))
            values = (q << model.shift) + low
            if np.any(np.abs(values) > limit):
                raise FormatError(f"{what}: parameter out of range (|v| > {limit})")
            tensors.append(values.reshape(shape))
            _encode_tensor(shadow, values, model)
            _check_not_run_out(shadow, int(words.size), what, "tensors", index + 1)
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise FormatError(f"{what}: the parameter stream cannot be decoded ({exc})") from None
    _check_stream_end(words, shadow.get_compressed(), what, "parameters")
    return tensors


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


#: longest exp-Golomb prefix accepted: no parameter (|v| <= 2^16) needs more than 17 zeros
_MAX_GOLOMB_ZEROS = 40


def exp_golomb_decode(data: bytes, count: int, k: int, what: str) -> tuple[np.ndarray, int]:
    """Returns (values, bytes consumed)."""
    # No code word is longer than 2 * _MAX_GOLOMB_ZEROS + k + 1 bits, so bytes beyond that many
    # per value cannot be read and are not expanded to bits.
    limit = (count * (2 * _MAX_GOLOMB_ZEROS + k + 1) + 7) // 8
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8, count=min(len(data), limit)))
    n = int(bits.size)
    # for every bit position: the first 1 at or after it, hence the length of a code starting there
    next_one = np.full(n + 1, n, dtype=np.int64)
    ones = np.flatnonzero(bits)
    next_one[ones] = ones
    next_one = np.minimum.accumulate(next_one[::-1])[::-1]
    zeros = next_one[:n] - np.arange(n)  # read one entry per code below, not made a list of n ints
    starts = np.empty(count, dtype=np.int64)
    runs = np.empty(count, dtype=np.int64)
    pos = 0
    for i in range(count):  # where each code starts depends on the one before: one step each
        if pos >= n:
            raise FormatError(f"{what}: truncated or corrupt parameter code")
        run = int(zeros[pos])
        if run > _MAX_GOLOMB_ZEROS or pos + 2 * run + k + 1 > n:
            raise FormatError(f"{what}: truncated or corrupt parameter code")
        starts[i], runs[i] = pos, run
        pos += 2 * run + k + 1
    # the code words themselves (run + k + 1 <= 56 bits), one bit position at a time for all
    widths = runs + k + 1
    first = starts + runs
    codes = np.zeros(count, dtype=np.int64)
    for j in range(int(widths.max()) if count else 0):
        more = j < widths
        codes[more] = (codes[more] << 1) | bits[first[more] + j]
    u = codes - (1 << k)
    values = np.where(u % 2 == 0, u // 2, -((u + 1) // 2))
    return values.astype(np.int64), (pos + 7) // 8


def best_exp_golomb_order(values: np.ndarray) -> int:
    u = np.abs(np.asarray(values, dtype=np.int64)) * 2 + 1
    costs = [int(np.sum(2 * np.floor(np.log2(u + (1 << k))) - k + 1)) for k in range(16)]
    return int(np.argmin(costs))
