"""The search's settings: schedules (presets), the quality scale and the encoder's width policy."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..errors import InputError
from ..model.config import ARM_HIDDEN_NARROW, ARM_HIDDEN_NARROWEST, ModelConfig


#: Hidden width (o0's channels) of the modulation network the encoder uses. ModelConfig keeps the
#: reference width 48 of DESIGN section 3 as its default; the decoder reads the width from the file.
#: Measured at 600 steps, 384x256, one run each (J = MSE + lambda * bpp), width 24 instead of 48:
#: J -9 % (kodim07, quality 40), -3 % (kodim03, q20: the networks 769 B instead of 943), -18 %
#: (kodim08, q80: 34.19 dB instead of 33.10 at 2.62 bpp), +2 % (kodim01, q60); a step costs ~20 %
#: less. Widths 16 and 32 fell between. The random network changes with the width, and five seeds
#: at width 24 spread J by 3.5 % (kodim07 q40: 1.39-1.52 x 1e-3), so only the larger gaps are signal.
ENCODER_MOD_HIDDEN = 24



#: latent levels, from the full-resolution one, searched at ``TrainConfig.fine_latent_lr_scale``
FINE_LEVELS = 2


@dataclass(frozen=True)
class TrainConfig:
    """One search schedule. Steps are optimiser steps over the whole image."""

    soft_steps: int
    hard_steps: int
    #: soft-rounding steps of a frame warm-started from the previous frame of its group (every
    #: predicted frame after a group's first, whose networks are then held). Measured at fast on a
    #: 128x96 CiscoVT2people crop, quality 40, frames 2 and 3: 162 steps gave 308 B / 33.34 dB and
    #: 316 B / 33.27 dB, 81 steps 308 B / 33.16 dB and 320 B / 32.86 dB. The first predicted frame
    #: fits the networks and keeps the full soft_steps: 162 there gave 340 B / 33.62 dB, 324
    #: steps 268 B / 34.00 dB. At fast, 126 instead of 162 (9-frame crops of CiscoVT2people and
    #: park_joy, quality 45) made the later frames 18 % faster for D + lambda R of the stream +2.1 %
    #: and +0.8 %: the preset trades that for frames after a group's first at over twice the speed
    #: of a frame coded alone.
    warm_soft_steps: int = 0
    #: learning rates of a warm-started frame, relative to the first frame's. Measured (4 frames of a
    #: real picture panning 1 px a frame, 48x32, quality 40, D + lambda R of the group): 1.0 with a
    #: full annealing restart gave 0.0316 at ultrafast and 0.0213 at fast, against 0.0456 and 0.0227
    #: with 0.5 entering the annealing half way
    warm_lr_scale: float = 1.0
    #: learning rate of the shared networks while a warm-started frame is searched, relative to
    #: the first frame's; the joint hard-rounding phase then fits them to every frame. Measured
    #: (park_joy 64x48 crop, 4 frames, fast, quality 60): networks left free (1.0) dropped the
    #: group's first frame from 35.7 dB (coded alone) to 28.0 dB, its latents having rested while
    #: the networks moved; 0.2 gave 29.9 dB; frozen (0.0) 35.9 dB, the group 34 % smaller than the
    #: frames coded alone
    warm_net_lr_scale: float = 0.0
    #: learning rate of the networks for predicted frames, fitted on a group's first predicted
    #: frame, relative to ``lr``. Measured at medium (quality 45, 3-5 frames; D + lambda R of the
    #: predicted frames): 0.3 instead of 1.0 gave -35 % on CiscoVT2people 320x192, where the
    #: full rate made the first predicted frame 1,777 B at 33.47 dB instead of 1,497 B at 34.93 and
    #: the next one 2,177 B at 32.41 dB instead of 1,376 B at 34.99; -0.8 % on park_joy 160x90 and
    #: about -1.5 % on a 176x144 crop of bus. At fast (a schedule a third as long) 0.3 gave -13.5 %
    #: on CiscoVT2people but +4.8 % on park_joy and lost 0.1-0.5 dB a frame on the bus crop, so
    #: fast keeps 1.0; slow and placebo follow medium unmeasured.
    predicted_net_lr_scale: float = 1.0
    lr: float = 3e-2  # small networks
    #: latent learning rate at low and at high rate (see ``latent_lr``)
    lr_latents: tuple[float, float] = (6e-2, 2e-1)
    #: the quality from which the latent learning rate of a picture, or of a stream's intra frame
    #: (unmeasured there), stops rising (``latent_lr``): 60, and 70 at ultrafast and fast.
    #: Measured (Kodak 384x256, one thread, two at a time, J = MSE + lambda bpp, 70 against 60,
    #: kodim01..08): at fast, quality 80 -12.7 / -9.8 / -7.0 / -5.2 / -7.2 / -7.7 / -10.6 / -4.9 %
    #: (mean -8.1 %, 8/8 better), quality 90 -9.1 / -7.6 / -15.2 / +8.6 / -11.4 / +9.3 / +1.5 /
    #: -8.8 % (mean -4.1 %, 5/8); at ultrafast, qualities 80 and 90, mean -6.7 / -9.7 % (7/8 each;
    #: kodim08 +20.5 / +20.8 %); at medium, quality 90, -1.8 / -1.4 / -8.1 / +8.8 / -0.9 / +10.6 /
    #: -5.7 / -4.2 % (mean -0.3 %): with five times fast's steps the higher rate buys little and,
    #: as at fast, sends kodim04 and kodim06 astray at quality 90 (more bits for a lower PSNR), so
    #: medium and slower keep 60
    latent_lr_cap_quality: float = 60.0
    #: the learning rate of the FINE_LEVELS finest latent levels relative to ``latent_lr``, reached
    #: at the quality ``fine_latent_lr_qualities[1]`` and above, 1 at ``[0]`` and below (see
    #: ``latent_lrs``)
    fine_latent_lr_scale: float = 3.0
    fine_latent_lr_qualities: tuple[float, float] = (50.0, 60.0)
    #: the same ramp for predicted frames at every preset. Measured at fast on 6-frame crops (J of
    #: the stream, against one rate for every level): quality 75 -3.8 / -3.8 % (CiscoVT2people /
    #: park_joy), quality 45 +1.0 / +0.5 %
    predicted_fine_latent_lr_qualities: tuple[float, float] = (50.0, 60.0)
    #: the quality from which a picture gets a second full-resolution latent grid (``fine_grids_for``;
    #: None: never): 85 at fast and medium, and at slow and placebo, unmeasured there
    second_grid_quality: float | None = None
    #: the learning rate of a second full-resolution grid relative to the fine levels'. Measured at
    #: medium (J, one run each): kodim05 quality 90 -15.0 % at 1/3 against -13.0 % at 1; kodim01
    #: quality 80 +2.8 % at 1/3 against +18.7 % at 1; at quality 90 against 1/3, 1 gave +19.6 / -1.7 %
    #: (kodim06 / kodim03) and 0.15 gave -10.5 / +5.3 / +15.1 / -7.1 % (kodim06 / 03 / 02 / 05)
    second_grid_lr_share: float = 1 / 3
    #: the share of ``soft_steps`` and ``hard_steps`` that a picture with the second grid takes
    #: (``for_lmbda``): its steps cost more (1.75x the latents through the ARM, even 16 wide), and
    #: medium is a time budget, about the same seconds at every quality
    second_grid_step_share: float = 1.0
    #: the step of a picture's (or an intra frame's) coded latents in the synthesis' input units
    #: during its search (``latent_step_for``), reached at the quality ``latent_step_qualities[1]``
    #: and above, 1 at ``[0]`` and below: 0.25 at medium and slower and 0.5 at fast, from quality 70
    #: (unchanged there) to 90; ultrafast keeps 1 (unmeasured). Measured at medium, quality 90
    #: (Kodak 384x256, one thread, two at a time, J = MSE + lambda bpp against a step of 1): -19.2 /
    #: -2.5 / -13.0 / -3.3 / -3.6 / -14.5 / -17.8 / -19.7 % (kodim01..08, mean -11.7 %, 8/8 better;
    #: kodim01 44.44 dB at 4.44 bpp instead of 41.97 at 4.60), the same seconds; a step of 0.5
    #: against 0.25: -4.5 / -10.8 / +2.7 / +12.9 % (kodim03 / 05 / 08 / 01) with seed 0, where another
    #: seed moved kodim03's and kodim05's J by 12-16 % (docs/RESULTS.md). At fast (a fifth of the
    #: steps) 0.25 at quality 90 gave -4.8 / +6.0 % (kodim01 / 03); the ramp to 0.5, against 1
    #: (kodim01..08): quality 80 (0.71) -5.5 / +0.9 / -4.9 / -8.0 / -12.3 / -2.7 / -5.3 / -12.7 %
    #: (mean -6.3 %, 7/8), quality 90 +11.6 / +6.6 / -12.0 / -9.1 / -23.7 / -20.1 / +8.8 / -10.0 %
    #: (mean -6.0 %, 5/8). At medium, quality 80 (a step of 0.5): -11.0 / -4.6 / -10.0 / -9.8 / -9.8
    #: / -4.6 / -5.5 / -11.9 % (kodim01..08, mean -8.4 %, 8/8). Measured in float32 (an AVX2 CPU);
    #: unmeasured: with medium's bfloat16 share on, between the measured qualities, at slow and
    #: placebo, on a stream's intra frames. Predicted frames (their own networks) keep 1.
    latent_step: float = 1.0
    latent_step_qualities: tuple[float, float] = (70.0, 90.0)
    lr_scores: float = 5e-2
    lr_hard: float = 1e-3
    #: the soft rounding's temperature at the soft phase's start and end (linear between)
    temperature: tuple[float, float] = (0.3, 0.1)
    #: where set, the end temperature rises from ``temperature[1]`` at ``temperature_qualities[0]``
    #: and below to this at ``[1]`` and above (log-linear in lambda, ``for_lmbda``). At ultrafast
    #: and fast 0.2 -> 0.3 over qualities 40 -> 80: a sharper proxy at the soft phase's end leaves
    #: the latents less room to move in few steps. At fast, measured (Kodak 384x256 kodim05..08,
    #: seeds 0-2, one thread, two at a time, J = MSE + lambda bpp against 0.3 -> 0.1 throughout):
    #: quality 80, end 0.3 -4.79 % (12/12 better), 0.2 -3.34 % (12/12), 0.05 +5.45 % (0/12); quality
    #: 40, end 0.2 -0.97 % (10/12), 0.3 0.0 % (7/12); quality 90 (the second grid, seeds 0-1), end
    #: 0.3 -7.02 % (8/8). At medium 0.1 -> 0.3 over qualities 80 -> 90: its 1,800 soft steps gain
    #: from the warm end with the second grid only (kodim05..08, J against 0.1): quality 90 seed 0
    #: -4.9 / -5.5 / -2.8 / -4.8 %, seed 1 -2.6 / -4.9 / -4.2 / -3.3 % (mean -4.1 %, 8/8 better),
    #: quality 80 seed 0 +0.6 / -2.8 / +1.4 / +0.5 % (mean -0.1 %). ultrafast as fast (kodim05..08,
    #: seeds 0-2): quality 80 end 0.3 -8.98 % (12/12), 0.2 -6.61 % (12/12); quality 40 end 0.2
    #: -1.79 % (10/12), 0.3 -1.21 % (9/12). fast at quality 20 (end 0.2) and 60 (0.25), seeds 0-1:
    #: -0.53 % (7/8) and -2.51 % (7/8). Unmeasured: slow and placebo (which keep 0.1), ultrafast at
    #: 20, 60 and 90.
    #: Predicted frames: ``predicted_temperature``.
    temperature_end_high: float | None = None
    temperature_qualities: tuple[float, float] = (40.0, 80.0)
    #: a predicted frame's temperatures (search/inter.py), whatever the picture's: with the warmer
    #: end a still scene's predicted frames came out 0.04-0.07 dB below their intra frame
    #: (tests/test_inter.py); video is unmeasured
    predicted_temperature: tuple[float, float] = (0.3, 0.1)
    noise: tuple[float, float] = (2.0, 1.0)
    #: share of a picture's or intra frame's soft-rounding phase (and of each warm-started phase of
    #: a group sharing its networks, unmeasured), from its start, whose synthesis and ARM (its
    #: contexts, layers and outputs, and the exp of the Laplace scale) run in bfloat16 where the
    #: CPU runs it well (``train.bfloat16_steps``); the Laplace intervals, the
    #: bits, the loss, the end of the phase and the hard-rounding phase stay in float32.
    #: The ARM's share, against the synthesis alone in bfloat16: at medium, quality 80, eight Kodak
    #: pictures, J -1.75 % (-6.1 to +2.2 %, 6/8 better) for encodes 5.3 % shorter (one thread, two
    #: side by side).
    #: Measured at medium (Kodak 384x256, one run each, J = MSE + lambda bpp against float32
    #: throughout), 0.8: kodim01 q80 +0.5 %, kodim05 q90 -3.3 %, kodim23 q60 -1.8 %, kodim02 q40
    #: +0.4 %, kodim06 q90 +2.6 %, kodim08 q60 +1.5 % (mean 0.0 %, within the search's noise), an
    #: encode 13-16 % faster on one thread, 10 % on two; the whole phase in bfloat16 lost 0.5 dB
    #: (kodim01 q80 at fast, J +8.2 %). Predicted frames (search/inter.py) stay in float32, unmeasured.
    bf16_soft_share: float = 0.0
    #: the small networks' optimiser ("adam" or "soap", ``train.GroupOptimiser``); the latents and
    #: mask scores keep Adam. Measured (Kodak 384x256, one thread, side by side with Adam, J =
    #: MSE + lambda bpp): at fast kodim01 q80 -4.4 %, kodim03 q40 -0.2 %, kodim05 q80 -11.3 %,
    #: kodim07 q40 -3.4 %; at medium kodim02 q80 -25.8 % (40.22 dB at 1.87 bpp instead of 37.74
    #: at 1.63), kodim04 q40 -3.1 %, kodim06 q80 +0.2 %, kodim08 q40 -2.7 % (7/8 better,
    #: mean -6.3 %), for 1-3 % more seconds. At ultrafast's 50 steps (SOAP at 0.95 / 0.95 against Adam):
    #: J -20.2 / -25.9 / -46.3 / -20.0 / -33.1 / -65.7 % (kodim03 q20, kodim07 q40, kodim04 q40,
    #: kodim01 q60, kodim05 q80, kodim02 q90), the same seconds.
    network_optimiser: str = "soap"

    @property
    def total_steps(self) -> int:
        return self.soft_steps + self.hard_steps

    def for_lmbda(self, lmbda: float) -> TrainConfig:
        """The schedule a picture coded at ``lmbda`` runs: its end temperature
        (``temperature_end_high``) and, with the second full-resolution grid (``fine_grids_for``),
        ``second_grid_step_share`` of the soft and hard steps."""
        schedule = self
        if self.temperature_end_high is not None:
            start, end = self.temperature
            share = _quality_ramp(lmbda, self.temperature_qualities)
            schedule = replace(schedule, temperature=(start, end + (self.temperature_end_high - end) * share),
                               temperature_end_high=None)
        if self.second_grid_step_share == 1.0 or fine_grids_for(lmbda, self) == 1:
            return schedule
        share = self.second_grid_step_share
        return replace(schedule, soft_steps=max(1, round(self.soft_steps * share)),
                       hard_steps=max(1, round(self.hard_steps * share)), second_grid_step_share=1.0)

    def latent_lr(self, lmbda: float, predicted: bool = False) -> float:
        """Learning rate of the latents for a rate-distortion trade-off.

        At high rates the latents carry finer detail in larger values and must travel further in
        the same number of steps, so the rate grows from ``lr_latents[0]`` at lambda
        LATENT_LR_LMBDAS[0] (quality 50) toward ``lr_latents[1]`` at LATENT_LR_LMBDAS[1] (quality
        80), log-linearly in lambda, and stops rising at the lambda of ``latent_lr_cap_quality``
        (a rate of ~0.09 from quality 60, ~0.13 from 70). Predicted frames (``predicted``) stop at
        quality 60.
        Measured at 1000 steps with the 48-wide modulation network (one run each): at quality
        80, 0.2 instead of 0.06 lowered D + lambda R by 35 % (kodim05) and 0.2 instead of 0.12 by
        11 % (kodim01); 0.12 instead of 0.06 raised it by 14 % at quality 50 (kodim05) and by 1 %
        at quality 20 (kodim01). With the 24-wide network and 1200 steps, 0.2 at quality 80 made
        the search go astray on 4 of 8 Kodak images (PSNR below their quality-60 point, e.g.
        kodim05 3.26 bpp / 31.84 dB after 2.47 / 33.43); capped at the quality-60 rate, kodim05
        gives 2.88 bpp / 34.37 dB.
        """
        cap = quality_to_lmbda(PREDICTED_LATENT_LR_CAP_QUALITY if predicted else self.latent_lr_cap_quality)
        # max() clamps lambda at the cap's, so every quality from the cap up gets the cap's rate bit for bit
        t = _ramp(max(lmbda, cap), *LATENT_LR_LMBDAS)
        return math.exp((1 - t) * math.log(self.lr_latents[0]) + t * math.log(self.lr_latents[1]))

    def latent_lrs(self, lmbda: float, n_levels: int, predicted: bool = False,
                   second_grid: bool = False) -> list[float]:
        """Learning rate of each latent grid: the pyramid's ``n_levels``, full resolution first,
        then with ``second_grid`` the second full-resolution grid at ``second_grid_lr_share`` of
        the fine levels' rate. In the pyramid: ``latent_lr``, and for the FINE_LEVELS finest
        levels that rate times a scale rising log-linearly in lambda from 1 to
        ``fine_latent_lr_scale`` over ``fine_latent_lr_qualities`` (for ``predicted`` frames,
        ``predicted_fine_latent_lr_qualities``).

        The finest levels carry the detail, most of all at high rates, and must travel furthest in
        the steps a preset has; a coarse latent moves a whole neighbourhood of pixels, and given the
        same rate the coarse levels sent the search astray (why ``latent_lr`` stops rising at
        ``latent_lr_cap_quality``). Measured (Kodak 384x256, one run each, J = MSE + lambda bpp; docs/RESULTS.md),
        the two finest levels at 3x: at fast J -29 / -28 / -26 % at quality 80 (kodim01 / kodim05
        / kodim23), -15 / -9 / -10 % at 40, -8.5 / -2.2 % at 20 (kodim01 / kodim05); at medium
        -24 / -18 % at 80 (kodim05 / kodim23), -7.1 / -3.2 / -2.1 % at 60 (kodim05 / kodim01 /
        kodim23), but -4.8 / +13 % at 40 (kodim01 / kodim23), whence the ramp at medium and beyond
        (and for ``predicted`` frames, see ``predicted_fine_latent_lr_qualities``).
        At quality 80 (fast, kodim01 / kodim05), 2x on the finest level only or on the three
        finest did worse than on the two finest; 4x did better on kodim05 and worse on kodim01
        than 3x; every level at 2x (0.18) sent kodim05 and kodim23 astray (J +56 / +29 %).
        """
        base = self.latent_lr(lmbda, predicted)
        qualities = self.predicted_fine_latent_lr_qualities if predicted else self.fine_latent_lr_qualities
        fine = base * self.fine_latent_lr_scale ** _quality_ramp(lmbda, qualities)
        pyramid = [fine if level < FINE_LEVELS else base for level in range(n_levels)]
        return pyramid + [fine * self.second_grid_lr_share] if second_grid else pyramid

    def latent_step_for(self, lmbda: float) -> float:
        """The step of one unit of a picture's (or intra frame's) coded latents in the synthesis'
        input units while it is searched: ``latent_step`` to the power of a ramp log-linear in
        lambda over ``latent_step_qualities``. The search multiplies the latents by it before the
        synthesis, divides their learning rates by it, and folds it into the modulation network's
        first layer when it ends (``FrameModel.fold_latent_step``): the file is the same kind of
        file, and the decoder never sees the step.

        The rounding of the latents is the search's noise floor at high rates: with a step of 1
        the full-resolution latents of kodim01 at quality 90 ended with a spread (standard
        deviation) of 1.7, about two bits of resolution, and without any rate term (lambda / 100)
        the search still stopped at 39.7 dB at fast; the same search on unrounded latents passed 44.
        A smaller step starts the latents on a finer grid, which Adam's steps of a fixed size
        in the latents' own units would take many steps to reach by growing them."""
        return self.latent_step ** _quality_ramp(lmbda, self.latent_step_qualities)


