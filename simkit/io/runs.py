"""`runs`: run directories, the interchange format of ``connections.md`` §5.

Reads the input tables of a run folder (CSV or Parquet) into a :class:`Run`, refusing bad
input with an :class:`~simkit.errors.InputError` that names the file, the 1-based data row
and the column; writes the inputs of a generated run, and the outputs of a replay
(``outcomes.parquet``, ``connections.parquet``, ``manifest.json``), each through a temporary
name and a rename so that no half-written file is ever left; reads those outputs back,
checked (:func:`read_outputs`). It also writes and reads ``demand.parquet``, simkit's own
table of the wishes behind a synthetic log (:func:`write_demand`, :func:`read_demand`),
which no API input depends on and a replay ignores. It never modifies an input file. This
module is the edge where arrays become Arrow tables; it holds no rules, runs no engine. The
tables and their columns are those of :mod:`simkit.schema`; the Arrow types are built from
it here.

Every error of pyarrow's readers becomes an :class:`~simkit.errors.InputError` here, and an
OSError (a file that may not be read, a full disk) names the file it concerns, so that the
command line can print each as one line. pyarrow's CSV reader is not trusted to return
every row: the records of a CSV file are counted here from its bytes (see "reading: CSV").
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import re
import stat
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
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
from simkit.events import FATES, Demand, Events, Fate, Policy
from simkit.io.commit import RunFolderTransaction, alongside, file_sha256, settle
from simkit.population import Population, first_unknown, problems
from simkit.results import Connections, Outcomes, Replay
from simkit.rules import ACTIONS, REASONS, STATUSES, Kind
from simkit.schema import INPUT_TABLES, OWN_TABLES, TABLES, Column, ColumnType, Table
from simkit.version import __version__

__all__ = [
    "CSV_OUTPUTS",
    "INPUT_TABLES",
    "OUTPUT_FILES",
    "OWN_FILES",
    "POPULATION_TABLES",
    "RUN_FILES",
    "Run",
    "connections_table",
    "demand_table",
    "input_tables",
    "label_codes",
    "outcomes_table",
    "read_demand",
    "read_outputs",
    "read_population",
    "read_run",
    "recorded_inputs_match",
    "verify_run",
    "write_demand",
    "write_inputs",
    "write_outputs",
]

OUTPUT_FILES: tuple[str, ...] = ("outcomes.parquet", "connections.parquet", "manifest.json")
OWN_FILES: tuple[str, ...] = tuple(f"{name}.parquet" for name in OWN_TABLES)
"""The files of simkit's own tables (``demand.parquet``): Parquet only, written by a synthetic
run; a CSV file of the same name is no table of simkit's and is left alone like any other."""

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


def _strings(texts: list[str]) -> pa.Array:
    """An Arrow string array built from its buffers: ``pa.array`` would import pandas when
    this module is imported, and reading a run imports it later, in parallel with reading
    the events (see :func:`_read_tables`)."""
    encoded = [t.encode() for t in texts]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return pa.StringArray.from_buffers(len(encoded), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded)))


# (table, column) -> the label of each code, for the columns held as small-integer codes.
_CODE_LABELS: dict[tuple[str, str], list[str]] = {
    ("events", "action"): [a.value for a in ACTIONS],
    ("outcomes", "reason"): [r.value for r in REASONS],
    ("outcomes", "status"): [s.value for s in STATUSES],
    ("connections", "status"): [k.name for k in Kind],
    ("demand", "fate"): list(FATES),
}
_ACTION_NAMES = _strings(_CODE_LABELS["events", "action"])
_INT_PATTERN = r"^\s*[+-]?[0-9]+\s*$"
_BOOL_TRUE = _strings(["true", "1"])
_BOOL_NAMES = _strings(["true", "false", "1", "0"])
# Without the Arrow schema stored, a column written from an Arrow dictionary (see _labels) is
# a plain string column in the file (§5) and reads back as one.
_PARQUET_OPTIONS: dict[str, Any] = {"store_schema": False}
# Ids and times, mostly distinct, are written DELTA_BINARY_PACKED: measured on the whole
# network (`benchmarks/bench_write.py --encodings`), 1.6-3x faster to write than a dictionary
# that overflows into plain pages anyway, and 25-50 % smaller (the demand's half-empty
# `sent_ts` grows, but is still written faster). Every other column (actions, reasons,
# statuses, fates, codes, counters, flags, names) keeps its dictionary: faster and smaller
# for a handful of values.
_DELTA_TYPES = frozenset({ColumnType.ID, ColumnType.TS})
# [C] Those columns are not compressed again: DELTA_BINARY_PACKED bit-packs them already, and
# zstd on top saved 0-4 % of their size for 10-25 % of their write time (whole network,
# first 20M rows: `connections.parquet` 2.08 s, 278 MB zstd against 1.63 s, 290 MB; the
# events 1.09 s, 137 MB against 0.96 s, 138 MB). The dictionary-encoded columns keep zstd.
# [C] Only those columns carry statistics (each row group's min, max and null count): a
# reader filtering on a time or an id skips row groups by them, while every row group holds
# nearly every label, code and counter, so theirs would skip nothing. Measured on the whole
# network: `outcomes.parquet`, which has no id or time, is written in 3.6 s instead of 5.0 s
# and 2 % smaller; per column, `benchmarks/bench_write.py --encodings RUN`.


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


def _exists(path: Path) -> bool:
    """Whether anything stands at `path`, a link to nothing included. A folder that may not
    be searched raises (PermissionError) rather than make its tables look missing."""
    try:
        path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _not_a_file(path: Path) -> str | None:
    """What stands at `path` if it is not a regular file (or a link to one); None if it is.

    Checked before a table is opened: opening a named pipe would wait for a writer forever.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a link to a missing file" if path.is_symlink() else "nothing"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def _find_tables(path: Path, names: Collection[str] = INPUT_TABLES) -> dict[str, Path]:
    """The file of each table of `names` in the folder `path`, refusing a missing table, a
    table present twice (CSV and Parquet), and anything but a file in a table's place."""
    if not _exists(path):
        raise RunDirError(f"{path}: no such run folder")
    if not path.is_dir():
        raise RunDirError(f"{path}: not a folder; expected a run folder of input tables")
    found: dict[str, Path] = {}
    for name in names:
        csv_file, parquet = path / f"{name}.csv", path / f"{name}.parquet"
        present = [file for file in (csv_file, parquet) if _exists(file)]
        if len(present) == 2:
            raise InputError(
                str(parquet),
                None,
                None,
                f"one file for table {name!r}, found both {csv_file.name} and {parquet.name}",
            )
        if not present:
            if not TABLES[name].optional:
                raise InputError(
                    str(csv_file),
                    None,
                    None,
                    f"table {name!r} as {csv_file.name} or {parquet.name} (missing)",
                )
            continue
        other = _not_a_file(present[0])
        if other is not None:
            raise InputError(str(present[0]), None, None, f"a file holding table {name!r}, found {other}")
        found[name] = present[0]
    return found


_ERRNO_OF: dict[type[OSError], int] = {
    FileNotFoundError: errno.ENOENT,
    PermissionError: errno.EACCES,
    IsADirectoryError: errno.EISDIR,
    NotADirectoryError: errno.ENOTDIR,
}


@contextmanager
def _naming(file: Path) -> Iterator[None]:
    """Make an OSError name `file` and say what went wrong in the system's words.

    pyarrow's errors name no file and wrap the system's message ("Error writing bytes to
    file. Detail: [errno 28] ..."); a write through a temporary name names that name.
    """
    try:
        yield
    except OSError as exc:
        named = exc.filename is not None and not Path(os.fsdecode(exc.filename)).name.startswith(
            f".{file.name}."
        )
        if named and exc.strerror:
            raise
        where = os.fsdecode(exc.filename) if named else str(file)
        text = str(exc)
        number = exc.errno
        if number is None:
            found = re.search(r"\[errno (\d+)\]", text, flags=re.IGNORECASE)
            number = int(found.group(1)) if found else _ERRNO_OF.get(type(exc))
        if number is not None:
            raise OSError(number, os.strerror(number), where) from None
        plain = OSError(text.splitlines()[0] if text else type(exc).__name__)
        plain.filename, plain.strerror = where, plain.args[0]
        raise plain from None


