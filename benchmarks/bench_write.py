"""`simkit run` against pyarrow alone writing the same run's big tables, in one run.

Times, each in a fresh process timed from start to exit, with peak memory (see ``measure.py``)::

    python -m simkit run SCENARIO --out RUN --engine columnar --overwrite
    python benchmarks/bench_write.py --pyarrow-write RUN

The second reads ``events.parquet``, ``outcomes.parquet`` and ``connections.parquet`` back
from the run folder and times only ``pyarrow.parquet.write_table(table, path)`` of each, with
pyarrow's default settings (snappy, dictionary encoding of every column): what writing the
run's data costs at the least, whatever simkit does. The script prints both and the ratio run /
pyarrow (issue 15's target: at most 2 on the whole network)::

    python benchmarks/bench_write.py                                          # whole network
    python benchmarks/bench_write.py --repeat 2                               # best of 2 of each
    python benchmarks/bench_write.py --scenario data/scenarios/baseline.toml  # quick

``--stages`` then runs the scenario again in a fresh process through ``simkit.cli.main``,
timing the imports and each stage (generation, writing the inputs and the demand, replay,
writing the outputs, hashing, the commit's fsync and renames); stages that overlap (the
inputs are written and hashed while the replay runs) add up to more than the whole.
``--encodings RUN`` measures, per column of the run's big tables (the first ``--rows``
rows), the write time and file size of each Parquet encoding and compression, with and
without statistics: the measurements behind the per-column settings of ``simkit.io.runs``. A whole-network
command needs about 8 GB: run one at a time on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from measure import run_process

HERE = Path(__file__).resolve().parent
SCENARIO = HERE.parent / "data" / "scenarios" / "whole-network.toml"
TABLES = ("events", "outcomes", "connections")
GB = 1e9


def pyarrow_write(run: Path) -> None:
    """Write the big tables of `run` again with pyarrow's defaults; print the seconds of
    each write (reading excluded) as JSON."""
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=run.parent) as tmp:
        for name in TABLES:
            table = pq.read_table(run / f"{name}.parquet")
            start = time.perf_counter()
            pq.write_table(table, Path(tmp) / f"{name}.parquet")
            seconds[name] = time.perf_counter() - start
            del table
    print(json.dumps(seconds))


# -- stages ------------------------------------------------------------------------------------


def stages(scenario: str, out: Path) -> None:
    """Run `scenario` into `out` with ``simkit.cli.main`` in this process, timing the imports
    and each stage of the pipeline."""
    start = time.perf_counter()
    import simkit.cli
    import simkit.io.commit as commit
    import simkit.pipeline as pipeline

    imports = time.perf_counter() - start
    times: dict[str, float] = {}

    def timed(module: Any, name: str, label: str) -> None:
        inner = getattr(module, name)

        @functools.wraps(inner)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                times[label] = times.get(label, 0.0) + time.perf_counter() - start

        setattr(module, name, wrapper)

    plan = [
        (pipeline, "draw", "generate"),
        (pipeline, "write_inputs", "write inputs"),
        (pipeline, "write_demand", "write demand"),
        (pipeline, "replay", "replay"),
        (pipeline, "write_outputs", "write outputs (with manifest)"),
        (commit, "file_sha256", "hashing (SHA-256 of every file, beside)"),
        (commit.RunFolderTransaction, "commit", "commit (fsync every file, renames)"),
    ]
    for module, name, label in plan:
        timed(module, name, label)
    start = time.perf_counter()
    code = simkit.cli.main(["run", scenario, "--out", str(out), "--engine", "columnar", "--overwrite"])
    whole = time.perf_counter() - start
    print(f"  {'imports':<44} {imports:6.2f} s")
    for _, _, label in plan:
        print(f"  {label:<44} {times.get(label, 0.0):6.2f} s")
    print(f"  {'simkit.cli.main, whole':<44} {whole:6.2f} s (exit status {code})", flush=True)


# -- encodings ---------------------------------------------------------------------------------

# (label, write_table options); `dictionary`/`encoding` are filled in per column.
_COMPRESSIONS = ("snappy", "zstd")


def _variants(column: pa.ChunkedArray) -> Iterator[tuple[str, dict[str, Any]]]:
    integer = pa.types.is_integer(column.type)
    for compression in _COMPRESSIONS:
        yield f"{compression} dictionary", {"compression": compression, "use_dictionary": True}
        yield f"{compression} plain", {"compression": compression, "use_dictionary": False}
        if integer:
            yield (
                f"{compression} delta",
                {
                    "compression": compression,
                    "use_dictionary": False,
                    "column_encoding": "DELTA_BINARY_PACKED",
                },
            )
    # What each row group's statistics (min, max, null count) cost, with simkit's compression.
    yield (
        "zstd dictionary, no statistics",
        {"compression": "zstd", "use_dictionary": True, "write_statistics": False},
    )
    if integer:
        # Delta-packed values are bit-packed already: what compressing them again buys.
        yield (
            "delta, uncompressed",
            {"compression": "none", "use_dictionary": False, "column_encoding": "DELTA_BINARY_PACKED"},
        )
        yield (
            "zstd delta, no statistics",
            {
                "compression": "zstd",
                "use_dictionary": False,
                "column_encoding": "DELTA_BINARY_PACKED",
                "write_statistics": False,
            },
        )


def _timed_write(table: pa.Table, path: Path, options: dict[str, Any], repeat: int) -> tuple[float, int]:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        pq.write_table(table, path, store_schema=False, **options)
        best = min(best, time.perf_counter() - start)
    return best, path.stat().st_size


def encodings(run: Path, rows: int | None, repeat: int) -> None:
    """Per column of the big tables of `run`: write time and size of each encoding."""
    with tempfile.TemporaryDirectory(dir=run.parent) as tmp:
        path = Path(tmp) / "column.parquet"
        for name in (*TABLES, "demand"):
            file = run / f"{name}.parquet"
            if not file.exists():
                continue
            # Text columns as simkit holds them when it writes: Arrow dictionaries of their labels.
            schema = pq.read_schema(file)
            labels = [f.name for f in schema if pa.types.is_string(f.type)]
            table = pq.read_table(file, read_dictionary=labels)
            if rows is not None:
                table = table.slice(0, rows)
            print(f"{name} ({table.num_rows:,} rows)")
            for column in table.column_names:
                one = table.select([column])
                results = [(label, *_timed_write(one, path, opt, repeat)) for label, opt in _variants(one[0])]
                fastest = min(s for _, s, _ in results)
                smallest = min(b for _, _, b in results)
                cells = "  ".join(
                    f"{label} {s:5.2f} s {b / 1e6:6.1f} MB{'*' if s == fastest else ''}"
                    f"{'+' if b == smallest else ''}"
                    for label, s, b in results
                )
                print(f"  {column:<19} {cells}")
            del table
    print("(* fastest, + smallest)")


# -- the comparison ----------------------------------------------------------------------------


@contextlib.contextmanager
def _folder(workdir: Path | None) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-write-", dir=workdir) as tmp:
        yield Path(tmp)


def _check(done: Any, command: list[str]) -> None:
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {shlex.join(command)}")


def _shown(command: list[str], where: Path) -> str:
    return shlex.join(
        ["python", *(os.path.relpath(c) if c.startswith("/") else c for c in command[1:])]
    ).replace(os.path.relpath(where), "RUN")


def compare(scenario: str, workdir: Path | None, with_stages: bool, repeat: int = 1) -> None:
    with _folder(workdir) as tmp:
        run = tmp / "run"
        run_cmd = [
            sys.executable, "-m", "simkit", "run", scenario,
            "--out", str(run), "--engine", "columnar", "--overwrite",
        ]  # fmt: skip
        write_cmd = [sys.executable, str(Path(__file__).resolve()), "--pyarrow-write", str(run)]
        # Alternately (run, writes, run, writes...), the best of `repeat` of each: a change in
        # the machine's load, or memory the machine has to fault in afresh for the first
        # command, falls on both.
        simkit_run = written = None
        seconds: dict[str, float] = {}
        for _ in range(repeat):
            done = run_process(run_cmd)
            _check(done, run_cmd)
            if simkit_run is None or done.seconds < simkit_run.seconds:
                simkit_run = done
            wrote = run_process(write_cmd)
            _check(wrote, write_cmd)
            these = json.loads(wrote.stdout.strip().splitlines()[-1])
            if written is None or sum(these.values()) < sum(seconds.values()):
                written, seconds = wrote, these
        assert simkit_run is not None and written is not None
        plain = sum(seconds.values())
        rows = {name: pq.read_metadata(run / f"{name}.parquet").num_rows for name in TABLES}
        sizes = ", ".join(f"{f.name} {f.stat().st_size / 1e6:,.0f} MB" for f in sorted(run.glob("*.parquet")))
        best = f"best of {repeat}, " if repeat > 1 else ""
        print(f"$ {_shown(run_cmd, run)}")
        print(f"  {simkit_run.seconds:7.2f} s wall ({best}peak RSS {simkit_run.peak_rss / GB:.2f} GB)")
        print(f"  files: {sizes}")
        print(f"$ {_shown(write_cmd, run)}")
        print(
            "  write_table defaults: "
            + ", ".join(f"{name} ({rows[name]:,} rows) {seconds[name]:.2f} s" for name in TABLES)
            + f"; together {plain:.2f} s ({best}process {written.seconds:.1f} s with reading, "
            f"peak RSS {written.peak_rss / GB:.2f} GB)"
        )
        ratio = simkit_run.seconds / plain
        print(f"simkit run / pyarrow writes: {ratio:.2f}x (target: at most 2x on the whole network)")
        if with_stages:
            shutil.rmtree(run)
            stage_cmd = [sys.executable, str(Path(__file__).resolve()), "--stages-of", scenario, str(run)]
            print(f"$ {_shown(stage_cmd, run)}  (stages overlap: the inputs are written during the replay)")
            staged = run_process(stage_cmd)
            _check(staged, stage_cmd)
            print(staged.stdout.rstrip())
            print(
                f"  {'process, start to exit':<44} {staged.seconds:6.2f} s, peak RSS {staged.peak_rss / GB:.2f} GB"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=os.path.relpath(SCENARIO), help="default: %(default)s")
    parser.add_argument(
        "--workdir", type=Path, help="where to put the run folders (default: a temporary folder)"
    )
    parser.add_argument("--stages", action="store_true", help="also time simulate stage by stage")
    parser.add_argument(
        "--encodings",
        type=Path,
        metavar="RUN",
        help="measure each column's Parquet encodings on the big tables of the run folder RUN",
    )
    parser.add_argument(
        "--rows", type=int, default=10_000_000, help="rows per table for --encodings (default: %(default)s)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="best of this many of each command, alternating (or of each write, for --encodings)",
    )
    parser.add_argument("--pyarrow-write", type=Path, metavar="RUN", help=argparse.SUPPRESS)
    parser.add_argument("--stages-of", nargs=2, metavar=("SCENARIO", "RUN"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pyarrow_write is not None:
        pyarrow_write(args.pyarrow_write)
        return
    if args.stages_of is not None:
        stages(args.stages_of[0], Path(args.stages_of[1]))
        return
    print(
        "command:",
        shlex.join(["python", os.path.relpath(__file__), *(sys.argv[1:] if argv is None else argv)]),
    )
    print(
        f"machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
        f"numpy {np.__version__}, pyarrow {pa.__version__}, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    if args.encodings is not None:
        encodings(args.encodings, args.rows, args.repeat)
        return
    compare(args.scenario, args.workdir, args.stages, args.repeat)


if __name__ == "__main__":
    main()
