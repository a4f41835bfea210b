"""The search of a group with predicted frames: an intra frame, then frames coded as a residual to
the previous frame's decoded picture.

The group's first frame is searched exactly as a picture of its own. Each later frame is
predicted from the previous frame's *decoded* picture (the exact integers the decoder will have,
made by the caller's ``predict_next``), so the search fits what the prediction misses
and nothing drifts. The first predicted frame fits the group's networks for predicted frames
(fresh ones: a residual is not a picture) with the full soft-rounding schedule; they are then
quantised and held with its mask, and later predicted frames fit only their latents, in the
shorter ``warm_soft_steps``: their mask delta is empty. Each frame's hard-rounding phase ends on
its lowest loss (``train.LowestLoss``). Once every frame is searched, the ARM of
the predicted frames is refit on all their latents (``arm_fit``). Measured at fast on a 128x96
CiscoVT2people crop (quality 40, frames 2 and 3), a held mask gave 292 B / 33.25 dB and 300 B /
32.47 dB, a free one 308 B / 33.16 dB and 320 B / 32.86 dB (half of it the mask delta); on a
still scene the held mask leaves a predicted frame almost nothing to send.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

import torch

from ..coding.params import MODULES, QuantizedNetworks, module_parameters
from ..model.chroma import Distortion
from ..model.config import ModelConfig
from ..model.latents import noisy_soft_round, quantise_ste, to_integers
from ..model.supermask import straight_through_mask, topk_mask
from ..model.synthesis import FrameModel
from ..reports import Progress
from .arm_fit import refit_arm
from .presets import TrainConfig
from .train import (
    FrameSolution,
    LowestLoss,
    ProgressCallback,
    _Annealing,
    _clamp_latents,
    _mse,
    _psnr,
    quantise_networks,
    search_group,
)


class RestartGroup:
    """What ``predict_next`` returns for a predicted frame that should not be one: the group ends
    before that frame, which the caller codes again as the intra frame of the next group."""


#: the one ``RestartGroup`` value
RESTART_GROUP = RestartGroup()

#: ``predict_next(k, nets, solution)`` decodes frame k exactly and returns the prediction of frame
#: k + 1 made from it (motion-compensated, in the search's (C, H, W) target layout on [0, 1]),
#: None after the last frame, or ``RESTART_GROUP`` to drop predicted frame k and end the group
NextPrediction = Callable[[int, QuantizedNetworks, FrameSolution], "torch.Tensor | RestartGroup | None"]


@dataclass
class PredictedGroupResult:
    """A group's networks (intra and predicted) and each frame's latents and mask."""

    intra_nets: QuantizedNetworks
    predicted_nets: QuantizedNetworks | None
    frames: list[FrameSolution]
    seconds: float


def predicted_steps(schedule: TrainConfig, k: int) -> int:
    """Search steps of a group's frame ``k`` (0: the intra frame)."""
    if k == 0:
        return schedule.total_steps
    return (schedule.soft_steps if k == 1 else schedule.warm_soft_steps) + schedule.hard_steps


