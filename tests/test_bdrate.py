"""Bjøntegaard deltas: the textbook properties a correct implementation must have."""

from __future__ import annotations

import math

import pytest

from lotto_media.pipelines.bdrate import bd_psnr, bd_rate

# A realistic concave RD curve (bpp, dB).
CURVE = [(0.12, 27.8), (0.25, 30.4), (0.5, 33.3), (1.0, 36.5), (2.0, 39.9)]


def test_a_curve_against_itself_gives_zero():
    assert bd_rate(CURVE, CURVE).value == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(CURVE, CURVE).value == pytest.approx(0.0, abs=1e-9)


def test_ten_percent_fewer_bits_gives_minus_ten_percent():
    cheaper = [(r * 0.9, q) for r, q in CURVE]
    result = bd_rate(CURVE, cheaper)
    assert result.value == pytest.approx(-10.0, abs=0.1)
    assert result.anchor_outside == result.test_outside == 0
    assert str(result) == "-10.00 %"
    # and the reverse comparison: the anchor needs 1/0.9 - 1 = +11.1 % more
    assert bd_rate(cheaper, CURVE).value == pytest.approx((1 / 0.9 - 1) * 100, abs=0.1)


def test_one_db_better_gives_positive_bd_psnr_near_one():
    better = [(r, q + 1.0) for r, q in CURVE]
    result = bd_psnr(CURVE, better)
    assert result.value == pytest.approx(1.0, abs=0.01)
    assert result.value > 0
    assert bd_rate(CURVE, better).value < 0  # better quality at equal rate = fewer bits at equal quality


def test_non_overlapping_curves_give_no_overlap_not_a_number():
    far_better = [(r, q + 20.0) for r, q in CURVE]  # PSNR ranges do not meet
    result = bd_rate(CURVE, far_better)
    assert result.value is None and result.no_overlap and not result.ok
    assert str(result) == "no overlap"
    assert result.anchor_outside == len(CURVE) and result.test_outside == len(CURVE)
    far_cheaper = [(r / 1000, q) for r, q in CURVE]  # rate ranges do not meet
    assert bd_psnr(CURVE, far_cheaper).no_overlap


def test_only_the_shared_range_is_integrated_and_outside_points_are_counted():
    partial = [(r * 0.9, q) for r, q in CURVE[1:4]] + [(0.95 * 2.0, 39.9)]
    result = bd_rate(CURVE, partial)
    # The test curve starts at 30.4 dB: the anchor's 27.8 dB point is outside.
    assert result.low == pytest.approx(30.4) and result.high == pytest.approx(39.9)
    assert result.anchor_outside == 1 and result.test_outside == 0
    assert -10.0 < result.value < -5.0


def test_order_duplicates_and_bad_points_do_not_matter():
    shuffled = list(reversed(CURVE)) + [CURVE[0], (0.0, 20.0), (1.0, math.inf)]
    result = bd_rate(CURVE, [(r * 0.9, q) for r, q in shuffled])
    assert result.value == pytest.approx(-10.0, abs=0.1)
    assert result.test_outside == 2  # the zero-rate and infinite-PSNR points are dropped and counted


def test_few_points_lower_the_degree_and_one_point_gives_no_result():
    two = CURVE[1:3]
    result = bd_rate(two, [(r * 0.8, q) for r, q in two])
    assert result.degree == 1 and result.value == pytest.approx(-20.0, abs=1e-6)
    single = bd_rate(CURVE, CURVE[:1])
    assert single.value is None and single.reason == "too few points" and not single.no_overlap


def test_result_is_serialisable():
    data = bd_rate(CURVE, CURVE).to_dict()
    assert data["metric"] == "bd_rate" and data["degree"] == 3 and data["no_overlap"] is False
