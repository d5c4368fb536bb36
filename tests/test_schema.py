"""The schema of the run-folder tables: the columns of §5, and what is built from them."""

from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path

import pytest

import simkit.schema
from simkit.events import Demand, Events, Policy
from simkit.results import Connections, Outcomes
from simkit.schema import INPUT_TABLES, OUTPUT_TABLES, OWN_TABLES, TABLES, Column, ColumnType, Table

# The columns of connections.md §1 and §5, written out once more on purpose: the schema is
# checked against the contract, not against itself.
SPEC_COLUMNS = {
    "pods": ["pod_id", "name", "private"],
    "users": ["user_id", "pod_id", "external", "username", "display_name", "email"],
    "crosspod": ["pod_a", "pod_b"],
    "policy": ["ts", "pod_a", "pod_b", "crosspod"],
    "events": ["ts", "actor", "target", "action"],
    "outcomes": ["code", "reason", "status", "request_counter"],
    "connections": [
        "user_a",
        "user_b",
        "requester",
        "status",
        "request_counter",
        "first_requested_at",
        "updated_at",
    ],
}
# simkit's own tables, not API inputs: written out from README.md ("Run folders").
OWN_COLUMNS = {"demand": ["ts", "user", "target", "fate", "sent_ts"]}


def test_every_table_has_the_columns_of_the_contract() -> None:
    contract = {name: list(table.names) for name, table in TABLES.items() if name not in OWN_TABLES}
    assert contract == SPEC_COLUMNS
    assert {name: list(TABLES[name].names) for name in OWN_TABLES} == OWN_COLUMNS
    assert all(table.name == name for name, table in TABLES.items())


def test_inputs_outputs_and_own_tables_are_every_table_once() -> None:
    assert (*INPUT_TABLES, *OUTPUT_TABLES, *OWN_TABLES) == tuple(TABLES)
    assert not set(OWN_TABLES) & set(SPEC_COLUMNS)
    assert [name for name in (*INPUT_TABLES, *OUTPUT_TABLES) if TABLES[name].optional] == ["policy"]
    # A run folder without its own tables is complete: a replay neither needs nor writes them.
    assert all(TABLES[name].optional for name in OWN_TABLES)


def test_what_may_be_left_out_and_what_may_be_null() -> None:
    optional = {(t.name, c.name): c.default for t in TABLES.values() for c in t.columns if c.optional}
    assert optional == {
        ("pods", "private"): True,
        ("users", "external"): True,
        ("users", "username"): None,
        ("users", "display_name"): None,
        ("users", "email"): None,
    }
    assert not [c.name for t in INPUT_TABLES for c in TABLES[t].columns if c.nullable]
    nullable = [(t, c.name) for t in OUTPUT_TABLES for c in TABLES[t].columns if c.nullable]
    assert nullable == [("outcomes", "reason"), ("outcomes", "status")]
    own_nullable = [(t, c.name) for t in OWN_TABLES for c in TABLES[t].columns if c.nullable]
    assert own_nullable == [("demand", "sent_ts")]
    assert not [c.name for t in OWN_TABLES for c in TABLES[t].columns if c.optional]


def test_the_fixed_output_types() -> None:
    assert [c.type for c in TABLES["outcomes"].columns] == [
        ColumnType.INT16,
        ColumnType.LABEL,
        ColumnType.LABEL,
        ColumnType.INT32,
    ]
    connections = {c.name: c.type for c in TABLES["connections"].columns}
    assert connections.pop("status") is ColumnType.LABEL
    assert connections.pop("request_counter") is ColumnType.INT32
    assert set(connections.values()) <= {ColumnType.ID, ColumnType.TS}


def test_the_types_of_the_demand_table() -> None:
    assert {c.name: c.type for c in TABLES["demand"].columns} == {
        "ts": ColumnType.TS,
        "user": ColumnType.ID,
        "target": ColumnType.ID,
        "fate": ColumnType.LABEL,
        "sent_ts": ColumnType.TS,
    }


@pytest.mark.parametrize(
    ("record", "table"),
    [
        (Outcomes, "outcomes"),
        (Connections, "connections"),
        (Events, "events"),
        (Policy, "policy"),
        (Demand, "demand"),
    ],
)
def test_the_column_records_are_named_after_their_tables(record: type, table: str) -> None:
    # The writers of simkit.io.runs take each column from the field of the same name.
    assert tuple(f.name for f in dataclasses.fields(record)) == TABLES[table].names


def test_a_bad_schema_is_refused_when_built() -> None:
    with pytest.raises(ValueError, match="only an optional column has a default"):
        Column("x", ColumnType.BOOL, default=True)
    with pytest.raises(ValueError, match="repeat"):
        Table("t", (Column("x", ColumnType.ID), Column("x", ColumnType.TS)))
    with pytest.raises(KeyError):
        TABLES["users"].column("nickname")
    with pytest.raises(TypeError):
        TABLES["users"] = TABLES["pods"]  # type: ignore[index]


def test_the_schema_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(simkit.schema.__file__).read_text(encoding="utf-8"))
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
