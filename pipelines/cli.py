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

from lotto_media import options as limits
from lotto_media.allocator import retain_freed_memory
from lotto_media.container.header import DEFAULT_MAX_PIXELS, MAX_PIXELS
from lotto_media.options import DEFAULT_GOP, DEVICES
from lotto_media.search.presets import DEFAULT_PRESET, PRESET_NAMES
from lotto_media.errors import FormatError, LottoError
from lotto_media.plugins.image_io import encode_png_bytes, read_image, read_image_bytes

from .fileio import OutputError, check_output, display_name, is_stdio, open_output, read_input, write_output
from .progress import PROGRESS_MODES, progress_callback

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
        retain_freed_memory()  # an encode's steps reuse their tensors' pages (lotto_media.allocator)
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
        error_line(str(exc))
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`): not worth a traceback.
        _silence_stdout()
        error_line("output pipe closed")
    except OSError as exc:
        error_line(_describe_os_error(exc))
    except KeyboardInterrupt:
        error_line("interrupted")
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
        module.register(commands, common)
    return parser


def _add_encode(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sub = commands.add_parser(
        "encode", parents=[common], help="encode a picture or a video into a .lotto file",
        description="Encode a picture (PNG, JPEG, TIFF, WebP, BMP, ...) or a video (mp4, mkv, webm, mov, y4m, "
                    "image sequences; y4m or NUT on stdin) into a .lotto file. Encoding is a search: "
                    "--preset trades time for quality.",
        formatter_class=ExamplesFormatter,
        epilog=examples("lotto-media encode photo.png --quality 60",
                        "lotto-media encode clip.mp4 -o clip.lotto --preset fast --gop 16",
                        "ffmpeg -i in.mp4 -f yuv4mpegpipe - | lotto-media encode - -o clip.lotto",
                        "lotto-media encode photo.png -o photo.lotto --progress json -y"))
    sub.add_argument("input", metavar="IN", help="input picture or video, or - for stdin")
    sub.add_argument("-o", "--output", metavar="OUT",
                     help="output .lotto file, or - for stdout (default: IN with suffix .lotto)")
    add_encoder_options(sub)
    sub.add_argument("--json", action="store_true",
                     help="print the stream description as JSON on stdout")
    sub.set_defaults(func=run_encode, parser=sub)


def add_encoder_options(sub: argparse.ArgumentParser, threads_default: str = "PyTorch's choice") -> None:
    """The options of every command that encodes (encode, transcode, batch); ``threads_default``
    describes what no ``--threads`` means for the command."""
    rate = sub.add_mutually_exclusive_group()
    rate.add_argument("--quality", type=_checked(float, limits.check_quality), metavar="Q",
                      help="quality 0..100, higher is better and bigger (default: 50)")
    rate.add_argument("--lmbda", type=_checked(float, limits.check_lmbda), metavar="L",
                      help="rate-distortion trade-off lambda, 0 < L < 10 (smaller: more bits); excludes --quality")
    sub.add_argument("--preset", choices=PRESET_NAMES, default=DEFAULT_PRESET,
                     help=f"encoding effort (default: {DEFAULT_PRESET})")
    sub.add_argument("--gop", type=_checked(int, limits.check_gop), default=DEFAULT_GOP, metavar="N",
                     help=f"frames per group: an intra frame, then frames predicted from the one before; "
                          f"a scene cut, or a frame that costs over 1.5x the intra frame as a predicted one, "
                          f"starts a new group early; any group decodes alone "
                          f"(default: {DEFAULT_GOP}; 1 codes every frame on its own)")
    sub.add_argument("--frames", type=_frame_range, metavar="A:B",
                     help="code only frames A..B-1 of a video (counted from 0; A: and :B work too)")
    sub.add_argument("--mask-ratio", type=_checked(float, limits.check_mask_ratio), default=None,
                     metavar="R", help="fraction of random weights pruned, 0 <= R < 1 (default: 0.2; 0.4 for "
                                       "pictures and intra-only video from quality 80; 0.05 for video "
                                       "with predicted frames at quality 50 or less)")
    sub.add_argument("--seed", type=_checked(int, limits.check_seed), default=0, metavar="S",
                     help="seed of the random network (default: 0)")
    sub.add_argument("--device", choices=DEVICES, default="auto",
                     help="where the search runs (default: auto)")
    sub.add_argument("--threads", type=_checked(int, limits.check_threads), metavar="N",
                     help=f"CPU threads for the search (default: {threads_default})")
    sub.add_argument("--steps", type=_checked(int, limits.check_steps), help=argparse.SUPPRESS)  # tests, benchmarks
    sub.add_argument("-y", "--overwrite", action="store_true", dest="overwrite",
                     help="replace an existing output file")
    sub.add_argument("-q", "--quiet", action="store_true",
                     help="no progress and no summary line")
    sub.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                     help="auto: a bar when stderr is a terminal; bar: always; json: JSON lines on stderr "
                          "for programs; none (default: auto)")


def encode_options(args: argparse.Namespace):
    """The codec's EncodeOptions from the parsed encoder options."""
    return _codec().EncodeOptions(
        lmbda=args.lmbda, quality=args.quality, preset=args.preset, mask_ratio=args.mask_ratio,
        seed=args.seed, device=args.device, threads=args.threads, steps=args.steps)


def _add_decode(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sub = commands.add_parser(
        "decode", parents=[common], help="decode a .lotto file into a picture or a video",
        description="Decode a .lotto stream. One picture becomes a PNG; a video becomes y4m, NUT, "
                    "MKV (FFV1, lossless), MP4 (x264) or a PNG sequence (a name with %04d), chosen by "
                    "the output's suffix; - writes y4m (NUT for RGB and gray) to stdout. The source's "
                    "audio is put back where the container can hold it.",
        formatter_class=ExamplesFormatter,
        epilog=examples("lotto-media decode photo.lotto -o photo.png",
                        "lotto-media decode clip.lotto -o clip.mkv --frames 0:10",
                        "lotto-media decode clip.lotto -o frames/%04d.png",
                        "lotto-media decode clip.lotto -o - | ffmpeg -i - out.mp4"))
    sub.add_argument("input", metavar="IN", help="input .lotto file, or - for stdin")
    sub.add_argument("-o", "--output", metavar="OUT",
                     help="output file, pattern or - for stdout (default: IN with suffix .png for a "
                          "picture, .y4m for a video)")
    sub.add_argument("--frames", type=_frame_range, metavar="A:B",
                     help="decode only frames A..B-1 (counted from 0)")
    sub.add_argument("--threads", type=_checked(int, limits.check_threads), metavar="N",
                     help="CPU threads for decoding (default: PyTorch's choice; 1 is best on a busy machine)")
    add_max_pixels(sub)
    sub.add_argument("-y", "--overwrite", action="store_true", dest="overwrite",
                     help="replace an existing output file")
    sub.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    sub.set_defaults(func=run_decode, parser=sub)


def _add_info(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sub = commands.add_parser(
        "info", parents=[common], help="describe a .lotto file",
        description="Show what a .lotto file holds and what the encoder measured.",
        formatter_class=ExamplesFormatter,
        epilog=examples("lotto-media info clip.lotto",
                        "lotto-media info clip.lotto --json | jq .frame_details"))
    sub.add_argument("input", metavar="IN", help="input .lotto file, or - for stdin")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_max_pixels(sub)
    sub.set_defaults(func=run_info, parser=sub)


def add_max_pixels(sub: argparse.ArgumentParser) -> None:
    """The decoder's pixel limit, as Pillow's MAX_IMAGE_PIXELS and libavcodec's max_pixels."""
    sub.add_argument("--max-pixels", type=_max_pixels, default=DEFAULT_MAX_PIXELS, metavar="N",
                     help=f"refuse a stream whose frames have more than N pixels before decoding anything "
                          f"(default: {DEFAULT_MAX_PIXELS}, enough for 8K; 0: the format's own limit, "
                          f"{MAX_PIXELS})")


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


class ExamplesFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that an ``examples:`` epilog keeps its lines (one command each)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def examples(*commands: str) -> str:
    """A sub-command's epilog: its example command lines, one per line."""
    return "examples:\n" + "\n".join(f"  {command}" for command in commands)


# --------------------------------------------------------------------------- commands

def run_encode(args: argparse.Namespace) -> int:
    """``lotto-media encode``: picture or video -> .lotto."""
    if args.output is None and is_stdio(args.input):
        args.parser.error("-o is required when the input comes from stdin")
    if args.json and args.output is not None and is_stdio(args.output):
        args.parser.error("--json prints on stdout, so it cannot be combined with -o -")
    output = args.output if args.output is not None else str(Path(args.input).with_suffix(".lotto"))
    from .transcode import is_still_image, stdin_holds_video

    video_input = stdin_holds_video() if is_stdio(args.input) else not is_still_image(args.input)
    if video_input:
        return _encode_video(args, output)
    if args.frames is not None:
        args.parser.error("--frames selects frames of a video; the input is a single picture")
    name = display_name(args.input)

    frame = read_image_bytes(read_input(args.input), name) if is_stdio(args.input) else read_image(args.input)
    check_output(output, overwrite=args.overwrite, input_name=args.input)

    codec = _codec()
    options = encode_options(args)
    log.info("%s: encoding %dx%d %s with preset %s", name, frame.width, frame.height,
             frame.pix_fmt, args.preset)
    with progress_callback(name, quiet=args.quiet, mode=args.progress) as bar:
        result = codec.encode_frame(frame, options, progress=bar if bar.enabled else None)
    write_output(output, result.data, overwrite=args.overwrite)

    if not args.quiet:
        info = result.info
        note(f"{output_name(output)}: {info.width}x{info.height} {info.pix_fmt}, "
             f"{len(result.data)} bytes, {info.bpp:.4f} bpp, PSNR {info.psnr:.2f} dB, "
             f"{result.encode_seconds:.1f} s ({info.preset}, {result.steps} steps)")
    if args.json:
        _print_json(result.info.to_dict())
    return EXIT_OK


def _encode_video(args: argparse.Namespace, output: str) -> int:
    from lotto_media.plugins import media_io

    from .transcode import describe_encode, encode_video

    name = display_name(args.input)
    check_output(output, overwrite=args.overwrite, input_name=args.input)
    options = encode_options(args)
    with media_io.open_video(args.input, name=name) as reader:
        with progress_callback(name, quiet=args.quiet, mode=args.progress) as bar, open_output(output, overwrite=args.overwrite) as stream:
            summary = encode_video(reader, stream, options, gop=args.gop, frames=args.frames,
                                   progress=bar if bar.enabled else None, output_name=output)
    if not args.quiet:
        note(describe_encode(summary, output_name(output)))
    if args.json:
        psnr, planes = summary.mean_psnr()
        _print_json({"output": output, "frames": len(summary.frames), "groups": summary.groups,
                     "bytes": summary.bytes, "kbit_per_s": summary.kbit_per_s, "psnr": psnr, "psnr_planes": planes,
                     "seconds": summary.seconds, "per_frame": [vars(f) for f in summary.frames]})
    return EXIT_OK


def run_decode(args: argparse.Namespace) -> int:
    """``lotto-media decode``: .lotto -> PNG, or a video file / PNG sequence / stdout."""
    if args.output is None and is_stdio(args.input):
        args.parser.error("-o is required when the stream comes from stdin")
    name = display_name(args.input)
    if args.output is not None:
        check_output(args.output, overwrite=args.overwrite, input_name=args.input)  # before any work
    codec = _codec()
    source = sys.stdin.buffer if is_stdio(args.input) else _open_input(args.input)
    with source, codec.torch_threads(args.threads):
        prefix = _peek(source, codec.HEADER_PREFIX_BYTES)
        header = codec.stream_header(prefix, name)
        picture = header.n_frames == 1 and header.pix_fmt in ("gray", "rgb24")
        output = args.output
        if output is None:
            output = str(Path(args.input).with_suffix(".png" if picture else ".y4m"))
        if picture and not (is_stdio(output) or "%" in output or Path(output).suffix.lower() in _FILE_SUFFIXES):
            raise OutputError(f"{output}: a picture decodes to PNG; give the output a .png name")
        if _is_single_png(output) or (is_stdio(output) and picture and args.frames is None):
            if not picture:
                kind = f"{header.n_frames}-frame" if header.n_frames > 1 else "video"
                raise OutputError(f"{output}: {name} holds a {kind} {header.pix_fmt} stream; write a video file "
                                  f"(.mkv, .y4m, .nut, .mp4) or a PNG sequence (e.g. frames/%04d.png)")
            check_output(output, overwrite=args.overwrite, input_name=args.input)
            data = prefix + source.read()
            # A single picture is either intact or an error. Damage elsewhere in the file (a lost
            # index or metadata chunk) is reported as a warning by the reader itself, once.
            frame = codec.decode_frame(data, name, max_pixels=args.max_pixels)
            write_output(output, encode_png_bytes(frame), overwrite=args.overwrite)
            if not args.quiet:
                note(f"{output_name(output)}: {frame.width}x{frame.height} {frame.pix_fmt}")
            return EXIT_OK
        from lotto_media.stream import LottoReader

        # the damage is the error line _decode_video prints: the reader must not warn it too
        reader = LottoReader(_Rewound(prefix, source), name, frames=args.frames, warn=False,
                             max_pixels=args.max_pixels)
        return _decode_video(args, reader, output, name)


#: what decode writes, by suffix (a name with %d is a PNG sequence)
_FILE_SUFFIXES = (".png", ".y4m", ".nut", ".mkv", ".mp4")


class _Rewound:
    """A binary stream whose first bytes were already read: they are served again first."""

    def __init__(self, prefix: bytes, rest) -> None:
        self._prefix = memoryview(prefix)
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            piece = bytes(self._prefix[:size] if size >= 0 else self._prefix)
            self._prefix = self._prefix[len(piece):]
            return piece
        return self._rest.read(size)

    def seekable(self) -> bool:
        return False


def _peek(stream, size: int) -> bytes:
    """Read up to ``size`` bytes (fewer only at the end of the stream)."""
    pieces = bytearray()
    while len(pieces) < size:
        piece = stream.read(size - len(pieces))
        if not piece:
            break
        pieces += piece
    return bytes(pieces)


def _decode_video(args: argparse.Namespace, reader, output: str, name: str) -> int:
    from lotto_media.plugins import media_io

    from .transcode import decode_video, video_format_of

    check_output(output, overwrite=args.overwrite, input_name=args.input)
    audio = reader.audio if args.frames is None else None
    with media_io.open_video_writer(output, video_format_of(reader.header), audio, overwrite=args.overwrite) as writer:
        summary = decode_video(reader, writer)
        if summary.frames == 0:
            raise FormatError(f"{name}: no intact frame" + (f" ({summary.damage})" if summary.damage else ""))
    if not args.quiet:
        note(f"{output_name(output)}: {summary.frames} frames {reader.header.width}x{reader.header.height} "
             f"{reader.header.pix_fmt}, {summary.seconds:.1f} s ({summary.frames / max(summary.seconds, 1e-9):.1f} frames/s)")
    if summary.damage:
        # every intact frame was written; the loss is the failure
        error_line(f"{name}: {summary.damage}")
        return EXIT_FAILURE
    return EXIT_OK


def _is_single_png(output: str) -> bool:
    return not is_stdio(output) and "%" not in output and Path(output).suffix.lower() == ".png"


def _open_input(name: str):
    try:
        return open(name, "rb")
    except IsADirectoryError:
        raise LottoError(f"{name}: is a directory") from None
    except OSError as exc:
        raise LottoError(f"{name}: {exc.strerror or exc}") from None


def run_info(args: argparse.Namespace) -> int:
    """``lotto-media info``: describe a .lotto file."""
    name = display_name(args.input)
    # Damage is warned about by the container reader and shown in the output.
    info = _codec().inspect(read_input(args.input), name, max_pixels=args.max_pixels)
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
        ("frames", _describe_frames(info)),
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
        ("latent grids", _describe_grids(info)),
        ("format version", str(info.format_version)),
        ("damage", info.damage or "none"),
    ]
    width = max(len(label) for label, _ in rows)
    table = "".join(f"{label:<{width}}  {value}\n" for label, value in rows)
    if info.frames > 1:
        table += "\n" + format_frame_table(info)
    return table


def _describe_frames(info: object) -> str:
    if info.frames == 1:
        return "1"
    rate = f", {float(info.frame_rate):.3f} fps" if info.frame_rate else ", variable frame rate"
    return f"{info.frames} in {info.groups} group(s) of up to {info.gop}{rate}"


def format_frame_table(info: object) -> str:
    """One line per frame: number, group, type (I intra, P predicted), pts, bytes, PSNR the encoder measured."""
    lines = ["frame  group  type   pts          bytes  PSNR"]
    for d in info.frame_details:
        psnr = f"{d.psnr:.2f}" if math.isfinite(d.psnr) else "-"
        lines.append(f"{d.index:>5}  {d.group:>5}  {d.frame_type[:1]:<5}  {d.pts:<11}  {d.bytes:>5}  {psnr}")
    return "\n".join(lines) + "\n"


def _describe_hidden(info: object) -> str:
    if info.mod_hidden is None or info.arm_hidden is None:
        return "-"
    return f"modulation {info.mod_hidden}, ARM {info.arm_hidden}"


def _describe_grids(info: object) -> str:
    if info.n_levels is None:
        return "-"
    second = " + a second full-resolution grid" if info.fine_grids == 2 else ""
    return f"{info.n_levels} levels{second}"


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


def output_name(output: str) -> str:
    return "<stdout>" if is_stdio(output) else output


def note(message: str) -> None:
    """A status line for the person at the terminal (stderr, never stdout)."""
    print(f"{PROG}: {message}", file=sys.stderr)


def error_line(message: str) -> None:
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


def _checked(parse: type, check):
    """An argparse type: the text parsed as ``parse``, then held to the codec's own limit (so the
    parser refuses exactly what the codec would, in its words)."""
    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            kind = "an integer" if parse is int else "a number"
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        try:
            return check(value)
        except LottoError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__  # argparse names the type in its messages
    return convert


def parse_integer(text: str) -> int:
    """An option's whole number, or argparse's error naming the text."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _max_pixels(text: str) -> int | None:
    value = parse_integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"the pixel limit must be 0 (none) or positive, got {value}")
    return value or None


def _frame_range(text: str) -> range:
    start, sep, stop = text.partition(":")
    try:
        first = int(start) if start else 0
        last = int(stop) if stop else 2**62
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a frame range A:B (frame numbers from 0)") from None
    if not sep or first < 0 or last <= first:
        raise argparse.ArgumentTypeError(f"{text!r} is not a frame range A:B with 0 <= A < B")
    return range(first, last)


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
