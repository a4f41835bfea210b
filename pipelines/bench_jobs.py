"""What every ``lotto-media bench`` benchmark shares: point records and the sink that keeps them,
running points inline or in a process pool, error records, and the exit status.

Each finished point is appended as one JSON line (so a long run keeps what it measured) and
announced on stderr. A failing point is recorded with ``status: "error"`` and never stops the
others; the exit status is then 1.
"""

from __future__ import annotations

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
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import ModuleType

import numpy as np

from lotto_media.allocator import retain_freed_memory
from lotto_media.errors import LottoError, UnsupportedError
from lotto_media.frame import Frame

from .workers import StoppingPool

log = logging.getLogger(__name__)

PROG = "lotto-media"

Record = dict[str, object]


def _command_line() -> str:
    return shlex.join([PROG if sys.argv[0].endswith(("lotto-media", "__main__.py")) else sys.argv[0], *sys.argv[1:]])


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
    # Ctrl-C: the points measured so far are in the file; the rest are dropped, not run
    with StoppingPool(jobs, initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(worker, task): task for task in tasks}
        for future in as_completed(futures):
            try:
                record = future.result()
            except BrokenProcessPool as exc:
                record = {**futures[future].base_record(), "status": "error", "error": f"worker died: {exc}"}
            on_result(record)


def _exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Pool initializer: a worker whose bench process was killed (SIGTERM, SIGKILL: no chance to
    shut the pool down) exits instead of searching on for minutes or hours as an orphan. It
    also keeps freed memory, as the command line's own process does (lotto_media.allocator)."""
    retain_freed_memory()

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


def _unique_names(paths: Sequence[Path]) -> list[str]:
    names, seen = [], {}
    for path in paths:
        name = path.stem
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


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
