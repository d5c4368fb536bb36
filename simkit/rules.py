"""`rules`: the connection rules of the Pod API, written as data.

This module is the spec (``connections.md`` §2–4, §6) in a form every engine reads: the
statuses, actions and reason keys, the ordered checks of §3 (each named, with the calls it
applies to), the transition table of §4, and what each effect of that table does to a pair
record (its kind and requester afterwards, its counter and times, its datafeed event). It
holds no state and runs no events; the engines look cells and effects up here, so a rule
changes in one place. The tables are checked when the module is imported (every check
named once and in order, every effect described and well formed, every cell present, every
state reachable, every effect legal where it stands).

Choices the documentation leaves open are marked ``[C]`` in the spec and kept here as they
are listed there; see the README section "Behaviour the API leaves open".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Literal, get_args

__all__ = [
    "ACTIONS",
    "CHECKS",
    "CHECK_NAMES",
    "EFFECTS",
    "IMPLICIT",
    "REASONS",
    "STATUSES",
    "TABLE",
    "Action",
    "Call",
    "Cell",
    "Check",
    "CheckName",
    "DatafeedEvent",
    "Effect",
    "EffectRule",
    "Kind",
    "Reason",
    "Requester",
    "Status",
    "View",
    "message",
]


class Status(StrEnum):
    """A connection's status as the caller sees it (the API's ``status`` field)."""

    NONE = "NONE"
    PENDING_OUTGOING = "PENDING_OUTGOING"
    PENDING_INCOMING = "PENDING_INCOMING"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"


class Action(StrEnum):
    """What a caller does to a connection."""

    CONNECT = "connect"
    ACCEPT = "accept"
    REJECT = "reject"
    REMOVE = "remove"


class Reason(StrEnum):
    """Machine-readable key of a refused call (§3–4)."""

    UNKNOWN_CALLER = "unknown_caller"
    SELF = "self"
    UNKNOWN_USER = "unknown_user"
    IMPLICIT = "implicit"
    ENTITLEMENT = "entitlement"
    CROSSPOD_DISABLED = "crosspod_disabled"
    NOT_FOUND = "not_found"
    ALREADY_PENDING = "already_pending"
    OWN_REQUEST = "own_request"
    NOT_CONNECTED = "not_connected"
    ACCEPTED = "accepted"
    NOT_PENDING = "not_pending"


class Kind(IntEnum):
    """The canonical state of a stored pair record, without its requester (§2)."""

    NONE = 0
    PENDING = 1
    ACCEPTED = 2
    REJECTED = 3


class View(IntEnum):
    """A pair record as one caller sees it: the rows of the §4 table.

    ``REJECTED`` is split in two because ``remove`` treats them apart: the caller's own
    request was declined (``REJECTED_OWN``), or the caller declined the other's request
    (``REJECTED_DECLINED``). Every other action treats them alike.
    """

    NONE = 0
    PENDING_OUTGOING = 1
    PENDING_INCOMING = 2
    ACCEPTED = 3
    REJECTED_OWN = 4
    REJECTED_DECLINED = 5

    @property
    def status(self) -> Status:
        """The status the API shows for this view."""
        return _VIEW_STATUS[self]

    @property
    def kind(self) -> Kind:
        """The kind of record behind this view."""
        return _VIEW_KIND[self]

    @classmethod
    def of(cls, kind: Kind, caller_is_requester: bool) -> View:
        """The view of a record of `kind` for a caller who is, or is not, its requester."""
        return _KIND_VIEW[kind][0 if caller_is_requester else 1]


class Effect(IntEnum):
    """What a successful cell does to the pair record, as :data:`EFFECTS` spells out.

    ``KEEP`` changes nothing and has no entry there.
    """

    KEEP = 0
    CREATE = 1  # a first request
    ACCEPT = 2  # the request is accepted
    DECLINE = 3  # the request is declined
    DELETE = 4  # the connection is removed
    REREQUEST = 5  # a new request once declined
    REOPEN = 6  # the decliner takes the refusal back


class Requester(StrEnum):
    """Who is the requester of a pair record after an effect."""

    CALLER = "caller"  # the user who made the call
    UNCHANGED = "unchanged"  # whoever was before


class DatafeedEvent(StrEnum):
    """The real-time events about connections (``connections.md`` §6)."""

    CONNECTIONREQUESTED = "CONNECTIONREQUESTED"
    CONNECTIONACCEPTED = "CONNECTIONACCEPTED"


class Call(StrEnum):
    """A call of the connection API: one of the four actions, or a read-only call."""

    CONNECT = "connect"
    ACCEPT = "accept"
    REJECT = "reject"
    REMOVE = "remove"
    GET = "get"
    LIST = "list"


# The names of the checks of §3, in their order.
CheckName = Literal[
    "caller_unknown",
    "self",
    "target_unknown",
    "same_private_pod",
    "caller_not_external",
    "target_not_external",
    "crosspod_disabled",
]


_VIEW_STATUS: dict[View, Status] = {
    View.NONE: Status.NONE,
    View.PENDING_OUTGOING: Status.PENDING_OUTGOING,
    View.PENDING_INCOMING: Status.PENDING_INCOMING,
    View.ACCEPTED: Status.ACCEPTED,
    View.REJECTED_OWN: Status.REJECTED,
    View.REJECTED_DECLINED: Status.REJECTED,
}

# (view of the requester, view of the other user) for each kind of record.
_KIND_VIEW: dict[Kind, tuple[View, View]] = {
    Kind.NONE: (View.NONE, View.NONE),
    Kind.PENDING: (View.PENDING_OUTGOING, View.PENDING_INCOMING),
    Kind.ACCEPTED: (View.ACCEPTED, View.ACCEPTED),
    Kind.REJECTED: (View.REJECTED_OWN, View.REJECTED_DECLINED),
}
_VIEW_KIND: dict[View, Kind] = {view: kind for kind, views in _KIND_VIEW.items() for view in views}


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell of the transition table: the answer and what it does to the record."""

    code: int
    reason: Reason | None
    effect: Effect


