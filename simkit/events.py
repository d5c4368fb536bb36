"""`events`: action and policy event logs, and the order in which they apply.

Logs are columnar: one numpy array per column, in input order. Actions are stored as
their position in :data:`simkit.rules.ACTIONS`. The apply order of §5 lives here, in one
place, for every engine: actions in ``ts`` order, equal ``ts`` in input order; policy
events at a ``ts`` before the actions at that ``ts``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from simkit.rules import ACTIONS, Action

__all__ = ["FATES", "Demand", "Events", "Fate", "Policy", "apply_order"]

_ACTION_INDEX = {a.value: i for i, a in enumerate(ACTIONS)}


@dataclass(frozen=True, eq=False)
class Events:
    """Action events: at `ts` (ms since the epoch), `actor` does `action` to `target`.

    Examples
    --------
    >>> ev = Events.from_records([(1000, 1, 2, "connect"), (2000, 2, 1, "accept")])
    >>> len(ev), ev.actions()
    (2, ['connect', 'accept'])
    """

    ts: NDArray[np.int64]
    actor: NDArray[np.int64]
    target: NDArray[np.int64]
    action: NDArray[np.int8]

    @classmethod
    def from_records(cls, rows: Iterable[tuple[int, int, int, str | Action]]) -> Events:
        """Build a log from ``(ts, actor, target, action)`` rows."""
        rows = list(rows)
        try:
            codes = [_ACTION_INDEX[str(r[3])] for r in rows]
        except KeyError as exc:
            raise ValueError(
                f"unknown action {exc.args[0]!r}; expected one of {list(_ACTION_INDEX)}"
            ) from None
        return cls(
            ts=np.array([r[0] for r in rows], dtype=np.int64),
            actor=np.array([r[1] for r in rows], dtype=np.int64),
            target=np.array([r[2] for r in rows], dtype=np.int64),
            action=np.array(codes, dtype=np.int8),
        )

    @classmethod
    def empty(cls) -> Events:
        """A log with no events."""
        return cls.from_records([])

    def __len__(self) -> int:
        return len(self.ts)

    def actions(self) -> list[str]:
        """The action names, in input order."""
        return [ACTIONS[i].value for i in self.action.tolist()]


@dataclass(frozen=True, eq=False)
class Policy:
    """Policy events: from `ts` on, crossPod between `pod_a` and `pod_b` is `crosspod`."""

    ts: NDArray[np.int64]
    pod_a: NDArray[np.int64]
    pod_b: NDArray[np.int64]
    crosspod: NDArray[np.bool_]

    @classmethod
    def from_records(cls, rows: Iterable[tuple[int, int, int, bool]]) -> Policy:
        """Build a policy log from ``(ts, pod_a, pod_b, crosspod)`` rows."""
        rows = list(rows)
        return cls(
            ts=np.array([r[0] for r in rows], dtype=np.int64),
            pod_a=np.array([r[1] for r in rows], dtype=np.int64),
            pod_b=np.array([r[2] for r in rows], dtype=np.int64),
            crosspod=np.array([bool(r[3]) for r in rows], dtype=np.bool_),
        )

    @classmethod
    def empty(cls) -> Policy:
        """No policy changes."""
        return cls.from_records([])

    def __len__(self) -> int:
        return len(self.ts)


class Fate(IntEnum):
    """What became of a wish (a row of :class:`Demand`), stored as its position in :data:`FATES`.

    ``SENT``: the pair was reachable at the wish's time and the request was sent then.
    ``DEFERRED``: it was not; the wish waited and was sent later, once it was.
    ``BLOCKED``: it was not; the user tried anyway, was refused, and the wish was never sent.
    ``DROPPED``: it was not; the user did not try, and the wish was never sent.
    """

    SENT = 0
    DEFERRED = 1
    BLOCKED = 2
    DROPPED = 3

    @property
    def label(self) -> str:
        """The fate as written in ``demand.parquet``: ``sent``, ``deferred``, ``blocked``, ``dropped``."""
        return self.name.lower()


FATES: tuple[str, ...] = tuple(f.label for f in Fate)
"""The fates as labels, in code order."""


@dataclass(frozen=True, eq=False)
class Demand:
    """The wishes behind a synthetic log: at `ts`, `user` wants to connect with `target`.

    One row per wish, drawn whatever crossPod allows (see ``docs/scenarios.md``), by `user`
    then `target` in a run's table (a person wishes for another once); `fate`
    (a :class:`Fate` code) tells what the network made of it, and `sent_ts` when its
    request was sent. `sent_ts` means something only where :attr:`was_sent` is true (the
    file holds a null elsewhere); it is 0 there.

    Examples
    --------
    >>> d = Demand.from_records([(1000, 1, 2, "sent", 1000), (2000, 2, 3, "dropped", None)])
    >>> len(d), d.fates(), d.was_sent.tolist()
    (2, ['sent', 'dropped'], [True, False])
    """

    ts: NDArray[np.int64]
    user: NDArray[np.int64]
    target: NDArray[np.int64]
    fate: NDArray[np.int8]
    sent_ts: NDArray[np.int64]

    @classmethod
    def from_records(cls, rows: Iterable[tuple[int, int, int, str, int | None]]) -> Demand:
        """Build a table from ``(ts, user, target, fate, sent_ts or None)`` rows."""
        rows = list(rows)
        try:
            codes = [FATES.index(r[3]) for r in rows]
        except ValueError:
            bad = next(r[3] for r in rows if r[3] not in FATES)
            raise ValueError(f"unknown fate {bad!r}; expected one of {list(FATES)}") from None
        return cls(
            ts=np.array([r[0] for r in rows], dtype=np.int64),
            user=np.array([r[1] for r in rows], dtype=np.int64),
            target=np.array([r[2] for r in rows], dtype=np.int64),
            fate=np.array(codes, dtype=np.int8),
            sent_ts=np.array([0 if r[4] is None else r[4] for r in rows], dtype=np.int64),
        )

    @classmethod
    def empty(cls) -> Demand:
        """No wishes."""
        return cls.from_records([])

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def was_sent(self) -> NDArray[np.bool_]:
        """Which wishes became a request (fate ``sent`` or ``deferred``)."""
        out: NDArray[np.bool_] = self.fate <= Fate.DEFERRED
        return out

    def fates(self) -> list[str]:
        """The fates as labels, in row order."""
        return [FATES[i] for i in self.fate.tolist()]


def apply_order(ts: NDArray[np.int64]) -> NDArray[np.int64]:
    """Positions of a log's rows in apply order: by `ts`, equal `ts` in input order.

    Examples
    --------
    >>> apply_order(np.array([30, 10, 30, 20])).tolist()
    [1, 3, 0, 2]
    """
    if len(ts) and bool(np.all(ts[1:] >= ts[:-1])):
        # Generated logs are usually sorted already; skip the sort.
        return np.arange(len(ts), dtype=np.int64)
    return np.argsort(ts, kind="stable").astype(np.int64, copy=False)
