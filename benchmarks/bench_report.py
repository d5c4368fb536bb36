"""`simkit report` against `simkit run` of the same scenario, both as whole processes.

Each command runs in a fresh process, timed from start to exit (interpreter start, imports,
reading, computing, writing); runs and reports alternate (run, report, run, report...) so
that a change in the machine's load falls on both, and the best of ``--repeat`` of each is
kept. Peak memory is the RSS of the process tree (see ``measure.py``; the report's helper
process that draws some of its charts counts); CPU time is user + system of the process and
its children::

    python -m simkit run SCENARIO --out RUN --overwrite
    python -m simkit report RUN --out REPORT

It prints both times and the ratio report / run (the targets of issue 15: at most 3 on
``baseline``; at most 1.2, and at most 10 GB, on the whole network)::

    python benchmarks/bench_report.py                              # baseline, best of 3
    python benchmarks/bench_report.py --scenario data/scenarios/tiny.toml --repeat 1
    python benchmarks/bench_report.py \\
        --scenario data/scenarios/whole-network.toml --repeat 1    # 2 GB of files, 10 GB, ~3 min

The run folder goes to a temporary folder (``--tmp`` to choose where), removed at the end.
"""

from __future__ import annotations

import argparse
import platform
import resource
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from measure import Process, run_process

GB = 1e9
TARGETS = {"baseline": "at most 3x", "whole-network": "at most 1.2x and 10 GB"}


@dataclass
class Best:
    """The fastest run of one command so far, and its CPU time."""

    done: Process | None = None
    cpu: float = 0.0

    def add(self, command: list[str]) -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = run_process(command)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode:
            sys.exit(f"bench_report: `{shlex.join(command)}` exited with {done.returncode}")
        if self.done is None or done.seconds < self.done.seconds:
            self.done = done
            self.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="data/scenarios/baseline.toml")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tmp", default=None, help="where to put the run folder (default: the system's)")
    args = parser.parse_args(argv)
    run, report = Best(), Best()
    with tempfile.TemporaryDirectory(prefix="bench-report-", dir=args.tmp) as tmp:
        run_dir, report_dir = Path(tmp) / "run", Path(tmp) / "report"
        run_cmd = [sys.executable, "-m", "simkit", "run", args.scenario, "--out", str(run_dir), "--overwrite"]
        report_cmd = [sys.executable, "-m", "simkit", "report", str(run_dir), "--out", str(report_dir)]
        for _ in range(args.repeat):
            run.add(run_cmd)
            report.add(report_cmd)
    assert run.done is not None and report.done is not None
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"scenario: {args.scenario}, best of {args.repeat}")
    for name, best in (("simkit run", run), ("simkit report", report)):
        assert best.done is not None
        print(
            f"{name:<14} {best.done.seconds:7.2f} s   CPU {best.cpu:7.2f} s   "
            f"peak RSS {best.done.peak_rss / GB:5.2f} GB"
        )
    target = TARGETS.get(Path(args.scenario).stem, "none stated")
    print(
        f"report / run:  {report.done.seconds / run.done.seconds:7.2f}x   "
        f"(CPU {report.cpu / run.cpu:.2f}x; target: {target})"
    )
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))


if __name__ == "__main__":
    main()
