"""The refit of a predicted-frame ARM on latents already chosen: fewer bits when it pays, the held
ARM when it does not, and a code that the decoder reads back exactly."""

from __future__ import annotations

import numpy as np
import torch

from lotto_media.coding import entropy
from lotto_media.coding.params import QuantizedModule, QuantizedNetworks, module_bits, module_shapes
from lotto_media.model.arm import causal_context, float_arm_from_integers
from lotto_media.model.config import ModelConfig
from lotto_media.model.latents import level_shapes
from lotto_media.model.synthesis import laplace_bits
from lotto_media.search.arm_fit import _Prices, _Rows, coded_bits, refit_arm


def residual_latents(seed: int, height: int = 40, width: int = 48) -> list[np.ndarray]:
    """Latents like a predicted frame's: zero but for a few patches of small, mostly positive values."""
    rng = np.random.default_rng(seed)
    levels = []
    for h, w in level_shapes(height, width, 4):
        level = np.zeros((h, w), dtype=np.int64)
        for _ in range(2):
            r, c = rng.integers(0, h), rng.integers(0, w)
            patch = level[r : r + 4, c : c + 4]
            patch[...] = rng.choice([0, 1, 1, 2, -1], size=patch.shape)
        levels.append(level)
    return levels


def flat_arm(hidden: int = 8, frac: int = 6) -> QuantizedNetworks:
    """An ARM that says nothing: every weight zero, so every latent gets mean 0 and scale 1."""
    shapes = module_shapes(ModelConfig(arm_hidden=hidden), "arm")
    arm = QuantizedModule(frac, tuple(np.zeros(s, dtype=np.int64) for s in shapes))
    return QuantizedNetworks(arm, arm, arm)


def test_folded_rows_count_the_bits_of_every_latent():
    frames = [residual_latents(1), residual_latents(2)]
    torch.manual_seed(0)
    arm = float_arm_from_integers([np.random.default_rng(3).integers(-40, 40, s) for s in
                                   module_shapes(ModelConfig(arm_hidden=8), "arm")], 6)
    direct = 0.0
    with torch.no_grad():
        for latents in frames:
            for level in latents:
                grid = torch.from_numpy(level.astype(np.float32))
                mu, log_scale = arm.predict(causal_context(grid))
                direct += float(laplace_bits(grid.reshape(-1), mu, log_scale).sum())
        folded = float(_Rows.of(_Prices.of(frames, 0), 0).bits(arm))
    assert abs(folded - direct) < 1e-3 * direct


def test_a_refit_codes_the_latents_in_fewer_bits_and_decodes_exactly():
    frames = [residual_latents(k) for k in range(3)]
    held = flat_arm()
    refit = refit_arm(held, frames)
    assert refit.kept_refit and refit.refit_bits < 0.8 * refit.held_bits
    assert refit.held_bits == coded_bits(frames, held.arm)
    arm = refit.nets.integer_arm()
    previous = [None, *frames[:-1]]  # the first predicted frame follows the intra frame
    coded = [entropy.encode_latents(latents, arm, previous=before) for latents, before in zip(frames, previous)]
    for latents, before, data in zip(frames, previous, coded):
        decoded = entropy.decode_latents(data, [z.shape for z in latents], arm, previous=before)
        assert all(np.array_equal(a, b) for a, b in zip(decoded, latents))
    # the estimate it chose by is the real code length, within the termination's few bytes a frame
    real_bits = 8 * sum(len(data) for data in coded) + module_bits(refit.nets.arm) + 8 * (refit.nets.arm_temporal > 0)
    assert abs(real_bits - refit.refit_bits) <= 32 * len(frames)
    # only the ARM changes
    assert refit.nets.upsampler is held.upsampler and refit.nets.modulation is held.modulation


def test_a_refit_that_does_not_pay_keeps_the_held_arm():
    frames = [residual_latents(5)]
    held = flat_arm(frac=4)
    unchanged = refit_arm(held, frames, steps=0)
    assert not unchanged.kept_refit and unchanged.nets is not None and unchanged.nets.arm is held.arm


def test_a_searched_picture_keeps_whichever_arm_codes_its_latents_in_fewer_bits(monkeypatch, tiny_rgb):
    """The intra search ends with a refit of its ARM (no temporal taps) on the final latents: the
    networks it returns carry the refit's choice, which codes the latents in no more bits than the
    ARM the quantisation picked (``held_bits`` is that ARM's price, see the test above)."""
    from lotto_media.search import train
    from lotto_media.search.presets import preset, quality_to_lmbda

    calls = []

    def spy(nets, frames, **options):
        result = refit_arm(nets, frames, **options)
        calls.append((nets, frames, options, result))
        return result

    monkeypatch.setattr(train, "refit_arm", spy)
    target = torch.from_numpy(tiny_rgb.astype(np.float32) / 255).permute(2, 0, 1)
    config = ModelConfig(arm_hidden=8)
    found = train.search(target, config, preset("ultrafast"), quality_to_lmbda(40), torch.device("cpu"))
    ((held, frames, options, result),) = calls
    assert options == {"temporal": (0,)}
    assert found.nets is result.nets and found.nets.arm_temporal == 0
    assert all(np.array_equal(a, b) for a, b in zip(frames[0], found.latents))
    assert coded_bits(frames, found.nets.arm) == min(result.refit_bits, result.held_bits)
