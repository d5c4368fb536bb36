"""Wall time and peak memory of `simkit run` for the bundled scenarios.

Each run is a fresh process (``python -m simkit run SCENARIO --out TMP``), measured from
outside: wall time from start to exit; CPU time (user + system) and peak resident memory
from the kernel's accounting of that process (``os.wait4``). On a shared machine the wall
time grows with the load, the CPU time much less. By default every bundled scenario except ``whole-network`` is
run (replaying it through the per-event engine would take many minutes); with
``--whole-network-generation`` the generation of ``whole-network.toml`` alone is measured too,
in its own process.

Usage::

    python benchmarks/bench_scenarios.py                       # tiny, baseline, crosspod-rollout
    python benchmarks/bench_scenarios.py --engine columnar
    python benchmarks/bench_scenarios.py --scenario baseline --whole-network-generation
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "data" / "scenarios"
SKIPPED = {"whole-network"}

_GENERATE_ONLY = """
import sys
from simkit.generate import generate
from simkit.scenario import load_scenario
_, events, policy = generate(load_scenario(sys.argv[1]))
print(len(events))
"""


def _measure(command: list[str]) -> dict[str, float | str]:
    """Run `command`; return its wall and CPU seconds, peak RSS in MB and stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}")
    # ru_maxrss is in kilobytes on Linux.
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "out": out,
    }


def bench_run(name: str, engine: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / name
        command = [sys.executable, "-m", "simkit", "run", str(SCENARIOS / f"{name}.toml"), "--out", str(out)]
        row = _measure([*command, "--engine", engine])
        events = json.loads((out / "manifest.json").read_text())["summary"]["events"]
    return {**row, "what": f"simkit run {name}.toml --engine {engine}", "events": events}


def bench_generation(name: str) -> dict[str, object]:
    row = _measure([sys.executable, "-c", _GENERATE_ONLY, str(SCENARIOS / f"{name}.toml")])
    return {**row, "what": f"generate({name}.toml) only", "events": int(str(row["out"]))}


def main() -> None:
    bundled = sorted(p.stem for p in SCENARIOS.glob("*.toml"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["event", "columnar"], default="event")
    parser.add_argument("--scenario", action="append", choices=bundled, help="only these (repeatable)")
    parser.add_argument(
        "--whole-network-generation", action="store_true", help="also time generating whole-network.toml"
    )
    args = parser.parse_args()
    names = args.scenario or [n for n in bundled if n not in SKIPPED]
    print(f"# Python {platform.python_version()}, {os.cpu_count()} cores, engine {args.engine}")
    print(f"{'what':<52} {'events':>12} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}")
    rows = [bench_run(n, args.engine) for n in names]
    if args.whole_network_generation:
        rows.append(bench_generation("whole-network"))
    for row in rows:
        print(
            f"{row['what']:<52} {row['events']:>12,} {row['wall_s']:>8.2f} {row['cpu_s']:>8.2f} "
            f"{row['peak_rss_mb']:>12,.0f}"
        )


if __name__ == "__main__":
    main()
