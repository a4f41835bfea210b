"""Shared fixtures: tiny synthetic pictures, the real test media (with a skip helper), the
bundled samples, and a stand-in for ``lotto_media.codec`` to test the CLI without a search."""

from __future__ import annotations

import contextlib
import json
import logging
import struct
import sys
import types
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from lotto_media.errors import FormatError
from lotto_media.frame import Frame
from lotto_media.options import EncodeOptions
from lotto_media.search.presets import MASK_RATIO
from lotto_media.reports import EncodeResult, Progress, StreamInfo

REPO_DIR = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_DIR / "samples"
#: Third-party test media shared by the engineers; a user's fresh clone does not have it.
MEDIA_DIR = Path(__file__).resolve().parents[2] / "shared" / "media"


def require_media(relative: str = "") -> Path:
    """Path of ``../shared/media/<relative>``; skips the calling test when it is absent."""
    path = MEDIA_DIR / relative
    if not path.exists():
        pytest.skip(f"test media {path} not found (../shared/media is not part of a fresh clone)")
    return path


@pytest.fixture
def media_dir() -> Path:
    return require_media()


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES_DIR


def synthetic_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colour ramp plus mild noise: learnable like a photo, not a constant."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    ramp = np.stack([x * 255 / max(width - 1, 1), y * 255 / max(height - 1, 1),
                     (x + y) * 127 / max(width + height - 2, 1)], axis=2)
    return np.clip(ramp + rng.normal(0, 8, ramp.shape), 0, 255).round().astype(np.uint8)


@pytest.fixture
def tiny_rgb() -> np.ndarray:
    """16 rows x 24 columns RGB, the size the end-to-end tests encode."""
    return synthetic_rgb(16, 24)


@pytest.fixture
def odd_rgb() -> np.ndarray:
    """23 rows x 37 columns RGB: odd sizes catch line-padding and chroma-rounding bugs."""
    return synthetic_rgb(23, 37, seed=1)


@pytest.fixture
def odd_gray() -> np.ndarray:
    return synthetic_rgb(23, 37, seed=2)[:, :, 1].copy()


def save_png(array: np.ndarray, path: Path) -> Path:
    """Write an 8-bit (or 16-bit) array as PNG with Pillow, independent of our own writer."""
    from PIL import Image

    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def tiny_png(tmp_path: Path, tiny_rgb: np.ndarray) -> Path:
    return save_png(tiny_rgb, tmp_path / "tiny.png")


# --------------------------------------------------------------------------- fake codec

_FAKE_MAGIC = b"FAKELOTTO\n"


