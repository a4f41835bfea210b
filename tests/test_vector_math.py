"""MKL's vector math gives each function the same kernel from a process's first threaded call on
(lotto_media.search.vector_math): without that, the same encode could give other bytes."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import torch
from lotto_media.search.vector_math import resolve_vector_math
torch.set_num_threads(2)
if sys.argv[1] == "resolve":
    resolve_vector_math()
# two chunks, one a thread: the process's first threaded call is the one that can race
y = torch.linspace(-10, 10, 2100)
print("changed" if not torch.equal(torch.tanh(y), torch.tanh(y)) else "same")
"""


def changed_processes(mode: str, processes: int) -> int:
    """How many of ``processes`` fresh processes (a kernel is picked once a process), one after
    another, saw their first threaded tanh differ from their second."""
    changed = 0
    for _ in range(processes):
        run = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        changed += run.stdout.strip() != "same"
    return changed


def test_the_first_threaded_vector_math_call_gives_what_later_calls_give():
    """Without ``resolve_vector_math`` here (torch 2.13, two threads, AMX Xeon) 7 of 32 processes
    run one after another saw it differ, none with it (0 of 16 two at a time: the race needs an
    idle machine). Ten processes catch a missing resolve nine times in ten."""
    assert changed_processes("resolve", 10) == 0
