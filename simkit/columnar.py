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
from itertools import pairwise
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
_POD_SHIFT = 5  # a user's pod sits above these bits in its packed record
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
        return (mixed >> np.uint64(64 - self._bits)).astype(np.int64)

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


def _pod_facts(
    caller: NDArray[np.int32],
    target: NDArray[np.int32],
    ts: NDArray[np.int64],
    population: Population,
    pods: _KeyIndex,
    policy: Policy,
    dense: bool,
) -> NDArray[np.int16]:
    """The same-pod and crossPod facts of each event, from its users' packed records.

    `caller` and `target` hold the users' records (see :func:`replay`): the pod above
    ``_POD_SHIFT``, already multiplied by the number of pods for the caller when `dense`.
    The policy timeline is known in advance, so the events (in apply order, at times `ts`)
    are cut into slices at the policy events: within a slice the facts of a pod pair come
    from one fixed table, read for the whole slice at once. The table is a pods x pods
    matrix (its diagonal says "same pod") when `dense`, else a vector over the pod pairs
    that are ever enabled.
    """
    n_pods = len(pods.keys)
    start = population.crosspod.reshape(-1, 2)
    order = apply_order(policy.ts)
    a = pods.lookup(np.concatenate([start[:, 0], policy.pod_a[order]]))
    b = pods.lookup(np.concatenate([start[:, 1], policy.pod_b[order]]))
    # A pair naming an unknown pod, or a pod with itself, can decide no event: point it at
    # a spare last cell that no event reads.
    usable = (a >= 0) & (b >= 0) & (a != b)
    pod_a = caller >> _POD_SHIFT
    pod_b = target >> _POD_SHIFT
    if dense:
        cell = pod_a
        cell += pod_b
        where = np.where(usable, a * n_pods + b, n_pods * n_pods)
        mirror = np.where(usable, b * n_pods + a, n_pods * n_pods)
        table = np.zeros(n_pods * n_pods + 1, np.int16)
        table[: n_pods * n_pods : n_pods + 1] = _SAME_POD
    else:
        pod_bits = _bits(n_pods)
        keys = _pair_keys(a, b, pod_bits)
        relevant = np.unique(keys[usable])
        cell = _KeyIndex(relevant).lookup(_pair_keys(pod_a, pod_b, pod_bits))
        where = np.where(usable, np.searchsorted(relevant, keys), len(relevant))
        mirror = where
        table = np.zeros(len(relevant) + 1, np.int16)
    n_start = len(start)
    table[where[:n_start]] = _CROSSPOD
    table[mirror[:n_start]] = _CROSSPOD
    table[-1] = 0
    # Policy events at a ts apply before the actions at that ts: each holds from the first
    # action whose ts is not smaller.
    begins = np.searchsorted(ts, policy.ts[order], side="left").tolist()
    on = np.where(policy.crosspod[order], _CROSSPOD, 0).tolist()
    out = np.empty(len(ts), np.int16)
    done = 0
    for j, begin in enumerate(begins):
        if begin > done:
            np.take(table, cell[done:begin], out=out[done:begin])
            done = begin
        table[where[n_start + j]] = table[mirror[n_start + j]] = on[j]
        table[-1] = 0
    np.take(table, cell[done:], out=out[done:])
    if not dense:
        out[pod_a == pod_b] = _SAME_POD
    return out