def _arrow_detail(exc: Exception) -> str:
    """The first line of an Arrow error, without its prefix."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r"^(CSV parse error|In CSV column #\d+): ", "", text)


def _first_failure(col: pa.ChunkedArray, step: Callable[[pa.ChunkedArray], Any]) -> tuple[Any, int | None]:
    """``(step(col), None)``, or ``(None, i)`` where `i` is the first element `step` fails on.

    `step` works element by element and raises ``pa.ArrowInvalid`` for a bad element (a
    lossy cast, a string that is not UTF-8); the element is found by halving, in about
    twice the time of one step over `col`.
    """
    try:
        return step(col), None
    except pa.ArrowInvalid:
        pass
    lo, hi = 0, len(col)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            step(col.slice(lo, mid - lo))
        except pa.ArrowInvalid:
            hi = mid
        else:
            lo = mid
    return None, lo


# -- reading: CSV -----------------------------------------------------------------------------
#
# pyarrow's CSV reader can drop rows without a word: a stray quote opens a cell that runs
# on to the end of the reader's block. So the rows it returns are checked against a count
# of the file's records made here from the raw bytes, independently of it. A record ends at
# a line end (LF, CRLF or a lone CR) outside quotes; a byte is inside quotes when an odd
# number of quotes precede it. That parity is exact because a quote may only open a cell or
# close it (a quote inside a quoted cell is written twice, and the pair keeps the parity);
# any other quote is refused with its row. A blank line is no row (pyarrow skips it), but
# rows keep the numbers of the file: row N is the N-th record after the header, blank lines
# counted, so that without quoted line breaks an editor shows row N on line N + 1.

_NL, _CR, _QUOTE, _COMMA = 0x0A, 0x0D, 0x22, 0x2C
_EOF = -1
# The bytes a quote that opens a cell may follow, and (shifted by one, _EOF first) those a
# quote that closes one may precede.
_OPENS_AFTER = np.isin(np.arange(256), [_COMMA, _NL, _CR, _QUOTE])
_CLOSES_BEFORE = np.isin(np.arange(-1, 256), [_EOF, _COMMA, _NL, _CR, _QUOTE])
_BOM = b"\xef\xbb\xbf"
_SCAN_BLOCK = 1 << 18  # bytes per step of the count: its arrays stay in the caches
_HEADER_LIMIT = 1 << 20
_ARROW_BLOCK = 1 << 20  # pyarrow's default block; a longer record gets a larger one
_ARROW_BLOCK_LIMIT = 1 << 30


def _blocks(fh: Any) -> Iterator[tuple[bytearray, int, int, int]]:
    """``(buffer, first, end, next byte or _EOF)`` for each block of an open binary file.

    Two buffers alternate so that each block comes with the byte after it (a CR ends a
    record only if no LF follows). A UTF-8 byte order mark is stepped over.
    """
    buffers = (bytearray(_SCAN_BLOCK), bytearray(_SCAN_BLOCK))
    current, n, which = buffers[0], fh.readinto(buffers[0]), 0
    first = len(_BOM) if n >= len(_BOM) and current[: len(_BOM)] == _BOM else 0
    while n:
        following = buffers[1 - which]
        m = fh.readinto(following)
        yield current, first, n, following[0] if m else _EOF
        current, n, which, first = following, m, 1 - which, 0


class _Records:
    """A quote-aware count of a CSV file's records, fed block by block.

    Besides the count it finds the header (the first record that is not blank), whether a
    line break sits inside a quoted cell (pyarrow must then be told, at a cost in speed),
    and whether an ``x`` follows the header (pyarrow reads ``0x1F`` as an integer, §5 does
    not). With `detail` it keeps, for every record, where it ends, whether it is blank and
    its number of cells. The first quote out of place, or one opening a cell that never
    closes, stops the count: `problem` holds what, its offset, the index of its record
    among all records (blank ones included) and the offset where that record starts.
    """

    def __init__(self, detail: bool = False) -> None:
        self.detail = detail
        self.records = 0  # records that are not blank, the header included
        self.blank = 0
        # Blank lines were counted as records in blocks without quotes or CRs (see `feed`).
        self.blank_unknown = False
        self.blank_before_header = 0
        self.header: bytes | None = None
        self.quoted_breaks = False
        self.hex_marks = False
        self.problem: tuple[str, int, int, int] | None = None
        self.ends: list[NDArray[np.int64]] = []
        self.blanks: list[NDArray[np.bool_]] = []
        self.cells: list[NDArray[np.int64]] = []
        self._started = False
        self._inside = 0  # 1 inside a quoted cell
        self._prev = _NL  # the byte before the block: the file starts as if after a line end
        self._last_end = -1  # offset of the line end of the last record
        self._after_header = 0  # where the search for an `x` starts
        self._pending = bytearray()  # the open record's bytes, while the header is unknown
        self._open_commas = 0  # commas so far in the open record (detail)
        self._opened: tuple[int, int, int] | None = None  # the last quote that opened a cell
        self._eq = np.empty(_SCAN_BLOCK, dtype=np.bool_)

    def feed(self, buf: bytearray, lo: int, hi: int, base: int, following: int) -> None:
        """Count the records ending in ``buf[lo:hi]``, whose first byte is at offset `base`."""
        if not self._started:
            self._started, self._last_end = True, base - 1
        if hi <= lo:
            return
        a = np.frombuffer(buf, dtype=np.uint8, count=hi - lo, offset=lo)
        plain = (
            not self.detail
            and self.header is not None
            and not self._inside
            and self._prev != _CR
            and buf.find(b'"', lo, hi) < 0
            and buf.find(b"\r", lo, hi) < 0
        )
        if plain:
            self._feed_plain(buf, a, lo, hi, base, following)
        else:
            self._feed_quoted(buf, a, lo, hi, base, following)
        self._prev = int(a[-1])

    def _feed_plain(
        self, buf: bytearray, a: NDArray[np.uint8], lo: int, hi: int, base: int, following: int
    ) -> None:
        # No quote and no CR: every LF ends a record. Whether one right after another makes a
        # blank line is left open (it would cost as much again; see `blank_unknown`), but in
        # the last block, where a file often ends with one.
        eq = np.equal(a, _NL, out=self._eq[: hi - lo])
        ends = int(np.count_nonzero(eq))
        if not ends:
            self._look_for_hex(buf, lo, hi, base)
            return
        if following == _EOF:
            blank = int(np.count_nonzero(eq[1:] & eq[:-1])) + int(bool(eq[0]) and self._prev == _NL)
            self.records += ends - blank
            self.blank += blank
        else:
            self.records += ends
            self.blank_unknown = True
        self._last_end = base + buf.rfind(b"\n", lo, hi) - lo
        self._look_for_hex(buf, lo, hi, base)

    def _look_for_hex(self, buf: bytearray, lo: int, hi: int, base: int) -> None:
        if self.hex_marks or self.header is None:
            return
        start = lo + max(0, self._after_header - base)
        if start < hi and (buf.find(b"x", start, hi) >= 0 or buf.find(b"X", start, hi) >= 0):
            self.hex_marks = True

    def _feed_quoted(
        self, buf: bytearray, a: NDArray[np.uint8], lo: int, hi: int, base: int, following: int
    ) -> None:
        # Positions rather than masks: quotes and line ends are sparse, and each pass over
        # every byte costs about as much as pyarrow's own parse of it.
        n = hi - lo
        quotes = np.flatnonzero(a == _QUOTE)
        carried = self._inside

        def inside(at: NDArray[np.intp]) -> NDArray[np.bool_]:
            # Inside a quoted cell: after an odd number of quotes, counting the state carried in.
            return ((np.searchsorted(quotes, at) + carried) & 1).astype(np.bool_)

        lfs = np.flatnonzero(a == _NL)
        crs = np.flatnonzero(a == _CR) if buf.find(b"\r", lo, hi) >= 0 else np.zeros(0, dtype=np.intp)
        lf_inside, cr_inside = inside(lfs), inside(crs)
        if lf_inside.any() or cr_inside.any():
            self.quoted_breaks = True
        ends = lfs[~lf_inside]
        if crs.size:
            crs = crs[~cr_inside]
            # A CR followed by an LF ends its record at the LF.
            after = np.where(crs < n - 1, a[np.minimum(crs + 1, n - 1)].astype(np.int16), following)
            ends = np.sort(np.concatenate([ends, crs[after != _NL]]))
        before = np.where(ends > 0, a[np.maximum(ends - 1, 0)], self._prev)
        content_end = base + ends - ((a[ends] == _NL) & (before == _CR))
        starts = np.empty(len(ends), dtype=np.int64)
        if len(ends):
            starts[0] = self._last_end + 1
            starts[1:] = base + ends[:-1] + 1
        blank = content_end == starts
        if quotes.size:
            self._check_quotes(a, quotes, ends, starts, base, following)
        if self.header is None:
            self._find_header(a, ends, blank, starts, content_end, base)
        n_blank = int(np.count_nonzero(blank))
        self.records += len(ends) - n_blank
        self.blank += n_blank
        if len(ends):
            self._last_end = base + int(ends[-1])
        if self.detail:
            self.ends.append(base + ends)
            self.blanks.append(blank)
            commas = np.flatnonzero(a == _COMMA)
            commas = commas[~inside(commas)]
            per = np.bincount(np.searchsorted(ends, commas), minlength=len(ends) + 1)
            per[0] += self._open_commas
            self.cells.append(per[:-1] + 1)
            self._open_commas = int(per[-1])
        self._look_for_hex(buf, lo, hi, base)

    def _check_quotes(
        self,
        a: NDArray[np.uint8],
        at: NDArray[np.intp],
        ends: NDArray[np.intp],
        starts: NDArray[np.int64],
        base: int,
        following: int,
    ) -> None:
        n, seen = len(a), self.records + self.blank
        # Quotes alternate: one opens a cell, the next closes it (or is the first of a pair).
        first_opens = 1 - self._inside
        openers, closers = (at[0::2], at[1::2]) if first_opens else (at[1::2], at[0::2])
        before = a[openers - 1]  # at 0 this wraps round; set right below
        if openers.size and openers[0] == 0:
            before[0] = self._prev
        after = a[np.minimum(closers + 1, n - 1)].astype(np.intp) + 1
        if closers.size and closers[-1] == n - 1:
            after[-1] = following + 1
        bad_open = np.flatnonzero(~_OPENS_AFTER[before])
        bad_close = np.flatnonzero(~_CLOSES_BEFORE[after])

        def where(local: int) -> tuple[int, int, int]:
            k = int(np.searchsorted(ends, local))
            if k < len(ends):
                start = int(starts[k])
            else:
                start = base + int(ends[-1]) + 1 if len(ends) else self._last_end + 1
            return base + local, seen + k, start

        misfits = [(int(openers[bad_open[0]]), "opens")] if bad_open.size else []
        misfits += [(int(closers[bad_close[0]]), "closes")] if bad_close.size else []
        if misfits:
            local, what = min(misfits)
            self.problem = (what, *where(local))
        if openers.size:
            self._opened = where(int(openers[-1]))
        self._inside = (len(at) + self._inside) & 1

    def _find_header(
        self,
        a: NDArray[np.uint8],
        ends: NDArray[np.intp],
        blank: NDArray[np.bool_],
        starts: NDArray[np.int64],
        content_end: NDArray[np.int64],
        base: int,
    ) -> None:
        filled = np.flatnonzero(~blank)
        if filled.size:
            j = int(filled[0])
            start, stop = int(starts[j]), int(content_end[j])
            head = a[max(0, start - base) : max(0, stop - base)].tobytes()
            self.header = bytes(self._pending)[: stop - start] + head if start < base else head
            self.blank_before_header = self.blank + j
            self._after_header = base + int(ends[j]) + 1
            self._pending = bytearray()
            return
        if len(ends):
            self._pending = bytearray(a[int(ends[-1]) + 1 :].tobytes())
        else:
            self._pending += a.tobytes()
        if len(self._pending) > _HEADER_LIMIT and self.problem is None:
            self.problem = ("long header", base, self.blank + len(ends), self._last_end + 1)

    def finish(self, size: int) -> None:
        """End the count at the end of the file, `size` bytes."""
        if self._inside:
            if self.problem is None and self._opened is not None:
                self.problem = ("never closes", *self._opened)
            return
        if self._last_end < size - 1 and self._started:
            # A last record without a line end.
            if self.header is None:
                self.header = bytes(self._pending)
                self.blank_before_header = self.blank
            self.records += 1
            if self.detail:
                self.ends.append(np.array([size], dtype=np.int64))
                self.blanks.append(np.zeros(1, dtype=np.bool_))
                self.cells.append(np.array([self._open_commas + 1], dtype=np.int64))

    def record_index(self) -> NDArray[np.intp]:
        """The index, among all records, of each record that is not blank (detail)."""
        return np.flatnonzero(~np.concatenate([np.zeros(0, dtype=np.bool_), *self.blanks]))


def _count_records(
    file: Path,
    *,
    detail: bool = False,
    into: _Records | None = None,
    header_known: threading.Event | None = None,
) -> _Records:
    """Count the records of `file` (into `into` if given), setting `header_known` as soon as
    the header is."""
    records = _Records(detail) if into is None else into
    size = 0
    with _naming(file), file.open("rb", buffering=0) as fh:
        for buf, lo, hi, following in _blocks(fh):
            records.feed(buf, lo, hi, size + lo, following)
            size += hi
            if records.problem is not None:
                return records
            if header_known is not None and records.header is not None:
                header_known.set()
    records.finish(size)
    return records


def _cells_before(file: Path, start: int, offset: int) -> int:
    """The cells that end between `start`, where a record starts, and `offset` in it."""
    with _naming(file), file.open("rb") as fh:
        fh.seek(start)
        part = np.frombuffer(fh.read(offset - start), dtype=np.uint8)
    outside = (np.cumsum(part == _QUOTE) & 1) == 0
    return int(np.count_nonzero((part == _COMMA) & outside))


def _split_record(text: str) -> list[str]:
    """The cells of one record whose quotes have been checked."""
    cells: list[str] = []
    cell: list[str] = []
    quoted, i = False, 0
    while i < len(text):
        c = text[i]
        if quoted and c == '"':
            if text[i + 1 : i + 2] == '"':
                cell.append('"')
                i += 1
            else:
                quoted = False
        elif quoted or c not in '",':
            cell.append(c)
        elif c == '"':
            quoted = True
        else:
            cells.append("".join(cell))
            cell = []
        i += 1
    cells.append("".join(cell))
    return cells


def _header_names(file: Path, header: bytes) -> list[str]:
    try:
        names = [name.strip() for name in _split_record(header.decode("utf-8"))]
    except UnicodeDecodeError:
        raise InputError(str(file), None, None, "a header row of column names in UTF-8") from None
    counts = Counter(name for name in names if name)
    twice = next((name for name in names if counts[name] > 1), None)
    if twice is not None:
        raise InputError(str(file), None, twice, f"each column once, found {counts[twice]} named {twice!r}")
    return names


def _where_in_csv(
    file: Path, records: _Records, index: int, start: int, offset: int | None
) -> tuple[int | None, int]:
    """(row, cell) of `offset` in the record of index `index` starting at `start`; the row
    is None in the header."""
    row = index - records.blank_before_header if records.header is not None else 0
    cell = _cells_before(file, start, offset) if offset is not None else 0
    return (row if row > 0 else None), cell


def _quote_error(file: Path, records: _Records) -> InputError:
    assert records.problem is not None
    what, offset, index, start = records.problem
    if what == "long header":
        return InputError(str(file), None, None, f"a header row of at most {_HEADER_LIMIT // 2**20} MB")
    row, cell = _where_in_csv(file, records, index, start, offset)
    names: list[str] = []
    if records.header is not None and row is not None:
        names = _header_names(file, records.header)
    column = names[cell] if cell < len(names) else None
    expected = {
        "opens": "a quote only at the start of a cell (in a quoted cell a quote is written twice)",
        "closes": "a comma or a line end after the closing quote of a cell "
        "(in a quoted cell a quote is written twice)",
        "never closes": "a closing quote for the quoted cell that opens here (it runs to the end of the file)",
    }[what]
    if row is None:
        expected += ", in the header row"
    return InputError(str(file), row, column, expected)


def _first_bad_utf8(file: Path) -> int | None:
    """The offset of the first byte of `file` that is not UTF-8, if any."""
    base, carry = 0, b""
    with _naming(file), file.open("rb") as fh:
        while block := fh.read(1 << 20):
            data = carry + block
            try:
                data.decode("utf-8")
                carry = b""
            except UnicodeDecodeError as exc:
                if exc.end < len(data) or exc.reason != "unexpected end of data":
                    return base + exc.start
                carry = data[exc.start :]  # a character cut by the block's end
            base += len(data) - len(carry)
    return base if carry else None


def _csv_error(file: Path, names: list[str], exc: pa.ArrowInvalid) -> InputError:
    """What an error of pyarrow's CSV reader means, with the row and column where known."""
    text = str(exc)
    detail = _records_detail(file)
    index = detail.record_index()
    header = detail.blank_before_header
    if "columns, got" in text:
        cells = np.concatenate([np.zeros(0, dtype=np.int64), *detail.cells])[index]
        ragged = np.flatnonzero(cells[1:] != len(names))
        if ragged.size:
            k = int(ragged[0]) + 1
            return InputError(
                str(file),
                int(index[k]) - header,
                None,
                f"{len(names)} cells as in the header, found {int(cells[k])}",
            )
    if "UTF8" in text or "UTF-8" in text:
        offset = _first_bad_utf8(file)
        if offset is not None:
            ends = np.concatenate([np.zeros(0, dtype=np.int64), *detail.ends])
            k = int(np.searchsorted(ends, offset))
            start = int(ends[k - 1]) + 1 if k else 0
            row, cell = _where_in_csv(file, detail, k, start, offset)
            column = names[cell] if row is not None and cell < len(names) else None
            return InputError(str(file), row, column, "text in UTF-8 (found a byte that is not)")
    return InputError(str(file), None, None, f"a readable CSV file with a header row ({_arrow_detail(exc)})")


