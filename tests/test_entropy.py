"""Entropy coding units: latents (escapes included), mask, and the network parameters' codes
(range-coded, group header version 5; exp-Golomb, versions 2-4).

Versions 1 and 2 of the latent and mask coding; for version 2, a pure-Python range coder written
from docs/format_entropy_v2.md checks that constriction codes exactly the integer frequencies the
format defines, and that every stream must end exactly where the encoder's termination ends it."""

from __future__ import annotations

import bisect
import hashlib

import constriction
import numpy as np
import pytest

from lotto_media.coding import entropy, latent_kernel
from lotto_media.model.arm import CONTEXT_OFFSETS, IntegerArm
from lotto_media.coding.entropy import (
    ESCAPE,
    FREQ_BITS,
    bernoulli_frequency,
    context_code_length,
    latent_contexts,
    decode_latents,
    decode_mask,
    decode_mask_delta,
    encode_latents,
    encode_mask,
    encode_mask_delta,
    estimate_latent_bits,
    exp_golomb_decode,
    exp_golomb_encode,
    laplace_frequencies,
    laplace_tables,
    latent_symbols,
    table_index,
)
from lotto_media.errors import FormatError
from lotto_media.model.latents import level_shapes


def random_arm(seed: int, hidden: int = 8, frac: int = 8, scale: float = 0.0) -> IntegerArm:
    rng = np.random.default_rng(seed)
    w = lambda *shape: np.round(rng.normal(0, 0.3, shape) * (1 << frac)).astype(np.float64)  # noqa: E731
    b3 = np.array([0.0, scale * (1 << frac)])
    return IntegerArm(w(hidden, 24), w(hidden), w(hidden, hidden), w(hidden), w(2, hidden), b3, frac)


SHAPES = [(13, 17), (7, 9), (4, 5), (2, 3), (1, 2), (1, 1)]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("spread", [0.7, 3.0, 40.0])
def test_latents_round_trip_and_match_the_estimate(spread: float, version: int):
    rng = np.random.default_rng(int(spread * 10))
    latents = [np.clip(np.round(rng.laplace(0, spread, s)), -64, 63).astype(np.int64) for s in SHAPES]
    arm = random_arm(1, scale=np.log(spread))
    data = encode_latents(latents, arm, version=version)
    assert same(decode_latents(data, SHAPES, arm, version=version), latents)
    estimate = estimate_latent_bits(latents, arm, version=version)
    assert abs(8 * len(data) - estimate) <= 0.02 * estimate + 8 * 12


@pytest.mark.parametrize("version", [1, 2])
def test_large_values_take_the_escape_path(version: int):
    latents = [np.full(s, 63, dtype=np.int64) for s in SHAPES]
    latents[0][::2, ::3] = -64
    arm = random_arm(2, scale=-4.0)  # a confident model around 0: the extremes must escape
    assert (latent_symbols(latents, arm).symbols == ESCAPE).any()
    data = encode_latents(latents, arm, version=version)
    assert same(decode_latents(data, SHAPES, arm, version=version), latents)


def test_truncated_version_1_latent_streams_fail_cleanly():
    rng = np.random.default_rng(5)
    latents = [np.round(rng.laplace(0, 2.0, s)).astype(np.int64) for s in SHAPES]
    arm = random_arm(3, scale=np.log(2.0))
    data = encode_latents(latents, arm, version=1)
    for cut in (0, 3, 5, len(data) // 2):
        try:
            decoded = decode_latents(data[:cut], SHAPES, arm, version=1)
        except FormatError:
            continue
        # Version 1's range decoder may run past its end without noticing; it must then not claim
        # success with the original values (the container's CRC is what detects damage).
        assert not same(decoded, latents)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("kept", [0, 1, 17, 1000, 1722, 1723])
def test_mask_round_trip(kept: int, version: int):
    rng = np.random.default_rng(kept)
    mask = np.zeros(1723, dtype=bool)
    mask[rng.choice(1723, kept, replace=False)] = True
    code = encode_mask(mask, version=version)
    assert np.array_equal(decode_mask(code, 1723, kept, version=version), mask)
    if version == 2 and kept in (0, 1723):
        assert code == b""  # every bit is known from the header


@pytest.mark.parametrize("version", [1, 2])
def test_mask_with_the_wrong_count_is_rejected(version: int):
    mask = np.zeros(100, dtype=bool)
    mask[:30] = True
    with pytest.raises(FormatError, match="kept"):
        decode_mask(encode_mask(mask, version=version), 100, 31, version=version)


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
    from lotto_media.coding.entropy import CoderHead, table_index

    rng = np.random.default_rng(frac)
    for scale in (0.0, 5.0, -6.0):
        arm = random_arm(frac, hidden=12, frac=frac, scale=scale)
        context = rng.integers(-64, 64, (5000, 24)) * rng.integers(0, 2, (5000, 1))
        expected = table_index(*arm(context))
        got = CoderHead.for_arm(arm).table_index(arm, context)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected))
        assert len(np.unique(expected[1])) > 20  # many table rows exercised


# --- version 2: a reference range coder written from docs/format_entropy_v2.md ----------------

M64 = (1 << 64) - 1
T = 1 << 24


class RefEncoder:
    """docs/format_entropy_v2.md section 3.1, one symbol interval (F, f) at a time."""

    def __init__(self) -> None:
        self.lower, self.range, self.held, self.first, self.words = 0, M64, 0, 0, []
        self.releases = 0  # how often held-back words were released (the carry logic ran)

    def _release(self, carry: bool) -> None:
        self.releases += 1
        if carry:
            self.words += [self.first + 1] + [0] * (self.held - 1)
        else:
            self.words += [self.first] + [0xFFFFFFFF] * (self.held - 1)
        self.held = 0

    def encode(self, left: int, freq: int) -> None:
        scale = self.range >> 24
        self.range = scale * freq
        new_lower = (self.lower + scale * left) & M64
        if self.held and (new_lower + self.range) & M64 > new_lower:
            self._release(new_lower < self.lower)
        self.lower = new_lower
        if self.range < 1 << 32:
            self.range <<= 32
            word = self.lower >> 32
            self.lower = (self.lower << 32) & M64
            if self.held:
                self.held += 1
            elif (self.lower + self.range) & M64 > self.lower:
                self.words.append(word)
            else:
                self.held, self.first = 1, word

    def finish(self) -> list[int]:
        if self.range == M64:
            return []
        point = (self.lower + (1 << 32) - 1) & M64
        if self.held:
            self._release(point < self.lower)
        self.words.append(point >> 32)
        if ((self.lower + self.range) & M64) >> 32 == point >> 32:
            self.words.append(0)
        return self.words


