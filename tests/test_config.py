"""Search settings: the quality scale and the learning rates that depend on it."""

from __future__ import annotations

import pytest

from lotto_media.model.config import ARM_HIDDEN_NARROW, ARM_HIDDEN_NARROWEST, ARM_HIDDEN_WIDE, ModelConfig
from lotto_media.search.presets import LATENT_LR_CAP_LMBDA, LATENT_LR_LMBDAS, PRESETS, arm_hidden_for, quality_to_lmbda
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
    rates = [schedule.latent_lr(quality_to_lmbda(q)) for q in range(0, 101, 10)]
    assert rates == sorted(rates) and low < high
    assert schedule.latent_lr(LATENT_LR_LMBDAS[0]) == pytest.approx(low)
    assert schedule.latent_lr(1.0) == pytest.approx(low)
    capped = schedule.latent_lr(LATENT_LR_CAP_LMBDA)
    assert low < capped < high
    # the cap sits on the log-linear ramp from quality 50 toward quality 80 (a third of the way)
    assert capped == pytest.approx(low * (high / low) ** (1 / 3))
    for q in (60, 61, 80, 100):
        assert schedule.latent_lr(quality_to_lmbda(q)) == pytest.approx(capped)
    assert schedule.latent_lr(1e-9) == capped


def test_arm_is_narrow_at_low_rates_and_wide_at_high_rates():
    widths = [arm_hidden_for(quality_to_lmbda(q)) for q in range(0, 101, 5)]
    assert widths == sorted(widths)  # never narrower at a higher rate
    assert arm_hidden_for(quality_to_lmbda(0)) == arm_hidden_for(quality_to_lmbda(30)) == ARM_HIDDEN_NARROWEST
    assert arm_hidden_for(quality_to_lmbda(35)) == arm_hidden_for(quality_to_lmbda(50)) == ARM_HIDDEN_NARROW
    assert arm_hidden_for(quality_to_lmbda(60)) == arm_hidden_for(quality_to_lmbda(90)) == ARM_HIDDEN_WIDE
    assert ModelConfig().arm_hidden == ARM_HIDDEN_WIDE < 256
