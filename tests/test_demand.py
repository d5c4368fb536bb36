"""Latent demand: common random numbers across crossPod policies, the ``[blocked]`` knobs,
and the invariants of the demand table.

Reachability is read back here from a run's own inputs (its starting crossPod pairs, its
policy log and who is external), never from the generator's internals, so that these
tests check the generator against the rules as a reader of the run folder sees them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from simkit.engines import replay
from simkit.events import FATES, Demand, Events, Fate, Policy, apply_order
from simkit.generate import Drawn, draw, draw_population
from simkit.population import Population
from simkit.results import Replay
from simkit.rules import ACTIONS, REASONS, Action, Reason
from simkit.scenario import CrossPodSection, PolicyChange, Scenario, load_scenario

TINY = Path(__file__).resolve().parent.parent / "data" / "scenarios" / "tiny.toml"
CONNECT, ACCEPT = ACTIONS.index(Action.CONNECT), ACTIONS.index(Action.ACCEPT)
DAY_MS = 86_400_000
# The refusals a call meets when the network does not let its two users reach each other
# (§3 checks 5–7), as codes of the outcomes' `reason` column.
UNREACHABLE = [REASONS.index(r) for r in (Reason.ENTITLEMENT, Reason.UNKNOWN_USER, Reason.CROSSPOD_DISABLED)]
CROSSPOD_REFUSALS = [REASONS.index(r) for r in (Reason.ENTITLEMENT, Reason.CROSSPOD_DISABLED)]

# Deterministic in CI (the repo's convention): the same examples every run, no database.
CASES = settings(
    max_examples=50,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_Bool = NDArray[np.bool_]
_I64 = NDArray[np.int64]


# -- reachability, read back from a run's inputs --------------------------------------------


@dataclass(frozen=True, eq=False)
class Reach:
    """crossPod through a run: ``state[k]`` (pods × pods) holds from ``times[k - 1]`` on
    (``state[0]`` before the first policy event), once every policy event at that time applied."""

    population: Population
    times: _I64
    state: _Bool

    @classmethod
    def of(cls, population: Population, policy: Policy) -> Reach:
        pods = len(population.pod_id)
        now = np.zeros((pods, pods), dtype=np.bool_)
        a, b = (_pod_rows(population, population.crosspod[:, k]) for k in (0, 1))
        now[a, b] = now[b, a] = True
        pod_a, pod_b = _pod_rows(population, policy.pod_a), _pod_rows(population, policy.pod_b)
        times: list[int] = []
        states = [now]
        for i in apply_order(policy.ts).tolist():
            ts = int(policy.ts[i])
            if not times or times[-1] != ts:
                times.append(ts)
                states.append(states[-1].copy())
            states[-1][pod_a[i], pod_b[i]] = states[-1][pod_b[i], pod_a[i]] = bool(policy.crosspod[i])
        return cls(population, np.array(times, dtype=np.int64), np.stack(states))

    def crosspod_at(self, ts: _I64) -> _Bool:
        """crossPod between every two pods at each time (policy events at a time apply before actions)."""
        out: _Bool = self.state[np.searchsorted(self.times, ts, side="right")]
        return out

    def reachable(self, user: _I64, target: _I64, ts: _I64) -> _Bool:
        """Whether each call of `user` to `target` at `ts` passes §3 checks 4–7 (users of a run)."""
        pop = self.population
        u, v = _user_rows(pop, user), _user_rows(pop, target)
        pu, pv = _pod_rows(pop, pop.user_pod[u]), _pod_rows(pop, pop.user_pod[v])
        k = np.searchsorted(self.times, ts, side="right")
        across = pop.user_external[u] & pop.user_external[v] & self.state[k, pu, pv]
        out: _Bool = np.where(pu == pv, ~pop.pod_private[pu], across)
        return out


def _pod_rows(population: Population, pod_ids: NDArray[np.int64]) -> _I64:
    by_id = np.argsort(population.pod_id, kind="stable")
    out: _I64 = by_id[np.searchsorted(population.pod_id[by_id], pod_ids)]
    return out


def _user_rows(population: Population, user_ids: NDArray[np.int64]) -> _I64:
    """Rows of users by id; -1 for an id no user has."""
    by_id = np.argsort(population.user_id, kind="stable")
    ids = population.user_id[by_id]
    at = np.minimum(np.searchsorted(ids, user_ids), len(ids) - 1)
    out: _I64 = np.where(ids[at] == user_ids, by_id[at], -1)
    return out


def same_reach(a: Reach, b: Reach, start: int) -> _Bool:
    """Pod pairs whose crossPod is the same in both runs at every moment from `start` on."""
    moments = np.union1d(a.times, b.times)
    moments = np.concatenate([[start], moments[moments > start]]).astype(np.int64)
    same: _Bool = np.all(a.crosspod_at(moments) == b.crosspod_at(moments), axis=0)
    return same


def users_alike(population: Population, same: _Bool, actor: _I64, target: _I64) -> _Bool:
    """Calls between two users of the run whose reachability is the same at every moment in
    both runs: within a pod, or across pods where one is not external (never reachable), or
    across two pods whose crossPod is the same throughout (`same`)."""
    u, v = _user_rows(population, actor), _user_rows(population, target)
    users = (u >= 0) & (v >= 0)
    u, v = np.where(users, u, 0), np.where(users, v, 0)
    pu, pv = _pod_rows(population, population.user_pod[u]), _pod_rows(population, population.user_pod[v])
    entitled = population.user_external[u] & population.user_external[v]
    out: _Bool = users & (actor != target) & ((pu == pv) | ~entitled | same[pu, pv])
    return out


def mistakes(population: Population, events: Events) -> _Bool:
    """Calls no wish explains: to oneself, or to someone who is not a user."""
    out: _Bool = (events.actor == events.target) | (_user_rows(population, events.target) < 0)
    return out


def _event_rows(events: Events, mask: _Bool) -> list[tuple[int, int, int, int]]:
    return list(
        zip(*(getattr(events, c)[mask].tolist() for c in ("ts", "actor", "target", "action")), strict=True)
    )


def _outcome_rows(result: Replay, mask: _Bool) -> list[tuple[int, int, int, int]]:
    out = result.outcomes
    return list(
        zip(
            *(getattr(out, c)[mask].tolist() for c in ("code", "reason", "status", "request_counter")),
            strict=True,
        )
    )


def _key(user: NDArray[np.int64], target: NDArray[np.int64]) -> _I64:
    """One int64 per ordered pair of ids (ids stay below 2^31 here)."""
    out: _I64 = (user.astype(np.int64) << 32) | target.astype(np.int64)
    return out


def attempted(drawn: Drawn) -> _Bool:
    """Which wishes met a connect of their own at their time though the pair was shut then
    (fate not `sent`): a try at a wish the network does not allow."""
    d, ev = drawn.demand, drawn.events
    connects = ev.action == CONNECT
    calls = set(
        zip(ev.ts[connects].tolist(), _key(ev.actor[connects], ev.target[connects]).tolist(), strict=True)
    )
    wish = zip(d.ts.tolist(), _key(d.user, d.target).tolist(), strict=True)
    met = np.fromiter((w in calls for w in wish), dtype=np.bool_, count=len(d))
    out: _Bool = met & (d.fate != Fate.SENT)
    return out


def demand_rows(d: Demand) -> list[tuple[int, int, int]]:
    return list(zip(d.ts.tolist(), d.user.tolist(), d.target.tolist(), strict=True))


# -- small scenarios that differ only in crossPod -------------------------------------------


@st.composite
def worlds(draw: st.DrawFn) -> Scenario:
    """Tiny's knobs over a small population: a few pods, tens to a couple of hundred users, a few days."""
    pods = draw(st.integers(2, 6))
    min_size = draw(st.integers(1, 4))
    knobs = {
        "population.pods": pods,
        "population.min_pod_size": min_size,
        "population.users": pods * min_size + draw(st.integers(0, 150)),
        "population.private_share": draw(st.floats(0, 1)),
        "population.external_share": draw(st.floats(0, 1)),
        "population.seed": draw(st.integers(0, 1_000)),
        "time.days": draw(st.floats(0.5, 8)),
        "behaviour.requests_per_user_per_day": draw(st.floats(0.1, 2)),
        "behaviour.mistakes_per_user_per_day": draw(st.floats(0, 0.5)),
        "behaviour.answer_delay_hours": draw(st.floats(0, 48)),
        "behaviour.rerequest_chance": draw(st.floats(0, 1)),
        "behaviour.rerequest_delay_days": draw(st.floats(0, 3)),
        "behaviour.remove_per_year": draw(st.floats(0, 50)),
        "blocked.attempt": draw(st.floats(0, 1)),
        "blocked.persist": draw(st.floats(0, 1)),
        "blocked.retry_delay_days": draw(st.floats(0, 3)),
        "blocked.retry_delay_sigma": draw(st.floats(0, 2)),
    }
    return load_scenario(TINY).with_overrides(knobs)