def _quality_ramp(lmbda: float, qualities: tuple[float, float]) -> float:
    """``_ramp`` between the lambdas of two qualities."""
    return _ramp(lmbda, *(quality_to_lmbda(q) for q in qualities))


def _ramp(lmbda: float, start: float, end: float) -> float:
    """Where lambda lies from ``start`` (0) to ``end`` (1), log-linearly, clamped to [0, 1]; a ramp
    with start == end is a step, 1 from that lambda down (from its quality up)."""
    low, high = math.log(start), math.log(end)
    if low == high:
        return 1.0 if _up_to_lmbda(lmbda, end) else 0.0
    return min(1.0, max(0.0, (low - math.log(lmbda)) / (low - high)))


#: Step budgets sized for a 2-core CPU at 384x256. medium is issue 12's budget, about 110 s a
#: picture at every quality on a CPU with bfloat16 steps (``train.bfloat16_steps``; 111-124 s in a slow hour
#: with a 24-wide ARM above quality 50, whose steps the 16-wide one makes 8 % quicker; a CPU with
#: AVX2 only takes about twice as long): 2,000 steps with one full-resolution grid, 1,800 with the
#: second (its steps cost 20-45 % more: 1.75x the latents through the ARM), since the command
#: line keeps freed memory (``lotto_media.allocator``: steps 19-29 % faster). Against 1,600 and
#: 1,440, Kodak J -0.5 / -1.1 / -1.9 / -2.65 / -4.6 % at qualities 20 / 40 / 60 / 80 / 90; those
#: against 1,200 throughout -1.9 / -2.5 / -2.2 / -4.9 % at 20-80 and -2.75 % at 90 with the
#: narrower ARM (docs/RESULTS.md). See README's preset table for measured seconds.
PRESETS: dict[str, TrainConfig] = {
    "ultrafast": TrainConfig(soft_steps=40, hard_steps=10, warm_soft_steps=20, fine_latent_lr_qualities=(0.0, 0.0),
                             latent_lr_cap_quality=70.0, temperature=(0.3, 0.2), temperature_end_high=0.3),
    "fast": TrainConfig(soft_steps=324, hard_steps=36, warm_soft_steps=126, fine_latent_lr_qualities=(0.0, 0.0),
                        second_grid_quality=85.0, latent_lr_cap_quality=70.0, latent_step=0.5,
                        temperature=(0.3, 0.2), temperature_end_high=0.3),
    "medium": TrainConfig(soft_steps=1800, hard_steps=200, warm_soft_steps=540, predicted_net_lr_scale=0.3,
                          bf16_soft_share=0.8, second_grid_quality=85.0, second_grid_step_share=0.9,
                          latent_step=0.25, temperature_end_high=0.3, temperature_qualities=(80.0, 90.0)),
    "slow": TrainConfig(soft_steps=4320, hard_steps=480, warm_soft_steps=2160, predicted_net_lr_scale=0.3,
                        second_grid_quality=85.0, latent_step=0.25),
    "placebo": TrainConfig(soft_steps=100_000, hard_steps=10_000, warm_soft_steps=50_000,
                           predicted_net_lr_scale=0.3, second_grid_quality=85.0, latent_step=0.25),
}
PRESET_NAMES = list(PRESETS)
DEFAULT_PRESET = "medium"


