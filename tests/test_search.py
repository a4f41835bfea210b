"""The search's own bookkeeping: which of the parameters it visited it returns, and in which
precision it computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lotto_media.model.config import ModelConfig
from lotto_media.model.latents import to_integers
from lotto_media.model.supermask import topk_mask
from lotto_media.search import inter, train
from lotto_media.search.presets import preset


def test_lowest_loss_restores_the_parameters_offered_with_the_smallest_loss():
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.ones(2))
    lowest = train.LowestLoss([a, b])
    lowest.restore()  # nothing offered yet: nothing changes
    assert a.tolist() == [0, 0, 0] and b.tolist() == [1, 1]
    for loss, value in ((5.0, 1.0), (2.0, 2.0), (3.0, 3.0), (2.5, 4.0)):
        with torch.no_grad():
            a.fill_(value)
            b.fill_(-value)
        lowest.offer(loss)
    lowest.restore()
    assert a.tolist() == [2, 2, 2] and b.tolist() == [-2, -2]
    assert lowest.loss == 2.0


def test_the_search_returns_the_latents_of_its_lowest_hard_phase_loss(monkeypatch):
    """Every hard-rounding step's parameters are offered (and those after the last step); the
    frame's integer latents and mask are those of the smallest of these losses, not of the last
    step."""
    offers: list[tuple[float, list[np.ndarray], np.ndarray]] = []
    config = ModelConfig(seed=1, mod_hidden=8)

    class Recording(train.LowestLoss):
        def offer(self, loss: float) -> None:
            # one frame: the networks' parameters, its latent levels, its mask scores (the shape
            # comparison below catches another order)
            latents = to_integers(self.params[-1 - config.n_levels:-1])
            offers.append((loss, latents, topk_mask(self.params[-1].detach(), config.n_kept()).numpy()))
            super().offer(loss)

    monkeypatch.setattr(train, "LowestLoss", Recording)
    rng = np.random.default_rng(3)
    target = torch.from_numpy(rng.random((3, 12, 16), dtype=np.float32))
    # a hard-phase rate high enough that the loss jumps and its lowest is not at the end (with
    # this draw of the search: its temperatures pinned, whatever the preset's)
    schedule = preset("ultrafast", soft_steps=8, hard_steps=12, lr_hard=0.1, temperature=(0.3, 0.1))
    result = train.search(target, config, schedule, 1e-3, torch.device("cpu"))
    assert len(offers) == schedule.hard_steps + 1
    best = min(range(len(offers)), key=lambda i: offers[i][0])
    _, chosen, mask = offers[best]
    assert best < len(offers) - 1
    assert not all(np.array_equal(x, y) for x, y in zip(chosen, offers[-1][1]))
    assert [z.shape for z in result.latents] == [z.shape for z in chosen]
    assert all(np.array_equal(x, y) for x, y in zip(result.latents, chosen))
    assert np.array_equal(result.mask, mask.astype(bool))


def test_predicted_frames_end_on_their_lowest_hard_phase_loss(monkeypatch):
    """The same for each predicted frame's own hard phase (the frame that fits the networks and
    the later ones, whose networks and mask are held)."""
    config = ModelConfig(seed=2, mod_hidden=8)
    offers_by_frame: list[list[tuple[float, list[np.ndarray]]]] = []

    class Recording(inter.LowestLoss):
        def __init__(self, params: list[torch.Tensor]) -> None:
            super().__init__(params)
            offers_by_frame.append([])

        def offer(self, loss: float) -> None:
            # a predicted frame's latent levels come first
            offers_by_frame[-1].append((loss, to_integers(self.params[:config.n_levels])))
            super().offer(loss)

    monkeypatch.setattr(inter, "LowestLoss", Recording)
    rng = np.random.default_rng(4)
    targets = [torch.from_numpy(rng.random((3, 12, 16), dtype=np.float32)) for _ in range(3)]
    schedule = preset("ultrafast", soft_steps=8, warm_soft_steps=4, hard_steps=12, lr_hard=0.1)
    # any picture will do as the prediction: the search only fits what it misses
    result = inter.search_predicted_group(targets, config, schedule, 1e-3, torch.device("cpu"),
                                          lambda k, nets, solution: targets[k].flip(-1))
    assert len(offers_by_frame) == 2
    discriminating = 0  # frames whose lowest loss is not their last step's, with other latents
    for frame, offers in zip(result.frames[1:], offers_by_frame):
        assert len(offers) == schedule.hard_steps + 1
        best = min(range(len(offers)), key=lambda i: offers[i][0])
        assert all(np.array_equal(x, y) for x, y in zip(frame.latents, offers[best][1]))
        discriminating += not all(np.array_equal(x, y) for x, y in zip(offers[best][1], offers[-1][1]))
    assert discriminating >= 1


def _synthesis_dtypes(monkeypatch, schedule, native: bool) -> list[torch.dtype]:
    """The dtype of every picture synthesis a one-frame search makes, in order (and a check that
    every rate estimate stays in float32)."""
    dtypes: list[torch.dtype] = []
    rate_dtypes: set[torch.dtype] = set()
    synthesise, rate_bits = train.FrameModel.synthesise, train.FrameModel.rate_bits

    def recording(self, levels, mask):
        recon = synthesise(self, levels, mask)
        dtypes.append(recon.dtype)
        return recon

    def recording_rate(self, levels):
        bits = rate_bits(self, levels)
        rate_dtypes.add(bits.dtype)
        return bits

    monkeypatch.setattr(train.FrameModel, "synthesise", recording)
    monkeypatch.setattr(train.FrameModel, "rate_bits", recording_rate)
    monkeypatch.setattr(train, "bfloat16_steps", lambda device: native)
    target = torch.from_numpy(np.random.default_rng(5).random((3, 12, 16), dtype=np.float32))
    train.search(target, ModelConfig(seed=3, mod_hidden=8), schedule, 1e-3, torch.device("cpu"))
    assert rate_dtypes == {torch.float32}
    return dtypes


def test_the_soft_phase_runs_its_first_share_in_bfloat16_where_the_device_has_it(monkeypatch):
    """Soft steps at progress t = step / 9 below 0.5 (five of ten) synthesise in bfloat16; the
    rest of the soft phase, the hard phase and the networks' quantisation in float32."""
    schedule = preset("ultrafast", soft_steps=10, hard_steps=2, bf16_soft_share=0.5)
    dtypes = _synthesis_dtypes(monkeypatch, schedule, native=True)
    assert dtypes[:5] == [torch.bfloat16] * 5
    assert len(dtypes) > 10 and set(dtypes[5:]) == {torch.float32}


