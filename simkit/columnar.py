"""`columnar`: the columnar replay engine, a whole log at once with numpy.

:func:`replay` gives exactly what :func:`simkit.engine.replay` gives, event for event, but
works on columns instead of one call at a time. It rests on one fact: two pairs of users
never affect each other, except through the crossPod relation, whose timeline is known
before the replay starts. So:

1. the checks of ``connections.md`` §3 are computed for every event at once: users are
   looked up in a table, each event's facts (caller known, same pod, ...) are packed into a
   small integer, and a verdict table built by running :data:`simkit.rules.CHECKS` in order
   over every combination of facts gives the answer or says "the pair's state decides";
2. crossPod at each event's time comes from the sorted policy timeline;
3. the events that reach a pair record are grouped by pair in apply order (one integer
   sort), and the pair state machine of §4 runs for all pairs together, one rank within
   the pair at a time, through a (state, event class) table built from
   :data:`simkit.rules.TABLE`.

Every answer is looked up in tables derived from :mod:`simkit.rules` when this module is
imported, so a rule changes in one place. This module holds no rules of its own, reads and
writes no files, and does not import pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from simkit.events import Events, Policy, apply_order
from simkit.population import Population
from simkit.results import Connections, Outcomes, Replay
from simkit.rules import (
    ACTIONS,
    CHECKS,
    IMPLICIT,
    REASONS,
    STATUSES,
    TABLE,
    Effect,
    Kind,
    Reason,
    Status,
    View,
)

__all__ = ["replay"]

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

# What an effect leaves: (kind, the caller becomes the requester?). The kinds are the spec's
# (§4); who the requester is afterwards is the part a kind alone does not say.
_EFFECT_AFTER: dict[Effect, tuple[Kind, bool]] = {
    Effect.CREATE: (Kind.PENDING, True),
    Effect.ACCEPT: (Kind.ACCEPTED, False),
    Effect.DECLINE: (Kind.REJECTED, False),
    Effect.DELETE: (Kind.NONE, False),
    Effect.REREQUEST: (Kind.PENDING, True),
    Effect.REOPEN: (Kind.PENDING, False),
}
# request_counter after an effect: counter * multiplier + addend (§4 notes).
_COUNTER_STEP: dict[Effect, tuple[int, int]] = {
    Effect.CREATE: (0, 1),
    Effect.REREQUEST: (1, 1),
    Effect.DELETE: (0, 0),
}

# Refusals whose answer carries no status (connections.md §5, outcomes `status`).
_NO_STATUS = frozenset({Reason.UNKNOWN_CALLER, Reason.SELF, Reason.UNKNOWN_USER})
# Refusals of §3 that leave the pair untouched but show the caller's view of it.
_VIEW_CHECKS = tuple(c for c in CHECKS if c.number != 4 and c.reason not in _NO_STATUS)

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
                kind, caller_requests = _EFFECT_AFTER[cell.effect]
                requester = side if caller_requests else _STATES[state][1]
                nxt = _STATE_CODE[(kind, requester if kind is not Kind.NONE else 0)]
                mul[code], add[code] = _COUNTER_STEP.get(cell.effect, (1, 0))
                creates[code] = cell.effect is Effect.CREATE
                changes[code] = True
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
_ACTION_SHIFT = 7
_CROSSPOD = 1 << (_ACTION_SHIFT + 2)
_N_FACTS = _CROSSPOD << 1

# §3, each check's condition on the facts; CHECKS gives their order and answers.
_CONDITIONS = {
    1: lambda f: not f & _CALLER_KNOWN,
    2: lambda f: bool(f & _SELF),
    3: lambda f: not f & _TARGET_KNOWN,
    4: lambda f: bool(f & _SAME_POD and f & _CALLER_PRIVATE),
    5: lambda f: not f & _SAME_POD and not f & _CALLER_EXTERNAL,
    6: lambda f: not f & _SAME_POD and not f & _TARGET_EXTERNAL,
    7: lambda f: not f & _SAME_POD and not f & _CROSSPOD,
}


def _verdicts(answers: list[tuple[int, int, int]]) -> NDArray[np.uint8]:
    """For every combination of facts, the first check of §3 that answers, in CHECKS order.

    A verdict below ``_N_BASES`` means the pair decides (an action of the table, or a
    refusal that shows the pair's view); otherwise it is an outcome code at or above
    ``_PAIR_OUTCOMES``, whose (code, reason, status) is appended to `answers` the first
    time it appears.
    """
    if sorted(_CONDITIONS) != sorted(c.number for c in CHECKS):
        raise ValueError("columnar: a check of rules.CHECKS has no condition here")
    verdicts = np.zeros(_N_FACTS, np.uint8)
    for facts in range(_N_FACTS):
        action = ACTIONS[(facts >> _ACTION_SHIFT) & 3]
        verdict = None
        for check in CHECKS:
            if not _CONDITIONS[check.number](facts):
                continue
            if check.number == 4:
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
# Whether a combination of facts (without the crossPod bit) needs crossPod to be decided.
_NEEDS_CROSSPOD = _VERDICTS[:_CROSSPOD] != _VERDICTS[_CROSSPOD:]
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
            self._span = span
            table = np.full(span + 1, -1, np.int32)
            table[self.keys - self._low] = np.arange(n, dtype=np.int32)
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
        return (mixed >> np.uint64(64 - self._bits)).astype(np.int64)

    def lookup(self, q: NDArray[np.int64]) -> NDArray[np.int32]:
        """Positions of the queries `q` in the keys (``-1`` where absent)."""
        if self._dense:
            # A wrapped subtraction is harmless: only true members land inside the span.
            offset = (q - self._low).view(np.uint64)
            return self._table[np.minimum(offset, np.uint64(self._span))]
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
    return max(int(value).bit_length(), 1)


def _crosspod_enabled(
    pod_a: NDArray[np.int32],
    pod_b: NDArray[np.int32],
    ranks: NDArray[np.int64],
    n_pods: int,
    start: NDArray[np.int64],
    policy: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]],
) -> NDArray[np.bool_]:
    """crossPod between pod indices `pod_a` and `pod_b` for events at apply ranks `ranks`.

    `start` holds the pod-pair keys enabled at the start; `policy` is (pod-pair key, the
    apply rank from which it holds, enabled), in policy apply order.
    """
    lo = np.minimum(pod_a, pod_b).astype(np.int64)
    key = lo * n_pods + np.maximum(pod_a, pod_b)
    pol_key, pol_slot, pol_on = policy
    relevant = np.unique(np.concatenate([start, pol_key]))
    index = _KeyIndex(relevant)
    where = index.lookup(key)
    initially = np.append(np.isin(relevant, start), False)
    enabled = initially[where]
    if not len(pol_key):
        return enabled
    # Events of pod pairs that policy touches: merge them with the policy events in one
    # sort by (pod pair, rank); a policy event at a rank sorts before the event at that rank.
    pair_of = np.searchsorted(relevant, pol_key)
    has_policy = np.zeros(len(relevant) + 1, np.bool_)
    has_policy[pair_of] = True
    touched = np.flatnonzero(has_policy[where])
    if not len(touched):
        return enabled
    low_bits = _bits(int(max(int(ranks.max()), int(pol_slot.max())))) + 2
    ev = (where[touched].astype(np.int64) << low_bits) | (ranks[touched] << 2) | 2
    pol = (pair_of.astype(np.int64) << low_bits) | (pol_slot << 2) | pol_on.astype(np.int64)
    # Of several policy events of a pair at one rank, the last in apply order holds.
    pol_order = np.argsort(pol >> 2, kind="stable")
    pol = pol[pol_order]
    last = np.append((pol[1:] >> 2) != (pol[:-1] >> 2), True)
    merged = np.concatenate([pol[last], ev])
    order = np.argsort(merged)
    merged = merged[order]
    is_policy = (merged & 3) < 2
    latest = np.maximum.accumulate(np.where(is_policy, np.arange(len(merged)), -1))
    group = merged >> low_bits
    seen = (latest >= 0) & (group[np.maximum(latest, 0)] == group)
    value = np.where(seen, (merged[np.maximum(latest, 0)] & 1) == 1, initially[group])
    is_event = ~is_policy
    out = np.empty(len(touched), np.bool_)
    out[order[is_event] - int(last.sum())] = value[is_event]
    enabled[touched] = out
    return enabled


def _group_by_pair(key: NDArray[np.int64], key_max: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Sort positions 0..n-1 by `key`, keeping their order within a key: (keys, positions).

    One sort of ``key << b | position`` (``b``: the bits of the largest position), which
    numpy does far faster than a stable argsort. Keys too wide for that are first split
    into buckets by their top bits (a stable radix sort), then each bucket sorted so.
    """
    n = len(key)
    pos_bits = _bits(n - 1)
    key_bits = _bits(key_max)
    split = key_bits + pos_bits - 64
    if split <= 0:
        comp = (key.astype(np.uint64) << np.uint64(pos_bits)) | np.arange(n, dtype=np.uint64)
        comp.sort()
        return (comp >> np.uint64(pos_bits)).astype(np.int64), (comp & np.uint64((1 << pos_bits) - 1)).astype(
            np.int64
        )
    if split > 16:
        positions = np.lexsort((np.arange(n), key))
        return key[positions], positions
    low_bits = key_bits - split
    bucket = (key >> low_bits).astype(np.uint16)
    by_bucket = np.argsort(bucket, kind="stable")
    edges = np.searchsorted(bucket[by_bucket], np.arange((1 << split) + 1), side="left")
    keys_out = np.empty(n, np.int64)
    pos_out = np.empty(n, np.int64)
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
        if lo == hi:
            continue
        members = by_bucket[lo:hi]
        sub_keys, local = _group_by_pair(key[members] & ((1 << low_bits) - 1), (1 << low_bits) - 1)
        keys_out[lo:hi] = sub_keys | (key[members[0]] >> low_bits << low_bits)
        pos_out[lo:hi] = members[local]
    return keys_out, pos_out


def _walk_pairs(
    cls: NDArray[np.uint8], starts: NDArray[np.int64], lens: NDArray[np.int64], tail_below: int
) -> tuple[NDArray[np.uint8], NDArray[np.int32], tuple[NDArray[Any], ...]]:
    """Run the pair state machine over events grouped by pair.

    Returns each event's outcome code and request counter, and per pair the final state,
    counter, and the positions of the last creating and last changing events. All pairs
    move together, one rank within the pair at a time; pairs sorted longest first keep the
    pairs still moving at the front of each array. When fewer than `tail_below` pairs are
    left, their remaining events run in a plain loop, cheaper than a numpy call per rank.
    """
    t = _TABLES
    n_pairs = len(starts)
    if n_pairs == 0:
        empty = np.zeros(0, np.int64)
        return (
            np.zeros(0, np.uint8),
            np.zeros(0, np.int32),
            (empty.astype(np.uint8), empty.astype(np.int32), empty, empty),
        )
    longest = int(lens.max())
    if longest < 1 << 16:
        by_length = np.argsort((longest - lens).astype(np.uint16), kind="stable")
    else:
        by_length = np.argsort(-lens, kind="stable")
    start = starts[by_length]
    length = lens[by_length]
    # moving[r]: pairs with more than r events.
    moving = n_pairs - np.cumsum(np.bincount(length, minlength=longest + 1))
    state = np.zeros(n_pairs, np.uint8)
    counter = np.zeros(n_pairs, np.int32)
    created = np.full(n_pairs, -1, np.int64)
    changed = np.full(n_pairs, -1, np.int64)
    outcome = np.empty(len(cls), np.uint8)
    counters = np.empty(len(cls), np.int32)
    rank = 0
    while rank < longest and moving[rank] >= tail_below:
        c = int(moving[rank])
        pos = start[:c] + rank
        code = state[:c] * np.uint8(_N_CLASSES) + cls[pos]
        outcome[pos] = code
        np.take(t.after, code, out=state[:c])
        cnt = counter[:c] * t.counter_mul[code] + t.counter_add[code]
        counter[:c] = cnt
        counters[pos] = cnt
        np.copyto(created[:c], pos, where=t.creates[code])
        np.copyto(changed[:c], pos, where=t.changes[code])
        rank += 1
    if rank < longest:
        # The few long pairs left: a plain loop per pair, over Python lists.
        after, mul, add = t.after.tolist(), t.counter_mul.tolist(), t.counter_add.tolist()
        creates, changes = t.creates.tolist(), t.changes.tolist()
        for j in range(int(moving[rank])):
            s, cnt, first, upd = int(state[j]), int(counter[j]), int(created[j]), int(changed[j])
            lo, hi = int(start[j]) + rank, int(start[j] + length[j])
            codes, counts = [], []
            for p, c in enumerate(cls[lo:hi].tolist(), lo):
                code_ = s * _N_CLASSES + c
                s = after[code_]
                cnt = cnt * mul[code_] + add[code_]
                codes.append(code_)
                counts.append(cnt)
                if creates[code_]:
                    first = p
                if changes[code_]:
                    upd = p
            outcome[lo:hi] = codes
            counters[lo:hi] = counts
            state[j], counter[j], created[j], changed[j] = s, cnt, first, upd
    final = []
    for values in (state, counter, created, changed):
        back = np.empty_like(values)
        back[by_length] = values
        final.append(back)
    return outcome, counters, tuple(final)


def replay(
    population: Population, events: Events, policy: Policy | None = None, *, tail_below: int = 64
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
    tail_below : int
        When fewer pairs than this still have events left, finish them in a plain loop
        (a speed knob; the answers do not depend on it).

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
    policy = policy if policy is not None else Policy.empty()
    n = len(events)
    in_order = n < 2 or bool(np.all(events.ts[1:] >= events.ts[:-1]))
    order = np.arange(0) if in_order else apply_order(events.ts)
    if in_order:
        ts, actor, target, action = events.ts, events.actor, events.target, events.action
    else:
        ts, actor, target = events.ts[order], events.actor[order], events.target[order]
        action = events.action[order]

    # Pods and users sorted by id: a pod's or user's index is its rank, so pair keys sort
    # like (user_a, user_b).
    pod_order = np.argsort(population.pod_id, kind="stable")
    pods = _KeyIndex(population.pod_id[pod_order])
    user_order = np.argsort(population.user_id, kind="stable")
    user_ids = population.user_id[user_order]
    users = _KeyIndex(user_ids)
    user_pod = pods.lookup(population.user_pod[user_order])
    user_bits = np.append(
        (user_pod << 3)
        | np.where(population.pod_private[pod_order][user_pod], _CALLER_PRIVATE, 0).astype(np.int32)
        | np.where(population.user_external[user_order], _CALLER_EXTERNAL, 0).astype(np.int32)
        | _CALLER_KNOWN,
        np.int32(0),  # answers index -1, an unknown id: nothing known
    )

    ia = users.lookup(actor)
    ib = users.lookup(target)
    ua = user_bits[ia]
    ub = user_bits[ib]
    # Pack each event's facts; the verdict table applies the checks of §3 in order.
    facts = (ua & 7) | ((ub & 3) << 3)
    facts |= ((ua ^ ub) < 8).view(np.uint8).astype(np.int32) << 5  # same pod
    facts |= (actor == target).view(np.uint8).astype(np.int32) << 6
    facts |= action.astype(np.int32) << _ACTION_SHIFT
    verdict = _VERDICTS[facts]
    undecided = np.flatnonzero(_NEEDS_CROSSPOD[facts])
    if len(undecided):
        n_pods = len(pod_order)
        on = _crosspod_enabled(
            ua[undecided] >> 3,
            ub[undecided] >> 3,
            undecided.astype(np.int64),
            n_pods,
            _pod_pair_keys(population.crosspod, pods, n_pods),
            _policy_timeline(policy, pods, n_pods, ts),
        )
        verdict[undecided] = _VERDICTS[facts[undecided] | np.where(on, _CROSSPOD, 0)]

    # The events that reach a pair record, grouped by pair in apply order.
    paired = np.flatnonzero(verdict < _N_BASES)
    pa, pb = ia[paired], ib[paired]
    n_users = len(user_ids)
    pair_key, local = _group_by_pair(
        np.minimum(pa, pb).astype(np.int64) * n_users + np.maximum(pa, pb), n_users * n_users - 1
    )
    rank_of = paired[local]  # apply rank of each grouped event
    cls = verdict[rank_of] * np.uint8(2) + (ia[rank_of] > ib[rank_of])
    starts = np.flatnonzero(np.append(True, pair_key[1:] != pair_key[:-1])) if len(paired) else paired
    lens = np.diff(np.append(starts, len(paired)))
    outcome_g, counter_g, (f_state, f_counter, f_created, f_changed) = _walk_pairs(
        cls, starts, lens, tail_below
    )

    outcome = verdict
    outcome[rank_of] = outcome_g
    counter = np.zeros(n, np.int32)
    counter[rank_of] = counter_g
    if not in_order:
        outcome = _unpermute(outcome, order)
        counter = _unpermute(counter, order)
    outcomes = Outcomes(
        code=_ANSWER_CODE[outcome],
        reason=_ANSWER_REASON[outcome],
        status=_ANSWER_STATUS[outcome],
        request_counter=counter,
    )

    kept = np.flatnonzero(f_state != 0)
    keys = pair_key[starts[kept]]
    user_a = user_ids[keys // max(n_users, 1)]
    user_b = user_ids[keys % max(n_users, 1)]
    state = f_state[kept]
    connections = Connections(
        user_a=user_a,
        user_b=user_b,
        requester=np.where(state % 2 == 1, user_a, user_b),
        status=((state + 1) // 2).astype(np.int8),
        request_counter=f_counter[kept],
        first_requested_at=ts[rank_of[f_created[kept]]],
        updated_at=ts[rank_of[f_changed[kept]]],
    )
    return Replay(outcomes, connections)


def _unpermute(values: NDArray[Any], order: NDArray[np.int64]) -> NDArray[Any]:
    """Values in apply order back to input order."""
    out = np.empty_like(values)
    out[order] = values
    return out


def _pod_pair_keys(pairs: NDArray[np.int64], pods: _KeyIndex, n_pods: int) -> NDArray[np.int64]:
    """Keys (smaller index * n_pods + larger) of pod pairs given by id, sorted and distinct."""
    pairs = pairs.reshape(-1, 2)
    a = pods.lookup(pairs[:, 0]).astype(np.int64)
    b = pods.lookup(pairs[:, 1]).astype(np.int64)
    return np.unique(np.minimum(a, b) * n_pods + np.maximum(a, b))


def _policy_timeline(
    policy: Policy, pods: _KeyIndex, n_pods: int, ts: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """Policy events in apply order as (pod-pair key, first apply rank they hold for, on)."""
    order = apply_order(policy.ts)
    a = pods.lookup(policy.pod_a[order]).astype(np.int64)
    b = pods.lookup(policy.pod_b[order]).astype(np.int64)
    key = np.minimum(a, b) * n_pods + np.maximum(a, b)
    # Policy events at a ts apply before the actions at that ts: they hold from the first
    # action whose ts is not smaller.
    slot = np.searchsorted(ts, policy.ts[order], side="left").astype(np.int64)
    return key, slot, policy.crosspod[order]
