"""Where a search step's time goes on a CUDA device: steps timed, then a torch.profiler table of
one group of steps (kernel launches per step, the busiest operators). Run on a GPU machine after
the installs of cuda_checks.sh: ``python3 tests/device/profile_search.py [WIDTH HEIGHT]``."""

from __future__ import annotations

import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from lotto_media.model.config import ModelConfig
from lotto_media.model.latents import kumaraswamy_noise, soft_round
from lotto_media.model.supermask import straight_through_mask
from lotto_media.model.synthesis import FrameModel
from lotto_media.search.presets import ENCODER_MOD_HIDDEN


def main() -> None:
    width, height = (int(v) for v in sys.argv[1:3]) if len(sys.argv) >= 3 else (384, 256)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # cpu: a dry run
    sync_device = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    config = ModelConfig(mod_hidden=ENCODER_MOD_HIDDEN)
    model = FrameModel(config, height, width, generator=torch.Generator().manual_seed(1)).to(device)
    target = torch.rand(3, height, width, device=device)
    noise = torch.Generator(device=device).manual_seed(2)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)

    def step(sync: bool) -> None:
        levels = [soft_round(soft_round(z, 0.3) + kumaraswamy_noise(z.shape, 2.0, noise, device), 0.3)
                  for z in model.latents]
        recon = model.synthesise(levels, straight_through_mask(model.scores, config.n_kept()))
        mse = torch.mean((recon - target) ** 2)
        loss = mse + 1e-3 * model.rate_bits(levels) / (height * width)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if sync:
            float(loss)

    for sync in (True, False):
        for _ in range(10):
            step(sync)
        sync_device()
        start = time.perf_counter()
        for _ in range(50):
            step(sync)
        sync_device()
        print(f"{width}x{height} sync each step={sync}: {(time.perf_counter() - start) / 50 * 1e3:.2f} ms/step")

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(10):
            step(True)
        sync_device()
    events = prof.key_averages()
    kernels = sum(e.count for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    print(f"CUDA kernels per step: {kernels / 10:.0f}")
    print(events.table(sort_by="cuda_time_total" if device.type == "cuda" else "cpu_time_total", row_limit=20))
    print(events.table(sort_by="cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
