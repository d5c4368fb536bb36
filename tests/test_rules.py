"""The rules table: complete, checked when built, and as the spec writes it."""

from __future__ import annotations

import pytest

from simkit import rules
from simkit.rules import CHECKS, IMPLICIT, TABLE, Action, Effect, Reason, View


def test_every_cell_present() -> None:
    assert set(TABLE) == {(v, a) for v in View for a in Action}


def test_checks_in_spec_order() -> None:
    assert [c.number for c in CHECKS] == [1, 2, 3, 4, 5, 6, 7]
    assert [(c.code, c.reason) for c in CHECKS] == [
        (401, Reason.UNKNOWN_CALLER),
        (400, Reason.SELF),
        (404, Reason.UNKNOWN_USER),
        (400, Reason.IMPLICIT),
        (403, Reason.ENTITLEMENT),
        (404, Reason.UNKNOWN_USER),
        (403, Reason.CROSSPOD_DISABLED),
    ]


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


def test_refused_cells_change_nothing() -> None:
    assert all(cell.effect is Effect.KEEP for cell in TABLE.values() if cell.code != 200)


def test_every_reason_has_a_message() -> None:
    assert all(rules.message(r) for r in Reason)
