"""`runs`: run directories, the interchange format of ``connections.md`` §5.

Reads the input tables of a run folder (CSV or Parquet) into a :class:`Run`, refusing bad
input with an :class:`~simkit.errors.InputError` that names the file, the 1-based data row
and the column; writes the inputs of a generated run, and the outputs of a replay
(``outcomes.parquet``, ``connections.parquet``, ``manifest.json``), each through a
temporary name and a rename so that no half-written file is ever left. It never modifies
an input file. This module is the edge where arrays become Arrow tables; it holds no
rules, runs no engine. The tables and their columns are those of :mod:`simkit.schema`; the
Arrow types are built from it here.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from numpy.typing import NDArray

from simkit.errors import InputError, RunDirError
from simkit.events import Events, Policy
from simkit.io.atomic import atomic_path
from simkit.population import Population, problems
from simkit.results import Connections, Outcomes, Replay
from simkit.rules import ACTIONS, REASONS, STATUSES, Kind
from simkit.schema import INPUT_TABLES, TABLES, Column, ColumnType, Table
from simkit.version import __version__

__all__ = [
    "INPUT_TABLES",
    "OUTPUT_FILES",
    "Run",
    "connections_table",
    "input_tables",
    "outcomes_table",
    "read_run",
    "write_inputs",
    "write_outputs",
]

OUTPUT_FILES: tuple[str, ...] = ("outcomes.parquet", "connections.parquet", "manifest.json")

_ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    ColumnType.ID: pa.int64(),
    ColumnType.TS: pa.int64(),
    ColumnType.BOOL: pa.bool_(),
    ColumnType.STR: pa.string(),
    ColumnType.ACTION: pa.string(),
    ColumnType.LABEL: pa.string(),
    ColumnType.INT16: pa.int16(),
    ColumnType.INT32: pa.int32(),
}
# (table, column) -> the label of each code, for the columns held as small-integer codes.
_CODE_LABELS: dict[tuple[str, str], list[str]] = {
    ("events", "action"): [a.value for a in ACTIONS],
    ("outcomes", "reason"): [r.value for r in REASONS],
    ("outcomes", "status"): [s.value for s in STATUSES],
    ("connections", "status"): [k.name for k in Kind],
}
_ACTION_NAMES = pa.array(_CODE_LABELS["events", "action"])
_INT_PATTERN = r"^\s*[+-]?[0-9]+\s*$"
_BOOL_TRUE = pa.array(["true", "1"])
_BOOL_NAMES = pa.array(["true", "false", "1", "0"])
# Without the Arrow schema stored, a column written from an Arrow dictionary (see _labels) is
# a plain string column in the file (§5) and reads back as one.
_PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "use_dictionary": True, "store_schema": False}


@dataclass(frozen=True, eq=False)
class Run:
    """The inputs of a run folder, read and checked.

    `files` maps each table present to the file it was read from.
    """

    path: Path
    population: Population
    events: Events
    policy: Policy
    files: Mapping[str, Path] = field(default_factory=dict)


# -- reading ------------------------------------------------------------------------------


def _find_tables(path: Path) -> dict[str, Path]:
    if not path.exists():
        raise RunDirError(f"{path}: no such run folder")
    if not path.is_dir():
        raise RunDirError(f"{path}: not a folder; expected a run folder of input tables")
    found: dict[str, Path] = {}
    for name in INPUT_TABLES:
        csv, parquet = path / f"{name}.csv", path / f"{name}.parquet"
        if csv.is_file() and parquet.is_file():
            raise InputError(
                str(parquet),
                None,
                None,
                f"one file for table {name!r}, found both {csv.name} and {parquet.name}",
            )
        if csv.is_file() or parquet.is_file():
            found[name] = csv if csv.is_file() else parquet
        elif not TABLES[name].optional:
            raise InputError(
                str(csv), None, None, f"table {name!r} as {csv.name} or {parquet.name} (missing)"
            )
    return found


def _read_raw(file: Path) -> pa.Table:
    if file.stat().st_size == 0:
        raise InputError(str(file), None, None, "a table with a header row (the file is empty)")
    try:
        if file.suffix == ".parquet":
            return pq.read_table(file)
        with file.open("r", encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), [])
        names = [h.strip() for h in header]
        return pacsv.read_csv(
            file,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as exc:
        if file.suffix == ".csv" and isinstance(exc, pa.ArrowInvalid):
            _raise_ragged_row(file)
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        kind = "Parquet" if file.suffix == ".parquet" else "CSV with a header row"
        raise InputError(str(file), None, None, f"a readable {kind} file ({detail})") from None


def _raise_ragged_row(file: Path) -> None:
    """Name the first CSV row whose cell count differs from the header's, if there is one."""
    with file.open("r", encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh)
        width = len(next(rows, []))
        for number, row in enumerate((r for r in rows if r), start=1):
            if len(row) != width:
                raise InputError(str(file), number, None, f"{width} cells as in the header, found {len(row)}")


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int | None:
    idx = pc.index(mask, True).as_py()
    return None if idx < 0 else int(idx)