def pair_lists(pods: int) -> st.SearchStrategy[tuple[tuple[int, int], ...]]:
    """Pairs of pods (ids 1..pods), each once."""
    every = list(itertools.combinations(range(1, pods + 1), 2))
    return st.lists(st.sampled_from(every), unique=True, max_size=len(every)).map(tuple)


def days(sc: Scenario) -> st.SearchStrategy[float]:
    """A day for a change: whole days (so that changes often fall together), any moment,
    or after the end (where it never happens)."""
    return st.one_of(st.integers(0, math.ceil(sc.time.days)).map(float), st.floats(0, sc.time.days * 1.2))


@st.composite
def any_crosspod(draw: st.DrawFn, sc: Scenario) -> CrossPodSection:
    """Any crossPod plan: drawn by density or given as pairs, any kinds of change."""
    pods = sc.population.pods
    changes = st.builds(
        PolicyChange,
        day=days(sc),
        enable=st.floats(0, 1),
        disable=st.floats(0, 1),
        pods=st.integers(0, pods),
        enable_pairs=pair_lists(pods),
        disable_pairs=pair_lists(pods),
    )
    return CrossPodSection(
        density=draw(st.floats(0, 1)),
        pairs=draw(st.none() | pair_lists(pods)),
        size_bias=draw(st.floats(0, 2)),
        changes=tuple(draw(st.lists(changes, max_size=3))),
    )


