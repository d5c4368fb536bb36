"""Every engine pinned to the rules tables, cell by cell.

For each cell of the §4 table and each check of §3, every engine of ``simkit.engines`` (the
per-event engine and the columnar replay) must give the answer and leave the record that
``rules.TABLE``, ``rules.EFFECTS`` and ``rules.CHECKS`` say, and must declare that it
implements every check by name (its module's ``IMPLEMENTED_CHECKS``). The expected values come from a small model that reads only
those tables, so a rule changed there is a rule every engine must follow.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simkit import analysis, engine
from simkit.engines import ENGINES, get_engine
from simkit.events import Events, Policy
from simkit.io.runs import Run
from simkit.population import Pod, Population, User
from simkit.results import Replay
from simkit.rules import (
    CHECK_NAMES,
    CHECKS,
    EFFECTS,
    IMPLICIT,
    TABLE,
    Action,
    Call,
    Check,
    CheckName,
    Effect,
    Kind,
    Reason,
    Requester,
    Status,
    View,
)
from tests.conftest import random_log

# Pods 1 and 2 are private with crossPod between them, pod 3 is public, pod 4 is private
# with crossPod to no one. Users 4 and 7 are not external; 99 does not exist.
POP = Population.from_records(
    pods=[Pod(1, "one"), Pod(2, "two"), Pod(3, "public", private=False), Pod(4, "alone")],
    users=[
        User(1, 1),
        User(2, 2),
        User(3, 1),
        User(4, 2, external=False),
        User(5, 3),
        User(6, 3),
        User(7, 1, external=False),
        User(8, 4),
    ],
    crosspod=[(1, 2)],
)
UNKNOWN = 99

# Refusals whose outcome shows no status (connections.md §5, outcomes `status`).
NO_STATUS = frozenset({Reason.UNKNOWN_CALLER, Reason.SELF, Reason.UNKNOWN_USER})


# -- the model: the rules tables and nothing else ---------------------------------------------


@dataclass(frozen=True)
class Record:
    requester: int
    kind: Kind
    counter: int
    first: int
    updated: int


def view_of(record: Record | None, caller: int) -> View:
    return View.NONE if record is None else View.of(record.kind, record.requester == caller)


def after_effect(record: Record | None, effect: Effect, caller: int, ts: int) -> Record | None:
    """The record after `effect`, as rules.EFFECTS describes it."""
    if effect is Effect.KEEP:
        return record
    rule = EFFECTS[effect]
    if rule.after is Kind.NONE:
        return None
    mul, add = rule.counter
    if record is None:
        assert rule.requester is Requester.CALLER
        assert rule.sets_first_requested_at and rule.sets_updated_at
        return Record(caller, rule.after, add, ts, ts)
    return Record(
        requester=caller if rule.requester is Requester.CALLER else record.requester,
        kind=rule.after,
        counter=record.counter * mul + add,
        first=ts if rule.sets_first_requested_at else record.first,
        updated=ts if rule.sets_updated_at else record.updated,
    )


Outcome = tuple[int, str | None, str | None, int]
# A final connection: user_a, user_b, requester, status, counter, first, updated.
Stored = tuple[int, int, int, str, int, int, int]
History = tuple[tuple[str, Action], ...]


@dataclass(frozen=True)
class Expected:
    """What the rules say a log gives: per-event outcomes, each event's cell or check, and
    the record of the pair afterwards."""

    outcomes: list[Outcome]
    effects: list[Effect]
    kinds: list[Kind]  # of the pair's record after each event
    record: Record | None


def model(rows: Sequence[tuple[int, int, int, Action]]) -> Expected:
    """The table's answers for events of one pair that pass every check of §3."""
    record: Record | None = None
    outcomes: list[Outcome] = []
    effects: list[Effect] = []
    kinds: list[Kind] = []
    for ts, caller, _target, action in rows:
        cell = TABLE[(view_of(record, caller), action)]
        record = after_effect(record, cell.effect, caller, ts)
        status = view_of(record, caller).status
        reason = None if cell.reason is None else cell.reason.value
        outcomes.append((cell.code, reason, status.value, 0 if record is None else record.counter))
        effects.append(cell.effect)
        kinds.append(Kind.NONE if record is None else record.kind)
    return Expected(outcomes, effects, kinds, record)


def outcomes_of(result: Replay) -> list[Outcome]:
    o = result.outcomes
    return list(zip(o.code.tolist(), o.reasons(), o.statuses(), o.request_counter.tolist(), strict=True))