def preset(name: str, **overrides: object) -> TrainConfig:
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r} (choose from {', '.join(PRESET_NAMES)})")
    return replace(PRESETS[name], **overrides) if overrides else PRESETS[name]


# --quality 0..100 maps to lambda on a log scale: quality 0 -> LMBDA_AT_0, 100 -> LMBDA_AT_100.
LMBDA_AT_0 = 0.02
LMBDA_AT_100 = 1e-5


def quality_to_lmbda(quality: float) -> float:
    """Monotonic: higher quality, smaller lambda (more bits). Log-linear in between."""
    if not 0 <= quality <= 100:
        raise InputError(f"quality must be in 0..100, got {quality}")
    t = quality / 100.0
    return math.exp((1 - t) * math.log(LMBDA_AT_0) + t * math.log(LMBDA_AT_100))


#: lambdas of quality 50 and 80, where ``TrainConfig.latent_lr`` takes its two values
LATENT_LR_LMBDAS = (quality_to_lmbda(50), quality_to_lmbda(80))
#: the quality from which a predicted frame's latent learning rate stops rising (``TrainConfig.latent_lr``)
PREDICTED_LATENT_LR_CAP_QUALITY = 60.0

#: the ARM is 8 wide from the lambda of quality 30 (and lower qualities), 16 below it (``arm_hidden_for``)
ARM_NARROWEST_FROM_LMBDA = quality_to_lmbda(30)


