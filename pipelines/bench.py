"""``lotto-media bench``: rate-distortion and speed measurements against conventional anchors.

``bench images`` codes every image with lotto-media at several ``--quality`` values and with each
anchor (plugins/anchors.py) over its default sweep, decodes, and measures on the same pixels.
``bench video`` does the same for clips with x264/x265 (all-intra and inter) on native 4:2:0
planes. ``bench speed`` times the search of each preset, the decoder, and peak memory.

Each finished point is appended as one JSON line (so a long run keeps what it measured) and
announced on stderr; summaries (markdown), Bjøntegaard tables (bd.json) and RD plots (PNG) are
written at the end. A failing point is recorded with ``status: "error"`` and never stops the others;
the exit status is then 1. The method is described in docs/BENCH.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path
from types import ModuleType

import numpy as np

from lotto_media.search.presets import DEFAULT_PRESET, PRESET_NAMES, PRESETS
from lotto_media.errors import InputError, LottoError, UnsupportedError
from lotto_media.frame import Frame
from lotto_media.metrics import bpp, frame_quality, plane_names, psnr, psnr_yuv
from lotto_media.plugins.anchors import ANCHORS, VIDEO_ANCHORS, VIDEO_DEFAULT_QPS, encode_anchor, encode_video_anchor, planes_of
from lotto_media.model.random_weights import clear_weight_cache

from . import bench_report as report

log = logging.getLogger(__name__)

PROG = "lotto-media"
DEFAULT_QUALITIES = (10.0, 30.0, 50.0, 70.0)
DEFAULT_OUT = "bench-out"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm", ".pnm"}
SPEED_SIZE = (384, 256)

Record = dict[str, object]


# ============================================================================================
# Command line


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser | None = None) -> None:
    """Add ``bench images|video|speed`` to the ``lotto-media`` parser."""
    bench = subparsers.add_parser(
        "bench", help="measure rate-distortion and speed against JPEG, WebP, x264, x265, SVT-AV1",
        description="Benchmarks. Points go to OUT/*.jsonl as they finish; summaries, Bjøntegaard "
                    "tables and RD plots are written at the end. Progress lines go to stderr.")
    kinds = bench.add_subparsers(title="benchmarks", dest="bench_kind", metavar="KIND", required=True)

    images = kinds.add_parser("images", help="RD curves and BD-rates on still images",
                              description="Code images with lotto-media and each anchor; measure bytes, "
                                          "bpp, PSNR, MS-SSIM and times on the same pixels.")
    images.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders of images")
    images.add_argument("--downscale", type=_float_at_least(1.0), default=1.0, metavar="F",
                        help="shrink each image by F (Lanczos) before coding, e.g. 2 for Kodak at 384x256")
    images.add_argument("--quality", type=_float_list(0, 100), default=DEFAULT_QUALITIES, metavar="Q1,Q2,...",
                        help="lotto-media qualities (default: %s)" % ",".join(f"{q:g}" for q in DEFAULT_QUALITIES))
    images.add_argument("--anchors", type=_name_list(ANCHORS), default=tuple(ANCHORS), metavar="A1,A2,...",
                        help=f"anchors to run (default: {','.join(ANCHORS)})")
    images.add_argument("--no-lotto", action="store_true", help="run the anchors only")
    _add_common(images)
    images.set_defaults(func=run_images, parser=images)

    video = kinds.add_parser("video", help="lotto-media against x264/x265 on y4m/mp4 clips",
                             description="Code clips (native 4:2:0, same bit depth) with x264 and x265, "
                                         "all-intra and inter, and with lotto-media where it supports the format.")
    video.add_argument("paths", nargs="+", metavar="CLIP", help="y4m/mp4/... clips")
    video.add_argument("--frames", type=_int_at_least(1), default=None, metavar="N",
                       help="code the first N frames of each clip (default: all)")
    video.add_argument("--qp", type=_float_list(0, 51), default=tuple(float(q) for q in VIDEO_DEFAULT_QPS),
                       metavar="QP1,...", help="x264/x265 QPs (default: %s)" % ",".join(map(str, VIDEO_DEFAULT_QPS)))
    video.add_argument("--quality", type=_float_list(0, 100), default=DEFAULT_QUALITIES, metavar="Q1,Q2,...",
                       help="lotto-media qualities")
    video.add_argument("--anchors", type=_name_list(VIDEO_ANCHORS), default=tuple(VIDEO_ANCHORS),
                       metavar="A1,A2", help="video anchors (default: x264,x265)")
    video.add_argument("--no-lotto", action="store_true", help="run the anchors only")
    video.add_argument("--gop", type=_int_list(1, 1024), default=(16, 1), metavar="N1,N2",
                       help="lotto-media group lengths to code each clip with (default: 16,1; "
                            "1 = every frame on its own)")
    _add_common(video)
    video.set_defaults(func=run_video, parser=video)

    speed = kinds.add_parser("speed", help="search, decode and memory figures per preset",
                             description="Time the search of each preset (pixel-steps/s, s/frame), the "
                                         "decoder (ns/pixel), report kMAC/pixel and peak memory. Each preset "
                                         "runs in a fresh process so its peak memory is its own.")
    speed.add_argument("--image", metavar="PATH",
                       help="picture to code (default: a built-in %dx%d test pattern)" % SPEED_SIZE)
    speed.add_argument("--downscale", type=_float_at_least(1.0), default=1.0, metavar="F")
    speed.add_argument("--presets", type=_name_list(PRESETS), default=tuple(PRESET_NAMES), metavar="P1,P2,...",
                       help=f"presets to time (default: {','.join(PRESET_NAMES)})")
    speed.add_argument("--max-steps", type=_int_at_least(1), default=300, metavar="N",
                       help="run at most N search steps per preset and extrapolate s/frame (default: 300)")
    speed.add_argument("--quality", type=_float_list(0, 100), default=(50.0,), metavar="Q")
    speed.add_argument("--decode-repeats", type=_int_at_least(1), default=3, metavar="N",
                       help="decode N times and keep the fastest (default: 3)")
    speed.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # tests
    _add_common(speed, jobs=False)
    speed.set_defaults(func=run_speed, parser=speed)


def _add_common(parser: argparse.ArgumentParser, jobs: bool = True) -> None:
    parser.add_argument("--preset", choices=PRESET_NAMES, default=DEFAULT_PRESET,
                        help=f"lotto-media encoding effort (default: {DEFAULT_PRESET})")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default: {DEFAULT_OUT}/)")
    if jobs:
        parser.add_argument("--jobs", type=_int_at_least(1), default=1, metavar="N",
                            help="independent encodes run in N processes (timings then share the CPU)")
    parser.add_argument("--threads", type=_int_at_least(1), default=None, metavar="N",
                        help="torch threads per lotto-media encode (default: cores / jobs)")
    parser.add_argument("--steps", type=_int_at_least(1), default=None, help=argparse.SUPPRESS)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def _float_list(low: float, high: float) -> Callable[[str], tuple[float, ...]]:
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
        if not values or not all(low <= v <= high for v in values):
            raise argparse.ArgumentTypeError(f"expected numbers in {low:g}..{high:g}, got {text!r}")
        return values
    return parse


def _int_list(low: int, high: int) -> Callable[[str], tuple[int, ...]]:
    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
        if not values or any(not low <= v <= high for v in values):
            raise argparse.ArgumentTypeError(f"{text!r}: each value must be in {low}..{high}")
        return values
    return parse


def _name_list(known: Iterable[str]) -> Callable[[str], tuple[str, ...]]:
    names = list(known)

    def parse(text: str) -> tuple[str, ...]:
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        unknown = [v for v in values if v not in names]
        if unknown or not values:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown) or 'empty list'} (choose from {','.join(names)})")
        return values
    return parse


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    return parse


def _float_at_least(low: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value >= low or math.isinf(value):
            raise argparse.ArgumentTypeError(f"expected a number >= {low:g}, got {text!r}")
        return value
    return parse


def _command_line() -> str:
    return shlex.join([PROG if sys.argv[0].endswith(("lotto-media", "__main__.py")) else sys.argv[0], *sys.argv[1:]])


# ============================================================================================
# Output plumbing


def _json_ready(value: object) -> object:
    """Non-finite floats become null so every line is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return _json_ready(value.item())
    return value


