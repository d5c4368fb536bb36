"""compare: two runs side by side, their difference per pod pair, and over replications."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import simkit
from simkit import cli
from simkit.comparison import compare, compare_replications, write_comparison
from simkit.errors import RunDirError
from simkit.metrics import DEMAND, METRICS
from simkit.pipeline import replay_run

PODS = "pod_id,name,private\n10,bank,true\n20,fund,true\n30,firm,true\n"
USERS = "user_id,pod_id,external\n101,10,true\n102,10,true\n201,20,true\n301,30,true\n"
CROSSPOD = "pod_a,pod_b\n10,20\n"
# bank-fund may connect from the start; bank-firm only where the policy opens it.
EVENTS = (
    "ts,actor,target,action\n"
    "1000,101,201,connect\n"
    "2000,201,101,accept\n"
    "3000,101,301,connect\n"
    "4000,301,101,accept\n"
    "5000,102,101,connect\n"
)


def _run(folder: Path, policy: str | None = None, users: str = USERS) -> Path:
    folder.mkdir()
    for name, text in (("pods", PODS), ("users", users), ("crosspod", CROSSPOD), ("events", EVENTS)):
        (folder / f"{name}.csv").write_text(text)
    if policy is not None:
        (folder / "policy.csv").write_text(policy)
    replay_run(folder)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("compare")
    # B opens bank-firm before any event: the two connects there succeed instead of a 403 each.
    return _run(root / "a"), _run(root / "b", "ts,pod_a,pod_b,crosspod\n500,10,30,true\n")


def test_the_headline_numbers_and_their_difference_are_exact(runs: tuple[Path, Path]) -> None:
    head = compare(*runs).headline
    assert list(head.index) == list(METRICS)
    # Neither run holds its demand: its metrics are there, and NaN.
    assert head.loc[list(DEMAND)].isna().all().all()
    changed = head[head["difference"].fillna(0) != 0]
    assert changed.to_dict("index") == {
        "answers_200": {"a": 3.0, "b": 5.0, "difference": 2.0},
        "answers_403": {"a": 2.0, "b": 0.0, "difference": -2.0},
        "reason_crosspod_disabled": {"a": 2.0, "b": 0.0, "difference": -2.0},
        "records_accepted": {"a": 1.0, "b": 2.0, "difference": 1.0},
        "requests": {"a": 1.0, "b": 2.0, "difference": 1.0},
        "cross_pod_share": {"a": 0.5, "b": 0.75, "difference": 0.25},
    }


def test_the_pod_pairs_are_exact_and_ranked_by_the_difference(runs: tuple[Path, Path]) -> None:
    result = compare(*runs)
    pairs = result.pairs
    assert list(pairs.index) == [("bank", "firm"), ("bank", "bank"), ("bank", "fund")]
    cols = [
        "accepted_a",
        "accepted_b",
        "accepted_diff",
        "requests_sent_a",
        "requests_sent_b",
        "requests_sent_diff",
    ]
    assert pairs[cols].to_numpy().tolist() == [[0, 1, 1, 1, 1, 0], [0, 0, 0, 1, 1, 0], [1, 1, 0, 1, 1, 0]]
    refused = pairs.loc[("bank", "firm"), ["refused_crosspod_disabled_a", "refused_crosspod_disabled_b"]]
    assert list(refused) == [2, 0]
    assert pairs.loc[("bank", "firm"), "refused_crosspod_disabled_diff"] == -2
    other = [c for c in pairs.columns if c.startswith("refused_") and "crosspod_disabled" not in c]
    assert int(pairs[other].abs().to_numpy().sum()) == 0
    assert result.differ == [("bank", "firm")]
    assert result.identical == [("bank", "bank"), ("bank", "fund")]


def test_identical_runs_give_zero_differences_and_every_pair_identical(runs: tuple[Path, Path]) -> None:
    for run in runs:
        result = compare(run, run)
        assert float(result.headline["difference"].abs().sum()) == 0.0
        diffs = result.pairs[[c for c in result.pairs.columns if c.endswith("_diff")]]
        assert int(diffs.abs().to_numpy().sum()) == 0
        assert result.differ == []
        assert len(result.identical) == 3


def test_different_populations_are_refused_unless_allowed(tmp_path: Path, runs: tuple[Path, Path]) -> None:
    other = _run(tmp_path / "other", users=USERS + "302,30,true\n")
    with pytest.raises(RunDirError, match="the populations differ"):
        compare(runs[0], other)
    result = compare(runs[0], other, allow_different_populations=True)
    assert result.note is not None and "pods present in both" in result.note
    assert {p for pair in result.pairs.index for p in pair} <= {"bank", "fund", "firm"}


def test_a_folder_that_does_not_match_its_manifest_is_refused(
    tmp_path: Path, runs: tuple[Path, Path]
) -> None:
    edited = _run(tmp_path / "edited")
    (edited / "events.csv").write_text(EVENTS.replace("5000", "6000"))
    with pytest.raises(RunDirError, match="changed since"):
        compare(runs[0], edited)


def test_the_interval_over_replications_matches_a_hand_computation(runs: tuple[Path, Path]) -> None:
    a, b = runs
    # records_accepted differs by 1, 0 and 0 over the three pairs.
    result = compare_replications([a, a, b], [b, a, b])
    row = result.table.loc["records_accepted"]
    mean = 1 / 3
    std = math.sqrt(((1 - mean) ** 2 + 2 * mean**2) / 2)
    half = 4.302652729911275 * std / math.sqrt(3)  # t(0.975, 2 degrees of freedom), from tables
    assert row["diff_mean"] == pytest.approx(mean)
    assert row["diff_ci_low"] == pytest.approx(mean - half)
    assert row["diff_ci_high"] == pytest.approx(mean + half)
    assert row["n"] == 3
    assert row["mean_a"] == pytest.approx(4 / 3) and row["mean_b"] == pytest.approx(5 / 3)
    with pytest.raises(RunDirError, match="as many of each"):
        compare_replications([a, a], [b])


def test_the_files_written(tmp_path: Path, runs: tuple[Path, Path]) -> None:
    out = tmp_path / "out"
    written = write_comparison(out, compare(*runs))
    assert sorted(p.name for p in written) == sorted(p.name for p in out.iterdir())
    assert {"compare.md", "headline.csv", "pairs.csv", "status_timelines.png"} <= {p.name for p in written}
    pairs_csv = (out / "pairs.csv").read_text().splitlines()
    assert pairs_csv[0].startswith("pod_a,pod_b,accepted_a,accepted_b,accepted_diff,")
    assert pairs_csv[1].startswith("bank,firm,0,1,1,1,1,0,")
    text = (out / "compare.md").read_text()
    assert "| records_accepted | 1 | 2 | +1 |" in text
    assert "| bank – firm | 0 | 1 | +1 | 1 | 1 | +0 | -2 |" in text


def test_the_command(tmp_path: Path, runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert cli.main(["compare", str(runs[0]), str(runs[1]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "records_accepted: 1 -> 2 (+1)" in printed
    assert "pod pairs: 1 differ, 2 identical" in printed
    assert (out / "compare.md").is_file()
    assert cli.main(["compare", str(runs[0]), str(runs[1]), "--pair", str(runs[0]), str(runs[0])]) == 0
    assert "records_accepted: +0.5 [" in capsys.readouterr().out


def test_the_command_refuses_different_populations_in_one_line(
    tmp_path: Path, runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    other = _run(tmp_path / "other", users=USERS + "302,30,true\n")
    out = tmp_path / "out"
    assert cli.main(["compare", str(runs[0]), str(other), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("simkit: error: ")
    assert "--allow-different-populations" in captured.err
    assert not out.exists()


def test_the_package_names_compare(runs: tuple[Path, Path]) -> None:
    assert simkit.compare(*runs).differ == [("bank", "firm")]
    assert simkit.compare(*runs).headline.equals(compare(*runs).headline)


TINY = Path("data/scenarios/tiny.toml")
GRID = {"behaviour.rerequest_chance": [0.0, 0.8]}


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same sweep of 2 points x 2 replications, with and without its run folders kept."""
    from simkit.sweeps import sweep

    root = tmp_path_factory.mktemp("sweeps")
    sweep(TINY, GRID, replications=2, out=root / "kept", keep_runs=True, progress=False)
    sweep(TINY, GRID, replications=2, out=root / "rows", progress=False)
    return root / "kept", root / "rows"


