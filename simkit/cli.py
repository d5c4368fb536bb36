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

from simkit import __version__
from simkit.errors import SimkitError
from simkit.results import Replay

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
    from simkit.runs import replay_run

    result = replay_run(args.run_dir, args.out, engine=args.engine, csv=args.csv)
    print(_summary(result))
    print(f"wrote:       {args.out or args.run_dir}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from simkit.runs import read_run

    run = read_run(args.run_dir)
    pop = run.population
    print(
        f"{args.run_dir}: valid: {pop.n_pods:,} pods, {pop.n_users:,} users, "
        f"{len(pop.crosspod):,} crossPod pairs, {len(run.policy):,} policy events, "
        f"{len(run.events):,} action events"
    )
    return 0


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
    p.add_argument(
        "--engine",
        choices=["event", "columnar"],
        default="event",
        help="replay engine (default: %(default)s)",
    )
    p.add_argument("--csv", action="store_true", help="also write outcomes.csv and connections.csv")
    p.set_defaults(handler=_replay)

    p = sub.add_parser(
        "validate",
        help="check a run folder's input tables without replaying",
        description="Check RUN_DIR's input tables as a replay would, and write nothing.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="folder with the input tables")
    p.set_defaults(handler=_validate)

    # -- `simkit run` (scenarios: simkit.generate) is added here.

    # -- `simkit report` (analysis: simkit.report) is added here.
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
