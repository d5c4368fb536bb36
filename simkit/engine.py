"""`engine`: the per-event engine, the Pod API's connection rules one call at a time.

:class:`Engine` holds a population, the crossPod relation as it is now and the stored pair
records, and answers ``connect``, ``accept``, ``reject``, ``remove``, ``get`` and ``list``
as the API does (``connections.md`` §2–4). It looks every decision up in
:mod:`simkit.rules`: the answers of the checks of §3 (it applies those named in
:data:`IMPLEMENTED_CHECKS`), the cells of the §4 table, and what each effect does to a
record. It is plain Python (no pandas), the reference every other engine is tested against,
and what a notebook or an HTTP face drives call by call. :func:`replay` runs a whole log
through it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice, starmap
from typing import Any

import numpy as np

from simkit.events import Events, Policy, apply_order
from simkit.population import Population
from simkit.results import Connections, Outcomes, Replay
from simkit.rules import (
    ACTIONS,
    CHECK_NAMES,
    CHECKS,
    EFFECTS,
    IMPLICIT,
    REASONS,
    STATUSES,
    TABLE,
    Action,
    Check,
    CheckName,
    Effect,
    Kind,
    Reason,
    Requester,
    Status,
    View,
    message,
)

__all__ = ["IMPLEMENTED_CHECKS", "Answer", "Engine", "UserConnection", "replay"]

# The checks of rules.CHECKS that Engine applies, by name: in _step for the actions, in
# get, and check 1 in list. A check added to the rules must be written here too.
IMPLEMENTED_CHECKS: frozenset[CheckName] = frozenset(
    {
        "caller_unknown",
        "self",
        "target_unknown",
        "same_private_pod",
        "caller_not_external",
        "target_not_external",
        "crosspod_disabled",
    }
)
if set(CHECK_NAMES) != IMPLEMENTED_CHECKS:
    raise ValueError("engine: IMPLEMENTED_CHECKS are not the checks of rules.CHECKS")


@dataclass(frozen=True, slots=True)
class UserConnection:
    """A connection as the caller sees it: the API's ``UserConnection``.

    The times and counter are ``None`` for an implicit connection, which is never stored.
    """

    user_id: int
    status: Status
    first_requested_at: int | None = None
    updated_at: int | None = None
    request_counter: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The wire form (§7): implicit connections show only ``userId`` and ``status``."""
        out: dict[str, Any] = {"userId": self.user_id, "status": self.status.value}
        if self.request_counter is not None:
            out["firstRequestedAt"] = self.first_requested_at
            out["updatedAt"] = self.updated_at
            out["requestCounter"] = self.request_counter
        return out


@dataclass(frozen=True, slots=True)
class Answer:
    """The API's answer to one call.

    `connection` is the caller's view after the call (``None`` where the spec shows no
    status, and where there is no record). `status` is that view's status, ``NONE`` when
    there is no record.
    """

    code: int
    reason: Reason | None
    status: Status | None
    connection: UserConnection | None

    @property
    def ok(self) -> bool:
        """Whether the call succeeded (HTTP 200)."""
        return self.code == 200

    @property
    def message(self) -> str:
        """A human message for the answer."""
        return message(self.reason)


# Small-integer codes of the hot loop, derived once from the rules.
_N_ACTIONS = len(ACTIONS)
_REASON = {r: i for i, r in enumerate(REASONS)}
_STATUS = {s: i for i, s in enumerate(STATUSES)}
_CHECK: dict[CheckName, Check] = {c.name: c for c in CHECKS}


def _reason_code(reason: Reason | None) -> int:
    return -1 if reason is None else _REASON[reason]


# The hot loop answers with one int: the position of (code, reason, status) codes in
# _ANSWERS, plus the request counter above _COUNTER_SHIFT. Unpacking happens once per
# batch, in numpy.
_ANSWERS: list[tuple[int, int, int]] = []
_COUNTER_SHIFT = 8
_ANSWER_MASK = (1 << _COUNTER_SHIFT) - 1


def _answer_code(code: int, reason: Reason | None, status: Status | None) -> int:
    triple = (code, _reason_code(reason), -1 if status is None else _STATUS[status])
    if triple not in _ANSWERS:
        _ANSWERS.append(triple)
    return _ANSWERS.index(triple)


