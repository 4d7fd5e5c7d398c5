"""Process-wide memory allocator setting that makes CPU training steps faster (glibc only).

A training step frees and re-allocates the same large buffers every time: with a 152k-token vocabulary an LM
head's weight gradient is ~80 MB even for a tiny model (where it is not factored, `train/tied_embedding.py`). glibc
serves every allocation above its mmap threshold (at most 32 MiB) with a fresh `mmap` and gives it back with
`munmap` when freed, so each step the kernel zero-fills and page-faults those buffers in again, 4 KiB at a time:
about a tenth of a small model's step on the CPU (measured with `benchmarks/distill_step.py`).

`keep_freed_memory` tells glibc to serve large allocations from its heap and not to trim the heap, so a freed
buffer is reused by the next step without page faults. Peak memory stays the same (the same buffers are needed
at the same time); memory freed late in a process is kept for reuse rather than returned to the system.
The `qadistill` command calls it at start. Set ``QADISTILL_MALLOC_TUNING=0`` to keep glibc's defaults; glibc's own
``MALLOC_MMAP_MAX_`` / ``MALLOC_TRIM_THRESHOLD_`` variables, when set, also win.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

OPT_OUT = "QADISTILL_MALLOC_TUNING"
M_TRIM_THRESHOLD = -1  # glibc mallopt parameter numbers (malloc.h)
M_MMAP_MAX = -4
KEEP_UP_TO_BYTES = 2**31 - 1  # mallopt takes a C int: the heap is trimmed only when more than 2 GiB are free


def _glibc():
    """The C library, or None where it is not glibc on Linux (musl has neither mallopt nor malloc_trim)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Large allocations from the heap and no trimming (glibc `mallopt`); returns whether it was applied."""
    if os.environ.get(OPT_OUT, "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    if {"MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_"} & set(os.environ) or (libc := _glibc()) is None:
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_UP_TO_BYTES))


def return_free_memory() -> bool:
    """Give the heap's free pages back to the system (glibc `malloc_trim`); returns whether it ran.

    Called once loading is done (models, tokenizer, data): loading frees much of what it parsed (tokenizer
    files, configs), and with `keep_freed_memory` nothing would return it. Pages handed back are faulted in again
    only if a later allocation reuses them.
    """
    if (libc := _glibc()) is None:
        return False
    libc.malloc_trim(0)
    return True
