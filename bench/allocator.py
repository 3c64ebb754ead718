"""Keep large freed memory blocks for reuse (glibc): fewer page faults for big numpy temporaries."""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_BYTES = 1 << 30


def keep_large_blocks() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB for this process.

    By default glibc hands every freed block above 32 MB back to the kernel, so each of `bow`'s
    76 MB score matrices (and a ridge fit's 150 MB blocks) is page-faulted afresh: the cold demo
    spent ~15 s of its ~2 minutes in the kernel. Kept for reuse instead, that is ~5 s, for +3.5% peak
    memory (docs/benchmarks.md). Nothing is done when the user set ``MALLOC_MMAP_THRESHOLD_`` or
    ``MALLOC_TRIM_THRESHOLD_``, or off Linux/glibc; True when the thresholds were set."""
    if not sys.platform.startswith("linux") or {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & set(os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
