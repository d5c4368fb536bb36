"""`simkit report` against `simkit run` of the same scenario, both as whole processes.

Each command runs in a fresh process, timed from start to exit (interpreter start, imports,
reading, computing, writing), best of ``--repeat`` runs; peak memory is the RSS of the
process tree (see ``measure.py``)::

    python -m simkit run data/scenarios/baseline.toml --out RUN --overwrite
    python -m simkit report RUN --out REPORT

and prints both times and the ratio report / run (the target of issue 15: at most 3 on
``baseline``)::

    python benchmarks/bench_report.py                              # baseline, best of 3
    python benchmarks/bench_report.py --scenario data/scenarios/tiny.toml --repeat 1
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import tempfile
from pathlib import Path

from measure import Process, run_process

GB = 1e9


def _best(command: list[str], repeat: int) -> Process:
    """The fastest of `repeat` runs of `command`; stops at the first failure."""
    best: Process | None = None
    for _ in range(repeat):
        done = run_process(command)
        if done.returncode:
            sys.exit(f"bench_report: `{shlex.join(command)}` exited with {done.returncode}")
        if best is None or done.seconds < best.seconds:
            best = done
    assert best is not None
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="data/scenarios/baseline.toml")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        run_dir, report_dir = Path(tmp) / "run", Path(tmp) / "report"
        run_cmd = [sys.executable, "-m", "simkit", "run", args.scenario, "--out", str(run_dir), "--overwrite"]
        report_cmd = [sys.executable, "-m", "simkit", "report", str(run_dir), "--out", str(report_dir)]
        run = _best(run_cmd, args.repeat)
        report = _best(report_cmd, args.repeat)
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"scenario: {args.scenario}, best of {args.repeat}")
    for name, done in (("simkit run", run), ("simkit report", report)):
        print(f"{name:<14} {done.seconds:7.2f} s   peak RSS {done.peak_rss / GB:5.2f} GB")
    print(f"report / run:  {report.seconds / run.seconds:7.2f}x   (target: at most 3x on baseline)")


if __name__ == "__main__":
    main()
