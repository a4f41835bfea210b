"""Keep freed memory in the process: glibc's allocator tuned for the search's per-step tensors.

Every search step allocates and frees the same tensors of several to tens of MB (a layer's
activations and their gradients over the picture). By default glibc gives such blocks back to the
kernel when they are freed (they lie above its mmap threshold, or at the top of the heap above its
trim threshold), so the next step takes page faults to get them again: at 384x256 that made steps
8-15 % slower (docs/RESULTS.md). Raising both thresholds keeps the memory for reuse.

The setting is the process's, for its lifetime: the process then keeps its peak memory until it
exits. An application decides that, not a library call made on its behalf: the command line and its
worker processes call ``retain_freed_memory``; a program that embeds the codec may call it too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: both thresholds as high as mallopt takes them (an int)
_NEVER = 2**31 - 1


def retain_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks in the process rather than return them to the
    kernel. True when it took the settings; False where the C library is not glibc (nothing
    changes there)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    # both, in this order: setting one alone ends glibc's own adjustment of the other and, measured,
    # made steps up to 3x slower (the trim threshold alone) or slower than the default (mmap alone)
    applied = mallopt(_M_MMAP_THRESHOLD, _NEVER) == 1 and mallopt(_M_TRIM_THRESHOLD, _NEVER) == 1
    if not applied:
        log.debug("mallopt refused the thresholds: freed memory goes back to the kernel as before")
    return applied
