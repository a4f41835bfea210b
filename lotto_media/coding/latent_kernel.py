"""The version-2 latent decoder, compiled with numba.

Decoding is sequential by nature: each latent's probabilities come from the integer ARM applied to
latents decoded before it, so a wavefront holds only a few dozen to a few hundred latents, too few
for a call from Python (some 50 us each) to pay. One compiled call therefore decodes a band of
wavefronts (a whole picture, or the 64 between two reports to the synthesis that runs beside it,
``lotto_media.stream.overlap``), resuming from a small state array: it walks the wavefronts of
docs/FORMAT.md 3.3 (computed on the fly, so no index array covers the picture), runs the integer
ARM for each wavefront (its two hidden layers as BLAS products, called from the compiled code),
maps its outputs to table rows and centres, decodes the symbols with the range decoder of
docs/FORMAT.md 3.5.3.2, reads escapes, and stores each latent where later contexts read it.

It also enforces docs/FORMAT.md 3.5.5 as it goes: a shadow encoder (3.5.3.1) re-encodes every
decoded symbol and compares each word it emits with the stream's, and a stream is refused as soon
as the renormalisations of what was decoded need more words than it has (a header claiming a
huge picture with a few bytes of data fails there, not after decoding every latent from zeros).

The ARM arithmetic is that of ``IntegerArm`` and ``CoderHead`` (float64 holding dyadic values;
group headers whose ARM could leave exact arithmetic are refused, docs/FORMAT.md 3.7, so every
product and sum is exact in any order); the coder is constriction 0.5.0's queue coder as
docs/FORMAT.md transcribes it. The tests check both against the reference implementations.
"""

from __future__ import annotations

import numba
import numpy as np

from ..model import arm

# Written out here, not imported: numba's on-disk cache notices changes to this file only, so a
# compiled loop would keep an imported constant's old value.
PAD, WAVEFRONT_SLOPE = 4, 4
assert (PAD, WAVEFRONT_SLOPE) == (arm.PAD, arm.WAVEFRONT_SLOPE)

#: ``decode_fronts`` and ``finish`` outcome codes (the first entry of their result)
OK = 0
INVALID = 1  # a decoder slot outside the model's range: no encoder writes this
RAN_OUT = 2  # the renormalisations so far need more words than the stream has
TOO_FEW_WORDS = 3  # the encoder's output for the decoded symbols is longer than the stream
UNUSED_WORDS = 4  # ... shorter than the stream
NOT_ENCODER_OUTPUT = 5  # ... differs from it
#: which stream an outcome concerns (the second entry)
MAIN, ESCAPE = 0, 1

_U24 = np.uint64(24)
_U32 = np.uint64(32)
_T = np.uint64(1 << 24)
_WORD_LIMIT = np.uint64(1 << 32)
_ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_WORD_MASK = np.uint64(0xFFFFFFFF)
#: escapes: Uniform(128) at 24-bit precision, every symbol frequency 2^17
_ESCAPE_SHIFT = np.uint64(17)
_ESCAPE_FREQ = np.uint64(1 << 17)

# decoder state (uint64 array): lower, range, point, next word, renormalisations
_LOWER, _RANGE, _POINT, _NEXT, _RENORMS = 0, 1, 2, 3, 4
# shadow encoder state: lower, range, held words, first held word, words emitted, first mismatch + 1
_E_LOWER, _E_RANGE, _E_HELD, _E_FIRST, _E_EMITTED, _E_MISMATCH = 0, 1, 2, 3, 4, 5


@numba.njit(cache=True, nogil=True)
def _start_decoder(state: np.ndarray, words: np.ndarray) -> None:
    """docs/FORMAT.md 3.5.3.2's init."""
    state[_RANGE] = _ALL_ONES
    if words.size >= 2:
        state[_POINT] = (np.uint64(words[0]) << _U32) | np.uint64(words[1])
    elif words.size == 1:
        state[_POINT] = np.uint64(words[0]) << _U32
    state[_NEXT] = 2


@numba.njit(cache=True, nogil=True)
def _encoder() -> np.ndarray:
    state = np.zeros(6, dtype=np.uint64)
    state[_E_RANGE] = _ALL_ONES
    return state


@numba.njit(cache=True, nogil=True, inline="always")
def _slot(state: np.ndarray) -> np.uint64:
    """q = (point - lower) / scale: the value whose interval holds the next symbol."""
    return (state[_POINT] - state[_LOWER]) // (state[_RANGE] >> _U24)