@st.composite
def differing(draw: st.DrawFn) -> tuple[Scenario, Scenario, int]:
    """Two scenarios equal but for crossPod (anything goes there), and a seed."""
    sc = draw(worlds())
    a = dataclasses.replace(sc, crosspod=draw(any_crosspod(sc)))
    b = dataclasses.replace(sc, crosspod=draw(any_crosspod(sc)))
    return a, b, draw(st.integers(0, 2**32 - 1))


@st.composite
def more_open(draw: st.DrawFn) -> tuple[Scenario, Scenario, int]:
    """A scenario A with crossPod given pair by pair, and B enabling at least what A enables
    at every moment: A's starting pairs and more, A's changes each enabling more, and
    extra changes that only enable."""
    sc = draw(worlds())
    pods = sc.population.pods
    changes = st.tuples(days(sc), pair_lists(pods), pair_lists(pods))
    plan_a = draw(st.lists(changes, max_size=3))
    start_a = draw(pair_lists(pods))
    start_b = tuple(sorted(set(start_a) | set(draw(pair_lists(pods)))))
    changes_a, changes_b = [], []
    for day, on, off in plan_a:
        changes_a.append(PolicyChange(day=day, enable_pairs=on, disable_pairs=off))
        more = tuple(sorted(set(on) | set(draw(pair_lists(pods)))))
        changes_b.append(PolicyChange(day=day, enable_pairs=more, disable_pairs=off))
    for day, on in draw(st.lists(st.tuples(days(sc), pair_lists(pods)), max_size=2)):
        # Anywhere among A's changes, a day's changes applying in the order listed.
        changes_b.insert(draw(st.integers(0, len(changes_b))), PolicyChange(day=day, enable_pairs=on))
    a = dataclasses.replace(sc, crosspod=CrossPodSection(pairs=start_a, changes=tuple(changes_a)))
    b = dataclasses.replace(sc, crosspod=CrossPodSection(pairs=start_b, changes=tuple(changes_b)))
    return a, b, draw(st.integers(0, 2**32 - 1))


def runs(a: Scenario, b: Scenario, seed: int) -> tuple[Drawn, Replay, Drawn, Replay]:
    da, db = draw(a, seed), draw(b, seed)
    return da, replay(da.population, da.events, da.policy), db, replay(db.population, db.events, db.policy)


# -- 1. common random numbers ----------------------------------------------------------------


@given(case=differing())
@CASES
def test_crosspod_changes_neither_the_wishes_nor_the_mistakes(case: tuple[Scenario, Scenario, int]) -> None:
    a, b, seed = case
    da, ra, db, rb = runs(a, b, seed)
    # The people are the population seed's, whatever crossPod is.
    for column in ("user_id", "user_pod", "user_external"):
        assert np.array_equal(getattr(da.population, column), getattr(db.population, column))
    # (a) the same wishes, row for row.
    assert demand_rows(da.demand) == demand_rows(db.demand)
    # (d) the same mistakes, in the same order, answered alike.
    ma, mb = mistakes(da.population, da.events), mistakes(db.population, db.events)
    assert _event_rows(da.events, ma) == _event_rows(db.events, mb)
    assert _outcome_rows(ra, ma) == _outcome_rows(rb, mb)


@given(case=differing())
@CASES
def test_calls_between_users_whom_crosspod_treats_alike_are_identical(
    case: tuple[Scenario, Scenario, int],
) -> None:
    a, b, seed = case
    assert_alike_where_reach_is(*runs(a, b, seed), start=a.time.start_ms)


def assert_alike_where_reach_is(da: Drawn, ra: Replay, db: Drawn, rb: Replay, *, start: int) -> None:
    """(b): calls between users whose reachability is the same at every moment in both runs
    are the same calls, in the same order, answered alike; so are their wishes' fates and
    their records at the end."""
    same = same_reach(Reach.of(da.population, da.policy), Reach.of(db.population, db.policy), start)
    alike_a = users_alike(da.population, same, da.events.actor, da.events.target)
    alike_b = users_alike(db.population, same, db.events.actor, db.events.target)
    event("crossPod differs for some pod pair" if not same.all() else "crossPod the same throughout")
    apart = ~alike_a & ~mistakes(da.population, da.events)
    event("some calls are between users crossPod treats differently" if apart.any() else "every call alike")
    assert _event_rows(da.events, alike_a) == _event_rows(db.events, alike_b)
    assert _outcome_rows(ra, alike_a) == _outcome_rows(rb, alike_b)
    wish = users_alike(da.population, same, da.demand.user, da.demand.target)
    for column in ("fate", "sent_ts"):
        assert np.array_equal(getattr(da.demand, column)[wish], getattr(db.demand, column)[wish])
    rec_a = users_alike(da.population, same, ra.connections.user_a, ra.connections.user_b)
    rec_b = users_alike(db.population, same, rb.connections.user_a, rb.connections.user_b)
    for f in dataclasses.fields(ra.connections):
        column = f.name
        assert np.array_equal(getattr(ra.connections, column)[rec_a], getattr(rb.connections, column)[rec_b])