@dataclass
class FakeCodec:
    """A stand-in for ``lotto_media.codec`` with the same API: it "codes" a frame by keeping the
    top 4 bits of every sample. Streams are ``magic, header length, JSON header, samples, CRC32``
    plus an optional trailer chunk ``b"TRL" + CRC32`` whose damage is reported, not fatal
    (like a damaged index in the real container). Records every call for assertions."""

    calls: list[tuple[str, object]] = field(default_factory=list)
    add_trailer: bool = True

    def module(self) -> types.ModuleType:
        module = types.ModuleType("lotto_media.codec")
        module.EncodeOptions = EncodeOptions
        module.EncodeResult = EncodeResult
        module.Progress = Progress
        module.StreamInfo = StreamInfo
        module.encode_frame = self.encode_frame
        module.decode_frame = self.decode_frame
        module.inspect = self.inspect
        module.stream_header = self.stream_header
        module.HEADER_PREFIX_BYTES = 4096
        module.torch_threads = lambda threads: contextlib.nullcontext()
        module.coded_bytes = self.coded_bytes
        return module

    def coded_bytes(self, data: bytes) -> int:
        """As the real codec counts: without the trailer (the stand-in for the index)."""
        return len(data) - (7 if self.add_trailer else 0)

    def encode_frame(self, frame: Frame, options: EncodeOptions, progress=None) -> EncodeResult:
        self.calls.append(("encode_frame", options))
        if progress is not None:
            for step in (0, 1, 2):
                progress(Progress(step, 2, "soft", 0.1, 20.0, 1.0, 0.01 * step, 0.01 * (2 - step)))
        planes = [(p & 0xF0) | 0x08 for p in frame.planes]
        recon = Frame(planes, frame.pix_fmt)
        source = np.stack(frame.planes).astype(np.float64)
        mse = float(np.mean((source - np.stack(planes)) ** 2))
        header = {"w": frame.width, "h": frame.height, "pix_fmt": frame.pix_fmt,
                  "preset": options.preset, "seed": options.seed, "quality": options.quality,
                  "lmbda": options.lmbda or 0.001, "mask_ratio": MASK_RATIO if options.mask_ratio is None else options.mask_ratio,
                  "psnr": 10 * np.log10(255**2 / mse)}
        data = self._pack(header, planes)
        return EncodeResult(data, recon, self._info(header, len(data), None), 3, 0.01, 0.02)

    def decode_frame(self, data: bytes, name: str = "<stream>", *, max_pixels: int | None = None) -> Frame:
        self.calls.append(("decode_frame", name))
        header, planes, _ = self._unpack(data, name)
        return Frame(planes, header["pix_fmt"])

    def stream_header(self, prefix: bytes, name: str = "<stream>") -> types.SimpleNamespace:
        if not prefix.startswith(_FAKE_MAGIC):
            raise FormatError(f"{name}: not a lotto stream")
        try:
            (head_len,) = struct.unpack_from(">I", prefix, len(_FAKE_MAGIC))
            start = len(_FAKE_MAGIC) + 4
            header = json.loads(prefix[start:start + head_len])
        except (struct.error, ValueError) as exc:
            raise FormatError(f"{name}: truncated or damaged header") from exc
        return types.SimpleNamespace(n_frames=1, pix_fmt=header["pix_fmt"])

    def inspect(self, data: bytes, name: str = "<stream>", *, max_pixels: int | None = None):
        self.calls.append(("inspect", name))
        header, _, damage = self._unpack(data, name)
        return self._info(header, len(data), damage)

    def _pack(self, header: dict, planes: list[np.ndarray]) -> bytes:
        head = json.dumps(header).encode()
        body = _FAKE_MAGIC + struct.pack(">I", len(head)) + head + b"".join(p.tobytes() for p in planes)
        body += struct.pack(">I", zlib.crc32(body))
        if self.add_trailer:
            body += b"TRL" + struct.pack(">I", zlib.crc32(b"TRL"))
        return body

    def _unpack(self, data: bytes, name: str) -> tuple[dict, list[np.ndarray], str | None]:
        if not data.startswith(_FAKE_MAGIC):
            raise FormatError(f"{name}: not a lotto stream")
        try:
            (head_len,) = struct.unpack_from(">I", data, len(_FAKE_MAGIC))
            start = len(_FAKE_MAGIC) + 4
            header = json.loads(data[start:start + head_len])
            n_planes = 1 if header["pix_fmt"] == "gray" else 3
            size = header["w"] * header["h"]
            body_end = start + head_len + n_planes * size
            (crc,) = struct.unpack_from(">I", data, body_end)
        except (struct.error, ValueError, KeyError) as exc:
            raise FormatError(f"{name}: truncated or damaged header") from exc
        if zlib.crc32(data[:body_end]) != crc:
            raise FormatError(f"{name}: frame 0 damaged (CRC mismatch)")
        raw = np.frombuffer(data, np.uint8, n_planes * size, start + head_len)
        planes = [raw[i * size:(i + 1) * size].reshape(header["h"], header["w"]).copy()
                  for i in range(n_planes)]
        trailer = data[body_end + 4:]
        damage = None
        if trailer and (len(trailer) != 7 or zlib.crc32(trailer[:3]) != struct.unpack(">I", trailer[3:])[0]):
            damage = "index chunk damaged; frames are intact"
            # The real container reader warns about damage itself; so does the fake.
            logging.getLogger("lotto_media.fake_codec").warning("%s: %s", name, damage)
        return header, planes, damage

    @staticmethod
    def _info(header: dict, n_bytes: int, damage: str | None) -> StreamInfo:
        names = ("y",) if header["pix_fmt"] == "gray" else ("r", "g", "b")
        return StreamInfo(
            width=header["w"], height=header["h"], pix_fmt=header["pix_fmt"], frames=1,
            bytes=n_bytes, bpp=8 * n_bytes / (header["w"] * header["h"]), psnr=header["psnr"],
            psnr_planes={n: header["psnr"] for n in names}, preset=header["preset"],
            lmbda=header["lmbda"], quality=header["quality"], mask_ratio=header["mask_ratio"],
            seed=header["seed"], kmac_per_pixel=4.9, synth_widths=(32, 24, 16), format_version=1,
            damage=damage)


@pytest.fixture
def fake_codec(monkeypatch: pytest.MonkeyPatch) -> FakeCodec:
    """Replace ``lotto_media.codec`` (as the CLI imports it) by a :class:`FakeCodec`."""
    codec = FakeCodec()
    monkeypatch.setitem(sys.modules, "lotto_media.codec", codec.module())
    return codec


def audio_of(path: Path) -> tuple[str, list[bytes], int]:
    """(codec, packet payloads, decoded samples) of a file's first audio track, read by PyAV."""
    import av

    with av.open(str(path)) as container:
        codec = container.streams.audio[0].codec_context.codec.name
        packets = [bytes(p) for p in container.demux(audio=0) if p.size]
    with av.open(str(path)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    return codec, packets, samples
