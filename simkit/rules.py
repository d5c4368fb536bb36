"""`rules`: the connection rules of the Pod API, written as data.

This module is the spec (``connections.md`` §2–4) in a form every engine reads: the
statuses, actions and reason keys, the ordered checks of §3 and the transition table of §4.
It holds no state and runs no events; the engines look cells up here, so a rule changes in
one place. The table is checked when the module is imported (every cell present, every
state reachable, every effect legal where it stands).

Choices the documentation leaves open are marked ``[C]`` in the spec and kept here as they
are listed there; see the README section "Behaviour the API leaves open".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from types import MappingProxyType

__all__ = [
    "ACTIONS",
    "CHECKS",
    "IMPLICIT",
    "REASONS",
    "STATUSES",
    "TABLE",
    "Action",
    "Cell",
    "Check",
    "Effect",
    "Kind",
    "Reason",
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

    @classmethod
    def of(cls, kind: Kind, caller_is_requester: bool) -> View:
        """The view of a record of `kind` for a caller who is, or is not, its requester."""
        return _KIND_VIEW[kind][0 if caller_is_requester else 1]


class Effect(IntEnum):
    """What a successful cell does to the pair record."""

    KEEP = 0  # nothing changes
    CREATE = 1  # NONE -> PENDING(r=caller), counter 1, first = updated = ts
    ACCEPT = 2  # PENDING -> ACCEPTED, same requester, updated = ts
    DECLINE = 3  # PENDING -> REJECTED, same requester, updated = ts
    DELETE = 4  # the record is deleted
    REREQUEST = 5  # REJECTED -> PENDING(r=caller), counter + 1, updated = ts
    REOPEN = 6  # REJECTED -> PENDING, same requester, updated = ts


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


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell of the transition table: the answer and what it does to the record."""

    code: int
    reason: Reason | None
    effect: Effect


@dataclass(frozen=True, slots=True)
class Check:
    """One of the ordered checks of §3 that can refuse a call before the table."""

    number: int
    reason: Reason
    code: int
    condition: str


# §3, in the order they are applied. Check 4 (same private pod) answers per action, see
# IMPLICIT; check 8 is the table itself.
CHECKS: tuple[Check, ...] = (
    Check(1, Reason.UNKNOWN_CALLER, 401, "caller unknown"),
    Check(2, Reason.SELF, 400, "target = caller [C]"),
    Check(3, Reason.UNKNOWN_USER, 404, "target unknown"),
    Check(4, Reason.IMPLICIT, 400, "same private pod: reject and remove refused"),
    Check(5, Reason.ENTITLEMENT, 403, "different pods, caller not external [C]"),
    Check(6, Reason.UNKNOWN_USER, 404, "different pods, target not external [C]"),
    Check(7, Reason.CROSSPOD_DISABLED, 403, "different pods, crossPod not enabled [C code]"),
)

_OK = 200
_E = Effect

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

# Check 4: two users of the same private pod are connected implicitly.
IMPLICIT: Mapping[Action, tuple[int, Reason | None]] = MappingProxyType(
    {
        Action.CONNECT: (_OK, None),
        Action.ACCEPT: (_OK, None),
        Action.REJECT: (400, Reason.IMPLICIT),
        Action.REMOVE: (400, Reason.IMPLICIT),  # [C]
    }
)

# The kind of record each effect may start from, and the kind it leaves.
_EFFECT_KINDS: dict[Effect, tuple[frozenset[Kind], Kind | None]] = {
    Effect.CREATE: (frozenset({Kind.NONE}), Kind.PENDING),
    Effect.ACCEPT: (frozenset({Kind.PENDING}), Kind.ACCEPTED),
    Effect.DECLINE: (frozenset({Kind.PENDING}), Kind.REJECTED),
    Effect.DELETE: (frozenset({Kind.ACCEPTED}), Kind.NONE),
    Effect.REREQUEST: (frozenset({Kind.REJECTED}), Kind.PENDING),
    Effect.REOPEN: (frozenset({Kind.REJECTED}), Kind.PENDING),
}


def _kind_of(view: View) -> Kind:
    return next(k for k, views in _KIND_VIEW.items() if view in views)


def _build_table(
    rows: tuple[tuple[View, Action, int, Reason | None, Effect], ...],
) -> Mapping[tuple[View, Action], Cell]:
    """Build the table from its rows, refusing any gap, repeat, illegal effect or dead state."""
    table: dict[tuple[View, Action], Cell] = {}
    for view, action, code, reason, effect in rows:
        if (view, action) in table:
            raise ValueError(f"transition table: cell ({view.name}, {action}) given twice")
        if (code == _OK) != (reason is None):
            raise ValueError(f"transition table: ({view.name}, {action}) code and reason disagree")
        if code != _OK and effect is not Effect.KEEP:
            raise ValueError(f"transition table: ({view.name}, {action}) refused but changes")
        if effect is not Effect.KEEP and _kind_of(view) not in _EFFECT_KINDS[effect][0]:
            raise ValueError(f"transition table: {effect.name} cannot start from {view.name}")
        table[(view, action)] = Cell(code, reason, effect)
    missing = [(v.name, a.value) for v in View for a in Action if (v, a) not in table]
    if missing:
        raise ValueError(f"transition table: cells missing: {missing}")
    reached = {Kind.NONE}
    frontier = [Kind.NONE]
    while frontier:
        kind = frontier.pop()
        for (view, _action), cell in table.items():
            after = _EFFECT_KINDS[cell.effect][1] if cell.effect is not Effect.KEEP else None
            if _kind_of(view) is kind and after is not None and after not in reached:
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