@st.composite
def read_populations(draw: st.DrawFn) -> tuple[Scenario, Population, Population, int]:
    """A scenario whose population is read from a folder, and two such populations that
    differ only in their crosspod table (any pairs, either way round, some twice)."""
    sc = draw(worlds())
    people = draw_population(sc)
    plain = sc.to_dict()
    plain["population"] = {"from": "a-folder"}
    changes = draw(any_crosspod(sc)).changes
    plain["crosspod"] = {"changes": [dataclasses.asdict(c) for c in changes]}
    pods = sc.population.pods
    tables = []
    for _ in range(2):
        pairs = draw(st.lists(st.sampled_from(list(itertools.permutations(range(1, pods + 1), 2)))))
        columns = {
            f.name: getattr(people, f.name) for f in dataclasses.fields(people) if f.name != "crosspod"
        }
        tables.append(Population.from_arrays(**columns, crosspod=pairs))
    return Scenario.from_dict(plain), tables[0], tables[1], draw(st.integers(0, 2**32 - 1))


@given(case=read_populations())
@CASES
def test_a_read_population_s_crosspod_table_changes_only_the_calls_it_should(
    case: tuple[Scenario, Population, Population, int],
) -> None:
    sc, pop_a, pop_b, seed = case
    da, db = draw(sc, seed, population=pop_a), draw(sc, seed, population=pop_b)
    assert demand_rows(da.demand) == demand_rows(db.demand)
    ra, rb = (replay(d.population, d.events, d.policy) for d in (da, db))
    ma, mb = mistakes(da.population, da.events), mistakes(db.population, db.events)
    assert _event_rows(da.events, ma) == _event_rows(db.events, mb)
    assert_alike_where_reach_is(da, ra, db, rb, start=sc.time.start_ms)


@given(case=more_open())
@CASES
def test_enabling_more_crosspod_never_sends_fewer_requests(case: tuple[Scenario, Scenario, int]) -> None:
    a, b, seed = case
    da, db = draw(a, seed), draw(b, seed)
    start = a.time.start_ms
    reach_a, reach_b = Reach.of(da.population, da.policy), Reach.of(db.population, db.policy)
    moments = np.concatenate([[start], reach_a.times, reach_b.times])
    # The construction holds: B enables at least what A enables, at every moment.
    assert bool(np.all(reach_b.crosspod_at(moments) >= reach_a.crosspod_at(moments)))
    assert demand_rows(da.demand) == demand_rows(db.demand)
    sent_a, sent_b = da.demand.was_sent, db.demand.was_sent
    # Every wish sent in A is sent in B, no later.
    assert bool(np.all(sent_b[sent_a]))
    assert bool(np.all(db.demand.sent_ts[sent_a] <= da.demand.sent_ts[sent_a]))
    assert int(sent_b.sum()) >= int(sent_a.sum())
    event("B sends more wishes" if sent_b.sum() > sent_a.sum() else "B sends as many wishes")
    # Requests of a wish (the first, re-requests after a rejection, a second click on
    # connect) are made at fixed waits after its sending: sent no later, none is lost.
    # Refused tries at a shut pair are not requests; B tries only where A did too.
    tries_a, tries_b = attempted(da), attempted(db)
    assert bool(np.all(tries_a[tries_b]))
    per_wish_a, per_wish_b = (_requests(d, t) for d, t in ((da, tries_a), (db, tries_b)))
    assert all(per_wish_b[k] >= n for k, n in per_wish_a.items())
    assert sum(per_wish_b.values()) >= sum(per_wish_a.values())
    # Accepted connections are not asserted: they are not monotone. A request sent earlier
    # may be answered while B has the pair shut for a while (A opened it only later), a
    # removal drawn after an acceptance may fall before the end only in B, and the two
    # directions of a pair interleave differently when only one of them moves.


def _requests(drawn: Drawn, tries: _Bool) -> Counter[int]:
    """Connect calls per ordered pair of users, refused tries at a wish left out."""
    ev = drawn.events
    connects = (ev.action == CONNECT) & (ev.actor != ev.target)
    count = Counter(_key(ev.actor[connects], ev.target[connects]).tolist())
    count.subtract(Counter(_key(drawn.demand.user[tries], drawn.demand.target[tries]).tolist()))
    return count


