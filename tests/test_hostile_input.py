"""Inputs that are not what a command expects, and the defects a hostile-user test found.

Through the command line (``cli.main``), every one of them is exit status 1 and one line
``lotto-media: error: NAME: problem`` on stderr, never a traceback: text files, empty files,
audio-only files, folders without pictures, unreadable paths, pictures larger than the format
holds, and .lotto files whose header claims more pixels than the decoder admits. Then the fixed
defects, each pinned: a tiny file claiming 16384x4096 is refused at once (and, with the limit
lifted, still fails fast and small); an emptied latent stream behind a recomputed CRC is an
error; huge numbers in the metadata are shown safely by ``info``; a failed write names the
output the user asked for, not its temporary file.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from lotto_media.codec import decode_frame, inspect
from lotto_media.coding.bitstream import unpack_frame
from lotto_media.coding.entropy import decode_latents, encode_latents
from lotto_media.container import DEFAULT_MAX_PIXELS, MAX_PIXELS
from lotto_media.errors import FormatError, LimitError, LottoError
from lotto_media.model.arm import IntegerArm
from lotto_media.model.latents import level_shapes
from lotto_media.pipelines import cli, fileio
from lotto_media.stream import LottoReader

GOLDEN = Path(__file__).parent / "golden"
SIGNATURE = b"\x8bLOTTO\r\n"


def run(capsys, *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_clean_failure(code: int, err: str, name: str, *fragments: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"lotto-media: error: {name}: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --------------------------------------------------------------------------- .lotto surgery


def chunks_of(data: bytes) -> list[list]:
    out, position = [], len(SIGNATURE)
    while position < len(data):
        kind, length = struct.unpack_from(">4sI", data, position)
        out.append([kind, bytearray(data[position + 8 : position + 8 + length])])
        position += 12 + length
    return out


def file_of(chunks: list[list]) -> bytes:
    """The chunks with their CRCs recomputed (so that a change reaches the parsers); without the
    index, whose offsets a changed length would contradict."""
    body = b"".join(struct.pack(">4sI", kind, len(payload)) + bytes(payload)
                    + struct.pack(">I", zlib.crc32(payload, zlib.crc32(kind)))
                    for kind, payload in chunks if kind != b"indx")
    return SIGNATURE + body


def with_size(name: str, width: int, height: int) -> bytes:
    """A golden file whose sequence header claims another picture size."""
    chunks = chunks_of((GOLDEN / name).read_bytes())
    struct.pack_into(">II", chunks[0][1], 3, width, height)
    return file_of(chunks)


# --------------------------------------------------------------------------- the pixel limit


def test_a_tiny_file_claiming_16384x4096_is_refused_at_once(capsys, tmp_path):
    """A file of under 1 KB whose header claims 16384x4096 is refused before any picture-sized
    work: decoding it would cost gigabytes and minutes."""
    data = with_size("pan_gray_1f_v2.lotto", 16384, 4096)
    assert len(data) < 1000 and 16384 * 4096 > DEFAULT_MAX_PIXELS
    start = time.perf_counter()
    for decode in (lambda: decode_frame(data, "bomb.lotto"), lambda: list(LottoReader(data, "bomb.lotto"))):
        with pytest.raises(LimitError, match=r"^bomb\.lotto: picture 16384x4096 \(67108864 pixels\) exceeds"):
            decode()
    assert time.perf_counter() - start < 1
    path = tmp_path / "bomb.lotto"
    path.write_bytes(data)
    for argv in (["decode", path, "-o", tmp_path / "out.png"], ["decode", path, "-o", tmp_path / "out.y4m"],
                 ["info", path]):
        assert_clean_failure(*run(capsys, *argv)[::2], str(path), "--max-pixels")
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.y4m").exists()


def test_with_the_limit_lifted_a_lying_header_still_fails_fast_and_small():
    """A range coder can claim a huge picture in a few bytes; its data runs out at once, and the
    decoder stops there instead of decoding 89 million latents from zeros."""
    data = with_size("pan_gray_1f_v2.lotto", 16384, 4096)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(FormatError, match=r"^bomb\.lotto: frame at pts \d+: latent stream: .*data ends early"):
            decode_frame(data, "bomb.lotto", max_pixels=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 10
    assert peak < 4 * MAX_PIXELS  # the one-byte-per-latent buffer, not 3.8 GB


def test_the_default_limit_admits_8k_and_refuses_the_largest_pictures():
    assert 7680 * 4320 <= 8192 * 4320 <= DEFAULT_MAX_PIXELS < 16384 * 4096 <= MAX_PIXELS
    eight_k = with_size("pan_gray_1f_v2.lotto", 7680, 4320)
    with pytest.raises(FormatError, match="data ends early"):  # admitted; its data is simply too short
        decode_frame(eight_k, "8k.lotto")
    with pytest.raises(LimitError, match="8k.lotto: .* exceeds the decoder's limit of 1000000 pixels"):
        decode_frame(eight_k, "8k.lotto", max_pixels=1_000_000)
    assert inspect(eight_k, "8k.lotto").width == 7680  # inspecting decodes nothing: no limit unless asked
    with pytest.raises(LimitError):
        inspect(eight_k, "8k.lotto", max_pixels=1_000_000)


def test_max_pixels_on_the_command_line(capsys, tmp_path):
    path = tmp_path / "gray.lotto"
    path.write_bytes((GOLDEN / "pan_gray_1f_v2.lotto").read_bytes())  # 14x9 = 126 pixels
    assert_clean_failure(*run(capsys, "decode", path, "-o", tmp_path / "a.png", "--max-pixels", 125)[::2],
                         str(path), "exceeds the decoder's limit of 125 pixels")
    assert_clean_failure(*run(capsys, "info", path, "--max-pixels", 125)[::2], str(path), "125 pixels")
    assert run(capsys, "decode", path, "-o", tmp_path / "a.png", "--max-pixels", 126)[0] == 0
    assert run(capsys, "decode", path, "-o", tmp_path / "b.png", "--max-pixels", 0)[0] == 0  # 0: no limit
    assert run(capsys, "info", path, "--max-pixels", 126)[0] == 0
    code, _, err = run(capsys, "decode", path, "-o", tmp_path / "c.png", "--max-pixels", -1)
    assert code == 2 and "--max-pixels" in err
    assert "--max-pixels" in run(capsys, "decode", "--help")[1] and "--max-pixels" in run(capsys, "info", "--help")[1]


# --------------------------------------------------------------------------- entropy streams


def _latent_code_replaced(name: str, code: bytes) -> bytes:
    """The golden file with its first frame's latent code replaced, CRCs recomputed."""
    chunks = chunks_of((GOLDEN / name).read_bytes())
    version = chunks[0][1][0]
    prefix = 12 if version == 1 else 16
    index = next(i for i, (kind, _) in enumerate(chunks) if kind == b"FRME")
    payload = bytes(chunks[index][1])
    latents = unpack_frame(payload[prefix:], version).latents
    chunks[index][1] = bytearray(payload[: len(payload) - len(latents)] + code)
    return file_of(chunks)