class RefDecoder:
    """docs/format_entropy_v2.md section 3.2; ``decode`` takes a model's cumulative frequencies."""

    def __init__(self, words) -> None:
        self.words = [int(w) for w in words]
        self.pos = min(2, len(self.words))
        first_two = self.words[:2] + [0] * (2 - self.pos)
        self.point = first_two[0] << 32 | first_two[1]
        self.lower, self.range = 0, M64

    def decode(self, cum: list[int]) -> int:
        scale = self.range >> 24
        q = ((self.point - self.lower) & M64) // scale
        if q >= T:
            raise ValueError("invalid data")
        i = bisect.bisect_right(cum, q) - 1
        self.lower = (self.lower + scale * cum[i]) & M64
        self.range = scale * (cum[i + 1] - cum[i])
        if self.range < 1 << 32:
            self.lower = (self.lower << 32) & M64
            self.range <<= 32
            word = self.words[self.pos] if self.pos < len(self.words) else 0
            self.pos += 1
            self.point = ((self.point << 32) & M64) | word
        return i


def ref_encode(intervals) -> list[int]:
    coder = RefEncoder()
    for left, freq in intervals:
        coder.encode(int(left), int(freq))
    return coder.finish()


def cumulative(freq: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros(freq.shape[:-1] + (1,), dtype=np.int64), np.cumsum(freq, axis=-1)], axis=-1)


def words(data: bytes) -> list[int]:
    return np.frombuffer(data, dtype="<u4").tolist()


