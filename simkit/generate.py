"""`generate`: synthetic pods, users, crossPod policy and traffic from a scenario and a seed.

:func:`generate` turns a :class:`~simkit.scenario.Scenario` into the input tables of a run
(a :class:`~simkit.population.Population`, action :class:`~simkit.events.Events` and
crossPod :class:`~simkit.events.Policy` events); :func:`simkit.pipeline.simulate` also
replays them and writes the complete run folder, the Python face of ``simkit run``.
:func:`draw_population` draws the population alone.

:func:`estimate` tells, from the knobs alone, about how many events and how much memory a
run needs, so that one too large for the machine is refused before anything is drawn.

Everything is drawn with numpy, a column at a time, so that a year of a million users
(about 10⁸ events) is generated in seconds. Randomness is split with
:class:`numpy.random.SeedSequence` into one stream per concern (population, crossPod,
requests, answers, removals, mistakes), so changing how mistakes are drawn leaves the
requests as they were. The population and the crossPod plan come from the scenario's
population seed, the traffic from the run's seed: another seed is other traffic among the
same people. Generated ids and order make a replay cheap: user ids are dense and numbered
pod by pod, and events come out sorted by ``ts``.

A population given to the generator (read from a folder by :mod:`simkit.pipeline`; this
module reads no file) may have any ids in any order: the generator works on rows and turns
them into ids at the end.

The generator knows people, not rules: it emits what people would try (including mistakes)
and leaves every answer to the engines. It must not decide outcomes, nor read the clock or
any global random state.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from simkit.blocks import compress, each_span, run_all, sort_grouped_in_place, sort_in_place
from simkit.events import Demand, Events, Fate, Policy
from simkit.population import Population
from simkit.rules import ACTIONS, Action
from simkit.scenario import MAX_PODS, MAX_USERS, CrossPodSection, PodRef, Scenario
from simkit.seeds import Seed, seed_sequence

__all__ = ["FIRST_USER_ID", "Drawn", "Estimate", "draw", "draw_population", "estimate", "generate"]

FIRST_USER_ID = 1_000_000
"""Generated user ids are ``FIRST_USER_ID + row``, pod by pod, so they never look like pod ids."""

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_YEAR_MS = 365 * _DAY_MS
# Office hours, UTC: a request "in office hours" falls in [08:00, 18:00).
_OFFICE_START_MS = 8 * _HOUR_MS
_OFFICE_LENGTH_MS = 10 * _HOUR_MS
# The largest pods (this share of them, at least one) are named as banks.
_BANK_SHARE = 0.05
# Ids asked for by `unknown_user` mistakes lie this far past the last user.
_UNKNOWN_ID_SPAN = 1_000
_STREAMS = ("population", "crosspod", "wishes", "answers", "removals", "mistakes", "fates")
# The streams drawn from the population seed; the others come from the run's seed. Each
# stream keeps its place, so with both seeds equal nothing changes.
_POPULATION_STREAMS = ("population", "crosspod")
# Rows per block where work on 10^8 events goes a block at a time.
_CHUNK = 1 << 21
# The longest wait drawn, in ms (about 31,700 years, longer than any run of at most
# MAX_DAYS): a longer log-normal draw is cut to it before exp, where it could overflow,
# and lands after the end like the wait it stands for. Draws below it are untouched.
_LONGEST_WAIT_MS = 1e15
_LOG_LONGEST_WAIT = float(np.log(_LONGEST_WAIT_MS))
# The mean time to removal is at most this many ms, so that a vanishing rate stays finite.
_NEVER_MS = 1e300

# What a run needs, per item, measured as the peak RSS of `simkit run` (generate, write,
# replay with the columnar engine, write) on scenarios from 2,000 to 9·10^7 events, 300 to
# 5·10^6 users, 12 to 10,000 pods (5·10^7 pairs), and 21 crossPod stages; the estimate is
# above every measured peak. Small runs cost more per event (allocator and Parquet
# buffers), the base covers that. With latent demand (events counted as if crossPod let
# every wish through): whole-network.toml, 69·10^6 events from 55·10^6 wishes, 5.7 GB
# (estimated 10.3 GB); the same opened to everyone, 99·10^6 events, 8.2 GB (10.1 GB).
_BASE_BYTES = 400_000_000
_BYTES_PER_EVENT = 90
_BYTES_PER_USER = 90
_BYTES_PER_PAIR = 50
_BYTES_PER_PAIR_STAGE = 4
_BYTES_PER_POLICY_EVENT = 300

_CONNECT = np.int8(ACTIONS.index(Action.CONNECT))
_ACCEPT = np.int8(ACTIONS.index(Action.ACCEPT))
_REJECT = np.int8(ACTIONS.index(Action.REJECT))
_REMOVE = np.int8(ACTIONS.index(Action.REMOVE))

_I32 = NDArray[np.int32]
_I64 = NDArray[np.int64]
_F64 = NDArray[np.float64]
_Bool = NDArray[np.bool_]

_T = TypeVar("_T")


# -- the population -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _World:
    """The population as row numbers: pods 0..P-1, users 0..N-1 contiguous pod by pod.

    `pod_id` and `user_id` give each row's id. `order` lists each pod's users from most to
    least popular (a random ranking); `ext_order` does the same for external users only,
    which are the only ones people of other pods can find.
    """

    pod_id: _I64
    pod_name: tuple[str, ...]
    pod_size: _I64
    pod_start: _I64
    pod_private: _Bool
    user_id: _I64
    user_pod: _I32
    external: _Bool
    activity: _F64
    order: _I32
    ext_start: _I64
    ext_count: _I64
    ext_order: _I32

    @property
    def n_pods(self) -> int:
        return len(self.pod_size)

    @property
    def n_users(self) -> int:
        return len(self.user_pod)

    def pod_rows(self, pod_ids: NDArray[Any]) -> _I64:
        """The rows of pods given by id (every id must be one of `pod_id`)."""
        return _rows(self.pod_id, pod_ids)

    def ids_of_rows(self) -> int | _I64:
        """How user rows become ids: an int `first` where ids are ``first + row``, else a
        table of one id per row, then ids no user has for the rows past the last.

        Ids asked for by `unknown_user` mistakes are the rows ``n_users + k``, k below
        :data:`_UNKNOWN_ID_SPAN`: they become ids past the largest user id.
        """
        n = self.n_users
        if not n:
            return FIRST_USER_ID
        first = int(self.user_id[0])
        if bool(np.all(np.diff(self.user_id) == 1)):
            return first
        nobody = int(self.user_id.max()) + 1 + np.arange(_UNKNOWN_ID_SPAN, dtype=np.int64)
        return np.concatenate([self.user_id, nobody])


def _rows(ids: _I64, wanted: NDArray[Any]) -> _I64:
    """Positions in `ids` (unique) of each of `wanted` (all present)."""
    by_id = np.argsort(ids, kind="stable")
    rows: _I64 = by_id[np.searchsorted(ids[by_id], np.asarray(wanted, dtype=np.int64))]
    return rows


def _pod_sizes(rng: np.random.Generator, pods: int, users: int, alpha: float, min_size: int) -> _I64:
    """Heavy-tailed sizes that sum to `users`: each pod gets `min_size` plus a Pareto share."""
    weight = rng.pareto(alpha, pods) + 1.0
    extra = users - pods * min_size
    ideal = extra * weight / weight.sum()
    size = np.floor(ideal).astype(np.int64)
    # Largest remainders take the users left over by rounding down, so the total is exact.
    short = extra - int(size.sum())
    if short:
        size[np.argsort(-(ideal - size), kind="stable")[:short]] += 1
    out: _I64 = size + min_size
    return out


def _ranking(rng: np.random.Generator, group: NDArray[Any]) -> _I32:
    """Positions sorted by `group`, in a random order inside each group."""
    return np.argsort(group + rng.random(len(group)), kind="stable").astype(np.int32)


def _drawn_world(sc: Scenario, rng: np.random.Generator) -> _World:
    """Pods ``1..pods`` of heavy-tailed sizes, users numbered from FIRST_USER_ID pod by pod."""
    pop = sc.population
    size = _pod_sizes(rng, pop.pods, pop.users, pop.pod_size_alpha, pop.min_pod_size)
    private = np.ones(pop.pods, dtype=np.bool_)
    n_public = round((1.0 - pop.private_share) * pop.pods)
    private[rng.choice(pop.pods, size=n_public, replace=False)] = False
    user_pod = np.repeat(np.arange(pop.pods, dtype=np.int32), size)
    # Users of a public pod exist to talk across companies: all of them are external.
    external = (rng.random(pop.users) < pop.external_share) | ~private[user_pod]
    pod_id = np.arange(1, pop.pods + 1, dtype=np.int64)
    user_id = np.arange(FIRST_USER_ID, FIRST_USER_ID + pop.users, dtype=np.int64)
    return _people(sc, rng, pod_id, _pod_names(pod_id, size, private), private, user_id, user_pod, external)


def _pod_names(pod_id: _I64, size: _I64, private: _Bool) -> tuple[str, ...]:
    """``bank-NNN`` for the largest private pods, ``firm-NNN`` for the others, ``public-NNN``."""
    n_banks = max(1, round(_BANK_SHARE * len(pod_id)))
    big = np.zeros(len(pod_id), dtype=np.bool_)
    big[np.argsort(-size, kind="stable")[:n_banks]] = True
    width = len(str(len(pod_id)))
    return tuple(
        f"{'public' if not priv else 'bank' if b else 'firm'}-{i:0{width}d}"
        for i, priv, b in zip(pod_id.tolist(), private.tolist(), big.tolist())
    )


def _given_world(sc: Scenario, population: Population, rng: np.random.Generator) -> _World:
    """The rows of a population read from a folder: pods in table order, users grouped by pod."""
    if population.n_pods > MAX_PODS:
        raise sc.error(
            "population.from",
            f"at most {MAX_PODS:,} pods (crossPod is modelled over every pair of pods), "
            f"found {population.n_pods:,}",
        )
    if population.n_users > MAX_USERS:
        raise sc.error("population.from", f"at most {MAX_USERS:,} users, found {population.n_users:,}")
    pod_of_user = _rows(population.pod_id, population.user_pod).astype(np.int32)
    # Users of a pod in the order the table lists them.
    by_pod = np.argsort(pod_of_user, kind="stable")
    return _people(
        sc,
        rng,
        population.pod_id,
        population.pod_name,
        population.pod_private,
        population.user_id[by_pod],
        pod_of_user[by_pod],
        population.user_external[by_pod],
    )


def _people(
    sc: Scenario,
    rng: np.random.Generator,
    pod_id: _I64,
    pod_name: tuple[str, ...],
    private: _Bool,
    user_id: _I64,
    user_pod: _I32,
    external: _Bool,
) -> _World:
    """The world of users grouped by pod (`user_pod` ascending), with who is active and popular."""
    pods, users = len(pod_id), len(user_id)
    size = np.bincount(user_pod, minlength=pods).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
    activity = rng.lognormal(0.0, sc.behaviour.activity_skew, users)
    order = _ranking(rng, user_pod)
    ext_rows = np.flatnonzero(external).astype(np.int32)
    ext_pods = user_pod[ext_rows]
    ext_order = ext_rows[_ranking(rng, ext_pods)]
    ext_count = np.bincount(ext_pods, minlength=pods).astype(np.int64)
    ext_start = np.concatenate([[0], np.cumsum(ext_count)[:-1]]).astype(np.int64)
    return _World(
        np.ascontiguousarray(pod_id, dtype=np.int64),
        pod_name,
        size,
        start,
        np.ascontiguousarray(private, dtype=np.bool_),
        np.ascontiguousarray(user_id, dtype=np.int64),
        user_pod,
        np.ascontiguousarray(external, dtype=np.bool_),
        activity,
        order,
        ext_start,
        ext_count,
        ext_order,
    )


def _population(world: _World, crosspod: _I64) -> Population:
    """The generated population: users numbered from FIRST_USER_ID in row order."""
    return Population(
        pod_id=world.pod_id.copy(),
        pod_name=world.pod_name,
        pod_private=world.pod_private.copy(),
        user_id=world.user_id.copy(),
        user_pod=world.pod_id[world.user_pod],
        user_external=world.external.copy(),
        crosspod=crosspod,
    )


# -- crossPod over time -------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Timeline:
    """crossPod through the run: stage k lasts from ``bounds[k]`` to ``bounds[k + 1]``.

    `enabled[k]` marks the pod pairs (indexed as in :func:`_pair_index`) enabled in stage
    k; `affinity` is each pair's mutual liking, which steers whom people ask.
    """

    pair_a: _I32
    pair_b: _I32
    bounds: _I64
    enabled: _Bool
    affinity: _F64
    policy: Policy

    def stage(self, ts: _I64) -> _I64:
        """The stage each time falls in."""
        return np.searchsorted(self.bounds[1:-1], ts, side="right").astype(np.int64)


def _pair_index(pods: int, a: NDArray[Any], b: NDArray[Any]) -> _I64:
    """Position of the unordered pair {a, b} (pod rows, a ≠ b) among ``triu_indices(pods, 1)``."""
    lo = np.minimum(a, b).astype(np.int64)
    hi = np.maximum(a, b).astype(np.int64)
    index: _I64 = lo * (2 * pods - lo - 1) // 2 + (hi - lo - 1)
    return index


def _weighted_pick(rng: np.random.Generator, candidates: _I64, weight: _F64, k: int) -> _I64:
    """`k` of `candidates` drawn without replacement with chances ∝ `weight` (Efraimidis–Spirakis)."""
    k = min(k, len(candidates))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k == len(candidates):
        return candidates
    with np.errstate(divide="ignore"):
        key = np.log(rng.random(len(candidates))) / np.maximum(weight, 1e-300)
    return np.sort(candidates[np.argpartition(-key, k - 1)[:k]])


def _pair_rows(world: _World, pairs: Sequence[tuple[PodRef, PodRef]] | _I64) -> _I64:
    """Pairs of pod ids as an ``(n, 2)`` array of pod rows."""
    return world.pod_rows(np.array(pairs, dtype=np.int64).reshape(-1, 2))


def _timeline(sc: Scenario, world: _World, rng: np.random.Generator, start_pairs: _I64 | None) -> _Timeline:
    """crossPod through the run, from `start_pairs` (pod ids) or else the scenario's knobs.

    The pairs of `sc` must be pod ids (see :meth:`~simkit.scenario.Scenario.with_pod_ids`).
    """
    cp: CrossPodSection = sc.crosspod
    pods = world.n_pods
    pair_a, pair_b = (x.astype(np.int32) for x in np.triu_indices(pods, 1))
    # Big companies are connected to more others: a pair's chance grows with both sizes.
    size = world.pod_size.astype(np.float64)
    pull = (size[pair_a] * size[pair_b]) ** cp.size_bias
    # Drawn first, so that how the pairs are picked below never changes whom people like.
    affinity = rng.lognormal(0.0, sc.behaviour.pod_affinity, len(pair_a))
    state = np.zeros(len(pair_a), dtype=np.bool_)
    given_pairs = start_pairs if start_pairs is not None else cp.pairs
    if given_pairs is not None:
        given = _pair_rows(world, given_pairs)
        state[_pair_index(pods, given[:, 0], given[:, 1])] = True
    else:
        state[
            _weighted_pick(rng, np.arange(len(state), dtype=np.int64), pull, round(cp.density * len(state)))
        ] = True

    start, end = sc.time.start_ms, sc.time.end_ms
    bounds = [start]
    stages = [state.copy()]
    pol_ts: list[_I64] = []
    pol_a: list[_I32] = []
    pol_b: list[_I32] = []
    pol_on: list[_Bool] = []
    for change in sorted(cp.changes, key=lambda c: c.day):
        ts = start + round(change.day * _DAY_MS)
        if ts >= end:
            # A change scheduled after the end never happens (a shortened run keeps its plan).
            break
        before = state.copy()
        off = np.flatnonzero(~state)
        state[_weighted_pick(rng, off, pull[off], round(change.enable * len(off)))] = True
        on = np.flatnonzero(before)
        state[_weighted_pick(rng, on, pull[on], round(change.disable * len(on)))] = False
        if change.pods:
            # A roll-out reaches pods that still miss some partner, each to every other pod.
            missing = np.bincount(np.concatenate([pair_a[~state], pair_b[~state]]), minlength=pods) > 0
            candidates = np.flatnonzero(missing)
            chosen = np.sort(rng.choice(candidates, size=min(change.pods, len(candidates)), replace=False))
            state[np.isin(pair_a, chosen) | np.isin(pair_b, chosen)] = True
        for pairs, value in ((change.enable_pairs, True), (change.disable_pairs, False)):
            if pairs:
                given = _pair_rows(world, pairs)
                state[_pair_index(pods, given[:, 0], given[:, 1])] = value
        flipped = np.flatnonzero(state != before)
        pol_ts.append(np.full(len(flipped), ts, dtype=np.int64))
        pol_a.append(pair_a[flipped])
        pol_b.append(pair_b[flipped])
        pol_on.append(state[flipped])
        bounds.append(ts)
        stages.append(state.copy())
    bounds.append(end)
    policy = Policy(
        ts=np.concatenate(pol_ts) if pol_ts else np.zeros(0, dtype=np.int64),
        pod_a=world.pod_id[np.concatenate(pol_a)] if pol_a else np.zeros(0, dtype=np.int64),
        pod_b=world.pod_id[np.concatenate(pol_b)] if pol_b else np.zeros(0, dtype=np.int64),
        crosspod=np.concatenate(pol_on) if pol_on else np.zeros(0, dtype=np.bool_),
    )
    return _Timeline(pair_a, pair_b, np.array(bounds, dtype=np.int64), np.stack(stages), affinity, policy)


def _initial_pairs(timeline: _Timeline, world: _World) -> _I64:
    """The pairs enabled at the start as pod ids, ``(smaller, larger)`` rows sorted ascending."""
    first = np.flatnonzero(timeline.enabled[0])
    pairs = np.sort(world.pod_id[np.stack([timeline.pair_a[first], timeline.pair_b[first]], axis=1)], axis=1)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))] if len(pairs) else pairs
    return np.ascontiguousarray(pairs.reshape(-1, 2), dtype=np.int64)


# -- traffic ------------------------------------------------------------------------------


@dataclass(eq=False)
class _Calls:
    """A batch of action events with users as rows (ids come at the end)."""

    ts: _I64
    actor: _I32
    target: _I32
    action: NDArray[np.int8]

    @classmethod
    def of(cls, ts: _I64, actor: _I32, target: _I32, action: np.int8) -> _Calls:
        return cls(ts, actor, target, np.full(len(ts), action, dtype=np.int8))

    def __len__(self) -> int:
        return len(self.ts)


def _drawn_by_block(
    n: int,
    dtype: type[np.generic],
    draw: Callable[[int, int], _T],
    finish: Callable[[int, int, _T], NDArray[Any]],
    threads: int = 1,
) -> NDArray[Any]:
    """An array of `n` values made `_CHUNK` rows at a time (a block's temporaries are reused by
    the allocator for the next, where whole-column ones each cost fresh memory from the
    system): ``draw(lo, hi)`` takes the block's random numbers from its stream, here and block after
    block; ``finish(lo, hi, drawn)`` makes the values of them, on both threads with `threads`
    2 (see :func:`_each_drawn`): the stream is read in the same order, so the values are the
    same."""
    out = np.empty(n, dtype=dtype)

    def fill(lo: int, hi: int, drawn: _T) -> None:
        out[lo:hi] = finish(lo, hi, drawn)

    _each_drawn(n, draw, fill, threads)
    return out


def _each_drawn(
    n: int, draw: Callable[[int, int], _T], finish: Callable[[int, int, _T], None], threads: int = 1
) -> None:
    """For each block of `_CHUNK` rows of ``range(n)`` in turn, ``draw(lo, hi)`` here (a
    random stream is read in block order), then ``finish(lo, hi, drawn)``. With `threads` 2
    the blocks are finished on both threads: every other block on a second thread, beside
    the next block's draw and finish here (each block's finish writes its own rows, so the
    values do not depend on which thread finishes it)."""
    with contextlib.ExitStack() as stack:
        pool = (
            stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="simkit-draw"))
            if threads > 1
            else None
        )
        pending: Future[None] | None = None
        for k, lo in enumerate(range(0, n, _CHUNK)):
            hi = min(lo + _CHUNK, n)
            drawn = draw(lo, hi)
            if pool is None or k % 2:
                finish(lo, hi, drawn)
                continue
            if pending is not None:
                pending.result()
            pending = pool.submit(finish, lo, hi, drawn)
        if pending is not None:
            pending.result()


def _times(rng: np.random.Generator, n: int, lo: int, hi: int, office_share: float, threads: int = 1) -> _I64:
    """`n` moments in [lo, hi): a share `office_share` moved into office hours of their day."""

    def draw(a: int, b: int) -> tuple[_I64, _F64 | None]:
        return rng.integers(lo, hi, b - a, dtype=np.int64), rng.random(b - a) if office_share > 0 else None

    def finish(a: int, b: int, drawn: tuple[_I64, _F64 | None]) -> _I64:
        ts, u = drawn
        if u is not None:
            office = u < office_share
            clock = ts % _DAY_MS
            ts -= clock
            # Squeeze the whole day into office hours: uniform stays uniform.
            ts += np.where(office, _OFFICE_START_MS + clock * _OFFICE_LENGTH_MS // _DAY_MS, clock)
            np.clip(ts, lo, hi - 1, out=ts)
        return ts

    return _drawn_by_block(n, np.int64, draw, finish, threads)


def _rank(rng: np.random.Generator, n: _I64, skew: float) -> _I64:
    """A popularity rank in [0, n): rank r is drawn with density ∝ r^(-skew / (1 + skew)).

    With skew 0 every rank is equally likely; the top 1% of ranks receive a share
    0.01^(1 / (1 + skew)) of the draws (10% at skew 1, 32% at skew 3).
    """
    return _rank_of(rng.random(len(n)), n, skew)


def _rank_of(u: _F64, n: _I64, skew: float) -> _I64:
    """The ranks :func:`_rank` gives for its uniform draws `u` (changed in place)."""
    if skew:
        u **= 1.0 + skew
    return np.minimum((u * n).astype(np.int64), n - 1)


def _per_user(rng: np.random.Generator, world: _World, able: _Bool, per_day: float, days: float) -> _I64:
    """How many times each user does something at `per_day` on average over the `able` users,
    spread unevenly by activity (a Poisson count each)."""
    weight = np.where(able, world.activity, 0.0)
    if per_day == 0 or not weight.any():
        return np.zeros(world.n_users, dtype=np.int64)
    count: _I64 = rng.poisson(per_day * days * weight * (able.sum() / weight.sum()))
    return count


@dataclass(frozen=True, eq=False)
class _Wishes:
    """Who wants to connect with whom, and when, sorted by actor then target (rows)."""

    ts: _I64
    actor: _I32
    target: _I32

    def __len__(self) -> int:
        return len(self.ts)


def _wishes(
    sc: Scenario, world: _World, timeline: _Timeline, rng: np.random.Generator, threads: int = 2
) -> _Wishes:
    """Each user's wishes over the whole run, whatever crossPod says (its common random numbers).

    A user of a public pod wishes for colleagues too (a share ``1 - crosspod_share``); a user
    of a private pod, already connected to every colleague, only for people of other pods.
    Another pod is chosen by affinity and size, someone there by popularity, external or not:
    whether the network lets the wish through is decided later (:func:`_fates`).
    """
    beh = sc.behaviour
    rows = np.arange(world.n_users, dtype=np.int32)
    can_within = ((~world.pod_private) & (world.pod_size >= 2))[world.user_pod]
    can_cross = (world.n_users - world.pod_size[world.user_pod]) > 0
    count = _per_user(rng, world, can_cross | can_within, beh.requests_per_user_per_day, sc.time.days)
    n_cross = np.where(can_cross & can_within, rng.binomial(count, beh.crosspod_share), count)
    n_cross[~can_cross] = 0
    cross_actor = np.repeat(rows, n_cross)
    within_actor = np.repeat(rows, count - n_cross)
    targets = functools.partial(_targets, rng, timeline, world, beh.popularity_skew, threads)
    actor, target = _distinct(
        world,
        cross_actor,
        targets(cross_actor, True),
        within_actor,
        targets(within_actor, False),
        targets,
        threads,
    )
    ts = _times(rng, len(actor), sc.time.start_ms, sc.time.end_ms, sc.time.office_hours_share, threads)
    return _Wishes(ts, actor, target)


def _targets(
    rng: np.random.Generator,
    timeline: _Timeline,
    world: _World,
    skew: float,
    threads: int,
    actor: _I32,
    cross: bool,
) -> _I32:
    if cross:
        return _cross_targets(rng, actor, timeline, world, skew, threads)
    return _within_targets(rng, actor, world, skew, threads)


def _distinct(
    world: _World,
    cross_actor: _I32,
    cross_target: _I32,
    within_actor: _I32,
    within_target: _I32,
    targets: Callable[[_I32, bool], _I32],
    threads: int = 2,
) -> tuple[_I32, _I32]:
    """The wishes with each (actor, target) once: repeats are drawn again, once.

    A person wishes for a given person once; asking again is the re-request knob's
    business. Wishes are independent of their times (drawn later), so their order here is
    free: they come out sorted by actor, then target. A repeat drawn again that is still a
    repeat is dropped, so a user with few people to ask asks less often.
    """
    n = np.int64(world.n_users)
    key = np.empty(len(cross_actor) + len(within_actor), dtype=np.int64)

    def fill(who: _I32, whom: _I32, at: int, lo: int, hi: int) -> None:
        out = key[at + lo : at + hi]
        np.multiply(who[lo:hi], n, out=out, dtype=np.int64)
        out += whom[lo:hi]

    tasks: list[Callable[[], object]] = []
    at = 0
    for who, whom in ((cross_actor, cross_target), (within_actor, within_target)):
        tasks += [
            functools.partial(fill, who, whom, at, lo, min(lo + _CHUNK, len(who)))
            for lo in range(0, len(who), _CHUNK)
        ]
        at += len(who)
    run_all(tasks, threads)
    parts = (cross_actor, within_actor)
    if all(bool(np.all(who[1:] >= who[:-1])) for who in parts):
        # Each part's keys come grouped by actor (each user's wishes drawn in turn): sorted a
        # few whole actors at a time, then the two parts merged in one pass.
        at = 0
        for who in parts:
            sort_grouped_in_place(key[at : at + len(who)], who, threads)
            at += len(who)
        if len(cross_actor) and len(within_actor):
            key.sort(kind="stable")
    else:
        sort_in_place(key, threads)
    repeat = np.zeros(len(key), dtype=np.bool_)
    np.equal(key[1:], key[:-1], out=repeat[1:])
    if not repeat.any():
        return _split_keys(key, n, threads)
    again = key[repeat]
    actor = (again // n).astype(np.int32)
    cross = world.user_pod[actor] != world.user_pod[again % n]
    # Both subsets stay sorted by actor, hence by pod, as the target draws need.
    fresh = np.concatenate(
        [
            actor[cross].astype(np.int64) * n + targets(actor[cross], True),
            actor[~cross].astype(np.int64) * n + targets(actor[~cross], False),
        ]
    )
    fresh = np.unique(fresh)
    found = np.minimum(np.searchsorted(key, fresh), len(key) - 1)
    fresh = fresh[key[found] != fresh]
    # The keys but the repeats, by block on the threads, with room for the fresh ones.
    np.logical_not(repeat, out=repeat)
    key = compress(key, repeat, threads, extra=len(fresh))
    key[len(key) - len(fresh) :] = fresh
    key.sort(kind="stable")  # two sorted runs: merged in one pass
    return _split_keys(key, n, threads)


def _split_keys(key: _I64, n: np.int64, threads: int = 2) -> tuple[_I32, _I32]:
    """(actor, target) rows from keys ``actor * n + target``, a span at a time on `threads`."""
    actor = np.empty(len(key), dtype=np.int32)
    target = np.empty(len(key), dtype=np.int32)

    def split(lo: int, hi: int) -> None:
        whole = key[lo:hi] // n
        actor[lo:hi] = whole
        whole *= n
        np.subtract(key[lo:hi], whole, out=whole)
        target[lo:hi] = whole

    each_span(split, len(key), _CHUNK, threads)
    return actor, target


def _cross_targets(
    rng: np.random.Generator, actor: _I32, timeline: _Timeline, world: _World, skew: float, threads: int = 1
) -> _I32:
    """For actors sorted by pod: another pod by affinity × size, then a popular user there.

    Every other pod with users is a candidate, whatever crossPod says: people want to know
    people of the companies they deal with.
    """
    pods = world.n_pods
    pod = world.user_pod[actor]
    target_pod = np.empty(len(actor), dtype=np.int32)
    bounds = np.searchsorted(pod, np.arange(pods + 1))
    others = np.arange(pods, dtype=np.int64)
    size = world.pod_size.astype(np.float64)
    people = np.flatnonzero(size)
    # Actors arrive grouped by pod. Each pod's wishes are shared out among the other pods
    # (multinomial) and shuffled: the same law as a draw per wish, without a search.
    for p in np.flatnonzero(np.diff(bounds)).tolist():
        lo, hi = int(bounds[p]), int(bounds[p + 1])
        near = people[people != p]
        weight = size[near] * timeline.affinity[_pair_index(pods, np.full(len(near), p), others[near])]
        share = rng.multinomial(hi - lo, weight / weight.sum())
        chosen = np.repeat(near.astype(np.int32), share)
        rng.shuffle(chosen)
        target_pod[lo:hi] = chosen

    def finish(lo: int, hi: int, u: _F64) -> _I32:
        pod = target_pod[lo:hi]
        rank = _rank_of(u, world.pod_size[pod], skew)
        target: _I32 = world.order[world.pod_start[pod] + rank]
        return target

    return _drawn_by_block(len(actor), np.int32, lambda lo, hi: rng.random(hi - lo), finish, threads)


def _within_targets(
    rng: np.random.Generator, actor: _I32, world: _World, skew: float, threads: int = 1
) -> _I32:
    """A popular colleague of the actor's own (public) pod, never the actor."""

    def finish(lo: int, hi: int, u: _F64) -> _I32:
        who = actor[lo:hi]
        pod = world.user_pod[who]
        n = world.pod_size[pod]
        rank = _rank_of(u, n, skew)
        target: _I32 = world.order[world.pod_start[pod] + rank]
        me = target == who
        target[me] = world.order[world.pod_start[pod[me]] + (rank[me] + 1) % n[me]]
        return target

    return _drawn_by_block(len(actor), np.int32, lambda lo, hi: rng.random(hi - lo), finish, threads)