def _as_strings(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        col = col.cast(pa.string())
    return col


def _convert(file: Path, spec: Column, col: pa.ChunkedArray) -> NDArray[Any]:
    """One input column as a numpy array of its type, or an InputError at its first bad cell.

    Input columns are never nullable (§5 refuses an empty cell), whatever the type.
    """
    where, column, kind = str(file), spec.name, spec.type
    if kind in (ColumnType.LABEL, ColumnType.INT16, ColumnType.INT32):
        raise TypeError(f"{column}: {kind} is a type of the outputs, which are not read as inputs")
    nulls = _first_true(pc.is_null(col))
    if nulls is not None:
        raise InputError(where, nulls + 1, column, "a value (the cell is empty)")
    col = _as_strings(col)
    is_text = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
    if is_text:
        empty = _first_true(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0))
        if empty is not None:
            raise InputError(where, empty + 1, column, "a value (the cell is empty)")
    if kind in (ColumnType.ID, ColumnType.TS):
        if kind is ColumnType.TS and pa.types.is_timestamp(col.type):
            return np.asarray(col.cast(pa.timestamp("ms")).cast(pa.int64()), dtype=np.int64)
        if pa.types.is_integer(col.type):
            return np.asarray(col.cast(pa.int64()), dtype=np.int64)
        what = "an integer (milliseconds since the epoch)" if kind is ColumnType.TS else "an integer id"
        if not is_text:
            raise InputError(where, None, column, f"{what}, found type {col.type}")
        bad = _first_true(pc.invert(pc.match_substring_regex(col, _INT_PATTERN)))
        if bad is not None:
            raise InputError(where, bad + 1, column, f"{what}, found {col[bad].as_py()!r}")
        try:
            return np.asarray(pc.utf8_trim_whitespace(col).cast(pa.int64()), dtype=np.int64)
        except pa.ArrowInvalid:
            raise InputError(where, None, column, f"{what} that fits in 64 bits") from None
    if kind is ColumnType.BOOL:
        if pa.types.is_boolean(col.type):
            return np.asarray(col, dtype=np.bool_)
        if pa.types.is_integer(col.type):
            col = col.cast(pa.string())
        elif not is_text:
            raise InputError(where, None, column, f"true/false or 1/0, found type {col.type}")
        low = pc.utf8_lower(pc.utf8_trim_whitespace(col))
        bad = _first_true(pc.invert(pc.is_in(low, value_set=_BOOL_NAMES)))
        if bad is not None:
            raise InputError(where, bad + 1, column, f"true/false or 1/0, found {col[bad].as_py()!r}")
        return np.asarray(pc.is_in(low, value_set=_BOOL_TRUE), dtype=np.bool_)
    if not is_text:
        raise InputError(where, None, column, f"text, found type {col.type}")
    if kind is ColumnType.ACTION:
        codes = pc.index_in(pc.utf8_trim_whitespace(col), value_set=_ACTION_NAMES)
        bad = _first_true(pc.is_null(codes))
        if bad is not None:
            names = ", ".join(a.value for a in ACTIONS)
            raise InputError(where, bad + 1, column, f"one of {names}, found {col[bad].as_py()!r}")
        return np.asarray(codes.cast(pa.int8()), dtype=np.int8)
    return np.asarray(col.to_pylist(), dtype=object)


