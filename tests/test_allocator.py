"""lotto_media.allocator: after ``retain_freed_memory`` a freed block of tens of MB stays in the
process for the next one (what the search's steps reuse); without it glibc hands it back."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import os
    import sys
    import numpy as np
    from lotto_media.allocator import retain_freed_memory

    def resident_mb() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    applied = retain_freed_memory() if sys.argv[1] == "retain" else None
    block = np.ones(64 * 2**20 // 8)  # 64 MB, every page touched
    held = resident_mb()
    del block
    print(applied, held - resident_mb())
    """
)


def _given_back_mb(mode: str) -> tuple[str, float]:
    # glibc's own defaults in the child, whatever this process was started with
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "LD_PRELOAD")}
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True, env=env)
    applied, given_back = out.stdout.split()
    return applied, float(given_back)


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
                    reason="glibc's malloc on Linux only")
def test_freed_memory_stays_in_the_process_once_retained():
    applied, given_back = _given_back_mb("retain")
    assert applied == "True"
    assert given_back < 8  # the 64 MB stay resident, ready for the next step
    applied, given_back = _given_back_mb("default")
    assert applied == "None" and given_back > 56  # glibc's default returns them to the kernel


def test_the_command_line_and_its_workers_retain_freed_memory(monkeypatch):
    """The setting is the application's: the CLI's process and the pools it starts make it."""
    from pipelines import batch, bench_jobs, cli

    calls = []
    for module in (cli, batch, bench_jobs):
        monkeypatch.setattr(module, "retain_freed_memory", lambda: calls.append(True) or True)
    assert cli.main(["--version"]) == 0
    batch._quiet_worker()
    bench_jobs._exit_with_parent(os.getppid(), poll_s=3600)  # its watcher sleeps on: a daemon thread
    assert len(calls) == 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the settings are made on Linux only")
def test_a_glibc_that_refuses_the_mmap_threshold_gets_no_mmap_instead(monkeypatch):
    """glibc before about 2.34 takes an mmap threshold of at most 32 MiB: then no mmap at all,
    and the trim threshold as before; a C library without mallopt changes nothing."""
    from lotto_media import allocator

    calls = []

    def old_glibc(param: int, value: int) -> int:
        calls.append((param, value))
        return 0 if param == allocator._M_MMAP_THRESHOLD else 1

    monkeypatch.setattr(allocator, "_glibc_mallopt", lambda: old_glibc)
    assert allocator.retain_freed_memory() is True
    assert calls == [(-3, 2**31 - 1), (-4, 0), (-1, 2**31 - 1)]
    monkeypatch.setattr(allocator, "_glibc_mallopt", lambda: None)
    assert allocator.retain_freed_memory() is False
