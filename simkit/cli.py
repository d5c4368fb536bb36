"""`cli`: the ``simkit`` command, a thin shell over the Python API.

One sub-command per job; each parses its options, calls one function of the package and
prints a short summary. A :class:`~simkit.errors.SimkitError` becomes one line on stderr and
exit status 1, never a traceback; bad usage exits 2 (argparse's convention).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from simkit.engines import DEFAULT_ENGINE, ENGINES
from simkit.errors import SimkitError
from simkit.results import Replay
from simkit.version import __version__

__all__ = ["main"]

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
    from simkit.pipeline import replay_run

    result = replay_run(args.run_dir, args.out, engine=args.engine, csv=args.csv)
    print(_summary(result))
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


def _run(args: argparse.Namespace) -> int:
    from simkit.pipeline import simulate
    from simkit.scenario import load_scenario

    scenario = load_scenario(args.scenario, args.overrides)
    out = args.out if args.out is not None else Path("runs") / args.scenario.stem
    seed = scenario.seed if args.seed is None else args.seed
    result = simulate(scenario, out, seed=seed, overwrite=args.overwrite, engine=args.engine, csv=args.csv)
    print(f"scenario:    {scenario.name} (seed {seed})")
    print(_summary(result))
    print(f"wrote:       {out}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from simkit.io.runs import read_run

    run = read_run(args.run_dir)
    pop = run.population
    print(
        f"{args.run_dir}: valid: {pop.n_pods:,} pods, {pop.n_users:,} users, "
        f"{len(pop.crosspod):,} crossPod pairs, {len(run.policy):,} policy events, "
        f"{len(run.events):,} action events"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from simkit.report import write_report

    report = write_report(args.run_dir, args.out, outputs=args.outputs, top=args.top, graphml=args.graphml)
    print(report.headline_text())
    print(f"wrote:       {report.summary} and {len(report.files) - 1} more files")
    return 0


def _add_replay_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=DEFAULT_ENGINE,
        help="replay engine: columnar (numpy, fast) or event (the per-event reference) (default: %(default)s)",
    )
    p.add_argument("--csv", action="store_true", help="also write outcomes.csv and connections.csv")


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
        description="Check RUN_DIR's input tables as a replay would, and write nothing.",
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
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one knob, value in TOML syntax, e.g. --set behaviour.accept=0.6 (repeatable)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in DIR if DIR is not empty (other files are kept)",
    )
    _add_replay_options(p)
    p.set_defaults(handler=_run)

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
        help="pods in the per-pod chart and the heat map: the N largest (default: %(default)s)",
    )
    p.add_argument(
        "--graphml", action="store_true", help="also write users.graphml and pods.graphml (for Gephi)"
    )
    p.set_defaults(handler=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``simkit`` command with `argv` (default: ``sys.argv[1:]``); return its exit code."""
    args = _parser().parse_args(argv)
    handler: _Handler = args.handler
    try:
        return handler(args)
    except SimkitError as exc:
        print(f"simkit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("simkit: interrupted", file=sys.stderr)
        return 130