def _records_detail(file: Path) -> _Records:
    detail = _count_records(file, detail=True)
    if detail.problem is not None:
        raise _quote_error(file, detail)
    return detail


def _block_size(file: Path) -> int:
    """A pyarrow block that holds the longest record of `file`."""
    ends = np.concatenate([np.array([-1], dtype=np.int64), *_records_detail(file).ends])
    longest = int(np.diff(ends).max()) if len(ends) > 1 else 0
    if 2 * longest > _ARROW_BLOCK_LIMIT:
        raise InputError(str(file), None, None, f"records of at most {_ARROW_BLOCK_LIMIT // 2**21} MB")
    return max(_ARROW_BLOCK, 2 * longest)


def _parse_csv(
    file: Path, names: list[str], skip: int, quoted_breaks: bool, ints: Collection[str], block: int
) -> pa.Table:
    with _naming(file):
        return pacsv.read_csv(
            file,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip, block_size=block),
            parse_options=pacsv.ParseOptions(newlines_in_values=quoted_breaks),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.int64() if n in ints else pa.string() for n in names},
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )


def _read_csv(name: str, file: Path) -> tuple[pa.Table, _Records]:
    """Table `name` from a CSV file: ids and times as int64 where pyarrow can read them so
    (a cell it cannot read sends every cell to the text checks of :func:`_convert`), the
    other columns as text; a record the file holds but pyarrow did not return is refused.

    The records are counted in a thread while pyarrow parses, as soon as the header is
    known, on the likely guess that no line break sits in a quoted cell and no ``x`` in the
    data; if the count proves the guess wrong, the file is parsed again.
    """
    numbers = {c.name for c in TABLES[name].columns if c.type in (ColumnType.ID, ColumnType.TS)}
    records, header_known, failed = _Records(), threading.Event(), []

    def count() -> None:
        try:
            _count_records(file, into=records, header_known=header_known)
        except BaseException as exc:  # handed to the reading thread
            failed.append(exc)
        finally:
            header_known.set()

    counter = threading.Thread(target=count, name="simkit-count-records", daemon=True)
    counter.start()
    guess: pa.Table | None = None
    try:
        header_known.wait()
        if records.header is not None and records.problem is None:
            names = _header_names(file, records.header)
            with contextlib.suppress(pa.ArrowInvalid):
                guess = _parse_csv(file, names, records.blank_before_header + 1, False, numbers, _ARROW_BLOCK)
    finally:
        counter.join()
    if failed:
        raise failed[0]
    if records.problem is not None:
        raise _quote_error(file, records)
    if records.header is None:
        raise InputError(str(file), None, None, "a header row (the file holds only blank lines)")
    names = _header_names(file, records.header)
    if records.records == 1:
        # A header alone, with or without a line end: a valid empty table.
        return pa.table({n: pa.array([], pa.string()) for n in names}), records
    ints = set() if records.hex_marks else numbers
    block = _ARROW_BLOCK
    table = guess if guess is not None and not records.quoted_breaks and not records.hex_marks else None
    while table is None:
        try:
            table = _parse_csv(
                file, names, records.blank_before_header + 1, records.quoted_breaks, ints, block
            )
        except pa.ArrowInvalid as exc:
            if ints and "conversion error to int64" in str(exc):
                ints = set()
            elif "straddl" in str(exc) and block == _ARROW_BLOCK:
                block = _block_size(file)
            else:
                raise _csv_error(file, names, exc) from None
    if table.num_rows != records.records - 1 and records.blank_unknown:
        # Some blocks were counted by their LFs, blank lines included. pyarrow returns no row
        # for a blank line and cannot make one up where there is no quote and no CR, so its
        # rows match that count (less the header) only if there is no blank line and no row
        # lost. Otherwise count the blank lines exactly, and compare again.
        records = _records_detail(file)
    if table.num_rows != records.records - 1:
        raise InputError(
            str(file),
            None,
            None,
            f"every record read as a row: the file holds {records.records - 1:,} data records, "
            f"the CSV reader returned {table.num_rows:,} rows",
        )
    return table, records


