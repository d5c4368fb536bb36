"""simkit's own table ``demand.parquet``: written by a synthetic run, read and checked, ignored
by a replay, and never left half-written or from another run."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings

from simkit.cli import main
from simkit.errors import InputError, RunDirError
from simkit.events import FATES, Demand
from simkit.generate import draw
from simkit.io.commit import JOURNAL, RunFolderTransaction
from simkit.io.runs import (
    OWN_FILES,
    RUN_FILES,
    demand_table,
    read_demand,
    read_population,
    read_run,
    verify_run,
    write_demand,
    write_outputs,
)
from simkit.pipeline import replay_run, simulate
from simkit.scenario import load_scenario
from tests.conftest import one_line

SCENARIO = "data/scenarios/tiny.toml"
STORY_USERS = (101, 102, 201, 202, 203, 301, 302)
CRASH = "SIMKIT_TEST_CRASH_AFTER_RENAME"
# The renames of `simkit run`'s commit: the journal, pods, users, crosspod, policy, events,
# demand (the 7th), outcomes, connections, the manifest.
DEMAND_RENAME, RUN_RENAMES = 7, 10


def _digest(folder: Path) -> dict[str, str]:
    """Every file of `folder` (not below it) and its SHA-256, hidden files included."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def _same(a: Demand, b: Demand) -> None:
    for name in ("ts", "user", "target", "fate", "sent_ts"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.tolist() == y.tolist(), name


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Complete runs of the tiny scenario, never changed: seeds 1 and 2, and one whose users
    wish for nobody (its log holds mistakes only, so it has no demand)."""
    root = tmp_path_factory.mktemp("runs")
    simulate(SCENARIO, root / "old", seed=1, progress=False)
    simulate(SCENARIO, root / "new", seed=2, progress=False)
    quiet = load_scenario(SCENARIO, ["behaviour.requests_per_user_per_day=0"])
    simulate(quiet, root / "quiet", seed=2, progress=False)
    return {"old": root / "old", "new": root / "new", "quiet": root / "quiet"}


@pytest.fixture
def old_run(runs: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(runs["old"], tmp_path / "run"))


# -- a synthetic run writes its demand --------------------------------------------------------


def test_a_run_writes_the_demand_it_drew_and_the_manifest_records_it(runs: dict[str, Path]) -> None:
    run = runs["old"]
    drawn = draw(load_scenario(SCENARIO), 1)
    assert len(drawn.demand) > 100 and set(drawn.demand.fates()) >= {"sent", "blocked", "dropped"}
    demand = read_demand(run)
    assert demand is not None
    _same(demand, drawn.demand)
    record = json.loads((run / "manifest.json").read_text())["own"]
    assert record == {
        "demand": {
            "file": "demand.parquet",
            "rows": len(drawn.demand),
            "sha256": hashlib.sha256((run / "demand.parquet").read_bytes()).hexdigest(),
        }
    }


def test_the_file_holds_the_types_of_the_schema(runs: dict[str, Path]) -> None:
    file = runs["old"] / "demand.parquet"
    table = pq.read_table(file)
    assert table.schema.names == ["ts", "user", "target", "fate", "sent_ts"]
    assert table.schema.types == [pa.int64(), pa.int64(), pa.int64(), pa.string(), pa.int64()]
    fate = table.column("fate").to_pylist()
    sent_ts = table.column("sent_ts").to_pylist()
    assert set(fate) <= set(FATES)
    # Null exactly where the wish was never sent.
    assert [s is None for s in sent_ts] == [f in ("blocked", "dropped") for f in fate]
    encodings = pq.ParquetFile(file).metadata.row_group(0).column(3).encodings
    assert any("DICTIONARY" in e for e in encodings)


def test_the_demand_agrees_with_the_log(runs: dict[str, Path]) -> None:
    # Every wish that was sent is a connect of its user to its target at sent_ts, and every
    # blocked one a connect at its ts (tried and refused): the file belongs to this log.
    run = read_run(runs["old"])
    demand = read_demand(runs["old"], run.population)
    assert demand is not None
    ev = run.events
    connect = ev.action == 0
    connects = set(zip(ev.ts[connect].tolist(), ev.actor[connect].tolist(), ev.target[connect].tolist()))
    sent, blocked = demand.was_sent, demand.fate == FATES.index("blocked")
    assert sent.any() and blocked.any()
    wanted = zip(demand.sent_ts[sent].tolist(), demand.user[sent].tolist(), demand.target[sent].tolist())
    assert all(row in connects for row in wanted)
    tried = zip(demand.ts[blocked].tolist(), demand.user[blocked].tolist(), demand.target[blocked].tolist())
    assert all(row in connects for row in tried)


def test_the_same_seed_gives_the_same_bytes(runs: dict[str, Path], tmp_path: Path) -> None:
    simulate(SCENARIO, tmp_path / "again", seed=1, progress=False)
    assert (tmp_path / "again" / "demand.parquet").read_bytes() == (
        runs["old"] / "demand.parquet"
    ).read_bytes()
    assert (runs["new"] / "demand.parquet").read_bytes() != (runs["old"] / "demand.parquet").read_bytes()
    demand = draw(load_scenario(SCENARIO), 1).demand
    assert write_demand(tmp_path / "a", demand) == tmp_path / "a" / "demand.parquet"
    write_demand(tmp_path / "b", demand)
    assert (tmp_path / "a" / "demand.parquet").read_bytes() == (
        tmp_path / "b" / "demand.parquet"
    ).read_bytes()


def test_a_run_without_wishes_writes_no_demand(runs: dict[str, Path]) -> None:
    quiet = runs["quiet"]
    assert len(read_run(quiet).events) > 0  # mistakes still happen
    assert not (quiet / "demand.parquet").exists()
    assert "own" not in json.loads((quiet / "manifest.json").read_text())
    assert read_demand(quiet) is None


def test_an_overwrite_without_demand_removes_the_stale_one(
    old_run: Path, runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (old_run / "demand.csv").write_text("not simkit's\n")  # no table of simkit's: left alone
    quiet = load_scenario(SCENARIO, ["behaviour.requests_per_user_per_day=0"])
    simulate(quiet, old_run, seed=2, overwrite=True, progress=False)
    assert not (old_run / "demand.parquet").exists()
    assert (old_run / "demand.csv").read_text() == "not simkit's\n"
    (old_run / "demand.csv").unlink()
    assert _digest(old_run) == _digest(runs["quiet"])
    assert main(["validate", str(old_run)]) == 0
    assert "wish" not in capsys.readouterr().out


def test_demand_parquet_is_one_of_simkits_own_run_files() -> None:
    assert OWN_FILES == ("demand.parquet",)
    assert "demand.parquet" in RUN_FILES and "demand.csv" not in RUN_FILES


# -- round trip -------------------------------------------------------------------------------


@st.composite
def _demands(draw_: st.DrawFn) -> Demand:
    pairs = sorted(
        draw_(
            st.sets(
                st.tuples(st.sampled_from(STORY_USERS), st.sampled_from(STORY_USERS)).filter(
                    lambda p: p[0] != p[1]
                ),
                max_size=12,
            )
        )
    )
    rows = []
    for user, target in pairs:
        t = draw_(st.integers(-(2**40), 2**40))
        fate = draw_(st.sampled_from(FATES))
        later = draw_(st.integers(1, 2**30))
        sent_ts = {"sent": t, "deferred": t + later}.get(fate)
        rows.append((t, user, target, fate, sent_ts))
    return Demand.from_records(rows)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(_demands())
def test_read_of_write_is_identity(demand: Demand) -> None:
    population = read_population("data/samples/story")[0]
    with tempfile.TemporaryDirectory() as tmp:
        written = write_demand(tmp, demand)
        back = read_demand(tmp, population)
    if not len(demand):
        assert written is None and back is None
        return
    assert back is not None
    _same(back, demand)


def test_the_table_of_a_demand() -> None:
    demand = Demand.from_records(
        [(5, 101, 201, "sent", 5), (6, 102, 301, "deferred", 90), (7, 201, 101, "blocked", None)]
    )
    table = demand_table(demand)
    assert table.column("sent_ts").to_pylist() == [5, 90, None]
    assert table.column("fate").to_pylist() == ["sent", "deferred", "blocked"]
    coded = demand_table(demand, as_strings=False)
    assert pa.types.is_dictionary(coded.column("fate").type)
    assert coded.column("fate").to_pylist() == ["sent", "deferred", "blocked"]


# -- `simkit validate` checks it -----------------------------------------------------------


def _story(tmp_path: Path) -> Path:
    return Path(shutil.copytree("data/samples/story", tmp_path / "story"))


_GOOD: dict[str, list[Any]] = {
    "ts": [10, 20, 30],
    "user": [101, 201, 301],
    "target": [201, 301, 102],
    "fate": ["sent", "deferred", "dropped"],
    "sent_ts": [10, 25, None],
}


def _write(folder: Path, columns: dict[str, Any]) -> Path:
    arrays = {
        name: values
        if isinstance(values, pa.Array)
        else pa.array(values, pa.string() if name == "fate" else pa.int64())
        for name, values in columns.items()
    }
    pq.write_table(pa.table(arrays), folder / "demand.parquet")
    return folder / "demand.parquet"


def _with(**changes: Any) -> dict[str, Any]:
    columns = {name: list(values) for name, values in _GOOD.items()}
    for key, value in changes.items():
        name, _, row = key.partition("__")
        if row:
            columns[name][int(row)] = value
        elif value is None:
            del columns[name]
        else:
            columns[name] = value
    return columns


def test_validate_reads_a_good_demand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    story = _story(tmp_path)
    _write(story, _with())
    assert main(["validate", str(story)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("46 action events, 3 wishes (demand)")


@pytest.mark.parametrize(
    ("columns", "row", "column", "expected"),
    [
        (_with(fate__1="maybe"), 2, "fate", "one of sent, deferred, blocked, dropped, found 'maybe'"),
        (_with(fate__0=None), 1, "fate", "a value (the cell is empty)"),
        (_with(ts__2=None), 3, "ts", "a value (the cell is empty)"),
        (
            _with(user__2=201),
            3,
            "target",
            "rows by user, then target, each pair once, found (201, 102) after (201, 301)",
        ),
        (
            _with(user__2=101),
            3,
            "user",
            "rows by user, then target, each pair once, found (101, 102) after (201, 301)",
        ),
        (
            _with(user__1=101, target__1=201),
            2,
            "target",
            "rows by user, then target, each pair once, found (101, 201) after (101, 201)",
        ),
        (_with(sent_ts__0=None), 1, "sent_ts", "a time for a wish that was sent (the cell is empty)"),
        (
            _with(sent_ts__2=40),
            3,
            "sent_ts",
            "an empty cell for a wish that was dropped (never sent), found 40",
        ),
        (
            _with(fate__2="blocked", sent_ts__2=30),
            3,
            "sent_ts",
            "an empty cell for a wish that was blocked (never sent), found 30",
        ),
        (_with(sent_ts__0=11), 1, "sent_ts", "the wish's ts (10) for a wish that was sent, found 11"),
        (
            _with(sent_ts__1=20),
            2,
            "sent_ts",
            "a time after the wish's ts (20) for a wish that was deferred, found 20",
        ),
        (_with(user__1=999), 2, "user", "a user of the users table, found 999"),
        (_with(target__2=7), 3, "target", "a user of the users table, found 7"),
        (_with(target__1=201), 2, "target", "a user other than the row's user (201), found 201"),
        (_with(ts=pa.array([10, 20, 30], pa.int32())), None, "ts", "int64 as simkit writes it, found int32"),
        (
            _with(fate=pa.array([1, 2, 3], pa.int64())),
            None,
            "fate",
            "string as simkit writes it, found int64",
        ),
        (_with(fate=None), None, "fate", "one column named 'fate', found none"),
    ],
)
def test_validate_refuses_a_bad_demand_inone_line(
    columns: dict[str, Any],
    row: int | None,
    column: str,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    story = _story(tmp_path)
    file = _write(story, columns)
    assert main(["validate", str(story)]) == 1
    where = f"row {row}, column {column!r}" if row is not None else f"column {column!r}"
    line = one_line(capsys)
    assert line == f"simkit: error: {file}: {where}: expected {expected}"
    with pytest.raises(InputError) as info:
        read_demand(story)
    assert (info.value.file, info.value.row, info.value.column) == (str(file), row, column)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "a Parquet file of the demand table (the file is empty)"),
        (b"ts,user\n1,2\n", "a readable Parquet file"),
        (None, "the Parquet file of simkit's demand table, found a folder"),
    ],
    ids=["empty", "not parquet", "folder"],
)
def test_validate_refuses_what_is_not_a_demand_file(
    content: bytes | None, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    story = _story(tmp_path)
    file = story / "demand.parquet"
    if content is None:
        file.mkdir()
    else:
        file.write_bytes(content)
    assert main(["validate", str(story)]) == 1
    one_line(capsys, f"{file}: expected {expected}")


def test_a_demand_csv_is_no_table_of_simkits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    story = _story(tmp_path)
    (story / "demand.csv").write_text("ts,user,target,fate,sent_ts\n1,1,1,maybe,\n")
    assert read_demand(story) is None
    assert main(["validate", str(story)]) == 0
    assert "wish" not in capsys.readouterr().out


# -- a demand the manifest does not vouch for -------------------------------------------------


def test_an_edited_demand_is_refused(old_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = pq.read_table(old_run / "demand.parquet")
    pq.write_table(table.slice(1), old_run / "demand.parquet")
    assert main(["validate", str(old_run)]) == 1
    one_line(capsys, f"{old_run / 'demand.parquet'}: changed since {old_run / 'manifest.json'} was written")
    with pytest.raises(RunDirError, match="changed since"):
        read_demand(old_run)


def test_a_removed_demand_is_refused_until_a_replay_records_the_folder_without_it(
    old_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (old_run / "demand.parquet").unlink()
    assert main(["validate", str(old_run)]) == 1
    one_line(capsys, "demand.parquet: missing since", f"simkit replay {old_run}")
    replay_run(old_run)
    manifest = json.loads((old_run / "manifest.json").read_text())
    assert "own" not in manifest and manifest["seed"] is not None  # the provenance stays
    assert verify_run(old_run) is not None and read_demand(old_run) is None


def test_a_demand_added_to_a_run_is_ignored(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = Path(shutil.copytree(runs["quiet"], tmp_path / "quiet"))
    shutil.copy(runs["old"] / "demand.parquet", quiet / "demand.parquet")
    assert read_demand(quiet) is None  # not the demand of this log
    assert main(["validate", str(quiet)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("; demand.parquet ignored: manifest.json does not record it")


def test_a_manifest_written_in_the_same_transaction_records_the_demand(tmp_path: Path) -> None:
    story = _story(tmp_path)
    run = read_run(story)
    demand = Demand.from_records([(10, 101, 201, "sent", 10), (20, 203, 301, "blocked", None)])
    from simkit.engines import replay

    with RunFolderTransaction(story, "test") as txn:
        write_demand(txn, demand)
        write_outputs(txn, run, replay(run.population, run.events, run.policy))
        txn.commit(last="manifest.json")
    assert json.loads((story / "manifest.json").read_text())["own"]["demand"]["rows"] == 2
    back = read_demand(story)
    assert back is not None
    _same(back, demand)


# -- `simkit replay` ignores it -----------------------------------------------------------------


def test_an_in_place_replay_leaves_the_demand_and_its_record(
    old_run: Path, runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = json.loads((old_run / "manifest.json").read_text())
    assert main(["replay", str(old_run), "--engine", "event"]) == 0
    after = json.loads((old_run / "manifest.json").read_text())
    assert after["own"] == before["own"] and after["engine"] == "event"
    assert (old_run / "demand.parquet").read_bytes() == (runs["old"] / "demand.parquet").read_bytes()
    capsys.readouterr()
    assert main(["validate", str(old_run)]) == 0
    assert "wishes (demand)" in capsys.readouterr().out


def test_a_replay_elsewhere_neither_needs_nor_copies_the_demand(old_run: Path, tmp_path: Path) -> None:
    (old_run / "demand.parquet").write_bytes(b"not even Parquet")
    out = tmp_path / "out"
    replay_run(old_run, out=out)
    assert sorted(p.name for p in out.iterdir()) == [
        "connections.parquet",
        "manifest.json",
        "outcomes.parquet",
    ]
    assert "own" not in json.loads((out / "manifest.json").read_text())
    assert verify_run(old_run, out) is not None


def test_an_in_place_replay_of_edited_inputs_no_longer_records_the_demand(
    old_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = pq.read_table(old_run / "events.parquet")
    pq.write_table(events.slice(0, events.num_rows // 2), old_run / "events.parquet")
    before = (old_run / "demand.parquet").read_bytes()
    assert main(["replay", str(old_run)]) == 0
    assert "changed since the run" in capsys.readouterr().out
    # Left as it was, but no longer recorded: the demand of the old log is not read as this one's.
    assert (old_run / "demand.parquet").read_bytes() == before
    assert "own" not in json.loads((old_run / "manifest.json").read_text())
    assert read_demand(old_run) is None
    assert main(["validate", str(old_run)]) == 0
    assert "demand.parquet ignored" in capsys.readouterr().out


def test_an_in_place_replay_does_not_need_a_good_demand(old_run: Path) -> None:
    # The replay reads no demand; the manifest it writes no longer vouches for this one.
    (old_run / "demand.parquet").write_bytes(b"not even Parquet")
    with pytest.raises(RunDirError, match=r"demand\.parquet: changed since"):
        verify_run(old_run)
    replay_run(old_run)
    assert "own" not in json.loads((old_run / "manifest.json").read_text())
    assert (old_run / "demand.parquet").read_bytes() == b"not even Parquet"
    assert verify_run(old_run) is not None and read_demand(old_run) is None


# -- never half-written, never from another run -----------------------------------------------


def _full_disk_on(name: str) -> Any:
    """A RunFolderTransaction.stage that fails as on a full disk when staging `name`."""
    real = RunFolderTransaction.stage

    def stage(self: RunFolderTransaction, staged: str) -> Path:
        if staged == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.folder / staged))
        return real(self, staged)

    return stage


@pytest.mark.parametrize("failing", ["demand.parquet", "outcomes.parquet"])
@pytest.mark.parametrize("start", ["old", "quiet"])
def test_a_failed_run_leaves_the_old_folder_whole(
    failing: str,
    start: str,
    runs: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Over a run with a demand (seed 1) or without one: a full disk at the demand or after it.
    folder = Path(shutil.copytree(runs[start], tmp_path / "run"))
    before = _digest(folder)
    monkeypatch.setattr(RunFolderTransaction, "stage", _full_disk_on(failing))
    assert main(["run", SCENARIO, "--out", str(folder), "--overwrite", "--seed", "2"]) == 1
    one_line(capsys, "No space left on device")
    assert _digest(folder) == before  # no demand of the new run, no temporary file


def test_a_failed_write_of_the_demand_itself_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = pq.write_table  # the module simkit.io.runs writes with

    def write(table: pa.Table, where: Any, **options: Any) -> None:
        if table.column_names == list(_GOOD):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(table, where, **options)

    monkeypatch.setattr(pq, "write_table", write)
    assert main(["run", SCENARIO, "--out", str(tmp_path / "new"), "--seed", "2"]) == 1
    one_line(capsys, f"{tmp_path / 'new' / 'demand.parquet'}: No space left on device")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("k", [DEMAND_RENAME - 1, DEMAND_RENAME, RUN_RENAMES])
def test_a_run_killed_around_the_demand_rename_is_carried_to_the_end(
    k: int, runs: dict[str, Path], tmp_path: Path
) -> None:
    # Over the run without demand: killed just before, just after the demand is renamed into
    # place, or before the last rename. The next reader finishes the commit: the complete new
    # run, its demand included.
    folder = Path(shutil.copytree(runs["quiet"], tmp_path / "run"))
    env = {**os.environ, CRASH: str(k)}
    killed = subprocess.run(
        [sys.executable, "-m", "simkit", "run", SCENARIO, "--out", str(folder), "--overwrite", "--seed", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == 99, killed.stderr
    assert (folder / JOURNAL).exists()
    demand = read_demand(folder)  # settles the folder first
    assert (
        demand is not None
        and len(demand) == json.loads((folder / "manifest.json").read_text())["own"]["demand"]["rows"]
    )
    assert _digest(folder) == _digest(runs["new"])
    assert np.array_equal(demand.ts, draw(load_scenario(SCENARIO), 2).demand.ts)


def test_the_runs_a_sweep_keeps_hold_their_own_demand(tmp_path: Path) -> None:
    from simkit.sweeps import sweep

    sweep(
        SCENARIO,
        {"blocked.attempt": [0.0, 1.0]},
        out=tmp_path / "sweep",
        keep_runs=True,
        charts=(),
        progress=False,
    )
    fates = []
    for point in (0, 1):
        folder = tmp_path / "sweep" / "runs" / f"point-{point}-replication-0"
        assert verify_run(folder) is not None
        demand = read_demand(folder)
        assert demand is not None
        fates.append(set(demand.fates()))
    # Nobody tries an unreachable wish at point 0, everybody does at point 1.
    assert "blocked" not in fates[0] and "dropped" in fates[0]
    assert "dropped" not in fates[1] and "blocked" in fates[1]
