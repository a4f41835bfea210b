"""Motion compensation of a predicted frame's reference, in exact integers.

Motion is a field of vectors, one per square block of the first plane (luma, or every plane of RGB
and gray), in quarter samples of that plane; a block size of 0 means one vector for the whole
picture (a translation). A 4:2:0 chroma plane, half as wide, reads the same integers as eighth
samples over blocks half as wide. Each sample is the bilinear interpolation of the four reference
samples around its displaced position, coordinates clamped to the plane (repeated edges), rounded
half up (docs/FORMAT.md, Part 3 §3.6). A field's blocks may overlap: each sample then blends the
predictions of its own block's vector and of its nearer neighbours'. The encoder estimates a
translation by block matching on the pictures themselves (``estimate_translation``: a coarse
integer search on a half-resolution luma, refined to whole and then quarter samples), then each
block's vector around it (``estimate_field``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import motion_kernel

#: fractional bits of a motion vector on the first plane (quarter samples)
MOTION_FRAC = 2
#: largest displacement the encoder searches, in samples of the first plane
SEARCH_RANGE = 32


def _bilinear(ref: np.ndarray, y: np.ndarray, x: np.ndarray, fy: np.ndarray | int, fx: np.ndarray | int,
              frac: int) -> np.ndarray:
    """The rounded bilinear interpolation of the int64 plane ``ref`` at (y + fy / 2^frac,
    x + fx / 2^frac), the whole-sample positions clamped to the plane (broadcasting arrays)."""
    height, width = ref.shape
    one = 1 << frac
    y0, y1 = np.clip(y, 0, height - 1), np.clip(y + 1, 0, height - 1)
    x0, x1 = np.clip(x, 0, width - 1), np.clip(x + 1, 0, width - 1)
    acc = (one - fy) * ((one - fx) * ref[y0, x0] + fx * ref[y0, x1])
    acc += fy * ((one - fx) * ref[y1, x0] + fx * ref[y1, x1])
    return (acc + (1 << (2 * frac - 1))) >> (2 * frac)


def shift_plane(plane: np.ndarray, mx: int, my: int, frac: int) -> np.ndarray:
    """The plane displaced by (mx, my) / 2^frac samples: out[y, x] = ref(y + my / 2^frac, x + mx / 2^frac)."""
    height, width = plane.shape
    one = 1 << frac
    y = np.arange(height)[:, None] + (my >> frac)
    x = np.arange(width)[None, :] + (mx >> frac)
    return _bilinear(plane.astype(np.int64), y, x, my & (one - 1), mx & (one - 1), frac).astype(plane.dtype)


#: block sizes a motion field may use (samples of the first plane); 0: one vector for the picture
FIELD_BLOCKS = (0, 8, 16, 32, 64)
#: the block sizes the encoder uses: 8x8 below FINE_BLOCK_LAMBDA (high qualities), 16x16 above.
#: On the source frames of the shared clips (mean luma MSE of the prediction over frames 1-3): one
#: translation 285 / 554 / 248 (park_joy, bus, CiscoVT2people), 16x16 blocks within +-6 samples of
#: it 106 / 142 / 32. D + lambda R of 8x8 against 16x16 blocks (fast, 6-frame crops, overlapped
#: blocks; park_joy / CiscoVT2people / bus): quality 75 -9.0 / -4.2 / -2.1 %, 60 -5.3 / -1.5 / +0.4 %,
#: 45 +1.3 / +3.5 % (the vectors cost more than they save)
ENCODER_BLOCK, FINE_BLOCK = 16, 8
#: between quality 45 (6.5e-4) and 60 (2.1e-4)
FINE_BLOCK_LAMBDA = 2.5e-4


def encoder_block(lmbda: float) -> int:
    """The block size of the fields the encoder estimates at this lambda."""
    return FINE_BLOCK if lmbda < FINE_BLOCK_LAMBDA else ENCODER_BLOCK


#: how far (whole samples of the first plane) a block's vector may stray from the translation
BLOCK_SEARCH_RANGE = 6
#: what a field costs beyond a translation before its vectors: a version-5 packet's field head
#: (about 7 bytes: block and order, rows, columns, base vector, code length) less one vector's
#: (about 3), in bits
FIELD_EXTRA_BITS = 32


@dataclass(frozen=True)
class MotionField:
    """One motion vector (quarter samples of the first plane) per ``block`` x ``block`` block of
    the first plane, raster order; ``block`` 0: one vector for the whole picture."""

    block: int
    vectors: np.ndarray  # (rows, cols, 2) int64: (mx, my) per block
    #: the picture's translation, from which the packet codes each block's difference
    base: tuple[int, int] = (0, 0)
    #: compensated with overlapped blocks (``_compensate_blocks``) rather than each block on its own
    overlapped: bool = False

    @classmethod
    def translation(cls, mx: int, my: int) -> "MotionField":
        return cls(0, np.array([[[mx, my]]], dtype=np.int64), (mx, my))

    @staticmethod
    def grid(block: int, height: int, width: int) -> tuple[int, int]:
        """Blocks per column and per row for a picture of this size."""
        if block == 0:
            return 1, 1
        return -(-height // block), -(-width // block)

    @property
    def is_translation(self) -> bool:
        return bool(np.all(self.vectors == self.vectors[0, 0]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MotionField):
            return NotImplemented
        return (self.block == other.block and self.overlapped == other.overlapped
                and np.array_equal(self.vectors, other.vectors))

    __hash__ = None  # type: ignore[assignment]


def as_field(motion: "MotionField | tuple[int, int]") -> MotionField:
    """A field, or one translation (mx, my) as a field."""
    return motion if isinstance(motion, MotionField) else MotionField.translation(*motion)


def compensate(planes: list[np.ndarray], motion: "MotionField | tuple[int, int]", chroma_420: bool) -> list[np.ndarray]:
    """The reference planes displaced by ``motion`` (a field, or one translation as (mx, my)),
    quarter samples of the first plane."""
    field = as_field(motion)
    if not field.vectors.any():
        return planes
    if field.block == 0:
        mx, my = (int(v) for v in field.vectors[0, 0])
        return [shift_plane(plane, mx, my, MOTION_FRAC + (1 if chroma_420 and k else 0))
                for k, plane in enumerate(planes)]
    return [_compensate_blocks(plane, field, 2 if chroma_420 and k else 1) for k, plane in enumerate(planes)]


def _compensate_blocks(plane: np.ndarray, field: MotionField, subsampling: int) -> np.ndarray:
    """``shift_plane`` with each block's own vector (blocks of ``field.block / subsampling``
    samples of this plane, vectors in 2^-(2 + log2 subsampling) samples of it); with
    ``field.overlapped`` each sample blends the predictions made with the vectors of its own block
    and of the neighbouring blocks on its nearer side horizontally, vertically and diagonally,
    weighted by ``overlap_weights`` along each axis, rounded half up: blocks no longer meet at
    edges the residual must then code, and a block's vector also serves the samples beside it."""
    size = field.block // subsampling
    frac = MOTION_FRAC + (subsampling - 1)
    moved = motion_kernel.compensate_blocks(np.ascontiguousarray(plane, dtype=np.int64),
                                            np.ascontiguousarray(field.vectors, dtype=np.int64), size, frac,
                                            overlap_weights(size), field.overlapped)
    return moved.astype(plane.dtype)


