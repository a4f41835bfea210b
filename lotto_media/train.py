"""The search: fit latents, small networks and the supermask to one frame, then quantise.

Objective D + lambda * R with D the MSE on [0, 1] pixels (plane-weighted for YUV 4:2:0, see
lotto_media/chroma.py) and R the ARM's estimate of the latent
bits per pixel. Phase 1 uses soft rounding with annealed Kumaraswamy noise; phase 2 fine-tunes
with hard rounding (straight-through). The small networks are then quantised with a per-module
step 2^-frac picked by minimising the same objective with their coded size included.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .chroma import Distortion
from .config import ModelConfig, TrainConfig
from .latents import LATENT_MAX, LATENT_MIN, kumaraswamy_noise, quantise_ste, soft_round, to_integers
from .model import FrameModel
from .reports import Progress
from .params import MAX_FRAC, MODULES, QuantizedNetworks, load_module, module_bits, module_parameters, quantize_module

log = logging.getLogger(__name__)

#: candidate quantisation steps 2^-frac for the small networks
FRAC_CANDIDATES = tuple(range(3, MAX_FRAC + 1))


ProgressCallback = Callable[[Progress], None]


@dataclass
class SearchResult:
    latents: list[np.ndarray]
    nets: QuantizedNetworks
    mask: np.ndarray
    steps: int
    seconds: float
    estimated_bits: float


def _psnr(mse: float) -> float:
    return 10 * math.log10(1.0 / mse) if mse > 0 else 100.0


def search(
    target: torch.Tensor,
    config: ModelConfig,
    schedule: TrainConfig,
    lmbda: float,
    device: torch.device,
    progress: ProgressCallback | None = None,
    distortion: Distortion | None = None,
) -> SearchResult:
    """target: (C, H, W) float in [0, 1]. ``distortion(recon, target)`` is D (default: the MSE);
    YUV 4:2:0 passes lotto_media.chroma's plane-weighted one with a chroma.pack_target target."""
    distortion = distortion or _mse
    start = time.perf_counter()
    channels, height, width = target.shape
    pixels = height * width
    generator = torch.Generator().manual_seed(config.seed % (2**63))
    model = FrameModel(config, height, width, generator=generator).to(device)
    target = target.to(device)
    noise_gen = torch.Generator(device=device).manual_seed(config.seed % (2**63) + 1)

    net_params = [p for name in MODULES for p in module_parameters(model, name)]
    optimiser = torch.optim.Adam(
        [
            {"params": list(model.latents), "lr": schedule.latent_lr(lmbda)},
            {"params": net_params, "lr": schedule.lr},
            {"params": [model.scores], "lr": schedule.lr_scores},
        ]
    )
    base_lrs = [g["lr"] for g in optimiser.param_groups]
    total = schedule.total_steps
    report_every = max(1, total // 200)

    for step in range(total):
        soft = step < schedule.soft_steps
        if soft:
            t = step / max(schedule.soft_steps - 1, 1)
            temperature = schedule.temperature[0] + (schedule.temperature[1] - schedule.temperature[0]) * t
            noise_a = schedule.noise[0] + (schedule.noise[1] - schedule.noise[0]) * t
            decay = 0.5 * (1 + math.cos(math.pi * t)) * 0.98 + 0.02
            for group, lr in zip(optimiser.param_groups, base_lrs):
                group["lr"] = lr * decay
            levels = [
                soft_round(soft_round(z, temperature) + kumaraswamy_noise(z.shape, noise_a, noise_gen, device), temperature)
                for z in model.latents
            ]
        else:
            if step == schedule.soft_steps:
                for group in optimiser.param_groups:
                    group["lr"] = schedule.lr_hard
            levels = [quantise_ste(z) for z in model.latents]
        recon = model.synthesise(levels, model.mask())
        mse = distortion(recon, target)
        bits = model.rate_bits(levels)
        loss = mse + lmbda * bits / pixels
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            for z in model.latents:
                z.clamp_(LATENT_MIN, LATENT_MAX)
        if progress is not None and (step % report_every == 0 or step == total - 1):
            elapsed = time.perf_counter() - start
            progress(
                Progress(
                    step=step + 1,
                    total=total,
                    phase="soft" if soft else "hard",
                    loss=float(loss.detach()),
                    psnr=_psnr(float(mse.detach())),
                    bpp=float(bits.detach()) / pixels,
                    elapsed_s=elapsed,
                    eta_s=elapsed / (step + 1) * (total - step - 1),
                )
            )

    latents = to_integers(list(model.latents))
    with torch.no_grad():
        mask = model.mask(straight_through=False)
    nets, estimated_bits = quantise_networks(model, latents, mask, target, lmbda, distortion)
    if progress is not None:
        elapsed = time.perf_counter() - start
        progress(Progress(total, total, "quantise", 0.0, 0.0, estimated_bits / pixels, elapsed, 0.0))
    return SearchResult(
        latents=latents,
        nets=nets,
        mask=mask.cpu().numpy().astype(bool),
        steps=total,
        seconds=time.perf_counter() - start,
        estimated_bits=estimated_bits,
    )


def _mse(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((recon - target) ** 2)


@torch.no_grad()
def quantise_networks(
    model: FrameModel, latents: list[np.ndarray], mask: torch.Tensor, target: torch.Tensor, lmbda: float,
    distortion: Distortion | None = None,
) -> tuple[QuantizedNetworks, float]:
    """Coordinate descent over each module's step, minimising D + lambda * (latent + parameter bits)."""
    pixels = model.height * model.width
    distortion = distortion or _mse
    device = target.device
    levels = [torch.from_numpy(q).to(device=device, dtype=torch.float32) for q in latents]
    float_state = copy.deepcopy(model.state_dict())
    choice = {name: 10 for name in MODULES}
    cache: dict[tuple[int, ...], tuple[float, float]] = {}

    def evaluate(fracs: dict[str, int]) -> tuple[float, float]:
        key = tuple(fracs[n] for n in MODULES)
        if key not in cache:
            model.load_state_dict(float_state)
            param_bits = 0
            for name in MODULES:
                module = quantize_module(module_parameters(model, name), fracs[name])
                load_module(model, name, module)
                param_bits += module_bits(module)
            mse = float(distortion(model.synthesise(levels, mask).clamp(0, 1), target))
            bits = float(model.rate_bits(levels)) + param_bits
            cache[key] = (mse + lmbda * bits / pixels, bits)
        return cache[key]

    for name in ("modulation", "upsampler", "arm"):
        best = min(FRAC_CANDIDATES, key=lambda f: evaluate({**choice, name: f})[0])
        choice[name] = best
    model.load_state_dict(float_state)
    modules = {name: quantize_module(module_parameters(model, name), choice[name]) for name in MODULES}
    for name in MODULES:
        load_module(model, name, modules[name])
    log.debug("network quantisation steps: %s", choice)
    return QuantizedNetworks(**modules), evaluate(choice)[1]
