"""Run folders: every refused input of §5, atomic and deterministic outputs, round trips."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings

from simkit import Events, Policy, Population, read_run, replay_run
from simkit.cli import main
from simkit.errors import InputError, RunDirError
from simkit.io.runs import input_tables, write_inputs


def _edit(run: Path, table: str, row: int, column: str, value: str) -> None:
    """Set one cell of a CSV table; `row` is the 1-based data row."""
    file = run / f"{table}.csv"
    with file.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
        fields = list(rows[0].keys())
    rows[row - 1][column] = value
    with file.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _drop_column(run: Path, table: str, column: str) -> None:
    file = run / f"{table}.csv"
    with file.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = [f for f in rows[0] if f != column]
    with file.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _append(run: Path, table: str, line: str) -> None:
    with (run / f"{table}.csv").open("a") as fh:
        fh.write(line + "\n")


def _to_parquet(run: Path, table: str, *, keep_csv: bool = False) -> None:
    import pyarrow.csv as pacsv

    pq.write_table(pacsv.read_csv(run / f"{table}.csv"), run / f"{table}.parquet")
    if not keep_csv:
        (run / f"{table}.csv").unlink()


Mutation = Callable[[Path], None]

# (what is wrong, how to break the story run, file named, row, column)
REFUSED: list[tuple[str, Mutation, str, int | None, str | None]] = [
    ("missing table", lambda r: (r / "events.csv").unlink(), "events.csv", None, None),
    ("missing column", lambda r: _drop_column(r, "events", "action"), "events.csv", None, "action"),
    ("zero-byte file", lambda r: (r / "users.csv").write_text(""), "users.csv", None, None),
    ("non-integer ts", lambda r: _edit(r, "events", 3, "ts", "2023-11-14"), "events.csv", 3, "ts"),
    ("fractional ts", lambda r: _edit(r, "events", 4, "ts", "1700000180000.5"), "events.csv", 4, "ts"),
    ("non-integer actor", lambda r: _edit(r, "events", 5, "actor", "alice"), "events.csv", 5, "actor"),
    ("non-integer user_id", lambda r: _edit(r, "users", 2, "user_id", "x1"), "users.csv", 2, "user_id"),
    ("non-integer policy ts", lambda r: _edit(r, "policy", 2, "ts", "soon"), "policy.csv", 2, "ts"),
    ("unknown action", lambda r: _edit(r, "events", 7, "action", "block"), "events.csv", 7, "action"),
    ("empty cell", lambda r: _edit(r, "events", 9, "target", ""), "events.csv", 9, "target"),
    ("empty pod name", lambda r: _edit(r, "pods", 2, "name", ""), "pods.csv", 2, "name"),
    ("bad boolean", lambda r: _edit(r, "users", 3, "external", "maybe"), "users.csv", 3, "external"),
    ("duplicate pod_id", lambda r: _append(r, "pods", "10,again,true"), "pods.csv", 4, "pod_id"),
    ("duplicate user_id", lambda r: _edit(r, "users", 4, "user_id", "102"), "users.csv", 4, "user_id"),
    ("user of unknown pod", lambda r: _edit(r, "users", 6, "pod_id", "77"), "users.csv", 6, "pod_id"),
    ("crosspod unknown pod", lambda r: _append(r, "crosspod", "20,88"), "crosspod.csv", 2, "pod_b"),
    ("policy unknown pod", lambda r: _edit(r, "policy", 1, "pod_a", "55"), "policy.csv", 1, "pod_a"),
    ("crosspod pod with itself", lambda r: _append(r, "crosspod", "30,30"), "crosspod.csv", 2, "pod_b"),
    ("policy pod with itself", lambda r: _edit(r, "policy", 2, "pod_b", "10"), "policy.csv", 2, "pod_b"),
    ("ragged row", lambda r: _append(r, "events", "1700002760000,101"), "events.csv", 47, None),
    (
        "table as CSV and Parquet",
        lambda r: _to_parquet(r, "users", keep_csv=True),
        "users.parquet",
        None,
        None,
    ),
]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(("what", "mutate", "file", "row", "column"), REFUSED, ids=[r[0] for r in REFUSED])
@pytest.mark.parametrize("command", ["replay", "validate"])
def test_refused_input_gives_one_line_and_writes_nothing(
    what: str,
    mutate: Mutation,
    file: str,
    row: int | None,
    column: str | None,
    command: str,
    story_run: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mutate(story_run)
    before = _digest(story_run)
    assert main([command, str(story_run)]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("simkit: error: ")
    assert str(story_run / file) in lines[0]
    assert (re.search(rf"row {row}[,:]", lines[0]) is not None) == (row is not None)
    if column is not None:
        assert f"column '{column}'" in lines[0]
    assert "expected" in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert _digest(story_run) == before  # nothing written, no input changed


def test_error_carries_its_parts(story_run: Path) -> None:
    _edit(story_run, "events", 3, "action", "poke")
    with pytest.raises(InputError) as info:
        read_run(story_run)
    assert (Path(info.value.file).name, info.value.row, info.value.column) == ("events.csv", 3, "action")


def test_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "nowhere")]) == 1
    assert "no such run folder" in capsys.readouterr().err
    with pytest.raises(RunDirError):
        read_run(tmp_path / "nowhere")


def test_header_only_tables_are_valid_and_empty(story_run: Path) -> None:
    (story_run / "events.csv").write_text("ts,actor,target,action\n")
    (story_run / "policy.csv").write_text("ts,pod_a,pod_b,crosspod\n")
    result = replay_run(story_run)
    assert len(result.outcomes) == 0 and len(result.connections) == 0
    assert pq.read_table(story_run / "outcomes.parquet").num_rows == 0


def test_lenient_forms_are_accepted(story_run: Path) -> None:
    _drop_column(story_run, "pods", "private")  # defaults to true
    _append(story_run, "crosspod", "20,10")  # either way round, twice
    _edit(story_run, "users", 1, "external", "TRUE")
    _edit(story_run, "users", 2, "external", "1")
    (story_run / "notes.txt").write_text("ignored\n")
    run = read_run(story_run)
    assert run.population.pod_private.all()
    assert run.population.crosspod.tolist() == [[10, 20]]
    assert "policy" in run.files


def test_parquet_ts_may_be_a_timestamp(story_run: Path, tmp_path: Path) -> None:
    expected = replay_run(story_run, out=tmp_path / "csv")
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(story_run / "events.csv")
    table = table.set_column(0, "ts", table.column("ts").cast(pa.timestamp("ms")))
    pq.write_table(table, story_run / "events.parquet")
    (story_run / "events.csv").unlink()
    got = replay_run(story_run, out=tmp_path / "parquet")
    assert got.outcomes.code.tolist() == expected.outcomes.code.tolist()
    assert (tmp_path / "csv" / "outcomes.parquet").read_bytes() == (
        tmp_path / "parquet" / "outcomes.parquet"
    ).read_bytes()


def test_out_leaves_the_run_folder_untouched(story_run: Path, tmp_path: Path) -> None:
    before = _digest(story_run)
    assert main(["replay", str(story_run), "--out", str(tmp_path / "new" / "out")]) == 0
    assert _digest(story_run) == before
    assert sorted(p.name for p in (tmp_path / "new" / "out").iterdir()) == [
        "connections.parquet",
        "manifest.json",
        "outcomes.parquet",
    ]


def test_replaying_twice_gives_the_same_bytes(story_run: Path, tmp_path: Path) -> None:
    replay_run(story_run)
    first = _digest(story_run)
    replay_run(story_run)  # earlier outputs are replaced, never read as inputs
    assert _digest(story_run) == first
    replay_run(story_run, out=tmp_path / "elsewhere")
    assert _digest(tmp_path / "elsewhere") == {
        k: v for k, v in first.items() if k in _digest(tmp_path / "elsewhere")
    }


def test_manifest_is_relative_and_sorted(story_run: Path) -> None:
    replay_run(story_run)
    text = (story_run / "manifest.json").read_text()
    manifest = json.loads(text)
    assert text == json.dumps(manifest, sort_keys=True, indent=2) + "\n"
    assert str(story_run) not in text
    assert manifest["inputs"]["events"] == {
        "file": "events.csv",
        "rows": 46,
        "sha256": hashlib.sha256((story_run / "events.csv").read_bytes()).hexdigest(),
    }
    assert manifest["summary"]["connections_by_status"] == {"PENDING": 2, "ACCEPTED": 2, "REJECTED": 0}


def test_output_types_are_fixed(story_run: Path) -> None:
    replay_run(story_run)
    assert pq.read_schema(story_run / "outcomes.parquet").types == [
        pa.int16(),
        pa.string(),
        pa.string(),
        pa.int32(),
    ]
    assert pq.read_schema(story_run / "connections.parquet").types == [
        pa.int64(),
        pa.int64(),
        pa.int64(),
        pa.string(),
        pa.int32(),
        pa.int64(),
        pa.int64(),
    ]


def test_a_failed_write_leaves_no_file(
    story_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simkit.io.runs

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(simkit.io.runs.pq, "write_table", broken)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        replay_run(story_run, out=out)
    assert list(out.iterdir()) == []


# -- read(write(x)) == x --------------------------------------------------------------------

_small = st.integers(min_value=-(2**40), max_value=2**40)


@st.composite
def _runs(draw: st.DrawFn) -> tuple[Population, Events, Policy]:
    pod_ids = draw(st.lists(_small, min_size=2, max_size=5, unique=True))
    names = draw(st.lists(st.text(min_size=1, max_size=8), min_size=len(pod_ids), max_size=len(pod_ids)))
    private = draw(st.lists(st.booleans(), min_size=len(pod_ids), max_size=len(pod_ids)))
    user_ids = draw(st.lists(_small, max_size=8, unique=True))
    users_pod = [draw(st.sampled_from(pod_ids)) for _ in user_ids]
    external = [draw(st.booleans()) for _ in user_ids]
    pairs = draw(
        st.lists(st.tuples(st.sampled_from(pod_ids), st.sampled_from(pod_ids)).filter(lambda p: p[0] != p[1]))
    )
    pop = Population.from_arrays(
        pod_id=pod_ids,
        pod_name=names,
        pod_private=private,
        user_id=user_ids,
        user_pod=users_pod,
        user_external=external,
        crosspod=pairs,
    )
    ids = st.sampled_from([*user_ids, 0]) if user_ids else st.just(0)
    events = Events.from_records(
        draw(
            st.lists(st.tuples(_small, ids, ids, st.sampled_from(["connect", "accept", "reject", "remove"])))
        )
    )
    policy = Policy.from_records(
        draw(
            st.lists(
                st.tuples(_small, st.sampled_from(pod_ids), st.sampled_from(pod_ids), st.booleans()).filter(
                    lambda p: p[1] != p[2]
                )
            )
        )
    )
    return pop, events, policy


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(_runs())
def test_read_of_write_is_identity(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[Population, Events, Policy]
) -> None:
    pop, events, policy = case
    folder = tmp_path_factory.mktemp("roundtrip")
    write_inputs(folder, pop, events, policy)
    back = read_run(folder)
    assert input_tables(back.population, back.events, back.policy) == input_tables(pop, events, policy)
    for table, got in input_tables(back.population, back.events, back.policy).items():
        assert got.equals(pq.read_table(folder / f"{table}.parquet")), table
    assert np.array_equal(back.events.action, events.action)