#: fractional bits of an overlapped block's weights along one axis (defined beside the kernel that
#: compiles it in)
OVERLAP_BITS = motion_kernel.OVERLAP_BITS


def overlap_weights(size: int) -> np.ndarray:
    """The weight (in 2^-OVERLAP_BITS) that a sample at position p = 0 .. size - 1 of its block
    gives its own block's vector along one axis; the neighbouring block on its nearer side gets
    the rest. A raised cosine of the distance from the block's centre, 1 there and 1/2 at the
    block's edge: cos^2(pi * |2p + 1 - size| / (4 size)), rounded half up (docs/FORMAT.md 3.6
    lists the tables)."""
    p = np.arange(size)
    return np.floor((1 << OVERLAP_BITS) * np.cos(np.pi * np.abs(2 * p + 1 - size) / (4 * size)) ** 2 + 0.5
                    ).astype(np.int64)


def _block_prediction(reference: np.ndarray, y0: int, x0: int, h: int, w: int, mx: int, my: int) -> np.ndarray:
    """The h x w block at (y0, x0) of ``shift_plane(reference, mx, my, MOTION_FRAC)`` (reference
    int64), computed from the block's own neighbourhood."""
    one = 1 << MOTION_FRAC
    y = np.arange(y0, y0 + h)[:, None] + (my >> MOTION_FRAC)
    x = np.arange(x0, x0 + w)[None, :] + (mx >> MOTION_FRAC)
    return _bilinear(reference, y, x, my & (one - 1), mx & (one - 1), MOTION_FRAC)


