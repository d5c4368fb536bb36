"""The rules tables: complete, checked when built, and as the spec writes them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simkit import rules
from simkit.rules import (
    CHECK_NAMES,
    CHECKS,
    EFFECTS,
    IMPLICIT,
    TABLE,
    Action,
    Call,
    DatafeedEvent,
    Effect,
    Kind,
    Reason,
    Requester,
    View,
)


def test_every_cell_present() -> None:
    assert set(TABLE) == {(v, a) for v in View for a in Action}


def test_checks_in_spec_order() -> None:
    assert [c.number for c in CHECKS] == [1, 2, 3, 4, 5, 6, 7]
    assert CHECK_NAMES == (
        "caller_unknown",
        "self",
        "target_unknown",
        "same_private_pod",
        "caller_not_external",
        "target_not_external",
        "crosspod_disabled",
    )
    assert [(c.code, c.reason) for c in CHECKS] == [
        (401, Reason.UNKNOWN_CALLER),
        (400, Reason.SELF),
        (404, Reason.UNKNOWN_USER),
        (400, Reason.IMPLICIT),
        (403, Reason.ENTITLEMENT),
        (404, Reason.UNKNOWN_USER),
        (403, Reason.CROSSPOD_DISABLED),
    ]


def test_checks_apply_to_the_actions_and_get_and_only_check_1_to_list() -> None:
    actions = {Call(a.value) for a in Action}
    assert all(c.applies_to >= actions | {Call.GET} for c in CHECKS)
    assert [c.name for c in CHECKS if Call.LIST in c.applies_to] == ["caller_unknown"]


def test_build_checks_refuses_checks_out_of_order() -> None:
    with pytest.raises(ValueError, match="numbered out of order"):
        rules._build_checks((CHECKS[1], CHECKS[0], *CHECKS[2:]))
    renumbered = tuple(replace(c, number=i) for i, c in enumerate((CHECKS[1], CHECKS[0], *CHECKS[2:]), 1))
    with pytest.raises(ValueError, match="names differ"):
        rules._build_checks(renumbered)


def test_build_checks_refuses_a_check_that_skips_an_action() -> None:
    skipping = replace(CHECKS[2], applies_to=frozenset({Call.CONNECT, Call.GET}))
    with pytest.raises(ValueError, match="every action"):
        rules._build_checks((*CHECKS[:2], skipping, *CHECKS[3:]))


def test_implicit_answers() -> None:
    assert IMPLICIT[Action.CONNECT] == (200, None)
    assert IMPLICIT[Action.REJECT] == (400, Reason.IMPLICIT)


@pytest.mark.parametrize(
    ("view", "action", "code", "effect"),
    [
        (View.NONE, Action.CONNECT, 200, Effect.CREATE),
        (View.PENDING_INCOMING, Action.REMOVE, 200, Effect.DECLINE),
        (View.ACCEPTED, Action.REMOVE, 200, Effect.DELETE),
        (View.REJECTED_OWN, Action.CONNECT, 200, Effect.REREQUEST),
        (View.REJECTED_DECLINED, Action.REMOVE, 200, Effect.REOPEN),
        (View.REJECTED_OWN, Action.REMOVE, 400, Effect.KEEP),
    ],
)
def test_cells(view: View, action: Action, code: int, effect: Effect) -> None:
    assert (TABLE[(view, action)].code, TABLE[(view, action)].effect) == (code, effect)


def _rows_without(view: View, action: Action) -> tuple[tuple[View, Action, int, Reason | None, Effect], ...]:
    return tuple(r for r in rules._ROWS if (r[0], r[1]) != (view, action))


def test_build_refuses_a_missing_cell() -> None:
    with pytest.raises(ValueError, match="cells missing"):
        rules._build_table(_rows_without(View.ACCEPTED, Action.REJECT))


def test_build_refuses_a_repeated_cell() -> None:
    with pytest.raises(ValueError, match="given twice"):
        rules._build_table((*rules._ROWS, rules._ROWS[0]))


def test_build_refuses_an_illegal_effect() -> None:
    rows = (*_rows_without(View.NONE, Action.ACCEPT), (View.NONE, Action.ACCEPT, 200, None, Effect.ACCEPT))
    with pytest.raises(ValueError, match="cannot start from NONE"):
        rules._build_table(rows)


def test_build_refuses_an_unreachable_state() -> None:
    # Without the two paths into REJECTED, the REJECTED rows are dead.
    rows = tuple(
        (v, a, 400, Reason.NOT_PENDING, Effect.KEEP) if e is Effect.DECLINE else (v, a, c, r, e)
        for v, a, c, r, e in rules._ROWS
    )
    with pytest.raises(ValueError, match="never reached"):
        rules._build_table(rows)


@pytest.mark.parametrize(
    ("effect", "before", "after", "requester", "counter", "first", "datafeed"),
    [
        (Effect.CREATE, {Kind.NONE}, Kind.PENDING, Requester.CALLER, (0, 1), True, "CONNECTIONREQUESTED"),
        (
            Effect.ACCEPT,
            {Kind.PENDING},
            Kind.ACCEPTED,
            Requester.UNCHANGED,
            (1, 0),
            False,
            "CONNECTIONACCEPTED",
        ),
        (Effect.DECLINE, {Kind.PENDING}, Kind.REJECTED, Requester.UNCHANGED, (1, 0), False, None),
        (Effect.DELETE, {Kind.ACCEPTED}, Kind.NONE, Requester.UNCHANGED, (0, 0), False, None),
        (
            Effect.REREQUEST,
            {Kind.REJECTED},
            Kind.PENDING,
            Requester.CALLER,
            (1, 1),
            False,
            "CONNECTIONREQUESTED",
        ),
        (Effect.REOPEN, {Kind.REJECTED}, Kind.PENDING, Requester.UNCHANGED, (1, 0), False, None),
    ],
)
def test_effects_as_the_spec_writes_them(
    effect: Effect,
    before: set[Kind],
    after: Kind,
    requester: Requester,
    counter: tuple[int, int],
    first: bool,
    datafeed: str | None,
) -> None:
    rule = EFFECTS[effect]
    assert (set(rule.before), rule.after, rule.requester, rule.counter) == (before, after, requester, counter)
    assert rule.sets_first_requested_at is first
    # Every effect but a delete stamps updatedAt (§4).
    assert rule.sets_updated_at is (after is not Kind.NONE)
    assert rule.datafeed == datafeed


def test_every_effect_but_keep_has_a_rule() -> None:
    assert set(EFFECTS) == set(Effect) - {Effect.KEEP}


def test_only_connect_and_accept_emit_datafeed_events() -> None:
    emitting = {(a, EFFECTS[c.effect].datafeed) for (_, a), c in TABLE.items() if c.effect in EFFECTS}
    assert {(a, d) for a, d in emitting if d is not None} == {
        (Action.CONNECT, DatafeedEvent.CONNECTIONREQUESTED),
        (Action.ACCEPT, DatafeedEvent.CONNECTIONACCEPTED),
    }


def _effects_with(effect: Effect, **changes: object) -> dict[Effect, rules.EffectRule]:
    return {**EFFECTS, effect: replace(EFFECTS[effect], **changes)}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("effect", "changes", "match"),
    [
        (Effect.CREATE, {"requester": Requester.UNCHANGED}, "new record"),
        (Effect.CREATE, {"counter": (1, 0)}, "new record"),
        (Effect.DELETE, {"counter": (1, 0)}, "deleted record"),
        (Effect.ACCEPT, {"sets_first_requested_at": True, "sets_updated_at": False}, "but not updatedAt"),
        (Effect.REOPEN, {"datafeed": DatafeedEvent.CONNECTIONACCEPTED}, "CONNECTIONACCEPTED"),
        (Effect.DECLINE, {"datafeed": DatafeedEvent.CONNECTIONREQUESTED}, "CONNECTIONREQUESTED"),
        (Effect.DECLINE, {"before": frozenset()}, "starts from no kind"),
    ],
)
def test_build_effects_refuses_a_rule_that_does_not_hold_together(
    effect: Effect, changes: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        rules._build_effects(_effects_with(effect, **changes))


def test_build_effects_refuses_a_missing_effect() -> None:
    with pytest.raises(ValueError, match="needs exactly one rule"):
        rules._build_effects({e: r for e, r in EFFECTS.items() if e is not Effect.REOPEN})


def test_build_table_refuses_a_datafeed_event_on_another_action() -> None:
    # ACCEPT emits CONNECTIONACCEPTED, which only an accept may emit.
    effects = _effects_with(Effect.ACCEPT, before=frozenset({Kind.PENDING, Kind.REJECTED}))
    rows = (
        *_rows_without(View.REJECTED_DECLINED, Action.REMOVE),
        (View.REJECTED_DECLINED, Action.REMOVE, 200, None, Effect.ACCEPT),
    )
    with pytest.raises(ValueError, match="emits CONNECTIONACCEPTED on remove"):
        rules._build_table(rows, effects)


def test_view_kind() -> None:
    assert [v.kind for v in View] == [
        Kind.NONE,
        Kind.PENDING,
        Kind.PENDING,
        Kind.ACCEPTED,
        Kind.REJECTED,
        Kind.REJECTED,
    ]


def test_refused_cells_change_nothing() -> None:
    assert all(cell.effect is Effect.KEEP for cell in TABLE.values() if cell.code != 200)


def test_every_reason_has_a_message() -> None:
    assert all(rules.message(r) for r in Reason)
