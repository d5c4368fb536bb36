"""`columnar`: the columnar replay engine, a whole log at once with numpy.

:func:`replay` gives exactly what :func:`simkit.engine.replay` gives, event for event, but
works on columns instead of one call at a time. It rests on one fact: two pairs of users
never affect each other, except through the crossPod relation, whose timeline is known
before the replay starts. So:

1. the checks of ``connections.md`` §3 are computed for every event at once: users are
   looked up in a table, each event's facts (caller known, same pod, crossPod now, ...)
   are packed into a small integer, and a verdict table, built by running
   :data:`simkit.rules.CHECKS` in order over every combination of facts (each check's
   condition written here under its name, see :data:`IMPLEMENTED_CHECKS`), gives the
   answer or says "the pair record decides"; crossPod at each event's time comes from the
   policy timeline, cut into spans between policy events;
2. each event that reaches a pair record becomes one integer (pair key, apply rank,
   class); sorting these integers groups the events by pair in apply order;
3. the pair state machine of §4 runs for all pairs together, one rank within the pair at
   a time, through a (state, event class) table built from :data:`simkit.rules.TABLE` and
   :data:`simkit.rules.EFFECTS`; long histories are cut into blocks walked side by side,
   each starting in the state its predecessor leaves, found by composing the table's moves.

Every pass goes over the log in pieces, so temporaries stay small, and on two threads
(numpy releases the interpreter lock inside its loops). Every answer comes from tables
derived from :mod:`simkit.rules` when this module is imported, so a rule changes in one
place. This module holds no rules of its own, reads and writes no files, and does not
import pandas. ``docs/performance.md`` explains the design and its costs.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from simkit.events import Events, Policy, apply_order
from simkit.population import Population
from simkit.results import Connections, Outcomes, PairGroups, Replay
from simkit.rules import (
    ACTIONS,
    CHECK_NAMES,
    CHECKS,
    EFFECTS,
    IMPLICIT,
    REASONS,
    STATUSES,
    TABLE,
    CheckName,
    Effect,
    Kind,
    Reason,
    Requester,
    Status,
    View,
)

__all__ = ["IMPLEMENTED_CHECKS", "replay"]

# -- the pair state machine as arrays ---------------------------------------------------------
#
# A pair record seen from the pair itself: NONE, or (kind, side of the requester), where side
# 0 is the user with the smaller id. State codes: 0 NONE, then 1 + 2 * (kind - 1) + side.
_STATES: tuple[tuple[Kind, int], ...] = (
    (Kind.NONE, 0),
    *((kind, side) for kind in (Kind.PENDING, Kind.ACCEPTED, Kind.REJECTED) for side in (0, 1)),
)
_STATE_CODE = {state: code for code, state in enumerate(_STATES)}
_N_STATES = len(_STATES)

# Refusals whose answer carries no status (connections.md §5, outcomes `status`).
_NO_STATUS = frozenset({Reason.UNKNOWN_CALLER, Reason.SELF, Reason.UNKNOWN_USER})
# Refusals of §3 that leave the pair untouched but show the caller's view of it.
_VIEW_CHECKS = tuple(c for c in CHECKS if c.name != "same_private_pod" and c.reason not in _NO_STATUS)

# An event that reaches a pair is one of these classes: an action of §4 (in ACTIONS order),
# or a refusal of _VIEW_CHECKS; times two for the caller's side of the pair.
_N_BASES = len(ACTIONS) + len(_VIEW_CHECKS)
_N_CLASSES = 2 * _N_BASES
# An outcome code: state before * _N_CLASSES + class for an event that reaches a pair,
# then one code per answer that needs no pair (_PAIR_OUTCOMES and above).
_PAIR_OUTCOMES = _N_STATES * _N_CLASSES

_REASON_CODE = {r: i for i, r in enumerate(REASONS)}
_STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}


def _view(state: int, side: int) -> View:
    kind, requester = _STATES[state]
    return View.NONE if kind is Kind.NONE else View.of(kind, requester == side)


def _status(state: int, side: int) -> int:
    return _STATUS_CODE[_view(state, side).status]


@dataclass(frozen=True)
class _PairTables:
    """The §4 table indexed by outcome code (state before * classes + class)."""

    after: NDArray[np.uint8]  # state after the event
    counter_mul: NDArray[np.int32]
    counter_add: NDArray[np.int32]
    creates: NDArray[np.bool_]  # sets first_requested_at
    changes: NDArray[np.bool_]  # sets updated_at


def _pair_tables() -> tuple[_PairTables, list[tuple[int, int, int]]]:
    """Build the pair tables and the (code, reason, status) of each pair outcome code."""
    n = _PAIR_OUTCOMES
    after = np.zeros(n, np.uint8)
    mul = np.ones(n, np.int32)
    add = np.zeros(n, np.int32)
    creates = np.zeros(n, np.bool_)
    changes = np.zeros(n, np.bool_)
    answers: list[tuple[int, int, int]] = []
    for code in range(n):
        state, cls = divmod(code, _N_CLASSES)
        base, side = divmod(cls, 2)
        if base < len(ACTIONS):
            cell = TABLE[(_view(state, side), ACTIONS[base])]
            nxt = state
            if cell.effect is not Effect.KEEP:
                rule = EFFECTS[cell.effect]
                requester = side if rule.requester is Requester.CALLER else _STATES[state][1]
                nxt = _STATE_CODE[(rule.after, requester if rule.after is not Kind.NONE else 0)]
                mul[code], add[code] = rule.counter
                creates[code] = rule.sets_first_requested_at
                changes[code] = rule.sets_updated_at
            reason = _REASON_CODE[cell.reason] if cell.reason is not None else -1
            answers.append((cell.code, reason, _status(nxt, side)))
            after[code] = nxt
        else:
            check = _VIEW_CHECKS[base - len(ACTIONS)]
            answers.append((check.code, _REASON_CODE[check.reason], _status(state, side)))
            after[code] = state
    return _PairTables(after, mul, add, creates, changes), answers


# -- the checks of §3 as a verdict table --------------------------------------------------------
#
# The facts about an event that the checks read, one bit each. The first five come from the
# two users' packed records (see replay), so their positions are fixed there.
_CALLER_KNOWN, _CALLER_EXTERNAL, _CALLER_PRIVATE = 1, 2, 4
_TARGET_KNOWN, _TARGET_EXTERNAL = 8, 16
_SAME_POD, _SELF = 32, 64
_POD_SHIFT = 5  # a user's pod sits above these bits in its packed record
_ACTION_SHIFT = 7
_CROSSPOD = 1 << (_ACTION_SHIFT + 2)
_N_FACTS = _CROSSPOD << 1

# §3, each check's condition on the facts, by check name; CHECKS gives their order and
# answers.
_CONDITIONS: dict[CheckName, Callable[[int], bool]] = {
    "caller_unknown": lambda f: not f & _CALLER_KNOWN,
    "self": lambda f: bool(f & _SELF),
    "target_unknown": lambda f: not f & _TARGET_KNOWN,
    "same_private_pod": lambda f: bool(f & _SAME_POD and f & _CALLER_PRIVATE),
    "caller_not_external": lambda f: not f & _SAME_POD and not f & _CALLER_EXTERNAL,
    "target_not_external": lambda f: not f & _SAME_POD and not f & _TARGET_EXTERNAL,
    "crosspod_disabled": lambda f: not f & _SAME_POD and not f & _CROSSPOD,
}
# The checks of rules.CHECKS that replay applies (the actions' checks; it answers no
# read-only calls).
IMPLEMENTED_CHECKS: frozenset[CheckName] = frozenset(_CONDITIONS)


def _verdicts(answers: list[tuple[int, int, int]]) -> NDArray[np.uint8]:
    """For every combination of facts, the first check of §3 that answers, in CHECKS order.

    A verdict below ``_N_BASES`` means the pair decides (an action of the table, or a
    refusal that shows the pair's view); otherwise it is an outcome code at or above
    ``_PAIR_OUTCOMES``, whose (code, reason, status) is appended to `answers` the first
    time it appears.
    """
    if set(CHECK_NAMES) != IMPLEMENTED_CHECKS:
        raise ValueError("columnar: the checks with a condition here are not those of rules.CHECKS")
    verdicts = np.zeros(_N_FACTS, np.uint8)
    for facts in range(_N_FACTS):
        action = ACTIONS[(facts >> _ACTION_SHIFT) & 3]
        verdict = None
        for check in CHECKS:
            if not _CONDITIONS[check.name](facts):
                continue
            if check.name == "same_private_pod":
                code, reason = IMPLICIT[action]
                answer = (code, _REASON_CODE[reason] if reason else -1, _STATUS_CODE[Status.ACCEPTED])
            elif check in _VIEW_CHECKS:
                verdict = len(ACTIONS) + _VIEW_CHECKS.index(check)
                break
            else:
                answer = (check.code, _REASON_CODE[check.reason], -1)
            if answer not in answers[_PAIR_OUTCOMES:]:
                answers.append(answer)
            verdict = answers.index(answer, _PAIR_OUTCOMES)
            break
        verdicts[facts] = ACTIONS.index(action) if verdict is None else verdict
    return verdicts


_TABLES, _ANSWERS = _pair_tables()
_VERDICTS = _verdicts(_ANSWERS)
if len(_ANSWERS) > 256:
    raise ValueError("columnar: outcome codes no longer fit in uint8")
_ANSWER_CODE = np.array([a[0] for a in _ANSWERS], np.int16)
_ANSWER_REASON = np.array([a[1] for a in _ANSWERS], np.int8)
_ANSWER_STATUS = np.array([a[2] for a in _ANSWERS], np.int8)


# -- looking keys up ---------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class _KeyIndex:
    """Position of int64 keys in an array of distinct keys; ``-1`` for a key not there.

    Compact keys (ids within a few times their count) get a direct table; others an
    open-addressing hash table with linear probing, so that a lookup costs a few passes
    over the queries instead of a binary search per query.
    """

    def __init__(self, keys: NDArray[np.int64], *, dense_factor: int = 4) -> None:
        self.keys = np.ascontiguousarray(keys, dtype=np.int64)
        n = len(self.keys)
        self._low = int(self.keys.min()) if n else 0
        span = int(self.keys.max()) - self._low + 1 if n else 0
        self._dense = span <= max(dense_factor * n, 1 << 16)
        if self._dense:
            table = np.full(span + 2, -1, np.int32)
            table[self.keys - (self._low - 1)] = np.arange(n, dtype=np.int32)
            self._table = table
            return
        self._bits = max(int(4 * n - 1).bit_length(), 4)
        self._mask = (1 << self._bits) - 1
        table = np.full(1 << self._bits, -1, np.int32)
        home = self._hash(self.keys)
        pending = np.arange(n, dtype=np.int64)
        probe = 0
        while len(pending):
            slots = (home[pending] + probe) & self._mask
            free = table[slots] < 0
            candidates, cslots = pending[free], slots[free]
            table[cslots] = candidates  # of several candidates for a slot, the last stays
            placed = table[cslots] == candidates
            pending = np.concatenate([pending[~free], candidates[~placed]])
            probe += 1
        self._table = table

    def _hash(self, q: NDArray[np.int64]) -> NDArray[np.int64]:
        mixed = q.view(np.uint64) * _GOLDEN
        mixed >>= np.uint64(64 - self._bits)
        return mixed.view(np.int64)

    def lookup(self, q: NDArray[np.int64]) -> NDArray[np.int32]:
        """Positions of the queries `q` in the keys (``-1`` where absent)."""
        if self._dense:
            # Out-of-span ids clip onto a -1 at either end. A wrapped subtraction is
            # harmless: only true members land inside the span.
            return np.take(self._table, q - (self._low - 1), mode="clip")
        home = self._hash(q)
        found = self._table[home]
        keys = np.append(self.keys, 0)
        # Where a slot holds another key, probe on, query by query, until a key or a hole.
        todo = np.flatnonzero((found >= 0) & (keys[found] != q))
        probe = 1
        while len(todo):
            slot = self._table[(home[todo] + probe) & self._mask]
            found[todo] = slot
            todo = todo[(slot >= 0) & (keys[slot] != q[todo])]
            probe += 1
        return found


# -- replay -----------------------------------------------------------------------------------


def _bits(value: int) -> int:
    """Bits needed to write the non-negative integer `value` (at least 1)."""
    return max(int(value).bit_length(), 1)


def _pair_keys(a: NDArray[np.integer[Any]], b: NDArray[np.integer[Any]], bits: int) -> NDArray[np.int64]:
    """``smaller << bits | larger`` for each pair of non-negative indices."""
    key: NDArray[np.int64] = np.minimum(a, b).astype(np.int64)
    key <<= bits
    key |= np.maximum(a, b)
    return key


class _PodPairs:
    """The same-pod and crossPod facts of events, span by span of the log in apply order.

    The policy timeline is known in advance, so the events are cut at the policy events:
    between two of them the facts of a pod pair come from one fixed table, read for all
    those events at once. The table is a pods x pods matrix (its diagonal says "same pod")
    when `dense`, else a vector over the pod pairs that are ever enabled. Each span of the
    log gets its own copy of the table as it stands at the span's start, so that spans can
    be read in any order, on any thread.
    """

    def __init__(
        self, population: Population, pods: _KeyIndex, policy: Policy, ts: NDArray[np.int64], dense: bool
    ) -> None:
        n_pods = len(pods.keys)
        start = population.crosspod.reshape(-1, 2)
        order = apply_order(policy.ts)
        a = pods.lookup(np.concatenate([start[:, 0], policy.pod_a[order]]))
        b = pods.lookup(np.concatenate([start[:, 1], policy.pod_b[order]]))
        # A pair naming an unknown pod, or a pod with itself, decides no event: it gets
        # a spare last cell that no event reads.
        usable = (a >= 0) & (b >= 0) & (a != b)
        self._dense = dense
        if dense:
            where = np.where(usable, a * n_pods + b, n_pods * n_pods)
            mirror = np.where(usable, b * n_pods + a, n_pods * n_pods)
            table = np.zeros(n_pods * n_pods + 1, np.int16)
            table[: n_pods * n_pods : n_pods + 1] = _SAME_POD
        else:
            self._pod_bits = _bits(n_pods)
            keys = _pair_keys(a, b, self._pod_bits)
            relevant = np.unique(keys[usable])
            self._relevant = _KeyIndex(relevant)
            where = np.where(usable, np.searchsorted(relevant, keys), len(relevant))
            mirror = where
            table = np.zeros(len(relevant) + 1, np.int16)
        n_start = len(start)
        table[where[:n_start]] = _CROSSPOD
        table[mirror[:n_start]] = _CROSSPOD
        table[-1] = 0
        self._table = table
        self._cells = list(zip(where[n_start:].tolist(), mirror[n_start:].tolist()))
        self._on = np.where(policy.crosspod[order], _CROSSPOD, 0).tolist()
        # Policy events at a ts apply before the actions at that ts: each holds from the
        # first action (in apply order) whose ts is not smaller.
        self._begins = np.searchsorted(ts, policy.ts[order], side="left").tolist()

    def tables(
        self, spans: list[tuple[int, int]]
    ) -> Iterator[tuple[NDArray[np.int16], list[tuple[int, ...]]]]:
        """For each span of apply ranks, in order: the table at its start (a copy of its
        own) and the policy changes inside it, as (offset in the span, cell, mirror, value).
        """
        table: NDArray[np.int16] = self._table.copy()
        changes = list(zip(self._begins, self._cells, self._on))
        j = 0
        for lo, hi in spans:
            while j < len(changes) and changes[j][0] <= lo:
                _, (where, mirror), on = changes[j]
                table[where] = table[mirror] = on
                j += 1
            table[-1] = 0
            snapshot = table.copy()
            inside: list[tuple[int, ...]] = []
            while j < len(changes) and changes[j][0] < hi:
                begin, (where, mirror), on = changes[j]
                inside.append((begin - lo, where, mirror, on))
                # The span applies this change to its own copy; later spans see it here.
                table[where] = table[mirror] = on
                j += 1
            yield snapshot, inside

    def read(
        self,
        caller: NDArray[np.int32],
        target: NDArray[np.int32],
        table: NDArray[np.int16],
        changes: list[tuple[int, ...]],
    ) -> NDArray[np.int16]:
        """Facts of a span's events, from their users' packed records and :meth:`tables`.

        `caller` and `target` hold the records (see :func:`replay`): the pod above
        ``_POD_SHIFT``, the caller's already times the number of pods when dense. `table`
        is changed in place.
        """
        pod_a = caller >> _POD_SHIFT
        pod_b = target >> _POD_SHIFT
        if self._dense:
            cell = pod_a
            cell += pod_b
        else:
            cell = self._relevant.lookup(_pair_keys(pod_a, pod_b, self._pod_bits))
        out = np.empty(len(cell), np.int16)
        done = 0
        for begin, where, mirror, on in changes:
            if begin > done:
                np.take(table, cell[done:begin], out=out[done:begin])
                done = begin
            table[where] = table[mirror] = on
            table[-1] = 0
        np.take(table, cell[done:], out=out[done:])
        if not self._dense:
            out[pod_a == pod_b] = _SAME_POD
        return out


# Elements per piece of every pass over a whole log. numpy allocates the temporaries of an
# operation (indices converted to intp, intermediate results) whole; above about 32 MB the C
# allocator maps them freshly from the system each time, and first touching fresh memory
# costs more than the work. Pieces of 2**21 keep every temporary on the reused heap.
_CHUNK = 1 << 21


def _share(n: int, chunk: int, threads: int) -> int:
    """Elements per piece of a pass over `n` run on `threads` threads: at most `chunk`, and
    small enough that each thread gets two pieces or more, so that none waits long for the
    last one."""
    return chunk if threads <= 1 else min(chunk, max(1, -(-n // (2 * threads))))


def _spans(n: int, chunk: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` pieces of ``range(n)`` of at most `chunk` elements."""
    return [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]


def _take(table: NDArray[Any], index: NDArray[Any], out: NDArray[Any], chunk: int) -> NDArray[Any]:
    """``out[:] = table[index]``, piece by piece."""
    for lo, hi in _spans(len(index), chunk):
        np.take(table, index[lo:hi], out=out[lo:hi])
    return out


def _put(dest: NDArray[Any], index: NDArray[Any], values: NDArray[Any], chunk: int) -> None:
    """``dest[index] = values``, piece by piece."""
    for lo, hi in _spans(len(index), chunk):
        dest[index[lo:hi]] = values[lo:hi]


_T = TypeVar("_T")
_R = TypeVar("_R")


def _in_order(fn: Callable[..., _R], jobs: Iterator[tuple[Any, ...]], threads: int) -> Iterator[_R]:
    """``fn(*job)`` for each job, on `threads` threads, results in job order.

    At most `threads` jobs run ahead of the result being read, so that memory held by
    finished results stays bounded.
    """
    if threads <= 1:
        for job in jobs:
            yield fn(*job)
        return
    with ThreadPoolExecutor(threads) as pool:
        pending: deque[Future[_R]] = deque()
        for job in jobs:
            pending.append(pool.submit(fn, *job))
            if len(pending) > threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _joined(spans: list[tuple[int, int]], tables: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Each span's bounds followed by its entry of `tables`."""
    for (lo, hi), extra in zip(spans, tables):
        yield (lo, hi, *extra)


def _walk_pairs(
    cls: NDArray[np.uint8], starts: NDArray[np.int64], tail_below: int, chunk: int, block: int = 0
) -> tuple[NDArray[np.uint8], NDArray[np.int32], tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """Run the pair state machine over events grouped by pair (pair j from `starts[j]`).

    Returns each event's outcome code and request counter, and per pair its final
    ``state << 32 | counter`` and ``last creating << 32 | last changing`` event positions
    (``-1``: none; the low half as unsigned 32 bits).

    :func:`_walk` moves all pairs together, one rank within the pair at a time, so it
    makes as many rounds as the longest pair has events. When that is more than `block`
    (0: never), pairs are cut into blocks of ``max(block, isqrt(longest))`` events, each
    block's start state is found from :func:`_block_moves` (a block's whole effect on the
    state as one code, chained from block to block of a pair), and the blocks are walked
    as pairs of their own: as many rounds as a block is long. Their counters, counted from
    0, are then carried from block to block (:func:`_carry_requests`).
    """
    n_pairs = len(starts)
    if n_pairs == 0:
        empty = np.zeros(0, np.int64)
        return np.empty(0, np.uint8), np.empty(0, np.int32), (empty, empty)
    lens = np.empty(n_pairs, np.int64)
    np.subtract(starts[1:], starts[:-1], out=lens[:-1])
    lens[-1] = len(cls) - starts[-1]
    longest = int(lens.max())
    size = max(block, math.isqrt(longest))
    if not block or longest <= size:
        return _walk(cls, starts, lens, np.zeros(n_pairs, np.uint8), tail_below, chunk)
    # Blocks in grouped order: pair j's blocks are v_first[j] to v_first[j + 1] - 1.
    n_blocks = (lens + (size - 1)) // size
    v_first = np.zeros(n_pairs + 1, np.int64)
    np.cumsum(n_blocks, out=v_first[1:])
    n_v = int(v_first[-1])
    owner = np.repeat(np.arange(n_pairs), n_blocks)
    within = np.arange(n_v) - v_first[owner]
    v_starts = starts[owner] + within * size
    v_lens = np.minimum(size, (starts + lens)[owner] - v_starts)
    del owner
    # Start states: 0 for a pair's first block; else the state its previous block leaves.
    # Every block but a pair's last is full, so their moves are found in `size` rounds.
    compose, reach = _block_moves()
    last = v_first[1:] - 1
    followed = np.ones(n_v, np.bool_)
    followed[last] = False
    chained = np.flatnonzero(followed)
    del followed
    move = np.zeros(n_v, np.int32)
    acc = np.zeros(len(chained), np.int32)
    pos = v_starts[chained]
    for _ in range(size):
        acc *= _N_CLASSES
        acc += cls[pos]
        np.take(compose, acc, out=acc)
        pos += 1
    move[chained] = acc
    del acc, pos, chained, within
    v_state = np.zeros(n_v, np.uint8)
    multi = np.flatnonzero(n_blocks > 1)
    multi = multi[np.argsort(-n_blocks[multi], kind="stable")]
    first_of = v_first[multi]
    # moving[k]: pairs (longest first) with more than k blocks.
    moving = np.searchsorted(-n_blocks[multi], -np.arange(int(n_blocks.max())), side="left")
    state = np.zeros(len(multi), np.int32)
    for k in range(1, len(moving)):
        m = int(moving[k])
        here = first_of[:m] + k
        state[:m] = reach[move[here - 1] * _N_STATES + state[:m]]
        v_state[here] = state[:m]
    del move
    outcome, counters, (f_state, f_events) = _walk(cls, v_starts, v_lens, v_state, tail_below, chunk)
    # Per pair: its last block's state and counter (carried), its blocks' last creating and
    # changing events (positions grow along a pair; -1 for none).
    f_counter = _carry_requests(
        outcome, counters, v_starts, v_lens, f_state.astype(np.int32), first_of, moving, chunk
    )
    f_state >>= 32
    f_state <<= 32
    f_state |= f_counter.view(np.uint32)
    created = np.maximum.reduceat(f_events >> 32, v_first[:-1])
    changed = np.maximum.reduceat(f_events.astype(np.int32), v_first[:-1])
    created <<= 32
    created |= changed.view(np.uint32)
    return outcome, counters, (f_state[last], created)


def _carry_requests(
    outcome: NDArray[np.uint8],
    counters: NDArray[np.int32],
    v_starts: NDArray[np.int64],
    v_lens: NDArray[np.int64],
    v_counter: NDArray[np.int32],
    first_of: NDArray[np.int64],
    moving: NDArray[np.intp],
    chunk: int,
) -> NDArray[np.int32]:
    """Carry request counters from block to block of each pair; each block's final counter.

    Blocks were walked with counters from 0. An event resets the counter (times 0) or keeps
    it (times 1) before adding to it, so a block's events up to its first reset lack the
    counter its block started with, and the events after it are right. `first_of` and
    `moving` are the blocks of :func:`_walk_pairs`' pairs with several blocks.
    """
    resets = _TABLES.counter_mul == 0
    n_v = len(v_starts)
    later = np.ones(n_v, np.bool_)
    later[first_of] = False
    # upto: each block's first reset (its length if none), found a rank at a time for the
    # blocks still without one: few ranks, when resets are frequent.
    upto = v_lens.copy()
    alive = np.flatnonzero(later)
    rank = 0
    while len(alive):
        alive = alive[v_lens[alive] > rank]
        hit = resets[outcome[v_starts[alive] + rank]]
        upto[alive[hit]] = rank
        alive = alive[~hit]
        rank += 1
    kept = upto == v_lens  # no reset: the block adds to its start counter
    start = np.zeros(n_v, np.int64)
    for k in range(1, len(moving)):
        here = first_of[: int(moving[k])] + k
        before = here - 1
        start[here] = np.where(kept[before], start[before], 0) + v_counter[before]
    need = np.flatnonzero((start != 0) & (upto > 0))
    per_piece = max(1, chunk // max(1, int(v_lens.max())))
    for lo, hi in _spans(len(need), per_piece):
        blocks = need[lo:hi]
        counts = upto[blocks]
        offsets = np.cumsum(counts) - counts
        at = np.repeat(v_starts[blocks] - offsets, counts) + np.arange(int(counts.sum()))
        counters[at] += np.repeat(start[blocks], counts).astype(np.int32)
    return (v_counter + np.where(kept, start, 0)).astype(np.int32)


@cache
def _block_moves() -> tuple[NDArray[np.int32], NDArray[np.uint8]]:
    """Every composition of the pair table's moves, as a code: ``(compose, reach)``.

    A sequence of events moves a pair's state by some map of the states to themselves; the
    maps reachable from the identity (code 0) by the events' classes are few. `compose`
    gives the code of a map followed by a class (at ``code * _N_CLASSES + class``), `reach`
    the state a map takes a state to (at ``code * _N_STATES + state``).
    """
    moves = _TABLES.after.reshape(_N_STATES, _N_CLASSES).T.astype(np.int64)  # [class, state]
    weights = _N_STATES ** np.arange(_N_STATES, dtype=np.int64)
    found = [np.arange(_N_STATES, dtype=np.int64)[None, :]]
    seen = {int((found[0] @ weights)[0])}
    frontier = found[0]
    while len(frontier):
        after = moves[:, frontier].reshape(-1, _N_STATES)  # each map followed by each class
        keys = after @ weights
        _, first = np.unique(keys, return_index=True)
        fresh = [i for i in first.tolist() if int(keys[i]) not in seen]
        seen.update(int(keys[i]) for i in fresh)
        frontier = after[fresh]
        found.append(frontier)
        if len(seen) > 1 << 20:
            raise ValueError("columnar: the pair table's moves compose into too many maps")
    maps = np.concatenate(found)
    order = np.argsort(maps @ weights)
    sorted_keys = (maps @ weights)[order]
    following = moves[:, maps].transpose(1, 0, 2).reshape(-1, _N_STATES) @ weights  # [map, class]
    compose = order[np.searchsorted(sorted_keys, following)].astype(np.int32)
    return compose, maps.reshape(-1).astype(np.uint8)


def _walk(
    cls: NDArray[np.uint8],
    starts: NDArray[np.int64],
    lens: NDArray[np.int64],
    state0: NDArray[np.uint8],
    tail_below: int,
    chunk: int,
) -> tuple[NDArray[np.uint8], NDArray[np.int32], tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """Walk pairs starting in `state0` (pair j: `lens[j]` events from `starts[j]`).

    Returns each event's outcome code and request counter (counted from 0), and per pair
    its final state and counter and last creating and changing positions, packed as
    :func:`_walk_pairs` returns them. All
    pairs move together, one rank within the pair at a time; pairs sorted longest first
    keep the pairs still moving at the front of each array. When fewer than `tail_below`
    pairs are left, their remaining events run in a plain loop, cheaper than a numpy call
    per rank.
    """
    t = _TABLES
    n_pairs = len(starts)
    outcome = np.empty(len(cls), np.uint8)
    counters = np.empty(len(cls), np.int32)
    longest = int(lens.max())
    if longest < 1 << 8:
        by_length = np.argsort((longest - lens).astype(np.uint8), kind="stable")
    elif longest < 1 << 16:
        by_length = np.argsort((longest - lens).astype(np.uint16), kind="stable")
    else:
        by_length = np.argsort(-lens, kind="stable")
    length = _take(lens, by_length, np.empty(n_pairs, np.int32), chunk)
    # moving[r]: pairs with more than r events (length is sorted, longest first).
    moving = n_pairs - np.searchsorted(length[::-1], np.arange(longest + 1), side="right")
    start = _take(starts, by_length, np.empty(n_pairs, np.int32), chunk)
    state = _take(state0, by_length, np.empty(n_pairs, np.uint8), chunk)
    counter = np.zeros(n_pairs, np.int32)
    created = np.full(n_pairs, -1, np.int32)
    changed = np.full(n_pairs, -1, np.int32)
    size = min(n_pairs, chunk)
    pos_buf = np.empty(size, np.int32)
    code_buf = np.empty(size, np.uint8)
    step_buf = np.empty(size, np.int32)
    rank = 0
    while rank < longest and moving[rank] >= tail_below:
        for lo, hi in _spans(int(moving[rank]), chunk):
            pos, code, step = pos_buf[: hi - lo], code_buf[: hi - lo], step_buf[: hi - lo]
            np.add(start[lo:hi], rank, out=pos)
            np.multiply(state[lo:hi], np.uint8(_N_CLASSES), out=code)
            code += cls[pos]
            outcome[pos] = code
            np.take(t.after, code, out=state[lo:hi])
            cnt = counter[lo:hi]
            np.take(t.counter_mul, code, out=step)
            cnt *= step
            np.take(t.counter_add, code, out=step)
            cnt += step
            counters[pos] = cnt
            np.copyto(created[lo:hi], pos, where=t.creates[code])
            np.copyto(changed[lo:hi], pos, where=t.changes[code])
        rank += 1
    if rank < longest:
        # The few long pairs left: a plain loop per pair, over Python lists.
        after, mul, add = t.after.tolist(), t.counter_mul.tolist(), t.counter_add.tolist()
        creates, changes = t.creates.tolist(), t.changes.tolist()
        for j in range(int(moving[rank])):
            s, cnt_, first, upd = int(state[j]), int(counter[j]), int(created[j]), int(changed[j])
            lo, hi = int(start[j]) + rank, int(start[j]) + int(length[j])
            codes, counts = [], []
            for p, c in enumerate(cls[lo:hi].tolist(), lo):
                code_ = s * _N_CLASSES + c
                s = after[code_]
                cnt_ = cnt_ * mul[code_] + add[code_]
                codes.append(code_)
                counts.append(cnt_)
                if creates[code_]:
                    first = p
                if changes[code_]:
                    upd = p
            outcome[lo:hi] = codes
            counters[lo:hi] = counts
            state[j], counter[j], created[j], changed[j] = s, cnt_, first, upd
    # Back to pair order, two values to an int64: half the scattered writes.
    finals = []
    for high, low in ((state, counter), (created, changed)):
        packed = np.empty(n_pairs, np.int64)
        for lo, hi in _spans(n_pairs, chunk):
            piece = packed[lo:hi]
            np.left_shift(high[lo:hi], 32, out=piece, dtype=np.int64)
            piece |= low[lo:hi].view(np.uint32)
        back = np.empty(n_pairs, np.int64)
        _put(back, by_length, packed, chunk)
        del packed
        finals.append(back)
    return outcome, counters, (finals[0], finals[1])


class _Buckets:
    """The events that reach a pair, as sort entries, kept by bucket of their pair key.

    With one bucket the entries are copied into one array, sorted in place at the end.
    With several, each piece of the log leaves one small array per bucket; a group of
    consecutive buckets is joined only when it is about to be walked, and its pieces are
    then dropped, so the entries are held about once, never twice.
    """

    def __init__(self, n_buckets: int, capacity: int) -> None:
        self.n_buckets = n_buckets
        self.counts = np.zeros(n_buckets, np.int64)
        self._all = np.empty(capacity if n_buckets == 1 else 0, np.int64)
        self._pieces: list[list[NDArray[np.int64]]] = [[] for _ in range(n_buckets)] if n_buckets > 1 else []

    def add(self, entries: NDArray[np.int64], bucket: NDArray[np.int64]) -> None:
        """Keep the entries of the next piece of the log, by bucket."""
        if self.n_buckets == 1:
            start = int(self.counts[0])
            self._all[start : start + len(entries)] = entries
            self.counts[0] += len(entries)
            return
        order = np.argsort(bucket.astype(np.uint16) if self.n_buckets <= 1 << 16 else bucket, kind="stable")
        here = np.bincount(bucket, minlength=self.n_buckets)
        self.counts += here
        ordered = entries[order]
        ends = np.cumsum(here).tolist()
        for b in np.flatnonzero(here).tolist():
            self._pieces[b].append(ordered[ends[b] - int(here[b]) : ends[b]])

    def groups(self, size: int) -> list[tuple[int, int]]:
        """Runs ``[b0, b1)`` of consecutive buckets holding about `size` entries each."""
        runs, start, held = [], 0, 0
        for b, count in enumerate(self.counts.tolist()):
            if held and held + count > size:
                runs.append((start, b))
                start, held = b, 0
            held += count
        runs.append((start, self.n_buckets))
        return runs

    def take(self, b0: int, b1: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The entries of buckets ``[b0, b1)``, sorted by (bucket, value), and where each begins."""
        starts = np.zeros(b1 - b0 + 1, np.int64)
        np.cumsum(self.counts[b0:b1], out=starts[1:])
        if self.n_buckets == 1:
            joined = self._all[: starts[-1]]
        else:
            joined = np.empty(int(starts[-1]), np.int64)
            for b in range(b0, b1):
                lo = int(starts[b - b0])
                for piece in self._pieces[b]:
                    joined[lo : lo + len(piece)] = piece
                    lo += len(piece)
                self._pieces[b] = []
        for lo, hi in pairwise(starts.tolist()):
            joined[lo:hi].sort()
        return joined, starts


def replay(
    population: Population,
    events: Events,
    policy: Policy | None = None,
    *,
    tail_below: int = 64,
    dense_pods: int = 1 << 22,
    chunk: int = _CHUNK,
    key_bits: int = 63,
    threads: int = 2,
    block: int = 256,
    groups: bool = False,
) -> Replay:
    """Replay a log with the columnar engine: the same answers as :func:`simkit.engine.replay`.

    Parameters
    ----------
    population : Population
        Pods, users and the crossPod pairs enabled at the start.
    events : Events
        The action events, in input order (any ``ts`` order).
    policy : Policy, optional
        crossPod changes over time.
    tail_below, dense_pods, chunk, key_bits, threads, block : int
        Speed and memory knobs; the answers never depend on them. `tail_below`: when
        fewer pairs than this still have events left, finish them in a plain loop.
        `block`: when a pair has more events than this, cut the pairs into blocks of
        ``max(block, isqrt(events of the longest pair))`` events, walked side by side as
        if they were pairs (0: never cut).
        `dense_pods`: keep crossPod as a pods x pods matrix when it has fewer cells than
        this, else as a table of the pod pairs ever enabled. `chunk`: elements per piece
        of each pass over the log (pairs are walked 8 pieces at a time). `key_bits`:
        width of the integers sorted to group events by pair; wider ones are first split
        into buckets by their top bits. `threads`: threads walking pairs (1: none).
    groups : bool
        Also hand back the events grouped by pair, as walked (:class:`PairGroups`, 8
        bytes per paired event more), for :func:`simkit.metrics.metrics`.

    Returns
    -------
    Replay
        Outcomes in input order and the final pair records sorted by ``(user_a, user_b)``.

    Examples
    --------
    >>> from simkit import Events, Pod, Population, User
    >>> pop = Population.from_records([Pod(1, "a"), Pod(2, "b")], [User(1, 1), User(2, 2)], [(1, 2)])
    >>> result = replay(pop, Events.from_records([(5, 1, 2, "connect"), (9, 2, 1, "reject")]))
    >>> result.outcomes.statuses(), result.connections.statuses()
    (['PENDING_OUTGOING', 'REJECTED'], ['REJECTED'])
    """
    if not 1 <= key_bits <= 63:
        raise ValueError(f"key_bits must be between 1 and 63 (an int64), got {key_bits}")
    policy = policy if policy is not None else Policy.empty()
    n = len(events)
    in_order = n < 2 or bool(np.all(events.ts[1:] >= events.ts[:-1]))
    order = np.arange(0) if in_order else apply_order(events.ts)
    ts = events.ts if in_order else events.ts[order]

    # Pods and users sorted by id: a pod's or user's index is its rank, so pair keys sort
    # like (user_a, user_b).
    pod_order = np.argsort(population.pod_id, kind="stable")
    pods = _KeyIndex(population.pod_id[pod_order])
    n_pods = len(pod_order)
    dense = n_pods * n_pods < dense_pods
    user_order = np.argsort(population.user_id, kind="stable")
    user_ids = population.user_id[user_order]
    users = _KeyIndex(user_ids)
    user_pod = pods.lookup(population.user_pod[user_order])
    external = population.user_external[user_order]
    # Each user's facts as caller and as target, packed with its pod (for the caller times
    # the number of pods when dense, so that caller + target is the pod pair's cell). A
    # last entry answers index -1, an unknown id: nothing known.
    as_caller = np.append(
        ((user_pod * (n_pods if dense else 1)) << _POD_SHIFT)
        | np.where(population.pod_private[pod_order][user_pod], _CALLER_PRIVATE, 0)
        | np.where(external, _CALLER_EXTERNAL, 0)
        | _CALLER_KNOWN,
        0,
    ).astype(np.int32)
    as_target = np.append(
        (user_pod << _POD_SHIFT) | np.where(external, _TARGET_EXTERNAL, 0) | _TARGET_KNOWN, 0
    ).astype(np.int32)
    pod_pairs = _PodPairs(population, pods, policy, ts, dense)

    # Each event that reaches a pair record becomes one integer, its entry: pair key,
    # apply rank, class (action or view-showing refusal, times the caller's side). Sorting
    # entries groups the events by pair, in apply order. Where an entry would need more
    # than `key_bits`, the top bits of the pair key pick a bucket instead.
    side_bits = _bits(len(user_ids))  # a pair key is smaller index << side_bits | larger
    keys = _KeyLayout(side_bits, _bits(n - 1), key_bits)
    verdict = np.empty(n, np.uint8)

    def facts_of(
        lo: int, hi: int, table: NDArray[np.int16], changes: list[tuple[int, ...]]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Verdicts of the events at apply ranks [lo, hi); entries and buckets of those paired."""
        rows = slice(lo, hi) if in_order else order[lo:hi]
        ia = users.lookup(events.actor[rows])
        ib = users.lookup(events.target[rows])
        ua = as_caller[ia]
        ub = as_target[ib]
        # The facts of each event, packed; the verdict table applies §3 in order.
        facts = ua | ub
        facts &= _SAME_POD - 1
        facts |= pod_pairs.read(ua, ub, table, changes)
        del ua, ub
        # With the caller known, the target is the caller exactly when their indices agree.
        facts |= np.left_shift(ia == ib, 6, dtype=np.int32)
        facts |= np.left_shift(events.action[rows], _ACTION_SHIFT, dtype=np.int32)
        v = verdict[lo:hi]
        np.take(_VERDICTS, facts, out=v)
        del facts
        paired = np.flatnonzero(v < _N_BASES)
        pa, pb = ia[paired], ib[paired]
        cls = v[paired] * np.uint8(2)
        cls += pa > pb
        key = _pair_keys(pa, pb, side_bits)
        del ia, ib, pa, pb
        entry = key & ((1 << keys.low_bits) - 1)
        entry <<= keys.entry_shift
        paired += lo
        paired <<= 4
        entry |= paired
        entry |= cls
        key >>= keys.low_bits
        return entry, key

    spans = _spans(n, _share(n, chunk, threads))
    entries = _Buckets(keys.n_buckets, n)
    for entry, bucket in _in_order(facts_of, _joined(spans, pod_pairs.tables(spans)), threads):
        entries.add(entry, bucket)

    # Pairs are independent: walk them a slice of the grouped events at a time (cut where
    # a pair begins), so that the per-pair arrays stay the size of a slice, and on
    # `threads` threads (numpy lets go of the interpreter lock inside its loops). Each
    # slice's answers go straight to their events; its records are added in slice order.
    counter = np.zeros(n, np.int32)
    n_paired = int(entries.counts.sum())
    records = _Records(n_paired)

    def walk(pairs: _Pairs, lo: int, hi: int) -> tuple[Any, ...]:
        cls_g, rank_of, starts, pair_key = pairs.extract(lo, hi, chunk)
        outcome_g, counter_g, (f_state, f_events) = _walk_pairs(cls_g, starts, tail_below, chunk, block)
        del cls_g
        _put(verdict, rank_of, outcome_g, chunk)
        _put(counter, rank_of, counter_g, chunk)
        del outcome_g, counter_g
        kept = np.flatnonzero(f_state >> 32)
        return pair_key[kept], f_state[kept], f_events[kept], rank_of, starts if groups else None

    slices = (
        (pairs, lo, hi)
        for b0, b1 in entries.groups(8 * chunk)
        for pairs in (_Pairs(*entries.take(b0, b1), b0, keys),)
        for lo, hi in pairs.slices(_share(n_paired, 4 * chunk, threads))
    )
    group_rows: list[NDArray[np.int64]] = []
    group_starts: list[NDArray[np.int64]] = []
    grouped = 0
    for key, state, at, rank_of, starts in _in_order(walk, slices, threads):
        records.add(user_ids, key, side_bits, state, at, rank_of, ts)
        if starts is not None:
            group_rows.append(rank_of.astype(np.int64) if in_order else order[rank_of])
            group_starts.append(starts + grouped)
            grouped += len(rank_of)
    del entries, slices
    pair_groups = (
        PairGroups(
            rows=np.concatenate(group_rows) if group_rows else np.zeros(0, np.int64),
            starts=np.concatenate(group_starts) if group_starts else np.zeros(0, np.int64),
        )
        if groups
        else None
    )

    outcome = verdict if in_order else _unpermute(verdict, order, chunk)
    if not in_order:
        counter = _unpermute(counter, order, chunk)
    outcomes = Outcomes(
        code=_take(_ANSWER_CODE, outcome, np.empty(n, np.int16), chunk),
        reason=_take(_ANSWER_REASON, outcome, np.empty(n, np.int8), chunk),
        status=_take(_ANSWER_STATUS, outcome, np.empty(n, np.int8), chunk),
        request_counter=counter,
    )
    return Replay(outcomes, records.connections(), groups=pair_groups)


@dataclass(frozen=True)
class _KeyLayout:
    """How a pair key and an apply rank share one sort entry.

    An entry is ``low key bits << entry_shift | apply rank << 4 | class``; the key's top
    `split` bits, if any, pick one of `n_buckets` buckets instead.
    """

    side_bits: int
    rank_bits: int
    key_bits: int

    @property
    def entry_shift(self) -> int:
        return self.rank_bits + 4

    @property
    def split(self) -> int:
        return min(max(0, 2 * self.side_bits + self.entry_shift - self.key_bits), 2 * self.side_bits)

    @property
    def low_bits(self) -> int:
        return 2 * self.side_bits - self.split

    @property
    def n_buckets(self) -> int:
        return 1 << self.split


class _Pairs:
    """Entries of consecutive buckets, sorted by (bucket, low key bits, apply rank)."""

    def __init__(
        self,
        grouped: NDArray[np.int64],
        bucket_starts: NDArray[np.int64],
        first_bucket: int,
        keys: _KeyLayout,
    ) -> None:
        self.grouped = grouped
        self.bucket_starts = bucket_starts
        self.first_bucket = first_bucket
        self.keys = keys

    def _next_pair(self, at: int) -> int:
        """The first position at or after `at` where a pair begins."""
        after = int(np.searchsorted(self.bucket_starts, at, side="right"))
        if self.bucket_starts[after - 1] == at:
            return at
        bucket_end = int(self.bucket_starts[after])
        width = 64
        while True:
            end = min(at + width, bucket_end)
            part = self.grouped[at - 1 : end] >> self.keys.entry_shift
            change = np.flatnonzero(part[1:] != part[:-1])
            if len(change):
                return at + int(change[0])
            if end == bucket_end:
                return bucket_end
            width *= 4

    def slices(self, size: int) -> list[tuple[int, int]]:
        """``[lo, hi)`` slices of about `size` events, each holding whole pairs."""
        n = len(self.grouped)
        cuts = [0]
        while cuts[-1] + size < n:
            cuts.append(self._next_pair(cuts[-1] + size))
        cuts.append(n)
        return [(lo, hi) for lo, hi in pairwise(cuts) if lo < hi]

    def extract(
        self, lo: int, hi: int, chunk: int
    ) -> tuple[NDArray[np.uint8], NDArray[Any], NDArray[np.int64], NDArray[np.int64]]:
        """For the events of slice [lo, hi): classes, apply ranks, pair starts, pair keys."""
        part = self.grouped[lo:hi]
        n = hi - lo
        shift = self.keys.entry_shift
        # A pair begins where the key part changes, or where a bucket begins.
        first = np.empty(n, np.bool_)
        first[:1] = True
        for a, b in _spans(n - 1, chunk):
            np.not_equal(part[a + 1 : b + 1] >> shift, part[a:b] >> shift, out=first[a + 1 : b + 1])
        inside = self.bucket_starts[(self.bucket_starts > lo) & (self.bucket_starts < hi)] - lo
        first[inside] = True
        starts = np.flatnonzero(first)
        del first
        # The bucket of each pair: the last bucket starting at or before it.
        edges = np.concatenate([[0], inside, [n]])
        bucket = self.first_bucket + int(np.searchsorted(self.bucket_starts, lo, side="right")) - 1
        per_bucket = np.diff(np.searchsorted(starts, edges))
        pair_key = np.repeat(np.arange(bucket, bucket + len(per_bucket), dtype=np.int64), per_bucket)
        pair_key <<= self.keys.low_bits
        for a, b in _spans(len(starts), chunk):
            pair_key[a:b] |= part[starts[a:b]] >> shift
        cls = np.empty(n, np.uint8)
        rank_of = np.empty(n, np.int32 if self.keys.rank_bits < 31 else np.int64)
        for a, b in _spans(n, chunk):
            np.bitwise_and(part[a:b], 15, out=cls[a:b], casting="unsafe")
            piece = part[a:b] >> 4
            np.bitwise_and(piece, (1 << self.keys.rank_bits) - 1, out=rank_of[a:b], casting="unsafe")
        return cls, rank_of, starts, pair_key


class _Records:
    """The final pair records, filled slice by slice in key order.

    Arrays are reserved for `capacity` records but only the filled part is ever touched,
    so unused room costs address space, not memory.
    """

    def __init__(self, capacity: int) -> None:
        self.user_a = np.empty(capacity, np.int64)
        self.user_b = np.empty(capacity, np.int64)
        self.requester = np.empty(capacity, np.int64)
        self.status = np.empty(capacity, np.int8)
        self.counter = np.empty(capacity, np.int32)
        self.first = np.empty(capacity, np.int64)
        self.updated = np.empty(capacity, np.int64)
        self.size = 0

    def add(
        self,
        user_ids: NDArray[np.int64],
        key: NDArray[np.int64],
        side_bits: int,
        state: NDArray[np.int64],
        events: NDArray[np.int64],
        rank_of: NDArray[Any],
        ts: NDArray[np.int64],
    ) -> None:
        """Append records from their pair keys (user indices) and packed finals.

        `state` and `events` are :func:`_walk_pairs`' ``state << 32 | counter`` and
        ``last creating << 32 | last changing`` positions, which `rank_of` turns into apply
        ranks and `ts` into times.
        """
        for a, b in _spans(len(key), _CHUNK):
            lo, hi = self.size + a, self.size + b
            user_a, user_b = self.user_a[lo:hi], self.user_b[lo:hi]
            np.take(user_ids, key[a:b] >> side_bits, out=user_a)
            np.take(user_ids, key[a:b] & ((1 << side_bits) - 1), out=user_b)
            np.copyto(self.counter[lo:hi], state[a:b], casting="unsafe")  # the low 32 bits
            code = state[a:b] >> 32
            # State codes: odd ones have the smaller user as requester (see _STATES).
            np.copyto(self.requester[lo:hi], np.where(code % 2 == 1, user_a, user_b))
            code += 1
            np.floor_divide(code, 2, out=self.status[lo:hi], casting="unsafe")
            np.take(ts, rank_of[events[a:b] >> 32], out=self.first[lo:hi])
            np.take(ts, rank_of[events[a:b].astype(np.int32)], out=self.updated[lo:hi])
        self.size += len(key)

    def connections(self) -> Connections:
        """The records as :class:`Connections`."""
        size = self.size
        return Connections(
            user_a=self.user_a[:size],
            user_b=self.user_b[:size],
            requester=self.requester[:size],
            status=self.status[:size],
            request_counter=self.counter[:size],
            first_requested_at=self.first[:size],
            updated_at=self.updated[:size],
        )


def _unpermute(values: NDArray[Any], order: NDArray[np.int64], chunk: int) -> NDArray[Any]:
    """Values in apply order back to input order."""
    out = np.empty_like(values)
    _put(out, order, values, chunk)
    return out
