"""``lotto-media bench speed``: the search of each preset timed (pixel-steps/s, s/frame, with the
steps extrapolated past ``--max-steps``), the decoder (ns/pixel), kMAC/pixel and peak memory, each
preset in a fresh process so that its peak memory is its own."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lotto_media.allocator import retain_freed_memory
from lotto_media.frame import Frame
from lotto_media.metrics import bpp
from lotto_media.model.random_weights import clear_weight_cache

from . import bench_report as report
from .bench_images import downscale_lanczos, load_rgb
from .bench_jobs import PointSink, Record, _command_line, _error_record, _exit_status, _lotto_codec
from .workers import StoppingPool

SPEED_SIZE = (384, 256)


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
    device: str = "cpu"

    def base_record(self) -> Record:
        height, width = self.rgb.shape[:2]
        return {"kind": "speed", "preset": self.preset, "width": width, "height": height,
                "quality": self.quality, "size": f"{width}x{height}", "device": self.device}


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
    preset_steps = codec.EncodeOptions(quality=task.quality, preset=task.preset).schedule().total_steps
    steps = task.steps if task.steps is not None else min(preset_steps, task.max_steps)
    source = Frame.from_array(task.rgb)
    options = codec.EncodeOptions(quality=task.quality, preset=task.preset, threads=task.threads,
                                  steps=steps if steps != preset_steps else None, device=task.device)
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


def _in_fresh_process(task: SpeedTask, measure: Callable[[SpeedTask], Record] = measure_speed_point) -> Record:
    # One process per preset: ru_maxrss is a high-water mark, so sharing a process would report the
    # largest preset so far instead of this one's. A StoppingPool, so that Ctrl-C (or kill -INT of
    # the bench alone) stops the point at once instead of waiting for it.
    with StoppingPool(1, initializer=retain_freed_memory) as pool:
        try:
            return pool.submit(measure, task).result()
        except BrokenProcessPool as exc:
            return {**task.base_record(), "status": "error", "error": f"worker died: {exc}"}


def _describe_speed(record: Record) -> str:
    head = f"speed {record['preset']} {record['size']} ({record.get('device', 'cpu')})"
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
                       fresh_process=not args.in_process, device=args.device) for p in args.presets]
    sink = PointSink(out / "speed.jsonl", len(tasks), args.quiet, _describe_speed)
    try:
        for task in tasks:
            sink(measure_speed_point(task) if args.in_process else _in_fresh_process(task))
    finally:
        sink.close()
    (out / "speed.md").write_text(report.speed_summary(sink.records, _command_line(), report.machine_info()))
    return _exit_status(sink.records, out / "speed.md", args.quiet)