class PointSink:
    """Appends each finished point to a JSON-lines file and announces it on stderr."""

    def __init__(self, path: Path, total: int, quiet: bool, describe: Callable[[Record], str]) -> None:
        self._file = path.open("w", encoding="utf-8")
        self._total = total
        self._done = 0
        self._quiet = quiet
        self._describe = describe
        self.records: list[Record] = []

    def __call__(self, record: Record) -> None:
        record = _json_ready(record)
        self._file.write(json.dumps(record, allow_nan=False, sort_keys=True) + "\n")
        self._file.flush()
        self.records.append(record)
        self._done += 1
        if not self._quiet:
            sys.stderr.write(f"{PROG}: bench [{self._done}/{self._total}] {self._describe(record)}\n")
            sys.stderr.flush()

    def close(self) -> None:
        self._file.close()


def _run_all(tasks: Sequence[object], worker: Callable[[object], Record], jobs: int,
             on_result: Callable[[Record], None]) -> None:
    """Run tasks inline (jobs == 1) or in a spawn process pool; a crashed worker becomes an error point."""
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            on_result(worker(task))
        return
    # spawn, not fork: forking a process in which torch already started its thread pools can hang.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                             initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(worker, task): task for task in tasks}
        for future in as_completed(futures):
            try:
                record = future.result()
            except BrokenProcessPool as exc:
                record = {**futures[future].base_record(), "status": "error", "error": f"worker died: {exc}"}
            on_result(record)


