"""``lotto-media batch``: many files, coded in parallel, resumable, with a JSON line per input.

The inputs (folders, globs, files) are mirrored under the output folder: ``IN/a/b.png`` becomes
``OUT/a/b.lotto`` (``--decode``: ``OUT/a/b.png`` for a picture, ``OUT/a/b.mkv`` for a video). Each
job is one file and runs in a worker: a local process pool by default (no server), or a Ray
cluster (``--engine ray``). Jobs never share an output, every output is written under a temporary
name and renamed when complete (an interrupted run leaves no file that looks finished), and one
failing input never stops the others: its error becomes its report line and the exit status 1.

Threads: each job's torch threads times the jobs running at once never exceed the machine's cores
unless the user asks for both numbers; Ray jobs get the CPUs Ray assigns them.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import glob
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence, TextIO

from lotto_media.allocator import retain_freed_memory
from lotto_media.container.header import DEFAULT_MAX_PIXELS
from lotto_media.errors import LottoError
from lotto_media.options import EncodeOptions

from .fileio import is_stdio
from .progress import format_seconds, write_json_line
from .workers import StoppingPool

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
#: what a folder contributes to an encode: pictures and the video files PyAV reads
PICTURE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".ppm", ".pgm", ".pnm", ".gif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".webm", ".mov", ".y4m", ".nut", ".avi", ".m4v", ".mpg", ".mpeg",
                            ".ts", ".mts", ".m2ts", ".flv", ".ogv", ".wmv", ".3gp"})
LOTTO_SUFFIX = ".lotto"
#: what a decoded video is written as (by default)
DECODE_VIDEO_SUFFIXES = (".mkv", ".mp4", ".nut", ".y4m")
DEFAULT_DECODE_VIDEO_SUFFIX = ".mkv"
STATUS_OK, STATUS_SKIPPED, STATUS_FAILED = "ok", "skipped", "failed"


@dataclass(frozen=True)
class Job:
    """One input file and where its output goes (the suffix is chosen by the worker when decoding:
    a picture becomes .png, a video ``BatchSettings.video_suffix``)."""

    input: str
    output: str


@dataclass(frozen=True)
class BatchSettings:
    """What every job of a batch shares (picklable: it travels to the workers)."""

    options: EncodeOptions
    gop: int = 16
    frames: range | None = None
    decode: bool = False
    video_suffix: str = DEFAULT_DECODE_VIDEO_SUFFIX
    overwrite: bool = False
    skip_existing: bool = False
    threads: int | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # with decode: the decoder's pixel limit


@dataclass
class Plan:
    """The jobs of a batch, and the inputs that could not become a job (each one a failure line)."""

    jobs: list[Job]
    failures: list[dict]


# --------------------------------------------------------------------------- finding the inputs

def plan_jobs(inputs: Sequence[str], output_dir: str | Path, *, decode: bool = False) -> Plan:
    """Mirror folders, globs and files under ``output_dir``: one job per media file found.

    A folder contributes its pictures and videos (``.lotto`` files when decoding), searched
    recursively; a glob its matches; a file named on the command line is always a job (and fails
    with the reader's message if it is not media). Two inputs that would write the same output
    are both kept out, each with an error line, rather than one silently replacing the other."""
    out_root = Path(output_dir)
    wanted = frozenset({LOTTO_SUFFIX}) if decode else PICTURE_SUFFIXES | VIDEO_SUFFIXES
    found: list[tuple[Path, Path]] = []  # (input file, its path relative to the output root)
    failures: list[dict] = []
    for spec in inputs:
        path = Path(spec)
        if path.is_dir():
            matches = [(f, f.relative_to(path)) for f in _walk(path, wanted, exclude=out_root)]
            if not matches:
                kinds = ".lotto files" if decode else "pictures or videos"
                failures.append(_failure(spec, None, f"{spec}: no {kinds} in this folder"))
            found.extend(matches)
        elif path.is_file():
            found.append((path, Path(path.name)))
        elif glob.has_magic(spec):
            root = _glob_root(spec)
            matches = sorted(Path(m) for m in glob.glob(spec, recursive=True) if Path(m).is_file())
            if not matches:
                failures.append(_failure(spec, None, f"{spec}: no file matches"))
            found.extend((m, m.relative_to(root) if m.is_relative_to(root) else Path(m.name)) for m in matches)
        else:
            failures.append(_failure(spec, None, f"{spec}: no such file or directory"))

    by_output: dict[Path, list[Path]] = {}
    for source, relative in found:
        target = out_root / (relative.with_suffix("") if decode else relative.with_suffix(LOTTO_SUFFIX))
        by_output.setdefault(target, []).append(source)
    jobs = []
    seen_inputs: set[Path] = set()
    for target, sources in by_output.items():
        unique = list(dict.fromkeys(sources))
        fresh = [s for s in unique if s.resolve() not in seen_inputs]
        seen_inputs.update(s.resolve() for s in unique)
        if len(fresh) == 1:
            jobs.append(Job(str(fresh[0]), str(target)))
        elif len(fresh) > 1:
            names = ", ".join(str(s) for s in fresh)
            failures.extend(_failure(str(s), str(target), f"{s}: {len(fresh)} inputs ({names}) would write {target}; "
                                     "rename one or run them separately") for s in fresh)
    jobs.sort(key=lambda job: job.input)
    return Plan(jobs, failures)


def _walk(root: Path, suffixes: frozenset[str], *, exclude: Path) -> list[Path]:
    excluded = exclude.resolve()
    files = []
    for folder, subfolders, names in os.walk(root):
        here = Path(folder)
        # never descend into the output tree (an output folder inside the input folder)
        subfolders[:] = sorted(d for d in subfolders if (here / d).resolve() != excluded and not d.startswith("."))
        files.extend(here / n for n in sorted(names) if Path(n).suffix.lower() in suffixes and not n.startswith("."))
    return files


def _glob_root(pattern: str) -> Path:
    """The folder above a glob's first wildcard: what its matches are mirrored relative to."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


# --------------------------------------------------------------------------- one job

def run_job(job: Job, settings: BatchSettings) -> dict:
    """Do one job and describe it as a report line. Never raises for a bad input: its error is in
    the line (a KeyboardInterrupt still stops the worker, which leaves no partial output)."""
    from . import jobs

    start = time.perf_counter()
    output = job.output
    try:
        if settings.decode:
            output = job.output + jobs.decoded_suffix(job.input, settings.video_suffix)
        if Path(output).exists() and not settings.overwrite:
            if settings.skip_existing:
                return _record(job.input, output, STATUS_SKIPPED, bytes=Path(output).stat().st_size,
                               seconds=time.perf_counter() - start)
            return _failure(job.input, output, f"{output}: already exists (--skip-existing resumes, -y overwrites)")
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        if settings.decode:
            result = jobs.decode_file(job.input, output, overwrite=settings.overwrite, threads=settings.threads,
                                      max_pixels=settings.max_pixels)
        else:
            options = replace(settings.options, threads=settings.threads)
            result = jobs.encode_file(job.input, output, options, gop=settings.gop, frames=settings.frames,
                                      overwrite=settings.overwrite)
    except LottoError as exc:
        return _failure(job.input, output, str(exc), seconds=time.perf_counter() - start)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return _failure(job.input, output, f"{exc.filename or job.input}: {reason}", seconds=time.perf_counter() - start)
    except Exception as exc:  # a bug: the batch goes on, the line says what broke
        log.exception("%s: internal error", job.input)
        return _failure(job.input, output, f"{job.input}: internal error ({type(exc).__name__}: {exc})",
                        seconds=time.perf_counter() - start)
    return _record(job.input, result.output, STATUS_OK, kind=result.kind, bytes=result.bytes, frames=result.frames,
                   width=result.width, height=result.height, bpp=result.bpp, psnr=result.psnr,
                   psnr_planes=result.psnr_planes, seconds=result.seconds)


def _record(input_name: str, output: str | None, status: str, **fields: object) -> dict:
    record: dict = {"input": input_name, "output": output, "status": status, "kind": None, "bytes": None,
                    "frames": None, "width": None, "height": None, "bpp": None, "psnr": None, "psnr_planes": None,
                    "seconds": None, "error": None}
    record.update(fields)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def _failure(input_name: str, output: str | None, message: str, **fields: object) -> dict:
    return _record(input_name, output, STATUS_FAILED, error=" ".join(message.split()), **fields)


# --------------------------------------------------------------------------- engines

ResultSink = Callable[[dict], None]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def split_threads(n_jobs: int, jobs: int | None, threads: int | None, cores: int) -> tuple[int, int]:
    """(workers, torch threads per worker): what the user gave, the rest chosen so that workers x
    threads <= cores. Only both numbers given may exceed the cores (the user asked for it)."""
    if jobs is None and threads is None:
        jobs = max(1, min(n_jobs, cores))
    if jobs is None:
        jobs = max(1, min(n_jobs, cores // threads))
    if threads is None:
        threads = max(1, cores // jobs)
    if jobs * threads > cores:
        log.warning("%d jobs x %d threads oversubscribe the %d cores", jobs, threads, cores)
    return jobs, threads


def run_local(plan: Sequence[Job], settings: BatchSettings, workers: int, on_result: ResultSink) -> None:
    """Run the jobs in a pool of worker processes (or in this process for one worker)."""
    if workers <= 1 or len(plan) <= 1:
        for job in plan:
            on_result(run_job(job, settings))
        return
    # Ctrl-C: the queued jobs are dropped, the running ones are interrupted like a foreground
    # encode (their temporary outputs are removed), then the pool is gone.
    with StoppingPool(workers, initializer=_quiet_worker) as pool:
        # the workers start during the submissions (spawned on demand), with these variables
        with _thread_environment(settings.threads):
            futures = {pool.submit(run_job, job, settings): job for job in plan}
        for future in concurrent.futures.as_completed(futures):
            job = futures[future]
            try:
                record = future.result()
            except concurrent.futures.process.BrokenProcessPool as exc:
                record = _failure(job.input, job.output, f"{job.input}: worker died ({exc})")
            on_result(record)


#: the thread pools of the native libraries a worker loads (OpenMP, numpy's OpenBLAS, MKL), which
#: would otherwise each start one thread per core in every worker
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _thread_environment(threads: int | None) -> Iterator[None]:
    """This process's environment, with the native thread counts of a worker, while workers start."""
    if threads is None:
        yield
        return
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _quiet_worker() -> None:
    # The parent owns the terminal: a worker's warnings still reach stderr, its Ctrl-C is the
    # parent's to relay (a terminal sends SIGINT to the whole process group anyway).
    logging.basicConfig(level=logging.WARNING, format="lotto-media: warning: %(message)s")
    retain_freed_memory()  # as the command line does in its own process


def run_ray(plan: Sequence[Job], settings: BatchSettings, threads: int, on_result: ResultSink, *,
            address: str | None = None) -> None:
    """Send each job to a Ray cluster as one task that asks for ``threads`` CPUs."""
    try:
        import ray
    except ImportError:
        raise LottoError("--engine ray needs Ray: pip install 'lotto-media[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        init = {"address": address} if address else {"num_cpus": usable_cores(), "include_dashboard": False}
        try:
            ray.init(**init, log_to_driver=True, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise LottoError(f"ray: cannot start or reach a cluster{f' at {address}' if address else ''}: {exc}") from None
    task = ray.remote(num_cpus=threads)(_run_ray_job)
    pending = {task.remote(job, settings): job for job in plan}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    record = _failure(job.input, job.output, f"{job.input}: ray task failed ({type(exc).__name__})")
                on_result(record)
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    finally:
        if started_here:
            ray.shutdown()


def _run_ray_job(job: Job, settings: BatchSettings) -> dict:
    import ray

    retain_freed_memory()  # a Ray worker is not the command line's process
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    threads = max(1, int(cpus)) if cpus else settings.threads
    return run_job(job, replace(settings, threads=threads))


# --------------------------------------------------------------------------- the report

class Report:
    """The JSON lines (one per input, as each finishes) and the tally for the summary."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self.counts = {STATUS_OK: 0, STATUS_SKIPPED: 0, STATUS_FAILED: 0}
        self.bytes = 0
        self.failures: list[dict] = []

    def add(self, record: dict) -> None:
        self.counts[record["status"]] += 1
        if record["status"] == STATUS_OK:
            self.bytes += record["bytes"] or 0
        if record["status"] == STATUS_FAILED:
            self.failures.append(record)
        if self._stream is not None:
            self._stream.write(json.dumps(record, sort_keys=True) + "\n")
            self._stream.flush()


# --------------------------------------------------------------------------- the command

def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser | None = None) -> None:
    from .cli import ExamplesFormatter, add_encoder_options, add_max_pixels, examples

    sub = commands.add_parser(
        "batch", parents=[common] if common is not None else [],
        help="code many pictures and videos in parallel, resumably",
        description="Code every picture and video under the input folders and globs into OUT_DIR, "
                    "mirroring the input tree (--decode: the reverse, .lotto to PNG for pictures and to a "
                    "video file for videos). Jobs run in parallel worker processes, or on a Ray cluster. "
                    "Each output is written under a temporary name and renamed when complete: rerun with "
                    "--skip-existing to resume an interrupted batch. One JSON line per input goes to "
                    "--report; exit status 1 when any input failed.",
        formatter_class=ExamplesFormatter,
        epilog=examples("lotto-media batch photos/ -o coded/ --quality 60 --report coded.jsonl",
                        "lotto-media batch 'shots/**/*.png' clips/ -o coded/ --skip-existing",
                        "lotto-media batch coded/ -o decoded/ --decode --video-format mp4",
                        "lotto-media batch photos/ -o coded/ --engine ray --address auto"))
    sub.add_argument("inputs", nargs="+", metavar="IN", help="input folder, glob (quoted) or file")
    sub.add_argument("-o", "--output-dir", required=True, metavar="OUT_DIR", help="where the outputs go")
    sub.add_argument("--decode", action="store_true", help="decode .lotto files instead of encoding")
    sub.add_argument("--video-format", choices=[s[1:] for s in DECODE_VIDEO_SUFFIXES],
                     default=DEFAULT_DECODE_VIDEO_SUFFIX[1:],
                     help=f"with --decode: the container of decoded videos (default: {DEFAULT_DECODE_VIDEO_SUFFIX[1:]})")
    sub.add_argument("--jobs", "-j", type=_positive_int, metavar="N",
                     help="files coded at once (default: the cores, divided by --threads)")
    sub.add_argument("--skip-existing", action="store_true",
                     help="leave inputs whose output exists alone (resumes an interrupted batch)")
    add_max_pixels(sub)
    sub.add_argument("--report", metavar="FILE.jsonl", help="write one JSON line per input (- for stdout)")
    sub.add_argument("--engine", choices=ENGINES, default="local",
                     help="local: a pool of worker processes (default); ray: a Ray cluster")
    sub.add_argument("--address", metavar="ADDR",
                     help="with --engine ray: the cluster to join (default: start a local Ray)")
    add_encoder_options(sub, threads_default="the cores divided by --jobs")
    sub.set_defaults(func=run_batch, parser=sub)


def _positive_int(text: str) -> int:
    from .cli import parse_integer

    value = parse_integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run_batch(args: argparse.Namespace) -> int:
    from .cli import EXIT_FAILURE, EXIT_OK, encode_options, error_line, note

    if args.skip_existing and args.overwrite:
        args.parser.error("--skip-existing and --overwrite exclude each other")
    if args.address and args.engine != "ray":
        args.parser.error("--address is for --engine ray")
    if args.decode and (args.quality is not None or args.lmbda is not None):
        args.parser.error("--quality and --lmbda are encoder options; --decode takes none")
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LottoError(f"{out_dir}: exists and is not a directory")

    plan = plan_jobs(args.inputs, out_dir, decode=args.decode)
    total = len(plan.jobs) + len(plan.failures)
    cores = usable_cores()
    workers, threads = split_threads(len(plan.jobs), args.jobs, args.threads, cores)
    settings = BatchSettings(options=encode_options(args), gop=args.gop, frames=args.frames, decode=args.decode,
                             video_suffix="." + args.video_format, overwrite=args.overwrite,
                             skip_existing=args.skip_existing, threads=threads, max_pixels=args.max_pixels)
    log.info("batch: %d inputs, %s engine, %d x %d threads", total, args.engine, workers, threads)

    start = time.perf_counter()
    with _report_stream(args.report) as stream:
        report = Report(stream)
        bar = _FileProgress(total, quiet=args.quiet, mode=args.progress)

        def on_result(record: dict) -> None:
            report.add(record)
            if record["status"] == STATUS_FAILED:
                bar.clear()
                error_line(record["error"])
            bar.advance(record)

        try:
            for record in plan.failures:
                on_result(record)
            if plan.jobs:
                if args.engine == "ray":
                    run_ray(plan.jobs, settings, threads, on_result, address=args.address)
                else:
                    run_local(plan.jobs, settings, workers, on_result)
        finally:
            bar.close()
    if not args.quiet:
        c = report.counts
        note(f"batch: {c[STATUS_OK]} {'decoded' if args.decode else 'encoded'}, {c[STATUS_SKIPPED]} skipped, "
             f"{c[STATUS_FAILED]} failed of {total} inputs; {report.bytes} bytes written, "
             f"{format_seconds(time.perf_counter() - start)}")
    return EXIT_FAILURE if report.counts[STATUS_FAILED] else EXIT_OK


class _report_stream:
    """The report file (written line by line, so an interrupted batch keeps the lines it had), stdout
    for ``-``, or nothing."""

    def __init__(self, name: str | None) -> None:
        self._name = name
        self._file: TextIO | None = None

    def __enter__(self) -> TextIO | None:
        if self._name is None:
            return None
        if is_stdio(self._name):
            return sys.stdout
        try:
            self._file = open(self._name, "w", encoding="utf-8")
        except OSError as exc:
            raise LottoError(f"{self._name}: cannot write the report ({exc.strerror or exc})") from None
        return self._file

    def __exit__(self, *exc_info: object) -> None:
        if self._file is not None:
            self._file.close()


class _FileProgress:
    """Files done / total with an ETA: a bar on stderr when it is a terminal (``--progress auto``) or
    always (``bar``), one JSON line per finished file with ``json``."""

    def __init__(self, total: int, *, quiet: bool, mode: str) -> None:
        self._bar = None
        self._json = not quiet and mode == "json"
        self._total = total
        self._done = 0
        self._start = time.perf_counter()
        if not quiet and total > 0 and (mode == "bar" or (mode == "auto" and sys.stderr.isatty())):
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="file", file=sys.stderr, desc="batch", leave=False)

    def advance(self, record: dict) -> None:
        self._done += 1
        if self._bar is not None:
            self._bar.set_postfix_str(Path(record["input"]).name, refresh=False)
            self._bar.update(1)
        if self._json:
            elapsed = time.perf_counter() - self._start
            eta = elapsed / self._done * (self._total - self._done)
            write_json_line(sys.stderr, {"event": "file", "input": record["input"], "status": record["status"],
                                         "done": self._done, "total": self._total,
                                         "elapsed_s": round(elapsed, 3), "eta_s": round(eta, 3)})

    def clear(self) -> None:
        if self._bar is not None:
            self._bar.clear()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
