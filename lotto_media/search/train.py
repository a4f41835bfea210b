"""The search: fit latents, small networks and the supermask to one frame, then quantise.

Objective D + lambda * R with D the MSE on [0, 1] pixels (plane-weighted for YUV 4:2:0, see
lotto_media/model/chroma.py) and R the ARM's estimate of the latent
bits per pixel. Phase 1 uses soft rounding with annealed Kumaraswamy noise (its first part's
synthesis and ARM in bfloat16 on CPUs where that pays, ``bfloat16_steps``); phase 2 fine-tunes
with hard rounding (straight-through) and ends on its lowest loss (``LowestLoss``). The small
networks are then quantised with a per-module step 2^-frac picked by minimising the same
objective with their coded size included.
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

from ..model.chroma import Distortion
from ..model.config import ModelConfig
from .presets import TrainConfig, quality_to_lmbda
from ..model.latents import LATENT_MAX, LATENT_MIN, noisy_soft_round, quantise_ste, to_integers
from ..model.synthesis import FrameModel
from ..model.supermask import straight_through_mask, topk_mask
from ..reports import Progress
from .arm_fit import refit_arm
from .vector_math import resolve_vector_math
from ..coding.params import MAX_FRAC, MODULES, QuantizedNetworks, load_module, module_bits, module_parameters, quantize_module

log = logging.getLogger(__name__)

#: candidate quantisation steps 2^-frac for the small networks
FRAC_CANDIDATES = tuple(range(3, MAX_FRAC + 1))


ProgressCallback = Callable[[Progress], None]


@dataclass
class FrameSolution:
    """One frame's share of a group's search: its integer latents and its mask."""

    latents: list[np.ndarray]
    mask: np.ndarray
    steps: int
    seconds: float
    #: the mask scores the mask is the top-k of (a later search can start from them)
    scores: torch.Tensor | None = None


@dataclass
class GroupSearchResult:
    """The networks shared by a group of frames and each frame's latents and mask."""

    nets: QuantizedNetworks
    frames: list[FrameSolution]
    seconds: float
    estimated_bits: float


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


class _Annealing:
    """The soft-rounding phase's schedule: temperature, noise shape and learning-rate decay as a
    function of the progress ``t`` in [0, 1]."""

    def __init__(self, schedule: TrainConfig) -> None:
        self.schedule = schedule

    def at(self, t: float) -> tuple[float, float, float]:
        s = self.schedule
        temperature = s.temperature[0] + (s.temperature[1] - s.temperature[0]) * t
        noise_a = s.noise[0] + (s.noise[1] - s.noise[0]) * t
        decay = 0.5 * (1 + math.cos(math.pi * t)) * 0.98 + 0.02
        return temperature, noise_a, decay


def bfloat16_steps(device: torch.device) -> bool:
    """Whether the search runs its bfloat16 share (``TrainConfig.bf16_soft_share``) on ``device``: a
    CPU with AVX512-BF16 and without AMX (AMD's Zen 4 and 5), where a bfloat16 product of the
    synthesis' shapes runs about 4x faster than a float32 one and an encode 10-16 % quicker.

    Not where the CPU has AMX (Intel's Xeons since Sapphire Rapids): there oneDNN 3.12 (torch 2.13)
    picks AMX for bfloat16 products, and its blocking heuristic divides by zero for some of the
    synthesis' weight gradients (16 x 98,304 by 98,304 x 33 at 384x256, 24 x 65,536 by 65,536 x 49
    at 256x256), killing the process with SIGFPE; where it does not, the steps measured no faster
    than float32 (71 against 72-73 ms at 384x255, two cores). Elsewhere bfloat16 is emulated or
    unmeasured (CUDA), and the search stays in float32. (A torch build without the AMX probe but
    with the AVX512-BF16 one would run bfloat16 steps on an AMX CPU; torch 2.13 has both.)"""
    if device.type != "cpu":
        return False
    if bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()):
        return False
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


