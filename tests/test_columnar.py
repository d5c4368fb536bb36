"""The columnar engine gives exactly the per-event engine's answers, event for event."""

from __future__ import annotations

from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from simkit import columnar, engine
from simkit.events import Events, Policy
from simkit.io.runs import read_run
from simkit.population import Population
from simkit.results import Replay
from simkit.rules import ACTIONS
from tests.conftest import VECTOR_NAMES, read_expected

VECTORS = Path(__file__).parent / "vectors"
# Deterministic in CI: the same examples every run, no example database.
CASES = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# tail_below=1 drives every pair through the vectorised loop, a huge value through the
# plain loop; the default mixes them.
TAILS = [1, 64, 10**9]
# block=0 never cuts a pair into blocks, 1 cuts every pair longer than the square root of
# the longest, the default only pairs of more than 256 events.
BLOCKS = [0, 1, 256]


def assert_same(expected: Replay, got: Replay) -> None:
    for name in ("code", "reason", "status", "request_counter"):
        want, have = getattr(expected.outcomes, name), getattr(got.outcomes, name)
        assert have.dtype == want.dtype, name
        np.testing.assert_array_equal(have, want, err_msg=f"outcomes.{name}")
    for name in (
        "user_a",
        "user_b",
        "requester",
        "status",
        "request_counter",
        "first_requested_at",
        "updated_at",
    ):
        want, have = getattr(expected.connections, name), getattr(got.connections, name)
        assert have.dtype == want.dtype, name
        np.testing.assert_array_equal(have, want, err_msg=f"connections.{name}")


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Population, Events, Policy]:
    """A small population and a log over it, with every awkward case in reach."""
    n_pods = draw(st.integers(1, 4))
    pod_ids = draw(st.lists(st.integers(-5, 50), min_size=n_pods, max_size=n_pods, unique=True))
    private = draw(st.lists(st.booleans(), min_size=n_pods, max_size=n_pods))
    # Compact ids take the direct lookup table, spread-out ids the hash table.
    id_space = draw(st.sampled_from([40, 1 << 40]))
    user_ids = draw(st.lists(st.integers(-id_space, id_space), min_size=0, max_size=10, unique=True))
    user_pods = [draw(st.sampled_from(pod_ids)) for _ in user_ids]
    external = [draw(st.booleans()) for _ in user_ids]
    pairs = [(a, b) for i, a in enumerate(pod_ids) for b in pod_ids[i + 1 :]]
    crosspod = draw(st.lists(st.sampled_from(pairs), max_size=4)) if pairs else []
    population = Population.from_arrays(
        pod_id=pod_ids,
        pod_name=[f"pod{p}" for p in pod_ids],
        pod_private=private,
        user_id=user_ids,
        user_pod=user_pods,
        user_external=external,
        crosspod=crosspod,
    )
    # Unknown users are valid input: they are answered, not refused.
    someone = st.sampled_from([*user_ids, 99_999]) if user_ids else st.just(99_999)
    times = st.integers(0, 12)  # a narrow range: many equal timestamps
    rows = draw(
        st.lists(st.tuples(times, someone, someone, st.sampled_from([a.value for a in ACTIONS])), max_size=60)
    )
    policy_rows = (
        draw(st.lists(st.tuples(times, st.sampled_from(pairs), st.booleans()), max_size=10)) if pairs else []
    )
    policy = Policy.from_records([(t, *(pair[::-1] if t % 2 else pair), on) for t, pair, on in policy_rows])
    return population, Events.from_records(rows), policy


@CASES
@given(
    world=worlds(),
    tail_below=st.sampled_from(TAILS),
    dense_pods=st.sampled_from([0, 1 << 22]),
    chunk=st.sampled_from([1, 5, 1 << 22]),
    key_bits=st.sampled_from([8, 63]),
    threads=st.sampled_from([1, 2]),
    block=st.sampled_from(BLOCKS),
)
def test_columnar_agrees_with_the_per_event_engine(
    world: tuple[Population, Events, Policy],
    tail_below: int,
    dense_pods: int,
    chunk: int,
    key_bits: int,
    threads: int,
    block: int,
) -> None:
    # The knobs change how the work is cut, never the answers: dense_pods=0 keeps crossPod
    # as a table of pod pairs, chunk=1 or 5 cuts the log (and the policy slices, and the
    # grouped events) into pieces,
    # key_bits=8 splits the pair keys into buckets, threads=1 runs everything in line,
    # block=1 walks long pairs as blocks side by side.
    population, events, policy = world
    assert_same(
        engine.replay(population, events, policy),
        columnar.replay(
            population,
            events,
            policy,
            tail_below=tail_below,
            dense_pods=dense_pods,
            chunk=chunk,
            key_bits=key_bits,
            threads=threads,
            block=block,
        ),
    )


