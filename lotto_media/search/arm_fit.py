"""Fitting an ARM to latents that are already chosen: once a group is searched, its frames'
latents are fixed integers and the ARM reaches nothing but their code length, so it can be refit
on them without changing any picture. The encoder keeps the refit ARM only when the latents plus
its parameters cost fewer bits under the coder's own integer tables.

Two ARMs gain from it. The predicted frames' networks are fitted on a group's first predicted
frame and then held (``inter``), so their ARM has seen one frame's latents while later frames'
latents are residuals of other content; their refit may also give the ARM temporal taps
(docs/FORMAT.md 3.3: the previous predicted frame's latents around the same position). An intra
frame's ARM was fitted beside latents that moved and were mostly soft-rounded (``train``); it is
refit without taps.

Most latents of a predicted frame are zero with an all-zero context: those rows are folded into one
weighted row per value, so a step costs what the few informative latents cost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..coding import entropy
from ..coding.params import (QuantizedModule, QuantizedNetworks, arm_parameters, arm_taps, integer_arm,
                             module_bits, quantize_module)
from ..model.arm import EXACT_SUM_LIMIT, MAX_TEMPORAL, N_CONTEXT, Arm, float_arm_from_integers
from ..model.synthesis import laplace_bits

log = logging.getLogger(__name__)

#: quantisation steps 2^-frac tried for a refit ARM
REFIT_FRACS = tuple(range(4, 10))
#: Adam steps and rate of a refit from the held weights: on a park_joy crop (5 predicted frames,
#: quality 30) 100 steps at 1e-2 coded in 1136 B what 300 at 3e-3 coded in 1150 (held: 1265)
REFIT_STEPS, REFIT_LR = 100, 1e-2
#: the temporal taps a refit tries besides none
REFIT_TEMPORAL = MAX_TEMPORAL


@dataclass(frozen=True)
class ArmRefit:
    """What a refit gave: the networks to code with, and the code lengths (bits) it compared."""

    nets: QuantizedNetworks
    held_bits: float
    refit_bits: float

    @property
    def kept_refit(self) -> bool:
        return self.refit_bits < self.held_bits


def coded_bits(frames: list[list[np.ndarray]], arm: QuantizedModule) -> float:
    """Bits of every frame's latents under ``arm`` (the coder's integer tables and framing), plus
    the ARM's parameters. ``frames`` are the frames coded with this ARM in order; with temporal
    taps, a group's predicted frames, the first one after the intra frame (its taps read zeros)."""
    return _Prices.of(frames, arm_taps(arm)).bits(arm)


def _previous_frames(frames: list[list[np.ndarray]]) -> list[list[np.ndarray] | None]:
    return [None, *frames[:-1]]


@dataclass(frozen=True)
class _Prices:
    """Each frame's ARM inputs, gathered once, to price its latents under many ARMs."""

    contexts: list[tuple[np.ndarray, np.ndarray]]

    @classmethod
    def of(cls, frames: list[list[np.ndarray]], taps: int) -> _Prices:
        return cls([entropy.latent_contexts(latents, taps, previous)
                    for latents, previous in zip(frames, _previous_frames(frames))])

    def bits(self, arm: QuantizedModule) -> float:
        exact = integer_arm(arm)
        taps_byte = 8 if arm_taps(arm) else 0  # the group header's tap count (FORMAT.md 3.1)
        return sum(entropy.context_code_length(context, values, exact)
                   for context, values in self.contexts) + module_bits(arm) + taps_byte


@dataclass(frozen=True)
class _Rows:
    """The latents as the ARM sees them: each with a non-zero context on its own (``context`` (24 +
    taps, n), ``value`` (n,)), those with an all-zero context as one row per value and its count."""

    context: torch.Tensor
    value: torch.Tensor
    plain_values: torch.Tensor
    plain_counts: torch.Tensor

    @classmethod
    def of(cls, prices: _Prices, temporal: int) -> _Rows:
        """The rows of the latents ``prices`` gathered, the ARM reading ``temporal`` taps."""
        width = N_CONTEXT + temporal
        context = torch.from_numpy(np.concatenate([c[:, :width] for c, _ in prices.contexts]).T.astype(np.float32))
        value = torch.from_numpy(np.concatenate([v for _, v in prices.contexts]).astype(np.float32))
        informative = context.ne(0).any(dim=0)
        plain_values, plain_counts = torch.unique(value[~informative], return_counts=True)
        return cls(context[:, informative], value[informative], plain_values, plain_counts.float())

    def bits(self, arm: Arm) -> torch.Tensor:
        """The latents' estimated bits under the float ARM."""
        mu, log_scale = arm.predict(self.context)
        total = laplace_bits(self.value, mu, log_scale).sum()
        if self.plain_values.numel():
            mu0, log_scale0 = arm.predict(self.context.new_zeros(self.context.shape[0], 1))
            plain = laplace_bits(self.plain_values, mu0.expand_as(self.plain_values),
                                 log_scale0.expand_as(self.plain_values))
            total = total + (self.plain_counts * plain).sum()
        return total


def refit_arm(nets: QuantizedNetworks, frames: list[list[np.ndarray]], *, steps: int = REFIT_STEPS,
              lr: float = REFIT_LR, temporal: tuple[int, ...] = (0, REFIT_TEMPORAL)) -> ArmRefit:
    """Refit ``nets``' ARM (without temporal taps) to the integer latents of ``frames`` (as for
    ``coded_bits``), starting from the current weights, once for each count of ``temporal`` taps
    (their weights start at zero); returns the networks with whichever ARM, held or refit, codes
    the latents and itself in fewer bits."""
    held = nets.arm
    if nets.arm_temporal:
        raise ValueError("the held ARM already has temporal taps")
    prices = _Prices.of(frames, max(temporal, default=0))
    held_bits = prices.bits(held)
    best, best_bits = held, held_bits
    for taps in temporal:
        arm = _start(held, taps)
        rows = _Rows.of(prices, taps)
        optimiser = torch.optim.Adam(arm.parameters(), lr=lr)
        for _ in range(steps):
            bits = rows.bits(arm)
            optimiser.zero_grad(set_to_none=True)
            bits.backward()
            optimiser.step()
        for frac in REFIT_FRACS:
            candidate = quantize_module(arm_parameters(arm), frac)
            if integer_arm(candidate).largest_sum() >= EXACT_SUM_LIMIT:
                continue
            candidate_bits = prices.bits(candidate)
            if candidate_bits < best_bits:
                best, best_bits = candidate, candidate_bits
    log.debug("ARM refit: held %.0f bits, refit %.0f bits (%d temporal taps)", held_bits, best_bits,
              arm_taps(best))
    return ArmRefit(replace(nets, arm=best), held_bits, best_bits)


def _start(held: QuantizedModule, taps: int) -> Arm:
    """A float ARM with the held weights and ``taps`` temporal inputs weighted zero."""
    weights = list(held.exact())
    weights[0] = np.concatenate([weights[0], np.zeros((weights[0].shape[0], taps))], axis=1)
    return float_arm_from_integers(weights, held.frac)
