"""Autoregressive entropy model (ARM) of the latents.

One small MLP, shared by every latent level, predicts a Laplace mean and log-scale for each latent
from 24 causal neighbours in a 9x9 window (a predicted frame's ARM may also read temporal taps, the
previous frame's latents around the same position). Training runs it in float (torch), the context
gathered from shifted views of the padded grid. Coding runs the *integer* version (``IntegerArm``) so that encoder
and decoder compute identical probabilities on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .shifts import joined_windows, shifted_windows

#: (dy, dx) of the causal neighbours, in the order the ARM's first layer expects them.
CONTEXT_OFFSETS: tuple[tuple[int, int], ...] = (
    ((-4, 0),)
    + tuple((-3, dx) for dx in range(-2, 3))
    + tuple((-2, dx) for dx in range(-3, 4))
    + tuple((-1, dx) for dx in range(-3, 4))
    + tuple((0, dx) for dx in range(-4, 0))
)
N_CONTEXT = len(CONTEXT_OFFSETS)
#: (dy, dx) of a predicted frame's temporal taps, the co-located latents of the previous frame
#: (docs/FORMAT.md 3.3): a network set with T taps reads the first T of these
TEMPORAL_OFFSETS: tuple[tuple[int, int], ...] = (
    (0, 0), (0, -1), (0, 1), (-1, 0), (1, 0), (-1, -1), (-1, 1), (1, -1), (1, 1))
MAX_TEMPORAL = len(TEMPORAL_OFFSETS)
PAD = 4  # rows above / columns either side needed by the window
#: wavefront index of (row, col) is col + WAVEFRONT_SLOPE * row: every neighbour has a smaller index
WAVEFRONT_SLOPE = 4
#: fractional bits of the integer ARM's hidden activations and outputs
ARM_FRAC = 8
#: a decoder refuses an ARM whose sums could reach this (docs/FORMAT.md 3.7): below it, float64
#: evaluates every layer exactly, with room for the rounding halves folded into the biases
EXACT_SUM_LIMIT = 1 << 50

_PADDED_OFFSETS = tuple((PAD + dy, PAD + dx) for dy, dx in CONTEXT_OFFSETS)
#: the causal window as a convolution kernel: rows dy = -4..0, columns dx = -4..4, and the
#: flat kernel position of each context tap
_KERNEL_ROWS, _KERNEL_COLS = PAD + 1, 2 * PAD + 1
_KERNEL_TAPS = tuple(row * _KERNEL_COLS + col for row, col in _PADDED_OFFSETS)

assert N_CONTEXT == 24
assert all(dx + WAVEFRONT_SLOPE * dy < 0 for dy, dx in CONTEXT_OFFSETS)


class Arm(nn.Module):
    """Float ARM: h1 = relu(W1 ctx + b1); h2 = h1 + relu(W2 h1 + b2); (mu, log_scale) = W3 h2 + b3.

    ``temporal`` taps (a predicted frame's view of the previous frame's latents) follow the 24
    spatial neighbours in ctx."""

    def __init__(self, hidden: int, temporal: int = 0) -> None:
        super().__init__()
        self.hidden = hidden
        self.temporal = temporal
        self.fc1 = nn.Linear(N_CONTEXT + temporal, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 2)
        # where the first layer's weights sit in the 5x9 kernel of ``predict_levels``' convolution
        # (a buffer, so that it moves with the module instead of being copied to the device each step)
        self.register_buffer("kernel_taps", torch.tensor(_KERNEL_TAPS), persistent=False)
        with torch.no_grad():
            self.fc3.weight.mul_(0.1)
            self.fc3.bias.zero_()

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """latent: (h, w) -> mean and log-scale, each (h, w) (no temporal taps)."""
        if self.temporal:
            raise ValueError("an ARM with temporal taps predicts from contexts that include them (predict)")
        mu, log_scale = self.predict(causal_context(latent))
        return mu.view(latent.shape), log_scale.view(latent.shape)

    def predict(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """context: (24 + temporal, n) channels-first -> mean and log-scale, each (n,).

        Channels-first keeps every matmul a wide GEMM and lets the contexts of all levels be
        concatenated into one pass."""
        return self._rest(torch.addmm(self.fc1.bias.unsqueeze(1), self.fc1.weight, context))

    def predict_levels(self, levels: list[torch.Tensor], *, convolution: bool | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-scale of every latent of every level, levels in order, each row-major:
        ``predict`` of the levels' concatenated causal contexts.

        ``convolution`` (default: off a CPU) runs the first layer as one 5x9 convolution per level,
        the kernel zero outside the 24 causal taps: a few operations where the windows are 48 a
        level, which is what a GPU step pays for. On a 2-core CPU it measured no faster overall
        (one thread, 384x256, forward and backward: 37-43 ms against 31-40 for the windows)."""
        if self.temporal:
            raise ValueError("an ARM with temporal taps predicts from contexts that include them (predict)")
        if convolution is None:
            convolution = levels[0].device.type != "cpu"
        if not convolution:
            return self.predict(causal_contexts(levels))
        # cuDNN may run this convolution in TF32 (its default): that only touches the search's rate
        # estimate, never the coded stream, whose probabilities come from the integer ARM
        kernel = self.fc1.weight.new_zeros(self.hidden, _KERNEL_ROWS * _KERNEL_COLS).index_copy(
            1, self.kernel_taps, self.fc1.weight)
        kernel = kernel.view(self.hidden, 1, _KERNEL_ROWS, _KERNEL_COLS)
        first = [F.conv2d(F.pad(q, (PAD, PAD, PAD, 0))[None, None], kernel, self.fc1.bias).view(self.hidden, -1)
                 for q in levels]
        return self._rest(torch.cat(first, dim=1))

    def _rest(self, first: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The layers after the first one's affine map (hidden, n)."""
        h1 = F.relu(first)
        h2 = h1 + F.relu(torch.addmm(self.fc2.bias.unsqueeze(1), self.fc2.weight, h1))
        out = torch.addmm(self.fc3.bias.unsqueeze(1), self.fc3.weight, h2)
        return out[0], out[1]


def causal_context(latent: torch.Tensor) -> torch.Tensor:
    """(h, w) -> (24, h*w): each latent's causal neighbours in CONTEXT_OFFSETS order, zero beyond
    the edges."""
    hgt, wid = latent.shape
    padded = F.pad(latent, (PAD, PAD, PAD, 0))
    return shifted_windows(padded, _PADDED_OFFSETS, (hgt, wid)).view(N_CONTEXT, hgt * wid)


def causal_contexts(levels: list[torch.Tensor]) -> torch.Tensor:
    """Levels (h_i, w_i) -> (24, sum h_i * w_i): the levels' ``causal_context`` joined, built
    directly in the dtype the first layer runs in under autocast (bfloat16 products read bfloat16
    contexts: casting the latents there rounds each value as casting the contexts would)."""
    dtype = levels[0].dtype
    device_type = levels[0].device.type
    if torch.is_autocast_enabled(device_type) and dtype == torch.float32:
        dtype = torch.get_autocast_dtype(device_type)
    padded = [F.pad(q, (PAD, PAD, PAD, 0)) for q in levels]
    return joined_windows(padded, _PADDED_OFFSETS, [(q.shape[0], q.shape[1]) for q in levels], dtype)


def float_arm_from_integers(weights: list[np.ndarray], frac: int) -> Arm:
    """A float ARM holding the dequantised weights (w / 2^frac): what training saw after quantisation."""
    arm = Arm(weights[0].shape[0], weights[0].shape[1] - N_CONTEXT)
    params = [arm.fc1.weight, arm.fc1.bias, arm.fc2.weight, arm.fc2.bias, arm.fc3.weight, arm.fc3.bias]
    with torch.no_grad():
        for param, values in zip(params, weights):
            param.copy_(torch.from_numpy(values.astype(np.float64) / (1 << frac)))
    return arm


@dataclass(frozen=True)
class IntegerArm:
    """The ARM with integer weights (value = w / 2^frac) evaluated in exact integer arithmetic.

    Arrays are float64 holding integers: every product and partial sum stays far below 2^53, so
    BLAS gives the exact integer result whatever its summation order or thread count.
    """

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    w3: np.ndarray
    b3: np.ndarray
    frac: int

    def __post_init__(self) -> None:
        # Fold each layer's power-of-two rescaling (and the +1/2 of rounding where it commutes) into
        # its weights: the values stay dyadic with few bits, so products and sums remain exact and
        # the results are bit-identical to rescaling after each layer, with fewer array passes.
        up = 2.0 ** (ARM_FRAC - self.frac)
        down = 2.0 ** (-self.frac)
        object.__setattr__(self, "_w1", np.ascontiguousarray((self.w1 * up).T))
        object.__setattr__(self, "_b1_half", self.b1 * up + 0.5)
        object.__setattr__(self, "_w2", np.ascontiguousarray((self.w2 * down).T))
        object.__setattr__(self, "_b2_half", self.b2 * up + 0.5)
        object.__setattr__(self, "_w3", np.ascontiguousarray((self.w3 * down).T))
        object.__setattr__(self, "_b3", self.b3 * up + 0.5)

    def __call__(self, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """context: (n, 24 + taps) integer latents -> (mu, log_scale) with ARM_FRAC fractional bits:
        h1 = rshift(relu(W1 x + b1), frac - 8); h2 = h1 + rshift(relu(W2 h1 + b2 2^8), frac);
        out = rshift(W3 h2 + b3 2^8, frac)  (docs/FORMAT.md 3.3)."""
        weight, bias = self.output_layer()
        out = self.hidden(context) @ weight
        out += bias
        np.floor(out, out=out)
        return out[:, 0], out[:, 1]

    def hidden(self, context: np.ndarray) -> np.ndarray:
        """(n, 24 + taps) integer latents (any dtype; float64 avoids a conversion) -> h2 (n, hidden).

        The +1/2 of each rounding shift sits in the bias: floor(max(x, 0) + 1/2) equals
        max(x + 1/2, 0) floored, one array pass fewer."""
        h1 = np.asarray(context, dtype=np.float64) @ self._w1
        h1 += self._b1_half
        np.maximum(h1, 0.0, out=h1)
        np.floor(h1, out=h1)
        a2 = h1 @ self._w2
        a2 += self._b2_half
        np.maximum(a2, 0.0, out=a2)
        np.floor(a2, out=a2)
        a2 += h1
        return a2

    @property
    def temporal_taps(self) -> int:
        """Inputs of the first layer beyond the 24 spatial neighbours."""
        return self.w1.shape[1] - N_CONTEXT

    def largest_sum(self) -> int:
        """The largest magnitude any layer's sum can reach for latents in [-64, 64] (in the
        layer's own fixed point, bias included): exact Python integers, from the weights alone.
        Evaluation in float64 is exact while this stays below ``EXACT_SUM_LIMIT``."""
        def layer(weight: np.ndarray, bias: np.ndarray, inputs: list[int], bias_shift: int) -> list[int]:
            w = np.abs(weight).astype(np.int64).tolist()
            return [sum(a * x for a, x in zip(row, inputs)) + (abs(int(b)) << bias_shift)
                    for row, b in zip(w, bias.tolist())]

        def shifted(values: list[int], bits: int) -> list[int]:  # an upper bound of rshift
            return [(v >> bits) + 1 if bits >= 0 else v << -bits for v in values]

        s1 = layer(self.w1, self.b1, [64] * self.w1.shape[1], 0)
        h1 = shifted(s1, self.frac - ARM_FRAC)
        s2 = layer(self.w2, self.b2, h1, ARM_FRAC)
        h2 = [a + b for a, b in zip(h1, shifted(s2, self.frac))]
        s3 = layer(self.w3, self.b3, h2, ARM_FRAC)
        return max(s1 + s2 + s3)

    def folded_hidden_layers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(w1 (24 + taps, hidden), b1, w2 (hidden, hidden), b2) with the rescalings and rounding halves
        folded in: h1 = floor(max(x @ w1 + b1, 0)), h2 = h1 + floor(max(h1 @ w2 + b2, 0))."""
        return self._w1, self._b1_half, self._w2, self._b2_half

    def output_layer(self) -> tuple[np.ndarray, np.ndarray]:
        """(weight (hidden, 2), bias (2,)) with (mu, log_scale) = floor(h2 @ weight + bias)."""
        return self._w3, self._b3


#: latents per piece of the wavefront walk (``ContextLayout.pieces``): the index arrays that coding
#: builds stay at a few MB whatever the picture size, instead of some 100 bytes per latent
PIECE_LATENTS = 1 << 15


@dataclass(frozen=True)
class WavefrontPiece:
    """Consecutive wavefronts of all levels in coding order: each latent's flat buffer position
    and level; wavefront j of the piece is ``positions[bounds[j]:bounds[j + 1]]``."""

    positions: np.ndarray
    levels: np.ndarray
    bounds: list[int]

    @property
    def size(self) -> int:
        return int(self.positions.size)


@dataclass(frozen=True)
class ContextLayout:
    """Where every latent of every level lives in one flat, zero-padded buffer, and in which
    wavefront it can be decoded. Padding stays zero, which is the ARM's view beyond the edges.

    With ``temporal`` taps the buffer holds a second region of the same layout after the first,
    the previous frame's latents, and a zero tail: a tap one row below a level's last row reads
    the next level's top padding (or the tail, after the last level), one column beside its edge
    the side padding."""

    shapes: tuple[tuple[int, int], ...]
    bases: tuple[int, ...]
    size: int
    temporal: int = 0

    @classmethod
    def for_shapes(cls, shapes: list[tuple[int, int]], temporal: int = 0) -> ContextLayout:
        if not 0 <= temporal <= MAX_TEMPORAL:
            raise ValueError(f"{temporal} temporal taps (0..{MAX_TEMPORAL})")
        # a tap below a level's last row reads the next level's top padding: it must reach that far
        if temporal and any(w > PAD * (w_next + 2 * PAD) - PAD - 1 for (_, w), (_, w_next) in zip(shapes, shapes[1:])):
            raise ValueError("temporal taps need each level's padding to cover the row above it")
        bases, size = [], 0
        for h, w in shapes:
            bases.append(size)
            size += (h + PAD) * (w + 2 * PAD)
        return cls(tuple(tuple(s) for s in shapes), tuple(bases), size, temporal)

    @property
    def buffer_size(self) -> int:
        if not self.temporal or not self.shapes:
            return self.size
        return 2 * self.size + self.shapes[-1][1] + 2 * PAD + 1

    def neighbour_offsets(self, level: int) -> np.ndarray:
        """The buffer offsets of a latent's 24 neighbours, then of its temporal taps."""
        w = self.shapes[level][1] + 2 * PAD
        spatial = [dy * w + dx for dy, dx in CONTEXT_OFFSETS]
        temporal = [self.size + dy * w + dx for dy, dx in TEMPORAL_OFFSETS[: self.temporal]]
        return np.array(spatial + temporal, dtype=np.int64)

    def offset_table(self) -> np.ndarray:
        """(levels, 24 + temporal) buffer offsets of the context, row ``level``."""
        return np.stack([self.neighbour_offsets(i) for i in range(len(self.shapes))])

    def pieces(self, max_latents: int = PIECE_LATENTS) -> Iterator[WavefrontPiece]:
        """The wavefronts in coding order, grouped into pieces of about ``max_latents`` latents
        (at least one wavefront each): by wavefront ``c + 4r``, then level, then row, as
        docs/FORMAT.md 3.3 orders them. Each piece is computed from the shapes alone, so no array
        covers the whole picture; empty wavefronts (levels narrower than 4) are left out."""
        if not self.shapes:
            return
        n_fronts = max(w - 1 + WAVEFRONT_SLOPE * (h - 1) + 1 for h, w in self.shapes)
        # a wavefront meets a row at most once and a level on at most ceil(w / 4) rows
        widest = sum(min(h, -(-w // WAVEFRONT_SLOPE)) for h, w in self.shapes)
        step = max(1, max_latents // widest)
        for first in range(0, n_fronts, step):
            stop = min(n_fronts, first + step)
            keys, positions, levels = [], [], []
            for level, (h, w) in enumerate(self.shapes):
                row_lo = max(0, -(-(first - w + 1) // WAVEFRONT_SLOPE))
                row_hi = min(h - 1, (stop - 1) // WAVEFRONT_SLOPE)
                if row_lo > row_hi:
                    continue
                rows = np.arange(row_lo, row_hi + 1, dtype=np.int64)
                col_lo = np.maximum(0, first - WAVEFRONT_SLOPE * rows)
                counts = np.minimum(w, stop - WAVEFRONT_SLOPE * rows) - col_lo  # >= 1 for these rows
                r = np.repeat(rows, counts)
                c = np.repeat(col_lo - (np.cumsum(counts) - counts), counts) + np.arange(r.size, dtype=np.int64)
                keys.append(c + WAVEFRONT_SLOPE * r)
                positions.append(self.bases[level] + (r + PAD) * (w + 2 * PAD) + (c + PAD))
                levels.append(np.full(r.size, level, dtype=np.intp))
            if not keys:
                continue
            key = np.concatenate(keys)
            # each level's latents are listed row-major and the levels in order, so a stable sort
            # by wavefront leaves them by level, then by row, inside each wavefront
            order = np.argsort(key, kind="stable")
            key = key[order]
            bounds = [0, *(np.flatnonzero(np.diff(key)) + 1).tolist(), int(key.size)]
            yield WavefrontPiece(np.concatenate(positions)[order], np.concatenate(levels)[order], bounds)

    def level_view(self, buf: np.ndarray, level: int, region: int = 0) -> np.ndarray:
        """The (h, w) latents of a level as a view into the flat buffer (region 1: the previous
        frame's)."""
        h, w = self.shapes[level]
        base = self.bases[level] + region * self.size
        grid = buf[base : base + (h + PAD) * (w + 2 * PAD)].reshape(h + PAD, w + 2 * PAD)
        return grid[PAD:, PAD : PAD + w]

    def scatter(self, latents: list[np.ndarray], dtype: type = np.int64,
                previous: list[np.ndarray] | None = None) -> np.ndarray:
        """A buffer holding ``latents`` and, with temporal taps, ``previous`` (None: zeros)."""
        buf = np.zeros(self.buffer_size, dtype=dtype)
        for level, latent in enumerate(latents):
            self.level_view(buf, level)[...] = latent
        if previous is not None and self.temporal:
            if [tuple(q.shape) for q in previous] != list(self.shapes):
                raise ValueError("the previous frame's latents have other shapes")
            for level, latent in enumerate(previous):
                self.level_view(buf, level, region=1)[...] = latent
        return buf

    def gather(self, buf: np.ndarray) -> list[np.ndarray]:
        """Each level's latents as int64 arrays (copies)."""
        return [self.level_view(buf, i).astype(np.int64) for i in range(len(self.shapes))]
