"""One frame's network: latents -> upsampling -> modulation -> masked random synthesis.

This is the float (training) form. ``integer_synthesis`` evaluates the same function exactly in
integers for the reconstruction that encoder and decoder share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .arm import N_CONTEXT, Arm
from .config import ModelConfig
from .latents import bicubic_kernel, replicate_pad, upsample_pyramid
from .random_weights import WEIGHT_FRAC, random_synthesis_weights
from .supermask import straight_through_mask, topk_mask

#: fractional bits of the synthesis' fixed-point activations and input coordinates
SYNTH_FRAC = 12
#: Laplace log-scale range covered by the coder's tables (natural log)
LOG_SCALE_MIN, LOG_SCALE_MAX = -4.5, 4.5


#: The activation x * clamp(x + 2, 0, 4) / 4 equals hardswish(1.5 x) / 1.5, and PyTorch has fused
#: forward and backward kernels for hardswish. Training therefore carries every activation output
#: multiplied by ACT_SCALE: a layer fed only by such outputs gets its pre-activation already
#: scaled (1.5 W a = W a_scaled), so only biases, the coordinates, the first modulation layer and
#: the output layer see the factor -- on small tensors, never an extra pass over the picture.
ACT_SCALE = 1.5


def activation(x: torch.Tensor) -> torch.Tensor:
    """x * clamp(x + 2, 0, 4) / 4, a GELU-like curve that is exact in fixed point (unscaled form,
    for reference and tests; the training graph uses ``F.hardswish`` on scaled values)."""
    return F.hardswish(ACT_SCALE * x) / ACT_SCALE


def coordinate_axis(n: int) -> np.ndarray:
    """The n pixel-centre coordinates of one axis in [-1, 1], integers with SYNTH_FRAC bits."""
    num = (2 * np.arange(n, dtype=np.int64) + 1 - n) << SYNTH_FRAC
    return (2 * num + n) // (2 * n)  # round(num / n), exact integer division


def pixel_coordinates(height: int, width: int) -> np.ndarray:
    """(H*W, 2) integer (x, y) pixel-centre coordinates in [-1, 1] with SYNTH_FRAC bits."""
    ys, xs = coordinate_axis(height), coordinate_axis(width)
    return np.stack([np.tile(xs, height), np.repeat(ys, width)], axis=1)


class Modulation(nn.Module):
    """Per-pixel network turning the upsampled latents into the rewind modulations o0..o3."""

    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.fc0 = nn.Linear(in_channels, hidden)
        self.fc1 = nn.Linear(hidden, 3)
        self.res2 = nn.Conv2d(3, 3, 3, padding=1)
        self.res3 = nn.Conv2d(3, 3, 3, padding=1)
        with torch.no_grad():
            for conv in (self.res2, self.res3):
                conv.weight.mul_(0.1)
                conv.bias.zero_()

    def forward(self, features: torch.Tensor, height: int, width: int) -> list[torch.Tensor]:
        """features (in, P) channels-first -> [o3, o2, o1 (3, P), o0 (hidden, P)], in the order the
        synthesis reads them (the rewind), each multiplied by ACT_SCALE (see ``ACT_SCALE``)."""
        s = ACT_SCALE
        o0 = F.hardswish(torch.addmm(s * self.fc0.bias.unsqueeze(1), s * self.fc0.weight, features))
        o1 = F.hardswish(torch.addmm(s * self.fc1.bias.unsqueeze(1), self.fc1.weight, o0))
        img1 = o1.view(1, 3, height, width)
        img2 = img1 + F.hardswish(_conv3x3(img1, self.res2.weight, s * self.res2.bias))
        img3 = img2 + F.hardswish(_conv3x3(img2, self.res3.weight, s * self.res3.bias))
        return [img3.view(3, -1), img2.view(3, -1), o1, o0]

    def zero_input_response(self) -> list[torch.Tensor]:
        """``forward`` of all-zero features, as (channels, 1) columns: every pixel gets the same
        modulations (the 3x3 convolutions of a constant, replicate-padded picture are constant),
        so a predicted frame's response to zero latents costs no pass over the picture here."""
        s = ACT_SCALE
        o0 = F.hardswish(s * self.fc0.bias.unsqueeze(1))
        o1 = F.hardswish(torch.addmm(s * self.fc1.bias.unsqueeze(1), self.fc1.weight, o0))
        img2 = o1 + F.hardswish(torch.addmm(s * self.res2.bias.unsqueeze(1), self.res2.weight.sum(dim=(2, 3)), o1))
        img3 = img2 + F.hardswish(torch.addmm(s * self.res3.bias.unsqueeze(1), self.res3.weight.sum(dim=(2, 3)), img2))
        return [img3, img2, o1, o0]


