"""The network's shape: everything a decoder needs to rebuild the skeleton (sent in the stream's headers)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..errors import InputError
from .arm import MAX_TEMPORAL
from .latents import level_shapes


#: ARM hidden widths: the reference's (ModelConfig's default), and those the encoder uses above and
#: up to quality 30 (``arm_hidden_for``)
ARM_HIDDEN_WIDE, ARM_HIDDEN_NARROW, ARM_HIDDEN_NARROWEST = 24, 16, 8


@dataclass(frozen=True)
class ModelConfig:
    """Everything the decoder needs to rebuild the network skeleton; recorded in the sequence header.

    The synthesis always has three hidden layers (the rewind modulation feeds layers 2, 3 and the
    output layer); their widths are free.
    """

    seed: int = 0
    synth_widths: tuple[int, int, int] = (32, 24, 16)
    n_levels: int = 7
    mod_hidden: int = 48
    arm_hidden: int = ARM_HIDDEN_WIDE
    out_channels: int = 3
    mask_ratio: float = 0.2  # fraction of the random weights that are pruned
    #: the ARM's temporal taps (a predicted-frame network set's, from its group header; 0 otherwise)
    arm_temporal: int = 0
    #: latent grids at full resolution: 1, or 2 where a second one follows the pyramid as one more
    #: modulation input (sequence header flag bit 0, docs/FORMAT.md Part 1 §4): more room for detail at
    #: high rates, where one grid a level saturates
    fine_grids: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**64:
            raise InputError(f"seed must be in [0, 2^64), got {self.seed}")
        if len(self.synth_widths) != 3 or not all(1 <= w <= 1024 for w in self.synth_widths):
            raise InputError(f"synth_widths must be three widths in 1..1024, got {self.synth_widths}")
        if not 1 <= self.n_levels <= 12:
            raise InputError(f"n_levels must be in 1..12, got {self.n_levels}")
        if not 1 <= self.mod_hidden <= 1024 or not 1 <= self.arm_hidden <= 256:
            raise InputError("mod_hidden must be in 1..1024 and arm_hidden in 1..256")
        if self.out_channels not in (1, 3):
            raise InputError(f"out_channels must be 1 or 3, got {self.out_channels}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise InputError(f"mask ratio must be in [0, 1), got {self.mask_ratio}")
        if self.fine_grids not in (1, 2):
            raise InputError(f"fine_grids must be 1 or 2, got {self.fine_grids}")
        if not 0 <= self.arm_temporal <= MAX_TEMPORAL:
            raise InputError(f"arm_temporal must be in 0..{MAX_TEMPORAL}, got {self.arm_temporal}")

    @property
    def second_grid(self) -> bool:
        """Whether a second full-resolution grid follows the pyramid."""
        return self.fine_grids == 2

    @property
    def n_grids(self) -> int:
        """Latent grids, pyramid levels then any second full-resolution grid: the modulation
        network's inputs."""
        return self.n_levels + self.second_grid

    def grid_shapes(self, height: int, width: int) -> list[tuple[int, int]]:
        """(h, w) of every latent grid, in coding order: the pyramid's levels, full resolution
        first, then any second full-resolution grid."""
        shapes = level_shapes(height, width, self.n_levels)
        return shapes + shapes[:1] * self.second_grid

    @property
    def modulation_widths(self) -> tuple[int, int, int]:
        """Channels concatenated to the inputs of synthesis layers 2, 3 and the output layer."""
        return (6, 9, 9 + self.mod_hidden)

    def synth_layer_shapes(self) -> list[tuple[int, int]]:
        """(out, in) of each random layer, modulation channels included in ``in``."""
        w1, w2, w3 = self.synth_widths
        m1, m2, m3 = self.modulation_widths
        return [(w1, 2), (w2, w1 + m1), (w3, w2 + m2), (self.out_channels, w3 + m3)]

    def with_arm_hidden(self, arm_hidden: int) -> "ModelConfig":
        """The same network with the ARM width of a group (format version 2 sends it per group)."""
        return self if arm_hidden == self.arm_hidden else replace(self, arm_hidden=arm_hidden)

    def with_arm_temporal(self, arm_temporal: int) -> "ModelConfig":
        """The same network with the temporal taps of a group's predicted-frame ARM."""
        return self if arm_temporal == self.arm_temporal else replace(self, arm_temporal=arm_temporal)

    def n_random_weights(self) -> int:
        return sum(o * i for o, i in self.synth_layer_shapes())

    def n_kept(self) -> int:
        """Number of random weights the global top-k keeps."""
        n = self.n_random_weights()
        return max(1, n - int(math.floor(self.mask_ratio * n + 1e-9)))