@numba.njit(cache=True, nogil=True, inline="always")
def _narrow(state: np.ndarray, words: np.ndarray, left: np.uint64, freq: np.uint64) -> None:
    """Narrow to the decoded symbol's interval and renormalise (past the end: zero words)."""
    scale = state[_RANGE] >> _U24
    state[_LOWER] = state[_LOWER] + scale * left
    state[_RANGE] = scale * freq
    if state[_RANGE] < _WORD_LIMIT:
        state[_LOWER] = state[_LOWER] << _U32
        state[_RANGE] = state[_RANGE] << _U32
        nxt = state[_NEXT]
        word = np.uint64(words[nxt]) if nxt < np.uint64(words.size) else np.uint64(0)
        state[_POINT] = (state[_POINT] << _U32) | word
        state[_NEXT] = nxt + np.uint64(1)
        state[_RENORMS] += np.uint64(1)


@numba.njit(cache=True, nogil=True, inline="always")
def _ran_out(state: np.ndarray, words: np.ndarray) -> bool:
    """The encoder's output for the symbols so far has at least renormalisations + 1 words."""
    return state[_RENORMS] + np.uint64(1) > np.uint64(words.size)


@numba.njit(cache=True, nogil=True)
def _emit(state: np.ndarray, words: np.ndarray, word: np.uint64) -> None:
    index = state[_E_EMITTED]
    if state[_E_MISMATCH] == 0 and index < np.uint64(words.size) and np.uint64(words[index]) != word:
        state[_E_MISMATCH] = index + np.uint64(1)
    state[_E_EMITTED] = index + np.uint64(1)


@numba.njit(cache=True, nogil=True)
def _release_held(state: np.ndarray, words: np.ndarray, carry: bool) -> None:
    if carry:
        _emit(state, words, state[_E_FIRST] + np.uint64(1))
        filler = np.uint64(0)
    else:
        _emit(state, words, state[_E_FIRST])
        filler = _WORD_MASK
    for _ in range(np.int64(state[_E_HELD]) - 1):
        _emit(state, words, filler)
    state[_E_HELD] = 0


@numba.njit(cache=True, nogil=True)
def _encode(state: np.ndarray, words: np.ndarray, left: np.uint64, freq: np.uint64) -> None:
    """docs/FORMAT.md 3.5.3.1's encode, its words compared with the stream's as they come."""
    scale = state[_E_RANGE] >> _U24
    state[_E_RANGE] = scale * freq
    new_lower = state[_E_LOWER] + scale * left
    if state[_E_HELD] > 0 and new_lower + state[_E_RANGE] > new_lower:
        _release_held(state, words, new_lower < state[_E_LOWER])
    state[_E_LOWER] = new_lower
    if state[_E_RANGE] < _WORD_LIMIT:
        state[_E_RANGE] = state[_E_RANGE] << _U32
        word = state[_E_LOWER] >> _U32
        state[_E_LOWER] = state[_E_LOWER] << _U32
        if state[_E_HELD] > 0:
            state[_E_HELD] += np.uint64(1)
        elif state[_E_LOWER] + state[_E_RANGE] > state[_E_LOWER]:
            _emit(state, words, word)
        else:
            state[_E_HELD] = 1
            state[_E_FIRST] = word


@numba.njit(cache=True, nogil=True)
def _seal(state: np.ndarray, words: np.ndarray) -> int:
    """docs/FORMAT.md 3.5.3.1's termination, then the verdict on the whole stream."""
    if state[_E_RANGE] != _ALL_ONES:
        point = state[_E_LOWER] + (_WORD_LIMIT - np.uint64(1))
        if state[_E_HELD] > 0:
            _release_held(state, words, point < state[_E_LOWER])
        _emit(state, words, point >> _U32)
        if (state[_E_LOWER] + state[_E_RANGE]) >> _U32 == point >> _U32:
            _emit(state, words, np.uint64(0))
    if state[_E_EMITTED] > np.uint64(words.size):
        return TOO_FEW_WORDS
    if state[_E_EMITTED] < np.uint64(words.size):
        return UNUSED_WORDS
    if state[_E_MISMATCH] != 0:
        return NOT_ENCODER_OUTPUT
    return OK


@numba.njit(cache=True, nogil=True)
def check_words(lefts: np.ndarray, freqs: np.ndarray, words: np.ndarray) -> int:
    """The shadow encoder's verdict on ``words`` for symbols with these intervals (uint64): OK
    when they are exactly the encoder's output. For the tests, which hold it to a reference
    encoder; decoding runs the same steps inside ``decode_picture_latents``."""
    shadow = _encoder()
    for i in range(lefts.size):
        _encode(shadow, words, lefts[i], freqs[i])
    return _seal(shadow, words)


