"""Reading a Parquet events table: the action column is read as Arrow dictionaries, checked
entry by entry, and gives the same codes, and the same refusals, as a plainly encoded one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from simkit.errors import InputError
from simkit.io.runs import read_run
from tests.conftest import copy_inputs

ENCODINGS = [{"use_dictionary": True}, {"use_dictionary": False}]


def _events_parquet(run: Path, actions: list[str] | pa.Array, **options: object) -> None:
    """Replace the run's events with a Parquet file of row groups of 3 rows."""
    events = pacsv.read_csv(run / "events.csv")
    if not isinstance(actions, pa.Array):
        actions = pa.array(actions, pa.string())
    table = events.set_column(events.schema.get_field_index("action"), "action", actions)
    (run / "events.csv").unlink()
    pq.write_table(table, run / "events.parquet", row_group_size=3, **options)


def _story(tmp_path: Path, name: str) -> Path:
    return copy_inputs("story", tmp_path / name)


@pytest.mark.parametrize("options", ENCODINGS)
def test_parquet_actions_read_as_from_csv(tmp_path: Path, options: dict[str, bool]) -> None:
    # Several row groups, each with a dictionary of its own; spaces around an action allowed.
    from_csv = read_run(_story(tmp_path, "csv")).events
    run = _story(tmp_path, "parquet")
    names = pacsv.read_csv(run / "events.csv").column("action").to_pylist()
    spaced = [f" {a}  " if i % 4 == 1 else a for i, a in enumerate(names)]
    _events_parquet(run, spaced, **options)
    got = read_run(run).events
    assert got.action.dtype == np.int8
    np.testing.assert_array_equal(got.action, from_csv.action)
    np.testing.assert_array_equal(got.ts, from_csv.ts)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("befriend", "one of connect, accept, reject, remove, found 'befriend'"),
        ("   ", "a value (the cell is empty)"),
        (None, "a value (the cell is empty)"),
    ],
)
def test_a_bad_action_names_its_row_whatever_the_encoding(
    tmp_path: Path, bad: str | None, expected: str
) -> None:
    # The bad cell sits in the third row group; its row is the same with or without a
    # dictionary.
    messages = []
    for i, options in enumerate(ENCODINGS):
        run = _story(tmp_path, f"run{i}")
        names: list[str | None] = list(pacsv.read_csv(run / "events.csv").column("action").to_pylist())
        names[7] = bad
        _events_parquet(run, names, **options)
        with pytest.raises(InputError) as info:
            read_run(run)
        assert (info.value.row, info.value.column, info.value.expected) == (8, "action", expected)
        messages.append(str(info.value).replace(f"run{i}", "run"))
    assert messages[0] == messages[1]


def test_an_unused_bad_dictionary_entry_is_no_refusal(tmp_path: Path) -> None:
    # An entry no row points to says nothing about the rows: the column is then read row by
    # row, and every row is an action.
    run = _story(tmp_path, "run")
    names = pacsv.read_csv(run / "events.csv").column("action").to_pylist()
    entries = pa.array(["befriend", *sorted(set(names))], pa.string())
    indices = pa.array([1 + sorted(set(names)).index(a) for a in names], pa.int32())
    actions = pa.DictionaryArray.from_arrays(indices, entries)
    events = pacsv.read_csv(run / "events.csv")
    table = events.set_column(events.schema.get_field_index("action"), "action", actions)
    (run / "events.csv").unlink()
    pq.write_table(table, run / "events.parquet", store_schema=True)
    assert pq.read_schema(run / "events.parquet").field("action").type == actions.type
    got = read_run(run).events
    np.testing.assert_array_equal(got.action, read_run(_story(tmp_path, "csv")).events.action)


def test_binary_actions_are_refused_as_before(tmp_path: Path) -> None:
    run = _story(tmp_path, "run")
    names = pacsv.read_csv(run / "events.csv").column("action").to_pylist()
    _events_parquet(run, pa.array([a.encode() for a in names], pa.binary()))
    with pytest.raises(InputError, match="text, found type binary"):
        read_run(run)