@dataclass(frozen=True, slots=True)
class EffectRule:
    """What one effect of the §4 table does to a pair record.

    Attributes
    ----------
    before : frozenset of Kind
        The kinds of record the effect may start from (``NONE``: there is no record).
    after : Kind
        The kind of record it leaves (``NONE``: the record is deleted).
    requester : Requester
        Who is the requester afterwards.
    counter : tuple of int
        ``(multiplier, addend)``: ``requestCounter`` afterwards is
        ``counter * multiplier + addend`` (0 where there was no record).
    sets_first_requested_at, sets_updated_at : bool
        Whether ``firstRequestedAt`` / ``updatedAt`` become the call's time.
    datafeed : DatafeedEvent or None
        The §6 event the effect emits, if any.
    """

    before: frozenset[Kind]
    after: Kind
    requester: Requester
    counter: tuple[int, int]
    sets_first_requested_at: bool
    sets_updated_at: bool
    datafeed: DatafeedEvent | None


@dataclass(frozen=True, slots=True)
class Check:
    """One of the ordered checks of §3 that can answer a call before the table.

    Attributes
    ----------
    number : int
        Its place in §3.
    name : CheckName
        The name engines implement it under.
    reason : Reason
        The reason key of its refusal.
    code : int
        The HTTP status of its refusal.
    applies_to : frozenset of Call
        The calls it answers.
    condition : str
        When it applies, in words.
    """

    number: int
    name: CheckName
    reason: Reason
    code: int
    applies_to: frozenset[Call]
    condition: str


_OK = 200
_E = Effect

# Check 4: two users of the same private pod are connected implicitly.
IMPLICIT: Mapping[Action, tuple[int, Reason | None]] = MappingProxyType(
    {
        Action.CONNECT: (_OK, None),
        Action.ACCEPT: (_OK, None),
        Action.REJECT: (400, Reason.IMPLICIT),
        Action.REMOVE: (400, Reason.IMPLICIT),  # [C]
    }
)

_ACTION_CALLS = frozenset({Call.CONNECT, Call.ACCEPT, Call.REJECT, Call.REMOVE})
_ANSWERING_CALLS = _ACTION_CALLS | {Call.GET}


