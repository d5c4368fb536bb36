"""Events per second of the replay engines on one generated log, I/O excluded.

Replays the same log with a plain dict loop (the baseline a user would write, see
``baseline.py``), the per-event engine's batch path (``Engine.run``) and the columnar
engine (``simkit.columnar.replay``), checks that all three give the same answers, and
prints each one's best wall time, events per second, peak memory and the ratios::

    python benchmarks/bench_engines.py                     # 1M events (issue 2's figure)
    python benchmarks/bench_engines.py --events 10000000   # 10M events (issue 5's figure)

Times exclude generating the log and, for the baseline, turning it into dicts; they include
everything each engine does with the arrays it is given (``Engine.run`` converts them to
lists and its answers back to arrays; the columnar engine also builds the final
connections). ``peak RSS`` is the process's high-water mark during that engine's runs (the
log itself included); ``extra`` is that peak minus the memory in use before.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from baseline import replay_rows
from measure import best_of, peak_rss_self, reset_peak_rss, rss_self
from workload import make_log

from simkit import columnar
from simkit.engine import Engine
from simkit.events import Events, Policy
from simkit.population import Population
from simkit.results import Outcomes
from simkit.runs import input_tables

GB = 1e9


def _rows(population: Population, events: Events, policy: Policy) -> dict[str, list[dict[str, Any]]]:
    """The log as the lists of dicts the baseline reads (a user's CSV or DataFrame records)."""
    return {name: table.to_pylist() for name, table in input_tables(population, events, policy).items()}


def _same(outcomes: Outcomes, rows: list[dict[str, Any]]) -> bool:
    want = [
        {"code": c, "reason": r, "status": s, "request_counter": n}
        for c, r, s, n in zip(
            outcomes.code.tolist(), outcomes.reasons(), outcomes.statuses(), outcomes.request_counter.tolist()
        )
    ]
    return want == rows


def _measure(label: str, repeat: int, fn: Callable[[], Any], n: int) -> tuple[float, Any]:
    gc.collect()
    before = rss_self()
    reset_peak_rss()
    seconds, result = best_of(repeat, fn)
    peak = peak_rss_self()
    print(
        f"{label:<22} {seconds:9.3f} s {n / seconds:14,.0f} ev/s"
        f"   peak RSS {peak / GB:5.2f} GB (extra {(peak - before) / GB:5.2f} GB)",
        flush=True,
    )
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="log length (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=2024, help="generator seed (default: %(default)s)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per engine, best kept (default: %(default)s)"
    )
    parser.add_argument("--skip-baseline", action="store_true", help="do not run the dict loop")
    args = parser.parse_args()

    print("command:", shlex.join([os.path.relpath(sys.executable), *sys.argv]))
    print(
        f"machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
        f"numpy {np.__version__}, load average {os.getloadavg()[0]:.2f}"
    )
    start = time.perf_counter()
    population, events, policy = make_log(args.events, args.seed)
    n = len(events)
    print(
        f"log: {n:,} events, {population.n_users:,} users, {population.n_pods:,} pods, "
        f"{len(policy):,} policy events (generated in {time.perf_counter() - start:.1f} s, not timed)"
    )
    print(f"best of {args.repeat} runs:")

    def engine_run() -> Outcomes:
        return Engine(population).run(events, policy)

    engine_seconds, engine_outcomes = _measure("Engine.run", args.repeat, engine_run, n)
    columnar_seconds, columnar_result = _measure(
        "columnar.replay", args.repeat, lambda: columnar.replay(population, events, policy), n
    )
    # The baseline last: its millions of dicts would otherwise crowd the engines' runs.
    baseline_seconds = None
    if not args.skip_baseline:
        rows = _rows(population, events, policy)
        baseline_seconds, (dict_outcomes, _) = _measure(
            "dict loop (baseline)",
            args.repeat,
            lambda: replay_rows(
                rows["pods"], rows["users"], rows["crosspod"], rows["policy"], rows["events"]
            ),
            n,
        )
        del rows

    same = all(
        np.array_equal(getattr(engine_outcomes, f), getattr(columnar_result.outcomes, f))
        for f in ("code", "reason", "status", "request_counter")
    )
    print(f"columnar answers == Engine.run answers: {same}")
    if not args.skip_baseline:
        print(f"dict loop answers == Engine.run answers: {_same(engine_outcomes, dict_outcomes)}")
        assert baseline_seconds is not None
        print(f"Engine.run      / dict loop: {baseline_seconds / engine_seconds:6.1f}x")
        print(f"columnar        / dict loop: {baseline_seconds / columnar_seconds:6.1f}x")
    print(f"columnar        / Engine.run: {engine_seconds / columnar_seconds:6.1f}x")


if __name__ == "__main__":
    main()
