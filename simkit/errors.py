"""`errors`: the exceptions simkit raises for problems a user can fix.

The hierarchy::

    SimkitError                 anything simkit refuses, with a one-line message
    ├── InputError              a bad input table: names file, 1-based data row, column
    │   └── DatafeedError       a bad datafeed file: names file, 1-based line, field
    ├── ScenarioError           a bad scenario (file, --set or Python): names source and key
    ├── RunDirError             a run folder that cannot be read or written as asked
    ├── GraphTooLargeError      a networkx user graph larger than asked for (sample instead)
    └── SweepError              a sweep that cannot run as asked (grid, baseline, executor)

The command line prints ``str(error)`` as one line on stderr and exits non-zero; Python
callers can catch :class:`SimkitError` alone. What the system refuses (a folder that may not
be written, a full disk) stays an :class:`OSError` naming its file, which the command line
prints as one line too. Programming errors stay ordinary Python exceptions.
"""

from __future__ import annotations

__all__ = [
    "DatafeedError",
    "GraphTooLargeError",
    "InputError",
    "RunDirError",
    "ScenarioError",
    "SimkitError",
    "SweepError",
]


class SimkitError(Exception):
    """Base of every error simkit reports to its user."""


class InputError(SimkitError):
    """An input table that breaks the rules of ``connections.md`` §5.

    Examples
    --------
    >>> str(InputError("run/events.csv", 3, "action", "one of connect, accept, reject, remove"))
    "run/events.csv: row 3, column 'action': expected one of connect, accept, reject, remove"
    """

    def __init__(self, file: str, row: int | None, column: str | None, expected: str) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.expected = expected
        where = [f"row {row}"] if row is not None else []
        if column is not None:
            where.append(f"column {column!r}")
        text = f"{file}: {', '.join(where)}:" if where else f"{file}:"
        super().__init__(f"{text} expected {expected}")


class DatafeedError(InputError):
    """A datafeed file (``connections.md`` §6) that cannot be read as V4Events.

    It names the 1-based line where the event starts and the field, as a dotted path, in
    place of a row and a column.

    Examples
    --------
    >>> str(DatafeedError("feed.jsonl", 4, "timestamp", "an integer, found the string '12:00'"))
    "feed.jsonl: line 4, field 'timestamp': expected an integer, found the string '12:00'"
    """

    def __init__(self, file: str, line: int | None, field: str | None, expected: str) -> None:
        super().__init__(file, line, field, expected)
        self.line = line
        self.field = field
        where = [f"line {line}"] if line is not None else []
        if field:
            where.append(f"field {field!r}")
        text = f"{file}: {', '.join(where)}:" if where else f"{file}:"
        self.args = (f"{text} expected {expected}",)


class ScenarioError(SimkitError):
    """A scenario file with an unknown key, a wrong type or an impossible value."""

    def __init__(self, file: str, key: str, expected: str) -> None:
        self.file = file
        self.key = key
        self.expected = expected
        super().__init__(f"{file}: {key}: expected {expected}")


class RunDirError(SimkitError):
    """A run folder that is missing, not a folder, or not empty when it must be."""


class SweepError(SimkitError):
    """A sweep that cannot run as asked: a bad grid, baseline or executor, or a folder in use."""


class GraphTooLargeError(SimkitError):
    """A networkx user graph asked of a run with more edges than the stated limit."""
