"""The encoder's progress on stderr: a tqdm bar for a person, JSON lines for a program.

The core reports ``Progress`` records through a callback; this module only renders them. With
``--progress auto`` (the default) a bar is drawn only when a person is watching (stderr is a
terminal) and did not ask for quiet, so logs and pipes stay clean; ``--progress json`` writes one
JSON object per line (at most one a second, and the last step of every phase) wherever stderr goes.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from typing import TextIO

from tqdm import tqdm

from lotto_media.reports import Progress


# tqdm puts ", " in front of a non-empty postfix itself.
_BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}"


def format_seconds(seconds: float) -> str:
    """Compact duration for a status line: 42s, 3m05s, 1h02m."""
    if seconds != seconds or seconds < 0:  # NaN or unknown
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def describe(progress: Progress) -> str:
    """The numbers shown next to the bar (the frame too when a video is being coded)."""
    frame = f"frame {progress.frame + 1}/{progress.frames}  " if progress.frames > 1 else ""
    return (f"{frame}loss {progress.loss:.4g}  PSNR {progress.psnr:.2f} dB  "
            f"{progress.bpp:.3f} bpp  ETA {format_seconds(progress.eta_s)}")


class ProgressBar:
    """Callable progress sink; use as a context manager so the bar is closed on every exit.

    ``enabled=None`` decides from the stream: draw only on a terminal.
    """

    def __init__(self, label: str, *, enabled: bool | None = None, stream: TextIO | None = None,
                 min_interval: float = 0.2) -> None:
        self._label = label
        self._min_interval = min_interval
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = _is_terminal(self._stream) if enabled is None else enabled
        self._bar: tqdm | None = None

    @property
    def enabled(self) -> bool:
        return self._enabled

    def __call__(self, progress: Progress) -> None:
        if not self._enabled:
            return
        if self._bar is None:
            # A terminal that reports a 0x0 size (some ptys, CI consoles) would make tqdm draw
            # nothing at all: fall back to a fixed size there.
            size = shutil.get_terminal_size(fallback=(0, 0))
            known = size.columns > 0 and size.lines > 0
            self._bar = tqdm(total=progress.total, file=self._stream, bar_format=_BAR_FORMAT,
                             desc=self._label, dynamic_ncols=known,
                             ncols=None if known else 100, nrows=None if known else 24,
                             leave=False, mininterval=self._min_interval)
        restart = progress.step < self._bar.n  # a video's next group: its search counts from 0 again
        if restart:
            self._bar.reset(total=progress.total)
        if self._bar.total != progress.total:
            self._bar.total = progress.total
        self._bar.set_description_str(f"{self._label} [{progress.phase}]", refresh=False)
        self._bar.set_postfix_str(describe(progress), refresh=False)
        self._bar.update(max(0, progress.step - self._bar.n))
        if restart:
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class JsonProgress:
    """Callable progress sink writing JSON lines: ``{"event": "progress", "input": ..., "phase": ...,
    "step": ..., "total": ..., "frame": ..., "frames": ..., "loss": ..., "psnr": ..., "bpp": ...,
    "elapsed_s": ..., "eta_s": ...}`` (unknown numbers are null)."""

    enabled = True

    def __init__(self, label: str, *, stream: TextIO | None = None, min_interval: float = 1.0) -> None:
        self._label = label
        self._stream = stream if stream is not None else sys.stderr
        self._min_interval = min_interval
        self._last = -math.inf

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.step < progress.total and now - self._last < self._min_interval:
            return
        self._last = now
        record = {"event": "progress", "input": self._label, "phase": progress.phase, "step": progress.step,
                  "total": progress.total, "frame": progress.frame, "frames": progress.frames}
        for key in ("loss", "psnr", "bpp", "elapsed_s", "eta_s"):
            value = float(getattr(progress, key))
            record[key] = round(value, 4) if math.isfinite(value) else None
        write_json_line(self._stream, record)

    def close(self) -> None:
        pass

    def __enter__(self) -> "JsonProgress":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_json_line(stream: TextIO, record: dict) -> None:
    stream.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
    stream.flush()


#: ``--progress``: auto draws a bar on a terminal only; none is what -q gives
PROGRESS_MODES = ("auto", "bar", "json", "none")


def progress_callback(label: str, *, quiet: bool, mode: str = "auto") -> ProgressBar | JsonProgress:
    """The sink the CLI hands to the encoder (``enabled`` says whether it shows anything)."""
    if mode == "json" and not quiet:
        return JsonProgress(label)
    if quiet or mode == "none":
        return ProgressBar(label, enabled=False)
    return ProgressBar(label, enabled=True if mode == "bar" else None)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or file-less streams
        return False
