"""The ``lotto-media`` command line: ``encode``, ``decode`` and ``info`` for still images, plus the
commands other pipeline modules register (``bench``, and ``transcode``/``batch`` when present).

Conventions (codec-tool habits): ``-o`` names the output and ``-`` means stdin/stdout; binary data
is never written to a terminal; an existing output is never replaced without ``-y``; outputs appear
atomically; progress and messages go to stderr, data alone to stdout. Exit status: 0 success,
1 failure (one line ``lotto-media: error: ...``, no traceback), 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import sys
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Iterator, Sequence

from lotto_media.config import DEFAULT_PRESET, PRESET_NAMES
from lotto_media.errors import LottoError
from lotto_media.plugins.image_io import encode_png_bytes, read_image, read_image_bytes

from .fileio import OutputError, check_output, display_name, is_stdio, read_input, write_output
from .progress import progress_callback

PROG = "lotto-media"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LOG_LEVEL = "warning"
#: Pipeline modules that add their own sub-command through ``register(subparsers)`` if installed.
OPTIONAL_COMMAND_MODULES = ("transcode", "batch", "bench")

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (also for usage errors and ``--help``)."""
    with _cli_logging():
        try:
            args = build_parser().parse_args(argv)
            logging.getLogger().setLevel(getattr(args, "log_level", DEFAULT_LOG_LEVEL).upper())
            return _run(args)
        except SystemExit as exit_request:  # argparse: usage error (2), --help / --version (0)
            code = exit_request.code
            return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)


