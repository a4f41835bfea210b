"""The version-2 latent decoder's inner loop, compiled with numba.

Decoding is sequential by nature: each latent's probabilities come from the integer ARM applied to
latents decoded before it. Driven from Python, a wavefront of a few dozen latents cost some 50 us
of per-call overhead (about 25 numpy calls and a constriction call), more than its arithmetic.
Here one compiled call walks a whole piece of the wavefront order: gather the causal context, run
the integer ARM, map its output to a table row and centre (docs/FORMAT.md 3.3), decode the symbol
with the range decoder of docs/FORMAT.md 3.5.3.2, read an escape when there is one, and store the
latent where later contexts read it.

Within a piece no latent's context reaches another latent of its own wavefront, so walking the
latents one by one in coding order is the same as decoding wavefront by wavefront.

The ARM arithmetic is that of ``IntegerArm`` and ``CoderHead`` (float64 holding dyadic values, so
every product and sum is exact in any order); the range decoder is constriction 0.5.0's queue
decoder transcribed from docs/FORMAT.md (the tests check both against the reference, word for word).
"""

from __future__ import annotations

import numba
import numpy as np

#: index of each field in the decoder state array (uint64)
LOWER, RANGE, POINT, NEXT_WORD = 0, 1, 2, 3
#: ``decode_piece`` return codes beside the number of escapes
OK, MAIN_INVALID, ESCAPE_INVALID = 0, 1, 2

_U24 = np.uint64(24)
_U32 = np.uint64(32)
_T = np.uint64(1 << 24)
_WORD_LIMIT = np.uint64(1 << 32)
#: escapes: Uniform(128) at 24-bit precision, every symbol frequency 2^17
_ESCAPE_SHIFT = np.uint64(17)


def decoder_state(words: np.ndarray) -> np.ndarray:
    """A fresh range decoder over ``words`` (uint32): docs/FORMAT.md 3.5.3.2's init."""
    state = np.zeros(4, dtype=np.uint64)
    state[RANGE] = np.uint64(0xFFFFFFFFFFFFFFFF)
    if words.size >= 2:
        state[POINT] = (np.uint64(words[0]) << _U32) | np.uint64(words[1])
    elif words.size == 1:
        state[POINT] = np.uint64(words[0]) << _U32
    state[NEXT_WORD] = min(words.size, 2)
    return state


@numba.njit(cache=True, nogil=True, inline="always")
def _decode_slot(state: np.ndarray, words: np.ndarray) -> np.uint64:
    """q = (point - lower) / scale, the value the model's intervals are searched for."""
    scale = state[RANGE] >> _U24
    return (state[POINT] - state[LOWER]) // scale


@numba.njit(cache=True, nogil=True, inline="always")
def _narrow(state: np.ndarray, words: np.ndarray, left: np.uint64, freq: np.uint64) -> None:
    """Narrow to the decoded symbol's interval and renormalise (past the end: zero words)."""
    scale = state[RANGE] >> _U24
    state[LOWER] = state[LOWER] + scale * left
    state[RANGE] = scale * freq
    if state[RANGE] < _WORD_LIMIT:
        state[LOWER] = state[LOWER] << _U32
        state[RANGE] = state[RANGE] << _U32
        nxt = state[NEXT_WORD]
        word = np.uint64(words[nxt]) if nxt < np.uint64(words.size) else np.uint64(0)
        state[POINT] = (state[POINT] << _U32) | word
        state[NEXT_WORD] = nxt + np.uint64(1)


