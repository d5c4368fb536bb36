"""Reading a CSV events table: simkit against pyarrow's plain ``pyarrow.csv.read_csv``.

Generates a log (5M events by default, :func:`workload.make_log`) and writes its events table
as CSV twice: as pandas, spreadsheets and simkit's own samples write it (no quotes), and with
every text cell in quotes (as pyarrow's and R's writers do). For each file it times, in this
one process, alternating so that all see the same machine, best of N::

    pyarrow.csv.read_csv(events.csv)                  # plain: inferred types, no checks
    simkit.io.runs._read_table("events", events.csv)  # simkit: the quote-aware count of
                                                      # records, pyarrow's parse, every
                                                      # check of §5, numpy columns out
    simkit.read_run(RUN)                              # the whole folder (the other tables
                                                      # are small Parquet files)

and prints the ratio of simkit's read to the plain read (the target: at most 1.3 for the
file without quotes), with the count of records alone. The count walks the bytes with numpy:
a file without quotes costs a comparison per byte, one with quotes a few more passes (the
positions of quotes and line ends, and the parity of the quotes before each line end). ::

    python benchmarks/bench_read_csv.py                  # 5M events
    python benchmarks/bench_read_csv.py --events 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from workload import make_log

from simkit.io.runs import _count_records, _read_table, input_tables, read_run, write_inputs

TARGET = 1.3


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000, help="log length (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=2024, help="generator seed (default: %(default)s)")
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs of each read, best kept (default: %(default)s)"
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
        run = Path(tmp) / "run"
        population, events, policy = make_log(args.events, args.seed)
        write_inputs(run, population, events, policy)
        (run / "events.parquet").unlink()
        table = input_tables(population, events, policy)["events"]
        for quoting in ("none", "needed"):
            file = run / "events.csv"
            pacsv.write_csv(table, file, write_options=pacsv.WriteOptions(quoting_style=quoting))
            with file.open() as fh:
                sample = [next(fh).rstrip("\n") for _ in range(2)]
            print(
                f"\nevents.csv: {len(events):,} rows, {file.stat().st_size / 1e6:.1f} MB, "
                f"quoting_style={quoting!r}: {sample[0]} / {sample[1]}"
            )
            _compare(run, file, len(events), args.repeat, target=TARGET if quoting == "none" else None)


def _compare(run: Path, file: Path, n: int, repeat: int, target: float | None) -> None:
    reads: dict[str, Callable[[], object]] = {
        "pyarrow.csv.read_csv (plain)": lambda: pacsv.read_csv(file),
        "simkit: events table": lambda: _read_table("events", file),
        "simkit: count of records": lambda: _count_records(file),
        "simkit: read_run (folder)": lambda: read_run(run),
    }
    assert len(read_run(run).events) == n
    best = dict.fromkeys(reads, float("inf"))
    for _ in range(repeat):
        for label, read in reads.items():
            best[label] = min(best[label], _timed(read))
    print(f"best of {repeat} runs, alternating, in one process:")
    plain = best["pyarrow.csv.read_csv (plain)"]
    for label, seconds in best.items():
        print(f"  {label:<30} {seconds:7.3f} s   {seconds / plain:5.2f}x plain")
    ratio = best["simkit: events table"] / plain
    verdict = "" if target is None else f" (target {target}x: {'met' if ratio <= target else 'NOT met'})"
    print(f"simkit / plain read_csv: {ratio:.2f}x{verdict}")


if __name__ == "__main__":
    main()