def _vector_bits(differences: np.ndarray) -> np.ndarray:
    """Bits of the order-0 signed exp-Golomb code of each vector difference component (the
    zigzag mapping 2|d|, within one), summed over the last axis."""
    return np.sum(2 * np.floor(np.log2(2 * np.abs(differences) + 1)) + 1, axis=-1)


def _vector_predictor(vectors: list[list[list[int]]], row: int, col: int, base: tuple[int, int]) -> tuple[int, int]:
    """The prediction of block (row, col)'s vector from the blocks before it in raster order
    (docs/FORMAT.md, Part 3 §3.2): in the first row the block to the left (the base vector for
    the first block); in the first column the block above; elsewhere the component-wise median of
    the blocks to the left, above and above-right (above-left in the last column). Python
    integers: a field of a large picture has thousands of blocks, and numpy scalars are slower."""
    if row == 0:
        return (vectors[0][col - 1][0], vectors[0][col - 1][1]) if col > 0 else base
    if col == 0:
        return vectors[row - 1][0][0], vectors[row - 1][0][1]
    left, above = vectors[row][col - 1], vectors[row - 1][col]
    corner = vectors[row - 1][col + 1] if col + 1 < len(vectors[0]) else vectors[row - 1][col - 1]
    return _median(left[0], above[0], corner[0]), _median(left[1], above[1], corner[1])


def _median(a: int, b: int, c: int) -> int:
    return a + b + c - min(a, b, c) - max(a, b, c)


def vector_differences(field: MotionField) -> np.ndarray:
    """(rows, cols, 2): each block's vector less its predicted vector (the neighbours' median),
    what a version-4 frame packet codes."""
    vectors = field.vectors.tolist()
    return np.array([[[v - p for v, p in zip(vector, _vector_predictor(vectors, r, c, field.base))]
                      for c, vector in enumerate(row)] for r, row in enumerate(vectors)], dtype=np.int64)


def vectors_from_differences(differences: np.ndarray, base: tuple[int, int]) -> np.ndarray:
    """The inverse of ``vector_differences``: (rows, cols, 2) int64 vectors."""
    vectors: list[list[list[int]]] = []
    for r, row in enumerate(differences.tolist()):
        vectors.append([])
        for c, (dx, dy) in enumerate(row):
            px, py = _vector_predictor(vectors, r, c, base)
            vectors[r].append([px + dx, py + dy])
    return np.array(vectors, dtype=np.int64)


def field_bits(field: MotionField) -> int:
    """What the field is priced at beyond a translation when the encoder chooses it:
    FIELD_EXTRA_BITS and each vector's difference from the translation in order-0 exp-Golomb
    bits. The packet may code it shorter (against the neighbours' median); choosing vectors on
    that cheaper price measured worse (docs/RESULTS.md)."""
    return FIELD_EXTRA_BITS + int(np.sum(_vector_bits(field.vectors - np.array(field.base))))


#: weight of a vector's bits against the squared error of its block's prediction when a block's
#: vector is chosen (lambda times this per bit). Measured at fast, quality 45, on 6-frame crops of
#: CiscoVT2people, bus and park_joy (D + lambda R of the stream against keeping a block on the
#: translation unless another vector lowers its error by 1 %): weight 1.0 -0.7 / +1.9 / +1.1 %,
#: 0.5 -2.3 / +1.9 / -0.1 %, 0.25 -3.2 / -0.4 / +0.8 %, 0.1 -2.2 / -0.2 / +4.9 %, 0.03 -2.6 /
#: -0.3 / +0.6 %: a small gain on the still camera, within the search's noise on the others
VECTOR_RATE_WEIGHT = 0.25