def _delays(rng: np.random.Generator, n: int, median_ms: float, sigma: float) -> _I64:
    """Log-normal waits in ms with the given median; at least 1 ms, so effects follow causes.

    A wait is at most :data:`_LONGEST_WAIT_MS`, later than the end of any run: what waits
    that long never happens, whatever the draw, and the integers stay far from overflow.
    """
    if median_ms <= 0:
        return np.ones(n, dtype=np.int64)
    # exp(log(median) + sigma * Z), in place: the ufunc exp is several times faster than
    # Generator.lognormal at 10^7 draws.
    wait = rng.standard_normal(n)
    wait *= sigma
    wait += np.log(median_ms)
    np.minimum(wait, _LOG_LONGEST_WAIT, out=wait)
    np.exp(wait, out=wait)
    np.rint(wait, out=wait)
    np.maximum(wait, 1.0, out=wait)
    return wait.astype(np.int64)


# Where a wish's request was never sent.
_NOT_SENT = np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class _Fates:
    """What the network makes of each wish: its :class:`~simkit.events.Fate` code, when its
    request is sent (:data:`_NOT_SENT` if never), and the refused attempts it makes."""

    fate: NDArray[np.int8]
    sent_ts: _I64
    attempt: _Calls


def _fates(
    sc: Scenario,
    world: _World,
    timeline: _Timeline,
    wishes: _Wishes,
    rng: np.random.Generator,
    threads: int = 2,
) -> _Fates:
    """Each wish against the crossPod timeline: sent, deferred, blocked or dropped.

    One uniform draw per wish between pods, reachable or not, decides whether its user
    tries anyway, whether the wish waits, and how long after the pair opens it is sent, so
    that the draws of a wish never depend on crossPod: two scenarios that differ only in
    crossPod give each wish the same draws, and a wish fares differently only where its
    pair's reachability differs. The work goes a block of wishes at a time.
    """
    blk = sc.blocked
    n = len(wishes)
    reach = _Reach.of(timeline, world)
    sent_ts = wishes.ts.copy()
    fate = np.full(n, Fate.SENT, dtype=np.int8)
    blocks = -(-n // _CHUNK)  # each block's own entry in the parts, whichever thread fills it
    tried_parts: list[_I64] = [np.zeros(0, dtype=np.int64)] * blocks
    later_parts: list[tuple[_I64, _I64, _I64, _F64]] = [None] * blocks  # type: ignore[list-item]

    def between_pods(lo: int, hi: int) -> tuple[NDArray[np.intp], _I32, _I32, _F64]:
        """The block's wishes between two pods, their pods, and a uniform draw each."""
        pod_a = world.user_pod[wishes.actor[lo:hi]]
        pod_b = world.user_pod[wishes.target[lo:hi]]
        cross = np.flatnonzero(pod_a != pod_b)
        # Which wishes are between pods does not depend on crossPod: the draw is theirs.
        return cross, pod_a[cross], pod_b[cross], rng.random(len(cross))

    def settle(lo: int, hi: int, drawn: tuple[NDArray[np.intp], _I32, _I32, _F64]) -> None:
        cross, pod_a, pod_b, u = drawn
        actor, target, ts = wishes.actor[lo:hi], wishes.target[lo:hi], wishes.ts[lo:hi]
        tries, u = _split_uniform(u, blk.attempt)
        waits, u = _split_uniform(u, blk.persist)
        entitled = world.external[actor[cross]] & world.external[target[cross]]
        stage = timeline.stage(ts[cross])
        key = reach.key(pod_a, pod_b)
        shut = ~(entitled & reach.open(stage, key))
        fate[lo + cross[shut]] = np.where(tries[shut], Fate.BLOCKED, Fate.DROPPED)
        sent_ts[lo + cross[shut]] = _NOT_SENT
        tried_parts[lo // _CHUNK] = lo + cross[shut & tries]
        wait = np.flatnonzero(shut & waits & entitled)
        later_parts[lo // _CHUNK] = (lo + cross[wait], key[wait], stage[wait], u[wait])

    # The uniform draws are made here, block after block, from the one stream; what each
    # block's draws decide is settled on the other thread, beside the next block's draw.
    _each_drawn(n, between_pods, settle, threads)
    # A wish that waits is sent once its pair has been open for its delay, without a break.
    later = np.concatenate([np.zeros(0, dtype=np.int64), *(p[0] for p in later_parts)])
    key = np.concatenate([np.zeros(0, dtype=np.int64), *(p[1] for p in later_parts)])
    stage = np.concatenate([np.zeros(0, dtype=np.int64), *(p[2] for p in later_parts)])
    u = np.concatenate([np.zeros(0, dtype=np.float64), *(p[3] for p in later_parts)])
    delay = _lognormal_ms(u, blk.retry_delay_days * _DAY_MS, blk.retry_delay_sigma)
    when = _reopening(timeline, reach, key, stage, delay)
    found = when != _NOT_SENT
    sent_ts[later[found]] = when[found]
    fate[later[found]] = Fate.DEFERRED
    tried = np.concatenate([np.zeros(0, dtype=np.int64), *tried_parts])
    attempt = _Calls.of(wishes.ts[tried], wishes.actor[tried], wishes.target[tried], _CONNECT)
    return _Fates(fate, sent_ts, attempt)


def _split_uniform(u: _F64, p: float) -> tuple[_Bool, _F64]:
    """Whether each uniform draw falls below `p`, and a fresh uniform draw from what is left.

    Given which side of `p` a uniform draw falls, where it falls there is uniform again
    and independent of the side: one draw serves several decisions.
    """
    below = u < p
    rest = np.where(below, u / max(p, 1e-300), (u - p) / max(1.0 - p, 1e-300))
    np.clip(rest, 0.0, np.nextafter(1.0, 0.0), out=rest)
    return below, rest


# Acklam's rational approximation of the standard normal quantile (relative error below
# 1.2e-9), for log-normal waits from a uniform draw already made.
_A = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
_B = (
    -5.447609879822406e01,
    1.615858368580409e02,
    -1.556989798598866e02,
    6.680131188771972e01,
    -1.328068155288572e01,
)
_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425


def _normal_quantile(u: _F64) -> _F64:
    """The standard normal quantile of each `u` in [0, 1) (0 counts as the smallest double)."""
    u = np.clip(u, 1e-300, np.nextafter(1.0, 0.0))
    z = np.empty_like(u)
    low = u < _P_LOW
    high = u > 1.0 - _P_LOW
    mid = ~(low | high)
    q = u[mid] - 0.5
    r = q * q
    num = ((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]
    den = ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0
    z[mid] = q * num / den
    for side, sign, tail in ((low, 1.0, u[low]), (high, -1.0, 1.0 - u[high])):
        t = np.sqrt(-2.0 * np.log(tail))
        num = ((((_C[0] * t + _C[1]) * t + _C[2]) * t + _C[3]) * t + _C[4]) * t + _C[5]
        den = (((_D[0] * t + _D[1]) * t + _D[2]) * t + _D[3]) * t + 1.0
        z[side] = sign * num / den
    return z


def _lognormal_ms(u: _F64, median_ms: float, sigma: float) -> _I64:
    """Log-normal waits in ms from uniform draws `u`, bounded as :func:`_delays` bounds them."""
    if median_ms <= 0:
        return np.ones(len(u), dtype=np.int64)
    wait = _normal_quantile(u)
    wait *= sigma
    wait += np.log(median_ms)
    np.minimum(wait, _LOG_LONGEST_WAIT, out=wait)
    np.exp(wait, out=wait)
    np.rint(wait, out=wait)
    np.maximum(wait, 1.0, out=wait)
    return wait.astype(np.int64)


# The largest table of crossPod by stage and ordered pod pair, in cells (bytes).
_DENSE_REACH_CELLS = 1 << 27


@dataclass(frozen=True, eq=False)
class _Reach:
    """Whether crossPod is on between two pods in a stage, looked up by a key per pod pair.

    With few pods the timeline is unfolded into a table of every ordered pair, so that a
    key is ``pod_a * pods + pod_b``; otherwise the key is the pair's index in the timeline.
    """

    table: _Bool
    pods: int
    dense: bool

    @classmethod
    def of(cls, timeline: _Timeline, world: _World) -> _Reach:
        pods, stages = world.n_pods, len(timeline.enabled)
        if pods * pods * stages > _DENSE_REACH_CELLS:
            return cls(timeline.enabled, pods, False)
        table = np.zeros((stages, pods, pods), dtype=np.bool_)
        table[:, timeline.pair_a, timeline.pair_b] = timeline.enabled
        table[:, timeline.pair_b, timeline.pair_a] = timeline.enabled
        return cls(table.reshape(stages, pods * pods), pods, True)

    def key(self, pod_a: _I32, pod_b: _I32) -> _I64:
        """The key of each pair of different pods (rows)."""
        if self.dense:
            key: _I64 = pod_a.astype(np.int64) * self.pods + pod_b
            return key
        return _pair_index(self.pods, pod_a, pod_b)

    def open(self, stage: _I64, key: _I64) -> _Bool:
        """Whether crossPod is on in each stage for each pair."""
        out: _Bool = self.table[stage, key]
        return out


def _reopening(timeline: _Timeline, reach: _Reach, key: _I64, stage: _I64, delay: _I64) -> _I64:
    """When each waiting wish is sent: `delay` after its pair opens (after `stage`), if it
    stays open that long before the end; else :data:`_NOT_SENT`.

    Monotone in crossPod: a pair open at least whenever it was gets its wish sent no later.
    """
    sent = np.full(len(key), _NOT_SENT, dtype=np.int64)
    since = np.full(len(key), _NOT_SENT, dtype=np.int64)
    bounds = timeline.bounds
    for k in range(1, len(bounds) - 1):
        if bounds[k] == bounds[k + 1]:
            continue  # a stage of no length (switched and switched back at once): no call sees it
        on = (stage < k) & (sent == _NOT_SENT)
        on &= reach.open(np.full(len(key), k), key)
        since = np.where(on, np.where(since == _NOT_SENT, bounds[k], since), _NOT_SENT)
        ready = np.where(on, since + delay, _NOT_SENT)
        hit = on & (ready < bounds[k + 1])
        sent[hit] = ready[hit]
    return sent


def _answers(
    sc: Scenario,
    wishes: _Wishes,
    sent_ts: _I64,
    answer_rng: np.random.Generator,
    remove_rng: np.random.Generator,
) -> list[_Calls]:
    """The requests sent, their answers, re-requests after a rejection (answered in turn), and removals.

    Each wish's answers are drawn whether or not its request is sent, as waits after the
    sending, so that they never depend on crossPod; only those of requests sent, falling
    before the end, become events.
    """
    parts: list[_Calls] = []
    for lo in range(0, len(wishes), _CHUNK):
        hi = min(lo + _CHUNK, len(wishes))
        parts += _answer_block(
            sc, wishes.actor[lo:hi], wishes.target[lo:hi], sent_ts[lo:hi], answer_rng, remove_rng
        )
    return parts


def _answer_block(
    sc: Scenario,
    actor: _I32,
    target: _I32,
    sent_ts: _I64,
    answer_rng: np.random.Generator,
    remove_rng: np.random.Generator,
) -> list[_Calls]:
    beh = sc.behaviour
    end = sc.time.end_ms
    span = end - sc.time.start_ms
    sent = np.flatnonzero(sent_ts != _NOT_SENT)
    parts = [_Calls.of(sent_ts[sent], actor[sent], target[sent], _CONNECT)]
    # The open requests of each round: the wish and the wait since its first sending.
    who = np.arange(len(actor), dtype=np.int64)
    since = np.zeros(len(actor), dtype=np.int64)
    while len(who):
        u = answer_rng.random(len(who))
        idx = np.flatnonzero(u < beh.accept + beh.reject)
        wait = since[idx] + _delays(
            answer_rng, len(idx), beh.answer_delay_hours * _HOUR_MS, beh.answer_delay_sigma
        )
        accepted = u[idx] < beh.accept
        w = who[idx]
        # Removals and re-requests are drawn for every answer, sent or not.
        gone = _removal_waits(sc, int(accepted.sum()), remove_rng)
        declined = ~accepted
        again = answer_rng.random(int(declined.sum())) < beh.rerequest_chance
        retry_wait = wait[declined][again] + _delays(
            answer_rng, int(again.sum()), beh.rerequest_delay_days * _DAY_MS, beh.rerequest_delay_sigma
        )
        # What happens only for requests sent, before the end.
        base = sent_ts[w]
        live = (base != _NOT_SENT) & (wait < span)
        when = np.where(live, base + np.where(live, wait, 0), end)
        keep = np.flatnonzero(when < end)
        action = np.where(accepted[keep], _ACCEPT, _REJECT).astype(np.int8)
        parts.append(_Calls(when[keep], target[w[keep]], actor[w[keep]], action))
        parts.append(_removals(when[accepted], actor[w[accepted]], target[w[accepted]], gone, end))
        # A declined requester may ask again; the new request is answered like the first.
        follow = np.flatnonzero(retry_wait < span)
        who = w[declined][again][follow]
        since = retry_wait[follow]
        ts = sent_ts[who]
        ok = ts != _NOT_SENT
        ts = np.where(ok, ts + np.where(ok, since, 0), end)
        out = np.flatnonzero(ts < end)
        parts.append(_Calls.of(ts[out], actor[who[out]], target[who[out]], _CONNECT))
    return parts


def _removal_waits(sc: Scenario, n: int, rng: np.random.Generator) -> tuple[_F64, _Bool]:
    """How long each of `n` accepted connections lasts before one side removes it, and which side."""
    rate = sc.behaviour.remove_per_year
    if rate == 0 or not n:
        return np.full(n, np.inf), np.zeros(n, dtype=np.bool_)
    wait = rng.standard_exponential(n)
    wait *= min(_YEAR_MS / rate, _NEVER_MS)
    flip = rng.random(n) < 0.5
    return wait, flip


def _removals(since: _I64, a: _I32, b: _I32, gone: tuple[_F64, _Bool], end: int) -> _Calls:
    """The removals before the end of connections accepted at `since` (the end if not at all)."""
    wait, flip = gone
    keep = np.flatnonzero(wait < end - since)
    when = since[keep] + np.maximum(np.rint(wait[keep]), 1.0).astype(np.int64)
    actor = np.where(flip[keep], b[keep], a[keep])
    target = np.where(flip[keep], a[keep], b[keep])
    # Rounding up, or the 1 ms after an answer in the run's last ms, may reach the end.
    inside = when < end
    return _Calls.of(when[inside], actor[inside], target[inside], _REMOVE)


def _mistakes(
    sc: Scenario, world: _World, wishes: _Wishes, sent_ts: _I64, rng: np.random.Generator
) -> list[_Calls]:
    """Calls people get wrong: each user makes ``mistakes_per_user_per_day`` of them on average
    (more for the more active), of the kinds in the mix, whatever crossPod allows.

    The kinds about a request (accepting one that is not there, clicking connect again,
    withdrawing it with remove) are about one of the user's own wishes, picked whatever
    became of it; the last two are made only if its request was sent, soon after.
    """
    beh = sc.behaviour
    start, end, office = sc.time.start_ms, sc.time.end_ms, sc.time.office_hours_share
    able = np.ones(world.n_users, dtype=np.bool_)
    count = _per_user(rng, world, able, beh.mistakes_per_user_per_day, sc.time.days)
    if not count.any():
        return []
    user = np.repeat(np.arange(world.n_users, dtype=np.int32), count)
    n = len(user)
    mix = beh.mistakes.shares()
    kind = rng.choice(len(mix), size=n, p=np.array(list(mix.values())) / sum(mix.values()))
    ts = _times(rng, n, start, end, office)
    # Every draw below is made for every mistake, whatever it turns out to need.
    pick = rng.random(n)
    soon = rng.random(n)
    nobody = (world.n_users + rng.integers(0, _UNKNOWN_ID_SPAN, n)).astype(np.int32)
    kinds = {name: np.flatnonzero(kind == i) for i, name in enumerate(mix)}
    parts: list[_Calls] = []

    # The user's own wishes: wishes are sorted by actor.
    first = np.searchsorted(wishes.actor, np.arange(world.n_users + 1, dtype=np.int32))
    has = np.diff(first)[user]
    wish = np.where(has > 0, first[:-1][user] + np.minimum((pick * has).astype(np.int64), has - 1), -1)

    # Accepting a request from someone they want to connect with, who never sent one.
    j = kinds["accept_missing"]
    j = j[wish[j] >= 0]
    parts.append(_Calls.of(ts[j], user[j], wishes.target[wish[j]], _ACCEPT))
    # A second click on "connect" while the first request is pending; withdrawing a request
    # with "remove", which only undoes accepted connections.
    for name, lo_ms, hi_ms, action in (
        ("connect_again", 1_000, 10 * 60_000, _CONNECT),
        ("remove_pending", 60_000, _DAY_MS, _REMOVE),
    ):
        j = kinds[name]
        j = j[wish[j] >= 0]
        sent = sent_ts[wish[j]]
        j, sent = j[sent != _NOT_SENT], sent[sent != _NOT_SENT]
        when = sent + lo_ms + (soon[j] * (hi_ms - lo_ms)).astype(np.int64)
        ok = when < end
        parts.append(_Calls.of(when[ok], user[j[ok]], wishes.target[wish[j[ok]]], action))
    # Rejecting a colleague of one's own private pod (they are connected implicitly).
    j = kinds["reject_colleague"]
    home = world.user_pod[user[j]]
    size = world.pod_size[home]
    colleagues = world.pod_private[home] & (size >= 2)
    j, home, size = j[colleagues], home[colleagues], size[colleagues]
    shift = (user[j] - world.pod_start[home] + 1 + (soon[j] * (size - 1)).astype(np.int64)) % size
    parts.append(_Calls.of(ts[j], user[j], (world.pod_start[home] + shift).astype(np.int32), _REJECT))
    # Asking for someone who does not exist, or for oneself.
    j = kinds["unknown_user"]
    parts.append(_Calls.of(ts[j], user[j], nobody[j], _CONNECT))
    j = kinds["connect_self"]
    parts.append(_Calls.of(ts[j], user[j], user[j], _CONNECT))
    return parts


# An event's actor, action and target packed in one int64, so that ordering the events
# moves one column instead of three: actor << 32 | action << 30 | target. Rows (and the
# unknown ids past them) stay below 2^30 because users are at most 10^9.
_TARGET_BITS = 30
_ACTOR_SHIFT = 32


def _sorted_events(parts: list[_Calls], start: int, world: _World, threads: int = 2) -> Events:
    """The calls as an event log sorted by ``ts`` (ties in generation order), users as ids.

    `parts` is emptied as it is read. At 10^8 events memory traffic is the cost, so the
    work is done in place or a chunk at a time wherever it can be, the chunks on `threads`
    threads (each writes its own slice: the arrays do not depend on them).
    """
    n = sum(len(p) for p in parts)
    ts = np.empty(n, dtype=np.int64)
    packed = np.empty(n, dtype=np.int64)

    def pack(part: _Calls, lo: int, hi: int, at: int) -> None:
        out = packed[at + lo : at + hi]
        np.left_shift(part.actor[lo:hi], _ACTOR_SHIFT, out=out, dtype=np.int64)
        out |= part.action[lo:hi].astype(np.int64) << _TARGET_BITS
        out |= part.target[lo:hi]
        ts[at + lo : at + hi] = part.ts[lo:hi]

    # A task per span of each part (most parts are short), run on the threads in turn: a
    # part goes once its spans are copied.
    tasks: list[Callable[[], object]] = []
    at = 0
    while parts:
        part = parts.pop(0)
        tasks += [
            functools.partial(pack, part, lo, min(lo + _CHUNK, len(part)), at)
            for lo in range(0, len(part), _CHUNK)
        ]
        at += len(part)
        del part
    run_all(tasks, threads)
    span = int(ts.max()) - start if n else 0
    shift = max(1, (n - 1).bit_length())
    if n and span.bit_length() + shift <= 63:
        # One int64 key per event, (ts - start) above the event's position: a plain sort of
        # the keys is a stable sort by ts, and much faster than argsort.
        key = ts

        def number(lo: int, hi: int) -> None:
            block = key[lo:hi]
            block -= start
            block <<= shift
            block |= np.arange(lo, hi, dtype=np.int64)

        each_span(number, n, _CHUNK, threads)
        sort_in_place(key, threads)
        moved = np.empty(n, dtype=np.int64)
        mask = (1 << shift) - 1

        def gather(lo: int, hi: int) -> None:
            block = key[lo:hi]
            np.take(packed, block & mask, out=moved[lo:hi])
            block >>= shift
            block += start

        each_span(gather, n, _CHUNK, threads)
        ts = key
    else:
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        moved = packed[order]
    return _unpack(ts, moved, spare=packed, world=world, threads=threads)


def _unpack(ts: _I64, packed: _I64, spare: _I64, world: _World, threads: int = 2) -> Events:
    """Events from sorted times and packed calls.

    `packed` becomes the actor column and `spare` (a free array as long) the target column;
    user rows become the world's ids.
    """
    n = len(ts)
    target = spare
    action = np.empty(n, dtype=np.int8)
    low = (1 << _TARGET_BITS) - 1
    table = world.ids_of_rows()

    def split(lo: int, hi: int) -> None:
        chunk = packed[lo:hi]
        np.bitwise_and(chunk, low, out=target[lo:hi])
        action[lo:hi] = (chunk >> _TARGET_BITS) & 3
        chunk >>= _ACTOR_SHIFT
        for column in (chunk, target[lo:hi]):
            if isinstance(table, int):
                column += table
            else:
                np.take(table, column, out=column)

    each_span(split, n, _CHUNK, threads)
    return Events(ts=ts, actor=packed, target=target, action=action)


@dataclass(frozen=True, eq=False)
class _Plan:
    """What the population seed fixes: the people, the crossPod timeline, the population."""

    world: _World
    timeline: _Timeline
    population: Population


def _plan(scenario: Scenario, rng: dict[str, np.random.Generator], population: Population | None) -> _Plan:
    if (population is None) != (scenario.population.from_ is None):
        given = "no population" if population is None else "a population"
        raise ValueError(
            f"generate: {given} for scenario {scenario.name!r}, with population.from = "
            f"{scenario.population.from_!r}; a population is given exactly when it is read from a folder"
        )
    if population is None:
        world = _drawn_world(scenario, rng["population"])
    else:
        world = _given_world(scenario, population, rng["population"])
    # Pods named in pair knobs are known only now (generated names follow the population seed).
    resolved = scenario.with_pod_ids(world.pod_id.tolist(), world.pod_name)
    start_pairs = None if population is None else population.crosspod
    timeline = _timeline(resolved, world, rng["crosspod"], start_pairs)
    if population is None:
        population = _population(world, _initial_pairs(timeline, world))
    return _Plan(world, timeline, population)


def _generators(scenario: Scenario, seed: Seed | None) -> dict[str, np.random.Generator]:
    """One generator per stream: the population's from the population seed, the rest from `seed`."""
    traffic = seed_sequence(scenario.seed if seed is None else seed).spawn(len(_STREAMS))
    people = seed_sequence(scenario.population_seed).spawn(len(_STREAMS))
    return {
        name: np.random.default_rng(people[i] if name in _POPULATION_STREAMS else traffic[i])
        for i, name in enumerate(_STREAMS)
    }


@dataclass(frozen=True)
class Estimate:
    """What generating and replaying a scenario needs, estimated before anything is drawn.

    `events` counts action and policy events; `bytes` is the peak memory of a whole
    ``simkit run`` (generation, writing, a columnar replay).
    """

    events: int
    bytes: int


def estimate(scenario: Scenario, population: Population | None = None) -> Estimate:
    """The events and memory a run of `scenario` needs, from its knobs and population size.

    Cheap (nothing is drawn), so that a scenario too large for the machine is refused
    at once rather than after minutes. The count is the expected number of events were
    crossPod to let every wish through (a wish the network refuses makes fewer calls than a
    request sent): requests, re-requests after rejections, answers, removals before the
    end, mistakes, and policy events; answers that would come after the end are counted
    too, so it errs high, the more so the more crossPod blocks. Memory is calibrated on
    measured runs (see the constants above), where every wish is drawn whatever becomes of
    it, and errs high as well.

    Parameters
    ----------
    scenario : Scenario
        The knobs.
    population : Population, optional
        The population of a scenario with ``population.from``, as read from its folder;
        required then, refused otherwise (a ``ValueError``), as for :func:`generate`.

    Examples
    --------
    >>> from simkit.scenario import load_scenario
    >>> tiny = load_scenario("data/scenarios/tiny.toml")
    >>> need = estimate(tiny)
    >>> 1_500 < need.events < 3_000, need.bytes < 10**9
    (True, True)
    >>> estimate(tiny.with_overrides({"time.days": 28})).events > 1.9 * need.events
    True
    """
    if (population is None) != (scenario.population.from_ is None):
        raise ValueError(
            f"estimate: a population is given exactly when scenario {scenario.name!r} reads it from a folder"
        )
    beh, days = scenario.behaviour, scenario.time.days
    if population is None:
        users, pods = scenario.population.users, scenario.population.pods
    else:
        users, pods = population.n_users, population.n_pods
    pairs = pods * (pods - 1) // 2
    # Every user has wishes (where there is anyone else to wish for); counting each as a
    # request sent errs high, as if crossPod let every one through.
    first = beh.requests_per_user_per_day * days * users if pods > 1 or users > 1 else 0.0
    # A rejection brings a re-request with chance rerequest_chance, answered in turn, until
    # the end: a chain has at most as many rounds as fit in the half of the run left on
    # average, each taking the median answer and re-request delays (at least 1 ms each).
    again = beh.reject * beh.rerequest_chance
    round_ms = max(2.0, beh.answer_delay_hours * _HOUR_MS + beh.rerequest_delay_days * _DAY_MS)
    fit = 1.0 + days * _DAY_MS / 2 / round_ms
    requests = first * (fit if again >= 1.0 else min(fit, 1.0 / (1.0 - again)))
    # An accepted connection is removed before the end with chance 1 - exp(-x·(end - t)/end)
    # for x removals per run; over answers spread evenly through the run that is on average
    # 1 - (1 - exp(-x)) / x.
    x = beh.remove_per_year * days / 365.0
    removed = 1.0 + math.expm1(-x) / x if x > 0 else 0.0
    calls = requests * (1.0 + beh.accept + beh.reject + beh.accept * removed)
    # A wish not sent makes at most one call (a refused attempt), fewer than one sent: the
    # count above is the most, reached when crossPod lets every wish through. A wish that
    # waits may make both; then mistakes.
    blk = scenario.blocked
    calls += first * blk.attempt * blk.persist + beh.mistakes_per_user_per_day * days * users
    policy, stages = _policy_estimate(scenario, pods, pairs, population)
    events = calls + policy
    need = (
        _BASE_BYTES
        + _BYTES_PER_EVENT * calls
        + _BYTES_PER_USER * users
        + pairs * (_BYTES_PER_PAIR + _BYTES_PER_PAIR_STAGE * stages)
        + _BYTES_PER_POLICY_EVENT * policy
    )
    return Estimate(events=math.ceil(events), bytes=math.ceil(need))


def _policy_estimate(
    scenario: Scenario, pods: int, pairs: int, population: Population | None
) -> tuple[float, int]:
    """The expected number of policy events, and the number of crossPod stages."""
    cp = scenario.crosspod
    if population is not None:
        on = float(len(population.crosspod))
    elif cp.pairs is not None:
        on = float(len(cp.pairs))
    else:
        on = cp.density * pairs
    events, stages = 0.0, 1
    end = scenario.time.days
    for change in sorted(cp.changes, key=lambda c: c.day):
        if change.day >= end:
            break
        stages += 1
        flips = change.enable * (pairs - on) + change.disable * on
        flips += min(change.pods * pods, pairs) + len(change.enable_pairs) + len(change.disable_pairs)
        # `enable` and `disable` draw from the state before the change, then the roll-out.
        on += change.enable * (pairs - on) - change.disable * on
        on = min(float(pairs), on + change.pods * pods)
        events += min(flips, float(pairs))
    return events, stages


def draw_population(scenario: Scenario, population: Population | None = None) -> Population:
    """The population of a scenario alone, as :func:`generate` gives it, without traffic.

    Parameters
    ----------
    scenario : Scenario
        The knobs; only the population seed (``population.seed``, else ``seed``) matters.
    population : Population, optional
        The population of a scenario with ``population.from``, as read from its folder
        (:func:`simkit.pipeline.population_of` reads it); required then, refused otherwise.
        It is returned as it is, once the pods named in the scenario's pair knobs are found.

    Raises
    ------
    ScenarioError
        A pair knob names a pod the population does not have (or a name several pods
        have), or a roll-out is larger than the population.

    Examples
    --------
    >>> from simkit.scenario import load_scenario
    >>> tiny = load_scenario("data/scenarios/tiny.toml")
    >>> pop = draw_population(tiny)
    >>> pop.n_pods, pop.n_users, pop.pod_name[:3]
    (12, 300, ('firm-01', 'public-02', 'firm-03'))
    >>> bool((pop.user_id == generate(tiny, seed=99)[0].user_id).all())
    True
    """
    return _plan(scenario, _generators(scenario, None), population).population


def generate(
    scenario: Scenario, seed: Seed | None = None, *, population: Population | None = None, threads: int = 2
) -> tuple[Population, Events, Policy]:
    """Draw a population, a crossPod policy and the action events of a scenario.

    Parameters
    ----------
    scenario : Scenario
        The knobs (see ``docs/scenarios.md``).
    seed : int or numpy.random.SeedSequence, optional
        Where the traffic's randomness flows from (see :mod:`simkit.seeds`); ``None`` takes
        ``scenario.seed``. The population and the crossPod plan (the pods, users and pairs,
        who is active and popular, which pods a roll-out picks) come from the scenario's
        population seed (:attr:`~simkit.scenario.Scenario.population_seed`) whatever `seed`
        is. The same scenario and seed always give the same arrays.
    population : Population, optional
        The population of a scenario with ``population.from``, read from its folder; required
        then, refused otherwise (a ``ValueError``). Its ids may be any; it is returned as
        it is.
    threads : int, default 2
        At most this many threads draw at once (1: all in this one); the arrays do not
        depend on it.

    Returns
    -------
    population : Population
        Generated: pods ``1..pods``; users numbered from :data:`FIRST_USER_ID`, pod by pod.
    events : Events
        Action events sorted by ``ts`` (ties in a fixed order).
    policy : Policy
        The scheduled crossPod changes, sorted by ``ts``.

    Raises
    ------
    ScenarioError
        A pair knob names a pod the population does not have (see :func:`draw_population`).

    Examples
    --------
    >>> from simkit.scenario import load_scenario
    >>> pop, events, policy = generate(load_scenario("data/scenarios/tiny.toml"))
    >>> pop.n_pods, pop.n_users, bool((events.ts[1:] >= events.ts[:-1]).all())
    (12, 300, True)
    >>> again = generate(load_scenario("data/scenarios/tiny.toml"))[1]
    >>> bool((again.actor == events.actor).all())
    True
    """
    drawn = draw(scenario, seed, population=population, threads=threads)
    return drawn.population, drawn.events, drawn.policy


@dataclass(frozen=True, eq=False)
class Drawn:
    """Everything a scenario draws: the input tables of a run and the demand behind them."""

    population: Population
    events: Events
    policy: Policy
    demand: Demand


def draw(
    scenario: Scenario,
    seed: Seed | None = None,
    *,
    population: Population | None = None,
    threads: int = 2,
    on_demand: Callable[[Demand], object] | None = None,
) -> Drawn:
    """Everything :func:`generate` draws, with the wishes behind the events (the ``demand`` table).

    Parameters and exceptions are those of :func:`generate`. `threads` (1 or 2) is how many
    threads may draw at once: with 2, the answers are drawn beside the mistakes and the
    demand table (each from its own stream, so the arrays are the same either way).
    `on_demand` is called with the demand table as soon as it is drawn, before the event
    log is put in order (``simkit run`` starts writing it then, on another thread).

    Examples
    --------
    >>> from simkit.scenario import load_scenario
    >>> drawn = draw(load_scenario("data/scenarios/tiny.toml"))
    >>> sent = drawn.demand.was_sent
    >>> bool((drawn.demand.sent_ts[sent] >= drawn.demand.ts[sent]).all())
    True
    """
    rngs = _generators(scenario, seed)
    plan = _plan(scenario, rngs, population)
    world, timeline = plan.world, plan.timeline
    wishes = _wishes(scenario, world, timeline, rngs["wishes"], threads)
    fates = _fates(scenario, world, timeline, wishes, rngs["fates"], threads)
    answers = functools.partial(_answers, scenario, wishes, fates.sent_ts, rngs["answers"], rngs["removals"])
    with _beside(answers, threads) as answered:
        # numpy lets go of the interpreter lock in its loops: the two threads overlap.
        mistakes = _mistakes(scenario, world, wishes, fates.sent_ts, rngs["mistakes"])
        demand = _demand(wishes, fates, world, threads)
        if on_demand is not None:
            on_demand(demand)
        parts = [fates.attempt, *answered.result(), *mistakes]
    del wishes, fates, mistakes
    events = _sorted_events(parts, scenario.time.start_ms, world, threads)
    return Drawn(plan.population, events, timeline.policy, demand)


def _demand(wishes: _Wishes, fates: _Fates, world: _World, threads: int = 2) -> Demand:
    """The wishes as a table of ids, by user then target (each ordered pair once).

    The wishes come drawn in that order of rows, which is that of ids for a generated
    population: only a population brought with ids out of its rows' order is sorted again.
    Made a span at a time, on `threads` threads, in one pass per column.
    """
    n = len(wishes.actor)
    table = world.ids_of_rows()
    sent_ts = np.empty(n, np.int64)
    user = np.empty(n, np.int64) if isinstance(table, int) else np.empty(0, np.int64)
    target = np.empty_like(user)

    def fill(lo: int, hi: int) -> None:
        block = sent_ts[lo:hi]
        block[...] = fates.sent_ts[lo:hi]
        block[block == _NOT_SENT] = 0
        if isinstance(table, int):
            np.add(wishes.actor[lo:hi], table, out=user[lo:hi], dtype=np.int64)
            np.add(wishes.target[lo:hi], table, out=target[lo:hi], dtype=np.int64)

    each_span(fill, n, _CHUNK, threads)
    if isinstance(table, int):
        return Demand(ts=wishes.ts, user=user, target=target, fate=fates.fate, sent_ts=sent_ts)
    user, target = table[wishes.actor], table[wishes.target]
    order = np.lexsort((target, user))
    return Demand(
        ts=wishes.ts[order],
        user=user[order],
        target=target[order],
        fate=fates.fate[order],
        sent_ts=sent_ts[order],
    )


@contextlib.contextmanager
def _beside(job: Callable[[], _T], threads: int) -> Iterator[Future[_T]]:
    """``job()`` in another thread while the block runs (with `threads` 1: at once, here).

    The block waits for the job before it leaves, even when it fails, so that no thread
    outlives the draw.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if threads == 1:
        done: Future[_T] = Future()
        done.set_result(job())
        yield done
        return
    with ThreadPoolExecutor(1, thread_name_prefix="simkit-draw") as pool:
        yield pool.submit(job)
