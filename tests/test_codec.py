"""End-to-end tests of the core codec on tiny pictures: bit-exact decoding, honest size and
quality reports, determinism, odd inputs, damaged files and rate control."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SAMPLES_DIR, synthetic_rgb
from lotto_media import Frame, FormatError, InputError
from lotto_media.coding import bitstream, entropy
from lotto_media.model.arm import float_arm_from_integers
from lotto_media.codec import EncodeOptions, decode_frame, decode_image, encode_frame, encode_image, inspect
from lotto_media.model.config import ModelConfig
from lotto_media.search.presets import ENCODER_MOD_HIDDEN, arm_hidden_for, fine_grids_for, quality_to_lmbda
from lotto_media.container import read_container
from lotto_media.metrics import psnr_rgb
from lotto_media.model.random_weights import random_synthesis_weights
from lotto_media.model.reconstruct import reconstruct
from lotto_media.model.synthesis import FrameModel, laplace_bits

FAST = dict(preset="ultrafast", steps=30, quality=60)


def photo(width: int, height: int) -> np.ndarray:
    """The bundled Kodak sample, resized: a real photo that every clone has."""
    with Image.open(SAMPLES_DIR / "kodim23_192x128.png") as img:
        return np.asarray(img.convert("RGB").resize((width, height), Image.LANCZOS))


@pytest.fixture(scope="module")
def encoded():
    source = Frame.from_array(photo(37, 23))  # odd sizes on purpose
    return source, encode_frame(source, EncodeOptions(**FAST))


def test_decode_equals_encoder_reconstruction_bit_for_bit(encoded):
    source, result = encoded
    decoded = decode_frame(result.data)
    assert decoded.pix_fmt == "rgb24" and (decoded.width, decoded.height) == (37, 23)
    for a, b in zip(decoded.planes, result.reconstruction.planes):
        assert a.dtype == np.uint8 and np.array_equal(a, b)


def test_info_reports_the_decoded_psnr_and_the_file_size(encoded):
    source, result = encoded
    info = inspect(result.data)
    decoded = decode_frame(result.data)
    assert info.psnr == pytest.approx(psnr_rgb(source, decoded), abs=5e-4)  # stored to 1/1000 dB
    assert info.bytes == len(result.data)
    assert info.bpp == pytest.approx(8 * len(result.data) / (37 * 23))
    assert (info.width, info.height, info.pix_fmt, info.preset) == (37, 23, "rgb24", "ultrafast")
    assert info.psnr > 15  # a broken synthesis gives noise far below this
    assert [d.steps for d in info.frame_details] == [result.steps] and result.steps > 0


def test_coded_latents_match_the_arm_estimate():
    """The range coder and the integer ARM's tables lose < 2 % against the float ARM's estimate."""
    source = Frame.from_array(photo(96, 64))
    result = encode_frame(source, EncodeOptions(preset="ultrafast", steps=40, quality=80))
    container = read_container(result.data)
    config = container.header.model
    group = bitstream.unpack_group(container.groups[0], config)
    nets = group.nets
    config = config.with_arm_hidden(group.arm_hidden)
    payload = bitstream.unpack_frame(container.frames[0].payload)
    latents = entropy.decode_latents(payload.latents, config.grid_shapes(64, 96), nets.integer_arm())
    arm = float_arm_from_integers(list(nets.arm.tensors), nets.arm.frac).double()
    float_bits = 0.0
    with torch.no_grad():
        for q in latents:
            qt = torch.from_numpy(q.astype(np.float64))
            mu, log_scale = arm(qt)
            float_bits += float(laplace_bits(qt, mu, log_scale).sum())
    coded_bits = 8 * len(payload.latents)
    assert float_bits > 800  # the latents carry real information at this quality
    assert coded_bits <= 1.02 * float_bits + 8 * 16
    assert coded_bits >= 0.98 * float_bits - 8 * 16
    assert result.estimated_latent_bits == pytest.approx(coded_bits, rel=0.02, abs=8 * 16)


def test_encoding_is_repeatable():
    pixels = synthetic_rgb(12, 10, seed=3)
    a = encode_image(pixels, preset="ultrafast", steps=6)
    b = encode_image(pixels, preset="ultrafast", steps=6)
    assert a == b


def test_grayscale_round_trip():
    gray = photo(21, 14).mean(axis=2).round().astype(np.uint8)
    result = encode_frame(Frame.from_array(gray), EncodeOptions(**FAST))
    out = decode_image(result.data)
    assert out.shape == (14, 21) and out.dtype == np.uint8
    assert np.array_equal(out, result.reconstruction.planes[0])
    assert inspect(result.data).pix_fmt == "gray"


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 3, 3), (5, 1, 3)])
def test_very_small_images(shape):
    pixels = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    data = encode_image(pixels, preset="ultrafast", steps=4)
    assert decode_image(data).shape == shape


def test_bad_options_and_inputs_are_clear_errors():
    with pytest.raises(InputError, match="either lambda or quality"):
        encode_image(synthetic_rgb(4, 4), lmbda=0.01, quality=50)
    with pytest.raises(InputError, match="quality"):
        encode_image(synthetic_rgb(4, 4), quality=101)
    with pytest.raises(InputError, match="preset"):
        encode_image(synthetic_rgb(4, 4), preset="warp")
    with pytest.raises(InputError, match="mask ratio"):
        encode_image(synthetic_rgb(4, 4), mask_ratio=1.5)
    with pytest.raises(InputError):
        encode_image(np.zeros((4, 4, 3), dtype=np.float32))


def test_damaged_files_raise_format_errors(encoded):
    _, result = encoded
    data = result.data
    bad = [b"", b"hello world\n", data[:8], data[: len(data) // 2], b"\x00" + data[1:]]
    flips = range(0, len(data) - 40, max(1, (len(data) - 40) // 40))  # before the metadata
    bad += [data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1 :] for i in flips]
    for damaged in bad:
        try:
            decode_frame(damaged, name="x.lotto")
        except FormatError as exc:
            assert "\n" not in str(exc)
        else:  # the only acceptable success is damage outside the picture (metadata, index)
            assert read_container(damaged).damage is not None


def test_absurd_header_dimensions_are_rejected_before_any_allocation(encoded):
    _, result = encoded
    import struct
    import zlib

    data = bytearray(result.data)
    # SHDR payload starts after the 8-byte signature and the 8-byte chunk head; width at offset 3
    struct.pack_into(">I", data, 16 + 3, 1_000_000)
    crc_at = 16 + int.from_bytes(data[12:16], "big")
    struct.pack_into(">I", data, crc_at, zlib.crc32(bytes(data[8:12] + data[16:crc_at])))  # over type + payload
    with pytest.raises(FormatError, match="width"):
        decode_frame(bytes(data), name="x.lotto")


def test_higher_quality_gives_more_bytes_and_higher_psnr():
    source = Frame.from_array(photo(64, 48))
    points = []
    for quality in (10, 50, 90):
        result = encode_frame(source, EncodeOptions(preset="ultrafast", steps=60, quality=quality))
        points.append((len(result.data), result.info.psnr))
        # the ARM's width follows the rate and, like the encoder's modulation
        # width, travels in the file
        container = read_container(result.data)
        model = container.header.model
        arm_hidden = bitstream.unpack_group(container.groups[0], model).arm_hidden  # per group since version 2
        assert arm_hidden == arm_hidden_for(quality_to_lmbda(quality))
        assert model.mod_hidden == ENCODER_MOD_HIDDEN != ModelConfig().mod_hidden
        assert (result.info.mod_hidden, result.info.arm_hidden) == (model.mod_hidden, arm_hidden)
        # a second full-resolution latent grid at the top qualities of medium and beyond only
        assert model.fine_grids == 1
        medium = EncodeOptions(preset="medium", quality=quality).schedule()
        assert fine_grids_for(quality_to_lmbda(quality), medium) == (2 if quality >= 85 else 1)
        decoded = decode_frame(result.data)
        assert all(np.array_equal(a, b) for a, b in zip(decoded.planes, result.reconstruction.planes))
    sizes, psnrs = zip(*points)
    assert list(sizes) == sorted(sizes) and len(set(sizes)) == 3
    assert list(psnrs) == sorted(psnrs)


DECODE_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    import torch
    torch.set_num_threads(int(sys.argv[2]))
    from lotto_media.codec import decode_frame
    frame = decode_frame(open(sys.argv[1], "rb").read())
    print(hashlib.sha256(b"".join(p.tobytes() for p in frame.planes)).hexdigest())
    """
)