def _row_number(file: Path, index: int, records: _Records | None = None) -> int:
    """The row of `file` (1-based, see above) of the table row `index` (0-based)."""
    if file.suffix != ".csv" or (records is not None and records.blank == 0 and not records.blank_unknown):
        return index + 1
    detail = _records_detail(file)
    if detail.blank == 0:
        return index + 1
    filled = detail.record_index()
    return int(filled[index + 1] - filled[0])


# -- reading: tables --------------------------------------------------------------------------


def _read_parquet(file: Path, labels: Collection[str] = ()) -> pa.Table:
    """The table in `file`; its columns named in `labels` (text with a few distinct values,
    such as an action) come as Arrow dictionaries, so their text is never spelled out row by
    row (see :func:`_action_codes`)."""
    try:
        with _naming(file), pq.ParquetFile(file) as parquet:
            names = Counter(parquet.schema_arrow.names)
            # read_dictionary refuses a name the file lacks; a repeated name is refused later.
            wanted = [n for n in labels if names[n] == 1]
            if not wanted:
                table = parquet.read()
            else:
                with pq.ParquetFile(file, metadata=parquet.metadata, read_dictionary=wanted) as again:
                    table = again.read()
    except pa.ArrowException as exc:
        if isinstance(exc, OSError):
            raise
        raise InputError(str(file), None, None, f"a readable Parquet file ({_arrow_detail(exc)})") from None
    return table


def _read_raw(name: str, file: Path) -> tuple[pa.Table, _Records | None]:
    with _naming(file):
        size = file.stat().st_size
    if size == 0:
        raise InputError(str(file), None, None, "a table with a header row (the file is empty)")
    if file.suffix == ".parquet":
        labels = [c.name for c in TABLES[name].columns if c.type is ColumnType.ACTION]
        return _read_parquet(file, labels), None
    return _read_csv(name, file)


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int | None:
    idx = pc.index(mask, True).as_py()
    return None if idx < 0 else int(idx)


def _decoded(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col


def _integers(where: str, column: str, what: str, col: pa.ChunkedArray) -> NDArray[np.int64]:
    """An integer column as int64, or an InputError at the first value that does not fit."""
    values, bad = _first_failure(col, lambda c: c.cast(pa.int64()))
    if bad is not None:
        raise InputError(where, bad + 1, column, f"{what} that fits in 64 bits, found {col[bad].as_py()}")
    return np.asarray(values, dtype=np.int64)


def _milliseconds(where: str, column: str, col: pa.ChunkedArray) -> NDArray[np.int64]:
    """A timestamp column as int64 milliseconds, or an InputError at the first value with a
    part below the millisecond (or too far from the epoch to count in int64 milliseconds)."""
    unit, tz = col.type.unit, col.type.tz
    values, bad = _first_failure(col, lambda c: c.cast(pa.timestamp("ms", tz=tz)))
    if bad is not None:
        raw = col.cast(pa.int64())[bad].as_py()
        raise InputError(
            where,
            bad + 1,
            column,
            f"a time in whole milliseconds that fits in 64 bits, found {raw} {unit} since the epoch",
        )
    return np.asarray(values.cast(pa.int64()), dtype=np.int64)


def _convert(file: Path, spec: Column, col: pa.ChunkedArray, *, utf8_checked: bool = False) -> NDArray[Any]:
    """One input column as a numpy array of its type, or an InputError at its first bad cell.

    Input columns are never nullable (§5 refuses an empty cell), whatever the type. Text is
    checked to be UTF-8 unless `utf8_checked` (pyarrow's CSV reader checks it). Row numbers
    are those of the table (1-based); :func:`_read_table` turns them into the file's.
    """
    where, column, kind = str(file), spec.name, spec.type
    if kind in (ColumnType.LABEL, ColumnType.INT16, ColumnType.INT32):
        raise TypeError(f"{column}: {kind} is a type of the outputs, which are not read as inputs")
    nulls = _first_true(pc.is_null(col)) if col.null_count else None
    if nulls is not None:
        raise InputError(where, nulls + 1, column, "a value (the cell is empty)")
    if kind is ColumnType.ACTION and pa.types.is_dictionary(col.type):
        codes = _action_codes(col)
        if codes is not None:
            return codes
    col = _decoded(col)
    is_text = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
    if is_text and not utf8_checked:
        _, bad_text = _first_failure(col, lambda c: c.validate(full=True))
        if bad_text is not None:
            raise InputError(where, bad_text + 1, column, "text in UTF-8 (found bytes that are not)")
    if kind in (ColumnType.ID, ColumnType.TS):
        what = "an integer (milliseconds since the epoch)" if kind is ColumnType.TS else "an integer id"
        if kind is ColumnType.TS and pa.types.is_timestamp(col.type):
            return _milliseconds(where, column, col)
        if pa.types.is_integer(col.type):
            return _integers(where, column, what, col)
        if not is_text:
            raise InputError(where, None, column, f"{what}, found type {col.type}")
        _refuse_empty(where, column, col)
        bad = _first_true(pc.invert(pc.match_substring_regex(col, _INT_PATTERN)))
        if bad is not None:
            raise InputError(where, bad + 1, column, f"{what}, found {col[bad].as_py()!r}")
        digits = pc.replace_substring_regex(pc.utf8_trim_whitespace(col), r"^\+", "")
        values, over = _first_failure(digits, lambda c: c.cast(pa.int64()))
        if over is not None:
            raise InputError(
                where, over + 1, column, f"{what} that fits in 64 bits, found {col[over].as_py()!r}"
            )
        return np.asarray(values, dtype=np.int64)
    if kind is ColumnType.BOOL:
        if pa.types.is_boolean(col.type):
            return np.asarray(col, dtype=np.bool_)
        if pa.types.is_integer(col.type):
            col = col.cast(pa.string())
        elif not is_text:
            raise InputError(where, None, column, f"true/false or 1/0, found type {col.type}")
        _refuse_empty(where, column, col)
        low = pc.utf8_lower(pc.utf8_trim_whitespace(col))
        bad = _first_true(pc.invert(pc.is_in(low, value_set=_BOOL_NAMES)))
        if bad is not None:
            raise InputError(where, bad + 1, column, f"true/false or 1/0, found {col[bad].as_py()!r}")
        return np.asarray(pc.is_in(low, value_set=_BOOL_TRUE), dtype=np.bool_)
    if not is_text:
        raise InputError(where, None, column, f"text, found type {col.type}")
    if kind is ColumnType.ACTION:
        codes = pc.index_in(col, value_set=_ACTION_NAMES)
        if codes.null_count:
            # Spaces around an action are allowed; an empty cell is refused as empty.
            codes = pc.index_in(pc.utf8_trim_whitespace(col), value_set=_ACTION_NAMES)
            bad = _first_true(pc.is_null(codes))
            if bad is not None:
                if not col[bad].as_py().strip():
                    raise InputError(where, bad + 1, column, "a value (the cell is empty)")
                names = ", ".join(a.value for a in ACTIONS)
                raise InputError(where, bad + 1, column, f"one of {names}, found {col[bad].as_py()!r}")
        return np.asarray(codes.cast(pa.int8()), dtype=np.int8)
    _refuse_empty(where, column, col)
    return np.asarray(col.to_pylist(), dtype=object)


def _action_codes(col: pa.ChunkedArray) -> NDArray[np.int8] | None:
    """The action codes of a dictionary column whose every entry is an action (spaces
    around it allowed); ``None`` otherwise, and the column is then read row by row, which
    finds the first bad cell. The entries are checked, not the rows: a few values, not
    millions."""
    out = np.empty(len(col), np.int8)
    at = 0
    for chunk in col.chunks:
        entries = chunk.dictionary
        if not (pa.types.is_string(entries.type) or pa.types.is_large_string(entries.type)):
            return None
        try:
            entries.validate(full=True)
        except pa.ArrowInvalid:
            return None
        codes = pc.index_in(pc.utf8_trim_whitespace(entries), value_set=_ACTION_NAMES)
        if codes.null_count:
            return None
        np.take(
            np.asarray(codes.cast(pa.int8()), dtype=np.int8),
            np.asarray(chunk.indices),
            out=out[at : at + len(chunk)],
        )
        at += len(chunk)
    return out


def _refuse_empty(where: str, column: str, col: pa.ChunkedArray) -> None:
    empty = _first_true(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0))
    if empty is not None:
        raise InputError(where, empty + 1, column, "a value (the cell is empty)")