def _check_answer(name: CheckName, status: Status | None = None) -> int:
    check = _CHECK[name]
    return _answer_code(check.code, check.reason, status)


# What a cell's effect does to a stored record, as _step applies it: None for KEEP, else
# (kind after, the caller becomes the requester, counter multiplier, counter addend, sets
# first_requested_at, sets updated_at).
_Change = tuple[int, bool, int, int, bool, bool]


def _change(effect: Effect) -> _Change | None:
    if effect is Effect.KEEP:
        return None
    rule = EFFECTS[effect]
    mul, add = rule.counter
    return (
        int(rule.after),
        rule.requester is Requester.CALLER,
        mul,
        add,
        rule.sets_first_requested_at,
        rule.sets_updated_at,
    )


# View of a record for the caller: index kind * 2 + (caller is the requester).
_VIEW = [int(View.of(Kind(k), bool(own))) for k in range(len(Kind)) for own in (0, 1)]
_V_NONE = int(View.NONE)
# §3: the answers that need no record, and the refusals that show the caller's view.
_A_UNKNOWN_CALLER = _check_answer("caller_unknown")
_A_SELF = _check_answer("self")
_A_UNKNOWN_USER = _check_answer("target_unknown")
_A_NOT_EXTERNAL = _check_answer("target_not_external")
_IMPLICIT = [_answer_code(*IMPLICIT[a], Status.ACCEPTED) for a in ACTIONS]
_ENTITLEMENT_BY_VIEW = [_check_answer("caller_not_external", View(v).status) for v in range(len(View))]
_CROSSPOD_BY_VIEW = [_check_answer("crosspod_disabled", View(v).status) for v in range(len(View))]
_OK_BY_VIEW = [_answer_code(200, None, View(v).status) for v in range(len(View))]


def _cell(view: View, action: Action) -> tuple[int, _Change | None]:
    """The answer and the change of a §4 cell, for _step.

    A cell that changes a record always succeeds, and its answer (here -1) is read from the
    record afterwards; but a record made from none is the caller's request (rules.EFFECTS
    says so), so there the answer, counter included, is known in advance.
    """
    cell = TABLE[(view, action)]
    change = _change(cell.effect)
    if change is None:
        return _answer_code(cell.code, cell.reason, view.status), None
    kind, _, _, counter, _, _ = change
    if view is View.NONE:
        return _OK_BY_VIEW[_VIEW[kind * 2 + 1]] | counter << _COUNTER_SHIFT, change
    return -1, change


# §4: per (view, action), the answer and the change of the cell.
_CELL = [_cell(View(v), a) for v in range(len(View)) for a in ACTIONS]
if len(_ANSWERS) > 1 << _COUNTER_SHIFT:
    raise ValueError("engine: answers no longer fit below _COUNTER_SHIFT")
_ANSWER_CODE = np.array([t[0] for t in _ANSWERS], np.int16)
_ANSWER_REASON = np.array([t[1] for t in _ANSWERS], np.int8)
_ANSWER_STATUS = np.array([t[2] for t in _ANSWERS], np.int8)
# The refusals of get, which show no status.
_GET_REFUSAL = {c.name: Answer(c.code, c.reason, None, None) for c in CHECKS}

# A stored record: [requester, kind, request_counter, first_requested_at, updated_at].
_Record = list[int]