def _from_lmbda(lmbda: float, threshold: float) -> bool:
    """lambda at or above a threshold that is itself the lambda of a whole quality (so that the
    quality's own lambda, recomputed, lands on the same side)."""
    return lmbda >= threshold * (1 - 1e-12)


def _up_to_lmbda(lmbda: float, threshold: float) -> bool:
    """lambda at or below such a threshold (the same tolerance as ``_from_lmbda``)."""
    return lmbda <= threshold * (1 + 1e-12)


#: fraction of the random network's weights pruned (the mask's 1 - kept share): pictures (and
#: streams of intra frames only) below quality 80, streams with predicted frames above quality 50;
#: the network's reference default
MASK_RATIO = ModelConfig.mask_ratio
#: ... and streams with predicted frames from the lambda of quality 50 down (``mask_ratio_for``)
PREDICTED_MASK_RATIO, PREDICTED_MASK_RATIO_FROM_LMBDA = 0.05, quality_to_lmbda(50)
#: ... and pictures (and streams of intra frames only) from the lambda of quality 80 up
#: (``mask_ratio_for``)
HIGH_RATE_MASK_RATIO, HIGH_RATE_MASK_RATIO_TO_LMBDA = 0.4, quality_to_lmbda(80)


def mask_ratio_for(lmbda: float, predicted: bool) -> float:
    """The mask ratio the encoder uses (recorded in the sequence header) when none is given.

    A mask costs about n H(ratio) bits whatever the picture's size (1,651 weights: 149 B at 0.2,
    59 B at 0.05), and a group with predicted frames sends two (its intra frame's and its first
    predicted frame's). Measured (docs/RESULTS.md, 6-frame crops of CiscoVT2people, park_joy and
    bus, J = D + lambda R), 0.05 instead of 0.2: at fast, quality 30 -5.0 / -2.1 / -4.5 %, 45 -4.7
    / -5.3 / -5.3 %, 60 -3.2 / +2.1 / -2.4 %, 75 +7.9 / -0.7 / +5.7 %; at medium, quality 30 -4.3
    / -2.5 % and 45 -3.6 / 0.0 % (CiscoVT2people / park_joy). Less pruning helps at low rates and
    hurts at high ones. On stills (Kodak 384x256 at fast) 0.05 was no better (kodim05 / kodim20
    at quality 30: -0.4 / +3.1 %) and its search went astray on kodim20 at quality 60 (27.6 dB
    instead of 33.0 for the same bytes), so pictures keep 0.2 below quality 80.

    From quality 80 a picture prunes more (HIGH_RATE_MASK_RATIO): at high rates the mask is all
    that fits the random network to the picture, and its bytes weigh least. Measured (Kodak
    384x256, kodim01..08, J = MSE + lambda bpp, docs/RESULTS.md), 0.4 against 0.2: medium quality
    90, seeds 0 and 7 against the mean of three seeds, J -5.0 % (13 of 16 runs better) and the mean
    gap to x265 4:4:4 at the same rate 1.59 -> 0.88 dB; medium quality 80, seed 0, J -4.1 % (6/8);
    fast quality 90, seed 0, J -12.5 % (6/8). The same work a step; a mask about 50 bytes larger.
    At quality 60 (fast, kodim05..08, an AMX Xeon) 0.4 gave J +0.7 / +0.4 / -2.9 / +1.9 %, at 70
    +5.4 / -6.7 / +1.7 / -8.9 % (mean -2.1 %, 2/4 better: within the search's noise), so the step
    stays at 80. Unmeasured: fast at 80, streams with predicted frames (which keep 0.2)."""
    if predicted:
        return PREDICTED_MASK_RATIO if _from_lmbda(lmbda, PREDICTED_MASK_RATIO_FROM_LMBDA) else MASK_RATIO
    if _up_to_lmbda(lmbda, HIGH_RATE_MASK_RATIO_TO_LMBDA):
        return HIGH_RATE_MASK_RATIO
    return MASK_RATIO


