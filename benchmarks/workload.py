"""`workload`: the generated logs the benchmarks replay.

Two kinds of log, each fixed by its length and seed (the same N and seed give the same
events); nothing here is timed.

- :func:`make_log`, the network: the bundled whole-network scenario
  (``data/scenarios/whole-network.toml``: the same behaviour, a year of traffic) with the
  population scaled down until a year holds at least N events, cut to its first N events
  (the log is sorted by ``ts``, so a prefix is a valid log). Most pairs see a handful of
  events.
- :func:`make_heavy_log`, transition-heavy: traffic concentrated on a few thousand pairs,
  the four actions in random order, so that most events change a record and the busiest
  pairs see hundreds of thousands of events each (see its docstring).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from simkit.events import Events, Policy
from simkit.generate import generate
from simkit.population import Population
from simkit.scenario import load_scenario

__all__ = ["SCENARIO", "WORKLOADS", "make_heavy_log", "make_log"]

SCENARIO = Path(__file__).resolve().parent.parent / "data" / "scenarios" / "whole-network.toml"
# The whole-network year makes about 90 events per user; aim a little low, then grow.
_EVENTS_PER_USER = 88


def make_log(n_events: int, seed: int = 2024) -> tuple[Population, Events, Policy]:
    """The first `n_events` events of a whole-network year scaled to hold them."""
    users = math.ceil(n_events / _EVENTS_PER_USER) + 100
    while True:
        scenario = load_scenario(
            SCENARIO, [f"population.users={users}", f"population.pods={max(users // 1000, 100)}"]
        )
        population, events, policy = generate(scenario, seed)
        if len(events) >= n_events:
            break
        users = math.ceil(users * 1.05)
    cut = Events(
        ts=events.ts[:n_events].copy(),
        actor=events.actor[:n_events].copy(),
        target=events.target[:n_events].copy(),
        action=events.action[:n_events].copy(),
    )
    return population, cut, policy


# Symphony-like user ids: the pod id above 27 bits, the user's number in its pod below.
_POD_SHIFT = 27
_YEAR_MS = 365 * 24 * 3600 * 1000
_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _pairs_of(
    rng: np.random.Generator, count: int, pods_a: np.ndarray, pods_b: np.ndarray, users_per_pod: int
) -> np.ndarray:
    """`count` distinct user pairs, one user from a pod of `pods_a`, one from the same row of `pods_b`."""
    local = rng.integers(0, users_per_pod, size=(count * 2, 2))
    a = (pods_a[: count * 2] << _POD_SHIFT) + local[:, 0] + 1
    b = (pods_b[: count * 2] << _POD_SHIFT) + local[:, 1] + 1
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)[a != b]
    _, first = np.unique(pairs, axis=0, return_index=True)
    chosen: np.ndarray = pairs[np.sort(first)[:count]]
    return chosen


def make_heavy_log(
    n_events: int, seed: int = 2024, *, pairs: int = 4000, skew: float = 1.0
) -> tuple[Population, Events, Policy]:
    """A transition-heavy log: `n_events` events concentrated on a few thousand pairs.

    40 private pods and 10 public ones of 100 users each, 90 % of users external, crossPod
    enabled at the start between a third of the pod pairs, and 40 policy events over the
    year. Of the events, 85 % go to `pairs` pairs of external users of two pods with
    crossPod enabled at the start, chosen with Zipf weights ``1 / rank ** skew`` (with the
    defaults the busiest pair sees about 12 % of the log, the 64th about 0.2 %); 5 % to 400
    pairs inside public pods; 4 % to 300 pairs inside private pods (implicit answers); 5 %
    to 400 pairs refused by the checks (crossPod off, or a user not external); 1 % name an
    unknown user or the caller itself. Each event's caller is either side of its pair at
    random and its action one of the four at random, so most events on a live pair change
    its record. Times are sorted draws over 2026.
    """
    rng = np.random.default_rng(seed)
    n_private, n_public, per_pod = 40, 10, 100
    n_pods = n_private + n_public
    pod_id = np.arange(1, n_pods + 1, dtype=np.int64)
    private = np.arange(n_pods) < n_private
    user_pod = np.repeat(pod_id, per_pod)
    user_id = (user_pod << _POD_SHIFT) + np.tile(np.arange(1, per_pod + 1), n_pods)
    external = rng.random(len(user_id)) < 0.9
    ext = dict(zip(user_id.tolist(), external.tolist()))
    a, b = np.triu_indices(n_pods, 1)
    enabled = rng.random(len(a)) < 1 / 3
    crosspod = np.stack([pod_id[a][enabled], pod_id[b][enabled]], axis=1)
    off = np.stack([pod_id[a][~enabled], pod_id[b][~enabled]], axis=1)
    population = Population.from_arrays(
        pod_id=pod_id,
        pod_name=[f"pod{p}" for p in pod_id.tolist()],
        pod_private=private,
        user_id=user_id,
        user_pod=user_pod,
        user_external=external,
        crosspod=crosspod,
    )

    def pick(rows: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = rows[rng.integers(0, len(rows), size=count * 2)]
        return chosen[:, 0], chosen[:, 1]

    # Heavy pairs: external users of pods with crossPod on; drawn generously, then filtered.
    heavy = _pairs_of(rng, pairs * 3, *pick(crosspod, pairs * 3), per_pod)
    heavy = heavy[[ext[x] and ext[y] for x, y in heavy.tolist()]][:pairs]
    public_pods = pod_id[~private]
    in_public = rng.choice(public_pods, 400 * 2)
    same_public = _pairs_of(rng, 400, in_public, in_public, per_pod)
    in_private = rng.choice(pod_id[private], 300 * 2)
    same_private = _pairs_of(rng, 300, in_private, in_private, per_pod)
    refused = _pairs_of(rng, 400, *pick(off, 400), per_pod)
    groups = [
        (heavy, 0.85, 1 / np.arange(1, len(heavy) + 1) ** skew),
        (same_public, 0.05, np.ones(len(same_public))),
        (same_private, 0.04, np.ones(len(same_private))),
        (refused, 0.05, np.ones(len(refused))),
    ]
    all_pairs = np.concatenate([g[0] for g in groups])
    weights = np.concatenate([share * w / w.sum() for _, share, w in groups])
    n_odd = n_events // 100
    n_paired = n_events - n_odd
    chosen = all_pairs[rng.choice(len(all_pairs), size=n_paired, p=weights / weights.sum())]
    flip = rng.random(n_paired) < 0.5
    actor = np.where(flip, chosen[:, 1], chosen[:, 0])
    target = np.where(flip, chosen[:, 0], chosen[:, 1])
    # Mistakes: an unknown caller or target, or a call to oneself.
    odd_actor = rng.choice(user_id, n_odd)
    odd_target = np.where(
        rng.random(n_odd) < 0.5, odd_actor, (rng.integers(n_pods + 1, 2 * n_pods, n_odd) << _POD_SHIFT) + 1
    )
    swap = rng.random(n_odd) < 0.3
    odd_actor, odd_target = np.where(swap, odd_target, odd_actor), np.where(swap, odd_actor, odd_target)
    actor = np.concatenate([actor, odd_actor])
    target = np.concatenate([target, odd_target])
    shuffle = rng.permutation(n_events)
    events = Events(
        ts=np.sort(rng.integers(_START_MS, _START_MS + _YEAR_MS, n_events)),
        actor=actor[shuffle].astype(np.int64),
        target=target[shuffle].astype(np.int64),
        action=rng.integers(0, 4, n_events).astype(np.int8),
    )
    # crossPod switched off and on again between pod pairs, some carrying heavy traffic.
    n_policy = 40
    rows = np.concatenate([crosspod[: n_policy // 2], off[: n_policy // 2]])[rng.permutation(n_policy)]
    policy = Policy(
        ts=np.sort(rng.integers(_START_MS, _START_MS + _YEAR_MS, n_policy)),
        pod_a=rows[:, 0],
        pod_b=rows[:, 1],
        crosspod=rng.random(n_policy) < 0.5,
    )
    return population, events, policy


WORKLOADS = {"network": make_log, "transition-heavy": make_heavy_log}
"""The logs a benchmark can replay, by name."""
