"""Image reading/writing through PyAV: exact pixels, warned conversions, one-line errors."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES_DIR, require_media, save_png
from lotto_media.errors import InputError, UnsupportedError
from lotto_media.frame import Frame
from lotto_media.plugins.image_io import encode_png_bytes, read_image, read_image_bytes, write_image

LOGGER = "lotto_media.plugins.image_io"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("kind", ["rgb", "gray"])
def test_png_round_trip_at_odd_size_is_exact(tmp_path, odd_rgb, odd_gray, kind, caplog):
    array = odd_rgb if kind == "rgb" else odd_gray
    source = save_png(array, tmp_path / "in.png")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        frame = read_image(source)
    assert frame.pix_fmt == ("rgb24" if kind == "rgb" else "gray")
    assert (frame.width, frame.height) == (37, 23)
    np.testing.assert_array_equal(frame.to_array(), array)
    assert _warnings(caplog) == []  # nothing was converted

    out = tmp_path / "out.png"
    write_image(frame, out)
    # Read back with Pillow, independent of our reader.
    with Image.open(out) as written:
        assert written.mode == ("RGB" if kind == "rgb" else "L")
        np.testing.assert_array_equal(np.asarray(written), array)
    assert encode_png_bytes(frame) == out.read_bytes()


def test_read_image_bytes_matches_read_image(tmp_path, odd_rgb):
    source = save_png(odd_rgb, tmp_path / "in.png")
    from_bytes = read_image_bytes(source.read_bytes(), "<stdin>")
    np.testing.assert_array_equal(from_bytes.to_array(), read_image(source).to_array())


def test_rgba_png_drops_alpha_with_a_warning_and_exact_colours(tmp_path, odd_rgb, caplog):
    alpha = np.arange(odd_rgb.shape[0] * odd_rgb.shape[1], dtype=np.uint8).reshape(odd_rgb.shape[:2])
    rgba = np.dstack([odd_rgb, alpha])
    source = save_png(rgba, tmp_path / "alpha.png")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        frame = read_image(source)
    assert frame.pix_fmt == "rgb24"
    np.testing.assert_array_equal(frame.to_array(), odd_rgb)
    assert any("alpha channel dropped" in m and "alpha.png" in m for m in _warnings(caplog))


def test_gray_with_alpha_reads_as_gray(tmp_path, odd_gray, caplog):
    source = tmp_path / "la.png"
    Image.fromarray(np.dstack([odd_gray, 255 - odd_gray]), mode="LA").save(source)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        frame = read_image(source)
    assert frame.pix_fmt == "gray"
    np.testing.assert_array_equal(frame.to_array(), odd_gray)
    assert any("alpha channel dropped" in m for m in _warnings(caplog))


def test_16_bit_gray_png_rounds_to_8_bits_with_a_warning(tmp_path, caplog):
    rng = np.random.default_rng(3)
    deep = rng.integers(0, 65536, (23, 37), dtype=np.uint16)
    deep[0, :4] = [0, 128, 129, 65535]  # rounding edges: 128/257 -> 0, 129/257 -> 1
    source = save_png(deep, tmp_path / "deep.png")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        frame = read_image(source)
    assert frame.pix_fmt == "gray"
    expected = np.round(deep / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(frame.to_array(), expected)
    assert list(frame.to_array()[0, :4]) == [0, 0, 1, 255]
    assert any("rounded to 8 bits" in m for m in _warnings(caplog))


def test_16_bit_rgba_png_rounds_and_drops_alpha(tmp_path, caplog):
    rng = np.random.default_rng(4)
    deep = rng.integers(0, 65536, (9, 11, 4), dtype=np.uint16)
    # Pillow cannot write 16-bit RGB(A) PNG; PyAV's PNG encoder can.
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = 11, 9, "rgba64be"
    picture = av.VideoFrame.from_ndarray(deep, format="rgba64le").reformat(format="rgba64be")
    source = tmp_path / "deep_rgba.png"
    source.write_bytes(b"".join(bytes(p) for p in codec.encode(picture) + codec.encode(None)))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        frame = read_image(source)
    np.testing.assert_array_equal(frame.to_array(), np.round(deep[:, :, :3] / 257.0).astype(np.uint8))
    messages = _warnings(caplog)
    assert any("rounded to 8 bits" in m for m in messages)
    assert any("alpha channel dropped" in m for m in messages)


def test_palette_png_becomes_rgb24(tmp_path, caplog):
    picture = Image.new("P", (5, 3))
    picture.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    picture.putdata([0, 1] * 7 + [0])
    opaque, transparent = tmp_path / "pal.png", tmp_path / "pal_t.png"
    picture.save(opaque)
    picture.save(transparent, transparency=1)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        frame = read_image(opaque)
    assert frame.pix_fmt == "rgb24"
    np.testing.assert_array_equal(frame.to_array(), np.asarray(picture.convert("RGB")))
    assert _warnings(caplog) == []  # palette expansion loses nothing
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        read_image(transparent)
    assert any("alpha channel dropped" in m for m in _warnings(caplog))


def test_jpeg_is_converted_to_rgb_with_a_warning(tmp_path, odd_rgb, caplog):
    source = tmp_path / "photo.jpg"
    Image.fromarray(odd_rgb).save(source, quality=95)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        frame = read_image(source)
    assert frame.pix_fmt == "rgb24" and (frame.width, frame.height) == (37, 23)
    assert np.abs(frame.to_array().astype(int) - odd_rgb).mean() < 8  # close, not exact
    assert any("converted to rgb24" in m for m in _warnings(caplog))


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated", "directory"])
def test_unreadable_input_raises_input_error_naming_the_file(tmp_path, odd_rgb, case):
    path = tmp_path / f"{case}.png"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not a picture\n")
    elif case == "truncated":
        path.write_bytes(save_png(odd_rgb, tmp_path / "whole.png").read_bytes()[:200])
    elif case == "directory":
        path.mkdir()
    with pytest.raises(InputError) as caught:
        read_image(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message


@pytest.mark.parametrize("data", [b"", b"GIF89a garbage", b"\x89PNG\r\n\x1a\n"])
def test_unreadable_bytes_raise_input_error_naming_the_source(data):
    with pytest.raises(InputError, match=r"^<stdin>: "):
        read_image_bytes(data, "<stdin>")


def test_png_writer_refuses_formats_it_cannot_hold():
    frame = Frame([np.zeros((4, 4), np.uint8), np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8)],
                  "yuv420p")
    with pytest.raises(UnsupportedError):
        encode_png_bytes(frame)


def test_bundled_sample_is_the_documented_picture():
    frame = read_image(SAMPLES_DIR / "kodim23_192x128.png")
    assert (frame.pix_fmt, frame.width, frame.height) == ("rgb24", 192, 128)
    assert (SAMPLES_DIR / "LICENSE.md").read_text().count("kodim23") >= 1


def test_kodak_picture_reads_exactly_like_pillow():
    source = require_media("images/kodak/kodim23.png")
    with Image.open(source) as reference:
        np.testing.assert_array_equal(read_image(source).to_array(), np.asarray(reference.convert("RGB")))


def test_read_image_accepts_str_paths(tmp_path: Path, odd_gray):
    source = save_png(odd_gray, tmp_path / "g.png")
    assert read_image(str(source)).pix_fmt == "gray"
