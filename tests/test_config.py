"""Search settings: the quality scale and the learning rates that depend on it."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lotto_media.model.config import ARM_HIDDEN_NARROW, ARM_HIDDEN_NARROWEST, ARM_HIDDEN_WIDE, ModelConfig
from lotto_media.search.presets import (FINE_LEVELS, LATENT_LR_LMBDAS, PREDICTED_LATENT_LR_CAP_QUALITY, PRESETS,
                                        arm_hidden_for, quality_to_lmbda)
from lotto_media.search.train import search_group
from lotto_media.errors import InputError


def test_quality_maps_monotonically_to_lambda():
    lmbdas = [quality_to_lmbda(q) for q in range(0, 101, 5)]
    assert lmbdas == sorted(lmbdas, reverse=True) and len(set(lmbdas)) == len(lmbdas)
    assert quality_to_lmbda(0) == pytest.approx(0.02) and quality_to_lmbda(100) == pytest.approx(1e-5)
    for bad in (-1, 100.5):
        with pytest.raises(InputError):
            quality_to_lmbda(bad)


@pytest.mark.parametrize("name", list(PRESETS))
def test_latent_learning_rate_grows_with_the_rate_and_is_capped(name: str):
    schedule = PRESETS[name]
    low, high = schedule.lr_latents
    for predicted in (False, True):
        rates = [schedule.latent_lr(quality_to_lmbda(q), predicted) for q in range(0, 101, 10)]
        assert rates == sorted(rates) and low < high
        assert schedule.latent_lr(LATENT_LR_LMBDAS[0], predicted) == pytest.approx(low)
        assert schedule.latent_lr(1.0, predicted) == pytest.approx(low)
        cap_quality = PREDICTED_LATENT_LR_CAP_QUALITY if predicted else schedule.latent_lr_cap_quality
        assert 50 < cap_quality < 80
        capped = schedule.latent_lr(quality_to_lmbda(cap_quality), predicted)
        assert low < capped < high
        # the cap sits on the log-linear ramp from quality 50 toward quality 80
        assert capped == pytest.approx(low * (high / low) ** ((cap_quality - 50) / 30))
        for q in (cap_quality, cap_quality + 1, 80, 100):
            assert schedule.latent_lr(quality_to_lmbda(q), predicted) == pytest.approx(capped)
        assert schedule.latent_lr(1e-9, predicted) == capped
    # the presets' caps as measured (docs/RESULTS.md): 70 for the short searches, 60 from medium
    assert schedule.latent_lr_cap_quality == (70.0 if name in ("ultrafast", "fast") else 60.0)
    # predicted frames stop at quality 60 whatever the preset
    assert schedule.latent_lr(1e-9, predicted=True) == pytest.approx(low * (high / low) ** (1 / 3))


def test_the_finest_latent_levels_learn_faster_at_high_rates_and_at_fast_presets():
    n_levels = 7
    for name in ("ultrafast", "fast"):  # short searches: the finest levels always at the full scale
        schedule = PRESETS[name]
        for q in (0, 40, 80, 100):
            lrs = schedule.latent_lrs(quality_to_lmbda(q), n_levels)
            base = schedule.latent_lr(quality_to_lmbda(q))
            assert lrs == [base * schedule.fine_latent_lr_scale] * FINE_LEVELS + [base] * (n_levels - FINE_LEVELS)
    medium = PRESETS["medium"]
    scales = []
    for q in range(0, 101, 5):
        lmbda = quality_to_lmbda(q)
        lrs = medium.latent_lrs(lmbda, n_levels)
        assert lrs[FINE_LEVELS:] == [medium.latent_lr(lmbda)] * (n_levels - FINE_LEVELS)
        assert lrs[:FINE_LEVELS] == [lrs[0]] * FINE_LEVELS
        scales.append(lrs[0] / lrs[-1])
    assert scales == sorted(scales)  # never slower at a higher rate
    assert scales[:11] == pytest.approx([1.0] * 11)  # qualities 0-50
    assert scales[12:] == pytest.approx([medium.fine_latent_lr_scale] * 9)  # qualities 60-100
    assert 1.0 < scales[11] < medium.fine_latent_lr_scale  # quality 55
    for name in ("ultrafast", "fast", "medium"):  # predicted frames: the ramp at every preset
        schedule = PRESETS[name]
        for q, scale in ((30, 1.0), (50, 1.0), (60, schedule.fine_latent_lr_scale), (90, schedule.fine_latent_lr_scale)):
            lrs = schedule.latent_lrs(quality_to_lmbda(q), n_levels, predicted=True)
            assert lrs[0] == pytest.approx(scale * lrs[-1]) and lrs[FINE_LEVELS - 1] == lrs[0]


def test_pictures_with_the_second_grid_take_their_share_of_the_steps():
    from lotto_media.options import EncodeOptions
    from lotto_media.search.presets import fine_grids_for

    base = replace(PRESETS["medium"], soft_steps=1000, hard_steps=100, second_grid_step_share=0.75,
                   temperature_end_high=None)
    one, two = quality_to_lmbda(50), quality_to_lmbda(90)
    assert fine_grids_for(one, base) == 1 and fine_grids_for(two, base) == 2
    assert base.for_lmbda(one) is base
    scaled = base.for_lmbda(two)
    assert (scaled.soft_steps, scaled.hard_steps, scaled.warm_soft_steps) == (750, 75, base.warm_soft_steps)
    assert scaled.for_lmbda(two) == scaled  # applied once
    assert replace(base, second_grid_quality=None).for_lmbda(two).total_steps == 1100
    for name, schedule in PRESETS.items():  # what an encode runs: the preset's schedule for its quality
        for q in (20, 90):
            assert EncodeOptions(quality=q, preset=name).schedule() == schedule.for_lmbda(quality_to_lmbda(q))
        for q in (20, 90):  # steps as given, split as the quality's own schedule splits them
            given = EncodeOptions(quality=q, preset=name, steps=40).schedule()
            own = schedule.for_lmbda(quality_to_lmbda(q))
            assert given.total_steps == 40 and given.for_lmbda(quality_to_lmbda(q)) == given
            assert given.hard_steps == max(1, round(40 * own.hard_steps / own.total_steps))
    medium = [EncodeOptions(quality=q).schedule() for q in (50, 90)]  # issue 12's time budget
    assert [(s.soft_steps, s.hard_steps, s.warm_soft_steps) for s in medium] == [(1800, 200, 540), (1620, 180, 540)]


def test_the_search_moves_each_latent_level_at_its_own_rate():
    # the finest levels held still (scale 0) stay exactly zero; a coarse level with a large rate moves
    schedule = replace(PRESETS["ultrafast"], soft_steps=3, hard_steps=0, lr_latents=(5.0, 5.0), fine_latent_lr_scale=0.0)
    target = torch.rand(3, 16, 24, generator=torch.Generator().manual_seed(3))
    config = ModelConfig(n_levels=4, mod_hidden=8, arm_hidden=8)
    result = search_group([target], config, schedule, quality_to_lmbda(50), torch.device("cpu"))
    levels = result.frames[0].latents
    assert all(not level.any() for level in levels[:FINE_LEVELS])
    assert any(level.any() for level in levels[FINE_LEVELS:])
    moving = search_group([target], config, replace(schedule, fine_latent_lr_scale=1.0), quality_to_lmbda(50),
                          torch.device("cpu"))
    assert any(level.any() for level in moving.frames[0].latents[:FINE_LEVELS])


def test_arm_is_narrowest_up_to_quality_30_and_16_wide_above():
    assert [arm_hidden_for(quality_to_lmbda(q)) for q in range(0, 101, 5)] == [ARM_HIDDEN_NARROWEST] * 7 + [
        ARM_HIDDEN_NARROW] * 14
    # the reference width stays the decoder's default; the encoder records its own in the file
    assert ModelConfig().arm_hidden == ARM_HIDDEN_WIDE > ARM_HIDDEN_NARROW


def test_the_encoder_records_its_arm_width_and_grids_in_the_header():
    from lotto_media.options import EncodeOptions
    from lotto_media.stream import sequence_header
    from lotto_media.frame import VideoFormat

    video = VideoFormat(width=32, height=16, pix_fmt="rgb24")
    for quality, grids, width in ((20, 1, ARM_HIDDEN_NARROWEST), (60, 1, ARM_HIDDEN_NARROW), (90, 2, ARM_HIDDEN_NARROW)):
        model = sequence_header(video, EncodeOptions(quality=quality, preset="medium"), gop=1, n_frames=1).model
        assert (model.fine_grids, model.arm_hidden) == (grids, width)


def test_the_encoder_prunes_more_of_a_picture_from_quality_80():
    """Pictures (and intra-only streams) take the high-rate mask ratio from quality 80; streams
    with predicted frames keep theirs; --mask-ratio overrides."""
    from lotto_media.frame import VideoFormat
    from lotto_media.options import EncodeOptions
    from lotto_media.search.presets import HIGH_RATE_MASK_RATIO, MASK_RATIO, PREDICTED_MASK_RATIO
    from lotto_media.stream import sequence_header

    assert (MASK_RATIO, HIGH_RATE_MASK_RATIO, PREDICTED_MASK_RATIO) == (0.2, 0.4, 0.05)
    video = VideoFormat(width=32, height=16, pix_fmt="rgb24")

    def ratio(quality: float, gop: int = 1, n_frames: int = 1, **options: object) -> float:
        header = sequence_header(video, EncodeOptions(quality=quality, **options), gop=gop, n_frames=n_frames)
        return header.model.mask_ratio

    assert [ratio(q) for q in (20, 50, 79, 80, 85, 90, 100)] == [0.2] * 3 + [0.4] * 4
    assert ratio(90, gop=1, n_frames=9) == 0.4  # every frame intra
    assert [ratio(q, gop=8, n_frames=9) for q in (40, 90)] == [0.05, 0.2]  # predicted frames
    assert ratio(90, mask_ratio=0.3) == 0.3


def test_the_latent_step_ramps_from_one_to_the_presets_step_over_its_qualities():
    for name, schedule in PRESETS.items():
        low_q, high_q = schedule.latent_step_qualities
        qualities = range(0, 101, 5)
        steps = [schedule.latent_step_for(quality_to_lmbda(q)) for q in qualities]
        assert steps == sorted(steps, reverse=True)  # never a coarser step at a higher rate
        for q, step in zip(qualities, steps):
            if q <= low_q:
                assert step == 1.0
            elif q >= high_q:
                assert step == pytest.approx(schedule.latent_step)
            else:  # log-linear in lambda, so in the quality
                t = (q - low_q) / (high_q - low_q)
                assert step == pytest.approx(schedule.latent_step ** t)
    # as measured (docs/RESULTS.md): 0.25 at medium and beyond, 0.5 at fast, from quality 70 to 90;
    # ultrafast keeps 1
    assert PRESETS["ultrafast"].latent_step == 1.0
    assert PRESETS["fast"].latent_step == 0.5
    for name in ("medium", "slow", "placebo"):
        assert PRESETS[name].latent_step == 0.25
    for name in ("fast", "medium", "slow", "placebo"):
        assert PRESETS[name].latent_step_qualities == (70.0, 90.0)


def test_the_end_temperature_rises_with_the_quality_where_a_preset_sets_it():
    ramped = replace(PRESETS["medium"], temperature=(0.3, 0.2), temperature_end_high=0.3,
                     temperature_qualities=(40.0, 80.0))
    ends = [ramped.for_lmbda(quality_to_lmbda(q)).temperature for q in (20, 40, 60, 80, 90)]
    assert ends[0] == ends[1] == (0.3, 0.2) and ends[3] == ends[4] == pytest.approx((0.3, 0.3))
    assert 0.2 < ends[2][1] < 0.3 and ends[2][0] == 0.3
    once = ramped.for_lmbda(quality_to_lmbda(60))
    assert once.temperature_end_high is None and once.for_lmbda(quality_to_lmbda(60)) == once
    assert PRESETS["slow"].for_lmbda(quality_to_lmbda(90)).temperature == PRESETS["slow"].temperature

    def end_temperatures(name: str, qualities: tuple[float, ...]) -> list[float]:
        return [PRESETS[name].for_lmbda(quality_to_lmbda(q)).temperature[1] for q in qualities]

    medium = end_temperatures("medium", (20, 80, 85, 90, 95))
    assert medium[0] == medium[1] == 0.1 and 0.1 < medium[2] < 0.3 and medium[3] == medium[4] == 0.3
    for name in ("ultrafast", "fast"):
        assert end_temperatures(name, (20, 40, 80, 90)) == [0.2, 0.2, 0.3, 0.3]
    for name in PRESETS:  # predicted frames end cold at every quality (search/inter.py)
        schedule = PRESETS[name].for_lmbda(quality_to_lmbda(90))
        assert schedule.predicted_temperature == (0.3, 0.1)