def _group_by_pair(
    key: NDArray[np.int64], key_bits: int, payload: NDArray[np.int64], payload_bits: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Sort (key, payload) entries by key then payload: (keys, payloads).

    With payloads increasing along the input, this is a stable sort by key. It is one sort
    of ``key << payload_bits | payload``, which numpy does far faster than a stable argsort;
    keys too wide for that are first split into buckets by their top bits (a stable radix
    sort), and each bucket sorted so.
    """
    split = key_bits + payload_bits - 63
    if split <= 0:
        comp = key << payload_bits
        comp |= payload
        comp.sort()
        keys = comp >> payload_bits
        comp &= (1 << payload_bits) - 1
        return keys, comp
    if split > 16:
        order = np.lexsort((payload, key))
        return key[order], payload[order]
    low_bits = key_bits - split
    bucket = (key >> low_bits).astype(np.uint16)
    by_bucket = np.argsort(bucket, kind="stable")
    edges = np.searchsorted(bucket[by_bucket], np.arange((1 << split) + 1), side="left").tolist()
    keys_out = np.empty(len(key), np.int64)
    payload_out = np.empty(len(key), np.int64)
    for b, (lo, hi) in enumerate(pairwise(edges)):
        if lo < hi:
            members = by_bucket[lo:hi]
            sub_keys, payload_out[lo:hi] = _group_by_pair(
                key[members] & ((1 << low_bits) - 1), low_bits, payload[members], payload_bits
            )
            keys_out[lo:hi] = sub_keys | (b << low_bits)
    return keys_out, payload_out


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
    outcome = np.empty(len(cls), np.uint8)
    counters = np.empty(len(cls), np.int32)
    if n_pairs == 0:
        none = np.zeros(0, np.int64)
        return outcome, counters, (none.astype(np.uint8), none.astype(np.int32), none, none)
    longest = int(lens.max())
    if longest < 1 << 8:
        by_length = np.argsort((longest - lens).astype(np.uint8), kind="stable")
    elif longest < 1 << 16:
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
    rank = 0
    while rank < longest and moving[rank] >= tail_below:
        c = int(moving[rank])
        pos = start[:c] + rank
        code = state[:c] * np.uint8(_N_CLASSES)
        code += cls[pos]
        outcome[pos] = code
        np.take(t.after, code, out=state[:c])
        cnt = counter[:c]
        cnt *= t.counter_mul[code]
        cnt += t.counter_add[code]
        counters[pos] = cnt
        np.copyto(created[:c], pos, where=t.creates[code])
        np.copyto(changed[:c], pos, where=t.changes[code])
        rank += 1
    if rank < longest:
        # The few long pairs left: a plain loop per pair, over Python lists.
        after, mul, add = t.after.tolist(), t.counter_mul.tolist(), t.counter_add.tolist()
        creates, changes = t.creates.tolist(), t.changes.tolist()
        for j in range(int(moving[rank])):
            s, cnt_, first, upd = int(state[j]), int(counter[j]), int(created[j]), int(changed[j])
            lo, hi = int(start[j]) + rank, int(start[j] + length[j])
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
    final = []
    for values in (state, counter, created, changed):
        back = np.empty_like(values)
        back[by_length] = values
        final.append(back)
    return outcome, counters, tuple(final)


def replay(
    population: Population,
    events: Events,
    policy: Policy | None = None,
    *,
    tail_below: int = 64,
    dense_pods: int = 1 << 22,
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
    dense_pods : int
        Keep crossPod as a pods x pods matrix when it has fewer cells than this, else
        as a table of the pod pairs ever enabled (a memory knob; the answers do not
        depend on it).

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

    ia = users.lookup(actor)
    ib = users.lookup(target)
    ua = as_caller[ia]
    ub = as_target[ib]
    # Pack each event's facts; the verdict table applies the checks of §3 in order.
    facts = ua | ub
    facts &= _SAME_POD - 1
    facts |= _pod_facts(ua, ub, ts, population, pods, policy, dense)
    del ua, ub
    # With the caller known, the target is the caller exactly when their indices agree.
    facts |= np.left_shift(ia == ib, 6, dtype=np.int32)
    facts |= np.left_shift(action, _ACTION_SHIFT, dtype=np.int32)
    verdict = _VERDICTS[facts]
    del facts

    # The events that reach a pair record, grouped by pair in apply order: sort by pair
    # key, carrying each event's apply rank and class (the rest sort last, on a key no
    # pair has).
    n_users = len(user_ids)
    user_bits_ = _bits(n_users)
    reaches_pair = verdict < _N_BASES
    n_paired = int(np.count_nonzero(reaches_pair))
    key = _pair_keys(ia, ib, user_bits_)
    key[~reaches_pair] = (1 << (2 * user_bits_)) - 1
    payload = np.arange(n, dtype=np.int64) << 4
    payload |= verdict * np.uint8(2) + (ia > ib)  # class: base * 2 + caller's side
    del ia, ib
    rank_bits = _bits(n) + 4
    pair_key, payload = _group_by_pair(key, 2 * user_bits_, payload, rank_bits)
    del key
    pair_key, payload = pair_key[:n_paired], payload[:n_paired]
    cls = (payload & 15).astype(np.uint8)
    payload >>= 4
    rank_of = payload  # apply rank of each grouped event
    starts = np.flatnonzero(pair_key[1:] != pair_key[:-1])
    starts += 1
    starts = np.concatenate([np.zeros(min(n_paired, 1), np.int64), starts])
    lens = np.diff(np.append(starts, n_paired))
    outcome_g, counter_g, (f_state, f_counter, f_created, f_changed) = _walk_pairs(
        cls, starts, lens, tail_below
    )
    del cls

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
    user_a = user_ids[keys >> user_bits_]
    user_b = user_ids[keys & ((1 << user_bits_) - 1)]
    state = f_state[kept]
    requester = np.where(state % 2 == 1, user_a, user_b)
    status = ((state + 1) // 2).astype(np.int8)
    request_counter = f_counter[kept]
    first_requested_at = ts[rank_of[f_created[kept]]]
    updated_at = ts[rank_of[f_changed[kept]]]
    connections = Connections(
        user_a=user_a,
        user_b=user_b,
        requester=requester,
        status=status,
        request_counter=request_counter,
        first_requested_at=first_requested_at,
        updated_at=updated_at,
    )
    return Replay(outcomes, connections)


def _unpermute(values: NDArray[Any], order: NDArray[np.int64]) -> NDArray[Any]:
    """Values in apply order back to input order."""
    out = np.empty_like(values)
    out[order] = values
    return out