def _read_table(
    name: str, file: Path, raw: tuple[pa.Table, _Records | None] | None = None
) -> dict[str, NDArray[Any]]:
    """The columns of table `name` in `file` (or of `raw`, what :func:`_read_raw` read from
    it); a left-out optional column is absent, or filled with its default if it has one.
    Errors name the file's rows (see :func:`_row_number`)."""
    table, records = raw if raw is not None else _read_raw(name, file)
    columns = Counter(table.column_names)
    twice = next((c for c in table.column_names if c and columns[c] > 1), None)
    if twice is not None:
        raise InputError(str(file), None, twice, f"each column once, found {columns[twice]} named {twice!r}")
    out: dict[str, NDArray[Any]] = {}
    for spec in TABLES[name].columns:
        if spec.name not in columns:
            if not spec.optional:
                got = ", ".join(_shown(c) for c in table.column_names) or "none"
                raise InputError(str(file), None, spec.name, f"a column named {spec.name!r} (columns: {got})")
            if spec.default is not None:
                out[spec.name] = np.full(table.num_rows, spec.default, dtype=np.bool_)
            continue
        try:
            out[spec.name] = _convert(file, spec, table.column(spec.name), utf8_checked=records is not None)
        except InputError as exc:
            if exc.row is None:
                raise
            row = _row_number(file, exc.row - 1, records)
            raise InputError(exc.file, row, exc.column, exc.expected) from None
    return out


def _shown(text: str) -> str:
    """`text` on one line: a column name may hold a line break."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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
    settle(root)  # a commit interrupted half-way is finished (or refused) before reading
    files = _find_tables(root)
    cols = _read_tables(files)
    population = _population(cols)
    pol = cols.get("policy")
    policy = (
        Policy(ts=pol["ts"], pod_a=pol["pod_a"], pod_b=pol["pod_b"], crosspod=pol["crosspod"])
        if pol is not None
        else Policy.empty()
    )
    policy_pods = np.stack([policy.pod_a, policy.pod_b], axis=1) if pol is not None else None
    _refuse_problems(population, files, policy_pods)
    ev = cols["events"]
    events = Events(ts=ev["ts"], actor=ev["actor"], target=ev["target"], action=ev["action"])
    return Run(root, population._normalised(), events, policy, files)


def _read_tables(files: Mapping[str, Path]) -> dict[str, dict[str, NDArray[Any]]]:
    """The columns of each table of `files`, in its order, as :func:`_read_table` gives them.

    The files are read one after another in a background thread while this thread checks
    and converts those already read: pyarrow reads without holding the interpreter lock, so
    the checks, and the import of pandas that pyarrow makes on its first conversion (about
    0.15 s), overlap the reading of the events. The first table refused, in `files` order,
    is the error raised, as when reading them in turn.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="simkit-read") as pool:
        raw = {name: pool.submit(_read_raw, name, file) for name, file in files.items()}
        try:
            return {name: _read_table(name, file, raw[name].result()) for name, file in files.items()}
        finally:
            for job in raw.values():
                job.cancel()


