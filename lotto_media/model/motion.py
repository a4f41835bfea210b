"""Motion compensation of a predicted frame's reference: one translation per frame, in exact integers.

A motion vector (mx, my) is in quarter samples of the first plane (luma, or every plane of RGB and
gray); a 4:2:0 chroma plane, half as wide, reads the same integers as eighth samples. A sample is the
bilinear interpolation of the four reference samples around its displaced position, coordinates
clamped to the plane (repeated edges), rounded half up (docs/FORMAT.md, Part 3 §3.6). The encoder
estimates the vector by block matching on the pictures themselves (``estimate_translation``): a
coarse integer search on a half-resolution luma, refined to whole and then quarter samples.
"""

from __future__ import annotations

import numpy as np

#: fractional bits of a motion vector on the first plane (quarter samples)
MOTION_FRAC = 2
#: largest displacement the encoder searches, in samples of the first plane
SEARCH_RANGE = 32


def shift_plane(plane: np.ndarray, mx: int, my: int, frac: int) -> np.ndarray:
    """The plane displaced by (mx, my) / 2^frac samples: out[y, x] = ref(y + my / 2^frac, x + mx / 2^frac)."""
    height, width = plane.shape
    one = 1 << frac
    ix, fx = mx >> frac, mx & (one - 1)
    iy, fy = my >> frac, my & (one - 1)
    cols = np.clip(np.arange(width) + ix, 0, width - 1)
    cols1 = np.clip(np.arange(width) + ix + 1, 0, width - 1)
    rows = np.clip(np.arange(height) + iy, 0, height - 1)
    rows1 = np.clip(np.arange(height) + iy + 1, 0, height - 1)
    ref = plane.astype(np.int64)
    top, bottom = ref[rows], ref[rows1]
    acc = (one - fy) * ((one - fx) * top[:, cols] + fx * top[:, cols1])
    acc += fy * ((one - fx) * bottom[:, cols] + fx * bottom[:, cols1])
    return ((acc + (1 << (2 * frac - 1))) >> (2 * frac)).astype(plane.dtype)


def compensate(planes: list[np.ndarray], motion: tuple[int, int], chroma_420: bool) -> list[np.ndarray]:
    """The reference planes displaced by ``motion`` (quarter samples of the first plane)."""
    mx, my = motion
    if mx == 0 and my == 0:
        return planes
    return [
        shift_plane(plane, mx, my, MOTION_FRAC + (1 if chroma_420 and k else 0)) for k, plane in enumerate(planes)
    ]


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
