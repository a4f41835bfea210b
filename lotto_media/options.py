"""Encoder options as the API and the CLI take them, and the limits of each.

The limits are checked here, once: ``EncodeOptions`` refuses a value when it is made, and the
CLI's parser calls the same checks, so no option is accepted by one and refused by the other and
both say the same words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .search.presets import DEFAULT_PRESET, PRESET_NAMES, TrainConfig, preset, quality_to_lmbda
from .errors import InputError

DEFAULT_QUALITY = 50.0
DEFAULT_GOP = 16
MAX_GOP = 1024
MAX_STEPS = 10**9
MAX_THREADS = 4096
MAX_SEED = 2**64 - 1
DEVICES = ("auto", "cpu", "cuda")


def check_quality(quality: float) -> float:
    if not 0 <= quality <= 100:
        raise InputError(f"quality must be in 0..100, got {quality:g}")
    return float(quality)


def check_lmbda(lmbda: float) -> float:
    if not 0 < lmbda < 10:
        raise InputError(f"lambda must be in (0, 10), got {lmbda:g}")
    return float(lmbda)


def check_mask_ratio(ratio: float) -> float:
    if not 0 <= ratio < 1:
        raise InputError(f"mask ratio must be in [0, 1), got {ratio:g}")
    return float(ratio)


def check_seed(seed: int) -> int:
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed must be in 0..2^64-1, got {seed}")
    return int(seed)


def check_steps(steps: int) -> int:
    if not 2 <= steps <= MAX_STEPS:
        raise InputError(f"steps must be in 2..{MAX_STEPS}, got {steps}")
    return int(steps)


def check_threads(threads: int) -> int:
    if not 1 <= threads <= MAX_THREADS:
        raise InputError(f"threads must be in 1..{MAX_THREADS}, got {threads}")
    return int(threads)


def check_gop(gop: int) -> int:
    if not 1 <= gop <= MAX_GOP:
        raise InputError(f"gop must be in 1..{MAX_GOP}, got {gop}")
    return int(gop)


@dataclass
class EncodeOptions:
    lmbda: float | None = None
    quality: float | None = None
    preset: str = DEFAULT_PRESET
    #: fraction of the random network pruned; None: the encoder's choice (``search.presets.mask_ratio_for``)
    mask_ratio: float | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        if self.lmbda is not None and self.quality is not None:
            raise InputError("give either lambda or quality, not both")
        if self.lmbda is not None:
            check_lmbda(self.lmbda)
        if self.quality is not None:
            check_quality(self.quality)
        if self.preset not in PRESET_NAMES:
            raise InputError(f"unknown preset {self.preset!r} (choose from {', '.join(PRESET_NAMES)})")
        if self.mask_ratio is not None:
            check_mask_ratio(self.mask_ratio)
        check_seed(self.seed)
        if self.device not in DEVICES:
            raise InputError(f"unknown device {self.device!r} ({', '.join(DEVICES)})")
        if self.threads is not None:
            check_threads(self.threads)
        if self.steps is not None:
            check_steps(self.steps)

    def resolved_lmbda(self) -> float:
        if self.lmbda is not None:
            return float(self.lmbda)
        return quality_to_lmbda(DEFAULT_QUALITY if self.quality is None else self.quality)

    def effective_quality(self) -> float | None:
        """The quality the encoder works at: the one given, the default when neither quality nor
        lambda was given, None when lambda was given directly."""
        if self.lmbda is not None:
            return None
        return DEFAULT_QUALITY if self.quality is None else float(self.quality)

    def schedule(self) -> TrainConfig:
        """The preset's schedule for this lambda (``TrainConfig.for_lmbda``); with ``steps``, that
        many steps, split between the phases as that schedule splits them."""
        base = preset(self.preset).for_lmbda(self.resolved_lmbda())
        if self.steps is None:
            return base
        hard = max(1, round(self.steps * base.hard_steps / base.total_steps))
        soft = self.steps - hard
        warm = max(1, round(soft * base.warm_soft_steps / base.soft_steps)) if soft else 0
        return replace(base, soft_steps=soft, hard_steps=hard, warm_soft_steps=warm, second_grid_step_share=1.0)