# -- 2. the knobs, measured on a mid-size run -----------------------------------------------

# Every tolerance below is four standard errors of the estimate (a fixed seed, so the test
# is deterministic; four SE leaves room for other seeds: a correct generator fails one
# check in about 16,000), plus any bias stated beside it.
SE_TOLERANCE = 4.0
CHANGE_DAY = 15.0


@pytest.fixture(scope="module")
def mid() -> tuple[Scenario, Drawn, Replay]:
    """6,000 users in 30 pods over 60 days; crossPod opens every pair still shut on day 15
    and never closes one, so that a pair shut at a wish's time opens then, 45 days before the end."""
    knobs = {
        "population.pods": 30,
        "population.users": 6_000,
        "population.seed": 11,
        "time.days": 60,
        "behaviour.requests_per_user_per_day": 0.3,
        "behaviour.mistakes_per_user_per_day": 0.2,
        "blocked.attempt": 0.3,
        "blocked.persist": 0.25,
        "blocked.retry_delay_days": 5.0,
        "blocked.retry_delay_sigma": 0.6,
    }
    sc = load_scenario(TINY).with_overrides(knobs)
    sc = dataclasses.replace(
        sc, crosspod=CrossPodSection(density=0.3, changes=(PolicyChange(day=CHANGE_DAY, enable=1.0),))
    )
    drawn = draw(sc, seed=11)
    assert bool(np.all(drawn.policy.crosspod)) and bool(np.all(drawn.policy.ts == _day(sc, CHANGE_DAY)))
    return sc, drawn, replay(drawn.population, drawn.events, drawn.policy)


def _day(sc: Scenario, day: float) -> int:
    return sc.time.start_ms + round(day * DAY_MS)


def _binomial_ok(hits: int, n: int, p: float) -> bool:
    return abs(hits / n - p) <= SE_TOLERANCE * math.sqrt(p * (1 - p) / n)


def _poisson_ok(count: int, mean: float) -> bool:
    return abs(count - mean) <= SE_TOLERANCE * math.sqrt(mean)


def test_wishes_per_user_per_day_are_the_knob() -> None:
    # Every user has someone to wish for (30 pods), so the first draws are Poisson with
    # mean rate × days × users. A wish drawn twice is drawn again once, and dropped if it
    # repeats again: with popularity_skew 0 that costs well under 0.2% (allowed below the
    # mean); a skewed popularity makes it 1–2% and is left to the upper bound.
    for skew, allowance in ((0.0, 0.002), (2.0, None)):
        sc = load_scenario(TINY).with_overrides(
            {
                "population.pods": 30,
                "population.users": 6_000,
                "population.seed": 11,
                "time.days": 60,
                "behaviour.requests_per_user_per_day": 0.3,
                "behaviour.popularity_skew": skew,
            }
        )
        wishes = len(draw(sc, seed=11).demand)
        mean = 0.3 * 60 * 6_000
        assert wishes <= mean + SE_TOLERANCE * math.sqrt(mean), (skew, wishes, mean)
        if allowance is not None:
            assert wishes >= mean * (1 - allowance) - SE_TOLERANCE * math.sqrt(mean), (skew, wishes, mean)


def test_blocked_attempt_is_the_share_of_shut_wishes_tried_anyway(
    mid: tuple[Scenario, Drawn, Replay],
) -> None:
    sc, drawn, result = mid
    shut = drawn.demand.fate != Fate.SENT
    tries = attempted(drawn)
    assert int(shut.sum()) > 10_000
    # Binomial over the wishes shut at their time, each tried with chance `attempt`.
    assert _binomial_ok(int(tries.sum()), int(shut.sum()), sc.blocked.attempt), tries[shut].mean()
    # And each try is refused for the reason the network has (never answered as a request).
    refused = _refused_tries(drawn, result)
    assert refused == int(tries.sum())


def _refused_tries(drawn: Drawn, result: Replay) -> int:
    """How many connect calls are refused as unreachable (§3 checks 5–7) at a wish's own time."""
    ev, d = drawn.events, drawn.demand
    refused = (ev.action == CONNECT) & np.isin(result.outcomes.reason, UNREACHABLE)
    refused &= _user_rows(drawn.population, ev.target) >= 0
    calls = set(
        zip(ev.ts[refused].tolist(), _key(ev.actor[refused], ev.target[refused]).tolist(), strict=True)
    )
    return sum(w in calls for w in zip(d.ts.tolist(), _key(d.user, d.target).tolist(), strict=True))


def _waiting(sc: Scenario, drawn: Drawn) -> _Bool:
    """Wishes between external users of two pods shut at their time and opened on CHANGE_DAY."""
    d, pop = drawn.demand, drawn.population
    u, v = _user_rows(pop, d.user), _user_rows(pop, d.target)
    entitled = pop.user_external[u] & pop.user_external[v] & (pop.user_pod[u] != pop.user_pod[v])
    out: _Bool = entitled & (d.fate != Fate.SENT) & (d.ts < _day(sc, CHANGE_DAY))
    return out


