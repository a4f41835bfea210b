"""Bjøntegaard deltas between two rate-distortion curves (VCEG-M33, the classic cubic-fit method).

A curve is a list of (rate, psnr) points; rate is anything proportional to bytes (bpp, kbps, bytes).

- BD-rate: fit log(rate) as a cubic polynomial of PSNR for each curve, integrate both fits over the
  PSNR interval the two curves share, and turn the mean log-rate difference into a percentage:
  ``(exp(mean(log r_test - log r_anchor)) - 1) * 100``. Negative means the test codec needs fewer
  bits for the same quality.
- BD-PSNR: fit PSNR as a cubic of log(rate), integrate over the shared log-rate interval; the mean
  difference in dB (test - anchor). Positive means the test codec is better.

Nothing is extrapolated: only the shared interval is integrated, and the points of each curve that
lie outside it are counted and reported. Curves that do not overlap give ``no_overlap`` instead of a
number. Fewer than four distinct points lower the polynomial degree (n - 1) and the result records
the degree used; fewer than two points give no result. Non-finite or non-positive-rate points are
dropped (and counted as outside).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

Curve = Iterable[tuple[float, float]]


@dataclass(frozen=True)
class BDResult:
    """One Bjøntegaard delta. ``value`` is None when it cannot be computed (see ``reason``)."""

    metric: str  # "bd_rate" (percent) or "bd_psnr" (dB)
    value: float | None
    no_overlap: bool = False
    reason: str = ""  # why value is None: "no overlap", "too few points"
    low: float | None = None  # shared interval: PSNR (dB) for bd_rate, rate for bd_psnr
    high: float | None = None
    anchor_outside: int = 0  # points of each curve outside the shared interval
    test_outside: int = 0
    anchor_points: int = 0
    test_points: int = 0
    degree: int = 3

    @property
    def ok(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        if self.value is None:
            return self.reason or "n/a"
        unit = " %" if self.metric == "bd_rate" else " dB"
        return f"{self.value:+.2f}{unit}"


def _clean(curve: Curve) -> tuple[np.ndarray, np.ndarray, int]:
    """Finite, positive-rate points sorted by rate, duplicates merged; and how many were invalid."""
    points = [(float(r), float(q)) for r, q in curve]
    valid = [(r, q) for r, q in points if r > 0 and math.isfinite(r) and math.isfinite(q)]
    good = sorted(set(valid))
    rates = np.array([r for r, _ in good], dtype=np.float64)
    psnrs = np.array([q for _, q in good], dtype=np.float64)
    return rates, psnrs, len(points) - len(valid)


def _integral_mean(x: np.ndarray, y: np.ndarray, degree: int, low: float, high: float) -> float:
    """Mean of the degree-``degree`` least-squares fit y(x) over [low, high]."""
    # Polynomial.fit maps x onto [-1, 1] before fitting (PSNR values near 40 cubed would make a raw
    # power basis badly conditioned); integ() accounts for that mapping.
    antiderivative = np.polynomial.Polynomial.fit(x, y, degree).integ()
    return float((antiderivative(high) - antiderivative(low)) / (high - low))


def _delta(metric: str, ax: np.ndarray, ay: np.ndarray, tx: np.ndarray, ty: np.ndarray,
           dropped: tuple[int, int]) -> BDResult:
    """Mean of (test - anchor) of y over the shared x interval; x/y already in fitting space."""
    n_a, n_t = len(np.unique(ax)), len(np.unique(tx))
    counts = dict(anchor_points=len(ax) + dropped[0], test_points=len(tx) + dropped[1])
    if n_a < 2 or n_t < 2:
        return BDResult(metric, None, reason="too few points", anchor_outside=dropped[0],
                        test_outside=dropped[1], degree=0, **counts)
    low, high = max(ax.min(), tx.min()), min(ax.max(), tx.max())
    anchor_outside = int(np.sum((ax < low) | (ax > high))) + dropped[0]
    test_outside = int(np.sum((tx < low) | (tx > high))) + dropped[1]
    if not low < high:
        return BDResult(metric, None, no_overlap=True, reason="no overlap", anchor_outside=anchor_outside,
                        test_outside=test_outside, degree=0, **counts)
    degree = min(3, n_a - 1, n_t - 1)
    delta = _integral_mean(tx, ty, degree, low, high) - _integral_mean(ax, ay, degree, low, high)
    return BDResult(metric, delta, low=float(low), high=float(high), anchor_outside=anchor_outside,
                    test_outside=test_outside, degree=degree, **counts)


def bd_rate(anchor: Curve, test: Curve) -> BDResult:
    """Average rate difference of ``test`` against ``anchor`` at equal PSNR, in percent."""
    ar, ap, ad = _clean(anchor)
    tr, tp, td = _clean(test)
    result = _delta("bd_rate", ap, np.log(ar), tp, np.log(tr), (ad, td))
    if result.value is None:
        return result
    return BDResult(**{**result.to_dict(), "value": (math.exp(result.value) - 1.0) * 100.0})


def bd_psnr(anchor: Curve, test: Curve) -> BDResult:
    """Average PSNR difference of ``test`` against ``anchor`` at equal rate, in dB."""
    ar, ap, ad = _clean(anchor)
    tr, tp, td = _clean(test)
    result = _delta("bd_psnr", np.log(ar), ap, np.log(tr), tp, (ad, td))
    if result.low is None or result.high is None:
        return result
    return BDResult(**{**result.to_dict(), "low": math.exp(result.low), "high": math.exp(result.high)})