@numba.njit(cache=True, nogil=True)
def _table_rows(buf: np.ndarray, positions: np.ndarray, levels: np.ndarray, n: int, offsets: np.ndarray,
                w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray, w_head: np.ndarray,
                b_head: np.ndarray, rows_out: np.ndarray, centres_out: np.ndarray, ctx: np.ndarray, h1: np.ndarray,
                h2: np.ndarray) -> None:
    """The integer ARM for the first n latents of ``positions`` (one wavefront): their table rows
    and centres. ctx (rows >= n, 24 + taps), h1 and h2 (rows >= n, hidden) are scratch, and must be
    C-contiguous arrays of their own, not views: numba's ``np.dot`` would write a non-contiguous
    ``out`` into a temporary copy and drop it.

    The two hidden layers are matrix products of the wavefront's contexts, which BLAS runs
    (numba calls it without Python in between): the folded weights and biases are dyadic values
    whose products and sums stay on a common grid below 2^50 of its units (docs/FORMAT.md 3.7,
    ``IntegerArm``), so float64 holds every partial sum exactly and any summation order gives the
    same result. Measured against loops with the latents innermost: the latents of a quality-90
    picture (384x256, 229k latents, ARM 24 wide) decoded about 1.3x faster."""
    hidden = w1.shape[1]
    for i in range(n):
        position = positions[i]
        offset = offsets[levels[i]]
        for k in range(w1.shape[0]):
            ctx[i, k] = buf[position + offset[k]]
    a1 = h1[:n]
    np.dot(ctx[:n], w1, a1)
    for i in range(n):
        for j in range(hidden):
            a1[i, j] = np.floor(max(a1[i, j] + b1[j], 0.0))
    a2 = h2[:n]
    np.dot(a1, w2, a2)
    for i in range(n):
        t = b_head[0]
        s = b_head[1]
        for j in range(hidden):
            a = np.floor(max(a2[i, j] + b2[j], 0.0)) + a1[i, j]
            t += a * w_head[j, 0]
            s += a * w_head[j, 1]
        ti = np.int64(np.floor(t))
        scale_bin = min(max(np.int64(np.floor(s)), 0), 72)
        rows_out[i] = (ti & 31) * 73 + scale_bin
        centres_out[i] = min(max(ti >> 5, -64), 63)


#: rows of a ``new_state`` array: the two decoders, their shadow encoders, then the walk's position
_MAIN, _ESCAPE, _MAIN_SHADOW, _ESCAPE_SHADOW, _WALK = 0, 1, 2, 3, 4
#: entries of the walk row: latents decoded, wavefronts decoded
_DECODED, _FRONTS = 0, 1


@numba.njit(cache=True, nogil=True)
def new_state(main_words: np.ndarray, escape_words: np.ndarray) -> np.ndarray:
    """A picture's decoding state before its first wavefront (uint64, (5, 6)): what
    ``decode_fronts`` resumes from, so a picture can be decoded a band of wavefronts at a time."""
    state = np.zeros((5, 6), dtype=np.uint64)
    _start_decoder(state[_MAIN], main_words)
    _start_decoder(state[_ESCAPE], escape_words)
    state[_MAIN_SHADOW, _E_RANGE] = _ALL_ONES
    state[_ESCAPE_SHADOW, _E_RANGE] = _ALL_ONES
    return state