def search_predicted_group(
    targets: list[torch.Tensor],
    config: ModelConfig,
    schedule: TrainConfig,
    lmbda: float,
    device: torch.device,
    predict_next: NextPrediction,
    progress: ProgressCallback | None = None,
    distortion: Distortion | None = None,
) -> PredictedGroupResult:
    """Search an intra frame and up to ``len(targets) - 1`` predicted frames (see the module's
    notes): fewer when ``predict_next`` ends the group early; ``frames`` holds those kept."""
    distortion = distortion or _mse
    start = time.perf_counter()
    n_frames = len(targets)
    _, height, width = targets[0].shape
    pixels = height * width
    total = sum(predicted_steps(schedule, k) for k in range(n_frames))
    report_every = max(1, total // 200)

    intra_progress = None
    if progress is not None:
        intra_progress = lambda p: progress(replace(p, total=total, frames=n_frames))  # noqa: E731
    intra = search_group([targets[0]], config, schedule, lmbda, device, intra_progress, distortion)
    frames = [intra.frames[0]]
    prediction = predict_next(0, intra.nets, frames[0])
    assert prediction is not RESTART_GROUP, "only a predicted frame restarts a group"
    if prediction is None:
        return PredictedGroupResult(intra.nets, None, frames, time.perf_counter() - start)

    generator = torch.Generator().manual_seed(config.seed % (2**63) + 2)
    model = FrameModel(config, height, width, generator=generator).to(device)
    noise_gen = torch.Generator(device=device).manual_seed(config.seed % (2**63) + 3)
    annealing = _Annealing(replace(schedule, temperature=schedule.predicted_temperature))
    net_params = [p for name in MODULES for p in module_parameters(model, name)]
    predicted_nets: QuantizedNetworks | None = None
    scores = frames[0].scores
    assert scores is not None
    done = predicted_steps(schedule, 0)

    for k in range(1, n_frames):
        frame_start = time.perf_counter()
        target = targets[k].to(device)
        assert isinstance(prediction, torch.Tensor)
        prediction = prediction.to(device)
        first = k == 1
        latents = [torch.nn.Parameter(torch.zeros_like(z)) for z in model.latents]
        frame_scores = torch.nn.Parameter(scores.detach().clone().to(device))
        latent_lrs = schedule.latent_lrs(lmbda, config.n_levels, predicted=True, second_grid=config.second_grid)
        groups = [{"params": [level], "lr": lr} for level, lr in zip(latents, latent_lrs)]  # one a level
        if first:
            groups += [{"params": net_params, "lr": schedule.lr * schedule.predicted_net_lr_scale},
                       {"params": [frame_scores], "lr": schedule.lr_scores}]
        optimiser = torch.optim.Adam(groups)
        base_lrs = [group["lr"] for group in optimiser.param_groups]

        # with the networks and the mask held, what the latents do not reach is computed once
        held = None
        if not first:
            frame_scores.requires_grad_(False)
            with torch.no_grad():
                held = model.hold(topk_mask(frame_scores, config.n_kept()))

        def loss_of(levels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            if held is None:
                recon = model.synthesise_predicted(levels, straight_through_mask(frame_scores, config.n_kept()), prediction)
            else:
                recon = model.synthesise_held(levels, held, prediction)
            mse = distortion(recon, target)
            bits = model.rate_bits(levels)
            return mse + lmbda * bits / pixels, mse, bits

        def report(phase: str, loss: torch.Tensor, mse: torch.Tensor, bits: torch.Tensor) -> None:
            # read only when reported: on a GPU each read waits for the device
            if progress is None or not (done % report_every == 0 or done == total):
                return
            elapsed = time.perf_counter() - start
            progress(Progress(step=done, total=total, phase=phase, loss=float(loss.detach()),
                              psnr=_psnr(float(mse.detach())), bpp=float(bits.detach()) / pixels,
                              elapsed_s=elapsed, eta_s=elapsed / max(done, 1) * (total - done),
                              frame=k, frames=n_frames))

        def descend(levels: list[torch.Tensor], phase: str, lowest: LowestLoss | None = None) -> None:
            nonlocal done
            loss, mse, bits = loss_of(levels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if lowest is not None:  # read once the backward pass is queued, before the step
                lowest.offer(float(loss.detach()))
            optimiser.step()
            _clamp_latents(latents)
            done += 1
            report(phase, loss, mse, bits)

        soft_steps = schedule.soft_steps if first else schedule.warm_soft_steps
        for step in range(soft_steps):
            temperature, noise_a, decay = annealing.at(step / max(soft_steps - 1, 1))
            for group, lr in zip(optimiser.param_groups, base_lrs):
                group["lr"] = lr * decay
            descend(noisy_soft_round(latents, temperature, noise_a, noise_gen), "soft")
        for group in optimiser.param_groups:
            group["lr"] = schedule.lr_hard
        lowest = LowestLoss([*latents, *net_params, frame_scores] if first else list(latents))
        for _ in range(schedule.hard_steps):
            descend([quantise_ste(z) for z in latents], "hard", lowest)
        lowest.finish(lambda: float(loss_of([quantise_ste(z) for z in latents])[0]))

        integer_latents = to_integers(list(latents))
        with torch.no_grad():
            mask = topk_mask(frame_scores.detach(), config.n_kept())
        if first:
            predicted_nets, _ = quantise_networks(model, [integer_latents], [mask], [target], lmbda, distortion,
                                                  predictions=[prediction])
            for p in net_params:
                p.requires_grad_(False)
        assert predicted_nets is not None
        solution = FrameSolution(integer_latents, mask.cpu().numpy().astype(bool), soft_steps + schedule.hard_steps,
                                 time.perf_counter() - frame_start, scores=frame_scores.detach().clone())
        prediction = predict_next(k, predicted_nets, solution)
        if prediction is RESTART_GROUP:
            # the dropped frame's search is the group's cost: its seconds go to the last frame kept
            frames[-1].seconds += solution.seconds
            if first:  # no predicted frame kept: no networks for them
                return PredictedGroupResult(intra.nets, None, frames, time.perf_counter() - start)
            break
        frames.append(solution)
        scores = solution.scores
        if prediction is None:
            break
    assert predicted_nets is not None
    # the ARM reaches only the rate: refit on every predicted frame's latents, the reconstructions
    # (made above) do not change; its seconds are the group's, counted with the frame that fitted
    # the networks
    refit_start = time.perf_counter()
    predicted_nets = refit_arm(predicted_nets, [f.latents for f in frames[1:]]).nets
    frames[1].seconds += time.perf_counter() - refit_start
    return PredictedGroupResult(intra.nets, predicted_nets, frames, time.perf_counter() - start)
