"""`runs`: run directories, the interchange format of ``connections.md`` §5.

Reads the input tables of a run folder (CSV or Parquet) into a :class:`Run`, refusing bad
input with an :class:`~simkit.errors.InputError` that names the file, the 1-based data row
and the column; writes the inputs of a generated run, and the outputs of a replay
(``outcomes.parquet``, ``connections.parquet``, ``manifest.json``), each through a
temporary name and a rename so that no half-written file is ever left. It never modifies
an input file. This module is the edge where arrays become Arrow tables; it holds no
rules, runs no engine.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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

INPUT_TABLES: tuple[str, ...] = ("pods", "users", "crosspod", "policy", "events")
OUTPUT_FILES: tuple[str, ...] = ("outcomes.parquet", "connections.parquet", "manifest.json")

_OPTIONAL_TABLES = {"policy"}
_ColumnKind = Literal["int", "ts", "bool", "str", "action"]
# table -> [(column, kind, default when the column is left out)]
_COLUMNS: dict[str, list[tuple[str, _ColumnKind, bool | None]]] = {
    "pods": [("pod_id", "int", None), ("name", "str", None), ("private", "bool", True)],
    "users": [("user_id", "int", None), ("pod_id", "int", None), ("external", "bool", True)],
    "crosspod": [("pod_a", "int", None), ("pod_b", "int", None)],
    "policy": [
        ("ts", "ts", None),
        ("pod_a", "int", None),
        ("pod_b", "int", None),
        ("crosspod", "bool", None),
    ],
    "events": [
        ("ts", "ts", None),
        ("actor", "int", None),
        ("target", "int", None),
        ("action", "action", None),
    ],
}
_ACTION_NAMES = pa.array([a.value for a in ACTIONS])
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
        elif name not in _OPTIONAL_TABLES:
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


def _convert(file: Path, column: str, kind: _ColumnKind, col: pa.ChunkedArray) -> NDArray[Any]:
    """One column as a numpy array of its kind, or an InputError at its first bad cell."""
    where = str(file)
    nulls = _first_true(pc.is_null(col))
    if nulls is not None:
        raise InputError(where, nulls + 1, column, "a value (the cell is empty)")
    col = _as_strings(col)
    is_text = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
    if is_text:
        empty = _first_true(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0))
        if empty is not None:
            raise InputError(where, empty + 1, column, "a value (the cell is empty)")
    if kind in ("int", "ts"):
        if kind == "ts" and pa.types.is_timestamp(col.type):
            return np.asarray(col.cast(pa.timestamp("ms")).cast(pa.int64()), dtype=np.int64)
        if pa.types.is_integer(col.type):
            return np.asarray(col.cast(pa.int64()), dtype=np.int64)
        what = "an integer (milliseconds since the epoch)" if kind == "ts" else "an integer id"
        if not is_text:
            raise InputError(where, None, column, f"{what}, found type {col.type}")
        bad = _first_true(pc.invert(pc.match_substring_regex(col, _INT_PATTERN)))
        if bad is not None:
            raise InputError(where, bad + 1, column, f"{what}, found {col[bad].as_py()!r}")
        try:
            return np.asarray(pc.utf8_trim_whitespace(col).cast(pa.int64()), dtype=np.int64)
        except pa.ArrowInvalid:
            raise InputError(where, None, column, f"{what} that fits in 64 bits") from None
    if kind == "bool":
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
    if kind == "action":
        codes = pc.index_in(pc.utf8_trim_whitespace(col), value_set=_ACTION_NAMES)
        bad = _first_true(pc.is_null(codes))
        if bad is not None:
            names = ", ".join(a.value for a in ACTIONS)
            raise InputError(where, bad + 1, column, f"one of {names}, found {col[bad].as_py()!r}")
        return np.asarray(codes.cast(pa.int8()), dtype=np.int8)
    return np.asarray(col.to_pylist(), dtype=object)


def _read_table(name: str, file: Path) -> dict[str, NDArray[Any]]:
    table = _read_raw(file)
    out: dict[str, NDArray[Any]] = {}
    for column, kind, default in _COLUMNS[name]:
        if column not in table.column_names:
            if default is None:
                got = ", ".join(table.column_names) or "none"
                raise InputError(str(file), None, column, f"a column named {column!r} (columns: {got})")
            out[column] = np.full(table.num_rows, default, dtype=np.bool_)
            continue
        out[column] = _convert(file, column, kind, table.column(column))
    return out


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


def outcomes_table(outcomes: Outcomes, *, as_strings: bool = True) -> pa.Table:
    """Outcomes as an Arrow table with the fixed types of §5.

    `as_strings=False` gives `reason` and `status` as Arrow dictionary columns of the same
    strings, for writing files (see :func:`write_outputs`).
    """
    return pa.table(
        {
            "code": pa.array(outcomes.code, pa.int16()),
            "reason": _labels(outcomes.reason, [r.value for r in REASONS], as_strings),
            "status": _labels(outcomes.status, [s.value for s in STATUSES], as_strings),
            "request_counter": pa.array(outcomes.request_counter, pa.int32()),
        }
    )


def connections_table(connections: Connections, *, as_strings: bool = True) -> pa.Table:
    """Final connections as an Arrow table with the fixed types of §5 (`as_strings`: as
    for :func:`outcomes_table`)."""
    return pa.table(
        {
            "user_a": pa.array(connections.user_a, pa.int64()),
            "user_b": pa.array(connections.user_b, pa.int64()),
            "requester": pa.array(connections.requester, pa.int64()),
            "status": _labels(connections.status, [k.name for k in Kind], as_strings),
            "request_counter": pa.array(connections.request_counter, pa.int32()),
            "first_requested_at": pa.array(connections.first_requested_at, pa.int64()),
            "updated_at": pa.array(connections.updated_at, pa.int64()),
        }
    )


def input_tables(
    population: Population, events: Events, policy: Policy, *, as_strings: bool = True
) -> dict[str, pa.Table]:
    """The input tables of a run as Arrow tables, in the columns of §5 (`as_strings`: as
    for :func:`outcomes_table`, for the `action` column)."""
    return {
        "pods": pa.table(
            {
                "pod_id": pa.array(population.pod_id, pa.int64()),
                "name": pa.array(list(population.pod_name), pa.string()),
                "private": pa.array(population.pod_private, pa.bool_()),
            }
        ),
        "users": pa.table(
            {
                "user_id": pa.array(population.user_id, pa.int64()),
                "pod_id": pa.array(population.user_pod, pa.int64()),
                "external": pa.array(population.user_external, pa.bool_()),
            }
        ),
        "crosspod": pa.table(
            {
                "pod_a": pa.array(population.crosspod[:, 0], pa.int64()),
                "pod_b": pa.array(population.crosspod[:, 1], pa.int64()),
            }
        ),
        "policy": pa.table(
            {
                "ts": pa.array(policy.ts, pa.int64()),
                "pod_a": pa.array(policy.pod_a, pa.int64()),
                "pod_b": pa.array(policy.pod_b, pa.int64()),
                "crosspod": pa.array(policy.crosspod, pa.bool_()),
            }
        ),
        "events": pa.table(
            {
                "ts": pa.array(events.ts, pa.int64()),
                "actor": pa.array(events.actor, pa.int64()),
                "target": pa.array(events.target, pa.int64()),
                "action": _labels(events.action, [a.value for a in ACTIONS], as_strings),
            }
        ),
    }


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