def estimate_field(reference: np.ndarray, target: np.ndarray, lmbda: float, peak: int,
                   block: int | None = None, rate_weight: float = VECTOR_RATE_WEIGHT) -> MotionField:
    """A vector per block (of ``block`` samples, by default ``encoder_block(lmbda)``) that best
    predicts ``target`` from ``reference`` (2-D planes of one size, the first plane's): the
    picture's translation (``estimate_translation``), then for each block the whole-sample
    displacements within BLOCK_SEARCH_RANGE of it and the quarter samples around the best. Each
    block's vector minimises its prediction's squared error (on a [0, 1] scale, ``peak``: the
    samples' largest value) plus ``lmbda`` times ``rate_weight`` times the bits of its
    difference from the translation, as the search weighs distortion and rate, so that areas the
    translation predicts well enough cost no vector bits. The field is kept only where the
    squared error it saves outweighs ``lmbda`` times its bits (``field_bits``); otherwise the
    translation alone. A kept field is compensated with overlapped blocks where that predicts
    ``target`` with a smaller squared error (the vectors stay those chosen for blocks on their
    own)."""
    block = encoder_block(lmbda) if block is None else block
    translation = estimate_translation(reference, target)
    reference = reference.astype(np.float64)
    target = target.astype(np.float64)
    height, width = target.shape
    rows, cols = MotionField.grid(block, height, width)
    vectors = np.empty((rows, cols, 2), dtype=np.int64)
    one = 1 << MOTION_FRAC
    base = np.array(translation)
    reference_int = reference.astype(np.int64)
    translated = shift_plane(reference, *translation, MOTION_FRAC)
    moved = np.pad(translated, BLOCK_SEARCH_RANGE, mode="edge")
    rate_scale = lmbda * rate_weight * peak**2  # bits -> squared error on the samples' own scale
    span = np.arange(-BLOCK_SEARCH_RANGE, BLOCK_SEARCH_RANGE + 1) * one
    whole_rate = rate_scale * _vector_bits(np.stack(np.meshgrid(span, span, indexing="xy"), axis=-1))
    for r in range(rows):
        for c in range(cols):
            y0, x0 = r * block, c * block
            h, w = min(block, height - y0), min(block, width - x0)
            goal = target[y0 : y0 + h, x0 : x0 + w]

            def cost(mv: np.ndarray) -> float:
                error = _block_prediction(reference_int, y0, x0, h, w, int(mv[0]), int(mv[1])) - goal
                return float(np.sum(error**2)) + rate_scale * float(_vector_bits(mv - base))

            # whole-sample offsets from the translation, all at once: windows of the translated
            # picture (its edges repeated, as compensation clamps them, up to the corners)
            region = moved[y0 : y0 + h + 2 * BLOCK_SEARCH_RANGE, x0 : x0 + w + 2 * BLOCK_SEARCH_RANGE]
            costs = np.sum((sliding_window_view(region, (h, w)) - goal) ** 2, axis=(2, 3)) + whole_rate
            dy, dx = np.unravel_index(int(np.argmin(costs)), costs.shape)
            # the window at offset 0 is the translation's own prediction (sums of squared integers:
            # exact in any order, so this is cost(base) without computing it again)
            best, best_cost = base, float(costs[BLOCK_SEARCH_RANGE, BLOCK_SEARCH_RANGE])
            whole = base + one * np.array([int(dx) - BLOCK_SEARCH_RANGE, int(dy) - BLOCK_SEARCH_RANGE])
            if (dx, dy) != (BLOCK_SEARCH_RANGE, BLOCK_SEARCH_RANGE):
                whole_cost = cost(whole)
                if whole_cost < best_cost:
                    best, best_cost = whole, whole_cost
            start = best
            for fy in range(-one + 1, one):
                for fx in range(-one + 1, one):
                    if fx == fy == 0:  # the start itself, already weighed
                        continue
                    mv = start + np.array([fx, fy])
                    c_mv = cost(mv)
                    if c_mv < best_cost:
                        best, best_cost = mv, c_mv
            vectors[r, c] = best
    field = MotionField(block, vectors, translation)
    # the field must pay for its bits, at the search's trade-off (D on a [0, 1] scale, per pixel)
    with_field = float(np.mean((_compensate_blocks(reference, field, 1) - target) ** 2))
    without = float(np.mean((translated - target) ** 2))
    if (without - with_field) / peak**2 <= lmbda * field_bits(field) / target.size:
        return MotionField.translation(*translation)
    overlapped = replace(field, overlapped=True)
    if np.mean((_compensate_blocks(reference, overlapped, 1) - target) ** 2) < with_field:
        return overlapped
    return field