def test_decoding_is_identical_across_threads_and_simd_paths(encoded, tmp_path: Path):
    _, result = encoded
    path = tmp_path / "x.lotto"
    path.write_bytes(result.data)
    expected = hashlib.sha256(b"".join(p.tobytes() for p in result.reconstruction.planes)).hexdigest()
    from test_random_weights import _disableable_features  # SIMD features numpy lets us switch off

    runs = [({"OMP_NUM_THREADS": "1"}, "1"), ({"OMP_NUM_THREADS": "2"}, "2")]
    features = ",".join(_disableable_features())
    if features:
        runs.append(({"OMP_NUM_THREADS": "1", "NPY_DISABLE_CPU_FEATURES": features}, "1"))
    for extra_env, threads in runs:
        env = {**os.environ, **extra_env}
        out = subprocess.run(
            [sys.executable, "-c", DECODE_SCRIPT, str(path), threads], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected, extra_env


def test_polyphase_upsampler_equals_the_transposed_convolution_of_the_spec():
    """reconstruct evaluates the 2x upsampler as four interleaved 4x4 filters; FORMAT.md defines it
    as a stride-2 transposed convolution with edge padding 2 and padding 7."""
    import torch.nn.functional as F

    from lotto_media.model import reconstruct
    from lotto_media.model.latents import UPSAMPLE_CROP, UPSAMPLE_PAD, replicate_pad

    g = torch.Generator().manual_seed(0)
    for h, w, out_h, out_w in [(5, 7, 10, 14), (5, 7, 9, 13), (1, 1, 1, 2), (3, 2, 6, 3)]:
        u = torch.randint(-5000, 5000, (3, h, w), generator=g).double()
        kernel = torch.randint(-300, 300, (8, 8), generator=g).double()
        padded = replicate_pad(u, UPSAMPLE_PAD).unsqueeze(1)
        direct = F.conv_transpose2d(padded, kernel.view(1, 1, 8, 8), stride=2, padding=UPSAMPLE_CROP)
        expected = torch.floor(direct[:, 0, :out_h, :out_w] * 2.0**-8 + 0.5)
        assert torch.equal(reconstruct._upsample(u, kernel, 8, (out_h, out_w)), expected)
        # row by row band, as the synthesis runs beside the latent decoder: the same rows
        for cuts in ([0, out_h], [0, 1, out_h], [0, out_h // 2, out_h // 2 + 1, out_h], list(range(out_h + 1))):
            banded = torch.full((3, out_h, out_w), float("nan"), dtype=torch.float64)
            for lo, hi in zip(cuts[:-1], cuts[1:]):
                reconstruct._upsample_into(banded, u, kernel, 8, (lo, hi))
            assert torch.equal(banded, expected), cuts


def test_residual_3x3_block_equals_the_direct_convolution_of_the_spec():
    """reconstruct's residual blocks run as one compiled loop; FORMAT.md 3.4 defines them as
    x + act(rshift(conv3x3(x) + b 2^S, frac)), bounded, the convolution with repeated-edge padding."""
    import torch.nn.functional as F

    from lotto_media.model import reconstruct
    from lotto_media.model.latents import replicate_pad

    g = torch.Generator().manual_seed(1)
    one = 4096.0
    for h, w in [(9, 7), (1, 1), (13, 16)]:
        img = torch.randint(-(2**20), 2**20, (3, h, w), generator=g).double()
        weight = torch.randint(-3000, 3000, (3, 3, 3, 3), generator=g).double()
        bias = torch.randint(-3000, 3000, (3,), generator=g).double()
        acc = F.conv2d(replicate_pad(img, 1).unsqueeze(0), weight, bias * one)[0]
        a = torch.floor(acc * 2.0**-9 + 0.5)
        act = torch.floor(a * torch.clamp(a + 2 * one, 0, 4 * one) / (4 * one) + 0.5).clamp(-(2**26), 2**26)
        expected = (img + act).clamp(-(2**26), 2**26)
        out = torch.empty_like(img)
        reconstruct._residual_conv3x3_into(out, img, weight, bias, 9)
        assert torch.equal(out, expected)
        for cuts in ([0, 1, h], [0, h // 2, h], list(range(h + 1))):
            banded = torch.full_like(img, float("nan"))
            for lo, hi in zip(cuts[:-1], cuts[1:]):
                reconstruct._residual_conv3x3_into(banded, img, weight, bias, 9, (lo, hi))
            assert torch.equal(banded, expected), cuts


def test_the_second_full_resolution_grid_is_the_modulations_last_input():
    """A quality-90 picture at medium carries a second full-resolution latent grid (docs/FORMAT.md 3.3).
    Decoding it with that grid replaced by a copy of the finest level, whose modulation weights are
    a (first column) and b (last column), must give the same pixels as decoding the pyramid alone
    with a + b in the first column: the grid enters the modulation network as its last input,
    at full resolution and in the same fixed point as the pyramid, not upsampled."""
    result = encode_frame(Frame.from_array(photo(24, 16)), EncodeOptions(preset="medium", steps=40, quality=90))
    container = read_container(result.data)
    config = container.header.model
    assert config.fine_grids == 2
    shdr = result.data.index(b"SHDR") + 8  # the payload, after type and length (FORMAT.md Part 1 §3)
    assert result.data[shdr + 1 : shdr + 3] == b"\x00\x01"  # flags: bit 0
    group = bitstream.unpack_group(container.groups[0], config)
    config = config.with_arm_hidden(group.arm_hidden)
    payload = bitstream.unpack_frame(container.frames[0].payload)
    mask = entropy.decode_mask(payload.mask, config.n_random_weights(), config.n_kept())
    latents = entropy.decode_latents(payload.latents, config.grid_shapes(16, 24), group.nets.integer_arm())
    assert len(latents) == config.n_levels + 1 and latents[-1].shape == latents[0].shape == (16, 24)
    assert np.any(latents[-1] != 0)  # the search used it
    weights = random_synthesis_weights(config)
    n = config.n_levels
    planes = reconstruct(latents, group.nets, weights, mask, 16, 24, n_levels=n)
    assert all(np.array_equal(a, b) for a, b in zip(planes, result.reconstruction.planes))

    modulation = group.nets.modulation
    fc0 = modulation.tensors[0]
    assert fc0.shape[1] == n + 1
    merged = fc0[:, :n].copy()
    merged[:, 0] += fc0[:, n]
    single = replace(group.nets, modulation=replace(modulation, tensors=(merged, *modulation.tensors[1:])))
    copied = reconstruct([*latents[:n], latents[0]], group.nets, weights, mask, 16, 24, n_levels=n)
    alone = reconstruct(latents[:n], single, weights, mask, 16, 24, n_levels=n)
    assert all(np.array_equal(a, b) for a, b in zip(copied, alone))
    # and the grid matters: without it the picture changes
    dropped = reconstruct([*latents[:n], np.zeros_like(latents[0])], group.nets, weights, mask, 16, 24, n_levels=n)
    assert any(not np.array_equal(a, b) for a, b in zip(dropped, planes))


def test_a_picture_searched_with_a_finer_latent_step_decodes_to_what_the_search_reached(monkeypatch):
    """At medium and quality 90 the search scales the latents by its step (below 1) and folds the
    step into the modulation network before the networks are quantised: the decoded picture is
    the one the search's last hard-rounded steps measured (within what quantising the networks
    costs), not the picture of latents four times too strong."""
    options = EncodeOptions(preset="medium", steps=60, quality=90)
    step = options.schedule().latent_step_for(options.resolved_lmbda())
    assert step < 1.0
    folded = []
    fold = FrameModel.fold_latent_step
    monkeypatch.setattr(FrameModel, "fold_latent_step", lambda self: (folded.append(self.latent_step), fold(self)))
    hard = []
    source = photo(24, 16)
    result = encode_frame(Frame.from_array(source), options,
                          progress=lambda p: hard.append(p.psnr) if p.phase == "hard" else None)
    assert folded == [step]  # the search ran with the step and folded it once
    assert hard and abs(result.info.psnr - max(hard)) < 1.0, (result.info.psnr, hard)
    assert psnr_rgb(source, decode_frame(result.data).to_array()) == pytest.approx(result.info.psnr, abs=0.01)
