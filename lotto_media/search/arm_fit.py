"""Fitting an ARM to latents that are already chosen: the entropy model of a group's predicted
frames, once all of them are searched.

The predicted frames' networks are fitted on a group's first predicted frame and then held
(``inter``), so their ARM has seen one frame's latents; later frames' latents are residuals of
other content. Once every frame is searched, its latents are fixed integers and the ARM reaches
nothing but their code length: refitting it on all of them can only change the rate, and the
encoder keeps the refit ARM only when the latents plus its parameters cost fewer bits under the
coder's own integer tables.

Most latents of a predicted frame are zero with an all-zero context: those rows are folded into one
weighted row per value, so a step costs what the few informative latents cost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..coding import entropy
from ..coding.params import QuantizedModule, QuantizedNetworks, arm_parameters, module_bits, quantize_module
from ..model.arm import EXACT_SUM_LIMIT, Arm, IntegerArm, causal_context, float_arm_from_integers
from ..model.synthesis import laplace_bits

log = logging.getLogger(__name__)

#: quantisation steps 2^-frac tried for a refit ARM
REFIT_FRACS = tuple(range(4, 10))
#: Adam steps and rate of a refit from the held weights: on a park_joy crop (5 predicted frames,
#: quality 30) 100 steps at 1e-2 coded in 1136 B what 300 at 3e-3 coded in 1150 (held: 1265)
REFIT_STEPS, REFIT_LR = 100, 1e-2


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
    the ARM's parameters."""
    integer_arm = _integer(arm)
    return sum(entropy.estimate_latent_bits(latents, integer_arm) for latents in frames) + module_bits(arm)


def _integer(arm: QuantizedModule) -> IntegerArm:
    return IntegerArm(*arm.exact(), arm.frac)


@dataclass(frozen=True)
class _Rows:
    """The latents as the ARM sees them: each with a non-zero context on its own (``context`` (24,
    n), ``value`` (n,)), those with an all-zero context as one row per value and its count."""

    context: torch.Tensor
    value: torch.Tensor
    plain_values: torch.Tensor
    plain_counts: torch.Tensor

    @classmethod
    def of(cls, frames: list[list[np.ndarray]]) -> _Rows:
        contexts, values = [], []
        for latents in frames:
            for level in latents:
                grid = torch.from_numpy(np.asarray(level, dtype=np.float32))
                contexts.append(causal_context(grid))
                values.append(grid.reshape(-1))
        context, value = torch.cat(contexts, dim=1), torch.cat(values)
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
              lr: float = REFIT_LR) -> ArmRefit:
    """Refit ``nets``' ARM to the integer latents of ``frames`` (each a list of levels), starting
    from the current weights; returns the networks with whichever ARM, held or refit, codes the
    latents and itself in fewer bits."""
    held = nets.arm
    held_bits = coded_bits(frames, held)
    arm = float_arm_from_integers(list(held.exact()), held.frac)
    rows = _Rows.of(frames)
    optimiser = torch.optim.Adam(arm.parameters(), lr=lr)
    for _ in range(steps):
        bits = rows.bits(arm)
        optimiser.zero_grad(set_to_none=True)
        bits.backward()
        optimiser.step()

    best, best_bits = held, held_bits
    for frac in REFIT_FRACS:
        candidate = quantize_module(arm_parameters(arm), frac)
        if _integer(candidate).largest_sum() >= EXACT_SUM_LIMIT:
            continue
        candidate_bits = coded_bits(frames, candidate)
        if candidate_bits < best_bits:
            best, best_bits = candidate, candidate_bits
    log.debug("predicted-frame ARM: held %.0f bits, refit %.0f bits", held_bits, best_bits)
    return ArmRefit(replace(nets, arm=best), held_bits, best_bits)