@pytest.mark.parametrize("name", ["kodim23_24x16_v1.lotto", "pan_gray_1f_v2.lotto", "pan_yuv420p_inter_4f_v2.lotto"])
@pytest.mark.parametrize("code, problem", [
    (b"\0\0\0\0", "the main stream is empty"),            # main stream and escapes emptied
    (b"\4\0\0\0" + bytes(4), "data ends early"),          # one zero word: constriction shifts in zeros
    (b"\4\0\0\0\xff\xff\xff\xff", "data ends early"),      # one word of anything
])
def test_an_emptied_latent_stream_behind_a_good_crc_is_an_error(name, code, problem):
    """A latent stream emptied or cut behind a good CRC is an error, in version 1 files too
    (constriction's decoder alone does not notice the end of its data)."""
    data = _latent_code_replaced(name, code)
    with pytest.raises(FormatError, match=rf"^damaged\.lotto: frame at pts -?\d+: latent stream: .*"):
        try:
            list(LottoReader(data, "damaged.lotto"))
        except FormatError as exc:
            assert problem in str(exc)
            raise


def test_latent_decoding_memory_is_a_few_bytes_per_pixel():
    """The wavefront walk goes piece by piece: no (latents x 24) index array for the picture."""
    rng = np.random.default_rng(0)
    w = lambda *shape: np.round(rng.normal(0, 0.3, shape) * 256).astype(np.float64)  # noqa: E731
    arm = IntegerArm(w(16, 24), w(16), w(16, 16), w(16), w(2, 16), np.array([0.0, -2.0 * 256]), 8)
    shapes = level_shapes(512, 512, 7)
    latents = [np.zeros(s, dtype=np.int64) for s in shapes]
    data = encode_latents(latents, arm)
    tracemalloc.start()
    try:
        decoded = decode_latents(data, shapes, arm)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert all(np.array_equal(a, b) for a, b in zip(decoded, latents))
    pixels = 512 * 512
    # the int64 result (10.7 bytes a pixel) and the one-byte buffer, plus pieces of a few MB
    assert peak < 14 * pixels + 8_000_000, peak / pixels


