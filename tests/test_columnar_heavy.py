"""Transition-heavy logs: a few pairs with long histories, walked by the columnar engine as
blocks side by side, give exactly the per-event engine's answers."""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from simkit import columnar, engine
from simkit.events import Events, Policy
from simkit.population import Population
from simkit.rules import ACTIONS
from tests.test_columnar import assert_same

CASES = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Pods 1 and 2 private, 3 public; crossPod between 1 and 3 only at the start. Users 0-2 in
# pod 1, 3-4 in pod 2, 5-7 in pod 3; user 4 is not external. So pairs reach the table
# (0-5, 5-6), answer implicitly (0-1), or are refused (0-3, 3-4) until a policy change.
POPULATION = Population.from_arrays(
    pod_id=[1, 2, 3],
    pod_name=["a", "b", "c"],
    pod_private=[True, True, False],
    user_id=range(8),
    user_pod=[1, 1, 1, 2, 2, 3, 3, 3],
    user_external=[True, True, True, True, False, True, True, True],
    crosspod=[(1, 3)],
)


def _log(moves: list[tuple[int, int, int]], users: int) -> Events:
    """One event per move (caller, target, action), two events per millisecond."""
    return Events.from_records(
        [(i // 2, a % users, b % users, ACTIONS[k].value) for i, (a, b, k) in enumerate(moves)]
    )


@CASES
@given(
    users=st.integers(2, 8),
    moves=st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 7), st.integers(0, 3)), min_size=100, max_size=1500
    ),
    toggles=st.lists(st.tuples(st.integers(0, 750), st.booleans()), max_size=6),
    block=st.sampled_from([1, 4, 16]),
    tail_below=st.sampled_from([1, 64]),
    chunk=st.sampled_from([7, 1 << 22]),
    threads=st.sampled_from([1, 2]),
)
def test_heavy_pairs_agree_with_the_per_event_engine(
    users: int,
    moves: list[tuple[int, int, int]],
    toggles: list[tuple[int, bool]],
    block: int,
    tail_below: int,
    chunk: int,
    threads: int,
) -> None:
    # Up to 28 pairs over up to 1,500 events: each pair is much longer than a block (at
    # least the square root of the longest), so most pairs are cut, their blocks' start
    # states chained; crossPod toggles between pods 1 and 2 refuse and admit pairs midway.
    events = _log(moves, users)
    policy = Policy.from_records([(t, 1, 2, on) for t, on in toggles])
    assert_same(
        engine.replay(POPULATION, events, policy),
        columnar.replay(
            POPULATION, events, policy, block=block, tail_below=tail_below, chunk=chunk, threads=threads
        ),
    )


@pytest.mark.parametrize("chunk", [5, 1 << 22])
@pytest.mark.parametrize("block", [1, 8, 256])
def test_request_counter_climbs_across_blocks(block: int, chunk: int) -> None:
    # 5 and 6 are in the public pod: connect, reject, 600 times over. The counter climbs by
    # one per connect and never resets, so each block must start from the previous one's.
    rounds = 600
    moves = [(5, 6, 0), (6, 5, 2)] * rounds
    events = _log(moves, 8)
    result = columnar.replay(POPULATION, events, block=block, chunk=chunk)
    assert_same(engine.replay(POPULATION, events), result)
    assert result.outcomes.request_counter.tolist() == [k for k in range(1, rounds + 1) for _ in (0, 1)]
    assert result.connections.request_counter.tolist() == [rounds]
    assert result.connections.statuses() == ["REJECTED"]


@pytest.mark.parametrize("block", [1, 8])
def test_a_removal_resets_the_counter_inside_a_block(block: int) -> None:
    # Cycles of connect, accept, remove: the record is deleted and created again, so the
    # counter goes 1, 1, 0 whatever block each event falls in.
    moves = [(0, 5, 0), (5, 0, 1), (0, 5, 3)] * 300
    events = _log(moves, 8)
    result = columnar.replay(POPULATION, events, block=block)
    assert_same(engine.replay(POPULATION, events), result)
    assert result.outcomes.request_counter.tolist() == [1, 1, 0] * 300
    assert len(result.connections.user_a) == 0


def test_one_pair_of_a_million_events_agrees() -> None:
    # One pair, random actions from both sides: 1,000 blocks of 1,000 events.
    rng = np.random.default_rng(7)
    n = 1_000_000
    caller = rng.integers(0, 2, n)
    events = Events(
        ts=np.arange(n, dtype=np.int64),
        actor=np.where(caller == 0, 5, 6).astype(np.int64),
        target=np.where(caller == 0, 6, 5).astype(np.int64),
        action=rng.integers(0, len(ACTIONS), n).astype(np.int8),
    )
    assert_same(engine.replay(POPULATION, events), columnar.replay(POPULATION, events))


def test_block_size_does_not_change_the_answers_of_many_pairs() -> None:
    # Pairs of every length from 1 to 400 events, interleaved: cut and uncut pairs side by
    # side, with the default knobs and with every pair cut.
    rng = np.random.default_rng(3)
    lengths = rng.permutation(np.arange(1, 401))
    user_pairs = [(5 + (j % 3), 100 + j) for j in range(len(lengths))]
    population = Population.from_arrays(
        pod_id=[3],
        pod_name=["c"],
        pod_private=[False],
        user_id=[5, 6, 7, *range(100, 100 + len(lengths))],
        user_pod=[3] * (3 + len(lengths)),
        user_external=[True] * (3 + len(lengths)),
    )
    pair = np.repeat(np.arange(len(lengths)), lengths)
    rng.shuffle(pair)
    flip = rng.integers(0, 2, len(pair)).astype(bool)
    a = np.array([user_pairs[j][0] for j in pair.tolist()])
    b = np.array([user_pairs[j][1] for j in pair.tolist()])
    events = Events(
        ts=np.sort(rng.integers(0, 10_000, len(pair))),
        actor=np.where(flip, b, a),
        target=np.where(flip, a, b),
        action=rng.integers(0, len(ACTIONS), len(pair)).astype(np.int8),
    )
    expected = engine.replay(population, events)
    for block in (0, 1, 50, 256):
        assert_same(expected, columnar.replay(population, events, block=block))