def _run(args: argparse.Namespace) -> int:
    try:
        status = args.func(args)
        return EXIT_OK if status is None else int(status)
    except LottoError as exc:
        _error(str(exc))
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`): not worth a traceback.
        _silence_stdout()
        _error("output pipe closed")
    except OSError as exc:
        _error(_describe_os_error(exc))
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    return EXIT_FAILURE


# --------------------------------------------------------------------------- argument parsing

def build_parser() -> argparse.ArgumentParser:
    """The full parser, including the optional commands of other pipeline modules."""
    # --log-level is accepted before and after the command name. The action is shared by all
    # parsers (argparse parents), so its default must stay SUPPRESS: any other default would let
    # the sub-command reset a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS,
                        help="how much to log on stderr (default: warning)")

    parser = argparse.ArgumentParser(
        prog=PROG, parents=[common],
        description="Overfitted neural image/video codec (LotteryCodec family).",
        epilog="Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                     required=True)
    _add_encode(commands, common)
    _add_decode(commands, common)
    _add_info(commands, common)
    for module in _optional_command_modules():
        module.register(commands)
    return parser


def _add_encode(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sub = commands.add_parser(
        "encode", parents=[common], help="encode an image into a .lotto file",
        description="Encode an image (PNG, JPEG, TIFF, WebP, BMP, ... anything FFmpeg reads) into "
                    "a .lotto file. Encoding is a search: --preset trades time for quality.")
    sub.add_argument("input", metavar="IMG", help="input image, or - for stdin")
    sub.add_argument("-o", "--output", metavar="OUT",
                     help="output .lotto file, or - for stdout (default: IMG with suffix .lotto)")
    rate = sub.add_mutually_exclusive_group()
    rate.add_argument("--quality", type=_number_in(0, 100), metavar="Q",
                      help="quality 0..100, higher is better and bigger (default: 50)")
    rate.add_argument("--lmbda", type=_positive_float, metavar="L",
                      help="rate-distortion trade-off lambda (smaller: more bits); excludes --quality")
    sub.add_argument("--preset", choices=PRESET_NAMES, default=DEFAULT_PRESET,
                     help=f"encoding effort (default: {DEFAULT_PRESET})")
    sub.add_argument("--mask-ratio", type=_number_in(0, 1, include_high=False), default=0.2,
                     metavar="R", help="fraction of random weights pruned, 0 <= R < 1 (default: 0.2)")
    sub.add_argument("--seed", type=_int_in(0, 2**64 - 1), default=0, metavar="S",
                     help="seed of the random network (default: 0)")
    sub.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="where the search runs (default: auto)")
    sub.add_argument("--threads", type=_int_in(1, 4096), metavar="N",
                     help="CPU threads for the search (default: PyTorch's choice)")
    sub.add_argument("--steps", type=_int_in(1, 10**9), help=argparse.SUPPRESS)  # tests, benchmarks
    sub.add_argument("-y", "--overwrite", action="store_true", dest="overwrite",
                     help="replace an existing output file")
    sub.add_argument("-q", "--quiet", action="store_true",
                     help="no progress bar and no summary line")
    sub.add_argument("--json", action="store_true",
                     help="print the stream description as JSON on stdout")
    sub.set_defaults(func=run_encode, parser=sub)


def _add_decode(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sub = commands.add_parser(
        "decode", parents=[common], help="decode a .lotto file into a PNG image",
        description="Decode a .lotto image into a PNG (8-bit gray or RGB).")
    sub.add_argument("input", metavar="IN", help="input .lotto file, or - for stdin")
    sub.add_argument("-o", "--output", metavar="OUT",
                     help="output PNG, or - for stdout (default: IN with suffix .png)")
    sub.add_argument("-y", "--overwrite", action="store_true", dest="overwrite",
                     help="replace an existing output file")
    sub.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    sub.set_defaults(func=run_decode, parser=sub)


def _add_info(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sub = commands.add_parser(
        "info", parents=[common], help="describe a .lotto file",
        description="Show what a .lotto file holds and what the encoder measured.")
    sub.add_argument("input", metavar="IN", help="input .lotto file, or - for stdin")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub.set_defaults(func=run_info, parser=sub)


def _optional_command_modules() -> list[ModuleType]:
    modules = []
    for name in OPTIONAL_COMMAND_MODULES:
        qualified = f"{__package__}.{name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name != qualified:  # the module exists but something it imports is missing
                log.warning("command %r unavailable: %s", name, exc)
            continue
        except ImportError as exc:
            log.warning("command %r unavailable: %s", name, exc)
            continue
        if hasattr(module, "register"):
            modules.append(module)
    return modules


# --------------------------------------------------------------------------- commands

def run_encode(args: argparse.Namespace) -> int:
    """``lotto-media encode``: image -> .lotto."""
    if args.output is None and is_stdio(args.input):
        args.parser.error("-o is required when the image comes from stdin")
    if args.json and args.output is not None and is_stdio(args.output):
        args.parser.error("--json prints on stdout, so it cannot be combined with -o -")
    output = args.output if args.output is not None else str(Path(args.input).with_suffix(".lotto"))
    name = display_name(args.input)

    frame = read_image_bytes(read_input(args.input), name) if is_stdio(args.input) else read_image(args.input)
    check_output(output, overwrite=args.overwrite, input_name=args.input)

    codec = _codec()
    options = codec.EncodeOptions(
        lmbda=args.lmbda, quality=args.quality, preset=args.preset, mask_ratio=args.mask_ratio,
        seed=args.seed, device=args.device, threads=args.threads, steps=args.steps)
    log.info("%s: encoding %dx%d %s with preset %s", name, frame.width, frame.height,
             frame.pix_fmt, args.preset)
    with progress_callback(name, quiet=args.quiet) as bar:
        result = codec.encode_frame(frame, options, progress=bar if bar.enabled else None)
    write_output(output, result.data, overwrite=args.overwrite)

    if not args.quiet:
        info = result.info
        _note(f"{_output_name(output)}: {info.width}x{info.height} {info.pix_fmt}, "
              f"{len(result.data)} bytes, {info.bpp:.4f} bpp, PSNR {info.psnr:.2f} dB, "
              f"{result.encode_seconds:.1f} s ({info.preset}, {result.steps} steps)")
    if args.json:
        _print_json(result.info.to_dict())
    return EXIT_OK


def run_decode(args: argparse.Namespace) -> int:
    """``lotto-media decode``: .lotto -> PNG."""
    if args.output is None and is_stdio(args.input):
        args.parser.error("-o is required when the stream comes from stdin")
    output = args.output if args.output is not None else str(Path(args.input).with_suffix(".png"))
    if not is_stdio(output) and Path(output).suffix.lower() != ".png":
        raise OutputError(f"{output}: decode writes PNG only; give the output a .png name")
    name = display_name(args.input)

    data = read_input(args.input)
    check_output(output, overwrite=args.overwrite, input_name=args.input)
    # A single picture is either intact or an error. Damage elsewhere in the file (a lost index or
    # metadata chunk) is reported as a warning by the container reader itself, once.
    frame = _codec().decode_frame(data, name)
    write_output(output, encode_png_bytes(frame), overwrite=args.overwrite)
    if not args.quiet:
        _note(f"{_output_name(output)}: {frame.width}x{frame.height} {frame.pix_fmt}")
    return EXIT_OK


def run_info(args: argparse.Namespace) -> int:
    """``lotto-media info``: describe a .lotto file."""
    name = display_name(args.input)
    # Damage is warned about by the container reader and shown in the output.
    info = _codec().inspect(read_input(args.input), name)
    if args.json:
        _print_json(info.to_dict())
    else:
        sys.stdout.write(format_info_table(name, info))
    return EXIT_OK


def format_info_table(name: str, info: object) -> str:
    """The human-readable ``info`` output: one ``label  value`` line per field."""
    planes = ", ".join(f"{plane} {info.psnr_planes[plane]:.2f}"
                       for plane in sorted(info.psnr_planes, key=_plane_order))
    quality = "-" if info.quality is None else f"{info.quality:g}"
    rows = [
        ("file", name),
        ("dimensions", f"{info.width}x{info.height}"),
        ("pixel format", info.pix_fmt),
        ("frames", str(info.frames)),
        ("size", f"{info.bytes} bytes ({info.bpp:.4f} bpp)"),
        ("PSNR", _describe_psnr(info.psnr, planes, yuv=info.pix_fmt.startswith("yuv"))),
        ("preset", info.preset),
        ("lambda", f"{info.lmbda:.6g}"),
        ("quality", quality),
        ("mask ratio", f"{info.mask_ratio:g}"),
        ("seed", str(info.seed)),
        ("kMAC/pixel", f"{info.kmac_per_pixel:.2f}"),
        ("synthesis widths", "-".join(str(w) for w in info.synth_widths)),
        ("hidden widths", _describe_hidden(info)),
        ("format version", str(info.format_version)),
        ("damage", info.damage or "none"),
    ]
    width = max(len(label) for label, _ in rows)
    return "".join(f"{label:<{width}}  {value}\n" for label, value in rows)


def _describe_hidden(info: object) -> str:
    if info.mod_hidden is None or info.arm_hidden is None:
        return "-"
    return f"modulation {info.mod_hidden}, ARM {info.arm_hidden}"


def _plane_order(plane: str) -> tuple[int, str]:
    canonical = "rgbyuv"
    return (canonical.index(plane) if plane in canonical else len(canonical), plane)


def _describe_psnr(psnr: float, planes: str, yuv: bool = False) -> str:
    if not math.isfinite(psnr):
        return "unknown (not recorded in the file)"
    # For YUV the headline is the weighted PSNR-YUV, not a pooled MSE: say so.
    kind = " PSNR-YUV (6Y+U+V)/8" if yuv else ""
    return f"{psnr:.2f} dB{kind}" + (f" ({planes})" if planes else "") + ", measured by the encoder"


# --------------------------------------------------------------------------- helpers

def _codec() -> ModuleType:
    # Imported on first use: the codec pulls in torch, which --help, --version and usage
    # errors do not need.
    return importlib.import_module("lotto_media.codec")


def _print_json(record: dict) -> None:
    sys.stdout.write(json.dumps(_json_safe(record), indent=2, sort_keys=True, allow_nan=False) + "\n")
    sys.stdout.flush()


def _json_safe(value: object) -> object:
    """NaN/inf (e.g. a PSNR the file does not record) are not JSON: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _output_name(output: str) -> str:
    return "<stdout>" if is_stdio(output) else output


def _note(message: str) -> None:
    """A status line for the person at the terminal (stderr, never stdout)."""
    print(f"{PROG}: {message}", file=sys.stderr)


def _error(message: str) -> None:
    # One line, whatever the exception text holds.
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)


def _describe_os_error(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


def _silence_stdout() -> None:
    # Python flushes stdout at exit and would raise BrokenPipeError again from there.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _version() -> str:
    try:
        return metadata.version("lotto-media")
    except metadata.PackageNotFoundError:
        return "unknown"


def _number_in(low: float, high: float, *, include_high: bool = True):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (low <= value <= high if include_high else low <= value < high):
            closing = "]" if include_high else ")"
            raise argparse.ArgumentTypeError(f"{text} is outside [{low:g}, {high:g}{closing}")
        return value
    return parse


def _int_in(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low}..{high}")
        return value
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


class _CliFormatter(logging.Formatter):
    """``lotto-media: warning: message``, the way command-line tools speak."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.levelno <= logging.DEBUG:
            message += "\n" + self.formatException(record.exc_info)
        return f"{PROG}: {record.levelname.lower()}: {message}"


@contextmanager
def _cli_logging() -> Iterator[None]:
    """Log records to stderr in the CLI's voice for the duration of one main() call, then put
    the root logger back as it was (tests and embedding applications call main() repeatedly)."""
    root = logging.getLogger()
    previous_level = root.level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CliFormatter())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
