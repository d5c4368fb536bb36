"""Generation against the columnar replay of its own log, measured in one process.

Issue 12's target: drawing a scenario's traffic (wishes, their fates against the crossPod
timeline, answers, mistakes, the sorted log and the demand table) takes at most 1.5 times
the columnar replay of the log it draws, on the whole network (about 10^6 users, 10^3
pods, a year), within 8 GB for the whole ``simkit run``. Both are timed here, in the same
run, so the ratio holds on a noisy machine; peak memory is the process's maximum RSS::

    python benchmarks/bench_generate.py                       # whole-network.toml
    python benchmarks/bench_generate.py data/scenarios/baseline.toml --repeat 3

With ``--repeat`` each step runs that many times and the fastest time counts.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parent / "data" / "scenarios" / "whole-network.toml"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "scenario", nargs="?", default=str(DEFAULT), help="scenario file (default: whole-network)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each step; the fastest counts")
    args = parser.parse_args()

    from simkit.engines import replay
    from simkit.generate import draw
    from simkit.scenario import load_scenario

    sc = load_scenario(args.scenario)
    gen, rep = float("inf"), float("inf")
    for _ in range(args.repeat):
        gc.collect()
        t = time.perf_counter()
        drawn = draw(sc)
        gen = min(gen, time.perf_counter() - t)
        gc.collect()
        t = time.perf_counter()
        replay(drawn.population, drawn.events, drawn.policy, engine="columnar")
        rep = min(rep, time.perf_counter() - t)
        n_events, n_wishes = len(drawn.events), len(drawn.demand)
        del drawn
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"scenario          {sc.name}: {n_events:,} events from {n_wishes:,} wishes")
    print(f"generate          {gen:8.2f} s")
    print(f"columnar replay   {rep:8.2f} s")
    print(f"ratio             {gen / rep:8.2f}  generate / replay (target <= 1.5)")
    print(f"peak RSS          {peak / 1e9:8.2f} GB (generate + replay in one process)")


if __name__ == "__main__":
    sys.exit(main())
