"""`results`: what a replay hands back, as columns.

:class:`Outcomes` has one row per action event in input order; :class:`Connections` one
row per stored pair record, sorted by ``(user_a, user_b)``. Codes for `reason` and
`status` are positions in :data:`simkit.rules.REASONS` and :data:`simkit.rules.STATUSES`
(``-1`` is null). Every engine returns these; frames and files are built from them at the
edge (:mod:`simkit.io.runs`, :mod:`simkit.analysis`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from simkit.rules import REASONS, STATUSES, Kind

__all__ = ["Connections", "Outcomes", "Replay"]


@dataclass(frozen=True, eq=False)
class Outcomes:
    """The API's answer to each action event, in input order."""

    code: NDArray[np.int16]
    reason: NDArray[np.int8]
    status: NDArray[np.int8]
    request_counter: NDArray[np.int32]

    def __len__(self) -> int:
        return len(self.code)

    def reasons(self) -> list[str | None]:
        """The reason keys, ``None`` where the call succeeded."""
        return [REASONS[i].value if i >= 0 else None for i in self.reason.tolist()]

    def statuses(self) -> list[str | None]:
        """The caller's status after each event, ``None`` where the spec shows none."""
        return [STATUSES[i].value if i >= 0 else None for i in self.status.tolist()]

    def code_counts(self) -> dict[int, int]:
        """Number of answers per HTTP code, ascending by code."""
        codes, counts = np.unique(self.code, return_counts=True)
        return {int(c): int(n) for c, n in zip(codes, counts)}


@dataclass(frozen=True, eq=False)
class Connections:
    """Stored pair records after the last event, sorted by ``(user_a, user_b)``.

    `status` holds :class:`simkit.rules.Kind` values (1 pending, 2 accepted, 3 rejected).
    """

    user_a: NDArray[np.int64]
    user_b: NDArray[np.int64]
    requester: NDArray[np.int64]
    status: NDArray[np.int8]
    request_counter: NDArray[np.int32]
    first_requested_at: NDArray[np.int64]
    updated_at: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.user_a)

    def statuses(self) -> list[str]:
        """The record statuses as the spec writes them (``PENDING``, ``ACCEPTED``...)."""
        return [Kind(k).name for k in self.status.tolist()]

    def status_counts(self) -> dict[str, int]:
        """Number of records per status, in the order pending, accepted, rejected."""
        counts = np.bincount(self.status.astype(np.intp), minlength=len(Kind))
        return {k.name: int(counts[k]) for k in (Kind.PENDING, Kind.ACCEPTED, Kind.REJECTED)}


@dataclass(frozen=True, eq=False)
class Replay:
    """The result of replaying a log: per-event outcomes and the final records.

    `engine` names the engine that produced it (see :mod:`simkit.engines`), so that what a
    manifest records is what ran.
    """

    outcomes: Outcomes
    connections: Connections
    engine: str | None = None
