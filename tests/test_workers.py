"""pipelines.workers: a pool's worker stops at the first SIGINT or SIGTERM with its job's cleanup
done (the pool's manager thread terminates the other workers when one exits, so SIGTERM must
clean up as Ctrl-C does), and takes no further job."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from multiprocessing.connection import wait
from pathlib import Path

import pytest

from lotto_media.pipelines import workers
from lotto_media.pipelines.workers import interrupt_pool, stopping_at_interrupt


def job_with_cleanup(folder: str) -> int:
    """Announce the job (its worker's pid), wait, and leave a mark from its cleanup."""
    Path(folder, f"started.{os.getpid()}.{time.monotonic_ns()}").touch()
    try:
        time.sleep(60)
    finally:
        Path(folder, f"cleaned.{os.getpid()}").touch()
    return os.getpid()


def _wait_for(folder: Path, prefix: str, count: int, timeout: float = 60) -> list[Path]:
    deadline = time.monotonic() + timeout
    while len(found := sorted(folder.glob(prefix + "*"))) < count:
        assert time.monotonic() < deadline, f"no {prefix} mark in time"
        time.sleep(0.05)
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_worker_cleans_up_and_takes_no_further_job(tmp_path, signum):
    pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"))
    try:
        futures = [pool.submit(stopping_at_interrupt, job_with_cleanup, str(tmp_path)) for _ in range(3)]
        (started,) = _wait_for(tmp_path, "started.", 1)
        worker = int(started.name.split(".")[1])
        os.kill(worker, signum)
        _wait_for(tmp_path, f"cleaned.{worker}", 1, timeout=10)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        # the pool may start a new worker for the queued jobs; the stopped one took none
        assert [p.name for p in tmp_path.glob(f"started.{worker}.*")] == [started.name]
    finally:
        interrupt_pool(pool)
    assert not any(f.done() and not f.cancelled() and f.exception() is None for f in futures)


def job_that_goes_on(folder: str) -> None:
    """A job that swallows the interrupt and goes on, as a pool's plain worker would."""
    Path(folder, "started").touch()
    for _ in range(2):
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            pass


def test_a_worker_that_goes_on_after_the_interrupt_is_killed_and_named(tmp_path, monkeypatch, caplog):
    """interrupt_pool waits STOP_TIMEOUT_S for each worker, then kills it and says so: the batch's
    Ctrl-C test reads that warning instead of timing the stop."""
    monkeypatch.setattr(workers, "STOP_TIMEOUT_S", 1.0)
    pool = workers.StoppingPool(1)
    try:
        pool.submit(job_that_goes_on, str(tmp_path))
        _wait_for(tmp_path, "started", 1)
        processes = list(pool._processes.values())
    except BaseException:
        interrupt_pool(pool)
        raise
    with caplog.at_level("WARNING", logger=workers.__name__):
        interrupt_pool(pool)
    assert all(wait([p.sentinel], timeout=0) for p in processes)  # every worker has exited
    assert [r.getMessage() for r in caplog.records] == [
        f"a worker (pid {processes[0].pid}) did not stop within 1 s of the interrupt: killed"]