def _conv3x3(image: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A 3x3 convolution of a replicate-padded (1, C, H, W) picture, returned channels-first.
    On a CPU computed channels-last: with 3 channels oneDNN's backward pass is about 4x faster
    that way (384x256, 2 threads: 1.5 ms forward and backward against 6.5); unmeasured elsewhere."""
    padded = replicate_pad(image, 1)
    if image.device.type == "cpu":
        padded = padded.contiguous(memory_format=torch.channels_last)
    return F.conv2d(padded, weight, bias).contiguous()


def _rewound_layer(hidden: torch.Tensor, rewind: list[torch.Tensor], weight: torch.Tensor) -> torch.Tensor:
    """weight @ [hidden; o3; o2; ...]: the modulations this layer reads follow its hidden input
    (layers 2, 3 and 4 read [o3, o2], [o3, o2, o1] and all four: the deepest modulations feed the
    earliest layers). One concatenation and one matmul: slicing a shared stack instead would make
    autograd zero-fill a full-size gradient per slice."""
    n_hidden = hidden.shape[0]
    taken = _modulations_read(rewind, weight.shape[1] - n_hidden)
    if taken[0].shape[1] != hidden.shape[1]:  # modulations constant over the pixels: (c, 1) columns
        return torch.addmm(weight[:, n_hidden:] @ torch.cat(taken, dim=0), weight[:, :n_hidden], hidden)
    return weight @ torch.cat([hidden, *taken], dim=0)


def _modulations_read(rewind: list[torch.Tensor], n_mod: int) -> list[torch.Tensor]:
    """The first modulations of the rewind, o3 onward, that fill a layer's ``n_mod`` extra inputs."""
    taken, k = [], 0
    while k < n_mod:
        taken.append(rewind[len(taken)])
        k += taken[-1].shape[0]
    return taken


@dataclass(frozen=True)
class HeldSynthesis:
    """What a predicted frame's synthesis keeps while the networks and the mask are held: the
    masked layers, layer 2's product with the first layer's activations (the latents reach
    neither: 832 of the 1,723 multiply-adds per pixel of the reference network), and the output
    for zero latents."""

    layers: list[torch.Tensor]
    second_from_first: torch.Tensor
    zero_response: torch.Tensor


class FrameModel(nn.Module):
    def __init__(self, config: ModelConfig, height: int, width: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        self.height, self.width = height, width
        self.shapes = config.grid_shapes(height, width)
        self.latents = nn.ParameterList([nn.Parameter(torch.zeros(s)) for s in self.shapes])
        self.up_kernel = nn.Parameter(bicubic_kernel())
        # torch.nn layers draw their initial weights from the global generator: seed it locally
        # (fork_rng restores it afterwards) so that encoding is repeatable.
        init_seed = int(torch.randint(0, 2**62, (1,), generator=generator)) if generator is not None else 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            self.modulation = Modulation(config.n_grids, config.mod_hidden)
            self.arm = Arm(config.arm_hidden)
        int_weights = random_synthesis_weights(config)
        self.layer_shapes = [w.shape for w in int_weights]
        flat = np.concatenate([w.ravel() for w in int_weights]).astype(np.float64) / (1 << WEIGHT_FRAC)
        self.register_buffer("random_weights", torch.tensor(flat, dtype=torch.float32))
        scores = torch.rand(flat.size, generator=generator)
        self.scores = nn.Parameter(scores)
        coords = pixel_coordinates(height, width).T.astype(np.float64) * (ACT_SCALE / (1 << SYNTH_FRAC))
        self.register_buffer("coords", torch.from_numpy(coords.astype(np.float32)))  # (2, P), scaled
        #: the synthesis' input units of one latent unit (the search's ``latent_step_for``); 1 in
        #: every model a file describes (``fold_latent_step``)
        self.latent_step = 1.0

    # --- pieces -------------------------------------------------------------------------------
    def mask(self, straight_through: bool = True) -> torch.Tensor:
        n_kept = self.config.n_kept()
        if straight_through:
            return straight_through_mask(self.scores, n_kept)
        return topk_mask(self.scores.detach(), n_kept)

    def masked_layers(self, mask: torch.Tensor) -> list[torch.Tensor]:
        weights = self.random_weights * mask
        layers, start = [], 0
        for out_c, in_c in self.layer_shapes:
            layers.append(weights[start : start + out_c * in_c].view(out_c, in_c))
            start += out_c * in_c
        return layers

    def synthesise(self, levels: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Quantised (or proxy) latents -> (C, H, W) picture in [0, 1] before clamping."""
        layers = self.masked_layers(mask)
        return self._synthesis_tail(self._first_layer(layers), self._modulations(levels), layers)

    def synthesise_predicted(self, levels: list[torch.Tensor], mask: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        """A predicted frame: ``prediction`` ((C, H, W) on [0, 1], the motion-compensated reference)
        plus the synthesis output less its output for all-zero latents, so that zero latents copy
        the prediction. The second output shares the first layer (which the latents do not reach)
        and takes the modulations' constant response to zero."""
        layers = self.masked_layers(mask)
        first = self._first_layer(layers)
        return self._synthesis_tail(first, self._modulations(levels), layers) - self._zero_output(first, layers) + prediction

    def zero_response(self, mask: torch.Tensor) -> torch.Tensor:
        """The synthesis output for all-zero latents."""
        layers = self.masked_layers(mask)
        return self._zero_output(self._first_layer(layers), layers)

    @torch.no_grad()
    def hold(self, mask: torch.Tensor) -> HeldSynthesis:
        """The constants of ``synthesise_held`` for these networks and this mask."""
        layers = self.masked_layers(mask)
        first = self._first_layer(layers)
        return HeldSynthesis(layers, layers[1][:, : first.shape[0]] @ first, self._zero_output(first, layers))

    def synthesise_held(self, levels: list[torch.Tensor], held: HeldSynthesis, prediction: torch.Tensor) -> torch.Tensor:
        """``synthesise_predicted`` with the networks and the mask held, as ``hold`` made them:
        the same function of the latents, without recomputing what they do not reach."""
        rewind = self._modulations(levels)
        w2 = held.layers[1]
        n_first = held.layers[0].shape[0]
        taken = _modulations_read(rewind, w2.shape[1] - n_first)
        second = F.hardswish(torch.addmm(held.second_from_first, w2[:, n_first:], torch.cat(taken, dim=0)))
        return self._after_second_layer(second, rewind, held.layers) - held.zero_response + prediction

    def _zero_output(self, first: torch.Tensor, layers: list[torch.Tensor]) -> torch.Tensor:
        """The output for all-zero latents, from the first layer's activations."""
        return self._synthesis_tail(first, self.modulation.zero_input_response(), layers)

    @torch.no_grad()
    def fold_latent_step(self) -> None:
        """Move ``latent_step`` into the modulation network's first layer: the scale commutes with
        the linear upsampling and the concatenation of the levels, so it goes into fc0's weight
        (not its bias) and the model computes the same function with a step of 1."""
        self.modulation.fc0.weight.mul_(self.latent_step)
        self.latent_step = 1.0

    def _modulations(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        n = self.config.n_levels
        if self.latent_step != 1.0:
            levels = [z * self.latent_step for z in levels]
        u = upsample_pyramid(levels[:n], self.up_kernel)
        if len(levels) > n:  # a second full-resolution grid: one more input, not upsampled
            u = torch.cat([u, torch.stack(list(levels[n:]))], dim=0)
        return self.modulation(u.reshape(u.shape[0], -1), self.height, self.width)

    def _first_layer(self, layers: list[torch.Tensor]) -> torch.Tensor:
        return F.hardswish(layers[0] @ self.coords)

    def _synthesis_tail(self, first: torch.Tensor, rewind: list[torch.Tensor], layers: list[torch.Tensor]) -> torch.Tensor:
        """Layers 2..4 after the first layer's activations, reading the modulations (the rewind)."""
        return self._after_second_layer(F.hardswish(_rewound_layer(first, rewind, layers[1])), rewind, layers)

    def _after_second_layer(self, second: torch.Tensor, rewind: list[torch.Tensor],
                            layers: list[torch.Tensor]) -> torch.Tensor:
        _, _, w3, w4 = layers
        h = F.hardswish(_rewound_layer(second, rewind, w3))
        # out = w4 [h; rewind] on unscaled values; the picture is 0.5 * out + 0.5
        out = _rewound_layer(h, rewind, w4 * (0.5 / ACT_SCALE))
        return (out + 0.5).view(-1, self.height, self.width)

    def rate_bits(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Estimated bits of the (proxy-)quantised latents under the ARM's Laplace model, all
        levels in one pass."""
        values = torch.cat([q.reshape(-1) for q in levels])
        mu, log_scale = self.arm.predict_levels(levels)
        return laplace_bits(values, mu, log_scale).sum()


def laplace_bits(q: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """-log2 P(q) for a Laplace(mu, exp(log_scale)) integrated over [q - 1/2, q + 1/2]."""
    scale = torch.exp(log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX))
    upper = (q + 0.5 - mu) / scale
    lower = (q - 0.5 - mu) / scale

    def cdf(x: torch.Tensor) -> torch.Tensor:
        return 0.5 - 0.5 * torch.sign(x) * torch.expm1(-torch.abs(x))

    prob = (cdf(upper) - cdf(lower)).clamp_min(2.0**-24)
    return -torch.log2(prob)


def count_kmac_per_pixel(config: ModelConfig, height: int, width: int) -> float:
    """Multiply-accumulates per decoded pixel: kept random weights, modulation, upsampling, ARM."""
    pixels = height * width
    shapes = config.grid_shapes(height, width)
    synth = config.n_kept()
    mod = config.n_grids * config.mod_hidden + config.mod_hidden * 3 + 2 * 3 * 3 * 9
    # transposed 8x8 stride-2 conv: 16 taps per output sample and channel
    up = sum(16 * (config.n_levels - 1 - k) * shapes[k][0] * shapes[k][1] for k in range(config.n_levels - 1))
    arm = ((N_CONTEXT + config.arm_temporal) * config.arm_hidden + config.arm_hidden**2 + 2 * config.arm_hidden) * sum(h * w for h, w in shapes)
    return (pixels * (synth + mod) + up + arm) / pixels / 1000.0
