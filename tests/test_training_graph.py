"""The search's float graph computes the functions the decoder's integer arithmetic defines.

The training path is written for speed (hand-written backward passes, channels-first layout, the
activation evaluated as a scaled hardswish); these tests hold it to the plain definitions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lotto_media.model.arm import CONTEXT_OFFSETS, Arm, causal_context, causal_contexts
from lotto_media.model.config import ModelConfig
from lotto_media.model.latents import UPSAMPLE_CROP, UPSAMPLE_PAD, replicate_pad, upsample2x
from lotto_media.model.synthesis import ACT_SCALE, FrameModel, activation
from lotto_media.model import shifts, window_kernels
from lotto_media.model.shifts import joined_windows, shifted_windows


def test_shifted_windows_forward_and_backward_equal_plain_slicing():
    g = torch.Generator().manual_seed(1)
    grid = torch.randn(2, 9, 11, generator=g, dtype=torch.float64, requires_grad=True)
    offsets = ((0, 0), (1, 3), (2, 1), (0, 2), (2, 3))
    size = (7, 8)
    weights = torch.randn(len(offsets), 2, *size, generator=g, dtype=torch.float64)

    ours = shifted_windows(grid, offsets, size)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), grid)
    plain = torch.stack([grid[..., dy : dy + size[0], dx : dx + size[1]] for dy, dx in offsets])
    (grad_plain,) = torch.autograd.grad((plain * weights).sum(), grid)
    assert torch.equal(ours, plain)
    assert torch.allclose(grad_ours, grad_plain, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: shifted_windows(x, offsets, size), (grid,))


def test_joined_windows_equal_the_concatenated_windows_and_their_gradients():
    g = torch.Generator().manual_seed(3)
    grids = [torch.randn(h, w, generator=g, dtype=torch.float64, requires_grad=True) for h, w in [(9, 11), (4, 5), (9, 11)]]
    offsets = ((0, 0), (1, 3), (2, 1), (0, 2))
    sizes = [(7, 8), (2, 2), (7, 8)]
    ours = joined_windows(grids, offsets, sizes)
    plain = torch.cat([shifted_windows(q, offsets, s).reshape(len(offsets), -1) for q, s in zip(grids, sizes)], dim=1)
    assert torch.equal(ours, plain)
    probe = torch.randn(plain.shape, generator=g, dtype=torch.float64)
    grads_ours = torch.autograd.grad((ours * probe).sum(), grids)
    grads_plain = torch.autograd.grad((plain * probe).sum(), grids)
    assert all(torch.allclose(a, b, rtol=0, atol=1e-12) for a, b in zip(grads_ours, grads_plain))
    assert torch.autograd.gradcheck(lambda *x: joined_windows(list(x), offsets, sizes), tuple(grids))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("planes, hgt, wid", [(1, 3, 5), (2, 9, 13), (1, 190, 200)])
def test_compiled_windows_equal_the_tensor_loop_bit_for_bit(dtype, planes, hgt, wid):
    """The compiled windows (small grids, or one thread) and torch's loop (large grids on several
    threads) give the same windows and the same summed gradient, to the bit: which one runs must
    not change a search. The stack is also written through a strided view, as the ARM's joined
    contexts are."""
    g = torch.Generator().manual_seed(hgt)
    grid = torch.randn(planes, hgt + 4, wid + 8, generator=g, dtype=torch.float32).to(dtype)
    offsets = tuple((dy, dx) for dy in range(5) for dx in range(0, 9, 2))
    joined = torch.full((len(offsets), planes * hgt * wid + 7), -1.0, dtype=dtype)
    for out in (torch.empty(len(offsets), planes, hgt, wid, dtype=dtype),
                joined[:, 7:].view(len(offsets), planes, hgt, wid)):
        looped = torch.empty(out.shape, dtype=dtype)
        shifts._copy_windows_looped(looped, grid, offsets)
        window_kernels.copy_windows(shifts._windows_array(out, written=True), shifts._grid_array(grid, written=False),
                                    np.asarray(offsets))
        assert torch.equal(out, looped)
    assert torch.all(joined[:, :7] == -1.0)
    grad = torch.randn(len(offsets), planes, hgt, wid, generator=g).to(dtype)
    looped, compiled = torch.zeros_like(grid), torch.zeros_like(grid)
    shifts._sum_windows_looped(looped, grad, offsets)
    window_kernels.add_windows(shifts._grid_array(compiled, written=True), shifts._windows_array(grad, written=False),
                               np.asarray(offsets))
    assert torch.equal(compiled, looped)
    naive = torch.zeros_like(grid)
    for k, (dy, dx) in enumerate(offsets):
        naive[:, dy : dy + hgt, dx : dx + wid] = naive[:, dy : dy + hgt, dx : dx + wid] + grad[k]
    assert torch.equal(compiled, naive)


def test_compiled_windows_refuse_a_window_outside_the_grid():
    """The compiled loops index without bounds checks: they check the windows first."""
    grid = np.zeros((1, 6, 8))
    with pytest.raises(ValueError, match="outside the grid"):
        window_kernels.copy_windows(np.zeros((1, 1, 4, 4)), grid, np.array([[3, 0]]))
    with pytest.raises(ValueError, match="outside the grid"):
        window_kernels.add_windows(grid, np.zeros((1, 1, 4, 4)), np.array([[0, -1]]))
    with pytest.raises(ValueError, match="do not match"):
        window_kernels.copy_windows(np.zeros((2, 1, 4, 4)), grid, np.array([[0, 0]]))


def test_arm_contexts_under_bfloat16_autocast_give_what_casting_the_contexts_gives():
    """The joined contexts are built in bfloat16 under autocast: the ARM's outputs and every
    gradient must be those of the float32 contexts cast by autocast, bit for bit."""
    torch.manual_seed(4)
    arm = Arm(16)
    start = [torch.randn(h, w) * 5 for h, w in [(12, 20), (6, 10), (3, 5), (12, 20)]]
    results = []
    for joined in (True, False):
        levels = [q.clone().requires_grad_() for q in start]
        arm.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            context = causal_contexts(levels) if joined else torch.cat([causal_context(q) for q in levels], dim=1)
            mu, log_scale = arm.predict(context)
        assert context.dtype == (torch.bfloat16 if joined else torch.float32)
        (mu.float().square().sum() + log_scale.float().sum()).backward()
        results.append([mu, log_scale, *(q.grad for q in levels), *(p.grad for p in arm.parameters())])
    assert all(a.dtype == b.dtype and torch.equal(a, b) for a, b in zip(*results))


@pytest.mark.parametrize("convolution", [False, True])  # the CPU's windows, the GPU's convolution
def test_training_upsampler_is_the_transposed_convolution_of_the_spec(convolution):
    g = torch.Generator().manual_seed(2)
    for h, w, out_h, out_w in [(5, 7, 10, 14), (5, 7, 9, 13), (1, 1, 1, 2), (3, 2, 6, 3)]:
        u = torch.randn(3, h, w, generator=g, dtype=torch.float64, requires_grad=True)
        kernel = torch.randn(8, 8, generator=g, dtype=torch.float64, requires_grad=True)
        padded = replicate_pad(u, UPSAMPLE_PAD).unsqueeze(1)
        direct = F.conv_transpose2d(padded, kernel.view(1, 1, 8, 8), stride=2, padding=UPSAMPLE_CROP)[:, 0, :out_h, :out_w]
        ours = upsample2x(u, kernel, (out_h, out_w), convolution=convolution)
        assert torch.allclose(ours, direct, atol=1e-12)
        probe = torch.randn(ours.shape, generator=g, dtype=torch.float64)
        grads_ours = torch.autograd.grad((ours * probe).sum(), (u, kernel))
        grads_direct = torch.autograd.grad((direct * probe).sum(), (u, kernel))
        for a, b in zip(grads_ours, grads_direct):
            assert torch.allclose(a, b, atol=1e-10)


def test_activation_is_the_fixed_point_curve_and_scaled_hardswish_matches_it():
    x = torch.linspace(-5, 5, 2001, dtype=torch.float64)
    expected = x * torch.clamp(x + 2, 0, 4) / 4
    assert torch.allclose(activation(x), expected, atol=1e-12)
    assert torch.allclose(F.hardswish(ACT_SCALE * x), ACT_SCALE * expected, atol=1e-12)


def test_arm_context_is_the_causal_neighbourhood_with_zeros_outside():
    g = torch.Generator().manual_seed(3)
    latent = torch.randint(-9, 9, (6, 10), generator=g).double()
    context = causal_context(latent).view(len(CONTEXT_OFFSETS), 6, 10)
    for k, (dy, dx) in enumerate(CONTEXT_OFFSETS):
        for r, c in [(0, 0), (5, 9), (3, 2), (4, 8), (1, 5)]:
            rr, cc = r + dy, c + dx
            inside = 0 <= rr < 6 and 0 <= cc < 10
            assert context[k, r, c] == (latent[rr, cc] if inside else 0)


def test_arm_channels_first_prediction_equals_a_per_latent_mlp():
    torch.manual_seed(4)
    arm = Arm(8).double()
    latent = torch.randint(-9, 9, (5, 7)).double()
    mu, log_scale = arm(latent)
    context = causal_context(latent).t()  # (n, 24)
    h1 = F.relu(arm.fc1(context))
    out = arm.fc3(h1 + F.relu(arm.fc2(h1)))
    assert torch.allclose(mu.reshape(-1), out[:, 0]) and torch.allclose(log_scale.reshape(-1), out[:, 1])


@pytest.mark.parametrize("convolution", [True, False])
@pytest.mark.parametrize("hidden", [8, 24])
def test_arm_over_all_levels_equals_the_per_latent_mlp_with_its_gradients(hidden, convolution):
    """``predict_levels`` (a masked 5x9 convolution per level, or shifted windows) gives every
    latent of every level the MLP of its 24 causal neighbours, and the same gradients for the
    latents and the first layer."""
    torch.manual_seed(11)
    levels = [torch.randint(-9, 9, shape).double().requires_grad_() for shape in [(9, 13), (5, 7), (3, 4), (2, 2), (1, 1)]]
    arm = Arm(hidden).double()
    results = []
    for fast in (True, False):
        arm.zero_grad()
        for q in levels:
            q.grad = None
        if fast:
            mu, log_scale = arm.predict_levels(levels, convolution=convolution)
        else:
            context = torch.cat([causal_context(q) for q in levels], dim=1).t()  # (n, 24)
            h1 = F.relu(arm.fc1(context))
            mu, log_scale = arm.fc3(h1 + F.relu(arm.fc2(h1))).t()
        (mu * 0.7 + log_scale.square()).sum().backward()
        results.append([mu.detach(), log_scale.detach(), arm.fc1.weight.grad.clone(), *(q.grad.clone() for q in levels)])
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(*results))


@pytest.mark.parametrize("fine_grids", [1, 2])
def test_synthesis_equals_the_unscaled_reference_network(fine_grids):
    """FrameModel.synthesise (scaled hardswish, channels-first, concatenated rewind) against the
    network of DESIGN section 3 written out plainly; a second full-resolution grid is the
    modulation's last input (docs/FORMAT.md Part 3 §3.4 step 1)."""
    config = ModelConfig(seed=5, mask_ratio=0.3, fine_grids=fine_grids)
    model = FrameModel(config, 9, 13, generator=torch.Generator().manual_seed(5)).double()
    g = torch.Generator().manual_seed(6)
    levels = [torch.randn(s, generator=g, dtype=torch.float64) * 3 for s in model.shapes]
    with torch.no_grad():
        for p in model.modulation.parameters():
            p.normal_(0, 0.3, generator=g)
        mask = model.mask(straight_through=False)
        ours = model.synthesise(levels, mask)

        from lotto_media.model.latents import upsample_pyramid
        from lotto_media.model.synthesis import pixel_coordinates

        mod = model.modulation
        u = upsample_pyramid(levels[: config.n_levels], model.up_kernel).reshape(config.n_levels, -1).t()  # (P, 7)
        if fine_grids == 2:
            u = torch.cat([u, levels[-1].reshape(-1, 1)], 1)
        o0 = activation(mod.fc0(u))
        o1 = activation(mod.fc1(o0))
        img1 = o1.t().reshape(1, 3, 9, 13)
        img2 = img1 + activation(F.conv2d(replicate_pad(img1, 1), mod.res2.weight, mod.res2.bias))
        img3 = img2 + activation(F.conv2d(replicate_pad(img2, 1), mod.res3.weight, mod.res3.bias))
        o2, o3 = img2.reshape(3, -1).t(), img3.reshape(3, -1).t()
        w1, w2, w3, w4 = model.masked_layers(mask)
        xy = torch.from_numpy(pixel_coordinates(9, 13)).double() / 4096
        h = activation(xy @ w1.t())
        h = activation(torch.cat([h, o3, o2], 1) @ w2.t())
        h = activation(torch.cat([h, o3, o2, o1], 1) @ w3.t())
        out = torch.cat([h, o3, o2, o1, o0], 1) @ w4.t()
        reference = (0.5 * out + 0.5).t().reshape(3, 9, 13)
    assert torch.allclose(ours, reference, atol=1e-5)