def test_two_sweep_points_are_compared_over_their_replications(sweeps: tuple[Path, Path]) -> None:
    import pandas as pd

    from simkit.comparison import compare_points
    from simkit.sweeps import interval

    kept, rows = sweeps
    from_folders, from_rows = compare_points(kept, 0, 1), compare_points(rows, 0, 1)
    assert (from_folders.source, from_rows.source) == ("run folders", "runs.parquet")
    # The run folders, replayed and measured again, give the numbers the sweep wrote.
    pd.testing.assert_frame_equal(from_folders.table, from_rows.table)
    pd.testing.assert_frame_equal(from_folders.runs, from_rows.runs)
    # Paired by replication, against the sweep's own rows.
    table = pd.read_parquet(rows / "runs.parquet").set_index(["point", "replication"])
    diffs = [float(table.at[(1, r), "requests"] - table.at[(0, r), "requests"]) for r in (0, 1)]
    mean, _, low, high, n = interval(diffs)
    row = from_rows.table.loc["requests"]
    assert (row["diff_mean"], row["diff_ci_low"], row["diff_ci_high"], row["n"]) == (mean, low, high, n)
    assert row["mean_a"] == table.loc[0, "requests"].mean()
    assert n == 2 and diffs[0] != diffs[1]
    # A point against itself: no difference.
    assert float(compare_points(rows, 1, 1).table["diff_mean"].abs().sum()) == 0.0


