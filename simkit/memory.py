"""`memory`: how a batch process keeps the memory it frees, for its next arrays.

A run or a report on a large network makes and frees hundreds of arrays of hundreds of
megabytes, on the main thread and on worker threads. glibc's ``malloc`` gives each block
above 32 MB its own ``mmap`` and hands it back on ``free``; each worker thread gets an arena
of its own, whose blocks above 64 MB are mapped and unmapped the same way. The next array of
that size then gets fresh pages, which the kernel fills with zeros first, and on the virtual
machines simkit is measured on, a page the host has not backed yet (or has taken back: the
guest reports free pages to it) costs about 1 s per GB to touch. ``perf`` put 26-38 % of the
CPU time of a whole-network run or report in ``clear_page_erms``.

:func:`keep_freed_memory` has ``malloc`` serve every block of every thread from one heap and
keep what is freed there for the next arrays. The command line sets it for ``simkit run`` and
``simkit report``, processes that end when their job does; a long-lived process (a notebook,
the emulator) is better left as it is. It does nothing where the C library is not glibc.

Plain Python (``ctypes``): the core may import it.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any

__all__ = ["keep_freed_memory"]

# mallopt's parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
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
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Have ``malloc`` keep freed memory for the next allocations of this process.

    Large blocks come from the heap instead of a mapping of their own, threads started
    from now on share the main thread's heap (one arena), and free memory at the heap's top
    is kept up to 2 GB. Call it before the process starts threads: a thread that has
    allocated already keeps its own arena. Returns whether it took effect (glibc only).

    Examples
    --------
    >>> keep_freed_memory() in (True, False)
    True
    """
    libc = _libc()
    if libc is None:
        return False
    return all(
        bool(libc.mallopt(param, value))
        for param, value in ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _KEEP), (_M_ARENA_MAX, 1))
    )