def _population(cols: Mapping[str, dict[str, NDArray[Any]]]) -> Population:
    """The population of the ``pods``, ``users`` and ``crosspod`` columns read from a folder."""
    pods, users, cross = cols["pods"], cols["users"], cols["crosspod"]
    return Population(
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


def _refuse_problems(
    population: Population, files: Mapping[str, Path], policy_pods: NDArray[np.int64] | None = None
) -> None:
    """Raise the first problem of `population` as an InputError naming the file's own row."""
    problem = next(problems(population, policy_pods=policy_pods), None)
    if problem is not None:
        file = files[problem.table]
        row = _row_number(file, problem.row) if problem.row is not None else None
        raise InputError(str(file), row, problem.column, problem.expected)


# -- writing ------------------------------------------------------------------------------


def _csv_bytes(table: pa.Table, path: Path) -> None:
    # Arrow quotes every string; the outputs hold only ids, numbers and status keys (no commas
    # or quotes), so they are written bare, as spreadsheet users and the vectors expect.
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with path.open("wb") as fh:
        fh.write((",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, fh, write_options=options)


def _labels(codes: NDArray[np.integer[Any]], names: list[str], as_strings: bool = True) -> pa.Array:
    """String column from small-integer codes; ``-1`` becomes null.

    With `as_strings` false the column stays an Arrow dictionary of the same strings: the
    Parquet writer stores it dictionary-encoded as it is, instead of building every string
    and hashing it again (at 10^8 rows, gigabytes and many seconds).
    """
    # int8 codes: every label list here is short (statuses, reasons, actions).
    index = np.maximum(codes, 0).astype(np.int8, copy=False)
    mask = codes < 0
    nulls = int(np.count_nonzero(mask))
    # The validity bitmap packed by numpy: 2-3 times faster than pa.array(..., mask=...)
    # at 10^8 rows, where the outputs are written.
    valid = pa.py_buffer(np.packbits(~mask, bitorder="little")) if nulls else None
    indices = pa.Array.from_buffers(pa.int8(), len(index), [valid, pa.py_buffer(index)], null_count=nulls)
    labels = pa.DictionaryArray.from_arrays(indices, pa.array(names, pa.string()))
    return labels.cast(pa.string()) if as_strings else labels


def _parquet_options(table: pa.Table, name: str) -> dict[str, Any]:
    """The options of ``pq.write_table`` for `table`, the table `name` of the schema: the
    encoding of each column by its type (see ``_DELTA_TYPES``), statistics on ids and times
    only, zstd on the other columns, no Arrow schema.

    Examples
    --------
    >>> options = _parquet_options(pa.table({"ts": [1], "action": ["connect"]}), "events")
    >>> options["use_dictionary"], options["column_encoding"], options["write_statistics"]
    (['action'], {'ts': 'DELTA_BINARY_PACKED'}, ['ts'])
    >>> options["compression"]
    {'ts': 'none', 'action': 'zstd'}
    """
    spec = TABLES[name]
    delta = [c for c in table.column_names if spec.column(c).type in _DELTA_TYPES]
    return {
        **_PARQUET_OPTIONS,
        "compression": {c: "none" if c in delta else "zstd" for c in table.column_names},
        "use_dictionary": [c for c in table.column_names if c not in delta],
        "column_encoding": dict.fromkeys(delta, "DELTA_BINARY_PACKED"),
        "write_statistics": delta,
    }


def _write_parquet(table: pa.Table, name: str, part: Path) -> None:
    """Write `table`, the table `name` of the schema, to the file `part` as simkit writes
    every Parquet table (:func:`_parquet_options`)."""
    pq.write_table(table, part, **_parquet_options(table, name))


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

    A column held as codes (an action, a reason, a status, a fate) is given as its
    small-integer codes, a column with nulls as an Arrow array; an optional column may be
    left out of `values`, and is then left out of the table.
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
        elif isinstance(value, pa.Array):
            arrays.append(value.cast(_arrow_type(column)))  # a column with nulls, built by the caller
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


def demand_table(demand: Demand, *, as_strings: bool = True) -> pa.Table:
    """The wishes of a synthetic run as an Arrow table, in the columns of ``TABLES["demand"]``.

    `fate` is a string (`as_strings`: as for :func:`outcomes_table`); `sent_ts` is null
    where the wish was never sent (fate ``blocked`` or ``dropped``).

    Examples
    --------
    >>> demand = Demand.from_records([(1000, 1, 2, "sent", 1000), (2000, 2, 3, "dropped", None)])
    >>> demand_table(demand).to_pylist()[1]
    {'ts': 2000, 'user': 2, 'target': 3, 'fate': 'dropped', 'sent_ts': None}
    """
    values = {
        "ts": demand.ts,
        "user": demand.user,
        "target": demand.target,
        "fate": demand.fate,
        "sent_ts": pa.array(demand.sent_ts, pa.int64(), mask=~demand.was_sent),
    }
    return _arrow_table("demand", values, as_strings=as_strings)


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
    path: str | os.PathLike[str] | RunFolderTransaction,
    population: Population,
    events: Events,
    policy: Policy,
    *,
    stop: threading.Event | None = None,
) -> dict[str, Path]:
    """Write a run's input tables as Parquet into `path` (created if missing).

    `path` may be an open :class:`~simkit.io.commit.RunFolderTransaction`: the tables are
    then staged in it, to be put in place by its commit. Returns the path each table has
    (after the commit). Once `stop` is set (by another thread, giving the transaction up),
    no further table is written and those written so far are returned.
    """
    if not isinstance(path, RunFolderTransaction):
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        with RunFolderTransaction(root, "simkit write_inputs") as txn:
            paths = write_inputs(txn, population, events, policy, stop=stop)
            txn.commit()
        return paths
    written: dict[str, Path] = {}
    for name, table in input_tables(population, events, policy, as_strings=False).items():
        if stop is not None and stop.is_set():
            break
        target = path.folder / f"{name}.parquet"
        with _naming(target):
            _write_parquet(table, name, path.stage(target.name))
        written[name] = target
    return written


def write_demand(path: str | os.PathLike[str] | RunFolderTransaction, demand: Demand) -> Path | None:
    """Write the wishes behind a synthetic log as ``demand.parquet`` into `path`.

    `path` may be an open :class:`~simkit.io.commit.RunFolderTransaction`: the file is then
    staged in it, and the manifest :func:`write_outputs` writes in the same transaction
    records it (its rows and SHA-256, under ``own``), so that :func:`verify_run` and
    :func:`read_demand` can tell it belongs to the run. An empty demand (a recorded log, a
    replay) writes no file and returns None; otherwise returns the file's path (after the
    commit). The same demand gives the same bytes.

    Examples
    --------
    >>> import tempfile
    >>> demand = Demand.from_records([(1000, 1, 2, "sent", 1000), (2000, 2, 3, "dropped", None)])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_demand(tmp, demand).name, write_demand(tmp, Demand.empty())
    ('demand.parquet', None)
    """
    if not len(demand):
        return None
    if not isinstance(path, RunFolderTransaction):
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        with RunFolderTransaction(root, "simkit write_demand") as txn:
            written = write_demand(txn, demand)
            txn.commit()
        return written
    target = path.folder / "demand.parquet"
    with _naming(target):
        _write_parquet(demand_table(demand, as_strings=False), "demand", path.stage(target.name))
    return target


CSV_OUTPUTS: tuple[str, ...] = ("outcomes.csv", "connections.csv")
"""The outputs written only on request (``--csv``); a replay without it removes old ones."""
RUN_FILES: frozenset[str] = frozenset(
    [
        *OUTPUT_FILES,
        *CSV_OUTPUTS,
        *OWN_FILES,
        *(f"{name}{ext}" for name in INPUT_TABLES for ext in (".csv", ".parquet")),
    ]
)
"""Every file simkit writes in a run folder (and replaces when it writes the run again)."""


def write_outputs(
    out: str | os.PathLike[str] | RunFolderTransaction,
    run: Run,
    result: Replay,
    *,
    csv: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write a replay's outputs and manifest into `out` (created if missing).

    The files are written together, through one :class:`~simkit.io.commit.RunFolderTransaction`
    (the folder's lock, temporary names, the manifest renamed last), so a failure (a full
    disk) or an interrupt leaves the earlier outputs as they were, and no reader sees a mix.
    `out` may be an open transaction: the files are then staged in it, for its commit. The
    manifest records the SHA-256 of every input and output (:func:`verify_run` checks them)
    and names the engine that made `result` (``result.engine``, set by
    :func:`simkit.engines.replay`); `extra` adds keys to it (a generated run's scenario
    and seed). simkit's own tables staged in the same transaction (:func:`write_demand`)
    are recorded under ``own``, with their rows and SHA-256, as the outputs are.
    """
    if result.engine is None:
        raise ValueError("write_outputs: result.engine is unset; replay with simkit.engines.replay")
    if not isinstance(out, RunFolderTransaction):
        root = Path(out)
        root.mkdir(parents=True, exist_ok=True)
        with RunFolderTransaction(root, "simkit replay") as txn:
            paths = write_outputs(txn, run, result, csv=csv, extra=extra)
            txn.commit(last="manifest.json", stale=() if csv else CSV_OUTPUTS)
        return paths
    txn, root = out, out.folder
    tables = {
        "outcomes": outcomes_table(result.outcomes, as_strings=False),
        "connections": connections_table(result.connections, as_strings=False),
    }
    written: dict[str, Path] = {"manifest": root / "manifest.json"}

    def part(target: Path) -> Path:
        with _naming(target):
            return txn.stage(target.name)

    # Staged first, so that a folder that may not be written is named by its manifest.
    manifest_part = part(written["manifest"])
    parts: dict[str, Path] = {}
    for name in tables:
        written[name] = root / f"{name}.parquet"
        parts[name] = part(written[name])
        if csv:
            written[f"{name}.csv"] = root / f"{name}.csv"
            parts[f"{name}.csv"] = part(written[f"{name}.csv"])

    # Every file is hashed in another thread (hashlib lets go of the GIL) while this one
    # writes the tables and counts the summary; those the transaction has hashed already
    # (`simkit run` hashes its inputs while it replays them) are not hashed again. That
    # thread only reads: an error or an interrupt here leaves it nothing to clean up.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simkit-hash")
    try:
        inputs = {name: pool.submit(txn.sha256, file) for name, file in sorted(run.files.items())}
        own_files = {file: pool.submit(txn.sha256, root / file) for file in OWN_FILES if file in txn.staged}
        digests: dict[str, Future[str]] = {}

        def write(name: str) -> None:
            with _naming(written[name]):
                _write_parquet(tables[name], name, parts[name])
            digests[name] = pool.submit(txn.sha256, written[name])
            if csv:
                with _naming(written[f"{name}.csv"]):
                    _csv_bytes(tables[name], parts[f"{name}.csv"])

        # The records are written in another thread while this one writes the outcomes
        # (pyarrow's encoders let go of the GIL; on the whole network 8.3 s one after the
        # other, 4.6 s side by side). Each file's bytes are its own table's, whatever the timing.
        with alongside(lambda stop: write("connections")) as records:
            write("outcomes")
        records.result()
        summary = {
            "answers_by_code": {str(k): v for k, v in result.outcomes.code_counts().items()},
            "connections_by_status": result.connections.status_counts(),
            "events": len(result.outcomes),
        }
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    manifest: dict[str, Any] = {
        "engine": result.engine,
        "inputs": {
            name: {"file": file.name, "rows": _rows(name, run), "sha256": inputs[name].result()}
            for name, file in sorted(run.files.items())
        },
        "outputs": {
            name: {
                "file": written[name].name,
                "rows": tables[name].num_rows,
                "sha256": digests[name].result(),
            }
            for name in tables
        },
        "seed": None,
        "summary": summary,
        "versions": {
            "numpy": np.__version__,
            "pyarrow": pa.__version__,
            "python": platform.python_version(),
            "simkit": __version__,
        },
    }
    own = {
        name: {"file": file, "rows": pq.read_metadata(txn.current(root / file)).num_rows}
        for name, file in zip(OWN_TABLES, OWN_FILES, strict=True)
        if file in txn.staged
    }
    if own:
        for record in own.values():
            record["sha256"] = own_files[record["file"]].result()
        manifest["own"] = own
    manifest.update(extra or {})
    with _naming(written["manifest"]):
        manifest_part.write_text(json.dumps(manifest, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    # The manifest last in the mapping, as it is put in place last.
    written["manifest"] = written.pop("manifest")
    return written


def _rows(name: str, run: Run) -> int:
    return {
        "pods": run.population.n_pods,
        "users": run.population.n_users,
        "crosspod": len(run.population.crosspod),
        "policy": len(run.policy),
        "events": len(run.events),
    }[name]


# -- a run folder checked against its manifest --------------------------------------------


def _manifest(file: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or not all(
        isinstance(manifest.get(kind), dict) for kind in ("inputs", "outputs")
    ):
        raise RunDirError(f"{file}: not a manifest simkit wrote; replay the run to write it again")
    return manifest


def _recorded(manifest: Mapping[str, Any], kind: str) -> dict[str, tuple[str, str]]:
    """``{table: (file name, sha256)}`` of the inputs or outputs a manifest records."""
    try:
        return {str(k): (str(v["file"]), str(v["sha256"])) for k, v in manifest[kind].items()}
    except (KeyError, TypeError, AttributeError):
        return {}


def recorded_inputs_match(run: Run, manifest: Mapping[str, Any]) -> bool:
    """Whether `run` was read from exactly the input files `manifest` records (name and hash)."""
    found = {name: (file.name, file_sha256(file)) for name, file in run.files.items()}
    return found == _recorded(manifest, "inputs")


def verify_run(
    run_dir: str | os.PathLike[str], outputs: str | os.PathLike[str] | None = None
) -> dict[str, Any] | None:
    """Check a run folder's files against its manifest before they are read; return it.

    The manifest (in `outputs`, default `run_dir`) is the commit record of a run: its
    outputs are those it records, from the input files it records. A commit interrupted
    half-way is finished first (:func:`simkit.io.commit.settle`). Returns None when there is
    no manifest and no outputs (a folder of inputs only).

    simkit's own tables the manifest records (``own``: ``demand.parquet``) are checked too,
    in `run_dir`. One it does not record is no part of the run: it is not checked, and
    :func:`read_demand` ignores it.

    Raises
    ------
    RunDirError
        An input or output file differs from what the manifest records (edited, replaced,
        added or missing since the run was written), outputs stand without a manifest, or
        the manifest is not one simkit wrote. The one line says to replay. A recorded own
        table edited or removed since is refused in the same way.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from simkit.engines import replay
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = shutil.copytree("data/samples/story", Path(tmp) / "run")
    ...     run = read_run(folder)
    ...     _ = write_outputs(folder, run, replay(run.population, run.events, run.policy))
    ...     sorted(verify_run(folder)["outputs"])
    ...     _ = (folder / "events.csv").write_text("ts,actor,target,action\\n")
    ...     try:
    ...         verify_run(folder)
    ...     except RunDirError as exc:
    ...         print(str(exc).replace(str(folder), "RUN"))
    ['connections', 'outcomes']
    RUN/events.csv: changed since RUN/manifest.json was written; replay the run (`simkit replay RUN`) to bring its outputs up to date
    """
    root = Path(run_dir)
    out = root if outputs is None else Path(outputs)
    settle(root)
    if out != root:
        settle(out)
    manifest_file = out / "manifest.json"
    command = f"simkit replay {root}" + ("" if out == root else f" --out {out}")
    advice = f"replay the run (`{command}`) to bring its outputs up to date"
    if not _exists(manifest_file):
        stray = [out / f for f in OUTPUT_FILES if f != "manifest.json" and _exists(out / f)]
        if stray:
            raise RunDirError(f"{stray[0]}: no manifest.json beside it records this output; {advice}")
        return None
    manifest = _manifest(manifest_file)
    present = {name: file.name for name, file in _find_tables(root).items()}
    recorded = _recorded(manifest, "inputs")
    for name in sorted(set(present) | set(recorded)):
        if name not in recorded:
            raise RunDirError(f"{root / present[name]}: added since {manifest_file} was written; {advice}")
    checks = [(root, *entry) for entry in recorded.values()]
    checks += [(out, *entry) for entry in _recorded(manifest, "outputs").values()]
    for folder, name, digest in checks:
        file = folder / name
        if not file.is_file():
            raise RunDirError(f"{file}: missing since {manifest_file} was written; {advice}")
        if file_sha256(file) != digest:
            raise RunDirError(f"{file}: changed since {manifest_file} was written; {advice}")
    # simkit's own tables lie beside the inputs they were drawn with; a replay cannot make
    # them again, so the advice differs.
    replay_here = f"`simkit replay {root}`"
    for name, digest in _recorded(manifest, "own").values():
        file = root / name
        if not file.is_file():
            raise RunDirError(
                f"{file}: missing since {manifest_file} was written; replay the run ({replay_here}) "
                "to record the folder without it, or run the scenario again"
            )
        if file_sha256(file) != digest:
            raise RunDirError(
                f"{file}: changed since {manifest_file} was written; remove it and replay the run "
                f"({replay_here}), or run the scenario again"
            )
    return manifest


# -- the outputs of a replay, read back -----------------------------------------------------


def read_outputs(
    folder: str | os.PathLike[str], n_events: int, *, labels: bool = False
) -> tuple[pa.Table, pa.Table]:
    """The outcomes and connections a replay wrote into `folder`, checked against §5.

    With `labels`, the reasons and statuses come as Arrow dictionaries of their labels,
    checked on the dictionary (faster to read and check on a large run; see
    :func:`label_codes`); else as text.

    Returns the two tables with the columns of :data:`simkit.schema.TABLES` in order and
    the types simkit writes. Refused, in one line that names the file (and the row and
    column where there is one): a missing file (:class:`~simkit.errors.RunDirError`), and
    as :class:`~simkit.errors.InputError` anything but a readable Parquet file in its
    place, a missing or repeated column, a column of another type than simkit writes, a
    null where §5 has none, a reason or status simkit does not write, and outcomes that are
    not one row per event (`n_events`, a :class:`~simkit.errors.RunDirError`).

    Examples
    --------
    >>> import tempfile
    >>> from simkit.engines import replay
    >>> run = read_run("data/samples/story")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = write_outputs(tmp, run, replay(run.population, run.events, run.policy))
    ...     outcomes, connections = read_outputs(tmp, len(run.events))
    >>> outcomes.num_rows, outcomes.schema.types
    (46, [DataType(int16), DataType(string), DataType(string), DataType(int32)])
    """
    root = Path(folder)
    settle(root)
    tables = []
    for name in ("outcomes", "connections"):
        file = root / f"{name}.parquet"
        if not _exists(file):
            raise RunDirError(f"{file}: missing; run `simkit replay` on the run folder first")
        other = _not_a_file(file)
        if other is not None:
            raise InputError(str(file), None, None, f"the Parquet file of a replay's {name}, found {other}")
        coded = [column for (table_name, column) in _CODE_LABELS if table_name == name] if labels else []
        tables.append(_checked_output(name, file, _read_parquet(file, coded)))
    outcomes, connections = tables
    if outcomes.num_rows != n_events:
        raise RunDirError(
            f"{root / 'outcomes.parquet'}: {outcomes.num_rows} rows for {n_events} events; replay the run again"
        )
    return outcomes, connections


def _known_labels(col: pa.ChunkedArray, labels: Sequence[str]) -> bool:
    """Whether every value of a dictionary column's dictionaries is one of `labels`, in
    valid UTF-8 (its rows may still be null)."""
    for chunk in col.chunks:
        try:
            chunk.dictionary.validate(full=True)
        except pa.ArrowInvalid:
            return False
        if (
            chunk.dictionary.null_count
            or not pc.all(pc.is_in(chunk.dictionary, value_set=pa.array(labels))).as_py()
        ):
            return False
    return True


def label_codes(col: pa.ChunkedArray, labels: Sequence[str]) -> NDArray[np.int8]:
    """The position in `labels` of each value of a text column (or a dictionary of text)
    checked to hold only them; -1 where it is null."""
    value_set = pa.array(list(labels))
    if not pa.types.is_dictionary(col.type):
        found = pc.fill_null(pc.index_in(col, value_set=value_set), -1)
        return np.asarray(found.to_numpy(), dtype=np.int8)
    parts = []
    for chunk in col.chunks:
        codes = np.asarray(pc.fill_null(pc.index_in(chunk.dictionary, value_set=value_set), -1), np.int8)
        indices = chunk.indices
        taken = codes[np.asarray(indices.fill_null(0) if indices.null_count else indices)]
        if indices.null_count:
            taken[np.asarray(indices.is_null())] = -1
        parts.append(taken)
    return np.concatenate(parts) if parts else np.zeros(0, np.int8)


def _checked_output(name: str, file: Path, table: pa.Table) -> pa.Table:
    where = str(file)
    names = Counter(table.column_names)
    columns = []
    for spec in TABLES[name].columns:
        if names[spec.name] != 1:
            found = f"{names[spec.name]} named {spec.name!r}" if names[spec.name] else "none"
            raise InputError(where, None, spec.name, f"one column named {spec.name!r}, found {found}")
        col = table.column(spec.name)
        expected = _arrow_type(spec)
        labels = _CODE_LABELS.get((name, spec.name))
        # Read as a dictionary of the labels simkit writes, a column is checked on its
        # dictionary and kept as one (its text never spelled out row by row); any other
        # dictionary is checked as text, which names its first bad row.
        dictionary = pa.types.is_dictionary(col.type) and col.type.value_type == expected
        if dictionary and (labels is None or not _known_labels(col, labels)):
            col, dictionary = col.cast(expected), False
        if not dictionary and col.type != expected:
            raise InputError(where, None, spec.name, f"{expected} as simkit writes it, found {col.type}")
        if not spec.nullable and col.null_count:
            bad = _first_true(pc.is_null(col))
            raise InputError(
                where, None if bad is None else bad + 1, spec.name, "a value (the cell is empty)"
            )
        if labels is not None and not dictionary:
            _, bad = _first_failure(col, lambda c: c.validate(full=True))
            if bad is not None:
                raise InputError(where, bad + 1, spec.name, "text in UTF-8 (found bytes that are not)")
            known = pc.or_(pc.is_in(col, value_set=pa.array(labels)), pc.is_null(col))
            bad = _first_true(pc.invert(known))
            if bad is not None:
                found = col[bad].as_py()
                raise InputError(where, bad + 1, spec.name, f"one of {', '.join(labels)}, found {found!r}")
        columns.append(col)
    return pa.Table.from_arrays(columns, names=list(TABLES[name].names))


# -- simkit's own tables: the demand behind a synthetic log ----------------------------------


def read_demand(folder: str | os.PathLike[str], population: Population | None = None) -> Demand | None:
    """The wishes of a synthetic run, from ``demand.parquet`` in `folder`, checked.

    ``demand.parquet`` is simkit's own table (``TABLES["demand"]``), not an API input: only
    Parquet is read (a ``demand.csv`` is no table of simkit's and is ignored). Returns None
    when the folder holds none (a recorded log, an imported datafeed).

    When the folder has a manifest, only the demand it records is read (a run's demand,
    written with it; one changed since is refused). A ``demand.parquet`` it does not record
    is no part of the run (left by an in-place replay of edited inputs, whose log it no
    longer describes, or copied in) and is ignored: None. The table is then checked: the
    columns of ``TABLES["demand"]`` with the types simkit writes (int64 ids and times,
    `fate` text), a value in every cell but `sent_ts`, rows by `user` then `target` (each
    ordered pair once), `fate` one of
    ``sent``, ``deferred``, ``blocked``, ``dropped``, `sent_ts` empty exactly where the wish
    was never sent (``blocked``, ``dropped``), equal to `ts` for ``sent`` and later for
    ``deferred``, and `user` and `target` two different users of `population` (by default
    the folder's own, read as :func:`read_population` reads it).

    Raises
    ------
    InputError
        The table breaks one of the rules above; the one line names the file, the 1-based
        row and the column, and says what was expected.
    RunDirError
        The folder is missing, or the demand differs from the one the manifest records.

    Examples
    --------
    >>> import tempfile
    >>> run = read_run("data/samples/story")
    >>> demand = Demand.from_records([(1000, 101, 201, "deferred", 5000), (2000, 202, 301, "blocked", None)])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = write_demand(tmp, demand)
    ...     back = read_demand(tmp, run.population)
    ...     _ = write_demand(tmp, Demand.from_records([(1000, 101, 999, "dropped", None)]))
    ...     try:
    ...         read_demand(tmp, run.population)
    ...     except InputError as exc:
    ...         print(str(exc).replace(tmp, "RUN"))
    RUN/demand.parquet: row 1, column 'target': expected a user of the users table, found 999
    >>> back.fates(), back.sent_ts.tolist()
    (['deferred', 'blocked'], [5000, 0])
    >>> read_demand("data/samples/story") is None
    True
    """
    root = Path(folder)
    if not root.is_dir():
        what = "not a folder" if _exists(root) else "no such run folder"
        raise RunDirError(f"{root}: {what}; expected a run folder")
    settle(root)
    file = root / "demand.parquet"
    if not _exists(file):
        return None
    other = _not_a_file(file)
    if other is not None:
        raise InputError(str(file), None, None, f"the Parquet file of simkit's demand table, found {other}")
    manifest_file = root / "manifest.json"
    if _exists(manifest_file):
        recorded = _recorded(_manifest(manifest_file), "own").get("demand")
        if recorded is None or recorded[0] != file.name:
            return None
        if file_sha256(file) != recorded[1]:
            raise RunDirError(
                f"{file}: changed since {manifest_file} was written; remove it, or run the scenario again"
            )
    with _naming(file):
        size = file.stat().st_size
    if size == 0:
        raise InputError(str(file), None, None, "a Parquet file of the demand table (the file is empty)")
    if population is None:
        population = read_population(root)[0]
    return _checked_demand(file, _read_parquet(file, labels=("fate",)), population)


def _checked_demand(file: Path, table: pa.Table, population: Population) -> Demand:
    """The demand in `table`, or an InputError at its first cell that breaks the rules."""
    where = str(file)
    checked = _checked_output("demand", file, table)
    # Only sent_ts may hold nulls (checked above): the others need no filling, and a copy
    # of 55M rows less each.
    ts, user, target, sent_ts = (
        np.asarray(column.fill_null(0) if column.null_count else column, dtype=np.int64)
        for column in (checked.column(name) for name in ("ts", "user", "target", "sent_ts"))
    )
    fate = label_codes(checked.column("fate"), FATES)
    has_sent = np.asarray(checked.column("sent_ts").is_valid(), dtype=np.bool_)
    was_sent = fate <= Fate.DEFERRED
    checks: list[tuple[NDArray[np.bool_], Callable[[int], str]]] = [
        (was_sent & ~has_sent, lambda i: f"a time for a wish that was {FATES[fate[i]]} (the cell is empty)"),
        (
            ~was_sent & has_sent,
            lambda i: f"an empty cell for a wish that was {FATES[fate[i]]} (never sent), found {sent_ts[i]}",
        ),
        (
            (fate == Fate.SENT) & has_sent & (sent_ts != ts),
            lambda i: f"the wish's ts ({ts[i]}) for a wish that was sent, found {sent_ts[i]}",
        ),
        (
            (fate == Fate.DEFERRED) & has_sent & (sent_ts <= ts),
            lambda i: (
                f"a time after the wish's ts ({ts[i]}) for a wish that was deferred, found {sent_ts[i]}"
            ),
        ),
    ]
    for bad, expected in checks:
        first = np.flatnonzero(bad)
        if first.size:
            raise InputError(where, int(first[0]) + 1, "sent_ts", expected(int(first[0])))
    for column, ids in (("user", user), ("target", target)):
        unknown = first_unknown(ids, population.user_id)
        if unknown is not None:
            raise InputError(where, unknown + 1, column, f"a user of the users table, found {ids[unknown]}")
    same = np.flatnonzero(user == target)
    if same.size:
        i = int(same[0])
        raise InputError(
            where, i + 1, "target", f"a user other than the row's user ({user[i]}), found {target[i]}"
        )
    # By user, then target, each ordered pair once: the wishes of a person for another are one.
    behind = np.flatnonzero((user[1:] < user[:-1]) | ((user[1:] == user[:-1]) & (target[1:] <= target[:-1])))
    if behind.size:
        k = int(behind[0]) + 1
        column = "user" if user[k] != user[k - 1] else "target"
        found = f"({user[k]}, {target[k]}) after ({user[k - 1]}, {target[k - 1]})"
        raise InputError(where, k + 1, column, f"rows by user, then target, each pair once, found {found}")
    return Demand(ts=ts, user=user, target=target, fate=fate, sent_ts=np.where(was_sent, sent_ts, 0))


# -- a population alone ---------------------------------------------------------------------

POPULATION_TABLES: tuple[str, ...] = ("pods", "users", "crosspod")
"""The tables of a population: what ``population.from`` reads from a folder."""


def read_population(path: str | os.PathLike[str]) -> tuple[Population, dict[str, Path]]:
    """Read and check the ``pods``, ``users`` and ``crosspod`` tables of a folder.

    The folder may be a run folder or any folder holding these three tables (each CSV or
    Parquet, as ``connections.md`` §5); other files, events included, are not read. The
    tables are checked as :func:`read_run` checks them, with the same messages.

    Returns
    -------
    population : Population
        The pods, users and starting crossPod pairs.
    files : dict
        The file each table was read from.

    Raises
    ------
    InputError
        A table or column is missing or a cell is not what §5 expects.
    RunDirError
        `path` is missing or not a folder.

    Examples
    --------
    >>> population, files = read_population("data/samples/story")
    >>> population.n_pods, population.n_users, sorted(f.name for f in files.values())
    (3, 7, ['crosspod.csv', 'pods.csv', 'users.csv'])
    """
    root = Path(path)
    if not root.is_dir():
        what = "not a folder" if root.exists() else "no such folder"
        raise RunDirError(f"{root}: {what}; expected a folder of pods, users and crosspod tables")
    files = _find_tables(root, POPULATION_TABLES)
    population = _population({name: _read_table(name, file) for name, file in files.items()})
    _refuse_problems(population, files)
    return population._normalised(), files