def fine_grids_for(lmbda: float, schedule: TrainConfig) -> int:
    """Full-resolution latent grids (``ModelConfig.fine_grids``) for a rate-distortion trade-off
    and a schedule: 2 from ``schedule.second_grid_quality`` up.

    With one grid a level the rate saturates at high qualities (medium, Kodak 384x256: quality
    90 gives 0-12 % more bits than 80 and the same PSNR, docs/RESULTS.md). A second grid lifts that
    ceiling but costs bits and seconds below it. Measured at medium (J = MSE + lambda bpp, one run
    each, the second grid at a third of the fine rate): kodim05 quality 90 -15.0 % (37.91 dB at
    4.57 bpp instead of 36.23 at 3.21); kodim01 quality 80 +2.8 %; at the fine levels' rate
    kodim23 quality 90 -7.3 %, quality 60 +5.7 %, kodim01 quality 20 +1.4 %. At fast, quality 90
    (a third of medium's steps) with Adam for the networks: kodim05 -16.2 %, kodim23 +13.2 % (more
    bytes and a lower PSNR: too few steps to fill it), for 35 % more seconds; with SOAP: kodim01
    -12.9 %, kodim04 -32.1 % (39.45 dB at 3.11 bpp instead of 36.57 at 2.07), kodim05 -10.1 %,
    kodim07 -25.5 %, for 27-36 % more seconds, so fast takes it too; ultrafast keeps one grid. Adopted
    at medium on eight Kodak pictures: quality 90 J -9.4 % (7/8), above quality 80 on all eight
    (+1.6 dB for 55 % more bits), an encode 12-60 % longer."""
    if schedule.second_grid_quality is None:
        return 1
    # the tolerance keeps the threshold quality's own lambda, recomputed, on the second grid's side
    return 2 if _up_to_lmbda(lmbda, quality_to_lmbda(schedule.second_grid_quality)) else 1


