"""simkit.memory: the allocator settings of a batch process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from simkit import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_takes_effect_and_arrays_still_work() -> None:
    code = (
        "import numpy as np, simkit.memory as m\n"
        "ok = m.keep_freed_memory()\n"
        "total = 0\n"
        "for i in range(5):\n"
        "    a = np.arange(20_000_000, dtype=np.int64); total += int(a[-1]); del a\n"
        "m.return_freed_memory()\n"
        "print(ok, total)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert out == ["True", str(5 * 19_999_999)]


def test_nothing_happens_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_libc", lambda: None)
    assert memory.keep_freed_memory() is False
    memory.return_freed_memory()
