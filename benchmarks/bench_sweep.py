"""Wall time and peak memory of a sweep on each executor, against the runs it is made of.

A 4-point by 5-replication sweep of ``baseline`` (accept share 0.5 to 0.8, the ignore
share moving with it so that the answer shares still sum to 1) runs as ``simkit sweep`` in a
fresh process on three executors: serially, on 2 worker processes (``--workers 2``) and on
a Dask ``LocalCluster`` of this machine's cores (``--dask local``), the three taking turns,
``--repeat`` times each (the fastest of each counts: the machine is shared and noisy). Each
is measured from outside (:func:`measure.run_process`): wall time, and peak RSS summed over
the process and all its descendants (the workers). Every ``runs.parquet`` must be the same
bytes.

Then the same 20 runs are timed one by one in this process, as a sweep makes them
(generation + replay on the default engine, the replay handing its pair groups on, then
:func:`simkit.metrics.metrics`): "ratio" is a sweep's wall time over the sum of the
single-run times (generation + replay + metrics), and "metrics" the share of the metrics
over generation + replay, on the engines' default threads and again on one thread, as a
sweep's worker processes run them.

Usage::

    python benchmarks/bench_sweep.py
    python benchmarks/bench_sweep.py --replications 3 --repeat 1 --scenario data/scenarios/tiny.toml
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

from measure import Process, run_process

ROOT = Path(__file__).resolve().parent.parent
GRID = ["--grid", "behaviour.accept=[0.5, 0.6, 0.7, 0.8]", "--grid", "behaviour.ignore=[0.4, 0.3, 0.2, 0.1]"]


def _single_runs(scenario: Path, replications: int, threads: int | None = None) -> tuple[float, float]:
    """Seconds of generation + replay, and of the metrics, summed over the sweep's runs,
    each run as a sweep makes it (the replay hands its pair groups to the metrics); with
    `threads` 1 as in a sweep's worker processes, else on the engines' default threads."""
    import numpy as np

    from simkit.engines import replay
    from simkit.generate import generate
    from simkit.metrics import metrics
    from simkit.scenario import load_scenario
    from simkit.sweeps import parse_grid, points_of

    sc = load_scenario(scenario)
    points = points_of(parse_grid([GRID[1], GRID[3]]), zipped=True)
    run_s = metrics_s = 0.0
    generate(sc)  # warm the imports and caches, as a sweep's worker is after its first run
    option = {} if threads is None else {"threads": threads}
    for point in points:
        knobs = sc.with_overrides(point)
        for seed in np.random.SeedSequence(sc.seed).spawn(replications):
            start = time.perf_counter()
            pop, events, policy = generate(knobs, seed, **option)
            result = replay(pop, events, policy, groups=True, **option)
            middle = time.perf_counter()
            metrics(pop, events, result)
            run_s += middle - start
            metrics_s += time.perf_counter() - middle
    return run_s, metrics_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "data" / "scenarios" / "baseline.toml")
    parser.add_argument("--replications", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each sweep; the fastest counts")
    args = parser.parse_args()
    command = [sys.executable, "-m", "simkit", "sweep", str(args.scenario), *GRID, "--zip"]
    command += ["--replications", str(args.replications)]
    executors = {
        "serial": [],
        "processes (2 workers)": ["--workers", "2"],
        "Dask LocalCluster": ["--dask", "local"],
    }
    run_s, metrics_s = _single_runs(args.scenario, args.replications)
    single = run_s + metrics_s
    print(f"$ python benchmarks/bench_sweep.py --replications {args.replications} --repeat {args.repeat}")
    print(f"{4 * args.replications} runs of {args.scenario.name}: single runs sum to {single:.2f} s")
    print(f"metrics: {metrics_s:.2f} s = {metrics_s / run_s:.0%} of generation + replay ({run_s:.2f} s)")
    one_s, one_metrics_s = _single_runs(args.scenario, args.replications, threads=1)
    print(
        f"metrics on one thread, as in a worker: {one_metrics_s:.2f} s = {one_metrics_s / one_s:.0%} "
        f"of generation + replay ({one_s:.2f} s) (target <= 20%)"
    )
    digests = set()
    best: dict[str, Process] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # The executors take turns, so that a burst of load from elsewhere falls on all.
        for turn in range(args.repeat):
            for name, options in executors.items():
                out = Path(tmp) / f"{name.split()[0]}-{turn}"
                done = run_process([*command, "--out", str(out), *options])
                if done.returncode != 0:
                    print(f"{name}: failed with exit status {done.returncode}")
                    return 1
                digests.add(hashlib.sha256((out / "runs.parquet").read_bytes()).hexdigest())
                if name not in best or done.seconds < best[name].seconds:
                    best[name] = done
    print(f"best of {args.repeat} of each, taking turns:")
    for name, done in best.items():
        print(
            f"{name:>22}: {done.seconds:6.2f} s wall, peak RSS {done.peak_rss / 2**20:6.0f} MB summed over "
            f"workers, {done.seconds / single:.2f}x the single runs"
        )
    walls = {name: done.seconds for name, done in best.items()}
    serial, processes, dask = walls.values()
    print(f"processes: {serial / processes:.2f}x faster than serial (target >= 1.6x)")
    print(f"Dask: {dask / processes:.2f}x the processes' time (target <= 1.5x)")
    print(f"runs.parquet identical on every executor: {len(digests) == 1}")
    return 0 if len(digests) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
