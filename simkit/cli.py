"""`cli`: the ``simkit`` command, a thin shell over the Python API.

One sub-command per job; each parses its options, calls one function of the package and
prints a short summary. A :class:`~simkit.errors.SimkitError` becomes one line on stderr and
exit status 1, never a traceback; bad usage exits 2 (argparse's convention).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from simkit.engines import DEFAULT_ENGINE, ENGINES
from simkit.errors import SimkitError
from simkit.results import Replay
from simkit.scenario import DEFAULT_MAX_EVENTS
from simkit.version import __version__

__all__ = ["main", "run"]

_Handler = Callable[[argparse.Namespace], int]


def _summary(result: Replay) -> str:
    codes = ", ".join(f"{code}: {n:,}" for code, n in result.outcomes.code_counts().items())
    status = ", ".join(f"{s} {n:,}" for s, n in result.connections.status_counts().items())
    return (
        f"events:      {len(result.outcomes):,}\n"
        f"answers:     {codes or 'none'}\n"
        f"connections: {len(result.connections):,} ({status})"
    )


def _replay(args: argparse.Namespace) -> int:
    from simkit.pipeline import inputs_changed, replay_run

    changed = args.out is None and inputs_changed(args.run_dir)
    result = replay_run(args.run_dir, args.out, engine=args.engine, csv=args.csv)
    print(_summary(result))
    if changed:
        print("inputs:      changed since the run; the manifest no longer names its scenario or seed")
    print(f"wrote:       {args.out or args.run_dir}")
    return 0


def _whole_number(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer of at least `minimum`, refused as `what` otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, found {text!r}")
        return value

    return parse


_seed = _whole_number(0, "a non-negative integer")
_positive = _whole_number(1, "a positive integer")
# crossPod partners named per pod by `simkit population`; the count says how many more.
_PARTNERS_SHOWN = 3


def _run(args: argparse.Namespace) -> int:
    from simkit.memory import keep_freed_memory
    from simkit.pipeline import simulate
    from simkit.scenario import load_scenario

    # A process that ends with the run: reuse what it frees rather than fault in fresh pages
    # (on the whole network about 5 % faster, the draw most; see docs/performance.md).
    keep_freed_memory()

    scenario = load_scenario(args.scenario, args.overrides)
    out = args.out if args.out is not None else Path("runs") / args.scenario.stem
    seed = scenario.seed if args.seed is None else args.seed
    # Replication r of a sweep with seed N: SeedSequence(N).spawn(K)[r], whatever K.
    if args.replication is not None:
        import numpy as np

        seed = np.random.SeedSequence(seed, spawn_key=(args.replication,))
    result = simulate(
        scenario,
        out,
        seed=seed,
        overwrite=args.overwrite,
        engine=args.engine,
        csv=args.csv,
        max_events=args.max_events,
    )
    replication = "" if args.replication is None else f", replication {args.replication}"
    print(
        f"scenario:    {scenario.name} (seed {args.seed if args.seed is not None else scenario.seed}{replication})"
    )
    print(_summary(result))
    print(f"wrote:       {out}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from simkit.errors import SweepError

    if args.workers is not None and args.dask is not None:
        raise SweepError("--workers and --dask: name one (--dask local uses the cores)")
    if args.workers is not None and args.workers > 1:
        _start_forkserver()
    from simkit.sweeps import CHARTED, parse_grid, sweep

    grid = parse_grid(args.grid)
    result = sweep(
        args.scenario,
        grid,
        zipped=args.zip,
        replications=args.replications,
        seed=args.seed,
        out=args.out,
        workers=args.workers,
        dask=args.dask,
        baseline=args.baseline,
        charts=args.metric or CHARTED,
        keep_runs=args.keep_runs,
        resume=args.resume,
        engine=args.engine,
    )
    failed = sum(1 for row in result.runs if row["error"] is not None)
    print(f"points:      {len(result.points):,} x {args.replications:,} replications")
    print(f"runs:        {len(result.runs):,} ({failed:,} failed)")
    print(f"wrote:       {args.out}")
    return 0


def _start_forkserver() -> None:
    """Start the server process that a sweep's workers fork from (:mod:`simkit.sweeps`
    asks for it too; a server already running is reused), now: it imports simkit.sweeps
    while this process does the same, instead of after."""
    import multiprocessing
    import multiprocessing.forkserver

    if "forkserver" in multiprocessing.get_all_start_methods():
        multiprocessing.get_context("forkserver").set_forkserver_preload(["simkit.sweeps"])
        multiprocessing.forkserver.ensure_running()


def _validate(args: argparse.Namespace) -> int:
    from simkit.io.runs import read_demand, read_run, verify_run

    run = read_run(args.run_dir)
    verify_run(args.run_dir)  # outputs and manifest, if any, must belong to these inputs
    demand = read_demand(args.run_dir, run.population)  # simkit's own table, when present
    pop = run.population
    wishes = "" if demand is None else f", {len(demand):,} wish{'' if len(demand) == 1 else 'es'} (demand)"
    if demand is None and (args.run_dir / "demand.parquet").exists():
        wishes = "; demand.parquet ignored: manifest.json does not record it"
    print(
        f"{args.run_dir}: valid: {_count(pop.n_pods, 'pod')}, {_count(pop.n_users, 'user')}, "
        f"{_count(len(pop.crosspod), 'crossPod pair')}, {_count(len(run.policy), 'policy event')}, "
        f"{_count(len(run.events), 'action event')}{wishes}"
    )
    return 0


def _count(n: int, noun: str) -> str:
    """``1 pod``, ``2 pods``, ``1,000 pods``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _population(args: argparse.Namespace) -> int:
    from simkit.pipeline import pod_summaries, population_of

    pop = population_of(args.source, args.overrides)
    pods = pod_summaries(pop, top=args.top)
    pairs = len(pop.crosspod)
    print(
        f"{args.source}: {_count(pop.n_pods, 'pod')}, {_count(pop.n_users, 'user')}, "
        f"{_count(pairs, 'crossPod pair')} at the start"
    )
    rows = [
        (
            str(pod.pod_id),
            pod.name,
            "private" if pod.private else "public",
            f"{pod.users:,}",
            f"{pod.external / pod.users:.0%}" if pod.users else "-",
            f"{len(pod.partners):,}"
            + (": " + ", ".join(pod.partners[:_PARTNERS_SHOWN]) if pod.partners else "")
            + (", ..." if len(pod.partners) > _PARTNERS_SHOWN else ""),
        )
        for pod in pods
    ]
    header = ("pod_id", "name", "kind", "users", "external", "crossPod partners at the start")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [
            cell.rjust(width) if i in (0, 3, 4) else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ]
        print("  ".join([*cells, row[-1]]))
    if len(pods) < pop.n_pods:
        print(f"... and {pop.n_pods - len(pods):,} smaller pods (--top N to list more)")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from simkit.comparison import (
        compare,
        compare_points,
        compare_replications,
        replication_lines,
        summary_lines,
        write_comparison,
        write_replications,
    )
    from simkit.errors import RunDirError, SweepError

    allow = args.allow_different_populations
    if args.points is not None:
        if args.run_b is not None or args.pair:
            raise SweepError("--points: give one sweep folder, and no RUN_B or --pair")
        point_a, point_b = args.points
        over_points = compare_points(args.run_a, point_a, point_b, allow_different_populations=allow)
        labels = [f"{args.run_a} point {p}" for p in args.points]
        print(f"A: {labels[0]}")
        print(f"B: {labels[1]}")
        for line in replication_lines(over_points):
            print(line)
        if args.out is not None:
            write_replications(args.out, over_points, *labels)
            print(f"wrote:       {args.out / 'compare.md'}")
        return 0
    if args.run_b is None:
        raise RunDirError("compare: give RUN_A and RUN_B, or a sweep folder and --points A B")
    result = compare(args.run_a, args.run_b, allow_different_populations=allow)
    replicated = None
    if args.pair:
        runs_a = [args.run_a, *(a for a, _ in args.pair)]
        runs_b = [args.run_b, *(b for _, b in args.pair)]
        replicated = compare_replications(runs_a, runs_b, allow_different_populations=allow)
    for line in summary_lines(result):
        print(line)
    if replicated is not None:
        for line in replication_lines(replicated):
            print(line)
    if args.out is not None:
        write_comparison(args.out, result, replicated)
        print(f"wrote:       {args.out / 'compare.md'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from simkit.drawing import start_server
    from simkit.memory import keep_freed_memory

    # A process that ends with the report: reuse what it frees rather than fault in fresh
    # pages. Set before any thread allocates (the server's below): threads share the heap.
    keep_freed_memory()
    if Path(args.run_dir).is_dir():  # (else the error comes at once)
        # The charts' helpers fork from a server that imports matplotlib beside this process.
        start_server()
    from simkit.report import write_report

    report = write_report(args.run_dir, args.out, outputs=args.outputs, top=args.top, graphml=args.graphml)
    print(report.headline_text())
    print(f"wrote:       {report.summary} and {len(report.files) - 1} more files")
    return 0


def _datafeed_export(args: argparse.Namespace) -> int:
    from simkit.io.datafeed import export_datafeed

    counts = export_datafeed(args.run_dir, args.out)
    by_type = ", ".join(f"{kind} {n:,}" for kind, n in counts.items())
    print(f"datafeed:    {sum(counts.values()):,} events ({by_type})")
    print(f"wrote:       {args.out}")
    return 0


def _datafeed_import(args: argparse.Namespace) -> int:
    from simkit.io.datafeed import import_datafeed

    imported = import_datafeed(args.files, args.population, args.out)
    feed = imported.feed
    print(
        f"read:        {feed.read:,} events: {len(feed.events):,} kept, {feed.duplicates:,} duplicates, "
        f"{feed.other_types:,} of other types ignored"
    )
    print(f"unknown:     {imported.unknown_users:,} events name a user not in the population")
    print(_summary(imported.result))
    print(f"wrote:       {args.out}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    # aiohttp is the serve extra's; it is imported only when this command runs.
    try:
        from simkit.serve import serve
    except ImportError as exc:
        return _fail(f"simkit serve needs the serve extra (pip install 'simkit[serve]'): {exc}")
    users = [u for item in args.bdk_users for u in item.split(",") if u] or None
    if not 0 < args.datafeed_wait <= 3600:
        return _fail(f"--datafeed-wait: expected seconds in (0, 3600], found {args.datafeed_wait:g}")
    return serve(
        args.source,
        host=args.host,
        port=args.port,
        record=args.record,
        clock=args.clock,
        bdk_config=args.bdk_config,
        bdk_users=users,
        datafeed_wait=args.datafeed_wait,
        keys=args.keys,
    )


def _add_replay_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=DEFAULT_ENGINE,
        help="replay engine: columnar (numpy, fast) or event (the per-event reference) (default: %(default)s)",
    )
    p.add_argument("--csv", action="store_true", help="also write outcomes.csv and connections.csv")


def _add_overrides(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"change one knob of the scenario, value in TOML syntax, e.g. --set {example} (repeatable)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simkit",
        description="Simulate and analyse user connections across pods (Symphony Pod API rules).",
    )
    parser.add_argument("--version", action="version", version=f"simkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "replay",
        help="replay a run folder's event log through the connection rules",
        description=(
            "Replay RUN_DIR's events through the connection rules and write outcomes.parquet, "
            "connections.parquet and manifest.json (into RUN_DIR unless --out is given)."
        ),
    )
    p.add_argument(
        "run_dir",
        type=Path,
        metavar="RUN_DIR",
        help="folder with pods, users, crosspod, [policy,] events tables",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write outputs here (created if missing); RUN_DIR is left untouched",
    )
    _add_replay_options(p)
    p.set_defaults(handler=_replay)

    p = sub.add_parser(
        "validate",
        help="check a run folder's input tables without replaying",
        description="Check RUN_DIR's input tables as a replay would, and simkit's own demand.parquet "
        "when present, and write nothing.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="folder with the input tables")
    p.set_defaults(handler=_validate)

    # -- `simkit run` (scenarios: simkit.pipeline.simulate) is added here.
    p = sub.add_parser(
        "run",
        help="generate a scenario's traffic, replay it and write the run folder",
        description=(
            "Generate the pods, users, crossPod policy and traffic described by SCENARIO "
            "(a TOML file, see docs/scenarios.md), replay it through the connection rules, and "
            "write the complete run folder: input tables, outcomes.parquet, connections.parquet "
            "and manifest.json (with the scenario, the seed and the versions). The same "
            "scenario and seed always give byte-identical files."
        ),
    )
    p.add_argument(
        "scenario", type=Path, metavar="SCENARIO", help="scenario file (TOML), e.g. data/scenarios/tiny.toml"
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="run folder to write (default: runs/<scenario file name without .toml>); created if missing",
    )
    p.add_argument(
        "--seed", type=_seed, metavar="N", help="seed of all randomness (default: the scenario's seed)"
    )
    _add_overrides(p, "behaviour.accept=0.6")
    p.add_argument(
        "--replication",
        type=_seed,
        metavar="R",
        help=(
            "draw the traffic as replication R of a sweep with seed N does, "
            "SeedSequence(N).spawn(K)[R]: with the point's --set options, the run behind one row of runs.parquet"
        ),
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in DIR if DIR is not empty (other files are kept)",
    )
    p.add_argument(
        "--max-events",
        type=_positive,
        default=DEFAULT_MAX_EVENTS,
        metavar="N",
        help=(
            "refuse, before drawing anything, a scenario estimated to need more than N events "
            "(default: %(default)s); one estimated to need more memory than the machine has "
            "available is refused whatever N is"
        ),
    )
    _add_replay_options(p)
    p.set_defaults(handler=_run)

    # -- `simkit sweep` (sweeps: simkit.sweeps.sweep).
    p = sub.add_parser(
        "sweep",
        help="run a scenario over a grid of knob values, replicated; summarise with intervals",
        description=(
            "Run SCENARIO at every point of the grid (the product of the --grid options, or with "
            "--zip their values side by side), --replications times each: replication r of every "
            "point draws its traffic from SeedSequence(seed).spawn(K)[r], so the points are "
            "compared with common random numbers. Writes runs.parquet and runs.csv (one row per "
            "run), summary.csv (mean, std, 95% Student-t interval, and the paired difference "
            "from the baseline point), manifest.json and one chart per --metric into DIR. The "
            "same sweep writes the same bytes whatever the executor. See docs/sweeps.md."
        ),
    )
    p.add_argument("scenario", type=Path, metavar="SCENARIO", help="scenario file (TOML)")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        required=True,
        metavar="KEY=VALUES",
        help="a knob and its values as one TOML array, e.g. --grid 'behaviour.accept=[0.5, 0.7]' (repeatable)",
    )
    p.add_argument(
        "--zip", action="store_true", help="pair the --grid values instead of taking their product"
    )
    p.add_argument(
        "--replications", type=_positive, default=1, metavar="K", help="runs per point (default: %(default)s)"
    )
    p.add_argument("--seed", type=_seed, metavar="N", help="the sweep's seed (default: the scenario's seed)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write: new or empty")
    p.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="processes to run on (default: 1, one run after another)",
    )
    p.add_argument(
        "--dask",
        metavar="local|tcp://HOST:PORT",
        help="run on Dask: a local cluster on 127.0.0.1, or a running scheduler (needs simkit[dask])",
    )
    p.add_argument(
        "--baseline", type=_seed, default=0, metavar="INDEX", help="the point compared with (default: 0)"
    )
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="NAME",
        help="chart this metric against the knob (repeatable; default: acceptance_rate, rerequest_rate, cross_pod_share)",
    )
    p.add_argument("--keep-runs", action="store_true", help="also write every run folder under DIR/runs/")
    p.add_argument("--resume", action="store_true", help="continue the sweep in DIR, skipping finished runs")
    p.add_argument(
        "--engine", choices=ENGINES, default=DEFAULT_ENGINE, help="replay engine (default: %(default)s)"
    )
    p.set_defaults(handler=_sweep)

    p = sub.add_parser(
        "compare",
        help="two replayed runs side by side: headline numbers, pod pairs, and their difference",
        description=(
            "Compare the replayed run folders RUN_A and RUN_B (differences are B - A): the "
            "headline numbers of each and their difference; per pod pair the accepted "
            "connections, requests sent and refused answers by reason, ranked by the size of the "
            "difference; and the pod pairs whose events are identical in both runs. With --pair, "
            "runs replicated over seeds, paired by seed, each difference with its 95% Student-t "
            "interval; or, with --points A B, two points of a sweep over their replications. "
            "Runs of different populations are refused. See docs/compare.md."
        ),
    )
    p.add_argument(
        "run_a",
        type=Path,
        metavar="RUN_A",
        help="the run compared with (a replayed run folder), or the sweep folder with --points",
    )
    p.add_argument(
        "run_b", type=Path, nargs="?", metavar="RUN_B", help="the run compared (a replayed run folder)"
    )
    p.add_argument(
        "--points",
        nargs=2,
        type=int,
        metavar=("A", "B"),
        help=(
            "compare points A and B of the sweep folder RUN_A over their replications, paired by "
            "seed (its kept run folders if any, else its runs.parquet)"
        ),
    )
    p.add_argument(
        "--pair",
        nargs=2,
        type=Path,
        action="append",
        default=[],
        metavar=("RUN_A", "RUN_B"),
        help="another replication of A and of B, of the same seed (repeatable)",
    )
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="write compare.md, the tables (CSV) and charts (PNG) here"
    )
    p.add_argument(
        "--allow-different-populations",
        action="store_true",
        help="compare runs of different populations (pod pairs limited to pods present in both)",
    )
    p.set_defaults(handler=_compare)

    # -- `simkit report` (analysis: simkit.report) is added here.
    p = sub.add_parser(
        "report",
        help="charts (PNG) and a one-page summary of a replayed run",
        description=(
            "Read RUN_DIR and its outputs (outcomes.parquet, connections.parquet) and write the "
            "charts of docs/analysis.md as PNG files with report.md, a one-page summary of the "
            "headline numbers: events, answers by code, records by status, acceptance rate, median "
            "time to accept, re-request rate, users connected across pods, and what each crossPod "
            "policy change did. The same run always gives byte-identical files."
        ),
    )
    p.add_argument(
        "run_dir",
        type=Path,
        metavar="RUN_DIR",
        help="a run folder written by `simkit run` or `simkit replay`",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the report here (default: RUN_DIR/report); created if missing",
    )
    p.add_argument(
        "--outputs",
        type=Path,
        metavar="DIR",
        help="folder with outcomes.parquet and connections.parquet, if not RUN_DIR (a replay run with --out)",
    )
    p.add_argument(
        "--top",
        type=_positive,
        default=20,
        metavar="N",
        help=(
            "pods named in the per-pod chart, the heat map and the pod graph: the N largest; the heat map "
            "and the graph gather the rest as 'other' (default: %(default)s)"
        ),
    )
    p.add_argument(
        "--graphml", action="store_true", help="also write users.graphml and pods.graphml (for Gephi)"
    )
    p.set_defaults(handler=_report)

    # -- `simkit population` (simkit.pipeline.population_of) is added here.
    p = sub.add_parser(
        "population",
        help="list the pods of a scenario's population or of a folder, largest first",
        description=(
            "Print the pods of SCENARIO_OR_RUN, largest first: id, name, private or public, users, the "
            "share of users entitled to communicate across pods, and the pods each has crossPod "
            "with at the start (how many, and the largest few by name), so that a what-if can "
            "name the pods it is about. For a scenario the population is drawn from its "
            "population seed without generating traffic, or read from its population.from "
            "folder; a folder (a run folder, or pods, users and crosspod tables) is read and "
            "checked as `simkit validate` checks it."
        ),
    )
    p.add_argument(
        "source",
        type=Path,
        metavar="SCENARIO_OR_RUN",
        help="a scenario file (TOML), a run folder, or a folder of pods, users and crosspod tables",
    )
    p.add_argument(
        "--top",
        type=_positive,
        default=20,
        metavar="N",
        help="list the N largest pods (default: %(default)s)",
    )
    _add_overrides(p, "population.seed=5")
    p.set_defaults(handler=_population)

    # -- `simkit serve` (the Pod API emulator: simkit.serve) is added here.
    p = sub.add_parser(
        "serve",
        help="serve a Pod API emulator (connections, BDK login) that real Symphony clients talk to",
        description=(
            "Serve the connection endpoints of the Pod API (and the BDK's RSA login) over HTTP, "
            "answered by the connection rules one call at a time, starting from SOURCE: a run "
            "folder (its population and the final state of its replay) or a scenario file (its "
            "population). The first line printed is the URL listened on. Without --keys logins "
            "are not verified: any well-formed JWT acts as the user its 'sub' names. See docs/serve.md."
        ),
    )
    p.add_argument(
        "source", type=Path, metavar="RUN_DIR_OR_SCENARIO", help="a run folder or a scenario file (TOML)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument(
        "--port",
        type=_whole_number(0, "a port number (0 picks a free port)"),
        default=8080,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    p.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help=(
            "on SIGINT, SIGTERM or POST /simkit/v1/flush, write the source's log followed by the "
            "session's action calls as a complete run folder DIR (missing or empty at start)"
        ),
    )
    p.add_argument(
        "--clock",
        choices=("wall", "run"),
        default="wall",
        help=(
            "stamp action calls with the wall clock in ms, or the run's clock (one past the "
            "source's last event, then 1 ms per call) (default: %(default)s)"
        ),
    )
    p.add_argument(
        "--bdk-config",
        type=Path,
        metavar="DIR",
        help="write an RSA key pair and a BDK config.yaml per bot into DIR/<username>/ (and DIR/bots.json)",
    )
    p.add_argument(
        "--bdk-users",
        action="append",
        default=[],
        metavar="USER[,USER...]",
        help="usernames or user ids of the bots for --bdk-config (default: a handful who can connect)",
    )
    p.add_argument(
        "--datafeed-wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a datafeed read waits for an event before answering none (default: %(default)g)",
    )
    p.add_argument(
        "--keys",
        type=Path,
        metavar="DIR",
        help=(
            "verify logins: DIR holds a public key per user, USERNAME.pem; a JWT must be RS512, "
            "signed by its 'sub''s key, and not expired (--bdk-config DIR writes DIR/keys)"
        ),
    )
    p.set_defaults(handler=_serve)

    # -- `simkit datafeed export|import` (simkit.io.datafeed) is added here.
    p = sub.add_parser(
        "datafeed",
        help="write a run's datafeed events (JSON lines), or turn a recorded datafeed into a run",
        description=(
            "Convert between run folders and the connection events of a Symphony datafeed "
            "(CONNECTIONREQUESTED, CONNECTIONACCEPTED; see docs/datafeed.md). Rejections and "
            "removals emit no event, so a datafeed cannot show them."
        ),
    )
    feed = p.add_subparsers(dest="datafeed_command", metavar="COMMAND", required=True)
    f = feed.add_parser(
        "export",
        help="write the datafeed events a run's replay emits, one V4Event per line",
        description=(
            "Replay RUN_DIR (with the default engine, whatever outputs it holds) and write the "
            "datafeed events it emits to FILE, one V4Event per line, in apply order: "
            "CONNECTIONREQUESTED for each connect that made a request, CONNECTIONACCEPTED for "
            "each accept that accepted one. The same run always gives the same bytes."
        ),
    )
    f.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder (its input tables are read)")
    f.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        required=True,
        help="the JSON lines file to write, e.g. feed.jsonl (its folder is created if missing)",
    )
    f.set_defaults(handler=_datafeed_export)
    f = feed.add_parser(
        "import",
        help="turn recorded datafeed events into a run folder and replay it",
        description=(
            "Read the CONNECTIONREQUESTED and CONNECTIONACCEPTED events of FILE... (JSON lines of "
            "V4Event, or JSON holding a V5EventList as the read endpoint returns it), and write a "
            "run folder whose events are a connect (or an accept) by each event's initiator, "
            "ordered by timestamp, with the pods, users, crosspod and policy tables of "
            "--population; then replay it, so that `simkit report` works on it at once. Other "
            "event types are ignored and an event seen twice is kept once; both are counted."
        ),
    )
    f.add_argument("files", type=Path, nargs="+", metavar="FILE", help="datafeed files, read in this order")
    f.add_argument(
        "--population",
        type=Path,
        metavar="DIR",
        required=True,
        help="a run folder, or a folder of pods, users and crosspod tables, whose tables are copied",
    )
    f.add_argument(
        "--out",
        type=Path,
        metavar="RUN_DIR",
        required=True,
        help="the run folder to write: new, or empty (created if missing)",
    )
    f.set_defaults(handler=_datafeed_import)
    return parser


