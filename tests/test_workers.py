"""pipelines.workers: a pool's worker stops at the first SIGINT or SIGTERM with its job's cleanup
done (the pool's manager thread terminates the other workers when one exits, so SIGTERM must
clean up as Ctrl-C does), and takes no further job."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

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