# --------------------------------------------------------------------------- metadata and writes


@pytest.mark.parametrize("meta", [
    '{"frames":[{"psnr":%s,"steps":%s,"psnr_planes":{"y":%s}}]}' % ("9" * 400, "9" * 400, "9" * 400),
    '{"frames":[{"psnr":1e999,"steps":1e308}]}',
    '{"frames":[{"psnr":%s}]}' % ("9" * 5000),
])
def test_huge_numbers_in_the_metadata_are_shown_safely(capsys, tmp_path, meta):
    chunks = chunks_of((GOLDEN / "pan_gray_1f_v2.lotto").read_bytes())
    for chunk in chunks:
        if chunk[0] == b"meta":
            chunk[1] = bytearray(meta.encode())
    path = tmp_path / "meta.lotto"
    path.write_bytes(file_of(chunks))
    code, out, err = run(capsys, "info", path)
    assert code == 0 and "Traceback" not in err and "dimensions" in out
    code, out, err = run(capsys, "info", path, "--json")
    assert code == 0 and json.loads(out)["width"] == 14


def test_a_failed_write_names_the_output_not_its_temporary_file(capsys, tmp_path, monkeypatch):
    source = tmp_path / "gray.lotto"
    source.write_bytes((GOLDEN / "pan_gray_1f_v2.lotto").read_bytes())
    output = tmp_path / "out.png"

    def full_device(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src), None, str(dst))

    monkeypatch.setattr(fileio.os, "replace", full_device)
    code, _, err = run(capsys, "decode", source, "-o", output)
    assert_clean_failure(code, err, str(output), "No space left on device")
    assert ".part" not in err
    assert not list(tmp_path.glob(".*part")) and not output.exists()
    monkeypatch.undo()

    def fsync_fails(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(fileio.os, "fsync", fsync_fails)
    with pytest.raises(fileio.OutputError, match=rf"^{output}: write failed"):
        fileio.write_output(output, b"data", overwrite=False)
    assert not list(tmp_path.glob(".*part")) and not output.exists()


# --------------------------------------------------------------------------- inputs that are no media


def _audio_only(path: Path, codec: str) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=48000)
        stream.layout = "stereo"
        for index in range(4):
            frame = av.AudioFrame(format=stream.codec_context.format.name, layout="stereo", samples=1024)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate, frame.pts = 48000, index * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A valid 8-bit gray PNG of zeros: a few KB that decode to width x height pixels."""
    packer = zlib.compressobj(9)
    row = bytes(1 + width)  # filter byte 0, then the samples
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def hostile_inputs(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """name -> (path, a fragment every command's message must hold)."""
    root = tmp_path_factory.mktemp("hostile")
    text = root / "notes.txt"
    text.write_text("these are not pictures\n" * 20)
    empty = root / "empty.png"
    empty.write_bytes(b"")
    folder = root / "folder"
    folder.mkdir()
    (folder / "readme.txt").write_text("no pictures here\n")
    return {
        "text": (text, ""),
        "empty": (empty, "empty"),
        "aac": (_audio_only(root / "silence.m4a", "aac"), ""),
        "flac": (_audio_only(root / "silence.flac", "flac"), ""),
        "folder": (folder, ""),
        "missing": (root / "missing.png", ""),
    }


COMMANDS = ["encode", "transcode", "decode", "info"]


def _argv(command: str, path: Path, tmp_path: Path) -> list[object]:
    if command in ("encode", "transcode"):
        return [command, path, "-o", tmp_path / "out.lotto", "--preset", "ultrafast", "--steps", "2"]
    if command == "decode":
        return [command, path, "-o", tmp_path / "out.png"]
    return [command, path]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["text", "empty", "aac", "flac", "folder", "missing"])
