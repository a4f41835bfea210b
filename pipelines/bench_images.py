"""``lotto-media bench images``: every image coded with lotto-media at several ``--quality``
values and with each anchor (plugins/anchors.py) over its default sweep, decoded, and measured on
the same pixels; summary.md, bd.json and RD plots at the end."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lotto_media.errors import InputError, UnsupportedError
from lotto_media.frame import Frame
from lotto_media.metrics import bpp, frame_quality
from lotto_media.plugins.anchors import ANCHORS, encode_anchor
from lotto_media.search.presets import DEFAULT_PRESET

from . import bench_report as report
from .bench_jobs import (PointSink, Record, _codec_order, _command_line, _effective_threads, _error_record,
                         _exit_status, _json_ready, _lotto_codec, _run_all, _same_pixels, _unique_names)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm", ".pnm"}


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
    #: ``pixels_digest(rgb)``; image_tasks computes it once for all the points of a picture
    pixels_sha256: str = ""

    def __post_init__(self) -> None:
        if not self.pixels_sha256:
            self.pixels_sha256 = pixels_digest(self.rgb)

    def base_record(self) -> Record:
        height, width = self.rgb.shape[:2]
        return {
            "kind": "image", "image": self.image, "codec": self.codec, "param": self.param,
            "setting": self.setting, "quality": self.setting if self.param == "quality" else None,
            "width": width, "height": height, "note": self.note, "pixels_sha256": self.pixels_sha256,
        }


def pixels_digest(rgb: np.ndarray) -> str:
    """SHA-256 of the 8-bit RGB samples every codec of a point receives (after --downscale)."""
    return hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()


def image_tasks(images: Sequence[tuple[str, np.ndarray, str]], qualities: Sequence[float], preset: str,
                anchors: Sequence[str], *, lotto: bool = True, steps: int | None = None,
                threads: int | None = None) -> list[ImageTask]:
    """Every (image, codec, setting) point, lotto-media first for each image."""
    tasks = []
    for name, rgb, note in images:
        digest = pixels_digest(rgb)
        if lotto:
            tasks += [ImageTask(name, rgb, f"lotto-{preset}", "quality", float(q), preset, steps, threads, note, digest)
                      for q in qualities]
        for anchor in anchors:
            spec = ANCHORS[anchor]
            tasks += [ImageTask(name, rgb, anchor, spec.param, float(s), note=note, pixels_sha256=digest)
                      for s in spec.default_settings]
    return tasks


def _point_key(record: Record) -> tuple:
    return (record.get("image"), record.get("width"), record.get("height"), record.get("codec"),
            record.get("param"), record.get("setting"))


def load_anchor_points(paths: Sequence[str]) -> dict[tuple, Record]:
    """The anchors' successful points in earlier runs' points.jsonl files, by (image, width,
    height, codec, param, setting); a later file's point replaces an earlier one's. Whether one
    stands for a task's point also takes the pixels' digest (``reusable``)."""
    found: dict[tuple, Record] = {}
    for text in paths:
        path = Path(text)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read the points ({getattr(exc, 'strerror', None) or exc})") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise InputError(f"{path}: line {number} is not JSON (expected a bench's points.jsonl)") from None
            if not isinstance(record, dict) or record.get("kind") != "image":
                raise InputError(f"{path}: line {number} is not a point of bench images")
            if record.get("codec") in ANCHORS and record.get("status") == "ok":
                found[_point_key(record)] = {**record, "reused_from": str(path)}
    return found


def reusable(earlier: dict[tuple, Record], task: ImageTask) -> Record | None:
    """The earlier point that stands for ``task``'s: same picture name, size, anchor and setting,
    and the same pixels where the earlier point recorded their digest (points written before
    2026-12-07 did not: those match on name and size alone)."""
    base = task.base_record()
    record = earlier.get(_point_key(base))
    if record is None or record.get("pixels_sha256", base["pixels_sha256"]) != base["pixels_sha256"]:
        return None
    return record


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
        "bytes": codec.coded_bytes(result.data), "file_bytes": len(result.data),
        "encode_s": encode_s, "decode_s": decode_s,
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
    if record.get("reused_from"):
        head += " (reused)"
    if record.get("status") != "ok":
        return f"{head}: {record['status']}: {record.get('error')}"
    return (f"{head}: {record['bytes']} B, {record['bpp']:.4f} bpp, PSNR-RGB {record['psnr_rgb']:.2f} dB, "
            f"MS-SSIM {record['ms_ssim']:.4f}, enc {record['encode_s']:.2f} s")


def _quiet_svt() -> None:
    # SVT-AV1 prints a configuration banner on stderr for every encode; keep the bench output
    # readable unless the user asked for a log level through SVT_LOG (children inherit it).
    os.environ.setdefault("SVT_LOG", "1")


def run_images(args: argparse.Namespace) -> int:
    """``lotto-media bench images``."""
    _quiet_svt()
    earlier = load_anchor_points(args.anchor_points)
    paths = collect_images(args.paths)
    images = []
    for name, path in zip(_unique_names(paths), paths):
        rgb, note = load_rgb(path, args.downscale)
        images.append((name, rgb, note))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = image_tasks(images, args.quality, args.preset, args.anchors, lotto=not args.no_lotto,
                        steps=args.steps, threads=_effective_threads(args.threads, args.jobs))
    found = [reusable(earlier, t) for t in tasks]
    reused = [record for record in found if record is not None]
    to_measure = [t for t, record in zip(tasks, found) if record is None]
    sink = PointSink(out / "points.jsonl", len(tasks), args.quiet, _describe_image)
    try:
        for record in reused:
            sink(record)
        _run_all(to_measure, measure_image_point, args.jobs, sink)
    finally:
        sink.close()
    notes = [f"downscale: {args.downscale:g}x (Lanczos)" if args.downscale != 1 else "downscale: none",
             "lotto-media: not run (--no-lotto)" if args.no_lotto else
             f"lotto-media: preset {args.preset}, qualities {','.join(f'{q:g}' for q in args.quality)}"
             + (f", steps {args.steps}" if args.steps else ""),
             f"jobs: {args.jobs}" + (" (points ran concurrently: timings share the CPU)" if args.jobs > 1 else "")]
    if args.anchor_points:
        n_anchor_points = sum(1 for t in tasks if t.codec in ANCHORS)
        undigested = sum(1 for record in reused if "pixels_sha256" not in record)
        notes.append(f"anchor points reused from {', '.join(args.anchor_points)}: {len(reused)} of "
                     f"{n_anchor_points} (the rest coded in this run; a reused point keeps its earlier seconds"
                     + (f"; {undigested} matched on picture name and size alone, their run recorded no pixel digest"
                        if undigested else "") + ")")
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