def test_blocked_persist_is_the_share_of_shut_wishes_sent_once_the_pair_opens(
    mid: tuple[Scenario, Drawn, Replay],
) -> None:
    sc, drawn, _ = mid
    blk = sc.blocked
    waiting = _waiting(sc, drawn)
    deferred = drawn.demand.fate == Fate.DEFERRED
    # Only wishes of entitled users shut at their time wait (after day 15 nothing is shut
    # for them): nothing else is ever deferred.
    assert not bool(np.any(deferred & ~waiting))
    # Such a wish is sent if it waits (persist) and its delay fits in the 45 days left:
    # with a median of 5 days and sigma 0.6 that is all but 1.3e-4 of them, counted exactly.
    left = sc.time.end_ms - _day(sc, CHANGE_DAY)
    fits = NormalDist().cdf(math.log(left / (blk.retry_delay_days * DAY_MS)) / blk.retry_delay_sigma)
    n = int(waiting.sum())
    assert n > 1_000
    assert _binomial_ok(int(deferred[waiting].sum()), n, blk.persist * fits), deferred[waiting].mean()
    # Trying first (an independent draw) does not change the chance of waiting.
    tries = attempted(drawn)
    for tried in (True, False):
        group = waiting & (tries == tried)
        assert _binomial_ok(int(deferred[group].sum()), int(group.sum()), blk.persist * fits), tried


def test_retry_delay_is_the_median_wait_after_the_pair_opens(mid: tuple[Scenario, Drawn, Replay]) -> None:
    sc, drawn, _ = mid
    blk = sc.blocked
    deferred = _waiting(sc, drawn) & (drawn.demand.fate == Fate.DEFERRED)
    wait_days = (drawn.demand.sent_ts[deferred] - _day(sc, CHANGE_DAY)) / DAY_MS
    n = len(wait_days)
    assert n > 300
    # The sample median of a log-normal with median m has standard error about
    # m·sigma·sqrt(pi/2)/sqrt(n); waits too long for the 45 days left (1.3e-4 of them)
    # shift the median by far less than that.
    se = blk.retry_delay_days * blk.retry_delay_sigma * math.sqrt(math.pi / 2 / n)
    assert abs(float(np.median(wait_days)) - blk.retry_delay_days) <= SE_TOLERANCE * se, np.median(wait_days)
    # The spread is sigma's: the quartiles of log(wait) lie 0.674·sigma either side of the
    # median; half the interquartile range of n normal draws has a standard error of
    # 0.25 / phi(0.674) · sigma / sqrt(n) = 0.79·sigma/sqrt(n).
    q1, q3 = np.quantile(np.log(wait_days), [0.25, 0.75])
    half = NormalDist().inv_cdf(0.75) * blk.retry_delay_sigma
    se_half = 0.25 / NormalDist().pdf(NormalDist().inv_cdf(0.75)) * blk.retry_delay_sigma / math.sqrt(n)
    assert abs((q3 - q1) / 2 - half) <= SE_TOLERANCE * se_half, (q3 - q1) / 2


def test_mistakes_per_user_per_day_are_the_knob(mid: tuple[Scenario, Drawn, Replay]) -> None:
    sc, drawn, result = mid
    ev, pop = drawn.events, drawn.population
    mix = sc.behaviour.mistakes.shares()
    # Every user makes mistakes (activity-weighted, normalised over all users): the total is
    # Poisson with mean rate × days × users, and a kind is a Poisson share of it.
    total = sc.behaviour.mistakes_per_user_per_day * sc.time.days * pop.n_users
    own = ev.actor == ev.target
    unknown = _user_rows(pop, ev.target) < 0
    for kind, calls in (("connect_self", own), ("unknown_user", unknown)):
        mean = total * mix[kind] / sum(mix.values())
        assert _poisson_ok(int(calls.sum()), mean), (kind, int(calls.sum()), mean)
        # Both are connect calls, answered 400 self and 404 unknown_user.
        assert bool(np.all(ev.action[calls] == CONNECT))
    assert set(np.unique(result.outcomes.reason[own]).tolist()) == {REASONS.index(Reason.SELF)}
    assert set(np.unique(result.outcomes.reason[unknown]).tolist()) == {REASONS.index(Reason.UNKNOWN_USER)}