class Engine:
    """The connection rules of the Pod API, applied one call at a time.

    Parameters
    ----------
    population : Population
        Pods, users and the crossPod pairs enabled at the start.

    Examples
    --------
    >>> from simkit import Engine, Pod, Population, User
    >>> pop = Population.from_records(
    ...     pods=[Pod(1, "bank"), Pod(2, "fund")],
    ...     users=[User(10, 1), User(20, 2)],
    ...     crosspod=[(1, 2)],
    ... )
    >>> api = Engine(pop)
    >>> api.connect(10, 20, ts=1_000).status
    <Status.PENDING_OUTGOING: 'PENDING_OUTGOING'>
    >>> api.accept(20, 10, ts=2_000).connection.to_json()
    {'userId': 10, 'status': 'ACCEPTED', 'firstRequestedAt': 1000, 'updatedAt': 2000, 'requestCounter': 1}
    >>> api.reject(20, 10).reason
    <Reason.ACCEPTED: 'accepted'>
    """

    def __init__(self, population: Population) -> None:
        self.population = population
        private = dict(zip(population.pod_id.tolist(), population.pod_private.tolist()))
        # user id -> (pod id, external, pod is private)
        self._users: dict[int, tuple[int, bool, bool]] = {
            u: (p, e, private[p])
            for u, p, e in zip(
                population.user_id.tolist(),
                population.user_pod.tolist(),
                population.user_external.tolist(),
            )
        }
        # Both orientations of each enabled pair, so a lookup needs no ordering.
        self._crosspod: set[tuple[int, int]] = set()
        for a, b in population.crosspod.tolist():
            self.set_crosspod(a, b, True)
        self._records: dict[tuple[int, int], _Record] = {}
        self.now = 0

    # -- policy ------------------------------------------------------------------------

    def set_crosspod(self, pod_a: int, pod_b: int, enabled: bool) -> None:
        """Enable or disable crossPod between two pods from now on."""
        if enabled:
            self._crosspod.update(((pod_a, pod_b), (pod_b, pod_a)))
        else:
            self._crosspod.difference_update(((pod_a, pod_b), (pod_b, pod_a)))

    def crosspod_enabled(self, pod_a: int, pod_b: int) -> bool:
        """Whether crossPod is enabled between two pods now."""
        return (pod_a, pod_b) in self._crosspod

    # -- actions -----------------------------------------------------------------------

    def apply(self, actor: int, target: int, action: Action | str, ts: int | None = None) -> Answer:
        """Answer one action call by `actor` about `target` at `ts` (ms since the epoch).

        Without `ts` the call happens one millisecond after the previous one.
        """
        ts = self.now + 1 if ts is None else ts
        self.now = ts
        packed = self._step(ts, actor, target, ACTIONS.index(Action(action)))
        code, reason, status = _ANSWERS[packed & _ANSWER_MASK]
        return self._answer(actor, target, code, reason, status)

    def connect(self, actor: int, target: int, ts: int | None = None) -> Answer:
        """``POST /v1/connection/create``: `actor` asks `target` to connect."""
        return self.apply(actor, target, Action.CONNECT, ts)

    def accept(self, actor: int, target: int, ts: int | None = None) -> Answer:
        """``POST /v1/connection/accept``: `actor` accepts `target`'s request."""
        return self.apply(actor, target, Action.ACCEPT, ts)

    def reject(self, actor: int, target: int, ts: int | None = None) -> Answer:
        """``POST /v1/connection/reject``: `actor` declines `target`'s request."""
        return self.apply(actor, target, Action.REJECT, ts)

    def remove(self, actor: int, target: int, ts: int | None = None) -> Answer:
        """``POST /v1/connection/user/{target}/remove``."""
        return self.apply(actor, target, Action.REMOVE, ts)

    def _step(self, ts: int, a: int, b: int, act: int) -> int:
        """Apply one action; return its answer code plus its counter << _COUNTER_SHIFT.

        This is the hot loop of :func:`replay`: it works on small integers prepared from
        :mod:`simkit.rules` and follows §3 check by check, then the §4 cell and its effect.
        """
        users = self._users
        ua = users.get(a)
        if ua is None:
            return _A_UNKNOWN_CALLER
        if a == b:
            return _A_SELF
        ub = users.get(b)
        if ub is None:
            return _A_UNKNOWN_USER
        pa = ua[0]
        pb = ub[0]
        refused = None
        if pa == pb:
            if ua[2]:
                return _IMPLICIT[act]
        elif not ua[1]:
            refused = _ENTITLEMENT_BY_VIEW
        elif not ub[1]:
            return _A_NOT_EXTERNAL
        elif (pa, pb) not in self._crosspod:
            refused = _CROSSPOD_BY_VIEW
        key = (a, b) if a < b else (b, a)
        rec = self._records.get(key)
        if rec is None:
            if refused is not None:
                return refused[_V_NONE]
            answer, change = _CELL[act]  # the NONE row
            if change is not None:
                # rules.EFFECTS makes every effect from no record name the caller as
                # requester and set both times.
                self._records[key] = [a, change[0], change[3], ts, ts]
            return answer
        view = _VIEW[rec[1] * 2 + (rec[0] == a)]
        if refused is not None:
            return refused[view] | rec[2] << _COUNTER_SHIFT
        answer, change = _CELL[view * _N_ACTIONS + act]
        if change is None:
            return answer | rec[2] << _COUNTER_SHIFT
        kind, caller_requests, mul, add, sets_first, sets_updated = change
        if not kind:
            # rules.EFFECTS leaves a deleted record no counter.
            del self._records[key]
            return _OK_BY_VIEW[_V_NONE]
        if caller_requests:
            rec[0] = a
        rec[1] = kind
        rec[2] = rec[2] * mul + add
        if sets_first:
            rec[3] = ts
        if sets_updated:
            rec[4] = ts
        return _OK_BY_VIEW[_VIEW[kind * 2 + (rec[0] == a)]] | rec[2] << _COUNTER_SHIFT

    def _answer(self, caller: int, other: int, code: int, reason: int, status: int) -> Answer:
        reason_key = REASONS[reason] if reason >= 0 else None
        if status < 0:
            return Answer(code, reason_key, None, None)
        view = self._view(caller, other)
        return Answer(code, reason_key, STATUSES[status], view)

    def _view(self, caller: int, other: int) -> UserConnection | None:
        ua = self._users[caller]
        ub = self._users.get(other)
        if ub is not None and ua[0] == ub[0] and ua[2]:
            return UserConnection(other, Status.ACCEPTED)
        rec = self._records.get((caller, other) if caller < other else (other, caller))
        if rec is None:
            return None
        status = View(_VIEW[rec[1] * 2 + (rec[0] == caller)]).status
        return UserConnection(other, status, rec[3], rec[4], rec[2])

    # -- read-only calls ---------------------------------------------------------------

    def get(self, caller: int, user_id: int) -> Answer:
        """``GET /v1/connection/user/{user_id}/info``: the caller's view of one connection.

        Applies checks 1–3 and 5–7 like the actions, answers the implicit form inside a
        private pod (check 4), else 404 ``not_found`` where there is no record. Refusals
        show no status.
        """
        users = self._users
        ua = users.get(caller)
        if ua is None:
            return _GET_REFUSAL["caller_unknown"]
        if caller == user_id:
            return _GET_REFUSAL["self"]
        ub = users.get(user_id)
        if ub is None:
            return _GET_REFUSAL["target_unknown"]
        if ua[0] == ub[0]:
            if ua[2]:
                # same_private_pod: connected implicitly, never stored.
                return Answer(200, None, Status.ACCEPTED, UserConnection(user_id, Status.ACCEPTED))
        elif not ua[1]:
            return _GET_REFUSAL["caller_not_external"]
        elif not ub[1]:
            return _GET_REFUSAL["target_not_external"]
        elif not self.crosspod_enabled(ua[0], ub[0]):
            return _GET_REFUSAL["crosspod_disabled"]
        view = self._view(caller, user_id)
        if view is None:
            return Answer(404, Reason.NOT_FOUND, None, None)
        return Answer(200, None, view.status, view)

    def list(
        self,
        caller: int,
        status: Status | str | None = None,
        user_ids: Iterable[int] | None = None,
    ) -> list[UserConnection]:
        """``GET /v1/connection/list``: the caller's connections, ordered by user id.

        `status` is one status, ``"ALL"``, or ``None`` for both pending statuses. Stored
        records are listed whatever the crossPod relation is now; implicit connections
        appear only when `user_ids` names them and `status` is ``ACCEPTED`` or ``ALL``.
        ``KeyError`` if the caller is unknown.
        """
        ua = self._users[caller]  # caller_unknown: KeyError, as rules.CHECKS says
        if status is None:
            wanted = {Status.PENDING_INCOMING, Status.PENDING_OUTGOING}
        elif str(status) == "ALL":
            wanted = set(Status) - {Status.NONE}
        else:
            wanted = {Status(status)}
        names = None if user_ids is None else set(user_ids)
        found: list[UserConnection] = []
        for (a, b), _ in self._records.items():
            if caller not in (a, b):
                continue
            other = b if a == caller else a
            if names is not None and other not in names:
                continue
            view = self._view(caller, other)
            if view is not None and view.status in wanted:
                found.append(view)
        if names is not None and Status.ACCEPTED in wanted and ua[2]:
            for other in names:
                ub = self._users.get(other)
                if other != caller and ub is not None and ub[0] == ua[0]:
                    found.append(UserConnection(other, Status.ACCEPTED))
        return sorted(found, key=lambda c: c.user_id)

    # -- results -----------------------------------------------------------------------

    def connections(self) -> Connections:
        """The stored records now, sorted by ``(user_a, user_b)``."""
        keys = sorted(self._records)
        recs = [self._records[k] for k in keys]
        return Connections(
            user_a=np.array([k[0] for k in keys], dtype=np.int64),
            user_b=np.array([k[1] for k in keys], dtype=np.int64),
            requester=np.array([r[0] for r in recs], dtype=np.int64),
            status=np.array([r[1] for r in recs], dtype=np.int8),
            request_counter=np.array([r[2] for r in recs], dtype=np.int32),
            first_requested_at=np.array([r[3] for r in recs], dtype=np.int64),
            updated_at=np.array([r[4] for r in recs], dtype=np.int64),
        )

    def run(self, events: Events, policy: Policy | None = None) -> Outcomes:
        """Apply a whole log in apply order (§5); return the outcomes in input order."""
        n = len(events)
        in_order = n < 2 or bool(np.all(events.ts[1:] >= events.ts[:-1]))
        order = events.ts[:0] if in_order else apply_order(events.ts)
        ts = events.ts if in_order else events.ts[order]
        rows = zip(
            ts.tolist(),
            (events.actor if in_order else events.actor[order]).tolist(),
            (events.target if in_order else events.target[order]).tolist(),
            (events.action if in_order else events.action[order]).tolist(),
        )
        # Policy events at a ts apply before the actions at that ts: each comes into force
        # before the first action whose ts is not smaller.
        if policy is not None and len(policy):
            pol = apply_order(policy.ts)
            begins = np.searchsorted(ts, policy.ts[pol], side="left").tolist()
            changes = zip(
                policy.pod_a[pol].tolist(), policy.pod_b[pol].tolist(), policy.crosspod[pol].tolist()
            )
        else:
            begins, changes = [], zip()
        packed: list[int] = []
        done = 0
        # Records are lists, tracked by the cyclic garbage collector; a batch makes millions
        # and none can be part of a cycle, so the collector's passes over them are pure cost.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for begin, (pod_a, pod_b, enabled) in zip(begins, changes):
                packed.extend(starmap(self._step, islice(rows, begin - done)))
                done = begin
                self.set_crosspod(pod_a, pod_b, enabled)
            packed.extend(starmap(self._step, rows))
        finally:
            if collecting:
                gc.enable()
        if n:
            self.now = max(self.now, int(events.ts.max()))
        answers = np.array(packed, dtype=np.int64)
        if not in_order:
            answers[order] = answers.copy()
        kind = answers & _ANSWER_MASK
        return Outcomes(
            code=_ANSWER_CODE[kind],
            reason=_ANSWER_REASON[kind],
            status=_ANSWER_STATUS[kind],
            request_counter=(answers >> _COUNTER_SHIFT).astype(np.int32),
        )


def replay(population: Population, events: Events, policy: Policy | None = None) -> Replay:
    """Replay a log through a fresh :class:`Engine`: outcomes and final connections.

    Examples
    --------
    >>> from simkit import Events, Pod, Population, User, replay
    >>> pop = Population.from_records([Pod(1, "a"), Pod(2, "b")], [User(1, 1), User(2, 2)], [(1, 2)])
    >>> result = replay(pop, Events.from_records([(5, 1, 2, "connect"), (9, 2, 1, "reject")]))
    >>> result.outcomes.statuses(), result.connections.statuses()
    (['PENDING_OUTGOING', 'REJECTED'], ['REJECTED'])
    """
    engine = Engine(population)
    outcomes = engine.run(events, policy)
    return Replay(outcomes, engine.connections())