def _os_error_text(exc: OSError) -> str:
    """An OSError as ``PATH: what the system says`` (``SOURCE -> TARGET: ...`` for a rename)."""
    names = (exc.filename, exc.filename2)
    where = [n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in names if n is not None]
    what = exc.strerror or str(exc) or type(exc).__name__
    return f"{' -> '.join(where)}: {what}" if where else what


def _fail(text: str) -> int:
    # One line whatever the message holds: a value quoted from a file may hold a line break.
    line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    print(f"simkit: error: {line}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``simkit`` command with `argv` (default: ``sys.argv[1:]``); return its exit code.

    Every failure a user can act on ends here as one line on stderr and exit status 1: a
    :class:`~simkit.errors.SimkitError`, and an OSError (a folder that may not be written,
    a full disk), named by its path.
    """
    args = _parser().parse_args(argv)
    handler: _Handler = args.handler
    try:
        return handler(args)
    except SimkitError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(_os_error_text(exc))
    except KeyboardInterrupt as exc:
        # SIGINT, or SIGTERM / SIGHUP while a folder was written (simkit.io.commit.Interrupted).
        print("simkit: interrupted", file=sys.stderr)
        return 128 + getattr(exc, "signum", 2)


def run() -> None:
    """The ``simkit`` program (and ``python -m simkit``): :func:`main`, then the process ends.

    Once the command is done and its output flushed, the process exits at once: what it
    holds (a report's frames, the modules it imported) goes back to the operating system
    whole, instead of being torn down object by object (0.2 s of a 2 s report). Every file a
    command writes is committed before :func:`main` returns, and no thread or process it
    started outlives it. Call :func:`main` to run a command inside a Python process.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more to tell
            code = code or 1
    os._exit(code)