def test_v2_frequencies_are_pinned():
    freq = laplace_frequencies()
    assert freq.shape == (32 * 73, 64) and freq.dtype == np.int64
    assert (freq >= 1).all() and (freq.sum(axis=1) == T).all()
    assert hashlib.sha256(freq.astype("<i8").tobytes()).hexdigest() == (
        "86701aa0deef5ce955d867f5fde6f6d1e4006c7f6711cbc6b70a303dc1a242d2"
    )
    # the examples of docs/format_entropy_v2.md section 2
    assert freq[0, 30:32].tolist() == [2055145, 14722008] and freq[0, 63] == 2
    assert (np.delete(freq[0], [30, 31, 63]) == 1).all()
    assert freq[1204, 28:35].tolist() == [428516, 1164826, 3166323, 6600054, 3266832, 1201802, 442118]
    # the rule, in Python integers, from the version-1 tables
    table = laplace_tables().astype(np.int64)
    for row in range(0, 32 * 73, 37):
        t = [int(v) for v in table[row]]
        total, cum, bounds = sum(t), 0, []
        for i in range(65):
            bounds.append(cum * (T - 64) // total + i)
            cum += t[i] if i < 64 else 0
        assert [b - a for a, b in zip(bounds, bounds[1:])] == freq[row].tolist()


def test_v2_coder_uses_exactly_the_integer_frequencies_on_every_table_entry():
    """Every (row, symbol) pair of the table once, in a random order, through constriction and
    through the reference coder: the same words, and each decodes the other's stream."""
    freq = laplace_frequencies()
    rng = np.random.default_rng(0)
    pairs = rng.permutation(freq.size)
    rows, symbols = pairs // 64, (pairs % 64).astype(np.int32)
    cum = cumulative(freq)
    expected = ref_encode(zip(cum[rows, symbols].tolist(), freq[rows, symbols].tolist()))
    coder = constriction.stream.queue.RangeEncoder()
    weights = entropy._latent_weights_v2()
    for start in range(0, rows.size, 20000):
        coder.encode(symbols[start : start + 20000], entropy._model(), weights[rows[start : start + 20000]])
    assert coder.get_compressed().tolist() == expected
    # the decoder's stream check (a compiled copy of the encoder) agrees word for word, held-back
    # words included
    ref = RefEncoder()
    for left, f in zip(cum[rows, symbols].tolist(), freq[rows, symbols].tolist()):
        ref.encode(left, f)
    assert ref.finish() == expected and ref.releases > 0
    lefts, freqs = cum[rows, symbols].astype(np.uint64), freq[rows, symbols].astype(np.uint64)
    words_ = np.array(expected, dtype=np.uint32)
    assert latent_kernel.check_words(lefts, freqs, words_) == latent_kernel.OK
    assert latent_kernel.check_words(lefts, freqs, words_[:-1]) == latent_kernel.TOO_FEW_WORDS
    assert latent_kernel.check_words(lefts, freqs, np.append(words_, np.uint32(0))) == latent_kernel.UNUSED_WORDS
    damaged = words_.copy()
    damaged[len(damaged) // 2] ^= 1
    assert latent_kernel.check_words(lefts, freqs, damaged) == latent_kernel.NOT_ENCODER_OUTPUT
    decoder = constriction.stream.queue.RangeDecoder(np.array(expected, dtype=np.uint32))
    assert np.array_equal(decoder.decode(entropy._model(), weights[rows]), symbols)
    ref = RefDecoder(expected)
    cum_rows = cum.tolist()
    assert [ref.decode(cum_rows[r]) for r in rows[:3000].tolist()] == symbols[:3000].tolist()


def test_raw_frequencies_are_not_kept_by_constrictions_quantiser():
    """Why version 2 hands constriction f - 1: given f itself, its quantiser rescales by
    (2^24 - n) / 2^24 and moves the frequencies ([2^24 - 1, 1] becomes [2^24 - 2, 2])."""
    bits = np.ones(40, dtype=np.int32)
    for given, coded in (([T - 1, 1], (T - 2, 2)), ([T - 2, 2], (T - 3, 3))):
        coder = constriction.stream.queue.RangeEncoder()
        raw = constriction.stream.model.Categorical(np.array(given, dtype=np.float64), perfect=False)
        coder.encode(bits, raw)
        assert coder.get_compressed().tolist() == ref_encode([coded] * 40)
    coder = constriction.stream.queue.RangeEncoder()
    exact = constriction.stream.model.Categorical(entropy.coder_weights(np.array([T - 1, 1])), perfect=False)
    coder.encode(bits, exact)
    assert coder.get_compressed().tolist() == ref_encode([(T - 1, 1)] * 40)


@pytest.mark.parametrize(
    "n_kept,n", [(3, 10), (1, 1723), (1722, 1723), (1, 40_000_000), (39_999_999, 40_000_000), (500, 1000)]
)
def test_v2_mask_model_uses_the_documented_frequencies(n_kept: int, n: int):
    f1 = bernoulli_frequency(n_kept, n)
    assert f1 == min(max((2 * n_kept * T + n) // (2 * n), 1), T - 1)
    rng = np.random.default_rng(n_kept)
    size = min(n, 3000)
    bits = np.zeros(size, dtype=bool)
    bits[rng.choice(size, max(1, min(n_kept, size - 1)), replace=False)] = True
    coder = constriction.stream.queue.RangeEncoder()
    coder.encode(bits.astype(np.int32), entropy._bernoulli_model(n_kept, n))
    assert coder.get_compressed().tolist() == ref_encode((T - f1, f1) if b else (0, T - f1) for b in bits)


def test_v2_documented_examples():
    assert bernoulli_frequency(3, 10) == 5033165
    mask = np.array([0, 1, 0, 0, 1, 0, 0, 0, 1, 0], dtype=bool)
    assert encode_mask(mask).hex() == "38f1c691"
    m, ref = np.zeros(20, dtype=bool), np.zeros(20, dtype=bool)
    m[[1, 5, 7]], ref[[1, 5, 8]] = True, True
    assert encode_mask_delta(m, ref).hex() == "02000000fd333879"


def test_escape_model_is_uniform_with_frequency_2_to_the_17():
    values = np.random.default_rng(1).integers(0, 128, 500).astype(np.int32)
    coder = constriction.stream.queue.RangeEncoder()
    coder.encode(values, constriction.stream.model.Uniform(128))
    assert coder.get_compressed().tolist() == ref_encode((int(v) << 17, 1 << 17) for v in values)


def ref_decode_latents(data: bytes, shapes: list[tuple[int, int]], arm: IntegerArm) -> list[np.ndarray]:
    """A version-2 latent packet decoded from the documents alone: FORMAT.md 3.3 (order, ARM, table
    index), docs/format_entropy_v2.md (frequencies, range decoder, escapes, end of stream)."""
    main_len = int.from_bytes(data[:4], "little")
    main_words, escape_words = words(data[4 : 4 + main_len]), words(data[4 + main_len :])
    main, escape = RefDecoder(main_words), RefDecoder(escape_words)
    cum = cumulative(laplace_frequencies()).tolist()
    uniform = [v << 17 for v in range(129)]
    out = [np.zeros(s, dtype=np.int64) for s in shapes]
    intervals, escape_intervals = [], []
    n_fronts = max(w + 4 * (h - 1) for h, w in shapes)
    for front in range(n_fronts):
        for level, (h, w) in enumerate(shapes):
            for r in range(h):
                c = front - 4 * r
                if not 0 <= c < w:
                    continue
                grid = out[level]
                context = [
                    grid[r + dy, c + dx] if 0 <= r + dy < h and 0 <= c + dx < w else 0 for dy, dx in CONTEXT_OFFSETS
                ]
                centre, row = (int(v[0]) for v in table_index(*arm(np.array([context], dtype=np.float64))))
                symbol = main.decode(cum[row])
                intervals.append((cum[row][symbol], cum[row][symbol + 1] - cum[row][symbol]))
                if symbol == 63:
                    v = escape.decode(uniform)
                    escape_intervals.append((v << 17, 1 << 17))
                    grid[r, c] = v - 64
                else:
                    grid[r, c] = centre + symbol - 31
    # section 5: each stream must be exactly the encoder's output for what was decoded
    if ref_encode(intervals) != main_words or ref_encode(escape_intervals) != escape_words:
        raise FormatError("latent stream: not the encoder's output")
    return out


def escape_rich_latents(seed: int) -> tuple[list[np.ndarray], IntegerArm]:
    rng = np.random.default_rng(seed)
    latents = [np.clip(np.round(rng.laplace(0, 2.0, s)), -64, 63).astype(np.int64) for s in SHAPES]
    latents[0][1::3, ::4] = rng.choice([-64, -50, 45, 63], latents[0][1::3, ::4].shape)
    return latents, random_arm(seed, scale=np.log(2.0))


def test_reference_decoder_written_from_the_docs_reads_the_v2_latent_code():
    latents, arm = escape_rich_latents(7)
    data = encode_latents(latents, arm)
    assert (latent_symbols(latents, arm).symbols == ESCAPE).sum() >= 10
    assert same(ref_decode_latents(data, SHAPES, arm), latents)
    main_len = int.from_bytes(data[:4], "little")
    short = repack(data[4:main_len], data[4 + main_len :])  # the main stream's last word dropped
    with pytest.raises(FormatError):  # the reference decoder sees it too
        ref_decode_latents(short, SHAPES, arm)


def repack(main: bytes, escape: bytes) -> bytes:
    """A latent code with consistent framing (as after a CRC is recomputed)."""
    return len(main).to_bytes(4, "little") + main + escape


def test_v2_latent_stream_must_end_where_the_encoder_ended_it():
    latents, arm = escape_rich_latents(8)
    data = encode_latents(latents, arm)
    main_len = int.from_bytes(data[:4], "little")
    main, escape = data[4 : 4 + main_len], data[4 + main_len :]
    assert len(escape) >= 8
    assert same(decode_latents(repack(main, escape), SHAPES, arm), latents)
    damaged = {
        "emptied main stream": repack(b"", escape),
        "emptied latent code": repack(b"", b""),
        "main stream one word short": repack(main[:-4], escape),
        "main stream half": repack(main[: len(main) // 8 * 4], escape),
        "a zero word appended to the main stream": repack(main + bytes(4), escape),
        "a word appended to the main stream": repack(main + b"\x12\x34\x56\x78", escape),
        "last main word changed": repack(main[:-4] + bytes([main[-4] ^ 1]) + main[-3:], escape),
        "emptied escape stream": repack(main, b""),
        "escape stream one word short": repack(main, escape[:-4]),
        "a word appended to the escape stream": repack(main, escape + bytes(4)),
        "main stream moved into the escape stream": repack(main[:-4], main[-4:] + escape),
    }
    for what, packet in damaged.items():
        with pytest.raises(FormatError, match="^latent stream: "):
            decode_latents(packet, SHAPES, arm)
            pytest.fail(f"{what}: decoded without an error")



def test_v1_latent_and_mask_streams_must_end_where_the_encoder_ended_them():
    """Version 1 streams were all written by constriction's encoder with the tables the decoder
    uses, so the same end-of-stream rule holds for them (an emptied stream once decoded to
    something without an error)."""
    latents, arm = escape_rich_latents(8)
    data = encode_latents(latents, arm, version=1)
    main_len = int.from_bytes(data[:4], "little")
    main, escape = data[4 : 4 + main_len], data[4 + main_len :]
    assert same(decode_latents(data, SHAPES, arm, version=1), latents)
    damaged = {
        "emptied main stream": repack(b"", escape),
        "main stream one word short": repack(main[:-4], escape),
        "main stream zeroed": repack(bytes(len(main)), escape),
        "a zero word appended to the main stream": repack(main + bytes(4), escape),
        "emptied escape stream": repack(main, b""),
        "a word appended to the escape stream": repack(main, escape + bytes(4)),
    }
    for what, packet in damaged.items():
        with pytest.raises(FormatError, match="^latent stream: "):
            decode_latents(packet, SHAPES, arm, version=1)
            pytest.fail(f"{what}: decoded without an error")
    mask = np.zeros(1723, dtype=bool)
    mask[::7] = True
    code = encode_mask(mask, version=1)
    assert np.array_equal(decode_mask(code, 1723, int(mask.sum()), version=1), mask)
    for packet in (b"", code[:-4], code + bytes(4)):
        with pytest.raises(FormatError, match="^mask: "):
            decode_mask(packet, 1723, int(mask.sum()), version=1)


@pytest.mark.parametrize("version", [1, 2])
def test_a_stream_that_runs_out_is_refused_where_its_data_ends(version: int):
    """A few words cannot code a large grid: decoding stops within a piece of the wavefront walk
    of where the data ran out (constriction shifts in zeros past the end), not after the last of
    the latents the shapes claim."""
    latents, arm = escape_rich_latents(8)
    data = encode_latents(latents, arm, version=version)
    shapes = level_shapes(4000, 4000, 7)
    ends_early = r"^latent stream: (escape stream: )?data ends early \(\d+ words; the first \d+ latents"
    with pytest.raises(FormatError, match=ends_early):
        decode_latents(data, shapes, arm, version=version)


def test_wavefront_pieces_follow_the_format_order():
    """The piecewise walk gives every latent in the order of docs/FORMAT.md 3.3 (wavefront c + 4r,
    then level, then row), whatever the piece size, for odd shapes and levels narrower than 4."""
    from lotto_media.model.arm import PAD, ContextLayout

    rng = np.random.default_rng(0)
    cases = [level_shapes(h, w, n) for h, w, n in [(1, 1, 1), (16, 24, 7), (11, 13, 7), (1, 100, 3), (100, 1, 5),
                                                   (3, 2, 7), (257, 129, 12)]]
    cases += [level_shapes(int(rng.integers(1, 60)), int(rng.integers(1, 60)), int(rng.integers(1, 13)))
              for _ in range(40)]
    for shapes in cases:
        layout = ContextLayout.for_shapes(shapes)
        keys, positions = [], []
        for level, (h, w) in enumerate(shapes):
            r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            keys.append((c + 4 * r).ravel())
            positions.append((layout.bases[level] + (r + PAD) * (w + 2 * PAD) + c + PAD).ravel())
        key = np.concatenate(keys)
        order = np.argsort(key, kind="stable")
        fronts = np.unique(key, return_counts=True)[1].tolist()
        for piece_size in (1, 7, 1 << 15):
            pieces = list(layout.pieces(piece_size))
            assert np.array_equal(np.concatenate([p.positions for p in pieces]), np.concatenate(positions)[order])
            assert [b - a for p in pieces for a, b in zip(p.bounds[:-1], p.bounds[1:])] == fronts


def test_v2_latents_without_escapes_have_an_empty_escape_stream():
    latents = [np.zeros(s, dtype=np.int64) for s in SHAPES]
    arm = random_arm(3, scale=0.0)
    data = encode_latents(latents, arm)
    assert int.from_bytes(data[:4], "little") == len(data) - 4
    with pytest.raises(FormatError, match="escape stream: 1 unused words"):
        decode_latents(data + bytes(4), SHAPES, arm)


def test_v2_bit_streams_detect_a_missing_or_extra_termination_word():
    """The termination writes a second, zero, word in about 1 % of streams; a decoder alone cannot
    miss it (it shifts in zeros past the end), the end-of-stream rule does."""
    rng = np.random.default_rng(3)
    two_word_endings = 0
    for _ in range(1500):
        n = int(rng.integers(2, 60))
        bits = rng.random(n) < rng.uniform(0.05, 0.95)
        k = int(bits.sum())
        if k in (0, n):
            continue
        code = encode_mask(bits)
        assert np.array_equal(decode_mask(code, n, k), bits)
        f1 = bernoulli_frequency(k, n)
        ref = RefEncoder()
        for b in bits:
            ref.encode(*((T - f1, f1) if b else (0, T - f1)))
        point = (ref.lower + (1 << 32) - 1) & M64
        two_word_endings += ((ref.lower + ref.range) & M64) >> 32 == point >> 32
        assert words(code) == ref.finish()
        for damaged in (code[:-4], code + bytes(4)):
            with pytest.raises(FormatError, match="^mask: "):
                decode_mask(damaged, n, k)
    assert two_word_endings >= 3


def test_v2_mask_stream_ends_are_checked():
    rng = np.random.default_rng(4)
    mask = rng.random(1723) < 0.3
    k = int(mask.sum())
    code = encode_mask(mask)
    for damaged in (b"", code[:-4], code + bytes(4), code + b"\xff\xff\xff\xff", code[:-1]):
        with pytest.raises(FormatError, match="^mask: "):
            decode_mask(damaged, 1723, k)
    full = np.ones(1723, dtype=bool)
    assert encode_mask(full) == b""
    with pytest.raises(FormatError, match="^mask: 1 unused words"):
        decode_mask(bytes(4), 1723, 1723)


@pytest.mark.parametrize("n_flips", [0, 1, 5, 300, 1723])
def test_mask_delta_round_trip(n_flips: int):
    rng = np.random.default_rng(n_flips)
    reference = rng.random(1723) < 0.4
    mask = reference.copy()
    mask[rng.choice(1723, n_flips, replace=False)] ^= True
    code = encode_mask_delta(mask, reference)
    assert int.from_bytes(code[:4], "little") == n_flips
    if n_flips in (0, 1723):
        assert len(code) == 4
    if n_flips == 5:
        assert len(code) <= 4 + 12  # ~5 * log2(1723 / 5) + 7 bits
    assert np.array_equal(decode_mask_delta(code, reference, int(mask.sum())), mask)


def test_mask_delta_rejects_damage():
    rng = np.random.default_rng(9)
    reference = rng.random(500) < 0.4
    mask = reference.copy()
    mask[rng.choice(500, 20, replace=False)] ^= True
    code = encode_mask_delta(mask, reference)
    kept = int(mask.sum())
    assert np.array_equal(decode_mask_delta(code, reference, kept), mask)
    damaged = {
        "wrong kept count": (code, kept + 1),
        "truncated count": (code[:3], kept),
        "count beyond the mask": ((501).to_bytes(4, "little") + code[4:], kept),
        "count off by one": ((21).to_bytes(4, "little") + code[4:], kept),
        "emptied bits": (code[:4], kept),
        "one word short": (code[:-4], kept),
        "a word appended": (code + bytes(4), kept),
        "zero count with bits": (bytes(4) + code[4:], kept),
    }
    for what, (packet, k) in damaged.items():
        with pytest.raises(FormatError, match="^mask delta: "):
            decode_mask_delta(packet, reference, k)
            pytest.fail(f"{what}: decoded without an error")


def test_v2_estimate_is_within_1_percent_of_the_real_size():
    """Laplace latents whose spread grows with the level (as trained latents' do), coded with an
    ARM of the encoder's width; the estimate counts the framing the coder writes."""
    shapes = level_shapes(64, 96, 7)
    rng = np.random.default_rng(12)
    latents = [np.clip(np.round(rng.laplace(0, 0.3 * 1.6**i, s)), -64, 63).astype(np.int64)
               for i, s in enumerate(shapes)]
    latents[2][::5, ::7] = 63  # a few escapes
    arm = random_arm(12, hidden=16, scale=np.log(0.5))
    data = encode_latents(latents, arm)
    real = 8 * len(data)
    estimate = estimate_latent_bits(latents, arm)
    assert abs(estimate - real) <= 0.01 * real and abs(estimate - real) <= 64
    assert len(data) <= len(encode_latents(latents, arm, version=1)) + 8  # no loss against version 1
    assert same(decode_latents(data, shapes, arm), latents)


def test_v2_code_length_matches_the_frequencies():
    """The coder's real length for a long sequence is the ideal -sum log2(f / 2^24) plus at most
    one to two termination words: the frequencies it uses are the ones the table gives."""
    freq = laplace_frequencies()
    rng = np.random.default_rng(2)
    rows = rng.integers(0, freq.shape[0], 50000)
    p = freq[rows] / T
    symbols = (p.cumsum(axis=1) < rng.random((rows.size, 1))).sum(axis=1).astype(np.int32)
    coder = constriction.stream.queue.RangeEncoder()
    coder.encode(symbols, entropy._model(), entropy._latent_weights_v2()[rows])
    ideal = float((FREQ_BITS - np.log2(freq[rows, symbols])).sum())
    assert 0 <= 32 * coder.num_words() - ideal <= 64 + 2


def test_version_1_bytes_are_unchanged():
    """Digest of the version-1 latent and mask codes of fixed inputs, computed with the coder as it
    was before version 2 existed (the golden stream test also decodes a committed v1 file)."""
    rng = np.random.default_rng(11)
    latents = [np.clip(np.round(rng.laplace(0, 3.0, s)), -64, 63).astype(np.int64) for s in SHAPES]
    latents[0][0, :5] = [63, -64, 40, -40, 0]
    arm = random_arm(4, scale=np.log(3.0))
    mask = np.zeros(1723, dtype=bool)
    mask[rng.choice(1723, 300, replace=False)] = True
    code = encode_latents(latents, arm, version=1) + encode_mask(mask, version=1)
    code += encode_mask(np.ones(1723, dtype=bool), version=1)
    assert hashlib.sha256(code).hexdigest() == "ef5d93cab8b26cf753faec8a467335d1295c6dc12e67b2fce1be98228ee2679d"
    assert estimate_latent_bits(latents, arm, version=1) == pytest.approx(2172.519389323637, rel=1e-12)


def test_unknown_versions_are_refused():
    with pytest.raises(ValueError, match="version"):
        encode_mask(np.ones(3, dtype=bool), version=3)
    with pytest.raises(ValueError, match="version"):
        decode_latents(bytes(4), SHAPES, random_arm(1), version=0)


@pytest.mark.parametrize("hidden, frac", [(1, 8), (5, 4), (24, 12)])
def test_compiled_latent_decoder_matches_the_reference_decoder_at_any_arm_width(hidden: int, frac: int):
    # the compiled loop sizes its scratch by the ARM's width and folds frac into the weights
    latents, _ = escape_rich_latents(hidden)
    arm = random_arm(hidden, hidden=hidden, frac=frac, scale=np.log(2.0))
    data = encode_latents(latents, arm)
    assert (latent_symbols(latents, arm).symbols == ESCAPE).any()
    assert same(decode_latents(data, SHAPES, arm), latents)
    assert same(ref_decode_latents(data, SHAPES, arm), latents)


def test_compiled_latent_decoder_round_trips_a_larger_picture_and_checks_its_end():
    shapes = level_shapes(160, 320, 5)
    rng = np.random.default_rng(9)
    latents = [np.clip(np.round(rng.laplace(0, 1.5, s)), -64, 63).astype(np.int64) for s in shapes]
    latents[0][5, 7] = 60  # escapes in the first and the last piece
    latents[0][-3, -5] = -60
    arm = random_arm(4, hidden=16, scale=np.log(1.5))
    data = encode_latents(latents, arm)
    assert same(decode_latents(data, shapes, arm), latents)
    main_len = int.from_bytes(data[:4], "little")
    main, escape = data[4 : 4 + main_len], data[4 + main_len :]
    with pytest.raises(FormatError, match=r"^latent stream: data ends early"):
        decode_latents(repack(main[:-4], escape), shapes, arm)
    with pytest.raises(FormatError, match=r"^latent stream: escape stream: data ends early"):
        decode_latents(repack(main, escape[:-4]), shapes, arm)
    with pytest.raises(FormatError, match=r"^latent stream: 1 unused words after the last latent"):
        decode_latents(repack(main + bytes(4), escape), shapes, arm)


def test_latents_decoded_band_by_band_are_final_when_counted_ready():
    """The synthesis reads a latent row as soon as ``rows_ready`` counts it, while later wavefronts
    decode: every row counted must already hold its final latents, and rows must be counted long
    before the last wavefront (else nothing could overlap). The band boundaries must not change
    what is decoded, nor the checks of the stream's end."""
    shapes = [*level_shapes(40, 56, 4), (40, 56)]  # a second full-resolution grid, as at quality 90
    rng = np.random.default_rng(11)
    latents = [np.clip(np.round(rng.laplace(0, 2.0, s)), -64, 63).astype(np.int64) for s in shapes]
    latents[0][::5, ::7] = 63  # escapes
    arm = random_arm(2, hidden=16, scale=np.log(2.0))
    data = encode_latents(latents, arm)
    decoding = entropy.LatentDecoding(data, shapes, arm)
    views = decoding.views()
    stops = np.cumsum(rng.integers(1, 30, size=200))
    counted_midway = None
    for stop in stops:
        decoding.decode_to(int(stop))
        ready = decoding.rows_ready()
        for view, latent, rows in zip(views, latents, ready):
            assert np.array_equal(view[:rows], latent[:rows])
        if counted_midway is None and decoding.fronts_done >= decoding.n_fronts // 2:
            counted_midway = ready
        if decoding.fronts_done == decoding.n_fronts:
            break
    assert decoding.fronts_done == decoding.n_fronts == 56 - 1 + 4 * (40 - 1) + 1
    assert decoding.rows_ready() == [h for h, _ in shapes]
    # row r of a grid w wide completes with wavefront w - 1 + 4 r: half way, a third of the finest rows
    assert counted_midway is not None and 0.3 * 40 < counted_midway[0] == counted_midway[-1] < 0.75 * 40
    decoding.finish()
    assert same(decoding.latents(), latents)
    main_len = int.from_bytes(data[:4], "little")
    main, escape = data[4 : 4 + main_len], data[4 + main_len :]
    extra = entropy.LatentDecoding(repack(main + bytes(4), escape), shapes, arm)
    for stop in range(7, extra.n_fronts + 7, 7):
        extra.decode_to(stop)
    with pytest.raises(FormatError, match=r"^latent stream: 1 unused words after the last latent"):
        extra.finish()


def test_the_decoders_stream_check_ends_streams_as_the_reference_encoder_does():
    """Short random interval sequences, many ending with held-back words or the optional final 0
    word: the compiled shadow encoder accepts exactly the reference encoder's words."""
    rng = np.random.default_rng(21)
    endings = {"held": 0, "two words": 0}
    for _ in range(400):
        n = int(rng.integers(1, 40))
        freqs = rng.choice([1, 2, 1 << 12, (1 << 24) - 1, int(rng.integers(1, 1 << 24))], n)
        lefts = [int(rng.integers(0, T - f + 1)) for f in freqs]
        ref = RefEncoder()
        for left, f in zip(lefts, freqs):
            ref.encode(left, int(f))
        endings["held"] += ref.held > 0
        lower, range_ = ref.lower, ref.range
        words_ = np.array(ref.finish(), dtype=np.uint32)
        point = (lower + (1 << 32) - 1) & M64
        endings["two words"] += ((lower + range_) & M64) >> 32 == point >> 32
        l64, f64 = np.array(lefts, dtype=np.uint64), np.array(freqs, dtype=np.uint64)
        assert latent_kernel.check_words(l64, f64, words_) == latent_kernel.OK
        assert latent_kernel.check_words(l64, f64, words_[:-1]) == latent_kernel.TOO_FEW_WORDS
        assert latent_kernel.check_words(l64, f64, np.append(words_, np.uint32(0))) == latent_kernel.UNUSED_WORDS
        damaged = words_.copy()
        damaged[-1] ^= 1 << 31
        assert latent_kernel.check_words(l64, f64, damaged) == latent_kernel.NOT_ENCODER_OUTPUT
    assert endings["held"] >= 5 and endings["two words"] >= 5, endings


# -- temporal taps (docs/FORMAT.md 3.3) ------------------------------------------------------------

#: (dy, dx) of the temporal taps as FORMAT.md lists them, written out here
FORMAT_TEMPORAL_TAPS = [(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0), (-1, -1), (-1, 1), (1, -1), (1, 1)]


def copying_arm(tap: int, taps: int = 9, frac: int = 8) -> IntegerArm:
    """An ARM whose mean is the temporal tap ``tap`` exactly and whose scale is the smallest:
    h1 = (relu(x), relu(-x)) of that tap, mu = h1[0] - h1[1], ln(scale) = -4.5."""
    one = 1 << frac
    w1 = np.zeros((2, 24 + taps))
    w1[0, 24 + tap], w1[1, 24 + tap] = one, -one
    w3 = np.array([[one, -one], [0, 0]], dtype=np.float64)
    b3 = np.array([0.0, -4.5 * one])
    return IntegerArm(w1, np.zeros(2), np.zeros((2, 2)), np.zeros(2), w3, b3, frac)


def shifted_by_tap(previous: list[np.ndarray], dy: int, dx: int) -> list[np.ndarray]:
    """latent[r][c] = previous[r + dy][c + dx], zero outside the grid (FORMAT.md's definition)."""
    out = []
    for level in previous:
        h, w = level.shape
        shifted = np.zeros_like(level)
        for r in range(h):
            for c in range(w):
                if 0 <= r + dy < h and 0 <= c + dx < w:
                    shifted[r, c] = level[r + dy, c + dx]
        out.append(shifted)
    return out


#: the shapes of SHAPES' picture with a second full-resolution grid (docs/FORMAT.md 3.3, G = 2),
#: and of a one-level pyramid with one
SECOND_GRID_SHAPES = [SHAPES + SHAPES[:1], [(13, 17), (13, 17)]]


@pytest.mark.parametrize("shapes", [SHAPES, *SECOND_GRID_SHAPES], ids=["pyramid", "second-grid", "one-level-second-grid"])
@pytest.mark.parametrize("tap", range(9))
def test_each_temporal_tap_reads_the_previous_latent_the_format_names(tap: int, shapes: list[tuple[int, int]]):
    """A second full-resolution grid's taps read the previous frame's second grid: it is one more
    level."""
    rng = np.random.default_rng(tap)
    previous = [rng.integers(-20, 21, s) for s in shapes]
    latents = shifted_by_tap(previous, *FORMAT_TEMPORAL_TAPS[tap])
    arm = copying_arm(tap)
    data = encode_latents(latents, arm, previous=previous)
    # every latent is its tap's value: about 0.3 bits each, against ~6 with any other tap
    n = sum(q.size for q in latents)
    assert len(data) * 8 < 0.5 * n
    wrong = encode_latents(latents, copying_arm((tap + 1) % 9), previous=previous)
    assert len(wrong) > 4 * len(data)
    assert same(decode_latents(data, shapes, arm, previous=previous), latents)
    assert len(data) * 8 == pytest.approx(estimate_latent_bits(latents, arm, previous=previous), abs=40)


def test_temporal_taps_read_zeros_without_a_previous_frame_and_decode_only_with_it():
    rng = np.random.default_rng(5)
    previous = [rng.integers(-20, 21, s) for s in SHAPES]
    latents = [np.clip(p + rng.integers(-1, 2, p.shape), -64, 63) for p in previous]
    arm = random_arm(2)
    arm = IntegerArm(np.concatenate([arm.w1, np.eye(8, 3) * 256], axis=1), arm.b1, arm.w2, arm.b2, arm.w3, arm.b3,
                     arm.frac)
    zeros = [np.zeros_like(p) for p in previous]
    assert encode_latents(latents, arm) == encode_latents(latents, arm, previous=zeros)
    data = encode_latents(latents, arm, previous=previous)
    assert same(decode_latents(data, SHAPES, arm, previous=previous), latents)
    try:
        assert not same(decode_latents(data, SHAPES, arm), latents)
    except FormatError:
        pass  # or the stream is refused: either way not these latents


@pytest.mark.parametrize("taps", [0, 9])
def test_pricing_from_gathered_contexts_equals_the_estimate(taps: int):
    rng = np.random.default_rng(11 + taps)
    previous = [rng.integers(-5, 6, s) for s in SHAPES]
    latents = [np.clip(np.round(rng.laplace(0, 2.0, s)), -64, 63).astype(np.int64) for s in SHAPES]
    latents[0][0, 0] = 60  # an escape
    arm = random_arm(3, scale=0.5)
    if taps:
        arm = IntegerArm(np.concatenate([arm.w1, np.full((8, taps), 40.0)], axis=1), arm.b1, arm.w2, arm.b2,
                         arm.w3, arm.b3, arm.frac)
    context, values = latent_contexts(latents, 9, previous)
    assert context.shape == (sum(q.size for q in latents), 33)
    assert context_code_length(context, values, arm) == pytest.approx(
        estimate_latent_bits(latents, arm, previous=previous), rel=1e-12)


def test_temporal_taps_refuse_levels_whose_padding_cannot_hold_a_row_below():
    from lotto_media.model.arm import ContextLayout

    ContextLayout.for_shapes([(2, 40), (1, 20)], 9)  # halving levels: the taps stay in padding
    with pytest.raises(ValueError, match="padding"):
        ContextLayout.for_shapes([(2, 100), (1, 2)], 9)
    ContextLayout.for_shapes([(2, 100), (1, 2)], 0)  # no taps, no constraint


# -- network parameters (group header version 5) ----------------------------------------------------


def ref_decode_parameters(data: bytes, sizes: list[int], model_bytes: list[int]) -> list[list[int]]:
    """A parameter stream decoded from FORMAT.md 3.1 and 3.5.4.5 alone, with the reference range
    decoder; the stream must be the reference encoder's output for what was decoded."""
    stream = words(data)
    decoder, intervals = RefDecoder(stream), []
    table = cumulative(laplace_frequencies()).tolist()

    def read(cum: list[int]) -> int:
        symbol = decoder.decode(cum)
        intervals.append((cum[symbol], cum[symbol + 1] - cum[symbol]))
        return symbol

    def uniform(n: int) -> list[int]:
        return [i * (T // n) for i in range(n + 1)]

    tensors = []
    for n, byte in zip(sizes, model_bytes):
        shift, scale_code = byte >> 6, byte & 63
        assert scale_code <= 36
        row = (16 if shift == 0 else 0) * 73 + 2 * scale_code
        q = [read(table[row]) - 31 for _ in range(n)]
        for i in range(n):
            if q[i] == 32:  # the escape symbol 63
                negative = read(uniform(2))
                e = read(uniform(256)) << 8
                e += read(uniform(256))
                q[i] = -(e + 32) if negative else e + 32
        r = [read(uniform(1 << shift)) for _ in range(n)] if shift else [0] * n
        tensors.append([qi * (1 << shift) + ri for qi, ri in zip(q, r)])
    if ref_encode(intervals) != stream:
        raise FormatError("parameters: not the encoder's output")
    return tensors


def parameter_tensors(seed: int) -> list[np.ndarray]:
    """Tensors like a network set's: small and large spreads, an all-zero bias, escapes of both
    signs, the largest magnitude the format allows."""
    rng = np.random.default_rng(seed)
    return [rng.laplace(0, 3, (16, 24)).round().astype(np.int64), rng.laplace(0, 40, 16).round().astype(np.int64),
            np.zeros(3, dtype=np.int64), rng.laplace(0, 0.4, (3, 3, 3, 3)).round().astype(np.int64),
            np.array([1 << 16, -(1 << 16), 70, -33, 0], dtype=np.int64)]


@pytest.mark.parametrize("seed", [0, 1])
def test_reference_decoder_written_from_the_docs_reads_the_parameter_code(seed: int):
    tensors = parameter_tensors(seed)
    models = [entropy.best_parameter_model(t) for t in tensors]
    assert {m.shift for m in models} > {0}  # shifted and unshifted tensors are both exercised
    data = entropy.encode_parameters(tensors, models)
    decoded = ref_decode_parameters(data, [t.size for t in tensors], [m.to_byte() for m in models])
    assert all(d == t.ravel().tolist() for d, t in zip(decoded, tensors))
    ours = entropy.decode_parameters(data, [t.shape for t in tensors], models, 1 << 16, "set")
    assert all(np.array_equal(a, b) for a, b in zip(ours, tensors))
    # the model chosen has the fewest bits of all, and its count is the stream's size within the termination
    for values, model in zip(tensors, models):
        bits = entropy.parameter_code_length(values, model)
        assert all(bits <= entropy.parameter_code_length(values, entropy.ParameterModel(s, c)) + 1e-9
                   for s in range(4) for c in range(37))
    total = sum(entropy.parameter_code_length(t, m) for t, m in zip(tensors, models))
    assert 0 <= 8 * len(data) - total <= 64


def test_parameter_code_documented_example():
    tensors = [np.array([0, 1, -1, 40]), np.array([5, -6, 3])]
    models = [entropy.ParameterModel(0, 18), entropy.ParameterModel(1, 18)]
    assert [m.to_byte() for m in models] == [0x12, 0x52] and [m.row for m in models] == [1204, 36]
    data = entropy.encode_parameters(tensors, models)
    assert data.hex() == "d13bf997f4f8eaf0"
    assert ref_decode_parameters(data, [4, 3], [0x12, 0x52]) == [[0, 1, -1, 40], [5, -6, 3]]


def test_a_damaged_parameter_stream_is_refused():
    tensors = parameter_tensors(2)
    models = [entropy.best_parameter_model(t) for t in tensors]
    data = entropy.encode_parameters(tensors, models)
    shapes = [t.shape for t in tensors]
    # a cut stream decodes zeros past its end: refused by the end check or by what it decodes to
    for bad, message in ((b"", "empty"), (data[:-4], "ends early|out of range"), (data[:4], "ends early|out of range"),
                         (data + bytes(4), "unused words"), (data[:-1], "whole number")):
        with pytest.raises(FormatError, match=message):
            entropy.decode_parameters(bad, shapes, models, 1 << 16, "set")
    with pytest.raises(FormatError, match="out of range"):
        entropy.decode_parameters(data, shapes, models, (1 << 16) - 1, "set")
    with pytest.raises(FormatError, match="scale code 40"):
        entropy.ParameterModel.from_byte(40, "set")


def test_the_search_prices_network_sets_at_their_coded_size():
    """``params.module_bits`` (what the search minimises) adds up, over a set's modules, to the
    set's bytes less its word count, within the range coder's termination."""
    from lotto_media.coding import params
    from lotto_media.model.config import ModelConfig

    rng = np.random.default_rng(4)
    config = ModelConfig(arm_hidden=8)
    modules = {name: params.QuantizedModule(6, tuple(rng.laplace(0, 2 + 20 * k, shape).round().astype(np.int64)
                                                     for k, shape in enumerate(params.module_shapes(config, name))))
               for name in params.MODULES}
    nets = params.QuantizedNetworks(**modules)
    coded = params.set_to_bytes(nets)
    priced = sum(params.module_bits(nets.module(name)) for name in params.MODULES)
    assert 0 <= 8 * len(coded) - 16 - priced <= 64
    decoded, used = params.set_from_bytes(coded, config)
    assert used == len(coded)
    assert all(np.array_equal(a, b) for name in params.MODULES
               for a, b in zip(decoded.module(name).tensors, nets.module(name).tensors))