def records_of(result: Replay) -> list[Stored]:
    c = result.connections
    return list(
        zip(
            c.user_a.tolist(),
            c.user_b.tolist(),
            c.requester.tolist(),
            c.statuses(),
            c.request_counter.tolist(),
            c.first_requested_at.tolist(),
            c.updated_at.tolist(),
            strict=True,
        )
    )


def stored(record: Record | None, a: int, b: int) -> list[Stored]:
    """The final connections the model's record makes for the pair {a, b}."""
    if record is None:
        return []
    lo, hi = min(a, b), max(a, b)
    return [(lo, hi, record.requester, record.kind.name, record.counter, record.first, record.updated)]


# -- histories: how a pair comes to each view -------------------------------------------------

# Steps by the caller ("c") or the other user ("o"). Each view of §4 is reached by at least
# one, some with a counter above 1 or times that differ, so every part of an effect shows.
_C, _O = "c", "o"
HISTORIES: tuple[History, ...] = (
    (),
    ((_C, Action.CONNECT),),
    ((_O, Action.CONNECT),),
    ((_C, Action.CONNECT), (_O, Action.ACCEPT)),
    ((_O, Action.CONNECT), (_C, Action.ACCEPT)),
    ((_C, Action.CONNECT), (_O, Action.REJECT)),
    ((_O, Action.CONNECT), (_C, Action.REJECT)),
    ((_C, Action.CONNECT), (_O, Action.REJECT), (_O, Action.CONNECT)),
    ((_C, Action.CONNECT), (_O, Action.REJECT), (_C, Action.CONNECT), (_O, Action.REJECT)),
    ((_O, Action.CONNECT), (_C, Action.REJECT), (_C, Action.REMOVE), (_C, Action.REJECT)),
    ((_O, Action.CONNECT), (_C, Action.ACCEPT), (_C, Action.REMOVE)),
    ((_O, Action.CONNECT), (_C, Action.REMOVE), (_C, Action.REMOVE)),
)


def history_rows(
    history: Sequence[tuple[str, Action]], caller: int, other: int
) -> list[tuple[int, int, int, Action]]:
    """The history as events 10 ms apart."""
    return [
        (10 * (i + 1), *((caller, other) if who == _C else (other, caller)), action)
        for i, (who, action) in enumerate(history)
    ]


def _view_after(history: Sequence[tuple[str, Action]]) -> View:
    return view_of(model(history_rows(history, 1, 2)).record, 1)


# Pairs that pass every check: (caller, other) across pods with crossPod, or in one public pod,
# each way round so that the caller is once the smaller id, once the larger.
PAIRS = {"crosspod": (1, 2), "crosspod-reversed": (2, 1), "public": (5, 6), "public-reversed": (6, 5)}


def cells(changing_only: bool = False) -> list[tuple[View, Action, int, History]]:
    """Each cell of §4 (or each that changes the record) after each history reaching its view."""
    return [
        (view, action, i, history)
        for view in View
        for action in Action
        if not changing_only or TABLE[(view, action)].effect is not Effect.KEEP
        for i, history in enumerate(HISTORIES)
        if _view_after(history) is view
    ]


def params(cases: list[tuple[View, Action, int, History]]) -> list[Any]:
    return [pytest.param(v, a, h, id=f"{v.name}-{a}-h{i}") for v, a, i, h in cases]


def test_histories_reach_every_view() -> None:
    assert {_view_after(h) for h in HISTORIES} == set(View)


def assert_engines_give(
    events: Events, policy: Policy, outcomes: list[Outcome], records: list[Stored]
) -> None:
    for name in ENGINES:
        result = get_engine(name)(POP, events, policy)
        assert outcomes_of(result) == outcomes, name
        assert records_of(result) == records, name


# -- the table, cell by cell ------------------------------------------------------------------


@pytest.mark.parametrize("pair", list(PAIRS), ids=list(PAIRS))
@pytest.mark.parametrize(("view", "action", "history"), params(cells()))
def test_every_cell_in_every_engine(view: View, action: Action, history: History, pair: str) -> None:
    caller, other = PAIRS[pair]
    rows = history_rows(history, caller, other)
    before = model(rows).record
    assert view_of(before, caller) is view
    rows.append((10 * (len(rows) + 1), caller, other, action))
    expected = model(rows)

    # The last answer is the cell's, the record the cell's effect applied to the one before.
    cell = TABLE[(view, action)]
    code, reason, status, counter = expected.outcomes[-1]
    assert (code, reason) == (cell.code, None if cell.reason is None else cell.reason.value)
    after = after_effect(before, cell.effect, caller, rows[-1][0])
    assert expected.record == after
    assert status == view_of(after, caller).status
    assert counter == (0 if after is None else after.counter)

    assert_engines_give(
        Events.from_records(rows), Policy.empty(), expected.outcomes, stored(after, caller, other)
    )


