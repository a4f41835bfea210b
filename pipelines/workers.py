"""Process pools that stop at Ctrl-C, for the commands that run jobs in parallel (batch, bench).

A ``concurrent.futures`` worker catches every exception of a job, KeyboardInterrupt included, and
takes the next queued job: after Ctrl-C a pool would go on encoding, the parent waiting on it (a
bench) or killing it part way through a write (a batch). Here a worker stops at its first
interrupt, and the parent drops the queued jobs and interrupts the running ones
(``StoppingPool``).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, NoReturn, TypeVar

R = TypeVar("R")

log = logging.getLogger(__name__)

#: how long interrupted workers may take to stop (their jobs' cleanup), all together, before they are killed
STOP_TIMEOUT_S = 10.0


class StoppingPool(ProcessPoolExecutor):
    """A spawn process pool (not fork: a forked child inherits torch's thread pools in whatever
    state they are) whose jobs run under ``stopping_at_interrupt`` and which, when an exception
    (Ctrl-C) leaves its ``with`` block, is stopped by ``interrupt_pool`` instead of waiting for
    its queue."""

    def __init__(self, max_workers: int, initializer: Callable[..., object] | None = None,
                 initargs: tuple = ()) -> None:
        super().__init__(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"),
                         initializer=initializer, initargs=initargs)

    def submit(self, fn: Callable[..., R], /, *args: object, **kwargs: object) -> Future[R]:
        return super().submit(stopping_at_interrupt, fn, *args, **kwargs)

    def __exit__(self, exc_type, exc_value, traceback) -> bool:
        if exc_type is not None:
            interrupt_pool(self)
            return False
        return super().__exit__(exc_type, exc_value, traceback)


def stopping_at_interrupt(function: Callable[..., R], *args: object, **kwargs: object) -> R:
    """``function(*args, **kwargs)`` in a pool's worker, which exits at a KeyboardInterrupt instead of
    reporting it and taking the next job. The job's own cleanup (``finally`` blocks, temporary
    outputs removed) has run by then; nothing is reported for it.

    SIGTERM raises the same interrupt: when one worker exits, the pool's manager thread
    terminates the others, which may be in the middle of a write. Only the first signal raises: a
    terminal's Ctrl-C reaches a worker twice (the process group's signal, then the parent's relay),
    and the second must not break into the first one's cleanup."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop_once)
    try:
        return function(*args, **kwargs)
    except KeyboardInterrupt:
        _exit_interrupted()
    finally:
        # between jobs there is nothing to clean up: an interrupt there ends the worker quietly
        # (the pool's loop would print a traceback for it)
        signal.signal(signal.SIGINT, _exit_interrupted)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


#: the signals that stop a worker's job
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_once(signum: int, frame: object) -> None:
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise KeyboardInterrupt


def _exit_interrupted(*_: object) -> NoReturn:
    os._exit(128 + signal.SIGINT)  # the shell's status for a death by SIGINT


def interrupt_pool(pool: ProcessPoolExecutor) -> None:
    """On the parent's Ctrl-C: drop the queued jobs, interrupt the running ones (a terminal sends
    SIGINT to the whole process group; a ``kill -INT`` reaches the parent alone), and wait for the
    workers to stop."""
    processes: list[multiprocessing.process.BaseProcess] = list(
        (getattr(pool, "_processes", None) or {}).values())  # not public; best effort
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            try:
                os.kill(process.pid, signal.SIGINT)
            except OSError:
                pass
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        # the exit is read from the worker's sentinel, not from join() and is_alive(): the pool's
        # manager thread may reap the same worker meanwhile, and then join() returns at once and
        # is_alive() still says True
        if not multiprocessing.connection.wait([process.sentinel], timeout=max(0.0, deadline - time.monotonic())):
            log.warning("a worker (pid %d) did not stop within %g s of the interrupt: killed", process.pid,
                        STOP_TIMEOUT_S)
            process.kill()
            multiprocessing.connection.wait([process.sentinel], timeout=STOP_TIMEOUT_S)
