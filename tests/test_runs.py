"""Run folders: every refused input of §5, atomic and deterministic outputs, round trips."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings

from simkit import Events, Pod, Policy, Population, User, read_run, replay_run
from simkit.cli import main
from simkit.errors import InputError, RunDirError
from simkit.events import Demand
from simkit.io.runs import input_tables, write_demand, write_inputs
from simkit.schema import TABLES, ColumnType


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


def _add_column(run: Path, table: str, column: str, values: list[str]) -> None:
    """Add a column to a CSV table, one value per data row."""
    file = run / f"{table}.csv"
    with file.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(values)
    with file.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*rows[0], column], lineterminator="\n")
        writer.writeheader()
        writer.writerows({**row, column: value} for row, value in zip(rows, values))


# One username per user of the story vector (7 users).
STORY_NAMES = ["ann", "bo", "cy", "di", "ed", "flo", "gus"]


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
        "duplicate username",
        lambda r: _add_column(r, "users", "username", [*STORY_NAMES[:4], "bo", *STORY_NAMES[5:]]),
        "users.csv",
        5,
        "username",
    ),
    (
        "empty username",
        lambda r: _add_column(r, "users", "username", [*STORY_NAMES[:2], " ", *STORY_NAMES[3:]]),
        "users.csv",
        3,
        "username",
    ),
    (
        "empty email",
        lambda r: _add_column(r, "users", "email", ["", *STORY_NAMES[1:]]),
        "users.csv",
        1,
        "email",
    ),
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


# What each logical type of simkit.schema is written as.
ARROW_TYPES = {
    ColumnType.ID: pa.int64(),
    ColumnType.TS: pa.int64(),
    ColumnType.BOOL: pa.bool_(),
    ColumnType.STR: pa.string(),
    ColumnType.ACTION: pa.string(),
    ColumnType.LABEL: pa.string(),
    ColumnType.INT16: pa.int16(),
    ColumnType.INT32: pa.int32(),
}


def _named(pop: Population) -> Population:
    """`pop` with every optional column of users filled in."""
    ids = pop.user_id.tolist()
    return dataclasses.replace(
        pop,
        user_name=tuple(f"name-{u}" for u in ids),
        user_display_name=tuple(f"User {u}, Esq." for u in ids),
        user_email=tuple(f"u{u}@example.com" for u in ids),
    )


def test_the_schema_gives_the_written_columns_and_types(story_run: Path, tmp_path: Path) -> None:
    replay_run(story_run)
    run = read_run(story_run)
    write_inputs(tmp_path, _named(run.population), run.events, run.policy)
    files = {name: tmp_path / f"{name}.parquet" for name in ("pods", "users", "crosspod", "policy", "events")}
    files |= {name: story_run / f"{name}.parquet" for name in ("outcomes", "connections")}
    demand = Demand.from_records([(1, 101, 201, "sent", 1), (2, 102, 301, "dropped", None)])
    files["demand"] = write_demand(tmp_path, demand)
    assert set(files) == set(TABLES)
    for name, file in files.items():
        columns = TABLES[name].columns
        written = pq.read_table(file)
        assert written.column_names == [c.name for c in columns], name
        assert written.schema.types == [ARROW_TYPES[c.type] for c in columns], name
        nulls = {c.name: written.column(c.name).null_count for c in columns}
        assert not [c.name for c in columns if nulls[c.name] and not c.nullable], name
    outcomes = pq.read_table(files["outcomes"])
    assert outcomes.column("reason").null_count > 0  # null on 200, as Parquet null
    assert outcomes.column("status").null_count > 0  # null for unknown_caller, self, unknown_user


# -- the optional columns of users ----------------------------------------------------------


def test_a_population_without_usernames_writes_the_three_column_users_table(tmp_path: Path) -> None:
    run = read_run("data/samples/story")
    assert run.population.user_name is None
    write_inputs(tmp_path, run.population, run.events, run.policy)
    users = pq.read_table(tmp_path / "users.parquet")
    assert users.schema == pa.schema(
        [("user_id", pa.int64()), ("pod_id", pa.int64()), ("external", pa.bool_())]
    )
    # The same bytes as the table written by hand with the writer's options.
    plain = pa.table(
        {
            "user_id": pa.array(run.population.user_id, pa.int64()),
            "pod_id": pa.array(run.population.user_pod, pa.int64()),
            "external": pa.array(run.population.user_external, pa.bool_()),
        }
    )
    pq.write_table(
        plain,
        tmp_path / "plain.parquet",
        compression={"user_id": "none", "pod_id": "none", "external": "zstd"},
        use_dictionary=["external"],
        column_encoding={"user_id": "DELTA_BINARY_PACKED", "pod_id": "DELTA_BINARY_PACKED"},
        write_statistics=["user_id", "pod_id"],
        store_schema=False,
    )
    assert (tmp_path / "users.parquet").read_bytes() == (tmp_path / "plain.parquet").read_bytes()


def _write_csv_inputs(folder: Path, pop: Population, events: Events, policy: Policy) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in input_tables(pop, events, policy).items():
        pacsv.write_csv(table, folder / f"{name}.csv")


@pytest.mark.parametrize("names", [False, True], ids=["plain", "named"])
@pytest.mark.parametrize("form", ["csv", "parquet"])
def test_users_round_trip_with_and_without_the_optional_columns(
    names: bool, form: str, tmp_path: Path
) -> None:
    pop = Population.from_records(
        pods=[Pod(1, "Bank, Inc."), Pod(2, 'The "Fund"', private=False)],
        users=[User(7, 1), User(3, 1, external=False), User(12, 2)],
        crosspod=[(1, 2)],
    )
    if names:
        pop = dataclasses.replace(
            pop,
            user_name=("ann", " bo", "Zoë"),
            user_display_name=("Ann, of Bank", 'Bo "B."', "Zoë Ñ"),
            user_email=("ann@bank.example", "bo@bank.example", "zoe@fund.example"),
        )
    events = Events.from_records([(1, 7, 12, "connect")])
    write = write_inputs if form == "parquet" else _write_csv_inputs
    write(tmp_path / "run", pop, events, Policy.empty())
    assert (tmp_path / "run" / f"users.{form}").is_file()
    back = read_run(tmp_path / "run").population
    for column in ("user_id", "user_pod", "user_external"):
        assert np.array_equal(getattr(back, column), getattr(pop, column)), column
    assert (back.user_name, back.user_display_name, back.user_email) == (
        pop.user_name,
        pop.user_display_name,
        pop.user_email,
    )
    assert list(back.users()) == list(pop.users())
    expected = ["user7", "user3", "user12"] if not names else ["ann", " bo", "Zoë"]
    assert list(back.usernames()) == expected
    assert input_tables(back, events, Policy.empty()) == input_tables(pop, events, Policy.empty())


def test_a_duplicate_username_is_refused_with_one_line(story_run: Path) -> None:
    _add_column(story_run, "users", "username", [*STORY_NAMES[:4], "bo", *STORY_NAMES[5:]])
    with pytest.raises(InputError) as info:
        read_run(story_run)
    assert str(info.value) == (
        f"{story_run / 'users.csv'}: row 5, column 'username': expected a unique username ('bo' repeats)"
    )


def test_an_empty_username_is_refused(story_run: Path) -> None:
    _add_column(story_run, "users", "username", [*STORY_NAMES[:6], ""])
    with pytest.raises(InputError) as info:
        read_run(story_run)
    assert (Path(info.value.file).name, info.value.row, info.value.column) == ("users.csv", 7, "username")
    assert info.value.expected == "a value (the cell is empty)"


def test_a_parquet_null_username_is_refused(story_run: Path) -> None:
    _to_parquet(story_run, "users")
    users = pq.read_table(story_run / "users.parquet")
    users = users.append_column("username", pa.array([*STORY_NAMES[:2], None, *STORY_NAMES[3:]]))
    pq.write_table(users, story_run / "users.parquet")
    with pytest.raises(InputError) as info:
        read_run(story_run)
    assert (info.value.row, info.value.column) == (3, "username")


def test_usernames_are_read_from_the_users_table(story_run: Path) -> None:
    _add_column(story_run, "users", "username", STORY_NAMES)
    pop = read_run(story_run).population
    assert pop.username(203) == "ed"
    assert pop.user(203).username == "ed"
    assert pop.user_display_name is None and pop.user(203).display_name is None


def test_the_default_username_is_user_and_the_id() -> None:
    pods = [Pod(1, "bank")]
    pop = Population.from_records(pods, [User(5, 1), User(-2, 1)])
    assert pop.user_name is None
    assert pop.usernames() == ("user5", "user-2")
    assert pop.username(5) == "user5"
    with pytest.raises(KeyError):
        pop.username(6)
    mixed = Population.from_records(pods, [User(5, 1, username="eve"), User(6, 1)])
    assert mixed.user_name == ("eve", "user6")
    assert [u.username for u in mixed.users()] == ["eve", "user6"]


@pytest.mark.parametrize(
    ("users", "message"),
    [
        (
            [User(5, 1), User(6, 1, username="user5")],
            "users: row 2, column 'username': a unique username ('user5' repeats)",
        ),
        ([User(5, 1, username="")], "users: row 1, column 'username': a value (the cell is empty)"),
        (
            [User(5, 1, email="e@x"), User(6, 1)],
            "users: row 2, column 'email': a value for every user or for none (user 6 has none)",
        ),
    ],
    ids=["default collides", "empty", "email for some"],
)
def test_records_with_bad_usernames_are_refused(users: list[User], message: str) -> None:
    with pytest.raises(ValueError) as info:
        Population.from_records([Pod(1, "bank")], users)
    assert str(info.value) == message


def test_a_failed_write_leaves_no_file(
    story_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simkit.io.runs

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(simkit.io.runs.pq, "write_table", broken)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full") as info:
        replay_run(story_run, out=out)
    assert info.value.filename == str(out / "outcomes.parquet")
    assert not out.exists()  # the folder it created is removed again
    (tmp_path / "kept").mkdir()
    with pytest.raises(OSError, match="disk full"):
        replay_run(story_run, out=tmp_path / "kept")
    assert list((tmp_path / "kept").iterdir()) == []


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


_word = st.text(st.characters(exclude_categories=("Cc", "Cs", "Z")), min_size=1, max_size=8)


@st.composite
def _named_populations(draw: st.DrawFn) -> Population:
    pop, _, _ = draw(_runs())
    n = pop.n_users
    columns = st.one_of(st.none(), st.lists(_word, min_size=n, max_size=n))
    return dataclasses.replace(
        pop,
        user_name=draw(st.one_of(st.none(), st.lists(_word, min_size=n, max_size=n, unique=True).map(tuple))),
        user_display_name=draw(columns.map(lambda v: None if v is None else tuple(v))),
        user_email=draw(columns.map(lambda v: None if v is None else tuple(v))),
    )


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(_named_populations())
def test_read_of_write_keeps_the_optional_user_columns(
    tmp_path_factory: pytest.TempPathFactory, pop: Population
) -> None:
    folder = tmp_path_factory.mktemp("names")
    write_inputs(folder, pop, Events.empty(), Policy.empty())
    back = read_run(folder).population
    assert (back.user_name, back.user_display_name, back.user_email) == (
        pop.user_name,
        pop.user_display_name,
        pop.user_email,
    )
    assert pq.read_table(folder / "users.parquet").column_names == [
        c
        for c, values in [
            ("user_id", pop.user_id),
            ("pod_id", pop.user_pod),
            ("external", pop.user_external),
            ("username", pop.user_name),
            ("display_name", pop.user_display_name),
            ("email", pop.user_email),
        ]
        if values is not None
    ]