def test_bfloat16_is_not_used_where_the_device_lacks_it(monkeypatch):
    """The same schedule on a device without bfloat16 steps: float32 throughout."""
    schedule = preset("ultrafast", soft_steps=10, hard_steps=2, bf16_soft_share=0.5)
    assert set(_synthesis_dtypes(monkeypatch, schedule, native=False)) == {torch.float32}


def test_bfloat16_steps_are_for_cpus_with_avx512_bf16_and_without_amx(monkeypatch):
    """Off a CPU the search stays in float32 (CUDA is unmeasured); on a CPU bfloat16 steps need
    AVX512-BF16, and AMX rules them out (oneDNN's AMX products of the synthesis' shapes can die on
    SIGFPE, and they measured no quicker); a torch build without the probes gets float32."""
    assert train.bfloat16_steps(torch.device("meta")) is False
    assert isinstance(train.bfloat16_steps(torch.device("cpu")), bool)
    for avx512_bf16, amx, expected in [(True, False, True), (True, True, False), (False, False, False),
                                       (False, True, False)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert train.bfloat16_steps(torch.device("cpu")) is expected
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert train.bfloat16_steps(torch.device("cpu")) is False


def test_the_networks_take_their_own_optimiser_and_the_rest_adam():
    """SOAP moves the networks' group, Adam every group added after it, each at the rate its
    group holds; zero_grad and step reach both."""
    net = torch.nn.Parameter(torch.ones(4, 3))
    latent = torch.nn.Parameter(torch.ones(5))
    optimiser = train.GroupOptimiser([net], preset("medium"))
    assert type(optimiser.networks).__name__ == "SOAP"
    assert tuple(optimiser.networks.param_groups[0]["betas"]) == train.SOAP_BETAS == (0.95, 0.95)
    optimiser.add_param_group({"params": [latent], "lr": 0.5})
    assert [g["params"][0] is p for g, p in zip(optimiser.param_groups, (net, latent))] == [True, True]
    assert isinstance(optimiser.others, torch.optim.Adam)
    for _ in range(3):
        optimiser.zero_grad(set_to_none=True)
        ((net * torch.arange(12.0).view(4, 3)).sum() + latent.sum()).backward()
        optimiser.step()
    assert net.grad is not None and not torch.equal(net.detach(), torch.ones(4, 3))
    # Adam's first steps move each coordinate by about its rate
    assert torch.allclose(latent.detach(), torch.full((5,), 1 - 3 * 0.5), atol=1e-3)
    optimiser.zero_grad(set_to_none=True)
    assert net.grad is None and latent.grad is None
    assert isinstance(train.GroupOptimiser([net], preset("ultrafast", network_optimiser="adam")).networks, torch.optim.Adam)
    with pytest.raises(ValueError, match="sgd"):
        train.GroupOptimiser([net], preset("medium", network_optimiser="sgd"))