def _cost(reference: np.ndarray, target: np.ndarray, dx: int, dy: int, margin: int) -> float:
    """Mean squared difference between target and reference displaced by whole samples, over the
    interior that stays inside the picture for every candidate (edges would favour no motion)."""
    h, w = target.shape
    inner = target[margin : h - margin, margin : w - margin]
    moved = reference[margin + dy : h - margin + dy, margin + dx : w - margin + dx]
    return float(np.mean((inner - moved) ** 2))


def _integer_search(reference: np.ndarray, target: np.ndarray, centre: tuple[int, int], radius: int,
                    margin: int) -> tuple[int, int]:
    best, best_cost = centre, np.inf
    for dy in range(centre[1] - radius, centre[1] + radius + 1):
        for dx in range(centre[0] - radius, centre[0] + radius + 1):
            if max(abs(dx), abs(dy)) > margin:
                continue
            cost = _cost(reference, target, dx, dy, margin)
            if cost < best_cost:
                best, best_cost = (dx, dy), cost
    return best


def _half(plane: np.ndarray) -> np.ndarray:
    """2x2 means of the even-sized top-left part."""
    h, w = plane.shape[0] // 2 * 2, plane.shape[1] // 2 * 2
    p = plane[:h, :w]
    return (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]) / 4


def estimate_translation(reference: np.ndarray, target: np.ndarray) -> tuple[int, int]:
    """The motion vector (quarter samples) that best predicts ``target`` from ``reference`` (2-D
    planes of one size): a whole-sample search at half resolution, a whole-sample refinement,
    then the quarter-sample positions around it through the decoder's own interpolation."""
    reference = reference.astype(np.float64)
    target = target.astype(np.float64)
    h, w = target.shape
    margin = min(SEARCH_RANGE, (min(h, w) - 1) // 4)
    if margin < 1:
        return 0, 0
    if min(h, w) >= 32:
        coarse = _integer_search(_half(reference), _half(target), (0, 0), margin // 2, margin // 2)
        whole = _integer_search(reference, target, (2 * coarse[0], 2 * coarse[1]), 1, margin)
    else:
        whole = _integer_search(reference, target, (0, 0), margin, margin)
    one = 1 << MOTION_FRAC
    best, best_cost = (whole[0] * one, whole[1] * one), np.inf
    inner = (slice(margin, h - margin), slice(margin, w - margin))
    for fy in range(-one + 1, one):
        for fx in range(-one + 1, one):
            mv = (whole[0] * one + fx, whole[1] * one + fy)
            moved = shift_plane(reference, mv[0], mv[1], MOTION_FRAC)
            cost = float(np.mean((moved[inner] - target[inner]) ** 2))
            if cost < best_cost:
                best, best_cost = mv, cost
    return best


#: a frame starts a new group when motion compensation leaves more than this share of its luma
#: variance unexplained. Measured within the shots of the shared clips: 0.05-0.07
#: (CiscoVT2people), 0.26-0.31 (bus, park_joy); across a cut (a CiscoVT2people crop followed by a
#: park_joy one) 1.58: unrelated pictures differ by about the sum of their variances
SCENE_CUT_SHARE = 0.8


def is_scene_cut(reference: np.ndarray, target: np.ndarray) -> bool:
    """Whether ``target`` (a 2-D plane) is better coded as the start of a new shot than predicted
    from ``reference``, judged on the pictures themselves."""
    target = target.astype(np.float64)
    variance = float(np.var(target))
    if variance == 0:
        return False
    mx, my = estimate_translation(reference, target)
    predicted = shift_plane(reference.astype(np.float64), mx, my, MOTION_FRAC)
    return float(np.mean((predicted - target) ** 2)) > SCENE_CUT_SHARE * variance