class _SoftPrecision:
    """The synthesis' and the ARM's precision along a soft-rounding phase: bfloat16 autocast up to the progress
    ``schedule.bf16_soft_share`` where the device runs it (``bfloat16_steps``), float32
    after, so that the phase's end and the hard-rounding phase refine in full precision."""

    def __init__(self, schedule: TrainConfig, device: torch.device) -> None:
        self.bf16_until = schedule.bf16_soft_share if bfloat16_steps(device) else 0.0
        self.device_type = device.type

    def at(self, t: float) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=t < self.bf16_until)


def search(
    target: torch.Tensor,
    config: ModelConfig,
    schedule: TrainConfig,
    lmbda: float,
    device: torch.device,
    progress: ProgressCallback | None = None,
    distortion: Distortion | None = None,
) -> SearchResult:
    """One picture: ``search_group`` over a group of one frame."""
    group = search_group([target], config, schedule, lmbda, device, progress, distortion)
    (frame,) = group.frames
    return SearchResult(frame.latents, group.nets, frame.mask, frame.steps, group.seconds, group.estimated_bits)


def search_group(
    targets: list[torch.Tensor],
    config: ModelConfig,
    schedule: TrainConfig,
    lmbda: float,
    device: torch.device,
    progress: ProgressCallback | None = None,
    distortion: Distortion | None = None,
) -> GroupSearchResult:
    """Fit one set of small networks and, per frame, latents and a supermask to a group of frames.

    targets: (C, H, W) floats in [0, 1], all of one size. ``distortion(recon, target)`` is D
    (default: the MSE); YUV 4:2:0 passes lotto_media.model.chroma's plane-weighted one.

    The first frame gets the whole soft-rounding schedule with every parameter free. Each later
    frame starts from the previous frame's mask scores (and, at low rates, its latents: see
    WARM_LATENTS_FROM_LMBDA) and runs
    the annealing schedule again in the shorter ``schedule.warm_soft_steps``, the networks held (``warm_net_lr_scale``:
    moving them would spoil the frames already searched). The hard-rounding phase then runs jointly: each
    step sums D + lambda R over all frames of the group, so the networks that the group header
    sends are fitted to every frame, and the phase ends on the parameters of its lowest sum. The
    networks are quantised last, on the whole group, and the ARM is then refit on the group's
    integer latents (``arm_fit``).
    """
    distortion = distortion or _mse
    start = time.perf_counter()
    if device.type == "cpu":
        resolve_vector_math()  # else the first step's math may differ from process to process
    _, height, width = targets[0].shape
    pixels = height * width
    generator = torch.Generator().manual_seed(config.seed % (2**63))
    model = FrameModel(config, height, width, generator=generator).to(device)
    model.latent_step = schedule.latent_step_for(lmbda)
    targets = [t.to(device) for t in targets]
    noise_gen = torch.Generator(device=device).manual_seed(config.seed % (2**63) + 1)
    net_params = [p for name in MODULES for p in module_parameters(model, name)]
    n_frames = len(targets)
    total = schedule.soft_steps + (n_frames - 1) * schedule.warm_soft_steps + n_frames * schedule.hard_steps
    report_every = max(1, total // 200)
    done = 0
    annealing = _Annealing(schedule)
    precision = _SoftPrecision(schedule, device)

    def report(frame: int, phase: str, loss: torch.Tensor, mse: torch.Tensor, bits: torch.Tensor) -> None:
        # the values are read only when reported: on a GPU each read waits for the device
        if progress is None or not (done % report_every == 0 or done == total):
            return
        elapsed = time.perf_counter() - start
        progress(Progress(step=done, total=total, phase=phase, loss=float(loss.detach()),
                          psnr=_psnr(float(mse.detach())), bpp=float(bits.detach()) / pixels,
                          elapsed_s=elapsed, eta_s=elapsed / max(done, 1) * (total - done),
                          frame=frame, frames=n_frames))

    # One optimiser for the whole group, so that the networks' moments carry from frame to frame;
    # a frame's parameters join it when its search starts (params without a gradient are left
    # alone, so earlier frames rest while a later one is searched).
    optimiser = GroupOptimiser(net_params, schedule)
    frame_latents: list[list[torch.nn.Parameter]] = []
    frame_scores: list[torch.nn.Parameter] = []
    frame_seconds: list[float] = []
    for k in range(n_frames):
        frame_start = time.perf_counter()
        if k == 0:
            latents, scores = list(model.latents), model.scores
            steps, t_from, lr_scale = schedule.soft_steps, 0.0, 1.0
        else:
            # Copied latents sit next to integers, where soft rounding's gradient is small; at high
            # rates they must move most, and starting from zero measured better (see
            # WARM_LATENTS_FROM_LMBDA), at low rates copying them did.
            if lmbda >= WARM_LATENTS_FROM_LMBDA * (1 - 1e-12):
                latents = [torch.nn.Parameter(z.detach().clone()) for z in frame_latents[-1]]
            else:
                latents = [torch.nn.Parameter(torch.zeros_like(z)) for z in frame_latents[-1]]
            scores = torch.nn.Parameter(frame_scores[-1].detach().clone())
            steps, t_from, lr_scale = schedule.warm_soft_steps, WARM_ANNEALING_START, schedule.warm_lr_scale
        frame_latents.append(latents)
        frame_scores.append(scores)
        # the preset's rates are in the synthesis' input units, where one latent unit is the step
        latent_lrs = [lr / model.latent_step
                      for lr in schedule.latent_lrs(lmbda, config.n_levels, second_grid=config.second_grid)]
        for level, lr in zip(latents, latent_lrs):  # one group a level: each its own rate
            optimiser.add_param_group({"params": [level], "lr": lr})
        optimiser.add_param_group({"params": [scores], "lr": schedule.lr_scores})
        active = [optimiser.param_groups[0], *optimiser.param_groups[-(len(latents) + 1):]]
        net_scale = 1.0 if k == 0 else schedule.warm_net_lr_scale
        base_lrs = [schedule.lr * net_scale, *(lr * lr_scale for lr in latent_lrs), schedule.lr_scores * lr_scale]
        target = targets[k]
        for step in range(steps):
            t = t_from + (1 - t_from) * step / max(steps - 1, 1)
            temperature, noise_a, decay = annealing.at(t)
            for group, lr in zip(active, base_lrs):
                group["lr"] = lr * decay
            levels = noisy_soft_round(latents, temperature, noise_a, noise_gen)
            with precision.at(t):
                recon = model.synthesise(levels, straight_through_mask(scores, config.n_kept()))
                bits = model.rate_bits(levels)  # the ARM and its Laplace scales in bfloat16 too; the bits summed in float32
            mse = distortion(recon.float(), target)
            loss = mse + lmbda * bits / pixels
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            _clamp_latents(latents)
            done += 1
            report(k, "soft", loss, mse, bits)
        frame_seconds.append(time.perf_counter() - frame_start)

    # Joint hard-rounding phase: gradients of every frame's loss accumulate before one step.
    joint_start = time.perf_counter()
    # in the latents' own units, unlike the soft phase's: this phase settles them on the rounding
    # grid, whose spacing is one unit whatever the step
    for group in optimiser.param_groups:
        group["lr"] = schedule.lr_hard

    def hard_pass(backward: bool) -> float:
        """The group's loss with rounded latents; with ``backward`` its gradients too."""
        nonlocal done
        group_loss = torch.zeros((), device=device)
        for k, (latents, scores) in enumerate(zip(frame_latents, frame_scores)):
            levels = [quantise_ste(z) for z in latents]
            recon = model.synthesise(levels, straight_through_mask(scores, config.n_kept()))
            mse = distortion(recon, targets[k])
            bits = model.rate_bits(levels)
            loss = mse + lmbda * bits / pixels
            group_loss = group_loss + loss.detach()
            if backward:
                loss.backward()
                done += 1
                report(k, "hard", loss, mse, bits)
        return float(group_loss)  # read once the backward passes are queued

    lowest = LowestLoss([*net_params, *(z for latents in frame_latents for z in latents), *frame_scores])
    for _ in range(schedule.hard_steps):
        optimiser.zero_grad(set_to_none=True)
        lowest.offer(hard_pass(backward=True))
        optimiser.step()
        for latents in frame_latents:
            _clamp_latents(latents)
    lowest.finish(lambda: hard_pass(backward=False))
    model.fold_latent_step()

    integer_latents = [to_integers(list(latents)) for latents in frame_latents]
    with torch.no_grad():
        masks = [topk_mask(scores.detach(), config.n_kept()) for scores in frame_scores]
    nets, estimated_bits = quantise_networks(model, integer_latents, masks, targets, lmbda, distortion)
    # the ARM was fitted beside moving latents, mostly soft-rounded ones; refit on the final
    # integers it can only lower the rate (the pictures are made, it reaches nothing else)
    refit = refit_arm(nets, integer_latents, temporal=(0,))
    nets = refit.nets
    # the search's estimate (float ARM) less what the refit saved in the coder's integer bits
    estimated_bits -= refit.held_bits - refit.refit_bits
    # the hard phase, the quantisation and the refit serve every frame alike
    joint_share = (time.perf_counter() - joint_start) / n_frames
    if progress is not None:
        elapsed = time.perf_counter() - start
        progress(Progress(total, total, "quantise", 0.0, 0.0, estimated_bits / pixels / n_frames, elapsed, 0.0,
                          frame=n_frames - 1, frames=n_frames))
    frames = [
        FrameSolution(
            latents=integer_latents[k],
            mask=masks[k].cpu().numpy().astype(bool),
            steps=(schedule.soft_steps if k == 0 else schedule.warm_soft_steps) + schedule.hard_steps,
            seconds=frame_seconds[k] + joint_share,
            scores=frame_scores[k].detach().clone(),
        )
        for k in range(n_frames)
    ]
    return GroupSearchResult(nets=nets, frames=frames, seconds=time.perf_counter() - start,
                             estimated_bits=estimated_bits)


#: Later frames copy the previous frame's latents from this lambda up (quality 45 and below) and
#: start them from zero below it. Measured at preset fast, groups of a whole clip (bytes,
#: PSNR-YUV): quality 30, copied / zero: park_joy 160x90 11,387 B 31.06 dB / 12,146 B 30.52 dB,
#: CiscoVT2people 320x192 32,167 B 29.95 dB / 39,034 B 28.78 dB; quality 60: park_joy 32,327 B
#: 33.74 dB / 25,817 B 34.15 dB, CiscoVT2people 88,824 B 31.32 dB / 76,579 B 31.38 dB.
WARM_LATENTS_FROM_LMBDA = quality_to_lmbda(45)

#: a warm-started frame's soft phase enters the annealing schedule at this point (0 = start, 1 = end);
#: a full restart measured best (see TrainConfig.warm_lr_scale)
WARM_ANNEALING_START = 0.0


#: steps between updates of SOAP's eigenbases (its default). Every 5 steps was not adopted: at medium, J
#: against 10 over eight Kodak points -1.4 % on average but 5/8 better (-7.0 to +2.1 %), within the
#: search's spread without its one large gain, for about 3 % more seconds
SOAP_PRECONDITION_EVERY = 10
#: SOAP's moment decays (those of its paper). Against SOAP with Adam's decays (0.9, 0.999), at medium over ten Kodak
#: points, q20 to q90 (J = MSE + lambda bpp, one run each): -2.1 % on average, 9/10 better
#: (-5.5 to +0.7 %; docs/RESULTS.md)
SOAP_BETAS = (0.95, 0.95)


class GroupOptimiser:
    """The search's optimiser: the small networks' parameters (the first param group) with
    ``schedule.network_optimiser``, every group added later (latents, mask scores) with Adam.

    SOAP (Adam in the eigenbasis of Shampoo's preconditioner, pytorch-optimizer's implementation)
    suits the networks' small matrices; the latents and scores are large flat tensors, where it
    would cost much and preconditions little. ``param_groups`` lists the networks' group first,
    as ``torch.optim.Adam`` over the same groups would."""

    def __init__(self, net_params: list[torch.Tensor], schedule: TrainConfig) -> None:
        if schedule.network_optimiser == "soap":
            from pytorch_optimizer import SOAP  # imported when used: the package takes a second or two to load

            self.networks: torch.optim.Optimizer = SOAP(net_params, lr=schedule.lr, betas=SOAP_BETAS, weight_decay=0.0,
                                                        precondition_frequency=SOAP_PRECONDITION_EVERY)
        elif schedule.network_optimiser == "adam":
            self.networks = torch.optim.Adam(net_params, lr=schedule.lr)
        else:
            raise ValueError(f"unknown network optimiser {schedule.network_optimiser!r}")
        self.others: torch.optim.Adam | None = None

    @property
    def param_groups(self) -> list[dict]:
        return self.networks.param_groups + (self.others.param_groups if self.others is not None else [])

    def add_param_group(self, group: dict) -> None:
        if self.others is None:
            self.others = torch.optim.Adam([group])
        else:
            self.others.add_param_group(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.networks.zero_grad(set_to_none=set_to_none)
        if self.others is not None:
            self.others.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.networks.step()
        if self.others is not None:
            self.others.step()


class LowestLoss:
    """A copy of ``params`` at the lowest loss offered; the hard-rounding phase ends on it.

    With rounding in the forward pass that phase's loss is the frames' D + lambda R (before the
    networks' quantisation), and it does not fall monotonically: the mask's top-k flips and the
    latents' roundings make it jump by up to ~0.5 dB a step at high rates (kodim05 384x256,
    quality 90), so its last step is not its best.
    """

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params
        self.loss = math.inf
        with torch.no_grad():
            self.saved = [p.clone() for p in params]

    def offer(self, loss: float) -> None:
        """``loss`` is that of ``params`` as they are now (before the optimiser steps): copy them
        if it is the lowest so far."""
        if loss < self.loss:
            self.loss = loss
            with torch.no_grad():
                torch._foreach_copy_(self.saved, self.params)

    def restore(self) -> None:
        """Put the copy back (nothing to do if no finite loss was offered)."""
        if self.loss < math.inf:
            with torch.no_grad():
                torch._foreach_copy_(self.params, self.saved)

    def finish(self, final_loss: Callable[[], float]) -> None:
        """End the phase: offer the parameters after its last step (``final_loss`` evaluates them,
        run without gradients), then restore the lowest. A phase of no steps offered nothing and
        leaves the parameters as they are."""
        if self.loss < math.inf:
            with torch.no_grad():
                self.offer(final_loss())
        self.restore()


def _clamp_latents(latents: list[torch.Tensor]) -> None:
    with torch.no_grad():  # two operations for all levels
        torch._foreach_clamp_min_(latents, LATENT_MIN)
        torch._foreach_clamp_max_(latents, LATENT_MAX)


def _mse(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((recon - target) ** 2)


@torch.no_grad()
def quantise_networks(
    model: FrameModel, latents: list[list[np.ndarray]], masks: list[torch.Tensor], targets: list[torch.Tensor],
    lmbda: float, distortion: Distortion | None = None, predictions: list[torch.Tensor] | None = None,
) -> tuple[QuantizedNetworks, float]:
    """Coordinate descent over each module's step, minimising the group's D + lambda * (latent +
    parameter bits): sum over frames of D, latent bits of every frame, parameter bits once.
    With ``predictions`` the frames are predicted ones (``synthesise_predicted``).
    Returns the networks and the group's estimated bits."""
    pixels = model.height * model.width
    distortion = distortion or _mse
    device = targets[0].device
    frame_levels = [[torch.from_numpy(q).to(device=device, dtype=torch.float32) for q in frame] for frame in latents]
    float_state = copy.deepcopy(model.state_dict())
    choice = {name: 10 for name in MODULES}
    cache: dict[tuple[int, ...], tuple[float, float]] = {}

    def evaluate(fracs: dict[str, int]) -> tuple[float, float]:
        key = tuple(fracs[n] for n in MODULES)
        if key not in cache:
            model.load_state_dict(float_state)
            bits = 0.0
            for name in MODULES:
                module = quantize_module(module_parameters(model, name), fracs[name])
                load_module(model, name, module)
                bits += module_bits(module)
            mse = 0.0
            for k, (levels, mask, target) in enumerate(zip(frame_levels, masks, targets)):
                if predictions is None:
                    recon = model.synthesise(levels, mask)
                else:
                    recon = model.synthesise_predicted(levels, mask, predictions[k])
                mse += float(distortion(recon.clamp(0, 1), target))
                bits += float(model.rate_bits(levels))
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