def _build_checks(checks: tuple[Check, ...]) -> tuple[Check, ...]:
    """Return `checks` if they are the checks of §3, each named once, in order; else raise."""
    if [c.number for c in checks] != list(range(1, len(checks) + 1)):
        raise ValueError("checks: numbered out of order")
    if tuple(c.name for c in checks) != get_args(CheckName):
        raise ValueError("checks: names differ from CheckName, or are out of order")
    for check in checks:
        if not check.applies_to >= _ACTION_CALLS:
            raise ValueError(f"checks: {check.name} must apply to every action")
        if check.code == _OK:
            raise ValueError(f"checks: {check.name} refuses nothing")
    same_pod = next(c for c in checks if c.name == "same_private_pod")
    if set(IMPLICIT) != set(Action) or any(
        answer not in {(_OK, None), (same_pod.code, same_pod.reason)} for answer in IMPLICIT.values()
    ):
        raise ValueError("checks: IMPLICIT must answer every action, 200 or the refusal of check 4")
    return checks


# §3, in the order they are applied; check 8 is the table itself. Every check answers the
# four actions and ``get`` (§4 notes). ``list`` refuses nothing: an unknown caller is an
# error there (``Engine.list`` raises ``KeyError``), and what the other checks would refuse
# is simply not listed.
CHECKS: tuple[Check, ...] = _build_checks(
    (
        Check(
            1,
            "caller_unknown",
            Reason.UNKNOWN_CALLER,
            401,
            _ANSWERING_CALLS | {Call.LIST},
            "caller unknown; list raises KeyError instead of answering",
        ),
        Check(2, "self", Reason.SELF, 400, _ANSWERING_CALLS, "target = caller [C]"),
        Check(3, "target_unknown", Reason.UNKNOWN_USER, 404, _ANSWERING_CALLS, "target unknown"),
        Check(
            4,
            "same_private_pod",
            Reason.IMPLICIT,
            400,
            _ANSWERING_CALLS,
            "same private pod: an action answers as IMPLICIT says (reject and remove refused); "
            "get answers the implicit form, 200 ACCEPTED",
        ),
        Check(
            5,
            "caller_not_external",
            Reason.ENTITLEMENT,
            403,
            _ANSWERING_CALLS,
            "different pods, caller not external [C]",
        ),
        Check(
            6,
            "target_not_external",
            Reason.UNKNOWN_USER,
            404,
            _ANSWERING_CALLS,
            "different pods, target not external [C]",
        ),
        Check(
            7,
            "crosspod_disabled",
            Reason.CROSSPOD_DISABLED,
            403,
            _ANSWERING_CALLS,
            "different pods, crossPod not enabled [C code]",
        ),
    )
)

# The names of CHECKS, in §3 order: what every engine must implement.
CHECK_NAMES: tuple[CheckName, ...] = tuple(c.name for c in CHECKS)

# The action that emits each datafeed event (§6: a connect that made a request, an accept).
_DATAFEED_ACTION = {
    DatafeedEvent.CONNECTIONREQUESTED: Action.CONNECT,
    DatafeedEvent.CONNECTIONACCEPTED: Action.ACCEPT,
}


def _build_effects(effects: Mapping[Effect, EffectRule]) -> Mapping[Effect, EffectRule]:
    """Return `effects`, read-only, if every effect but KEEP has one rule that holds together.

    A new record gets the caller as requester, both times and a counter of at least 1; a
    deleted record keeps no counter or time; a datafeed event announces the record it leaves.
    """
    if set(effects) != set(Effect) - {Effect.KEEP}:
        raise ValueError("effects: every effect but KEEP needs exactly one rule")
    for effect, rule in effects.items():
        where = f"effects: {effect.name}"
        mul, add = rule.counter
        if not rule.before or min(mul, add) < 0:
            raise ValueError(f"{where}: starts from no kind, or steps the counter below 0")
        if rule.sets_first_requested_at and not rule.sets_updated_at:
            raise ValueError(f"{where}: sets firstRequestedAt but not updatedAt")
        if Kind.NONE in rule.before and not (
            rule.requester is Requester.CALLER and rule.sets_first_requested_at and add >= 1
        ):
            raise ValueError(f"{where}: a new record needs the caller as requester, its times, a counter")
        if rule.after is Kind.NONE and (
            Kind.NONE in rule.before or rule.counter != (0, 0) or rule.sets_updated_at
        ):
            raise ValueError(f"{where}: a deleted record keeps no counter and no time")
        if rule.datafeed is DatafeedEvent.CONNECTIONREQUESTED and not (
            rule.after is Kind.PENDING and rule.requester is Requester.CALLER
        ):
            raise ValueError(f"{where}: CONNECTIONREQUESTED announces a request by the caller")
        if rule.datafeed is DatafeedEvent.CONNECTIONACCEPTED and rule.after is not Kind.ACCEPTED:
            raise ValueError(f"{where}: CONNECTIONACCEPTED announces an accepted connection")
    return MappingProxyType(dict(effects))