@numba.njit(cache=True, nogil=True)
def _table_rows(buf, positions, levels, offsets, start, stop, w1, b1, w2, b2, w_head, b_head, rows_out,
                centres_out, ctx, h1, h2):
    """The integer ARM for the latents start..stop-1 of one wavefront: their table rows and
    centres. ctx (24, n), h1 and h2 (hidden, n) are scratch for n >= stop - start latents.

    The latents are the innermost loop: a wavefront's latents are independent, so that loop is
    vectorised, where a loop over one latent's hidden units waits on each partial sum."""
    hidden = w1.shape[1]
    n = stop - start
    for i in range(n):
        position = positions[start + i]
        offset = offsets[levels[start + i]]
        for k in range(w1.shape[0]):
            ctx[k, i] = buf[position + offset[k]]
    for j in range(hidden):
        for i in range(n):
            h1[j, i] = b1[j]
    for k in range(w1.shape[0]):
        column = ctx[k]
        for j in range(hidden):
            w = w1[k, j]
            row = h1[j]
            for i in range(n):
                row[i] += w * column[i]
    for j in range(hidden):
        for i in range(n):
            h1[j, i] = np.floor(max(h1[j, i], 0.0))
            h2[j, i] = b2[j]
    for k in range(hidden):
        column = h1[k]
        for j in range(hidden):
            w = w2[k, j]
            row = h2[j]
            for i in range(n):
                row[i] += w * column[i]
    for i in range(n):
        t = b_head[0]
        s = b_head[1]
        for j in range(hidden):
            a = np.floor(max(h2[j, i], 0.0)) + h1[j, i]
            t += a * w_head[j, 0]
            s += a * w_head[j, 1]
        ti = np.int64(np.floor(t))
        scale_bin = min(max(np.int64(np.floor(s)), 0), 72)
        rows_out[start + i] = (ti & 31) * 73 + scale_bin
        centres_out[start + i] = min(max(ti >> 5, -64), 63)


@numba.njit(cache=True, nogil=True)
def decode_piece(main_state, main_words, escape_state, escape_words, buf, positions, levels, bounds, offsets,
                 w1, b1, w2, b2, w_head, b_head, cumulative, rows_out, symbols_out, escapes_out):
    """Decode the latents of a piece of the wavefront walk into ``buf`` (int8, flat, zero-padded);
    wavefront j is ``positions[bounds[j]:bounds[j + 1]]``.

    ``offsets[level]``: the 24 context offsets in ``buf``; w1 (24, H), b1, w2 (H, H), b2: the ARM's
    hidden layers folded as ``IntegerArm`` folds them (+1/2 in the biases); w_head (H, 2), b_head:
    ``CoderHead``'s output layer, whose floored outputs are 32 * centre + mean bin and the
    unclamped scale bin; cumulative (rows, 65) uint64: left cumulative frequencies of each table row.
    Writes each latent's table row and symbol (for the end-of-stream check) and the escaped
    values. Returns (status, escapes written); on an invalid symbol it stops early.

    A wavefront's ARM outputs are computed before its symbols are decoded: the ARM is throughput
    work and the range decoder a chain of dependent steps, and apart they run at their own speeds
    (interleaved latent by latent, the pair measured twice as slow)."""
    centres = np.empty(positions.size, dtype=np.int64)
    widest = 0
    for front in range(bounds.size - 1):
        widest = max(widest, bounds[front + 1] - bounds[front])
    hidden = w1.shape[1]
    ctx, h1, h2 = np.empty((w1.shape[0], widest)), np.empty((hidden, widest)), np.empty((hidden, widest))
    n_escapes = 0
    for front in range(bounds.size - 1):
        start, stop = bounds[front], bounds[front + 1]
        _table_rows(buf, positions, levels, offsets, start, stop, w1, b1, w2, b2, w_head, b_head, rows_out,
                    centres, ctx, h1, h2)
        for i in range(start, stop):
            row = rows_out[i]
            q = _decode_slot(main_state, main_words)
            if q >= _T:
                return MAIN_INVALID, n_escapes
            # the symbol i with cumulative[row, i] <= q < cumulative[row, i + 1], found by halving
            # without branches (the comparisons' outcomes are unpredictable)
            symbol = 0
            for step in (32, 16, 8, 4, 2, 1):
                symbol = symbol + step if cumulative[row, symbol + step] <= q else symbol
            left = cumulative[row, symbol]
            _narrow(main_state, main_words, left, cumulative[row, symbol + 1] - left)
            symbols_out[i] = symbol
            if symbol == 63:
                q = _decode_slot(escape_state, escape_words)
                if q >= _T:
                    return ESCAPE_INVALID, n_escapes
                coded = q >> _ESCAPE_SHIFT
                _narrow(escape_state, escape_words, coded << _ESCAPE_SHIFT, np.uint64(1) << _ESCAPE_SHIFT)
                escapes_out[n_escapes] = np.int64(coded)
                n_escapes += 1
                buf[positions[i]] = np.int64(coded) - 64
            else:
                buf[positions[i]] = centres[i] + symbol - 31
    return OK, n_escapes
