"""simkit.memory: the allocator settings of a batch process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from simkit import memory

glibc = pytest.mark.skipif(
    memory._libc() is None or not hasattr(memory._libc(), "mallinfo2"),
    reason="glibc's mallopt and mallinfo2 (glibc 2.33 on)",
)

# A worker thread makes and frees a 100 MB array; the child prints whether the settings took
# effect and how many bytes glibc held in mappings of their own meanwhile (mallinfo2).
_THREAD_ARRAY = """
import ctypes, sys, threading
import numpy as np
import simkit.memory as m

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
ok = m.keep_freed_memory() if sys.argv[1] == "keep" else None
mapped = []

def work():
    total = 0
    for _ in range(3):
        a = np.arange(12_500_000, dtype=np.int64)
        mapped.append(libc.mallinfo2().hblkhd)
        total += int(a[-1])
        del a
    mapped.append(total)

t = threading.Thread(target=work)
t.start()
t.join()
print(ok, max(mapped[:-1]), mapped[-1])
"""


def _thread_array(mode: str) -> list[str]:
    return subprocess.run(
        [sys.executable, "-c", _THREAD_ARRAY, mode], check=True, capture_output=True, text=True
    ).stdout.split()


@glibc
def test_a_worker_threads_large_array_comes_from_the_shared_heap() -> None:
    # Left as it is, glibc maps a thread's 100 MB block on its own (and unmaps it on free).
    ok, mapped, total = _thread_array("leave")
    assert ok == "None" and int(mapped) >= 100_000_000 and int(total) == 3 * 12_499_999
    # Kept: the block comes from the heap, which keeps it for the next one.
    ok, mapped, total = _thread_array("keep")
    assert ok == "True" and int(mapped) < 50_000_000 and int(total) == 3 * 12_499_999


def test_nothing_happens_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_libc", lambda: None)
    assert memory.keep_freed_memory() is False
