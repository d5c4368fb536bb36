"""`clock`: the time stamps of the emulator's action calls (``connections.md`` §8).

A stamp is in ms since the epoch, never below a floor (one past the source run's last
event) and never below the previous stamp, so the recorded log applies in arrival order
and replays to the answers given. The clock holds no lock: the emulator stamps and applies
a call under its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CLOCKS", "Clock"]

CLOCKS: tuple[str, ...] = ("wall", "run")
"""``wall``: the wall clock in ms; ``run``: the run's clock, one ms per call."""


class Clock:
    """Stamps calls from `floor` on, by the wall clock or one ms per call.

    Examples
    --------
    >>> run = Clock("run", floor=1_000)
    >>> run.stamp(), run.stamp(), run.last
    (1000, 1001, 1001)
    >>> wall = Clock("wall", floor=0, now=lambda: 5)
    >>> wall.stamp(), wall.stamp()
    (5, 5)
    """

    def __init__(self, kind: str, floor: int, now: Callable[[], int] | None = None) -> None:
        if kind not in CLOCKS:
            raise ValueError(f"clock: expected one of {', '.join(CLOCKS)}, found {kind!r}")
        self.kind = kind
        self.floor = floor
        self.last: int | None = None
        self._now = now if now is not None else time.time_ns
        self._scale = 1 if now is not None else 1_000_000

    def stamp(self) -> int:
        """The stamp of the next call."""
        if self.kind == "run":
            ts = self.floor if self.last is None else self.last + 1
        else:
            ts = max(self._now() // self._scale, self.floor, self.last or self.floor)
        self.last = ts
        return ts
