"""`schema`: the columns of every table of a run folder (``connections.md`` §5), as data.

One :class:`Table` per table: its columns in order, each a :class:`Column` with a logical
type (:class:`ColumnType`), whether it may hold nulls, whether an input file may leave it
out, and the value it then takes. The edges build their own forms from these:
:mod:`simkit.io.runs` reads, checks and writes Arrow and Parquet by them, and
:mod:`simkit.analysis` takes its column names from them, so that a column is changed in one
place. This module is plain data: it imports only the standard library, never pyarrow or
pandas.

Examples
--------
>>> TABLES["users"].names
('user_id', 'pod_id', 'external', 'username', 'display_name', 'email')
>>> TABLES["users"].column("external")
Column(name='external', type=<ColumnType.BOOL: 'bool'>, nullable=False, optional=True, default=True)
>>> [name for name in INPUT_TABLES if TABLES[name].optional]
['policy']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

__all__ = ["INPUT_TABLES", "OUTPUT_TABLES", "OWN_TABLES", "TABLES", "Column", "ColumnType", "Table"]


class ColumnType(StrEnum):
    """The logical type of a column; each edge maps it to a type of its own (Arrow, pandas).

    ``ID`` is an int64 identifier (a user or a pod); ``TS`` an int64 count of milliseconds
    since the epoch; ``ACTION`` one of ``connect``, ``accept``, ``reject``, ``remove``;
    ``LABEL`` a string from a fixed set of keys (a reason, a status); ``STR`` free text;
    ``BOOL``, ``INT16`` and ``INT32`` what they say.
    """

    ID = "id"
    TS = "ts"
    BOOL = "bool"
    STR = "str"
    ACTION = "action"
    LABEL = "label"
    INT16 = "int16"
    INT32 = "int32"


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table.

    Parameters
    ----------
    name : str
        The column's name in files and frames.
    type : ColumnType
        Its logical type.
    nullable : bool
        Whether a cell may be null. Input columns never are: §5 refuses an empty cell.
    optional : bool
        Whether an input file may leave the column out.
    default : bool, optional
        The value every row takes when an optional column is left out (``private`` and
        ``external`` are true); ``None`` when a left-out column has no value at all (a user
        without a ``username`` is known as ``user<user_id>``, see
        :meth:`simkit.population.Population.username`).
    """

    name: str
    type: ColumnType
    nullable: bool = False
    optional: bool = False
    default: bool | None = None

    def __post_init__(self) -> None:
        if self.default is not None and not self.optional:
            raise ValueError(f"column {self.name!r}: only an optional column has a default")


@dataclass(frozen=True, slots=True)
class Table:
    """A table of a run folder: its name, its columns in order, and whether it may be absent."""

    name: str
    columns: tuple[Column, ...]
    optional: bool = False

    def __post_init__(self) -> None:
        if len(set(self.names)) != len(self.columns):
            raise ValueError(f"table {self.name!r}: column names repeat ({', '.join(self.names)})")

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        """The column called `name`; ``KeyError`` if there is none."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


_ID, _TS, _BOOL, _STR = ColumnType.ID, ColumnType.TS, ColumnType.BOOL, ColumnType.STR

_ALL = (
    Table(
        "pods",
        (
            Column("pod_id", _ID),
            Column("name", _STR),
            Column("private", _BOOL, optional=True, default=True),
        ),
    ),
    Table(
        "users",
        (
            Column("user_id", _ID),
            Column("pod_id", _ID),
            Column("external", _BOOL, optional=True, default=True),
            Column("username", _STR, optional=True),
            Column("display_name", _STR, optional=True),
            Column("email", _STR, optional=True),
        ),
    ),
    Table("crosspod", (Column("pod_a", _ID), Column("pod_b", _ID))),
    Table(
        "policy",
        (Column("ts", _TS), Column("pod_a", _ID), Column("pod_b", _ID), Column("crosspod", _BOOL)),
        optional=True,
    ),
    Table(
        "events",
        (Column("ts", _TS), Column("actor", _ID), Column("target", _ID), Column("action", ColumnType.ACTION)),
    ),
    Table(
        "outcomes",
        (
            Column("code", ColumnType.INT16),
            Column("reason", ColumnType.LABEL, nullable=True),
            Column("status", ColumnType.LABEL, nullable=True),
            Column("request_counter", ColumnType.INT32),
        ),
    ),
    Table(
        "connections",
        (
            Column("user_a", _ID),
            Column("user_b", _ID),
            Column("requester", _ID),
            Column("status", ColumnType.LABEL),
            Column("request_counter", ColumnType.INT32),
            Column("first_requested_at", _TS),
            Column("updated_at", _TS),
        ),
    ),
    # simkit's own table, not an API input: the wishes a synthetic run drew (docs/scenarios.md).
    Table(
        "demand",
        (
            Column("ts", _TS),
            Column("user", _ID),
            Column("target", _ID),
            Column("fate", ColumnType.LABEL),
            Column("sent_ts", _TS, nullable=True),
        ),
        optional=True,
    ),
)

TABLES: Mapping[str, Table] = MappingProxyType({t.name: t for t in _ALL})
"""Every table of §5 by name: the inputs, the outputs of a replay, then simkit's own tables."""

INPUT_TABLES: tuple[str, ...] = ("pods", "users", "crosspod", "policy", "events")
"""The input tables of a run folder, in the order they are read."""

OUTPUT_TABLES: tuple[str, ...] = ("outcomes", "connections")
"""The tables a replay writes."""

OWN_TABLES: tuple[str, ...] = ("demand",)
"""simkit's own tables, not API inputs: a synthetic run writes them, a replay ignores them."""
