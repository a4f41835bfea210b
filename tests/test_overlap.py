"""The decoder's two-core path (lotto_media.stream.overlap): the synthesis of the rows whose latents
are decoded runs while the rows below decode. Whatever the bands and the thread count, the pixels
must be those of decoding first and synthesising after; a damaged stream must fail with the same
error, leave no thread behind and leave torch's thread count as it was."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from lotto_media import FormatError, Frame
from lotto_media.codec import EncodeOptions, decode_frame, encode_frame, torch_threads
from lotto_media.coding import bitstream, entropy
from lotto_media.container import read_container
from lotto_media.model.random_weights import random_synthesis_weights
from lotto_media.model.reconstruct import Synthesis, synthesis_output, to_samples
from lotto_media.stream import overlap
from test_codec import photo

HEIGHT, WIDTH = 40, 64  # 220 wavefronts: several reports of the latent decoder


@pytest.fixture(scope="module")
def coded():
    """A quality-90 picture at `fast` (a second full-resolution grid) and its parts."""
    result = encode_frame(Frame.from_array(photo(WIDTH, HEIGHT)), EncodeOptions(preset="fast", steps=20, quality=90))
    container = read_container(result.data)
    config = container.header.model
    group = bitstream.unpack_group(container.groups[0], config)
    config = config.with_arm_hidden(group.arm_hidden)
    payload = bitstream.unpack_frame(container.frames[0].payload)
    mask = entropy.decode_mask(payload.mask, config.n_random_weights(), config.n_kept())
    assert config.fine_grids == 2
    return result, config, group.nets, payload.latents, mask, random_synthesis_weights(config)


def _decode(coded, data: bytes, threads: int, made: list[int] | None = None) -> list[np.ndarray]:
    _, config, nets, _, mask, weights = coded
    decoding = entropy.LatentDecoding(data, config.grid_shapes(HEIGHT, WIDTH), nets.integer_arm())

    def make_synthesis() -> Synthesis:
        if made is not None:
            made.append(decoding.fronts_done)
        return Synthesis(decoding.views(), nets, weights, mask, HEIGHT, WIDTH, n_levels=config.n_levels)

    with torch_threads(threads):
        synthesis = overlap.decode_picture(decoding, make_synthesis)
    return to_samples(synthesis.planes(), 8)


@pytest.mark.parametrize("height,width,chroma_420", [(40, 64, False), (33, 18, True), (1, 9, False), (7, 5, True)])
def test_the_synthesis_in_any_bands_equals_the_whole_picture(coded, height: int, width: int, chroma_420: bool):
    """Rows arrive per grid in uneven steps that need not follow the wavefronts: each stage makes
    what its inputs determine, and the result is the whole-picture evaluation's, integer for
    integer. Rows not yet ready hold extreme values, as a decoder's buffer may: a stage that read
    one would change the picture."""
    _, config, nets, _, mask, weights = coded
    rng = np.random.default_rng(height * 100 + width)
    shapes = config.grid_shapes(height, width)
    latents = [np.clip(np.round(rng.laplace(0, 3.0, s)), -64, 63).astype(np.int64) for s in shapes]
    whole = synthesis_output(latents, nets, weights, mask, height, width, chroma_420, n_levels=config.n_levels)
    arriving = [np.where(rng.random(s) < 0.5, 63, -64) for s in shapes]
    synthesis = Synthesis(arriving, nets, weights, mask, height, width, chroma_420, n_levels=config.n_levels)
    ready = [0] * len(shapes)
    partial = []
    while ready != [h for h, _ in shapes]:
        ready = [min(h, r + int(rng.integers(0, 4))) for r, (h, _) in zip(ready, shapes)]
        for grid, latent, rows in zip(arriving, latents, ready):
            grid[:rows] = latent[:rows]
        synthesis.advance(ready)
        partial.append(synthesis.rows_done)
    assert partial == sorted(partial) and partial[-1] == height
    if height > 8:
        assert any(0 < rows < height for rows in partial)  # bands, not one pass at the end
    assert all(torch.equal(a, b) for a, b in zip(synthesis.planes(), whole))


def test_two_cores_decode_the_encoders_reconstruction_in_bands(coded, monkeypatch):
    result = coded[0]
    advances = []
    advance, decode_to = Synthesis.advance, entropy.LatentDecoding.decode_to
    monkeypatch.setattr(Synthesis, "advance", lambda self, rows: (advances.append(list(rows)), advance(self, rows)))
    # a tiny picture decodes faster than the synthesis keeps up: slowed down, every band shows
    monkeypatch.setattr(entropy.LatentDecoding, "decode_to",
                        lambda self, stop: (decode_to(self, stop), time.sleep(0.05)) and None)
    for threads, bands in ((2, True), (1, False)):
        advances.clear()
        with torch_threads(threads):
            decoded = decode_frame(result.data)
        assert all(np.array_equal(a, b) for a, b in zip(decoded.planes, result.reconstruction.planes))
        # two cores: the synthesis starts on partly decoded latents; one core: one pass at the end
        assert (len(advances) >= 2 and advances[0][0] < HEIGHT) == bands, advances
        assert advances[-1][0] == HEIGHT


def test_the_synthesis_shares_its_tiles_out_to_torchs_threads_with_the_same_pixels(coded, monkeypatch):
    """With two or more torch threads the synthesis runs runs of tiles on threads of their own:
    in tiles of 100 pixels (26 of them, the last one short) the pixels are those of one thread and
    the encoder's, torch's thread count comes back, and a failing tile fails the call with its own
    error once every thread has stopped."""
    from lotto_media.model import pixel_kernels, reconstruct

    result, config, nets, latents, mask, weights = coded
    decoding = entropy.LatentDecoding(latents, config.grid_shapes(HEIGHT, WIDTH), nets.integer_arm())
    decoding.decode_to(decoding.n_fronts)
    monkeypatch.setattr(reconstruct, "TILE", 100)
    threads_seen = []
    layers_of_tile = Synthesis._layers_of_tile
    monkeypatch.setattr(Synthesis, "_layers_of_tile", lambda self, tile, features: (
        threads_seen.append(threading.current_thread().name), layers_of_tile(self, tile, features)) and None)
    planes = {}
    for threads in (1, 2):
        with torch_threads(threads):
            synthesis = Synthesis(decoding.views(), nets, weights, mask, HEIGHT, WIDTH, n_levels=config.n_levels)
            synthesis.advance(decoding.rows_ready())
            assert torch.get_num_threads() == threads
        planes[threads] = to_samples(synthesis.planes(), 8)
    assert len(threads_seen) == 2 * 26 and threads_seen.count("lotto-synthesis") == 13
    assert all(np.array_equal(a, b) for a, b in zip(planes[2], planes[1]))
    assert all(np.array_equal(a, b) for a, b in zip(planes[2], result.reconstruction.planes))

    coordinate_layer_into = pixel_kernels.coordinate_layer_into
    # the calling thread makes the first 13 tiles, a helper the last 13
    for failing_tile, thread in ((20, "lotto-synthesis"), (5, "MainThread")):
        def failing(out, weight, xs, ys, first, failing_tile=failing_tile):
            if first == failing_tile * 100:
                assert threading.current_thread().name == thread
                raise MemoryError("a tile's buffers")
            coordinate_layer_into(out, weight, xs, ys, first)

        monkeypatch.setattr(pixel_kernels, "coordinate_layer_into", failing)
        with torch_threads(2):
            with pytest.raises(MemoryError, match="a tile's buffers"):
                Synthesis(decoding.views(), nets, weights, mask, HEIGHT, WIDTH, n_levels=config.n_levels).advance(
                    decoding.rows_ready())
            assert torch.get_num_threads() == 2
        assert not any(t.name == "lotto-synthesis" for t in threading.enumerate())


def test_a_damaged_stream_fails_alike_on_one_and_two_cores(coded, monkeypatch):
    result, _, _, data, _, _ = coded
    main_len = int.from_bytes(data[:4], "little")
    main, escape = data[4 : 4 + main_len], data[4 + main_len :]
    damaged = bytearray(main)
    damaged[len(main) // 2] ^= 0x5A
    cases = [
        main_len.to_bytes(4, "little") + bytes(damaged) + escape,
        (main_len - 4).to_bytes(4, "little") + main[:-4] + escape,  # ends early
        (main_len + 4).to_bytes(4, "little") + main + bytes(4) + escape,  # a word after the end
    ]
    assert all(np.array_equal(a, b) for a, b in zip(_decode(coded, data, 2), result.reconstruction.planes))
    threads_before = torch.get_num_threads()
    for case in cases:
        messages = []
        for threads in (1, 2):
            with pytest.raises(FormatError, match=r"^latent stream") as error:
                _decode(coded, case, threads)
            messages.append(str(error.value))
        assert messages[0] == messages[1]
        assert torch.get_num_threads() == threads_before
        assert not any(t.name == "lotto-latents" for t in threading.enumerate())
    # the damage is what is reported, not what the synthesis met meanwhile
    _, config, nets, _, mask, weights = coded

    # the first band decodes at once, the later ones once the synthesis is asked for: it is asked
    # for before the decoder meets the damage (past the first band), and fails after it has
    # (waiting for the damage itself: a fixed delay would race the decoder, whose band the damage
    # shows in depends on the coded bytes)
    decode_to, finish = entropy.LatentDecoding.decode_to, entropy.LatentDecoding.finish
    damage_met = threading.Event()

    def signalling_damage(check):
        try:
            check()
        except FormatError:
            damage_met.set()
            raise

    synthesis_asked = threading.Event()

    def paused_after_first_band(self: entropy.LatentDecoding, stop: int) -> None:
        if self.fronts_done:
            assert synthesis_asked.wait(timeout=30)
        signalling_damage(lambda: decode_to(self, stop))

    monkeypatch.setattr(entropy.LatentDecoding, "decode_to", paused_after_first_band)
    monkeypatch.setattr(entropy.LatentDecoding, "finish", lambda self: signalling_damage(lambda: finish(self)))

    def failing_synthesis() -> Synthesis:
        synthesis_asked.set()
        assert damage_met.wait(timeout=30)
        raise MemoryError("the synthesis' arrays")

    decoding = entropy.LatentDecoding(cases[0], config.grid_shapes(HEIGHT, WIDTH), nets.integer_arm())
    with torch_threads(2), pytest.raises(FormatError, match=r"^latent stream") as error:
        overlap.decode_picture(decoding, failing_synthesis)
    assert isinstance(error.value.__cause__, MemoryError)
    # data that runs out in the first band: refused before the synthesis' picture-sized arrays exist
    made = []
    with pytest.raises(FormatError, match=r"^latent stream: data ends early"):
        _decode(coded, (8).to_bytes(4, "little") + main[:8] + escape, 2, made)
    assert made == []
    _decode(coded, data, 2, made)
    assert len(made) == 1 and made[0] >= overlap.FRONTS_PER_REPORT
