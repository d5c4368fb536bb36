"""`simkit replay` as a whole process against the dict-loop baseline, on one Parquet run folder.

Generates a log (5M events by default), writes it as a Parquet run folder, then runs, each
in a fresh process and timed from start to exit (interpreter start, imports, reading,
replaying, writing)::

    python -m simkit replay RUN --out OUT --engine columnar
    python benchmarks/baseline.py RUN --out OUT        # read as dicts, loop, write

taking turns (best of ``--repeat`` each), checks that both wrote the same outcomes, and
prints wall times, peak memory (RSS of the process tree) and the ratio; then where
simkit's time goes, stage by stage (Python and imports in a process of their own, the
rest in-process)::

    python benchmarks/bench_replay.py                  # 5M events of the network
    python benchmarks/bench_replay.py --workload transition-heavy
    python benchmarks/bench_replay.py --events 1000000 --repeat 1

``--workload`` picks the log (``benchmarks/workload.py``): ``network``, the whole-network
scenario scaled down, where most pairs see a handful of events; or ``transition-heavy``,
traffic concentrated on a few thousand pairs with the four actions in random order, where
the busiest pairs see hundreds of thousands of events and most events change a record.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from measure import Process, run_process
from workload import WORKLOADS

from simkit.engines import replay
from simkit.io.runs import read_run, write_inputs, write_outputs

HERE = Path(__file__).resolve().parent
GB = 1e9


def _run(command: list[str]) -> Process:
    done = run_process(command)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {shlex.join(command)}")
    return done


def _best_interleaved(commands: dict[str, list[str]], repeat: int) -> dict[str, Process]:
    """The fastest of `repeat` runs of each command, the commands taking turns, so that a
    burst of load from elsewhere on the machine falls on both rather than on one."""
    runs: dict[str, list[Process]] = {label: [] for label in commands}
    for _ in range(repeat):
        for label, command in commands.items():
            runs[label].append(_run(command))
    return {label: min(done, key=lambda p: p.seconds) for label, done in runs.items()}


def _same_outcomes(a: Path, b: Path) -> bool:
    left, right = pq.read_table(a), pq.read_table(b)
    return all(
        pc.all(
            pc.equal(
                pc.fill_null(left[c].cast(pa.string()), ""), pc.fill_null(right[c].cast(pa.string()), "")
            )
        ).as_py()
        for c in ("code", "reason", "status", "request_counter")
    )


def _mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000, help="log length (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=2024, help="generator seed (default: %(default)s)")
    parser.add_argument(
        "--workload", choices=sorted(WORKLOADS), default="network", help="the log (default: %(default)s)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each command, best kept (default: %(default)s)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="where to put the run folder (default: a temporary folder)"
    )
    args = parser.parse_args()

    print("command:", shlex.join([os.path.relpath(sys.executable), *sys.argv]))
    print(
        f"machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
        f"numpy {np.__version__}, pyarrow {pa.__version__}, load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        run = root / "run"
        population, events, policy = WORKLOADS[args.workload](args.events, args.seed)
        write_inputs(run, population, events, policy)
        n = len(events)
        print(
            f"run folder ({args.workload}): {n:,} events, {population.n_users:,} users, {len(policy):,} policy events; "
            f"events.parquet {_mb(run / 'events.parquet')}"
        )
        simkit_cmd = [
            sys.executable,
            "-m",
            "simkit",
            "replay",
            str(run),
            "--out",
            str(root / "simkit"),
            "--engine",
            "columnar",
        ]
        baseline_cmd = [sys.executable, str(HERE / "baseline.py"), str(run), "--out", str(root / "baseline")]
        print(f"best of {args.repeat} runs each, taking turns, whole process:")
        commands = {"simkit replay": simkit_cmd, "dict loop": baseline_cmd}
        timed = _best_interleaved(commands, args.repeat)
        for label, command in commands.items():
            done = timed[label]
            print(
                f"  {label:<14} {done.seconds:8.2f} s {n / done.seconds:12,.0f} ev/s   peak RSS {done.peak_rss / GB:5.2f} GB"
                f"   ({shlex.join(Path(c).name if c == sys.executable else c for c in command[:5])} ...)",
                flush=True,
            )
        print(
            f"same outcomes: {_same_outcomes(root / 'simkit' / 'outcomes.parquet', root / 'baseline' / 'outcomes.parquet')}"
        )
        print(
            f"simkit replay / dict loop: {timed['dict loop'].seconds / timed['simkit replay'].seconds:.1f}x"
        )
        print(
            f"outputs: simkit outcomes {_mb(root / 'simkit' / 'outcomes.parquet')}, "
            f"connections {_mb(root / 'simkit' / 'connections.parquet')}; "
            f"dict loop outcomes {_mb(root / 'baseline' / 'outcomes.parquet')}, "
            f"connections {_mb(root / 'baseline' / 'connections.parquet')}"
        )

        # Where simkit replay's time goes: starting Python and importing what the command
        # imports (a process of its own), then each stage in this process, best of
        # `repeat` (the log is the same each time).
        imports = _run([sys.executable, "-c", "import simkit.cli, simkit.pipeline"]).seconds
        stages: dict[str, float] = {}
        for _ in range(args.repeat):
            start = time.perf_counter()
            folder = read_run(run)
            read = time.perf_counter()
            result = replay(folder.population, folder.events, folder.policy, engine="columnar")
            replayed = time.perf_counter()
            write_outputs(root / "stages", folder, result)
            written = time.perf_counter()
            for label, seconds in (
                ("read_run", read - start),
                ("columnar.replay", replayed - read),
                ("write_outputs", written - replayed),
            ):
                stages[label] = min(stages.get(label, seconds), seconds)
            del folder, result
        print(
            f"simkit replay stages: python + imports {imports:.2f} s, "
            + ", ".join(f"{label} {seconds:.2f} s" for label, seconds in stages.items())
            + f"; sum {imports + sum(stages.values()):.2f} s"
        )


if __name__ == "__main__":
    main()
