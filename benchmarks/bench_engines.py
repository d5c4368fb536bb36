"""Events per second of the replay engines on one generated log, I/O excluded.

Replays the same log with the per-event engine's batch path (``Engine.run``), the
columnar engine (``simkit.columnar.replay``) and a plain dict loop (the baseline a user
would write, see ``baseline.py``), checks that all three give the same answers, and prints
each one's best wall time, events per second, peak memory and the ratios::

    python benchmarks/bench_engines.py                     # 1M events (issue 2's figure)
    python benchmarks/bench_engines.py --events 10000000   # 10M events (issue 5's figure)

Each engine runs in its own process, forked once the log is generated, so that none
inherits another's garbage or fragmented memory. Times exclude generating the log and,
for the baseline, turning it into dicts; they include everything each engine does with
the arrays it is given (``Engine.run`` builds its engine, converts the arrays to lists and
its answers back to arrays; the columnar engine also builds the final connections).
``peak RSS`` is that process's high-water mark during its runs (the log included);
``extra`` is that peak minus the memory in use before the runs.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import multiprocessing
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
from simkit.io.runs import input_tables
from simkit.population import Population
from simkit.results import Outcomes

GB = 1e9
_Log = tuple[Population, Events, Policy]


def _digest(code: list[int], reason: list[str | None], status: list[str | None], counter: list[int]) -> str:
    """A fingerprint of a replay's answers, the same for equal answers whatever the engine."""
    text = "\n".join(f"{c},{r or ''},{s or ''},{n}" for c, r, s, n in zip(code, reason, status, counter))
    return hashlib.sha256(text.encode()).hexdigest()


def _outcomes_digest(outcomes: Outcomes) -> str:
    return _digest(
        outcomes.code.tolist(), outcomes.reasons(), outcomes.statuses(), outcomes.request_counter.tolist()
    )


def _replay_with(name: str, log: _Log) -> tuple[Callable[[], Any], Callable[[Any], str]]:
    """What to time for an engine, and how to fingerprint its result afterwards."""
    population, events, policy = log
    if name == "Engine.run":
        return (lambda: Engine(population).run(events, policy)), _outcomes_digest
    if name == "columnar.replay":
        return (lambda: columnar.replay(population, events, policy)), lambda r: _outcomes_digest(r.outcomes)
    # The baseline reads dicts, as a user's CSV reader or DataFrame records give them.
    rows = {name: table.to_pylist() for name, table in input_tables(population, events, policy).items()}

    def dict_loop() -> list[dict[str, Any]]:
        return replay_rows(rows["pods"], rows["users"], rows["crosspod"], rows["policy"], rows["events"])[0]

    def fingerprint(out: list[dict[str, Any]]) -> str:
        return _digest(
            [o["code"] for o in out],
            [o["reason"] for o in out],
            [o["status"] for o in out],
            [o["request_counter"] for o in out],
        )

    return dict_loop, fingerprint


def _child(name: str, log: _Log, repeat: int, pipe: Any) -> None:
    fn, fingerprint = _replay_with(name, log)
    gc.collect()
    before = rss_self()
    reset_peak_rss()
    seconds, result = best_of(repeat, fn)
    peak = peak_rss_self()
    pipe.send((seconds, peak, peak - before, fingerprint(result)))
    pipe.close()


def _measure(name: str, log: _Log, repeat: int) -> tuple[float, str]:
    """Time one engine in a forked process; print and return its best time and fingerprint."""
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_child, args=(name, log, repeat, send))
    child.start()
    seconds, peak, extra, digest = receive.recv()
    child.join()
    n = len(log[1])
    print(
        f"{name:<22} {seconds:9.3f} s {n / seconds:14,.0f} ev/s"
        f"   peak RSS {peak / GB:5.2f} GB (extra {extra / GB:5.2f} GB)",
        flush=True,
    )
    return seconds, digest


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
    log = make_log(args.events, args.seed)
    population, events, policy = log
    n = len(events)
    print(
        f"log: {n:,} events, {population.n_users:,} users, {population.n_pods:,} pods, "
        f"{len(policy):,} policy events (generated in {time.perf_counter() - start:.1f} s, not timed)"
    )
    print(f"best of {args.repeat} runs, each engine in its own process:")
    names = ["Engine.run", "columnar.replay"] + ([] if args.skip_baseline else ["dict loop (baseline)"])
    seconds, digests = {}, {}
    for name in names:
        seconds[name], digests[name] = _measure(name, log, args.repeat)
    for name in names[1:]:
        print(f"{name} answers == Engine.run answers: {digests[name] == digests['Engine.run']}")
    if not args.skip_baseline:
        base = seconds["dict loop (baseline)"]
        print(f"Engine.run      / dict loop: {base / seconds['Engine.run']:6.1f}x")
        print(f"columnar        / dict loop: {base / seconds['columnar.replay']:6.1f}x")
    print(f"columnar        / Engine.run: {seconds['Engine.run'] / seconds['columnar.replay']:6.1f}x")


if __name__ == "__main__":
    main()