def _exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Pool initializer: a worker whose bench process was killed (SIGTERM, SIGKILL: no chance to
    shut the pool down) exits instead of searching on for minutes or hours as an orphan."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _error_record(base: Record, exc: BaseException) -> Record:
    log.debug("point failed", exc_info=exc)
    status = "unsupported" if isinstance(exc, UnsupportedError) else "error"
    message = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, LottoError):
        message = f"{type(exc).__name__}: {message}"
    return {**base, "status": status, "error": message}


def _quiet_svt() -> None:
    # SVT-AV1 prints a configuration banner on stderr for every encode; keep the bench output
    # readable unless the user asked for a log level through SVT_LOG (children inherit it).
    os.environ.setdefault("SVT_LOG", "1")


def _effective_threads(threads: int | None, jobs: int) -> int | None:
    if threads is not None or jobs <= 1:
        return threads
    return max(1, (os.cpu_count() or 1) // jobs)


def _same_pixels(a: Frame, b: Frame) -> bool:
    return a.pix_fmt == b.pix_fmt and len(a.planes) == len(b.planes) and all(
        np.array_equal(x, y) for x, y in zip(a.planes, b.planes))


def _lotto_codec() -> ModuleType:
    # Looked up in sys.modules on each use (not bound at import) so a stand-in codec can be swapped
    # in for tests, and so that listing the commands does not depend on the codec importing.
    return importlib.import_module("lotto_media.codec")


# ============================================================================================
# bench images


def collect_images(paths: Sequence[str]) -> list[Path]:
    """Image files named directly or found (non-recursively, sorted) in the named folders."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not inside:
                raise InputError(f"{path}: no images in this folder")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return found


def downscale_lanczos(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Shrink an 8-bit picture by ``factor`` with a Lanczos filter (size rounded, at least 1x1)."""
    if factor == 1.0:
        return rgb
    from PIL import Image

    height, width = rgb.shape[:2]
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def load_rgb(path: Path, downscale: float = 1.0) -> tuple[np.ndarray, str]:
    """An image as HxWx3 uint8 RGB (gray is repeated on three planes, noted), downscaled."""
    from lotto_media.plugins.image_io import read_image

    frame = read_image(path)
    note = ""
    if frame.pix_fmt == "gray":
        rgb = np.repeat(frame.planes[0][:, :, None], 3, axis=2)
        note = "gray image coded as RGB"
    elif frame.pix_fmt == "rgb24":
        rgb = frame.to_array()
    else:
        raise UnsupportedError(f"{path}: bench images needs an RGB or gray picture, got {frame.pix_fmt}")
    return downscale_lanczos(np.ascontiguousarray(rgb), downscale), note


@dataclass(eq=False)
class ImageTask:
    """One point to measure: an image coded by one codec at one setting."""

    image: str
    rgb: np.ndarray
    codec: str  # an anchor name, or "lotto-<preset>"
    param: str
    setting: float
    preset: str | None = None
    steps: int | None = None
    threads: int | None = None
    note: str = ""

    def base_record(self) -> Record:
        height, width = self.rgb.shape[:2]
        return {
            "kind": "image", "image": self.image, "codec": self.codec, "param": self.param,
            "setting": self.setting, "quality": self.setting if self.param == "quality" else None,
            "width": width, "height": height, "note": self.note,
        }


def image_tasks(images: Sequence[tuple[str, np.ndarray, str]], qualities: Sequence[float], preset: str,
                anchors: Sequence[str], *, lotto: bool = True, steps: int | None = None,
                threads: int | None = None) -> list[ImageTask]:
    """Every (image, codec, setting) point, lotto-media first for each image."""
    tasks = []
    for name, rgb, note in images:
        if lotto:
            tasks += [ImageTask(name, rgb, f"lotto-{preset}", "quality", float(q), preset, steps, threads, note)
                      for q in qualities]
        for anchor in anchors:
            spec = ANCHORS[anchor]
            tasks += [ImageTask(name, rgb, anchor, spec.param, float(s), note=note) for s in spec.default_settings]
    return tasks


def measure_image_point(task: ImageTask) -> Record:
    """Code, decode and measure one point; failures come back as a record with status != ok."""
    base = task.base_record()
    try:
        source = Frame.from_array(task.rgb)
        if task.codec.startswith("lotto"):
            measured = _lotto_image_point(task, source)
        else:
            measured = _anchor_image_point(task, source)
    except Exception as exc:  # one failing point must not stop the benchmark
        return _error_record(base, exc)
    return {**base, **measured, "status": "ok", "error": None,
            "bpp": bpp(int(measured["bytes"]), source.width, source.height)}


def _lotto_image_point(task: ImageTask, source: Frame) -> Record:
    codec = _lotto_codec()
    options = codec.EncodeOptions(quality=task.setting, preset=task.preset or DEFAULT_PRESET,
                                  steps=task.steps, threads=task.threads)
    start = time.perf_counter()
    result = codec.encode_frame(source, options)
    encode_s = time.perf_counter() - start
    # the decode runs with the encode's thread count: with parallel jobs, torch's default (all
    # cores) oversubscribes the CPU and made decodes several times slower than alone
    with codec.torch_threads(task.threads):
        start = time.perf_counter()
        decoded = codec.decode_frame(result.data, task.image)
        decode_s = time.perf_counter() - start
    info = result.info
    return {
        "bytes": len(result.data), "encode_s": encode_s, "decode_s": decode_s,
        **frame_quality(source, decoded),
        "bit_exact": _same_pixels(decoded, result.reconstruction),
        "psnr_reported": float(info.psnr), "lmbda": float(info.lmbda), "preset": info.preset,
        "steps": int(result.steps), "search_s": float(result.search_seconds),
        "kmac_per_pixel": float(info.kmac_per_pixel),
    }


def _anchor_image_point(task: ImageTask, source: Frame) -> Record:
    point = encode_anchor(task.codec, task.rgb, task.setting)
    note = "; ".join(n for n in (task.note, point.note) if n)
    return {
        "bytes": point.bytes, "file_bytes": point.file_bytes, "encode_s": point.encode_s,
        "decode_s": point.decode_s, **frame_quality(source, Frame.from_array(point.decoded_rgb)), "note": note,
    }


def _describe_image(record: Record) -> str:
    head = f"{record['image']} {record['codec']} {record['param']}={record['setting']:g}"
    if record.get("status") != "ok":
        return f"{head}: {record['status']}: {record.get('error')}"
    return (f"{head}: {record['bytes']} B, {record['bpp']:.4f} bpp, PSNR-RGB {record['psnr_rgb']:.2f} dB, "
            f"MS-SSIM {record['ms_ssim']:.4f}, enc {record['encode_s']:.2f} s")


def _unique_names(paths: Sequence[Path]) -> list[str]:
    names, seen = [], {}
    for path in paths:
        name = path.stem
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


def run_images(args: argparse.Namespace) -> int:
    """``lotto-media bench images``."""
    _quiet_svt()
    paths = collect_images(args.paths)
    images = []
    for name, path in zip(_unique_names(paths), paths):
        rgb, note = load_rgb(path, args.downscale)
        images.append((name, rgb, note))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = image_tasks(images, args.quality, args.preset, args.anchors, lotto=not args.no_lotto,
                        steps=args.steps, threads=_effective_threads(args.threads, args.jobs))
    sink = PointSink(out / "points.jsonl", len(tasks), args.quiet, _describe_image)
    try:
        _run_all(tasks, measure_image_point, args.jobs, sink)
    finally:
        sink.close()
    notes = [f"downscale: {args.downscale:g}x (Lanczos)" if args.downscale != 1 else "downscale: none",
             "lotto-media: not run (--no-lotto)" if args.no_lotto else
             f"lotto-media: preset {args.preset}, qualities {','.join(f'{q:g}' for q in args.quality)}"
             + (f", steps {args.steps}" if args.steps else ""),
             f"jobs: {args.jobs}" + (" (points ran concurrently: timings share the CPU)" if args.jobs > 1 else "")]
    write_images_report(sink.records, out, list(args.anchors), _command_line(), notes)
    return _exit_status(sink.records, out / "summary.md", args.quiet)


def write_images_report(records: Sequence[Record], out: Path, anchors: Sequence[str], command: str,
                        notes: Sequence[str] = ()) -> None:
    """summary.md, bd.json, rd_<image>.png and rd_mean.png from the image points."""
    codecs = _codec_order(records)
    anchors = [a for a in anchors if a in codecs]
    curves = report.curves_by(records, "image", "bpp", "psnr_rgb")
    matrix = report.bd_matrix(curves, anchors)
    (out / "bd.json").write_text(json.dumps(_json_ready(report.bd_to_json(matrix)), indent=1, allow_nan=False))
    (out / "summary.md").write_text(
        report.images_summary(records, matrix, codecs, anchors, command, report.machine_info(), notes))
    for image, per_codec in curves.items():
        report.plot_rd(per_codec, out / f"rd_{report.safe_name(image)}.png", f"{image}: rate-distortion")
    report.plot_rd(report.mean_curves(records, "bpp", "psnr_rgb", "image"), out / "rd_mean.png",
                   "mean over images (settings that succeeded on every image)")


def _codec_order(records: Iterable[Record]) -> list[str]:
    seen: dict[str, None] = {}
    for rec in records:
        seen.setdefault(str(rec["codec"]), None)
    return sorted(seen, key=lambda c: (not c.startswith("lotto"), list(seen).index(c)))


def _exit_status(records: Sequence[Record], summary: Path, quiet: bool) -> int:
    errors = sum(1 for r in records if r.get("status") == "error")
    if not quiet:
        sys.stderr.write(f"{PROG}: bench: {len(records)} points, {errors} failed; summary in {summary}\n")
    return 1 if errors else 0


# ============================================================================================
# bench video


@dataclass(eq=False)
class Clip:
    """Frames of a clip as native planes."""

    name: str
    frames: list[list[np.ndarray]]
    pix_fmt: str  # yuv420p or yuv420p10le
    rate: Fraction
    note: str = ""

    @property
    def width(self) -> int:
        return int(self.frames[0][0].shape[1])

    @property
    def height(self) -> int:
        return int(self.frames[0][0].shape[0])

    @property
    def max_value(self) -> int:
        return 1023 if self.pix_fmt == "yuv420p10le" else 255


def read_clip(path: Path, max_frames: int | None = None, name: str | None = None) -> Clip:
    """Decode up to ``max_frames`` frames of a clip with PyAV, keeping native 4:2:0 planes.

    8-bit and 10-bit 4:2:0 stay as they are; any other format is converted to yuv420p by swscale
    (noted in the records).
    """
    import av

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    frames: list[list[np.ndarray]] = []
    note = ""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = Fraction(stream.average_rate or stream.guessed_rate or 25)
            for frame in container.decode(stream):
                fmt = frame.format.name
                if fmt in ("yuv420p", "yuvj420p", "yuv420p10le"):
                    pix_fmt = "yuv420p10le" if fmt == "yuv420p10le" else "yuv420p"
                else:
                    note = f"converted from {fmt} to yuv420p"
                    frame, pix_fmt = frame.reformat(format="yuv420p"), "yuv420p"
                frames.append(planes_of(frame))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.FFmpegError as exc:
        raise InputError(f"{path}: not a readable clip ({exc})") from exc
    if not frames:
        raise InputError(f"{path}: contains no frames")
    return Clip(name or path.stem, frames, pix_fmt, rate, note)


@dataclass(eq=False)
class VideoTask:
    clip: Clip
    codec: str  # "x264", "x265" or "lotto-<preset>"
    mode: str  # "intra" or "inter"
    param: str
    setting: float
    preset: str | None = None
    steps: int | None = None
    threads: int | None = None
    gop: int = 1

    @property
    def label(self) -> str:
        if self.codec.startswith("lotto"):
            return f"{self.codec}-intra" if self.gop == 1 else f"{self.codec}-gop{self.gop}"
        return f"{self.codec}-{self.mode}"

    def base_record(self) -> Record:
        clip = self.clip
        return {
            "kind": "video", "clip": clip.name, "codec": self.label, "encoder": self.codec, "mode": self.mode,
            "param": self.param, "setting": self.setting, "quality": self.setting if self.param == "quality" else None,
            "width": clip.width, "height": clip.height, "pix_fmt": clip.pix_fmt, "frames": len(clip.frames),
            "fps": float(clip.rate), "note": clip.note,
        }


def video_tasks(clips: Sequence[Clip], qps: Sequence[float], qualities: Sequence[float], anchors: Sequence[str],
                preset: str, *, lotto: bool = True, steps: int | None = None,
                threads: int | None = None, gops: Sequence[int] = (1,)) -> list[VideoTask]:
    tasks = []
    for clip in clips:
        if lotto:
            tasks += [VideoTask(clip, f"lotto-{preset}", "intra" if gop == 1 else "group", "quality", float(q), preset,
                                steps, threads, gop)
                      for gop in gops for q in qualities]
        tasks += [VideoTask(clip, anchor, mode, "qp", float(qp))
                  for anchor in anchors for mode in ("intra", "inter") for qp in qps]
    return tasks


def _video_quality(clip: Clip, decoded: Sequence[Sequence[np.ndarray]]) -> Record:
    """Mean over frames of each plane's PSNR, and PSNR-YUV from those means."""
    names = plane_names("yuv420p")
    per_plane = {n: [] for n in names}
    for source, test in zip(clip.frames, decoded):
        for n, a, b in zip(names, source, test):
            per_plane[n].append(psnr(a, b, clip.max_value))
    means = {n: float(np.mean(v)) for n, v in per_plane.items()}
    return {**{f"psnr_{n}": v for n, v in means.items()}, "psnr_yuv": psnr_yuv(means)}


def measure_video_point(task: VideoTask) -> Record:
    base = task.base_record()
    clip = task.clip
    try:
        if task.codec.startswith("lotto"):
            measured = _lotto_video_point(task)
        else:
            result = encode_video_anchor(task.codec, clip.frames, clip.pix_fmt, int(task.setting),
                                         intra=task.mode == "intra", rate=clip.rate)
            measured = {"bytes": result.bytes, "file_bytes": result.file_bytes, "encode_s": result.encode_s,
                        "decode_s": result.decode_s, **_video_quality(clip, result.decoded),
                        "note": "; ".join(n for n in (clip.note, result.note) if n)}
    except Exception as exc:  # one failing point must not stop the benchmark
        return _error_record(base, exc)
    n = len(clip.frames)
    seconds = n / float(clip.rate)
    return {**base, **measured, "status": "ok", "error": None,
            "kbps": measured["bytes"] * 8 / seconds / 1000.0,
            "bpp": bpp(int(measured["bytes"]), clip.width, clip.height) / n,
            "encode_s_per_frame": measured["encode_s"] / n,
            "decode_fps": n / measured["decode_s"] if measured["decode_s"] > 0 else None}


def _lotto_video_point(task: VideoTask) -> Record:
    """The clip coded as one .lotto stream in groups of ``task.gop`` frames (gop 1: every frame on
    its own) on native 4:2:0 planes; the bytes are the whole stream's, container included. The
    stream is decoded back and compared with the encoder's reconstructions."""
    import io

    from lotto_media.frame import VideoFormat
    from lotto_media.stream import LottoReader, LottoWriter, StreamEncoder

    codec = _lotto_codec()
    clip = task.clip
    options = codec.EncodeOptions(quality=task.setting, preset=task.preset or DEFAULT_PRESET,
                                  steps=task.steps, threads=task.threads)
    video = VideoFormat(clip.width, clip.height, clip.pix_fmt, time_base=1 / clip.rate, frame_rate=clip.rate,
                        source=clip.name)
    encoder = StreamEncoder(video, options, gop=task.gop, n_frames=len(clip.frames))
    buffer, coded = io.BytesIO(), []
    start = time.perf_counter()
    with LottoWriter(buffer, encoder.header) as writer:
        for index, planes in enumerate(clip.frames):
            packets = encoder.encode(Frame(list(planes), clip.pix_fmt, pts=index))
            writer.write(packets)
            coded += [p for p in packets if p.kind == "frame"]
        packets = encoder.flush()
        writer.write(packets)
        coded += [p for p in packets if p.kind == "frame"]
    encode_s = time.perf_counter() - start
    data = buffer.getvalue()
    with codec.torch_threads(task.threads):  # as in _lotto_image_point
        start = time.perf_counter()
        decoded = list(LottoReader(data, clip.name))
        decode_s = time.perf_counter() - start
    bit_exact = len(decoded) == len(coded) and all(_same_pixels(d, p.reconstruction) for d, p in zip(decoded, coded))
    firsts = [p for i, p in enumerate(coded) if i % task.gop == 0]
    laters = [p for i, p in enumerate(coded) if i % task.gop != 0]
    return {"bytes": len(data), "encode_s": encode_s, "decode_s": decode_s, "bit_exact": bit_exact,
            "gop": task.gop, "steps": int(coded[0].steps),
            "first_frame_s": sum(p.seconds for p in firsts) / len(firsts),
            "later_frame_s": sum(p.seconds for p in laters) / len(laters) if laters else None,
            "first_frame_bytes": sum(len(p.data) for p in firsts) / len(firsts),
            "later_frame_bytes": sum(len(p.data) for p in laters) / len(laters) if laters else None,
            **_video_quality(clip, [d.planes for d in decoded])}


def _describe_video(record: Record) -> str:
    head = f"{record['clip']} {record['codec']} {record['param']}={record['setting']:g}"
    if record.get("status") != "ok":
        return f"{head}: {record['status']}: {record.get('error')}"
    return (f"{head}: {record['kbps']:.1f} kbps, PSNR-YUV {record['psnr_yuv']:.2f} dB, "
            f"{record['encode_s_per_frame']:.3f} s/frame, {record['decode_fps']:.0f} fps decode")


def run_video(args: argparse.Namespace) -> int:
    """``lotto-media bench video``."""
    paths = [Path(p) for p in args.paths]
    clips = [read_clip(p, args.frames, name) for p, name in zip(paths, _unique_names(paths))]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = video_tasks(clips, args.qp, args.quality, args.anchors, args.preset, lotto=not args.no_lotto,
                        steps=args.steps, threads=_effective_threads(args.threads, args.jobs), gops=args.gop)
    sink = PointSink(out / "video_points.jsonl", len(tasks), args.quiet, _describe_video)
    try:
        _run_all(tasks, measure_video_point, args.jobs, sink)
    finally:
        sink.close()
    write_video_report(sink.records, out, [f"{a}-{m}" for a in args.anchors for m in ("intra", "inter")],
                       _command_line())
    return _exit_status(sink.records, out / "video_summary.md", args.quiet)


def write_video_report(records: Sequence[Record], out: Path, anchors: Sequence[str], command: str) -> None:
    codecs = _codec_order(records)
    anchors = [a for a in anchors if a in codecs]
    curves = report.curves_by(records, "clip", "kbps", "psnr_yuv")
    matrix = report.bd_matrix(curves, anchors)
    (out / "video_bd.json").write_text(json.dumps(_json_ready(report.bd_to_json(matrix)), indent=1, allow_nan=False))
    (out / "video_summary.md").write_text(report.video_summary(records, matrix, codecs, anchors, command,
                                                               report.machine_info()))
    for clip, per_codec in curves.items():
        report.plot_rd(per_codec, out / f"rd_video_{report.safe_name(clip)}.png", f"{clip}: rate-distortion",
                       xlabel="kbps", ylabel="PSNR-YUV (dB)")


# ============================================================================================
# bench speed


def synthetic_picture(width: int, height: int) -> np.ndarray:
    """A deterministic picture with smooth gradients, edges and texture (no file needed)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 100 * np.sin(x / 17.0) * np.cos(y / 23.0)
    g = 255 * (x / max(1, width - 1)) * ((y // 32 + x // 32) % 2 * 0.5 + 0.5)
    b = 128 + 60 * np.sin((x + 2 * y) / 5.0) + 40 * np.cos(np.hypot(x - width / 2, y - height / 2) / 9.0)
    return np.clip(np.rint(np.stack([r, g, b], axis=2)), 0, 255).astype(np.uint8)


@dataclass(eq=False)
class SpeedTask:
    preset: str
    rgb: np.ndarray
    quality: float
    max_steps: int
    decode_repeats: int = 3
    threads: int | None = None
    steps: int | None = None  # forces the step count (tests); otherwise min(preset, max_steps)
    fresh_process: bool = True

    def base_record(self) -> Record:
        height, width = self.rgb.shape[:2]
        return {"kind": "speed", "preset": self.preset, "width": width, "height": height,
                "quality": self.quality, "size": f"{width}x{height}"}


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 / 1024 / 1024 if sys.platform == "darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def measure_speed_point(task: SpeedTask) -> Record:
    base = task.base_record()
    try:
        measured = _speed_point(task)
    except Exception as exc:
        return _error_record(base, exc)
    return {**base, **measured, "status": "ok", "error": None}


def _speed_point(task: SpeedTask) -> Record:
    codec = _lotto_codec()
    preset_steps = PRESETS[task.preset].total_steps
    steps = task.steps if task.steps is not None else min(preset_steps, task.max_steps)
    source = Frame.from_array(task.rgb)
    options = codec.EncodeOptions(quality=task.quality, preset=task.preset, threads=task.threads,
                                  steps=steps if steps != preset_steps else None)
    samples: list[tuple[int, float]] = []

    def record_step(progress: object) -> None:
        if getattr(progress, "phase", "") in ("soft", "hard"):
            samples.append((int(progress.step), float(progress.elapsed_s)))

    start = time.perf_counter()
    result = codec.encode_frame(source, options, record_step)
    encode_s = time.perf_counter() - start
    # a decoder that starts cold also regenerates the random network (cached after the first frame)
    clear_weight_cache()
    start = time.perf_counter()
    codec.decode_frame(result.data, "speed")
    cold_s = time.perf_counter() - start
    decode_times = []
    for _ in range(task.decode_repeats):
        start = time.perf_counter()
        codec.decode_frame(result.data, "speed")
        decode_times.append(time.perf_counter() - start)
    pixels = source.width * source.height
    steps_run = int(result.steps)
    search_s = float(result.search_seconds)
    per_step = _seconds_per_step(samples, search_s, steps_run)
    extrapolated = steps_run != preset_steps
    # Set-up before the first step and the work after the last one (network quantisation, entropy
    # coding, container) do not grow with the step count: only the steps are extrapolated.
    fixed_s = max(0.0, encode_s - steps_run * per_step)
    s_per_frame = fixed_s + preset_steps * per_step if extrapolated else encode_s
    return {
        "steps_run": steps_run, "preset_steps": preset_steps, "extrapolated": extrapolated,
        "search_s": search_s, "encode_s": encode_s, "s_per_step": per_step, "fixed_s": fixed_s,
        "pixel_steps_per_s": pixels / per_step if per_step > 0 else None,
        "s_per_frame": s_per_frame, "decode_s": min(decode_times),
        "decode_ns_per_pixel": min(decode_times) / pixels * 1e9,
        "decode_cold_ns_per_pixel": cold_s / pixels * 1e9,
        "kmac_per_pixel": float(result.info.kmac_per_pixel), "bytes": len(result.data),
        "bpp": bpp(len(result.data), source.width, source.height), "psnr_rgb": float(result.info.psnr),
        "peak_rss_mb": _peak_rss_mb(), "fresh_process": task.fresh_process,
    }


def _seconds_per_step(samples: Sequence[tuple[int, float]], search_s: float, steps: int) -> float:
    """Time per optimiser step from the progress reports (first to last report, so model set-up and
    the first step's warm-up are excluded); the search's mean when fewer than two reports came."""
    if len(samples) >= 2 and samples[-1][0] > samples[0][0]:
        (first_step, first_s), (last_step, last_s) = samples[0], samples[-1]
        return (last_s - first_s) / (last_step - first_step)
    return search_s / steps if steps else float("nan")


def _in_fresh_process(task: SpeedTask) -> Record:
    # One process per preset: ru_maxrss is a high-water mark, so sharing a process would report the
    # largest preset so far instead of this one's.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        try:
            return pool.submit(measure_speed_point, task).result()
        except BrokenProcessPool as exc:
            return {**task.base_record(), "status": "error", "error": f"worker died: {exc}"}


def _describe_speed(record: Record) -> str:
    head = f"speed {record['preset']} {record['size']}"
    if record.get("status") != "ok":
        return f"{head}: {record['status']}: {record.get('error')}"
    mark = " (extrapolated)" if record["extrapolated"] else ""
    return (f"{head}: {record['pixel_steps_per_s']:.3g} pixel-steps/s, {record['s_per_frame']:.1f} s/frame{mark}, "
            f"decode {record['decode_ns_per_pixel']:.0f} ns/pixel, peak {record['peak_rss_mb'] or 0:.0f} MB")


def run_speed(args: argparse.Namespace) -> int:
    """``lotto-media bench speed``."""
    if args.image:
        rgb, _ = load_rgb(Path(args.image), args.downscale)
    else:
        rgb = downscale_lanczos(synthetic_picture(*SPEED_SIZE), args.downscale)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [SpeedTask(p, rgb, args.quality[0], args.max_steps, args.decode_repeats, args.threads, args.steps,
                       fresh_process=not args.in_process) for p in args.presets]
    sink = PointSink(out / "speed.jsonl", len(tasks), args.quiet, _describe_speed)
    try:
        for task in tasks:
            sink(measure_speed_point(task) if args.in_process else _in_fresh_process(task))
    finally:
        sink.close()
    (out / "speed.md").write_text(report.speed_summary(sink.records, _command_line(), report.machine_info()))
    return _exit_status(sink.records, out / "speed.md", args.quiet)
