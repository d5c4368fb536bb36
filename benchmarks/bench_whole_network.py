"""The bundled whole-network scenario end to end, then the user graph of its accepted connections.

Runs, each in a fresh process timed from start to exit, with peak memory (RSS summed over
the process and any children, sampled while it runs)::

    python -m simkit run data/scenarios/whole-network.toml --out RUN --engine columnar --overwrite
    python benchmarks/bench_whole_network.py --graph RUN/connections.parquet

The first generates about a million users in a thousand pods over a year (about 10^8
events), writes the inputs, replays them with the columnar engine and writes the outputs
(target: at most 60 s and 8 GB on 2 cores). The second reads the ACCEPTED records and
builds an undirected networkx graph with one node per user and one edge per accepted
connection (no target; networkx keeps a few hundred bytes per edge)::

    python benchmarks/bench_whole_network.py                # both
    python benchmarks/bench_whole_network.py --skip-graph   # simkit run only
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from measure import run_process

HERE = Path(__file__).resolve().parent
SCENARIO = HERE.parent / "data" / "scenarios" / "whole-network.toml"
GB = 1e9


def build_graph(connections: Path) -> None:
    """Build the accepted-connections graph of a run; print its size and build time."""
    import networkx as nx
    import pyarrow.parquet as pq

    start = time.perf_counter()
    accepted = pq.read_table(connections, columns=["user_a", "user_b"], filters=[("status", "=", "ACCEPTED")])
    read = time.perf_counter()
    graph = nx.Graph()
    graph.add_edges_from(zip(accepted["user_a"].to_numpy().tolist(), accepted["user_b"].to_numpy().tolist()))
    built = time.perf_counter()
    print(
        f"graph: {graph.number_of_nodes():,} users, {graph.number_of_edges():,} accepted connections; "
        f"read {read - start:.1f} s, built {built - read:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir", type=Path, help="where to put the run folder (default: a temporary folder)"
    )
    parser.add_argument("--skip-graph", action="store_true", help="do not build the networkx graph")
    parser.add_argument("--graph", type=Path, metavar="CONNECTIONS", help=argparse.SUPPRESS)
    parser.add_argument(
        "--graph-limit-gb",
        type=float,
        default=16.0,
        help="address-space limit of the graph process, so a shared machine survives (default: %(default)s)",
    )
    args = parser.parse_args()
    if args.graph is not None:
        limit = int(args.graph_limit_gb * GB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        build_graph(args.graph)
        return

    print("command:", shlex.join([os.path.relpath(sys.executable), *sys.argv]))
    print(
        f"machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
        f"numpy {np.__version__}, pyarrow {pa.__version__}, load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        run = Path(tmp) / "run"
        command = [
            sys.executable, "-m", "simkit", "run", str(SCENARIO),
            "--out", str(run), "--engine", "columnar", "--overwrite",
        ]  # fmt: skip
        done = run_process(command)
        if done.returncode != 0:
            raise SystemExit(f"failed ({done.returncode}): {shlex.join(command)}")
        print(
            f"$ {shlex.join(['python', *command[1:4], 'data/scenarios/whole-network.toml', *command[5:6], 'RUN', *command[7:]])}"
        )
        print("  " + done.stdout.strip().replace("\n", "\n  "))
        sizes = ", ".join(f"{f.name} {f.stat().st_size / 1e6:,.0f} MB" for f in sorted(run.iterdir()))
        print(f"  files: {sizes}")
        verdict = "met" if done.seconds <= 60 and done.peak_rss <= 8 * GB else "NOT met"
        print(
            f"simkit run: {done.seconds:.1f} s wall, peak RSS {done.peak_rss / GB:.2f} GB "
            f"(target 60 s, 8 GB: {verdict})",
            flush=True,
        )
        if args.skip_graph:
            return
        graph_cmd = [
            sys.executable, str(Path(__file__).resolve()), "--graph", str(run / "connections.parquet"),
            "--graph-limit-gb", str(args.graph_limit_gb),
        ]  # fmt: skip
        graph = run_process(graph_cmd)
        print("  " + graph.stdout.strip())
        if graph.returncode != 0:
            print(
                f"user graph: failed (exit {graph.returncode}), likely the {args.graph_limit_gb:g} GB limit"
            )
        print(f"user graph: {graph.seconds:.1f} s wall, peak RSS {graph.peak_rss / GB:.2f} GB")


if __name__ == "__main__":
    main()
