"""Encoder options as the API and the CLI take them."""

from __future__ import annotations

from dataclasses import dataclass

from .search.presets import DEFAULT_PRESET, TrainConfig, preset, quality_to_lmbda
from .errors import InputError

DEFAULT_QUALITY = 50.0


@dataclass
class EncodeOptions:
    lmbda: float | None = None
    quality: float | None = None
    preset: str = DEFAULT_PRESET
    mask_ratio: float = 0.2
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    steps: int | None = None

    def resolved_lmbda(self) -> float:
        if self.lmbda is not None and self.quality is not None:
            raise InputError("give either lmbda or quality, not both")
        if self.lmbda is not None:
            if not 0 < self.lmbda < 10:
                raise InputError(f"lmbda must be in (0, 10), got {self.lmbda}")
            return float(self.lmbda)
        return quality_to_lmbda(DEFAULT_QUALITY if self.quality is None else self.quality)

    def effective_quality(self) -> float | None:
        """The quality the encoder works at: the one given, the default when neither quality nor
        lambda was given, None when lambda was given directly."""
        if self.lmbda is not None:
            return None
        return DEFAULT_QUALITY if self.quality is None else float(self.quality)

    def schedule(self) -> TrainConfig:
        base = preset(self.preset)
        if self.steps is None:
            return base
        if self.steps < 2:
            raise InputError(f"steps must be at least 2, got {self.steps}")
        hard = max(1, round(self.steps * base.hard_steps / base.total_steps))
        soft = self.steps - hard
        warm = max(1, round(soft * base.warm_soft_steps / base.soft_steps)) if soft else 0
        return preset(self.preset, soft_steps=soft, hard_steps=hard, warm_soft_steps=warm)