def test_a_waiting_wish_needs_its_delay_without_a_break() -> None:
    # Every pair opens on day 1, shuts on day 2 and opens again on day 4; every wish shut at
    # its time waits, exactly 1.5 days (sigma 0): the first opening is too short for it.
    sc = load_scenario(TINY).with_overrides(
        {
            "population.users": 600,
            "population.pods": 8,
            "time.days": 8,
            "blocked.persist": 1.0,
            "blocked.retry_delay_days": 1.5,
            "blocked.retry_delay_sigma": 0.0,
        }
    )
    flicker = (
        PolicyChange(day=1, enable=1.0),
        PolicyChange(day=2, disable=1.0),
        PolicyChange(day=4, enable=1.0),
    )
    sc = dataclasses.replace(sc, crosspod=CrossPodSection(pairs=(), changes=flicker))
    drawn = draw(sc, seed=5)
    d, pop = drawn.demand, drawn.population
    u, v = _user_rows(pop, d.user), _user_rows(pop, d.target)
    entitled = pop.user_external[u] & pop.user_external[v] & (pop.user_pod[u] != pop.user_pod[v])
    shut = entitled & ((d.ts < _day(sc, 1)) | ((d.ts >= _day(sc, 2)) & (d.ts < _day(sc, 4))))
    assert int(shut.sum()) > 100
    assert bool(np.all(d.fate[shut] == Fate.DEFERRED))
    # 1 ms for rounding the wait.
    assert bool(np.all(np.abs(d.sent_ts[shut] - _day(sc, 5.5)) <= 1)), np.unique(d.sent_ts[shut])
    # Wishes of days 1–2 went through at once; nothing else waits.
    assert bool(np.all(d.fate[entitled & ~shut & (d.ts < _day(sc, 4))] == Fate.SENT))
    assert not bool(np.any((d.fate == Fate.DEFERRED) & ~shut))


def test_a_switch_off_and_on_at_the_same_moment_is_no_break() -> None:
    # Policy events at a time apply before the calls at that time (§5): a pair switched off
    # and on again on day 2 is open throughout, for a waiting wish as for everyone.
    sc = load_scenario(TINY).with_overrides(
        {"blocked.persist": 1.0, "blocked.retry_delay_days": 1.5, "blocked.retry_delay_sigma": 0.0}
    )
    once = (PolicyChange(day=1, enable=1.0),)
    flicker = (*once, PolicyChange(day=2, disable=1.0), PolicyChange(day=2, enable=1.0))
    a, b = (dataclasses.replace(sc, crosspod=CrossPodSection(pairs=(), changes=c)) for c in (once, flicker))
    da, db = draw(a, seed=1), draw(b, seed=1)
    start = sc.time.start_ms
    assert bool(
        np.all(same_reach(Reach.of(da.population, da.policy), Reach.of(db.population, db.policy), start))
    )
    assert len(db.policy) > len(da.policy)
    assert int(np.sum(da.demand.fate == Fate.DEFERRED)) > 10
    assert np.array_equal(da.demand.fate, db.demand.fate)
    assert np.array_equal(da.demand.sent_ts, db.demand.sent_ts)


@pytest.mark.parametrize("mistakes_per_day", [0.0, 0.2])
def test_without_tries_crosspod_refuses_no_request(mistakes_per_day: float) -> None:
    # crossPod only ever opens here (a roll-out like tiny's), so a request sent stays
    # reachable: with no tries at shut pairs nothing sent is refused for crossPod or entitlement.
    sc = load_scenario(TINY).with_overrides(
        {
            "population.users": 2_000,
            "population.pods": 20,
            "time.days": 30,
            "blocked.attempt": 0.0,
            "behaviour.mistakes_per_user_per_day": mistakes_per_day,
        }
    )
    sc = dataclasses.replace(
        sc, crosspod=CrossPodSection(density=0.4, changes=(PolicyChange(day=7, enable=0.25),))
    )
    drawn = draw(sc, seed=3)
    assert len(drawn.policy) and bool(np.all(drawn.policy.crosspod))
    result = replay(drawn.population, drawn.events, drawn.policy)
    refused = np.isin(result.outcomes.reason, CROSSPOD_REFUSALS)
    assert not bool(np.any(drawn.demand.fate == Fate.BLOCKED))
    assert int(np.sum(drawn.demand.fate == Fate.DROPPED)) > 1_000
    assert not bool(np.any(refused & (drawn.events.action == CONNECT)))
    if mistakes_per_day == 0:
        assert not bool(np.any(refused))
    else:
        # The mistakes stay whatever crossPod says: accepting a request that was never sent,
        # from someone one wishes for, meets the crossPod and entitlement checks (§3 5 and 7)
        # before the table when that person is out of reach.
        assert bool(np.all(drawn.events.action[refused] == ACCEPT))


# -- 3. the guarantees every run keeps --------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Scenario, int]:
    sc = draw(worlds())
    return dataclasses.replace(sc, crosspod=draw(any_crosspod(sc))), draw(st.integers(0, 2**32 - 1))


def _columns(drawn: Drawn) -> dict[str, NDArray[np.generic]]:
    out: dict[str, NDArray[np.generic]] = {}
    for name in ("population", "events", "policy", "demand"):
        part = getattr(drawn, name)
        for f in dataclasses.fields(part):
            value = getattr(part, f.name)
            if isinstance(value, np.ndarray):
                out[f"{name}.{f.name}"] = value
    return out


