"""`memory`: how this process hands memory back to the operating system, for batch jobs.

A report on a large run makes and frees hundreds of arrays of hundreds of megabytes. glibc's
``malloc`` gives each block above 32 MB its own ``mmap`` and hands it back on ``free``, so
the next array of that size gets fresh pages, which the kernel fills with zeros first. On the
2-core machines simkit is measured on, zeroing pages took 38 % of the CPU time of reading a
whole-network run folder (``perf``: ``clear_page_erms`` under ``do_huge_pmd_anonymous_page``).

:func:`keep_freed_memory` has ``malloc`` serve every block from its heap and keep what is freed
for the next arrays; :func:`return_freed_memory` hands what is free back at a point of the
caller's choosing, so the high-water mark does not stay. The command line sets the first for
``simkit run`` and ``simkit report``, processes that end when their job does (``simkit run``
hands back what the draw freed before the replay, ``simkit report`` what reading the run
freed); a long-lived process (a notebook, the emulator) is better left as it is. Both do nothing where the C library is not glibc.

Plain Python (``ctypes``): the core may import it.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any

__all__ = ["keep_freed_memory", "return_freed_memory"]

# mallopt's parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# Free memory at the top of the heap is kept up to this many bytes (the largest an int holds).
_KEEP = 2**31 - 1


@functools.cache
def _libc() -> Any:
    """glibc, or None where the C library is another one (or there is no such call)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl has no such function)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Have ``malloc`` keep freed memory for the next allocations of this process.

    Large blocks come from the heap instead of a mapping of their own, and free memory at
    the heap's top is kept up to 2 GB. Returns whether it took effect (glibc only).

    Examples
    --------
    >>> keep_freed_memory() in (True, False)
    True
    """
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP))


def return_freed_memory() -> None:
    """Hand the free memory of ``malloc``'s heaps back to the operating system (glibc's
    ``malloc_trim``); nothing elsewhere.

    Examples
    --------
    >>> return_freed_memory()
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