@pytest.mark.parametrize("fine_grids", [1, 2])
def test_a_latent_step_folded_into_the_modulation_leaves_the_same_synthesis(fine_grids):
    """The search's latent step scales every level (the pyramid and a second full-resolution grid)
    before the synthesis; folded into the modulation's first layer it leaves a model of step 1 that
    makes the same picture from the same integer latents, the model the file describes."""
    config = ModelConfig(seed=3, mask_ratio=0.3, fine_grids=fine_grids)
    model = FrameModel(config, 11, 14, generator=torch.Generator().manual_seed(3)).double()
    g = torch.Generator().manual_seed(4)
    levels = [torch.randint(-40, 40, s, generator=g).double() for s in model.shapes]
    with torch.no_grad():
        mask = model.mask(straight_through=False)
        plain = model.synthesise(levels, mask)
        model.latent_step = 0.25
        stepped = model.synthesise(levels, mask)
        model.latent_step = 1.0
        assert torch.allclose(stepped, model.synthesise([0.25 * z for z in levels], mask), atol=1e-12)
        assert not torch.allclose(stepped, plain, atol=1e-3)  # the step changes the picture...
        model.latent_step = 0.25
        model.fold_latent_step()
        assert model.latent_step == 1.0
        assert torch.allclose(model.synthesise(levels, mask), stepped, atol=1e-12)  # ...and folding keeps it