# -- the checks, one by one -------------------------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    """A call that the check answers, checks before it passing; `off` is a pod pair whose
    crossPod is switched off just before the call."""

    caller: int
    target: int
    off: tuple[int, int] | None = None


TRIGGERS: dict[CheckName, Trigger] = {
    "caller_unknown": Trigger(UNKNOWN, 2),
    "self": Trigger(1, 1),
    "target_unknown": Trigger(1, UNKNOWN),
    "same_private_pod": Trigger(1, 3),
    "caller_not_external": Trigger(7, 2),
    "target_not_external": Trigger(1, 4),
    "crosspod_disabled": Trigger(1, 2, off=(1, 2)),
}
# A call that crosspod_disabled answers with no policy event: its pods were never enabled.
NEVER_ENABLED = Trigger(1, 8)


def expected_check_answer(check: Check, action: Action, record: Record | None, caller: int) -> Outcome:
    """What rules.CHECKS (and IMPLICIT, for check 4) say the call answers."""
    if check.name == "same_private_pod":
        code, reason = IMPLICIT[action]
        return (code, None if reason is None else reason.value, Status.ACCEPTED.value, 0)
    status = None if check.reason in NO_STATUS else view_of(record, caller).status.value
    return (check.code, check.reason.value, status, 0 if record is None else record.counter)


def check_cases() -> list[Any]:
    cases = []
    for check in CHECKS:
        trigger = TRIGGERS[check.name]
        # Only crossPod can be switched off under a record that already exists.
        histories = HISTORIES if trigger.off is not None else ((),)
        for action in Action:
            for i, history in enumerate(histories):
                cases.append(pytest.param(check, action, history, id=f"{check.name}-{action}-h{i}"))
    return cases


@pytest.mark.parametrize(("check", "action", "history"), check_cases())
def test_every_check_in_every_engine(check: Check, action: Action, history: History) -> None:
    trigger = TRIGGERS[check.name]
    caller, target = trigger.caller, trigger.target
    rows = history_rows(history, caller, target)
    before = model(rows).record
    ts = 10 * (len(rows) + 1)
    policy = Policy.empty() if trigger.off is None else Policy.from_records([(ts, *trigger.off, False)])
    events = Events.from_records([*rows, (ts, caller, target, action)])
    outcomes = [*model(rows).outcomes, expected_check_answer(check, action, before, caller)]
    # Any answer of a check leaves the record as it was.
    assert_engines_give(events, policy, outcomes, stored(before, caller, target))


@pytest.mark.parametrize("action", list(Action))
def test_crosspod_never_enabled_in_every_engine(action: Action) -> None:
    check = next(c for c in CHECKS if c.name == "crosspod_disabled")
    events = Events.from_records([(10, NEVER_ENABLED.caller, NEVER_ENABLED.target, action)])
    outcome = expected_check_answer(check, action, None, NEVER_ENABLED.caller)
    assert_engines_give(events, Policy.empty(), [outcome], [])


@pytest.mark.parametrize("name", ENGINES)
def test_every_engine_implements_every_check(name: str) -> None:
    module = importlib.import_module(get_engine(name).__module__)
    assert getattr(module, "IMPLEMENTED_CHECKS", frozenset()) == set(CHECK_NAMES)


def test_every_check_has_a_trigger_here() -> None:
    assert set(TRIGGERS) == set(CHECK_NAMES)


def _engine_for(trigger: Trigger) -> engine.Engine:
    api = engine.Engine(POP)
    if trigger.off is not None:
        api.set_crosspod(*trigger.off, False)
    return api


@pytest.mark.parametrize("check", CHECKS, ids=CHECK_NAMES)
def test_get_answers_the_checks_that_apply_to_it(check: Check) -> None:
    assert Call.GET in check.applies_to
    trigger = TRIGGERS[check.name]
    answer = _engine_for(trigger).get(trigger.caller, trigger.target)
    if check.name == "same_private_pod":
        assert (answer.code, answer.reason, answer.status) == (200, None, Status.ACCEPTED)
        assert answer.connection is not None
        assert answer.connection.to_json() == {"userId": trigger.target, "status": "ACCEPTED"}
    else:
        assert (answer.code, answer.reason, answer.status) == (check.code, check.reason, None)


@pytest.mark.parametrize("check", CHECKS, ids=CHECK_NAMES)
def test_list_refuses_exactly_where_a_check_applies_to_it(check: Check) -> None:
    trigger = TRIGGERS[check.name]
    api = _engine_for(trigger)
    if Call.LIST in check.applies_to:
        with pytest.raises(KeyError):
            api.list(trigger.caller, "ALL", [trigger.target])
    else:
        api.list(trigger.caller, "ALL", [trigger.target])


# -- the record history names effects as the rules do -----------------------------------------


def test_every_changing_cell_and_every_effect_is_tried() -> None:
    tried = {(view, action) for view, action, _, _ in cells(changing_only=True)}
    assert tried == {cell for cell, c in TABLE.items() if c.effect is not Effect.KEEP}
    assert {TABLE[cell].effect for cell in tried} == set(EFFECTS)


@pytest.mark.parametrize(("view", "action", "history"), params(cells(changing_only=True)))
def test_transitions_name_effects_as_the_rules_do(view: View, action: Action, history: History) -> None:
    caller, other = PAIRS["crosspod"]
    rows = [*history_rows(history, caller, other), (10 * (len(history) + 1), caller, other, action)]
    events = Events.from_records(rows)
    frames = analysis.from_run(Run(Path("<memory>"), POP, events, Policy.empty()), engine.replay(POP, events))
    moves = analysis.transitions(frames)

    expected = model(rows)
    kinds = [Kind.NONE, *expected.kinds]
    changed = [
        (i, kinds[i].name, kinds[i + 1].name, expected.effects[i].name.lower())
        for i in range(len(rows))
        if kinds[i] is not kinds[i + 1]
    ]
    got = list(zip(moves["event"], moves["before"], moves["after"], moves["effect"], strict=True))
    assert got == changed
    # The last event is the cell under test: its effect, from its kind to the rule's.
    effect = TABLE[(view, action)].effect
    assert got[-1] == (len(rows) - 1, view.kind.name, EFFECTS[effect].after.name, effect.name.lower())


# -- grouping by pair ----------------------------------------------------------------------------


@given(
    pairs=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=200),
    base=st.sampled_from([0, 10**6, 2**40, -(2**40)]),
    wide=st.booleans(),
)
def test_group_pairs_is_a_stable_sort_by_unordered_pair(
    pairs: list[tuple[int, int]], base: int, wide: bool
) -> None:
    from simkit.results import group_pairs, pair_order

    a = np.array([base + x for x, _ in pairs], dtype=np.int64)
    # Values that span 2**31 or more take the comparison sort instead of the radix.
    b = np.array([base + y * (2**40 if wide else 1) for _, y in pairs], dtype=np.int64)
    order, starts = group_pairs(a, b)
    low, high = np.minimum(a, b), np.maximum(a, b)
    expected = np.lexsort((np.arange(len(low)), high, low))
    assert order.tolist() == expected.tolist() == pair_order(b, a).tolist()
    rows = np.arange(len(a))[::-2]  # some rows, in another order: the pairs of those
    assert group_pairs(a, b, rows)[0].tolist() == group_pairs(a[rows], b[rows])[0].tolist()
    lo, hi = low[expected], high[expected]
    assert starts.tolist() == [i == 0 or (lo[i], hi[i]) != (lo[i - 1], hi[i - 1]) for i in range(len(lo))]


def test_group_pairs_keys_slice_by_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    from simkit import results

    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 300, 1000), rng.integers(0, 300, 1000)
    expected = np.lexsort((np.arange(1000), np.maximum(a, b), np.minimum(a, b)))
    monkeypatch.setattr(results, "_SLICE", 7)
    assert results.group_pairs(a, b)[0].tolist() == expected.tolist()


@pytest.mark.parametrize("seed", range(3))
def test_record_changes_group_their_changes_by_pair_in_apply_order(seed: int) -> None:
    from simkit.engines import replay
    from simkit.events import apply_order
    from simkit.results import record_changes

    pop = Population.from_records(
        pods=[Pod(1, "a"), Pod(2, "b"), Pod(3, "open", private=False)],
        users=[User(u, 1 + u % 3) for u in range(1, 9)],
        crosspod=[(1, 2), (2, 3), (1, 3)],
    )
    n = 500
    log = random_log(seed, n, users=8, seconds=40)
    changes = record_changes(log, replay(pop, log).outcomes)
    assert sorted(changes.by_pair.tolist()) == list(range(len(changes)))
    rank = np.empty(n, np.int64)
    rank[apply_order(log.ts)] = np.arange(n)
    rows = changes.event[changes.by_pair]
    pair = [tuple(sorted(p)) for p in zip(log.actor[rows].tolist(), log.target[rows].tolist(), strict=True)]
    seen: set[tuple[int, ...]] = set()
    for i, p in enumerate(pair):
        if i == 0 or p != pair[i - 1]:
            assert p not in seen  # each pair's changes side by side
            seen.add(p)
        else:
            assert rank[rows[i]] > rank[rows[i - 1]]  # in apply order
