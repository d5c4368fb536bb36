"""compare: two runs side by side, their difference per pod pair, and over replications."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import simkit
from simkit import cli
from simkit.comparison import compare, compare_replications, write_comparison
from simkit.errors import RunDirError
from simkit.metrics import METRICS
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
    changed = head[head["difference"] != 0]
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
