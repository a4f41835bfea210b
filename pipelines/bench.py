"""``lotto-media bench``: rate-distortion and speed measurements against conventional anchors.

``bench images`` codes every image with lotto-media at several ``--quality`` values and with each
anchor (plugins/anchors.py) over its default sweep, decodes, and measures on the same pixels.
``bench video`` does the same for clips with x264/x265 (all-intra and inter) on native 4:2:0
planes. ``bench speed`` times the search of each preset, the decoder, and peak memory.

Each finished point is appended as one JSON line (so a long run keeps what it measured) and
announced on stderr; summaries (markdown), Bjøntegaard tables (bd.json) and RD plots (PNG) are
written at the end. A failing point is recorded with ``status: "error"`` and never stops the others;
the exit status is then 1. The method is described in docs/BENCH.md.

This module holds the command line; each benchmark is a module of its own (bench_images,
bench_video, bench_speed), what they share is in bench_jobs, the reports in bench_report.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable

from lotto_media.options import DEVICES
from lotto_media.plugins.anchors import ANCHORS, VIDEO_ANCHORS, VIDEO_DEFAULT_QPS
from lotto_media.search.presets import DEFAULT_PRESET, PRESET_NAMES, PRESETS

from .bench_images import run_images
from .bench_speed import SPEED_SIZE, run_speed
from .bench_video import run_video

DEFAULT_QUALITIES = (10.0, 30.0, 50.0, 70.0)
DEFAULT_OUT = "bench-out"


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser | None = None) -> None:
    """Add ``bench images|video|speed`` to the ``lotto-media`` parser."""
    from .cli import ExamplesFormatter, examples

    parents = [common] if common is not None else []
    bench = subparsers.add_parser(
        "bench", parents=parents, help="measure rate-distortion and speed against JPEG, WebP, x264, x265, SVT-AV1",
        description="Benchmarks. Points go to OUT/*.jsonl as they finish; summaries, Bjøntegaard "
                    "tables and RD plots are written at the end. Progress lines go to stderr.",
        formatter_class=ExamplesFormatter,
        epilog=examples("lotto-media bench images ../shared/media/images/kodak --downscale 2 --preset medium",
                        "lotto-media bench video clip.y4m --frames 9 --gop 16,1 --preset fast",
                        "lotto-media bench speed --presets fast,medium"))
    kinds = bench.add_subparsers(title="benchmarks", dest="bench_kind", metavar="KIND", required=True)

    images = kinds.add_parser("images", parents=parents, help="RD curves and BD-rates on still images",
                              description="Code images with lotto-media and each anchor; measure bytes, "
                                          "bpp, PSNR, MS-SSIM and times on the same pixels.",
                              formatter_class=ExamplesFormatter,
                              epilog=examples("lotto-media bench images photos/ --quality 30,50,70 --out bench-images"))
    images.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders of images")
    images.add_argument("--downscale", type=_float_at_least(1.0), default=1.0, metavar="F",
                        help="shrink each image by F (Lanczos) before coding, e.g. 2 for Kodak at 384x256")
    images.add_argument("--quality", type=_float_list(0, 100), default=DEFAULT_QUALITIES, metavar="Q1,Q2,...",
                        help="lotto-media qualities (default: %s)" % ",".join(f"{q:g}" for q in DEFAULT_QUALITIES))
    images.add_argument("--anchors", type=_name_list(ANCHORS), default=tuple(ANCHORS), metavar="A1,A2,...",
                        help=f"anchors to run (default: {','.join(ANCHORS)})")
    images.add_argument("--no-lotto", action="store_true", help="run the anchors only")
    images.add_argument("--anchor-points", action="append", default=[], metavar="POINTS.jsonl",
                        help="take anchor points from an earlier run's points.jsonl (repeatable) where the "
                             "image (name and size), anchor and setting match, instead of coding them again "
                             "(the anchors are deterministic for one PyAV and Pillow build); lotto-media's points are "
                             "always measured")
    _add_common(images)
    images.set_defaults(func=run_images, parser=images)

    video = kinds.add_parser("video", parents=parents, help="lotto-media against x264/x265 on y4m/mp4 clips",
                             description="Code clips (native 4:2:0, same bit depth) with x264 and x265, "
                                         "all-intra and inter, and with lotto-media where it supports the format.",
                             formatter_class=ExamplesFormatter,
                             epilog=examples("lotto-media bench video clips/*.y4m --frames 9 --preset fast --out bench-video"))
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

    speed = kinds.add_parser("speed", parents=parents, help="search, decode and memory figures per preset",
                             description="Time the search of each preset (pixel-steps/s, s/frame), the "
                                         "decoder (ns/pixel), report kMAC/pixel and peak memory. Each preset "
                                         "runs in a fresh process so its peak memory is its own.",
                             formatter_class=ExamplesFormatter,
                             epilog=examples("lotto-media bench speed --image photo.png --presets fast --max-steps 100"))
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
    speed.add_argument("--device", choices=DEVICES, default="cpu",
                       help="where the search runs (default: cpu; auto: CUDA when present); decoding is on the CPU")
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