def test_the_zero_latent_response_equals_the_synthesis_of_zeros_with_its_gradients():
    """A predicted frame's response to zero latents is made without a pass of the modulation
    network over the picture (its output is then constant): the same values and the same
    gradients for the networks and the mask scores as synthesising zero latents."""
    config = ModelConfig(seed=7, mask_ratio=0.3)
    outputs, grads = [], []
    for shortcut in (True, False):
        model = FrameModel(config, 11, 14, generator=torch.Generator().manual_seed(7)).double()
        with torch.no_grad():
            for p in model.modulation.parameters():
                p.normal_(0, 0.3, generator=torch.Generator().manual_seed(9))
        mask = model.mask()
        if shortcut:
            out = model.zero_response(mask)
        else:
            out = model.synthesise([torch.zeros_like(z) for z in model.latents], mask)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
        (out * weights).sum().backward()
        outputs.append(out.detach())
        grads.append([torch.zeros_like(p) if p.grad is None else p.grad.clone()
                      for p in [*model.modulation.parameters(), model.scores]])
    assert outputs[0].std() > 1e-3  # a response that depends on the networks, not a constant
    assert torch.allclose(outputs[0], outputs[1], atol=1e-10)
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(*grads))


def test_a_held_synthesis_is_the_predicted_synthesis_with_the_same_latent_gradients():
    """With the networks and the mask held, ``synthesise_held`` computes once what the latents do
    not reach; the picture and the latents' gradients are those of ``synthesise_predicted``."""
    config = ModelConfig(seed=12, mask_ratio=0.3)
    model = FrameModel(config, 10, 15, generator=torch.Generator().manual_seed(12)).double()
    g = torch.Generator().manual_seed(13)
    with torch.no_grad():
        for p in model.modulation.parameters():
            p.normal_(0, 0.3, generator=g)
    mask = model.mask(straight_through=False)
    prediction = torch.rand(3, 10, 15, generator=g, dtype=torch.float64)
    probe = torch.randn(3, 10, 15, generator=g, dtype=torch.float64)
    levels = [(torch.randn(s, generator=g, dtype=torch.float64) * 3).requires_grad_() for s in model.shapes]
    held = model.synthesise_held(levels, model.hold(mask), prediction)
    held_grads = torch.autograd.grad((held * probe).sum(), levels)
    plain = model.synthesise_predicted(levels, mask, prediction)
    plain_grads = torch.autograd.grad((plain * probe).sum(), levels)
    assert (held - prediction).abs().max() > 1e-3  # the latents change the picture
    with torch.no_grad():
        definition = model.synthesise(levels, mask) - model.synthesise([torch.zeros_like(q) for q in levels], mask)
    assert torch.allclose(held, definition + prediction, atol=1e-10)
    assert torch.allclose(held, plain, atol=1e-10)
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(held_grads, plain_grads))