@given(case=scenarios())
@CASES
def test_same_scenario_and_seed_draw_the_same_arrays(case: tuple[Scenario, int]) -> None:
    sc, seed = case
    first, again = _columns(draw(sc, seed)), _columns(draw(sc, seed))
    assert list(first) == list(again)
    assert "demand.sent_ts" in first and "events.action" in first
    for name, column in first.items():
        assert column.dtype == again[name].dtype and np.array_equal(column, again[name]), name


@given(case=scenarios())
@settings(CASES, max_examples=10)
def test_engines_agree_on_generated_runs(case: tuple[Scenario, int]) -> None:
    sc, seed = case
    drawn = draw(sc, seed)
    columnar, per_event = (
        replay(drawn.population, drawn.events, drawn.policy, engine=e) for e in ("columnar", "event")
    )
    for column in ("code", "reason", "status", "request_counter"):
        assert np.array_equal(getattr(columnar.outcomes, column), getattr(per_event.outcomes, column)), column
    for f in dataclasses.fields(columnar.connections):
        name = f.name
        assert np.array_equal(getattr(columnar.connections, name), getattr(per_event.connections, name)), name


@given(case=scenarios())
@CASES
def test_the_demand_table_tells_what_became_of_each_wish(case: tuple[Scenario, int]) -> None:
    sc, seed = case
    drawn = draw(sc, seed)
    d, ev, pop = drawn.demand, drawn.events, drawn.population
    result = replay(pop, ev, drawn.policy)
    reach = Reach.of(pop, drawn.policy)
    fate = d.fate
    assert set(np.unique(fate).tolist()) <= set(range(len(FATES)))
    # Rows by user, then target; two different users of the run; each ordered pair once;
    # never two users of one private pod (connected implicitly).
    assert np.array_equal(np.lexsort((d.target, d.user)), np.arange(len(d)))
    assert bool(np.all((sc.time.start_ms <= d.ts) & (d.ts < sc.time.end_ms)))
    u, v = _user_rows(pop, d.user), _user_rows(pop, d.target)
    assert bool(np.all((u >= 0) & (v >= 0) & (d.user != d.target)))
    assert len(np.unique(_key(d.user, d.target))) == len(d)
    assert not bool(
        np.any((pop.user_pod[u] == pop.user_pod[v]) & pop.pod_private[_pod_rows(pop, pop.user_pod[u])])
    )
    # Sent at its time exactly when the network let it through then; deferred: sent later,
    # before the end, once reachable; blocked and dropped: never sent.
    now = reach.reachable(d.user, d.target, d.ts)
    assert np.array_equal(fate == Fate.SENT, now)
    sent, deferred = fate == Fate.SENT, fate == Fate.DEFERRED
    assert np.array_equal(d.was_sent, sent | deferred)
    assert bool(np.all(d.sent_ts[sent] == d.ts[sent]))
    assert bool(np.all((d.sent_ts[deferred] > d.ts[deferred]) & (d.sent_ts[deferred] < sc.time.end_ms)))
    assert bool(np.all(reach.reachable(d.user[deferred], d.target[deferred], d.sent_ts[deferred])))
    assert bool(np.all(d.sent_ts[~d.was_sent] == 0))
    # Every request sent is a connect at its sending the network does not refuse for reach;
    # every blocked wish is a connect at its time refused for it; a dropped wish, no call.
    connect = ev.action == CONNECT
    calls = dict(
        zip(
            zip(ev.ts[connect].tolist(), _key(ev.actor[connect], ev.target[connect]).tolist(), strict=True),
            result.outcomes.reason[connect].tolist(),
            strict=True,
        )
    )
    pairs = _key(d.user, d.target).tolist()
    for i in range(len(d)):
        at_ts = calls.get((int(d.ts[i]), pairs[i]))
        if fate[i] == Fate.BLOCKED:
            assert at_ts in UNREACHABLE, i
        elif fate[i] == Fate.DROPPED:
            assert (int(d.ts[i]), pairs[i]) not in calls, i
        else:
            assert (int(d.sent_ts[i]), pairs[i]) in calls, i
            assert calls[int(d.sent_ts[i]), pairs[i]] not in UNREACHABLE, i
            if fate[i] == Fate.DEFERRED and at_ts is not None:
                assert at_ts in UNREACHABLE, i
    # Any other connect refused for reach is a wish's request or a second click on it,
    # made after its sending and met by a crossPod change; or one to a non-user.
    unsent = fate != Fate.SENT
    tries = set(zip(d.ts[unsent].tolist(), _key(d.user[unsent], d.target[unsent]).tolist(), strict=True))
    never = np.iinfo(np.int64).max
    sending = dict(zip(pairs, np.where(d.was_sent, d.sent_ts, never).tolist(), strict=True))
    users = set(pop.user_id.tolist())
    for (ts, pair), reason in calls.items():
        if reason in UNREACHABLE and (ts, pair) not in tries and pair & 0xFFFFFFFF in users:
            assert sending.get(pair, never) < ts, (ts, pair)