_K, _R = Kind, EffectRule
_CALLER, _SAME = Requester.CALLER, Requester.UNCHANGED
_REQUESTED, _ACCEPTED = DatafeedEvent.CONNECTIONREQUESTED, DatafeedEvent.CONNECTIONACCEPTED

# What each effect of the table does to a record (§4 and its notes, §6), one per line:
# before, after, requester, counter (multiplier, addend), sets firstRequestedAt, sets
# updatedAt, datafeed event. KEEP, which changes nothing, has no entry.
EFFECTS: Mapping[Effect, EffectRule] = _build_effects(
    {
        _E.CREATE: _R(frozenset({_K.NONE}), _K.PENDING, _CALLER, (0, 1), True, True, _REQUESTED),
        _E.ACCEPT: _R(frozenset({_K.PENDING}), _K.ACCEPTED, _SAME, (1, 0), False, True, _ACCEPTED),
        _E.DECLINE: _R(frozenset({_K.PENDING}), _K.REJECTED, _SAME, (1, 0), False, True, None),
        _E.DELETE: _R(frozenset({_K.ACCEPTED}), _K.NONE, _SAME, (0, 0), False, False, None),
        _E.REREQUEST: _R(frozenset({_K.REJECTED}), _K.PENDING, _CALLER, (1, 1), False, True, _REQUESTED),
        _E.REOPEN: _R(frozenset({_K.REJECTED}), _K.PENDING, _SAME, (1, 0), False, True, None),
    }
)

# §4, row by row: (view, action) -> (code, reason, effect). Read across like the spec.
_ROWS: tuple[tuple[View, Action, int, Reason | None, Effect], ...] = (
    (View.NONE, Action.CONNECT, _OK, None, _E.CREATE),
    (View.NONE, Action.ACCEPT, 404, Reason.NOT_FOUND, _E.KEEP),  # [C]
    (View.NONE, Action.REJECT, 404, Reason.NOT_FOUND, _E.KEEP),  # [C]
    (View.NONE, Action.REMOVE, 400, Reason.NOT_CONNECTED, _E.KEEP),
    (View.PENDING_OUTGOING, Action.CONNECT, 400, Reason.ALREADY_PENDING, _E.KEEP),
    (View.PENDING_OUTGOING, Action.ACCEPT, 400, Reason.OWN_REQUEST, _E.KEEP),  # [C]
    (View.PENDING_OUTGOING, Action.REJECT, 400, Reason.OWN_REQUEST, _E.KEEP),  # [C]
    (View.PENDING_OUTGOING, Action.REMOVE, 400, Reason.NOT_CONNECTED, _E.KEEP),
    (View.PENDING_INCOMING, Action.CONNECT, 400, Reason.ALREADY_PENDING, _E.KEEP),  # [C]
    (View.PENDING_INCOMING, Action.ACCEPT, _OK, None, _E.ACCEPT),
    (View.PENDING_INCOMING, Action.REJECT, _OK, None, _E.DECLINE),
    (View.PENDING_INCOMING, Action.REMOVE, _OK, None, _E.DECLINE),
    (View.ACCEPTED, Action.CONNECT, _OK, None, _E.KEEP),  # [C]
    (View.ACCEPTED, Action.ACCEPT, _OK, None, _E.KEEP),  # [C]
    (View.ACCEPTED, Action.REJECT, 400, Reason.ACCEPTED, _E.KEEP),  # [C]
    (View.ACCEPTED, Action.REMOVE, _OK, None, _E.DELETE),
    (View.REJECTED_OWN, Action.CONNECT, _OK, None, _E.REREQUEST),
    (View.REJECTED_OWN, Action.ACCEPT, 400, Reason.NOT_PENDING, _E.KEEP),  # [C]
    (View.REJECTED_OWN, Action.REJECT, 400, Reason.NOT_PENDING, _E.KEEP),  # [C]
    (View.REJECTED_OWN, Action.REMOVE, 400, Reason.NOT_CONNECTED, _E.KEEP),  # [C]
    (View.REJECTED_DECLINED, Action.CONNECT, _OK, None, _E.REREQUEST),  # [C] either side
    (View.REJECTED_DECLINED, Action.ACCEPT, 400, Reason.NOT_PENDING, _E.KEEP),  # [C]
    (View.REJECTED_DECLINED, Action.REJECT, 400, Reason.NOT_PENDING, _E.KEEP),  # [C]
    (View.REJECTED_DECLINED, Action.REMOVE, _OK, None, _E.REOPEN),
)


