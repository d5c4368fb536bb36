"""The per-event engine: calls by hand, read-only calls, and the invariants of the rules."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from simkit import Engine, Events, Pod, Policy, Population, Reason, Status, User, replay
from simkit.rules import ACTIONS


@pytest.fixture
def api() -> Engine:
    pop = Population.from_records(
        pods=[Pod(1, "bank"), Pod(2, "fund"), Pod(3, "public", private=False), Pod(4, "closed")],
        users=[
            User(10, 1),
            User(11, 1),
            User(20, 2),
            User(21, 2, external=False),
            User(30, 3),
            User(31, 3),
            User(40, 4),
        ],
        crosspod=[(2, 1), (1, 3)],
    )
    return Engine(pop)


def test_connect_accept_remove_cycle(api: Engine) -> None:
    assert api.connect(10, 20, ts=100).status is Status.PENDING_OUTGOING
    assert api.get(20, 10).status is Status.PENDING_INCOMING
    answer = api.accept(20, 10, ts=200)
    assert (answer.code, answer.status) == (200, Status.ACCEPTED)
    assert answer.connection is not None
    assert answer.connection.to_json() == {
        "userId": 10,
        "status": "ACCEPTED",
        "firstRequestedAt": 100,
        "updatedAt": 200,
        "requestCounter": 1,
    }
    assert api.remove(10, 20, ts=300).status is Status.NONE
    assert api.get(10, 20).reason is Reason.NOT_FOUND


def test_implicit_connection_is_shown_bare(api: Engine) -> None:
    answer = api.connect(10, 11)
    assert answer.ok and answer.connection is not None
    assert answer.connection.to_json() == {"userId": 11, "status": "ACCEPTED"}
    assert api.reject(10, 11).reason is Reason.IMPLICIT
    assert len(api.connections()) == 0


def test_ts_defaults_to_one_ms_after_the_last_call(api: Engine) -> None:
    api.connect(10, 20, ts=1_000)
    api.remove(20, 10)
    assert api.connections().updated_at.tolist() == [1_001]


@pytest.mark.parametrize(
    ("caller", "other", "code", "reason"),
    [
        (99, 10, 401, Reason.UNKNOWN_CALLER),
        (10, 10, 400, Reason.SELF),
        (10, 99, 404, Reason.UNKNOWN_USER),
        (21, 10, 403, Reason.ENTITLEMENT),
        (10, 21, 404, Reason.UNKNOWN_USER),
        (10, 40, 403, Reason.CROSSPOD_DISABLED),
        (10, 20, 404, Reason.NOT_FOUND),
    ],
)
def test_get_refusals(api: Engine, caller: int, other: int, code: int, reason: Reason) -> None:
    answer = api.get(caller, other)
    assert (answer.code, answer.reason) == (code, reason)
    assert answer.message


def test_get_inside_a_private_pod_is_implicit(api: Engine) -> None:
    answer = api.get(10, 11)
    assert answer.ok and answer.status is Status.ACCEPTED


def test_list_filters_and_orders(api: Engine) -> None:
    api.connect(30, 10, ts=1)
    api.connect(10, 20, ts=2)
    api.connect(31, 30, ts=3)
    assert [c.user_id for c in api.list(10)] == [20, 30]
    assert [c.status for c in api.list(10)] == [Status.PENDING_OUTGOING, Status.PENDING_INCOMING]
    assert [c.user_id for c in api.list(10, status="PENDING_INCOMING")] == [30]
    assert api.list(10, status=Status.ACCEPTED) == []
    # Implicit connections appear only when named, with ACCEPTED or ALL.
    assert [c.user_id for c in api.list(10, status="ALL", user_ids=[11, 20])] == [11, 20]
    assert api.list(10, user_ids=[11]) == []


def test_list_shows_records_whatever_crosspod_is_now(api: Engine) -> None:
    api.connect(10, 20, ts=1)
    api.set_crosspod(1, 2, False)
    assert [c.user_id for c in api.list(10)] == [20]
    assert api.get(10, 20).reason is Reason.CROSSPOD_DISABLED


# -- invariants ---------------------------------------------------------------------------

_POP = Population.from_records(
    pods=[Pod(1, "a"), Pod(2, "b"), Pod(3, "pub", private=False)],
    users=[User(1, 1), User(2, 1), User(3, 2), User(4, 2, external=False), User(5, 3), User(6, 3)],
    crosspod=[(1, 2), (1, 3)],
)
_ids = st.sampled_from([1, 2, 3, 4, 5, 6, 7])
_calls = st.lists(
    st.tuples(_ids, _ids, st.sampled_from([a.value for a in ACTIONS]), st.booleans()),
    max_size=60,
)


def _state(engine: Engine) -> tuple[object, ...]:
    c = engine.connections()
    return (
        c.user_a.tolist(),
        c.user_b.tolist(),
        c.requester.tolist(),
        c.status.tolist(),
        c.request_counter.tolist(),
        c.first_requested_at.tolist(),
        c.updated_at.tolist(),
    )


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_calls)
def test_a_refused_call_changes_nothing(calls: list[tuple[int, int, str, bool]]) -> None:
    engine = Engine(_POP)
    for ts, (actor, target, action, flip) in enumerate(calls, start=1):
        if flip:
            engine.set_crosspod(1, 2, not engine.crosspod_enabled(1, 2))
        before = _state(engine)
        answer = engine.apply(actor, target, action, ts=ts)
        if not answer.ok:
            assert _state(engine) == before


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_calls)
def test_both_sides_views_agree(calls: list[tuple[int, int, str, bool]]) -> None:
    engine = Engine(_POP)
    mirror = {
        Status.PENDING_OUTGOING: Status.PENDING_INCOMING,
        Status.PENDING_INCOMING: Status.PENDING_OUTGOING,
        Status.ACCEPTED: Status.ACCEPTED,
        Status.REJECTED: Status.REJECTED,
    }
    for ts, (actor, target, action, _) in enumerate(calls, start=1):
        engine.apply(actor, target, action, ts=ts)
    c = engine.connections()
    for a, b in zip(c.user_a.tolist(), c.user_b.tolist()):
        view_a = {v.user_id: v for v in engine.list(a, status="ALL")}[b]
        view_b = {v.user_id: v for v in engine.list(b, status="ALL")}[a]
        assert view_b.status is mirror[view_a.status]
        assert (view_a.request_counter, view_a.updated_at) == (view_b.request_counter, view_b.updated_at)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(_calls)
def test_batch_replay_equals_call_by_call(calls: list[tuple[int, int, str, bool]]) -> None:
    rows = [(ts, a, b, act) for ts, (a, b, act, _) in enumerate(calls, start=1)]
    batch = replay(_POP, Events.from_records(rows), Policy.empty())
    engine = Engine(_POP)
    answers = [engine.apply(a, b, act, ts=ts) for ts, a, b, act in rows]
    assert batch.outcomes.code.tolist() == [x.code for x in answers]
    assert batch.outcomes.statuses() == [x.status.value if x.status else None for x in answers]
    assert _state(engine) == (
        batch.connections.user_a.tolist(),
        batch.connections.user_b.tolist(),
        batch.connections.requester.tolist(),
        batch.connections.status.tolist(),
        batch.connections.request_counter.tolist(),
        batch.connections.first_requested_at.tolist(),
        batch.connections.updated_at.tolist(),
    )