def _read_table(name: str, file: Path) -> dict[str, NDArray[Any]]:
    """The columns of table `name` in `file`; a left-out optional column is absent, or filled
    with its default if it has one."""
    table = _read_raw(file)
    out: dict[str, NDArray[Any]] = {}
    for spec in TABLES[name].columns:
        if spec.name not in table.column_names:
            if not spec.optional:
                got = ", ".join(table.column_names) or "none"
                raise InputError(str(file), None, spec.name, f"a column named {spec.name!r} (columns: {got})")
            if spec.default is not None:
                out[spec.name] = np.full(table.num_rows, spec.default, dtype=np.bool_)
            continue
        out[spec.name] = _convert(file, spec, table.column(spec.name))
    return out


def _texts(values: NDArray[Any] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(str(v) for v in values.tolist())


def read_run(path: str | os.PathLike[str]) -> Run:
    """Read and check the input tables of a run folder.

    Raises
    ------
    InputError
        A table or column is missing or a cell is not what §5 expects; the message names
        the file, the 1-based data row and the column.
    RunDirError
        `path` is not a folder.

    Examples
    --------
    >>> run = read_run("data/samples/story")
    >>> run.population.n_users, len(run.events), len(run.policy)
    (7, 46, 2)
    """
    root = Path(path)
    files = _find_tables(root)
    cols = {name: _read_table(name, file) for name, file in files.items()}
    pods, users, cross = cols["pods"], cols["users"], cols["crosspod"]
    population = Population(
        pod_id=pods["pod_id"],
        pod_name=tuple(str(n) for n in pods["name"].tolist()),
        pod_private=pods["private"],
        user_id=users["user_id"],
        user_pod=users["pod_id"],
        user_external=users["external"],
        crosspod=np.stack([cross["pod_a"], cross["pod_b"]], axis=1).astype(np.int64),
        user_name=_texts(users.get("username")),
        user_display_name=_texts(users.get("display_name")),
        user_email=_texts(users.get("email")),
    )
    pol = cols.get("policy")
    policy = (
        Policy(ts=pol["ts"], pod_a=pol["pod_a"], pod_b=pol["pod_b"], crosspod=pol["crosspod"])
        if pol is not None
        else Policy.empty()
    )
    policy_pods = np.stack([policy.pod_a, policy.pod_b], axis=1) if pol is not None else None
    problem = next(problems(population, policy_pods=policy_pods), None)
    if problem is not None:
        row = problem.row + 1 if problem.row is not None else None
        raise InputError(str(files[problem.table]), row, problem.column, problem.expected)
    ev = cols["events"]
    events = Events(ts=ev["ts"], actor=ev["actor"], target=ev["target"], action=ev["action"])
    return Run(root, population._normalised(), events, policy, files)


# -- writing ------------------------------------------------------------------------------


def _write_parquet(table: pa.Table, target: Path) -> None:
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, **_PARQUET_OPTIONS)


