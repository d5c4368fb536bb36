"""sweeps: replicated runs over a grid, on any executor, with the same bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import simkit
from simkit import cli, replay, sweeps
from simkit.errors import SweepError
from simkit.io.runs import read_demand, read_run
from simkit.metrics import METRICS, metrics
from simkit.scenario import load_scenario

TINY = "data/scenarios/tiny.toml"
GRID = {"behaviour.rerequest_chance": [0.0, 0.8]}


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serial") / "sweep"
    sweeps.sweep(TINY, GRID, replications=2, out=out, progress=False)
    return out


def test_runs_have_one_row_per_run_and_the_seed_of_their_replication(serial: Path) -> None:
    import pyarrow.parquet as pq

    runs = pq.read_table(serial / "runs.parquet").to_pylist()
    assert [(r["point"], r["replication"], r["spawn_key"]) for r in runs] == [
        (0, 0, "[0]"),
        (0, 1, "[1]"),
        (1, 0, "[0]"),
        (1, 1, "[1]"),
    ]
    columns = list(runs[0])
    assert columns[:5] == ["point", "behaviour.rerequest_chance", "replication", "seed", "spawn_key"]
    assert columns[5:] == [*METRICS, "error"]
    assert {r["seed"] for r in runs} == {load_scenario(TINY).seed}
    assert all(r["error"] is None for r in runs)
    assert runs[0]["rerequest_rate"] < runs[2]["rerequest_rate"]
    manifest = json.loads((serial / "manifest.json").read_text())
    assert manifest["points"][1]["set"] == ["behaviour.rerequest_chance=0.8"]
    assert sorted(manifest["files"]) == sorted(
        ["runs.parquet", "runs.csv", "summary.csv", *(f"{m}.png" for m in sweeps.CHARTED)]
    )
    assert all((serial / name).stat().st_size > 0 for name in manifest["files"])


def test_summary_gives_intervals_and_paired_differences(serial: Path) -> None:
    import pandas as pd

    runs = pd.read_parquet(serial / "runs.parquet")
    summary = pd.read_csv(serial / "summary.csv")
    row = summary[(summary["point"] == 1) & (summary["metric"] == "events")].iloc[0]
    x = runs.loc[runs["point"] == 1, "events"].to_numpy(dtype=float)
    base = runs.loc[runs["point"] == 0, "events"].to_numpy(dtype=float)
    half = sweeps.t_quantile(0.975, 1) * x.std(ddof=1) / 2**0.5
    assert row["mean"] == pytest.approx(x.mean()) and row["n"] == 2 and row["failures"] == 0
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((x.mean() - half, x.mean() + half))
    d = x - base
    d_half = sweeps.t_quantile(0.975, 1) * d.std(ddof=1) / 2**0.5
    assert row["diff_mean"] == pytest.approx(d.mean())
    assert (row["diff_ci_low"], row["diff_ci_high"]) == pytest.approx((d.mean() - d_half, d.mean() + d_half))


def test_same_bytes_on_processes_and_on_a_dask_cluster(serial: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    expected = (serial / "runs.parquet").read_bytes()
    sweeps.sweep(TINY, GRID, replications=2, out=tmp_path / "processes", workers=2, progress=False)
    assert (tmp_path / "processes" / "runs.parquet").read_bytes() == expected
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        sweeps.sweep(TINY, GRID, replications=2, out=tmp_path / "dask", dask=cluster.scheduler_address)
    assert (tmp_path / "dask" / "runs.parquet").read_bytes() == expected
    for name in ("runs.csv", "summary.csv", "manifest.json"):
        assert (tmp_path / "dask" / name).read_bytes() == (serial / name).read_bytes()


def _trim_threshold(population: object, events: object, result: object) -> float:
    """A user metric that tells which malloc trim threshold the worker it ran in was given."""
    import os

    return float(os.environ.get("MALLOC_TRIM_THRESHOLD_", "nan"))


def test_a_local_dask_cluster_of_its_own_keeps_the_workers_malloc_as_it_is(
    serial: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")
    # A Dask nanny started earlier in this process leaves its setting in our environment.
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    result = sweeps.sweep(
        TINY,
        GRID,
        replications=2,
        out=tmp_path / "local",
        dask="local",
        workers=2,
        extra={"trim": _trim_threshold},
        charts=(),
        progress=False,
    )
    # Dask's own default (64 KiB) made each run 1.5x slower; ours leaves glibc's.
    assert all(run["trim"] != run["trim"] for run in result.runs), [run["trim"] for run in result.runs]
    pd = pytest.importorskip("pandas")
    here = pd.read_parquet(tmp_path / "local" / "runs.parquet").drop(columns="trim")
    pd.testing.assert_frame_equal(here, pd.read_parquet(serial / "runs.parquet"))


def test_an_executor_passed_in_python_runs_the_sweep(serial: Path, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        sweeps.sweep(TINY, GRID, replications=2, out=tmp_path / "threads", executor=pool)
    assert (tmp_path / "threads" / "runs.parquet").read_bytes() == (serial / "runs.parquet").read_bytes()


def test_replications_share_their_seed_across_points() -> None:
    # Two points with the same knob value: common random numbers make their runs identical,
    # replication by replication, while the replications differ from one another.
    result = simkit.sweep(TINY, {"behaviour.accept": [0.65, 0.65]}, replications=2)
    first, second = ([{k: r[k] for k in METRICS} for r in result.runs if r["point"] == p] for p in (0, 1))
    assert first == second
    assert first[0] != first[1]
    zero = next(s for s in result.summary if s["point"] == 1 and s["metric"] == "events")
    assert (zero["diff_mean"], zero["diff_ci_low"], zero["diff_ci_high"]) == (0.0, 0.0, 0.0)


def test_the_population_stays_put_unless_the_grid_names_its_seed() -> None:
    result = simkit.sweep(TINY, {"population.seed": [7, 8]}, replications=1)
    assert result.runs[0]["implicit_pairs"] != result.runs[1]["implicit_pairs"]
    same = simkit.sweep(TINY, {"behaviour.mistakes_per_user_per_day": [0.0]}, replications=2)
    assert same.runs[0]["implicit_pairs"] == same.runs[1]["implicit_pairs"]


def test_a_failing_point_is_recorded_and_the_others_complete(tmp_path: Path) -> None:
    bad = [[], [{"day": 3, "enable_pairs": [["firm-01", "no-such-pod"]]}]]
    result = sweeps.sweep(TINY, {"crosspod.changes": bad}, replications=2, out=tmp_path / "s")
    assert [r["error"] is None for r in result.runs] == [True, True, False, False]
    assert "no-such-pod" in result.runs[2]["error"] and "\n" not in result.runs[2]["error"]
    assert result.runs[2]["events"] is None
    failing = next(s for s in result.summary if s["point"] == 1 and s["metric"] == "events")
    assert failing["failures"] == 2 and failing["n"] == 0
    table = result.runs_frame()
    assert table["error"].notna().tolist() == [False, False, True, True]


def test_resume_runs_only_what_is_missing_and_an_interrupt_leaves_no_output(
    serial: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    run = sweeps._run

    def interrupted(job: Any) -> dict[str, Any]:
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append((job.point, job.replication))
        return run(job)

    out = tmp_path / "s"
    monkeypatch.setattr(sweeps, "_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweeps.sweep(TINY, GRID, replications=2, out=out)
    assert sorted(p.name for p in out.iterdir()) == [".sweep"]  # no half-written output
    with pytest.raises(SweepError, match="not empty"):
        sweeps.sweep(TINY, GRID, replications=2, out=out)
    with pytest.raises(SweepError, match="another sweep"):
        sweeps.sweep(TINY, GRID, replications=3, out=out, resume=True)
    monkeypatch.setattr(sweeps, "_run", lambda job: calls.append((job.point, job.replication)) or run(job))
    sweeps.sweep(TINY, GRID, replications=2, out=out, resume=True)
    assert calls == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert (out / "runs.parquet").read_bytes() == (serial / "runs.parquet").read_bytes()
    sweeps.sweep(TINY, GRID, replications=2, out=out, resume=True)  # finished: nothing runs
    assert len(calls) == 4


def test_one_row_reruns_alone_with_simkit_run(
    serial: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow.parquet as pq

    row = pq.read_table(serial / "runs.parquet").to_pylist()[3]
    point = json.loads((serial / "manifest.json").read_text())["points"][row["point"]]
    args = ["run", TINY, "--out", str(tmp_path / "one"), "--seed", str(row["seed"])]
    args += ["--replication", str(row["replication"])]
    args += [a for knob in point["set"] for a in ("--set", knob)]
    assert cli.main(args) == 0
    assert "replication 1" in capsys.readouterr().out
    run = read_run(tmp_path / "one")
    assert json.loads((tmp_path / "one" / "manifest.json").read_text())["seed_sequence"] == {
        "entropy": row["seed"],
        "spawn_key": json.loads(row["spawn_key"]),
    }
    result = replay(run.population, run.events, run.policy)
    demand = read_demand(tmp_path / "one")
    assert metrics(run.population, run.events, result, demand=demand) == {k: row[k] for k in METRICS}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--grid", "behaviour.acept=[0.5]"],
            "behaviour.acept: expected a known key (did you mean 'accept'?)",
        ),
        (
            ["--grid", "behaviour.accept=0.5"],
            "--grid behaviour.accept=0.5: expected KEY=VALUES with VALUES a TOML array",
        ),
        (["--grid", "behaviour.accept=[0.5"], "expected KEY=VALUES with VALUES a TOML array"),
        (["--grid", "behaviour.accept=['x']"], "behaviour.accept: expected a number, found text 'x'"),
        (
            ["--grid", "behaviour.accept=[0.5, 0.6]", "--grid", "behaviour.ignore=[0.3]", "--zip"],
            "--zip: every --grid needs as many values (behaviour.accept has 2, behaviour.ignore has 1)",
        ),
        (
            ["--grid", "behaviour.accept=[0.65]", "--baseline", "1"],
            "--baseline 1: expected a point from 0 to 0",
        ),
        (
            ["--grid", "behaviour.accept=[0.65]", "--metric", "acceptance"],
            "--metric acceptance: expected one of",
        ),
        (
            ["--grid", "behaviour.accept=[0.65]", "--dask", "tcp://127.0.0.1:9"],
            "cannot reach a Dask scheduler",
        ),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_written(
    options: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if "--dask" in options:
        pytest.importorskip("distributed")
        monkeypatch.setattr(sweeps, "_DASK_TIMEOUT_S", 1.0)
    out = tmp_path / "sweep"
    assert cli.main(["sweep", TINY, *options, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("simkit: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


# -- the charts ---------------------------------------------------------------------------------


def test_a_zipped_sweep_is_charted_against_its_first_knob_and_a_product_by_named_points() -> None:
    zipped = sweeps.sweep(
        TINY,
        {"behaviour.rerequest_chance": [0.2, 0.8], "behaviour.remove_per_year": [0.1, 0.3]},
        zipped=True,
        replications=2,
        progress=False,
    )
    ax = sweeps._figure(zipped, "acceptance_rate", 0).axes[0]
    assert ax.get_xlabel() == "behaviour.rerequest_chance\n(behaviour.remove_per_year moving with it)"
    assert list(ax.get_xticks()) == [0.2, 0.8]
    assert (
        ax.get_ylabel() == "acceptance_rate (share)"
        and ax.get_title() == "acceptance_rate by behaviour.rerequest_chance"
    )
    product = sweeps.sweep(
        TINY,
        {"behaviour.rerequest_chance": [0.2, 0.8], "crosspod.changes": [[], [{"day": 3, "pods": 2}]]},
        replications=2,
        progress=False,
    )
    ax = sweeps._figure(product, "acceptance_rate", 1).axes[0]
    assert ax.get_xlabel() == "point (behaviour.rerequest_chance, crosspod.changes)"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:2] == ["0.2\n[]", "0.2\n[{day = 3, pods =…"]


def test_writing_a_sweeps_charts_leaves_the_callers_matplotlib_backend_alone(tmp_path: Path) -> None:
    code = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import matplotlib.pyplot\n"
        "from simkit import sweeps\n"
        f"sweeps.sweep({TINY!r}, {GRID!r}, replications=2, out={str(tmp_path / 's')!r}, progress=False)\n"
        "print(matplotlib.get_backend())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["svg"]
    assert (tmp_path / "s" / "acceptance_rate.png").read_bytes()[:4] == b"\x89PNG"