def arm_hidden_for(lmbda: float) -> int:
    """The ARM's hidden width for a rate-distortion trade-off (the decoder reads it from the file):
    8 up to quality 30, 16 above.

    The ARM's parameters are sent with every picture: at width 24 they are ~1250 numbers, about
    0.8 KB, a sixth of a quality-20 file; at width 16, ~700; at width 8, ~300. Measured at 600
    steps with the 24-wide modulation network, width 8 instead of 16 gives J (= MSE + lambda bpp,
    one run each) -2.4 % (kodim03, q20: networks 456 B instead of 769), -2.9 % (kodim01, q20), but
    +2.1 % at quality 40 (kodim07).

    Above quality 50 the latents are most of the file and a 24-wide ARM's parameters cost little,
    but its width weighs on every search step and on the decoder, whose latent loop is one
    dependent chain (16 wide: 0.56x the multiply-adds a latent), so it stays 16 wide there.
    Measured against 24 wide (Kodak 384x256, J), at medium's 2,000 steps in float32 on kodim01-08:
    quality 60 -1.3 / -0.4 / +1.5 / +1.3 / +3.2 / -1.0 / -0.8 / +0.6 % (mean +0.4 %), quality 80
    +2.6 / +1.6 / -2.3 / -0.4 / +0.6 / +1.5 / +0.1 / -2.7 % (mean +0.1 %), within the search's
    noise, for whole encodes 9.6 % shorter on an AVX2 CPU and a quality-80 decode 10 % less work;
    on a CPU with bfloat16 steps a step is 8 % quicker, and at equal seconds there (1,740 steps
    against 1,600) eight pictures at quality 80 gave J -1.2 % (6/8 better).
    With the second full-resolution grid (1.75x the latents through the ARM), quality 90, eight
    pictures: at 1,200 steps J +0.2 % for 13 % fewer seconds, with those seconds put into steps
    J -2.75 % (7/8 better); at fast, the same steps, J +1.4 % in 17 % fewer seconds.
    """
    return ARM_HIDDEN_NARROWEST if _from_lmbda(lmbda, ARM_NARROWEST_FROM_LMBDA) else ARM_HIDDEN_NARROW