def test_the_command_compares_sweep_points(
    tmp_path: Path, sweeps: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli.main(["compare", str(sweeps[1]), "--points", "0", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "over 2 replications, from runs.parquet (mean B - A, 95% interval):" in printed
    assert "  rerequest_rate: +" in printed
    assert "per crossPod stage: not from runs.parquet (sweep with --keep-runs" in printed
    assert sorted(p.name for p in out.iterdir()) == ["compare.md", "replications.csv"]
    assert "Computed from: runs.parquet." in (out / "compare.md").read_text()
    assert cli.main(["compare", str(sweeps[0]), "--points", "1", "0"]) == 0
    assert "from run folders" in capsys.readouterr().out
    assert cli.main(["compare", str(sweeps[1]), str(sweeps[0]), "--points", "0", "1"]) == 1
    assert (
        capsys.readouterr().err == "simkit: error: --points: give one sweep folder, and no RUN_B or --pair\n"
    )


@pytest.mark.parametrize(
    ("which", "points", "message"),
    [
        ("run", ["0", "1"], "not a sweep folder"),
        ("rows", ["0", "2"], "point B = 2: expected a point from 0 to 1"),
        ("rows", ["-1", "0"], "point A = -1"),
        ("single", ["0", "1"], "an interval needs at least 2"),
        ("edited", ["0", "1"], "does not match manifest.json"),
    ],
)
def test_the_command_refuses_bad_sweep_points_in_one_line(
    tmp_path: Path,
    sweeps: tuple[Path, Path],
    runs: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    which: str,
    points: list[str],
    message: str,
) -> None:
    import shutil

    from simkit.sweeps import sweep

    folder = {"run": runs[0], "rows": sweeps[1]}.get(which, tmp_path / which)
    if which == "single":
        sweep(TINY, GRID, replications=1, out=folder, progress=False)
    elif which == "edited":
        shutil.copytree(sweeps[1], folder)
        (folder / "runs.parquet").write_bytes((folder / "runs.parquet").read_bytes() + b"\0")
    out = tmp_path / "out"
    assert cli.main(["compare", str(folder), "--points", *points, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("simkit: error: ")
    assert message in captured.err
    assert not out.exists()


# -- demand and crossPod stages -----------------------------------------------------------------

DAY = 86_400_000
T0 = 19_675 * DAY  # 2023-11-14, midnight UTC
HOUR = DAY // 24
STAGED_EVENTS = {
    # Both runs: bank-fund connect and accept on day 0; a refused try at bank-firm on day 1.
    # Only B opens bank-firm, at day 2: the day-1 wish waits and is sent at day 2 + 12 h, and
    # the day-3 wish is sent (and accepted) where A's is refused.
    "a": [
        (T0 + HOUR, 101, 201, "connect"),
        (T0 + 2 * HOUR, 201, 101, "accept"),
        (T0 + DAY, 101, 301, "connect"),
        (T0 + 3 * DAY, 102, 301, "connect"),
    ],
    "b": [
        (T0 + HOUR, 101, 201, "connect"),
        (T0 + 2 * HOUR, 201, 101, "accept"),
        (T0 + DAY, 101, 301, "connect"),
        (T0 + 2 * DAY + 12 * HOUR, 101, 301, "connect"),
        (T0 + 3 * DAY, 102, 301, "connect"),
        (T0 + 3 * DAY + HOUR, 301, 102, "accept"),
    ],
}
STAGED_DEMAND = {
    "a": [
        (T0 + HOUR, 101, 201, "sent", T0 + HOUR),
        (T0 + DAY, 101, 301, "blocked", None),
        (T0 + 3 * DAY, 102, 301, "blocked", None),
        (T0 + 3 * DAY + 2 * HOUR, 201, 301, "dropped", None),
    ],
    "b": [
        (T0 + HOUR, 101, 201, "sent", T0 + HOUR),
        (T0 + DAY, 101, 301, "deferred", T0 + 2 * DAY + 12 * HOUR),
        (T0 + 3 * DAY, 102, 301, "sent", T0 + 3 * DAY),
        (T0 + 3 * DAY + 2 * HOUR, 201, 301, "dropped", None),
    ],
}


def _staged_run(folder: Path, name: str, demand: bool = True) -> Path:
    """A run folder of PODS/USERS/CROSSPOD with the log of `name` ("a" or "b"; b opens
    bank-firm at day 2) and, if asked, its demand, recorded by its manifest as a synthetic
    run's is."""
    from simkit.engines import replay
    from simkit.events import Demand
    from simkit.io.commit import RunFolderTransaction
    from simkit.io.runs import read_run, write_demand, write_outputs

    folder.mkdir()
    rows = "".join(f"{t},{x},{y},{act}\n" for t, x, y, act in STAGED_EVENTS[name])
    for table, text in (("pods", PODS), ("users", USERS), ("crosspod", CROSSPOD)):
        (folder / f"{table}.csv").write_text(text)
    (folder / "events.csv").write_text("ts,actor,target,action\n" + rows)
    if name == "b":
        (folder / "policy.csv").write_text(f"ts,pod_a,pod_b,crosspod\n{T0 + 2 * DAY},10,30,true\n")
    run = read_run(folder)
    result = replay(run.population, run.events, run.policy)
    with RunFolderTransaction(folder, "test") as txn:
        if demand:
            write_demand(txn, Demand.from_records(STAGED_DEMAND[name]))
        write_outputs(txn, run, result)
        txn.commit(last="manifest.json")
    return folder


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("staged")
    return _staged_run(root / "a", "a"), _staged_run(root / "b", "b")


def test_the_headline_gains_the_demand_and_its_difference(staged: tuple[Path, Path]) -> None:
    head = compare(*staged).headline
    assert head.loc[["wishes", "deferred", "unmet_demand"]].to_numpy().tolist() == [
        [4, 4, 0],
        [0, 1, 1],
        [3, 1, -2],
    ]
    assert head.loc["unmet_demand_share"].tolist() == [0.75, 0.25, -0.5]
    assert math.isnan(head.at["median_deferral_s", "a"])
    assert head.at["median_deferral_s", "b"] == 36 * 3600  # day 1 to day 2 + 12 h


def test_the_pod_pairs_gain_the_unmet_demand(staged: tuple[Path, Path]) -> None:
    pairs = compare(*staged).pairs
    # bank-firm moved most (2 wishes fewer unmet); firm-fund has wishes but no event.
    assert list(pairs.index) == [("bank", "firm"), ("bank", "fund"), ("firm", "fund")]
    unmet = pairs[["unmet_demand_a", "unmet_demand_b", "unmet_demand_diff"]].to_numpy().tolist()
    assert unmet == [[2, 0, -2], [0, 0, 0], [1, 1, 0]]
    assert pairs["events"].tolist() == ["differ", "identical", "identical"]
    # A run without its demand: no unmet-demand column rather than a made-up one.
    assert "unmet_demand_diff" not in compare(*(_both_without_demand(staged))).pairs.columns


def _both_without_demand(staged: tuple[Path, Path]) -> tuple[Path, Path]:
    root = staged[0].parent
    done = [root / f"{n}-plain" for n in ("a", "b")]
    for folder, name in zip(done, ("a", "b"), strict=True):
        if not folder.exists():
            _staged_run(folder, name, demand=False)
    return done[0], done[1]


def test_the_stages_and_their_per_day_differences_are_exact(staged: tuple[Path, Path]) -> None:
    stages = compare(*staged).stages
    assert list(stages.index) == [0, 1]
    assert [str(t) for t in stages["from"]] == ["2023-11-14 00:00:00", "2023-11-16 00:00:00"]
    assert [str(t) for t in stages["to"]] == ["2023-11-16 00:00:00", "2023-11-18 00:00:00"]
    assert stages["days"].tolist() == [2.0, 2.0]
    assert stages["change"].tolist() == ["", "B: 1 pair on"]
    expected = {
        # Stage 0: the same traffic, but the day-1 wish waits in B rather than fall.
        "requests_per_day": [(0.5, 0.5, 0.0), (0.0, 1.0, 1.0)],
        "accepted_per_day": [(0.5, 0.5, 0.0), (0.0, 0.5, 0.5)],
        "refused_crosspod_disabled_per_day": [(0.5, 0.5, 0.0), (0.5, 0.0, -0.5)],
        "unmet_demand_per_day": [(0.5, 0.0, -0.5), (1.0, 0.5, -0.5)],
    }
    for metric, rows in expected.items():
        got = stages[[f"{metric}_a", f"{metric}_b", f"{metric}_diff"]].to_numpy().tolist()
        assert got == [list(r) for r in rows], metric
    # Without demand on either side, the stages count no unmet demand.
    plain = compare(*_both_without_demand(staged)).stages
    assert "unmet_demand_per_day_diff" not in plain.columns
    assert plain["requests_per_day_diff"].tolist() == [0.0, 1.0]


def test_the_stage_intervals_over_replications_match_a_hand_computation(staged: tuple[Path, Path]) -> None:
    a, b = staged
    # The stage-1 requests per day differ by 1, 0 and 0 over the three pairs.
    result = compare_replications([a, a, b], [b, a, b])
    assert result.stages is not None
    row = result.stages.loc[(1, "requests_per_day")]
    mean = 1 / 3
    std = math.sqrt(((1 - mean) ** 2 + 2 * mean**2) / 2)
    half = 4.302652729911275 * std / math.sqrt(3)  # t(0.975, 2 degrees of freedom), from tables
    assert row["diff_mean"] == pytest.approx(mean)
    assert (row["diff_ci_low"], row["diff_ci_high"]) == pytest.approx((mean - half, mean + half))
    assert row["n"] == 3 and row["mean_a"] == pytest.approx(1 / 3) and row["mean_b"] == pytest.approx(2 / 3)
    assert row["change"] == "varies"  # (a, b) opens in B, (a, a) nowhere, (b, b) in both
    zero = result.stages.loc[(0, "accepted_per_day")]
    assert (zero["diff_mean"], zero["diff_ci_low"], zero["diff_ci_high"]) == (0.0, 0.0, 0.0)
    assert result.table.at["unmet_demand", "diff_mean"] == pytest.approx(-2 / 3)


def test_replications_are_cut_at_the_changes_of_every_run(staged: tuple[Path, Path]) -> None:
    a, b = staged
    # The pair (a, a) changes nothing; it is still cut at B's day-2 opening, so its stages
    # line up with the others'; and its change column says the pairs' changes differ there.
    result = compare_replications([a, a], [b, a])
    assert result.stages is not None
    assert sorted({s for s, _ in result.stages.index}) == [0, 1]
    assert result.stages.loc[(1, "requests_per_day"), "change"] == "varies"
    assert result.stages.loc[(0, "requests_per_day"), "change"] == ""
    alone = compare(a, a).stages
    assert len(alone) == 1 and alone["days"].tolist() == [4.0]


def test_the_files_and_the_terminal_show_demand_and_stages(
    tmp_path: Path, staged: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli.main(["compare", *map(str, staged), "--pair", *map(str, staged), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "unmet_demand: 3 -> 1 (-2)" in printed
    assert "  bank - firm: accepted 0 -> 1, requests 2 -> 3, unmet demand 2 -> 0" in printed
    assert (
        "  1: 2023-11-16 to 2023-11-18 (2 days; B: 1 pair on): requests +1, accepted +0.5, "
        "refused crosspod_disabled -0.5, unmet demand -0.5"
    ) in printed
    names = {p.name for p in out.iterdir()}
    assert {"stages.csv", "replication_stages.csv", "pairs.csv"} <= names
    text = (out / "compare.md").read_text()
    assert "| unmet_demand | 3 | 1 | -2 |" in text
    assert "| bank – firm | 0 | 1 | +1 | 2 | 3 | +1 | -1 | 2 | 0 | -2 |" in text
    assert "| 1 | 2023-11-16 to 2023-11-18 (2 days; B: 1 pair on) | requests | 0 | 1 | +1 |" in text
    stages_csv = (out / "stages.csv").read_text().splitlines()
    assert stages_csv[0].startswith("stage,from,to,days,change,requests_per_day_a,requests_per_day_b,")
    assert stages_csv[2].startswith("1,2023-11-16,2023-11-18,2.0,B: 1 pair on,0.0,1.0,1.0,")


def test_runs_without_demand_leave_it_out_of_the_page(tmp_path: Path, runs: tuple[Path, Path]) -> None:
    write_comparison(tmp_path / "out", compare(*runs), charts=False)
    text = (tmp_path / "out" / "compare.md").read_text()
    assert "wishes" not in text and "unmet" not in text
    assert "Neither run changes crossPod" not in text  # B changes it: two stages


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """tiny at one seed, without (A) and with (B) its crossPod change on day 7."""
    from simkit.pipeline import simulate
    from simkit.scenario import load_scenario

    root = tmp_path_factory.mktemp("tiny")
    sc = load_scenario(TINY)
    simulate(sc.with_overrides({"crosspod.changes": []}), root / "without", seed=11, progress=False)
    simulate(sc, root / "with", seed=11, progress=False)
    return root / "without", root / "with"


def test_a_real_pair_differs_only_where_the_change_reaches(tiny_pair: tuple[Path, Path]) -> None:
    from simkit.io.runs import read_run

    without, with_ = tiny_pair
    result = compare(without, with_)
    run = read_run(with_)
    names = dict(zip(run.population.pod_id.tolist(), run.population.pod_name, strict=True))
    touched = {
        tuple(sorted((names[int(x)], names[int(y)])))
        for x, y in zip(run.policy.pod_a, run.policy.pod_b, strict=True)
    }
    assert touched and len(run.policy) > 0
    pairs = result.pairs
    diffs = [c for c in pairs.columns if c.endswith("_diff")]
    assert "unmet_demand_diff" in diffs
    untouched = pairs[[p not in touched for p in pairs.index]]
    # Common random numbers: the pod pairs the change never touches saw the same events,
    # answers and unmet demand in both runs.
    assert len(untouched) > 20
    assert (untouched["events"] == "identical").all()
    assert int(untouched[diffs].abs().to_numpy().sum()) == 0
    reached = pairs[[p in touched for p in pairs.index]]
    assert (reached["events"] == "differ").any()
    # Opening pods never leaves more wishes unmet, and here it meets some.
    assert (pairs["unmet_demand_diff"] <= 0).all() and reached["unmet_demand_diff"].sum() < 0
    head = result.headline["difference"]
    assert head["wishes"] == 0 and head["unmet_demand"] < 0 and head["requests"] > 0
    assert head["unmet_demand"] == reached["unmet_demand_diff"].sum()
    # Before the change the two runs are the same traffic; after it B sends what A refused.
    stages = result.stages
    assert list(stages["change"]) == ["", f"B: {len(run.policy)} pairs on"]
    before, after = stages.iloc[0], stages.iloc[1]
    for metric in ("requests_per_day", "accepted_per_day", "refused_crosspod_disabled_per_day"):
        assert before[f"{metric}_diff"] == 0, metric
    assert after["requests_per_day_diff"] > 0 and after["refused_crosspod_disabled_per_day_diff"] < 0
    assert before["unmet_demand_per_day_diff"] <= 0  # wishes made before may wait for the opening


def test_sweep_points_give_stages_from_kept_run_folders_only(
    tmp_path: Path, sweeps: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from simkit.comparison import compare_points

    kept, rows = sweeps
    assert compare_points(rows, 0, 1).stages is None  # runs.parquet holds no events
    stages = compare_points(kept, 0, 1).stages
    assert stages is not None
    # Both points roll out tiny's day-7 opening: two stages, the same change on both sides.
    assert sorted({s for s, _ in stages.index}) == [0, 1]
    assert stages.loc[(1, "unmet_demand_per_day"), "change"] == "A: 10 pairs on; B: 10 pairs on"
    assert (stages["n"] == 2).all()
    # A point against itself: every stage difference is 0, with no spread.
    same = compare_points(kept, 1, 1).stages
    assert (
        same is not None and float(same[["diff_mean", "diff_ci_low", "diff_ci_high"]].abs().sum().sum()) == 0
    )
    out = tmp_path / "out"
    assert cli.main(["compare", str(kept), "--points", "0", "1", "--out", str(out)]) == 0
    assert "per crossPod stage (per day, mean B - A, 95% interval):" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "compare.md",
        "replication_stages.csv",
        "replications.csv",
    ]