@numba.njit(cache=True, nogil=True)
def decode_fronts(state: np.ndarray, main_words: np.ndarray, escape_words: np.ndarray, buf: np.ndarray,
                  shapes: np.ndarray, bases: np.ndarray, offsets: np.ndarray, w1: np.ndarray, b1: np.ndarray,
                  w2: np.ndarray, b2: np.ndarray, w_head: np.ndarray, b_head: np.ndarray, cumulative: np.ndarray,
                  front_stop: int) -> np.ndarray:
    """Decode the wavefronts from where ``state`` stands up to ``front_stop`` (exclusive) into
    ``buf`` (int8, flat, zero-padded as ``ContextLayout`` lays it out: level ``l`` of ``shapes[l]`` =
    (h, w) at ``bases[l]``, rows ``w + 2 PAD`` wide). Level ``l``'s row ``r`` is complete once
    wavefront ``w - 1 + 4 r`` is.

    ``offsets[level]``: the context offsets in ``buf`` (24, then any temporal taps, which read the
    previous frame's region of ``buf``); w1 (24 + taps, H), b1, w2 (H, H), b2: the ARM's
    hidden layers folded as ``IntegerArm`` folds them (+1/2 in the biases); w_head (H, 2), b_head:
    ``CoderHead``'s output layer, whose floored outputs are 32 * centre + mean bin and the
    unclamped scale bin; cumulative (rows, 65) uint64: left cumulative frequencies of each table row.

    Returns int64 [outcome, stream, latents decoded, words the stream needs]: the words are the
    renormalisations + 1 when it ran out. After an outcome other than OK the state is spent.

    A wavefront's ARM outputs are computed before its symbols are decoded: the ARM is throughput
    work and the range decoder a chain of dependent steps, and apart they run at their own speeds
    (interleaved latent by latent, the pair measured twice as slow)."""
    result = np.zeros(4, dtype=np.int64)
    n_levels = shapes.shape[0]
    widest = 0
    for level in range(n_levels):
        h, w = shapes[level, 0], shapes[level, 1]
        widest += min(h, (w + WAVEFRONT_SLOPE - 1) // WAVEFRONT_SLOPE)
    hidden = w1.shape[1]
    positions = np.empty(widest, dtype=np.int64)
    levels = np.empty(widest, dtype=np.int64)
    rows = np.empty(widest, dtype=np.int64)
    centres = np.empty(widest, dtype=np.int64)
    ctx, h1, h2 = np.empty((widest, w1.shape[0])), np.empty((widest, hidden)), np.empty((widest, hidden))
    main, escape = state[_MAIN], state[_ESCAPE]
    main_shadow, escape_shadow = state[_MAIN_SHADOW], state[_ESCAPE_SHADOW]
    decoded = np.int64(state[_WALK, _DECODED])
    for front in range(np.int64(state[_WALK, _FRONTS]), front_stop):
        n = 0
        for level in range(n_levels):
            h, w = shapes[level, 0], shapes[level, 1]
            row_lo = max(0, (front - w + WAVEFRONT_SLOPE) // WAVEFRONT_SLOPE)
            row_hi = min(h - 1, front // WAVEFRONT_SLOPE)
            for r in range(row_lo, row_hi + 1):
                positions[n] = bases[level] + (r + PAD) * (w + 2 * PAD) + front - WAVEFRONT_SLOPE * r + PAD
                levels[n] = level
                n += 1
        _table_rows(buf, positions, levels, n, offsets, w1, b1, w2, b2, w_head, b_head, rows, centres, ctx, h1, h2)
        for i in range(n):
            row = rows[i]
            q = _slot(main)
            if q >= _T:
                result[0], result[1], result[2] = INVALID, MAIN, decoded
                return result
            # the symbol s with cumulative[row, s] <= q < cumulative[row, s + 1], found by halving
            # without branches (the comparisons' outcomes are unpredictable)
            symbol = 0
            for step in (32, 16, 8, 4, 2, 1):
                symbol = symbol + step if cumulative[row, symbol + step] <= q else symbol
            left = cumulative[row, symbol]
            freq = cumulative[row, symbol + 1] - left
            _narrow(main, main_words, left, freq)
            _encode(main_shadow, main_words, left, freq)
            decoded += 1
            if _ran_out(main, main_words):
                result[0], result[1], result[2], result[3] = RAN_OUT, MAIN, decoded, np.int64(main[_RENORMS]) + 1
                return result
            if symbol == 63:
                q = _slot(escape)
                if q >= _T:
                    result[0], result[1], result[2] = INVALID, ESCAPE, decoded
                    return result
                coded = q >> _ESCAPE_SHIFT
                left = coded << _ESCAPE_SHIFT
                _narrow(escape, escape_words, left, _ESCAPE_FREQ)
                _encode(escape_shadow, escape_words, left, _ESCAPE_FREQ)
                if _ran_out(escape, escape_words):
                    result[0], result[1], result[2], result[3] = RAN_OUT, ESCAPE, decoded, np.int64(escape[_RENORMS]) + 1
                    return result
                buf[positions[i]] = np.int64(coded) - 64
            else:
                buf[positions[i]] = centres[i] + symbol - 31
    state[_WALK, _DECODED] = decoded
    state[_WALK, _FRONTS] = max(np.int64(state[_WALK, _FRONTS]), front_stop)
    result[2] = decoded
    return result


@numba.njit(cache=True, nogil=True)
def finish(state: np.ndarray, main_words: np.ndarray, escape_words: np.ndarray) -> np.ndarray:
    """After the last wavefront: whether both streams end as the encoder's would for what was
    decoded (docs/FORMAT.md 3.5.5). Returns ``decode_fronts``'s result."""
    result = np.zeros(4, dtype=np.int64)
    result[2] = np.int64(state[_WALK, _DECODED])
    outcome = _seal(state[_MAIN_SHADOW], main_words)
    if outcome != OK:
        result[0], result[1], result[3] = outcome, MAIN, np.int64(state[_MAIN_SHADOW, _E_EMITTED])
        return result
    outcome = _seal(state[_ESCAPE_SHADOW], escape_words)
    if outcome != OK:
        result[0], result[1], result[3] = outcome, ESCAPE, np.int64(state[_ESCAPE_SHADOW, _E_EMITTED])
    return result
