"""`measure`: how the benchmarks time things and read memory.

Wall time with :func:`time.perf_counter`. Peak resident memory (RSS): for a stage of this
process, the kernel's high-water mark (``VmHWM``), reset before the stage through
``/proc/self/clear_refs``; for a child command, the larger of the kernel's peak for the
child (``wait4``, the same figure as :func:`resource.getrusage` gives for children) and the
peak of the RSS summed over the child and all its descendants, sampled from ``/proc`` while
it runs (so worker processes count). Linux only.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["Process", "best_of", "peak_rss_self", "reset_peak_rss", "rss_self", "run_process"]

T = TypeVar("T")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def rss_self() -> int:
    """RSS of this process now, in bytes."""
    return _status_kb("VmRSS")


def peak_rss_self() -> int:
    """Peak RSS of this process since the last :func:`reset_peak_rss`, in bytes."""
    return _status_kb("VmHWM")


def reset_peak_rss() -> None:
    """Start a new peak: the high-water mark drops to the RSS now."""
    Path("/proc/self/clear_refs").write_text("5")


def best_of(repeat: int, fn: Callable[[], T]) -> tuple[float, T]:
    """Run `fn` `repeat` times; the shortest wall time in seconds and the last result."""
    best = float("inf")
    result: T
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


@dataclass(frozen=True)
class Process:
    """A finished child command: wall time, peak RSS (bytes), exit status, output."""

    seconds: float
    peak_rss: int
    returncode: int
    stdout: str


def _children(pid: int) -> list[int] | None:
    """The child processes of `pid`, from the kernel's list of each of its threads' children
    (None where the kernel keeps no such list)."""
    found: list[int] = []
    try:
        for task in (Path("/proc") / str(pid) / "task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except FileNotFoundError as exc:
        if exc.filename and str(exc.filename).endswith("children"):
            return None
    except OSError:
        pass
    return found


def _all_children() -> dict[int, list[int]]:
    """Every process's children, read from every process's ``stat`` (2 ms of CPU or so)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _tree_rss(root: int) -> int:
    """RSS in bytes of `root` and all its descendants now (0 for those already gone).

    The tree is walked from the kernel's lists of children where it keeps them: a walk of
    all of ``/proc`` costs about 2 ms of CPU, taken from the command measured."""
    listed: dict[int, list[int]] | None = None
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        kids = _children(pid)
        if kids is None:
            listed = listed if listed is not None else _all_children()
            kids = listed.get(pid, [])
        todo.extend(kids)
        with contextlib.suppress(OSError):
            total += int((Path("/proc") / str(pid) / "statm").read_text().split()[1]) * _PAGE
    return total


def run_process(command: Sequence[str], *, sample_every: float = 0.02, at_most: float = 0.25) -> Process:
    """Run `command`; its wall time and the larger of the two peak RSS readings.

    A thread waits for the command to end, so its end is timed to the moment (sampling
    between sleeps would time it up to a pause late); ``/proc`` is sampled every
    `sample_every` seconds at first, then less and less often, up to every `at_most` seconds.
    """
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, text=True)
        ended = threading.Event()
        waited: list[Any] = []

        def wait() -> None:
            _, status, usage = os.wait4(child.pid, 0)
            waited.extend([time.perf_counter() - start, status, usage])
            ended.set()

        threading.Thread(target=wait, name="measure-wait", daemon=True).start()
        peak, pause = 0, sample_every
        while not ended.is_set():
            peak = max(peak, _tree_rss(child.pid))
            ended.wait(pause)
            pause = min(at_most, pause * 1.1)
        seconds, status, usage = waited
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return Process(seconds, max(peak, usage.ru_maxrss * 1024), child.returncode, out.read())