@CASES
@given(
    n_users=st.integers(2, 5),
    moves=st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 3)), min_size=40, max_size=300
    ),
    tail_below=st.sampled_from(TAILS),
    chunk=st.sampled_from([1, 3, 1 << 22]),
    block=st.sampled_from(BLOCKS),
)
def test_long_histories_of_few_pairs_agree(
    n_users: int, moves: list[tuple[int, int, int]], tail_below: int, chunk: int, block: int
) -> None:
    # Few users, many events: long runs per pair, where the plain loop takes over.
    population = Population.from_arrays(
        pod_id=[1, 2],
        pod_name=["a", "b"],
        pod_private=[True, False],
        user_id=range(n_users),
        user_pod=[1 + i % 2 for i in range(n_users)],
        user_external=[True] * n_users,
        crosspod=[(1, 2)],
    )
    events = Events.from_records(
        [(i // 3, a % n_users, b % n_users, ACTIONS[k].value) for i, (a, b, k) in enumerate(moves)]
    )
    assert_same(
        engine.replay(population, events, Policy.empty()),
        columnar.replay(population, events, Policy.empty(), tail_below=tail_below, chunk=chunk, block=block),
    )


@pytest.mark.parametrize("key_bits", [8, 63])
@pytest.mark.parametrize("chunk", [1, 2])
@pytest.mark.parametrize("seed", range(6))
def test_slices_cut_between_pairs(seed: int, chunk: int, key_bits: int) -> None:
    # Long pairs (one of 150 events) and small pieces: the grouped events are cut into
    # slices of 8 * chunk events, and each cut must move on to where a pair begins, also
    # across buckets of the pair keys (key_bits=8).
    rng = np.random.default_rng(seed)
    population = Population.from_arrays(
        pod_id=[1, 2, 3],
        pod_name=["a", "b", "c"],
        pod_private=[True, True, False],
        user_id=[10, 20, 30, 31, 40, 41],
        user_pod=[1, 2, 3, 3, 1, 2],
        user_external=[True] * 6,
        crosspod=[(1, 2), (2, 3), (1, 3)],
    )
    users = np.array([10, 20, 30, 31, 40, 41])
    actor = rng.choice(users, 250)
    target = rng.choice(users, 250)
    actor[:150], target[:150] = 10, 20  # one long pair first
    action = rng.integers(0, len(ACTIONS), 250)
    ts = np.sort(rng.integers(0, 100, 250))
    events = Events.from_records(
        [(int(t), int(a), int(b), ACTIONS[k].value) for t, a, b, k in zip(ts, actor, target, action)]
    )
    assert_same(
        engine.replay(population, events, Policy.empty()),
        columnar.replay(population, events, Policy.empty(), chunk=chunk, key_bits=key_bits),
    )


@pytest.mark.parametrize("dense_pods", [0, 1 << 22])
@pytest.mark.parametrize("chunk", [3, 4, 7])
@pytest.mark.parametrize("seed", range(4))
def test_policy_changes_inside_pieces_reach_later_pieces(seed: int, chunk: int, dense_pods: int) -> None:
    # Pieces of 3 to 7 events and a policy change every few events: most changes fall
    # inside a piece, and every later piece must see them.
    rng = np.random.default_rng(seed)
    pods = [1, 2, 3, 4]
    population = Population.from_arrays(
        pod_id=pods,
        pod_name=[f"pod{p}" for p in pods],
        pod_private=[True, True, True, False],
        user_id=range(12),
        user_pod=[pods[i % 4] for i in range(12)],
        user_external=[True] * 12,
        crosspod=[(1, 2)],
    )
    n = 200
    ts = np.sort(rng.integers(0, 400, n))
    events = Events.from_records(
        [
            (int(t), int(a), int(b), ACTIONS[int(k)].value)
            for t, a, b, k in zip(ts, rng.integers(0, 12, n), rng.integers(0, 12, n), rng.integers(0, 2, n))
        ]
    )
    pairs = [(a, b) for a in pods for b in pods if a < b]
    policy = Policy.from_records(
        [
            (int(t), *pairs[int(rng.integers(len(pairs)))], bool(rng.integers(2)))
            for t in rng.integers(0, 400, 60)
        ]
    )
    assert_same(
        engine.replay(population, events, policy),
        columnar.replay(population, events, policy, chunk=chunk, dense_pods=dense_pods),
    )


@pytest.mark.parametrize("tail_below", TAILS)
@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vectors_through_the_columnar_engine(name: str, tail_below: int) -> None:
    run = read_run(VECTORS / name)
    result = columnar.replay(run.population, run.events, run.policy, tail_below=tail_below)
    expected = read_expected(name, "outcomes")
    assert result.outcomes.code.tolist() == [int(row["code"]) for row in expected]
    assert result.outcomes.reasons() == [row["reason"] or None for row in expected]
    assert result.outcomes.statuses() == [row["status"] or None for row in expected]
    assert result.outcomes.request_counter.tolist() == [int(row["request_counter"]) for row in expected]
    c = result.connections
    got = [
        {
            "user_a": str(a),
            "user_b": str(b),
            "requester": str(r),
            "status": s,
            "request_counter": str(n),
            "first_requested_at": str(f),
            "updated_at": str(u),
        }
        for a, b, r, s, n, f, u in zip(
            c.user_a.tolist(),
            c.user_b.tolist(),
            c.requester.tolist(),
            c.statuses(),
            c.request_counter.tolist(),
            c.first_requested_at.tolist(),
            c.updated_at.tolist(),
        )
    ]
    assert got == read_expected(name, "connections")


@pytest.mark.parametrize(
    "policy_rows",
    [
        [(5, 1, 2, False), (5, 2, 1, True)],  # same ts: the later row holds
        [(5, 2, 1, True), (5, 1, 2, False)],
        [(3, 1, 2, False), (4, 1, 2, True)],  # no action between them
        [(4, 1, 2, True), (3, 1, 2, False)],  # rows out of time order
        [(6, 1, 2, False)],  # after the action: too late
    ],
)
@pytest.mark.parametrize("dense_pods", [0, 1 << 22])
def test_policy_events_sharing_a_moment(
    policy_rows: list[tuple[int, int, int, bool]], dense_pods: int
) -> None:
    population = Population.from_arrays(
        pod_id=[1, 2, 3],
        pod_name=["a", "b", "c"],
        pod_private=[True, True, True],
        user_id=[10, 20, 30],
        user_pod=[1, 2, 3],
        user_external=[True, True, True],
        crosspod=[(1, 2)],
    )
    events = Events.from_records([(1, 30, 10, "connect"), (5, 10, 20, "connect"), (5, 20, 10, "accept")])
    policy = Policy.from_records(policy_rows)
    assert_same(
        engine.replay(population, events, policy),
        columnar.replay(population, events, policy, dense_pods=dense_pods),
    )


@pytest.mark.parametrize("key_bits", [0, 64])
def test_sort_keys_must_fit_an_int64(key_bits: int) -> None:
    with pytest.raises(ValueError, match="key_bits"):
        columnar.replay(Population.from_records([], []), Events.empty(), key_bits=key_bits)


def test_empty_log_and_empty_population() -> None:
    population = Population.from_records([], [])
    result = columnar.replay(population, Events.empty(), Policy.empty())
    assert len(result.outcomes) == 0 and len(result.connections) == 0
    events = Events.from_records([(1, 5, 6, "connect"), (0, 5, 5, "accept")])
    assert_same(engine.replay(population, events), columnar.replay(population, events))


@CASES
@given(
    keys=st.lists(st.integers(-(1 << 62), 1 << 62), unique=True, max_size=50),
    queries=st.lists(st.integers(-(1 << 63), (1 << 63) - 1), max_size=50),
)
def test_key_index_finds_members_and_only_them(keys: list[int], queries: list[int]) -> None:
    index = columnar._KeyIndex(np.array(keys, np.int64))
    asked = np.array(queries + keys, np.int64)
    where = {k: i for i, k in enumerate(keys)}
    assert index.lookup(asked).tolist() == [where.get(q, -1) for q in asked.tolist()]