def _build_table(
    rows: tuple[tuple[View, Action, int, Reason | None, Effect], ...],
    effects: Mapping[Effect, EffectRule] = EFFECTS,
) -> Mapping[tuple[View, Action], Cell]:
    """Build the table from its rows, refusing any gap, repeat, illegal effect or dead state.

    An effect is legal in a cell when its rule in `effects` may start from the cell's kind
    of record and any datafeed event it emits belongs to the cell's action.
    """
    table: dict[tuple[View, Action], Cell] = {}
    for view, action, code, reason, effect in rows:
        if (view, action) in table:
            raise ValueError(f"transition table: cell ({view.name}, {action}) given twice")
        if (code == _OK) != (reason is None):
            raise ValueError(f"transition table: ({view.name}, {action}) code and reason disagree")
        if code != _OK and effect is not Effect.KEEP:
            raise ValueError(f"transition table: ({view.name}, {action}) refused but changes")
        if effect is not Effect.KEEP:
            rule = effects[effect]
            if view.kind not in rule.before:
                raise ValueError(f"transition table: {effect.name} cannot start from {view.name}")
            if rule.datafeed is not None and _DATAFEED_ACTION[rule.datafeed] is not action:
                raise ValueError(f"transition table: {effect.name} emits {rule.datafeed} on {action}")
        table[(view, action)] = Cell(code, reason, effect)
    missing = [(v.name, a.value) for v in View for a in Action if (v, a) not in table]
    if missing:
        raise ValueError(f"transition table: cells missing: {missing}")
    reached = {Kind.NONE}
    frontier = [Kind.NONE]
    while frontier:
        kind = frontier.pop()
        for (view, _action), cell in table.items():
            after = effects[cell.effect].after if cell.effect is not Effect.KEEP else None
            if view.kind is kind and after is not None and after not in reached:
                reached.add(after)
                frontier.append(after)
    if unreached := set(Kind) - reached:
        raise ValueError(f"transition table: states never reached: {sorted(unreached)}")
    return MappingProxyType(table)


TABLE: Mapping[tuple[View, Action], Cell] = _build_table(_ROWS)

# Stable small-integer codes for columnar engines and files: position in these tuples.
STATUSES: tuple[Status, ...] = tuple(Status)
ACTIONS: tuple[Action, ...] = tuple(Action)
REASONS: tuple[Reason, ...] = tuple(Reason)

_MESSAGES: dict[Reason | None, str] = {
    None: "OK",
    Reason.UNKNOWN_CALLER: "Unauthorized: invalid session token.",
    Reason.SELF: "A user cannot connect to themselves.",
    Reason.UNKNOWN_USER: "User cannot be found.",
    Reason.IMPLICIT: "Users of the same private pod are connected implicitly.",
    Reason.ENTITLEMENT: "Caller lacks the entitlement to communicate externally.",
    Reason.CROSSPOD_DISABLED: "CrossPod is not enabled between the users' pods.",
    Reason.NOT_FOUND: "Connection cannot be found.",
    Reason.ALREADY_PENDING: "A connection request is already pending between these users.",
    Reason.OWN_REQUEST: "The caller sent this request; only its recipient can answer it.",
    Reason.NOT_CONNECTED: "The users are not connected.",
    Reason.ACCEPTED: "The connection is already accepted.",
    Reason.NOT_PENDING: "There is no pending request to answer.",
}


def message(reason: Reason | None) -> str:
    """The human message that goes with a reason key (``None``: success).

    Examples
    --------
    >>> message(Reason.CROSSPOD_DISABLED)
    "CrossPod is not enabled between the users' pods."
    """
    return _MESSAGES[reason]
