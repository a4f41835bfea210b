"""Keep freed memory in the process: glibc's allocator tuned for the search's per-step tensors.

Every search step allocates and frees the same tensors of several to tens of MB (a layer's
activations and their gradients over the picture). By default glibc gives such blocks back to the
kernel when they are freed (they lie above its mmap threshold, or at the top of the heap above its
trim threshold), so the next step takes page faults to get them again: at 384x256, keeping them
made steps 19-29 % faster (docs/RESULTS.md).

The setting is the process's, for its lifetime: the process then keeps its peak memory until it
exits. An application decides that, not a library call made on its behalf: the command line and its
worker processes call ``retain_freed_memory``; a program that embeds the codec may call it too.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
#: the largest value mallopt's int takes; glibc before about 2.34 refuses an mmap threshold above
#: 32 MiB, where no mmap at all (M_MMAP_MAX 0) does the same
_NEVER = 2**31 - 1


def _glibc_mallopt():  # -> the C function, or None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        return ctypes.CDLL(None).mallopt
    except (ValueError, OSError, AttributeError):  # not glibc (musl, macOS, Windows), or no symbol
        return None


def retain_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks in the process rather than return them to the
    kernel. True when it took the settings; False, and nothing changed, where it did not (a C
    library other than glibc, or glibc refusing them)."""
    if not sys.platform.startswith("linux"):
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    # both, the mmap side first: setting one alone ends glibc's own adjustment of the other and,
    # measured, made steps up to 3x slower (the trim threshold alone) or slower than the default
    # (the mmap threshold alone)
    no_mmap = mallopt(_M_MMAP_THRESHOLD, _NEVER) == 1 or mallopt(_M_MMAP_MAX, 0) == 1
    applied = no_mmap and mallopt(_M_TRIM_THRESHOLD, _NEVER) == 1
    if not applied:
        log.info("glibc refused the malloc thresholds: freed memory goes back to the kernel as before")
    return applied