def test_non_media_inputs_fail_in_one_line(capsys, tmp_path, hostile_inputs, command, kind):
    path, fragment = hostile_inputs[kind]
    code, out, err = run(capsys, *_argv(command, path, tmp_path))
    assert_clean_failure(code, err, str(path), fragment)
    assert out == "" and not (tmp_path / "out.lotto").exists() and not (tmp_path / "out.png").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files whatever their mode")
@pytest.mark.parametrize("command", COMMANDS)
def test_an_unreadable_input_fails_in_one_line(capsys, tmp_path, command):
    path = tmp_path / "locked.png"
    path.write_bytes((GOLDEN / "pan_gray_1f_v2.lotto").read_bytes())
    path.chmod(0)
    try:
        assert_clean_failure(*run(capsys, *_argv(command, path, tmp_path))[::2], str(path), "Permission denied")
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("command", ["encode", "transcode"])
@pytest.mark.parametrize("width, height, fragment", [
    (16385, 1, "outside the format's 1..16384 per side"),
    (1, 16385, "outside the format's 1..16384 per side"),
    (16384, 4097, "exceeds the format's 67108864 pixels"),
])
def test_a_picture_too_large_for_the_format_is_refused_before_decoding(capsys, tmp_path, command, width, height,
                                                                        fragment):
    path = _png_claiming(tmp_path / f"big_{width}x{height}.png", width, height)
    assert path.stat().st_size < 200_000
    start = time.perf_counter()
    code, _, err = run(capsys, *_argv(command, path, tmp_path))
    assert_clean_failure(code, err, str(path), f"{width}x{height}", fragment)
    assert time.perf_counter() - start < 10


def test_a_header_beyond_the_format_is_a_format_error_naming_the_file(capsys, tmp_path):
    path = tmp_path / "wide.lotto"
    path.write_bytes(with_size("pan_gray_1f_v2.lotto", 16385, 9))
    for command in ("decode", "info"):
        assert_clean_failure(*run(capsys, *_argv(command, path, tmp_path))[::2], str(path),
                             "width 16385 out of range 1..16384")


def test_every_failure_above_is_a_lotto_error():
    """What the command line turns into one line is a LottoError; the library raises it too."""
    data = with_size("pan_gray_1f_v2.lotto", 16384, 4096)
    for call in (lambda: decode_frame(data, "x"), lambda: decode_frame(b"", "x"), lambda: inspect(b"text", "x")):
        with pytest.raises(LottoError, match="^x: "):
            call()


def test_an_arm_whose_sums_could_leave_exact_arithmetic_is_refused():
    """Parameter codes allow weights up to 2^16: enough for the ARM's later layers to pass 2^53,
    where float64 would round and decoders could disagree. The group header is refused instead
    (FORMAT.md 3.7); the encoder's own networks stay far below the bound."""
    from dataclasses import replace

    from lotto_media.coding import bitstream
    from lotto_media.container import read_container
    from lotto_media.model.arm import EXACT_SUM_LIMIT

    container = read_container((GOLDEN / "pan_gray_1f_v2.lotto").read_bytes())
    group = bitstream.unpack_group(container.groups[0], container.header.model)
    assert group.nets.integer_arm().largest_sum() < EXACT_SUM_LIMIT / 1000
    arm = group.nets.arm
    huge = replace(arm, tensors=tuple(np.full_like(t, 1 << 16) for t in arm.tensors))
    payload = bitstream.pack_group(replace(group, nets=replace(group.nets, arm=huge)))
    with pytest.raises(FormatError, match="beyond exact arithmetic"):
        bitstream.unpack_group(payload, container.header.model)
