"""`results`: what a replay hands back, as columns.

:class:`Outcomes` has one row per action event in input order; :class:`Connections` one
row per stored pair record, sorted by ``(user_a, user_b)``. Codes for `reason` and
`status` are positions in :data:`simkit.rules.REASONS` and :data:`simkit.rules.STATUSES`
(``-1`` is null). Every engine returns these; frames and files are built from them at the
edge (:mod:`simkit.io.runs`, :mod:`simkit.analysis`).

:func:`record_changes` reads back from a log and its outcomes which events changed a pair's
record and with which effect of the §4 table (:func:`effects` gives it per event): the one
place that derivation is written, for the record history of :mod:`simkit.analysis` and the
datafeed events of :mod:`simkit.io.datafeed` alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from simkit.events import Events, apply_order
from simkit.rules import ACTIONS, EFFECTS, REASONS, STATUSES, TABLE, Effect, Kind, View

__all__ = [
    "Connections",
    "Outcomes",
    "PairGroups",
    "RecordChanges",
    "Replay",
    "effects",
    "group_pairs",
    "pair_order",
    "record_changes",
]


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
class PairGroups:
    """The events that reached a pair record, grouped by pair, as an engine grouped them.

    `rows` are their input rows: each pair's events side by side in apply order, pairs one
    after another (in no promised order); pair ``j``'s events are ``rows[starts[j]:
    starts[j + 1]]``. Every event a pair record answered (a status and a request counter
    above 0) is among them; those between colleagues of a private pod, which no record
    answers, need not be.
    """

    rows: NDArray[np.int64]
    starts: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.starts)


@dataclass(frozen=True, eq=False)
class Replay:
    """The result of replaying a log: per-event outcomes and the final records.

    `engine` names the engine that produced it (see :mod:`simkit.engines`), so that what a
    manifest records is what ran. `groups`, when the engine was asked for them
    (``groups=True``), are the events grouped by pair as the engine walked them, so that
    :func:`simkit.metrics.metrics` need not group them again.
    """

    outcomes: Outcomes
    connections: Connections
    engine: str | None = None
    groups: PairGroups | None = None


# -- the effect of each event, read back from the outcomes --------------------------------------


def _kind_of_status() -> NDArray[np.int8]:
    """The kind of record behind each status a caller can be shown, by position in STATUSES."""
    kind = np.zeros(len(STATUSES), np.int8)
    for view in View:
        kind[STATUSES.index(view.status)] = view.kind
    return kind


def _effect_of_move() -> NDArray[np.int8]:
    """The effect behind each move of a record, read back from the §4 table and its effects.

    Indexed by ``(kind before * len(Kind) + kind after) * len(ACTIONS) + action``; ``-1``
    where no cell moves a record so. Raises if an effect leaves the kind as it was, or if
    two effects make the same move on the same action: the outcomes could not tell them.
    """
    n_kinds, n_actions = len(Kind), len(ACTIONS)
    effect = np.full(n_kinds * n_kinds * n_actions, -1, np.int8)
    for (view, action), cell in TABLE.items():
        if cell.effect is Effect.KEEP:
            continue
        after = EFFECTS[cell.effect].after
        if after is view.kind:
            raise ValueError(f"effects: {cell.effect.name} leaves a {after.name} record {after.name}")
        at = (view.kind * n_kinds + after) * n_actions + ACTIONS.index(action)
        if effect[at] not in (-1, cell.effect):
            raise ValueError(
                f"effects: {Effect(effect[at]).name} and {cell.effect.name} both move "
                f"{view.kind.name} to {after.name} on {action}"
            )
        effect[at] = cell.effect
    return effect


_KIND_OF_STATUS = _kind_of_status()
_EFFECT_OF_MOVE = _effect_of_move()


@dataclass(frozen=True, eq=False)
class RecordChanges:
    """The events that changed a pair's record, in apply order.

    Attributes
    ----------
    event : ndarray of int64
        The input row of each event that changed a record.
    before, after : ndarray of int8
        The kind of the pair's record before and after it (:class:`simkit.rules.Kind`;
        ``NONE``: no record).
    effect : ndarray of int8
        Its effect (:class:`simkit.rules.Effect`), never ``KEEP``.
    by_pair : ndarray of int
        The changes grouped by pair, as positions in these arrays: each pair's changes side
        by side, in apply order (the pairs in no promised order).
    """

    event: NDArray[np.int64]
    before: NDArray[np.int8]
    after: NDArray[np.int8]
    effect: NDArray[np.int8]
    by_pair: NDArray[np.signedinteger[Any]]

    def __len__(self) -> int:
        return len(self.event)


def group_pairs(
    a: NDArray[np.int64], b: NDArray[np.int64], rows: NDArray[np.integer[Any]] | None = None
) -> tuple[NDArray[np.signedinteger[Any]], NDArray[np.bool_]]:
    """A stable order that puts rows of the same unordered pair ``{a, b}`` side by side
    (pairs by smaller value, then larger; each pair's rows in their order), and where each
    pair begins in it. With `rows`, of the pairs ``{a[rows], b[rows]}`` (taken a slice at a
    time, never whole).

    Examples
    --------
    >>> order, starts = group_pairs(np.array([1, 3, 4, 5]), np.array([5, 2, 1, 1]))
    >>> order.tolist(), starts.tolist()
    ([2, 0, 3, 1], [True, True, False, True])
    >>> group_pairs(np.array([1, 3, 4, 5]), np.array([5, 2, 1, 1]), rows=np.array([3, 2]))[0].tolist()
    [1, 0]
    """
    order, digits = _pair_order(a, b, rows)
    starts = np.ones(len(order), dtype=bool)
    if digits is None:
        a, b = (a, b) if rows is None else (a[rows], b[rows])
        low, high = np.minimum(a, b)[order], np.maximum(a, b)[order]
        starts[1:] = (low[1:] != low[:-1]) | (high[1:] != high[:-1])
        return order, starts
    starts[1:] = False
    for digit in digits:
        d = digit[order]
        starts[1:] |= d[1:] != d[:-1]
    return order, starts


def pair_order(
    a: NDArray[np.int64], b: NDArray[np.int64], rows: NDArray[np.integer[Any]] | None = None
) -> NDArray[np.signedinteger[Any]]:
    """The order of :func:`group_pairs` alone.

    Where the values span less than ``2**31``, as user ids or rows do, each pair becomes one
    number, sorted by radix 16 bits at a time (numpy sorts 16-bit integers in linear time):
    several times faster than a comparison sort of the two columns, which is the fallback.
    The keys are made a slice at a time and held as their 16-bit digits only, and the order
    is in 32 bits where it fits: 10 bytes a row for tens of millions of rows.
    """
    return _pair_order(a, b, rows)[0]


# Rows per slice where a pair's key is made.
_SLICE = 1 << 20


def _pair_order(
    a: NDArray[np.int64], b: NDArray[np.int64], rows: NDArray[np.integer[Any]] | None
) -> tuple[NDArray[np.signedinteger[Any]], list[NDArray[np.uint16]] | None]:
    """The order, and the pair keys' 16-bit digits that it sorts (None: it sorted the columns)."""
    n = len(a) if rows is None else len(rows)
    if not n:
        return np.zeros(0, np.intp), []
    # Over all of `a` and `b`: a span a little wide is as good, and needs no gather.
    base = min(int(a.min()), int(b.min()))
    span = max(int(a.max()), int(b.max())) - base + 1
    bits = 2 * span.bit_length()
    if bits > 62:
        if rows is not None:
            a, b = a[rows], b[rows]
        return np.lexsort((np.maximum(a, b), np.minimum(a, b))), None  # lexsort is stable
    digits = [np.empty(n, np.uint16) for _ in range(0, bits, 16)]
    for lo in range(0, n, _SLICE):
        hi = min(lo + _SLICE, n)
        at: slice | NDArray[np.integer[Any]] = slice(lo, hi) if rows is None else rows[lo:hi]
        x, y = a[at], b[at]
        key = np.minimum(x, y)
        key -= base
        key *= span
        key += np.maximum(x, y)
        key -= base
        for i, digit in enumerate(digits):
            if i:
                key >>= 16
            digit[lo:hi] = key  # its low 16 bits
    # Least significant digit first: each pass keeps the order of the ones before.
    small = np.int32 if n < 2**31 else np.intp
    order: NDArray[np.signedinteger[Any]] = np.argsort(digits[0], kind="stable").astype(small)
    for digit in digits[1:]:
        order = order[np.argsort(digit[order], kind="stable")]
    return order, digits


def record_changes(events: Events, outcomes: Outcomes) -> RecordChanges:
    """Every change of a stored record, in apply order, read back from the outcomes.

    Each outcome with a status shows the kind of the pair's record after the event: none
    where ``request_counter`` is 0 (§5: there is no record, as between colleagues of a
    private pod), else the kind behind the status. A record changes exactly where that
    kind differs from the one the pair showed before (``NONE`` at the start); the kinds and
    the action name the effect, as :data:`simkit.rules.TABLE` and
    :data:`simkit.rules.EFFECTS` say. Outcomes without a status (unknown users, ``self``)
    change nothing.

    Raises
    ------
    ValueError
        The outcomes are not one per event, or show a change that no rule makes: they do
        not belong to these events.

    Examples
    --------
    >>> from simkit.engine import replay
    >>> log = Events.from_records([(1, 10, 20, "connect"), (2, 20, 10, "accept"), (3, 20, 10, "accept")])
    >>> from simkit.population import Pod, Population, User
    >>> pop = Population.from_records(
    ...     pods=[Pod(1, "bank"), Pod(2, "fund")], users=[User(10, 1), User(20, 2)], crosspod=[(1, 2)]
    ... )
    >>> changes = record_changes(log, replay(pop, log).outcomes)
    >>> changes.event.tolist(), [Effect(e).name for e in changes.effect]
    ([0, 1], ['CREATE', 'ACCEPT'])
    """
    if len(outcomes) != len(events):
        raise ValueError(f"{len(outcomes)} outcomes for {len(events)} events; replay the run again")
    order = apply_order(events.ts)
    status = outcomes.status[order]
    rows = order[status >= 0]
    kind = np.where(
        outcomes.request_counter[rows] > 0, _KIND_OF_STATUS[status[status >= 0]], np.int8(Kind.NONE)
    ).astype(np.int8)
    # Each pair's events side by side, in apply order within the pair.
    by_pair, starts = group_pairs(events.actor, events.target, rows)
    grouped = kind[by_pair]
    previous = np.empty_like(grouped)
    previous[1:] = grouped[:-1]
    previous[starts] = Kind.NONE
    before = np.empty(len(rows), np.int8)
    before[by_pair] = previous
    del grouped, previous, starts
    moved = np.flatnonzero(before != kind)
    # The changes grouped by pair, as positions among them (in apply order within a pair).
    position = np.full(len(rows), -1, np.int32 if len(rows) < 2**31 else np.int64)
    position[moved] = np.arange(len(moved), dtype=position.dtype)
    changes_by_pair = position[by_pair]
    del position, by_pair
    changes_by_pair = changes_by_pair[changes_by_pair >= 0]
    b, a = before[moved].astype(np.intp), kind[moved].astype(np.intp)
    action = events.action[rows[moved]].astype(np.intp)
    effect = _EFFECT_OF_MOVE[(b * len(Kind) + a) * len(ACTIONS) + action]
    if (effect < 0).any():
        i = int(np.flatnonzero(effect < 0)[0])
        raise ValueError(
            f"events row {int(rows[moved[i]]) + 1}: the record went from {Kind(b[i]).name} to "
            f"{Kind(a[i]).name} on {ACTIONS[action[i]].value!r}, which no rule allows; the outcomes "
            "do not belong to these events"
        )
    return RecordChanges(
        event=rows[moved], before=before[moved], after=kind[moved], effect=effect, by_pair=changes_by_pair
    )


def effects(events: Events, outcomes: Outcomes) -> NDArray[np.int8]:
    """The effect each event had on its pair's record (:class:`simkit.rules.Effect`), in
    input order: ``KEEP`` (0) where it changed nothing. As :func:`record_changes` reads it.

    Examples
    --------
    >>> from simkit.engine import replay
    >>> from simkit.population import Pod, Population, User
    >>> pop = Population.from_records(pods=[Pod(1, "open", private=False)], users=[User(1, 1), User(2, 1)])
    >>> log = Events.from_records([(1, 1, 2, "connect"), (2, 1, 2, "connect"), (3, 2, 1, "reject")])
    >>> [Effect(e).name for e in effects(log, replay(pop, log).outcomes)]
    ['CREATE', 'KEEP', 'DECLINE']
    """
    changes = record_changes(events, outcomes)
    per_event = np.zeros(len(events), np.int8)
    per_event[changes.event] = changes.effect
    return per_event