def _write_csv(table: pa.Table, target: Path) -> None:
    # Arrow quotes every string; the outputs hold only ids, numbers and status keys (no commas
    # or quotes), so they are written bare, as spreadsheet users and the vectors expect.
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with atomic_path(target) as tmp, tmp.open("wb") as fh:
        fh.write((",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, fh, write_options=options)


def _write_text(text: str, target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _labels(codes: NDArray[np.integer[Any]], names: list[str], as_strings: bool = True) -> pa.Array:
    """String column from small-integer codes; ``-1`` becomes null.

    With `as_strings` false the column stays an Arrow dictionary of the same strings: the
    Parquet writer stores it dictionary-encoded as it is, instead of building every string
    and hashing it again (at 10^8 rows, gigabytes and many seconds).
    """
    mask = codes < 0
    # int8 codes: every label list here is short (statuses, reasons, actions).
    indices = pa.array(np.where(mask, 0, codes).astype(np.int8), mask=mask)
    labels = pa.DictionaryArray.from_arrays(indices, pa.array(names, pa.string()))
    return labels.cast(pa.string()) if as_strings else labels


def _arrow_type(column: Column) -> pa.DataType:
    """The Arrow type a column is written as (§5: output types are fixed, never chosen by
    the data)."""
    return _ARROW_TYPES[column.type]


def _arrow_schema(table: Table, names: Collection[str], *, as_strings: bool = True) -> pa.Schema:
    """The Arrow schema of the columns of `table` named in `names`, in the table's order.

    Every field is nullable whatever the column's nullability: a non-nullable field is written
    as a REQUIRED Parquet column, which would change the bytes of every file simkit writes;
    a null where none may be is refused when reading instead. With `as_strings` false a
    column held as codes is an Arrow dictionary of its strings (see :func:`_labels`).
    """
    fields = []
    for column in table.columns:
        if column.name not in names:
            continue
        dtype = _arrow_type(column)
        if not as_strings and (table.name, column.name) in _CODE_LABELS:
            dtype = pa.dictionary(pa.int8(), dtype)
        fields.append(pa.field(column.name, dtype))
    return pa.schema(fields)


def _arrow_table(name: str, values: Mapping[str, Any], *, as_strings: bool) -> pa.Table:
    """Table `name` of the schema from the values of its columns, in its order and types.

    A column held as codes (an action, a reason, a status) is given as its small-integer
    codes; an optional column may be left out of `values`, and is then left out of the table.
    """
    table = TABLES[name]
    unknown = sorted(set(values) - set(table.names))
    if unknown:
        raise KeyError(f"{name}: no such columns {', '.join(unknown)}")
    arrays: list[pa.Array] = []
    for column in table.columns:
        if column.name not in values:
            if column.optional:
                continue
            raise KeyError(f"{name}: no values for column {column.name!r}")
        labels = _CODE_LABELS.get((name, column.name))
        value = values[column.name]
        if labels is not None:
            arrays.append(_labels(value, labels, as_strings))
        else:
            arrays.append(pa.array(value, _arrow_type(column)))
    return pa.Table.from_arrays(arrays, schema=_arrow_schema(table, values.keys(), as_strings=as_strings))


def outcomes_table(outcomes: Outcomes, *, as_strings: bool = True) -> pa.Table:
    """Outcomes as an Arrow table with the fixed types of §5.

    `as_strings=False` gives `reason` and `status` as Arrow dictionary columns of the same
    strings, for writing files (see :func:`write_outputs`).
    """
    # The fields of Outcomes are named after the columns of the outcomes table.
    values = {name: getattr(outcomes, name) for name in TABLES["outcomes"].names}
    return _arrow_table("outcomes", values, as_strings=as_strings)


def connections_table(connections: Connections, *, as_strings: bool = True) -> pa.Table:
    """Final connections as an Arrow table with the fixed types of §5 (`as_strings`: as
    for :func:`outcomes_table`)."""
    # The fields of Connections are named after the columns of the connections table.
    values = {name: getattr(connections, name) for name in TABLES["connections"].names}
    return _arrow_table("connections", values, as_strings=as_strings)


def input_tables(
    population: Population, events: Events, policy: Policy, *, as_strings: bool = True
) -> dict[str, pa.Table]:
    """The input tables of a run as Arrow tables, in the columns of §5 (`as_strings`: as
    for :func:`outcomes_table`, for the `action` column).

    The optional columns of `users` are written only where the population has them, so a
    population without them gives exactly the three columns `user_id`, `pod_id`, `external`.
    """
    optional_users = {
        "username": population.user_name,
        "display_name": population.user_display_name,
        "email": population.user_email,
    }
    values: dict[str, dict[str, Any]] = {
        "pods": {
            "pod_id": population.pod_id,
            "name": list(population.pod_name),
            "private": population.pod_private,
        },
        "users": {
            "user_id": population.user_id,
            "pod_id": population.user_pod,
            "external": population.user_external,
            **{column: list(texts) for column, texts in optional_users.items() if texts is not None},
        },
        "crosspod": {"pod_a": population.crosspod[:, 0], "pod_b": population.crosspod[:, 1]},
        # The fields of Policy and Events are named after the columns of their tables.
        "policy": {name: getattr(policy, name) for name in TABLES["policy"].names},
        "events": {name: getattr(events, name) for name in TABLES["events"].names},
    }
    return {name: _arrow_table(name, values[name], as_strings=as_strings) for name in INPUT_TABLES}


def write_inputs(
    path: str | os.PathLike[str], population: Population, events: Events, policy: Policy
) -> dict[str, Path]:
    """Write a run's input tables as Parquet into `path` (created if missing)."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, table in input_tables(population, events, policy, as_strings=False).items():
        target = root / f"{name}.parquet"
        _write_parquet(table, target)
        written[name] = target
    return written


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_outputs(
    out: str | os.PathLike[str],
    run: Run,
    result: Replay,
    *,
    csv: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write a replay's outputs and manifest into `out` (created if missing).

    Each file goes to a temporary name first and is renamed into place, the manifest
    last. The manifest names the engine that made `result` (``result.engine``, set by
    :func:`simkit.engines.replay`); `extra` adds keys to it (a generated run's scenario
    and seed).
    """
    if result.engine is None:
        raise ValueError("write_outputs: result.engine is unset; replay with simkit.engines.replay")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    tables = {
        "outcomes": outcomes_table(result.outcomes, as_strings=False),
        "connections": connections_table(result.connections, as_strings=False),
    }
    written: dict[str, Path] = {}
    for name, table in tables.items():
        written[name] = root / f"{name}.parquet"
        _write_parquet(table, written[name])
        if csv:
            written[f"{name}.csv"] = root / f"{name}.csv"
            _write_csv(table, written[f"{name}.csv"])
    manifest: dict[str, Any] = {
        "engine": result.engine,
        "inputs": {
            name: {"file": file.name, "rows": _rows(name, run), "sha256": _sha256(file)}
            for name, file in sorted(run.files.items())
        },
        "outputs": {
            name: {
                "file": written[name].name,
                "rows": tables[name].num_rows,
                "sha256": _sha256(written[name]),
            }
            for name in tables
        },
        "seed": None,
        "summary": {
            "answers_by_code": {str(k): v for k, v in result.outcomes.code_counts().items()},
            "connections_by_status": result.connections.status_counts(),
            "events": len(result.outcomes),
        },
        "versions": {
            "numpy": np.__version__,
            "pyarrow": pa.__version__,
            "python": platform.python_version(),
            "simkit": __version__,
        },
    }
    manifest.update(extra or {})
    written["manifest"] = root / "manifest.json"
    _write_text(json.dumps(manifest, sort_keys=True, indent=2) + "\n", written["manifest"])
    return written


def _rows(name: str, run: Run) -> int:
    return {
        "pods": run.population.n_pods,
        "users": run.population.n_users,
        "crosspod": len(run.population.crosspod),
        "policy": len(run.policy),
        "events": len(run.events),
    }[name]
