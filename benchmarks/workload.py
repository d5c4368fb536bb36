"""`workload`: the generated logs the benchmarks replay.

A log of N events is the bundled whole-network scenario (``data/scenarios/whole-network.toml``:
the same behaviour, a year of traffic) with the population scaled down until a year holds
at least N events, cut to its first N events (the log is sorted by ``ts``, so a prefix is a
valid log). The scenario and the seed fix the log: the same N and seed give the same events.
Nothing here is timed.
"""

from __future__ import annotations

import math
from pathlib import Path

from simkit.events import Events, Policy
from simkit.generate import generate
from simkit.population import Population
from simkit.scenario import load_scenario

__all__ = ["SCENARIO", "make_log"]

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
