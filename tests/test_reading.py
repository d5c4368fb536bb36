"""Reading run folders as an adversary would feed them: rows never vanish, and every failure
is one line naming the file (and the row and column where there is one), with nothing
written and no input changed.

The tests run as root, who ignores file permissions, and without a second file system or a
full disk at hand: a folder that may not be searched, a read-only or full disk and a mount
point are played by fakes that raise the errors the system would (``PermissionError``,
``EROFS``, ``ENOSPC``, ``EXDEV``), at the calls that meet them.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings

import simkit.io.atomic
import simkit.io.runs
import simkit.pipeline
from simkit import read_run, replay_run
from simkit.cli import main
from simkit.errors import InputError, RunDirError
from simkit.io.runs import read_outputs

SCENARIO = "data/scenarios/tiny.toml"


def _digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (recursively) and its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _set_cell(run: Path, table: str, row: int, column: str, value: str) -> None:
    """Set one cell of a story table (no quotes in them); `row` is the 1-based data row."""
    file = run / f"{table}.csv"
    lines = file.read_text().splitlines()
    cells = lines[row].split(",")
    cells[lines[0].split(",").index(column)] = value
    lines[row] = ",".join(cells)
    file.write_text("\n".join(lines) + "\n")


def _one_line(capsys: pytest.CaptureFixture[str], names: Path | str) -> str:
    """The one line on stderr; it names `names`, and nothing else was printed."""
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("simkit: error: "), lines[0]
    assert str(names) in lines[0], lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


Fake = Callable[[pytest.MonkeyPatch], object]


def _refused(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    names: Path | str,
    watched: list[Path],
    fake: Fake | None = None,
) -> str:
    """Run the command, which must fail in one line naming `names` and leave every folder of
    `watched` as it was (a folder that did not exist must still not exist). A `fake` is in
    place for the command only, not while the folders are compared."""
    before = {folder: _digest(folder) if folder.exists() else None for folder in watched}
    with pytest.MonkeyPatch.context() as patch:
        if fake is not None:
            fake(patch)
        assert main(argv) == 1
    line = _one_line(capsys, names)
    for folder, digest in before.items():
        assert (_digest(folder) if folder.exists() else None) == digest, folder
    return line


# -- rows cannot vanish ------------------------------------------------------------------------


def _big_events(run: Path, n: int, stray_row: int | None = None) -> None:
    """`n` events, the action of data row `stray_row` opened by a quote that never closes."""
    rows = [f"{1_700_000_000_000 + i},101,201,connect" for i in range(n)]
    if stray_row is not None:
        rows[stray_row - 1] = rows[stray_row - 1].replace("connect", '"connect')
    (run / "events.csv").write_text("ts,actor,target,action\n" + "\n".join(rows) + "\n")


@pytest.mark.parametrize("stray_row", [3, 50_000, 99_999])
@pytest.mark.parametrize("command", ["validate", "replay"])
def test_a_stray_quote_in_a_large_file_is_refused_with_its_row(
    story_run: Path, stray_row: int, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _big_events(story_run, 100_000, stray_row)
    line = _refused([command, str(story_run)], capsys, story_run / "events.csv", [story_run])
    assert f"row {stray_row}, column 'action': expected a closing quote" in line


def test_a_large_file_without_a_stray_quote_reads_every_row(story_run: Path) -> None:
    _big_events(story_run, 100_000)
    assert len(read_run(story_run).events) == 100_000


def test_a_stray_quote_in_a_small_file_quotes_none_of_the_file(
    story_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    action = (story_run / "events.csv").read_text().splitlines()[5].rsplit(",", 1)[1]
    _set_cell(story_run, "events", 5, "action", '"' + action)
    line = _refused(["validate", str(story_run)], capsys, story_run / "events.csv", [story_run])
    assert line == (
        f"simkit: error: {story_run / 'events.csv'}: row 5, column 'action': expected a closing quote "
        "for the quoted cell that opens here (it runs to the end of the file)"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ('O"Brien', "a quote only at the start of a cell"),
        ('"Bank" Inc', "a comma or a line end after the closing quote of a cell"),
        (' "Bank"', "a quote only at the start of a cell"),
    ],
    ids=["inside a cell", "after a closing quote", "after a space"],
)
def test_a_quote_out_of_place_is_refused_with_its_row_and_column(
    story_run: Path, name: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (story_run / "pods.csv").write_text(f"pod_id,name,private\n10,pod-10,true\n20,{name},true\n30,x,false\n")
    line = _refused(["validate", str(story_run)], capsys, story_run / "pods.csv", [story_run])
    assert f"row 2, column 'name': expected {expected}" in line


def test_quoted_line_breaks_commas_and_quotes_are_cells(story_run: Path) -> None:
    (story_run / "pods.csv").write_text(
        'pod_id,name,private\n10,"pod\nten",true\r\n20,"Bank, ""the"" one",true\n30,"x\r\ny",false'
    )
    assert read_run(story_run).population.pod_name == ("pod\nten", 'Bank, "the" one', "x\r\ny")


def test_rows_the_reader_did_not_return_are_refused(
    story_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The count of records is made apart from pyarrow: a reader that loses a row is caught.
    real = pacsv.read_csv

    def loses_a_row(*args: Any, **kwargs: Any) -> pa.Table:
        table = real(*args, **kwargs)
        return table.slice(0, table.num_rows - 1)

    def fake(patch: pytest.MonkeyPatch) -> None:
        patch.setattr(simkit.io.runs.pacsv, "read_csv", loses_a_row)

    line = _refused(["replay", str(story_run)], capsys, story_run / "pods.csv", [story_run], fake)
    assert "the file holds 3 data records, the CSV reader returned 2 rows" in line


def test_a_byte_order_mark_and_crlf_are_accepted(story_run: Path) -> None:
    expected = read_run(story_run)
    for table in ("pods", "events"):
        file = story_run / f"{table}.csv"
        file.write_bytes(b"\xef\xbb\xbf" + file.read_bytes().replace(b"\n", b"\r\n"))
    got = read_run(story_run)
    assert got.population.pod_name == expected.population.pod_name
    assert np.array_equal(got.events.ts, expected.events.ts)


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_line_ends(story_run: Path, end: str) -> None:
    expected = read_run(story_run).events
    file = story_run / "events.csv"
    file.write_bytes(file.read_bytes().replace(b"\n", end.encode()))
    assert np.array_equal(read_run(story_run).events.actor, expected.actor)


@pytest.mark.parametrize(
    "header", ["ts,actor,target,action", "ts,actor,target,action\n", "\n\nts,actor,target,action"]
)
def test_a_header_alone_is_a_valid_empty_table(story_run: Path, header: str) -> None:
    (story_run / "events.csv").write_text(header)
    (story_run / "policy.csv").write_text(header.replace("actor,target,action", "pod_a,pod_b,crosspod"))
    result = replay_run(story_run)
    assert len(result.outcomes) == 0


def test_blank_lines_are_no_rows_and_rows_keep_the_numbers_of_the_file(
    story_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = (story_run / "events.csv").read_text().splitlines()
    blanked = ["", lines[0], lines[1], "", "", *lines[2:]]
    (story_run / "events.csv").write_text("\n".join(blanked) + "\n\n")
    assert len(read_run(story_run).events) == len(lines) - 1
    # Data row 8 of the original is now the 10th line after the header (two blank lines).
    blanked[1 + 10] = blanked[1 + 10].rsplit(",", 1)[0] + ",poke"
    (story_run / "events.csv").write_text("\n".join(blanked) + "\n")
    line = _refused(["validate", str(story_run)], capsys, story_run / "events.csv", [story_run])
    assert "row 10, column 'action'" in line
    # So do rows refused after reading (a user of an unknown pod).
    (story_run / "events.csv").write_text("\n".join(lines) + "\n")
    (story_run / "users.csv").write_text("user_id,pod_id,external\n\n101,10,true\n\n102,77,true\n")
    line = _refused(["validate", str(story_run)], capsys, story_run / "users.csv", [story_run])
    assert "row 4, column 'pod_id'" in line


def test_a_ragged_row_after_blank_lines_is_named_by_its_row(
    story_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (story_run / "crosspod.csv").write_text("pod_a,pod_b\n10,20\n\n\n20\n")
    line = _refused(["validate", str(story_run)], capsys, story_run / "crosspod.csv", [story_run])
    assert line.endswith("crosspod.csv: row 4: expected 2 cells as in the header, found 1")


@pytest.mark.parametrize("size", [200 << 10, 3 << 20], ids=["200 KB", "3 MB"])
def test_a_long_cell_is_read(story_run: Path, size: int) -> None:
    long = "x" * size
    (story_run / "pods.csv").write_text(f"pod_id,name,private\n10,{long},true\n20,b,true\n30,c,false\n")
    assert read_run(story_run).population.pod_name[0] == long


# Text that pyarrow and a CSV writer could disagree on: separators, quotes, line ends.
_cell_text = st.text(st.sampled_from(list('ab ,"\n\r\té0xX')), min_size=1, max_size=12).filter(str.strip)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    names=st.lists(_cell_text, min_size=1, max_size=12),
    blank=st.lists(st.booleans(), min_size=13, max_size=13),
    style=st.sampled_from([(csv.QUOTE_MINIMAL, "\r\n"), (csv.QUOTE_ALL, "\n"), (csv.QUOTE_NONNUMERIC, "\r")]),
)
def test_what_a_csv_writer_writes_is_read_back(
    tmp_path_factory: pytest.TempPathFactory, names: list[str], blank: list[bool], style: tuple[int, str]
) -> None:
    quoting, end = style
    out = io.StringIO(newline="")
    writer = csv.writer(out, quoting=quoting, lineterminator=end)
    writer.writerow(["pod_id", "name", "private"])
    for i, name in enumerate(names):
        if blank[i]:
            out.write(end)
        writer.writerow([i, name, "true"])
    folder = tmp_path_factory.mktemp("csv")
    (folder / "pods.csv").write_text(out.getvalue(), newline="")
    got = simkit.io.runs._read_table("pods", folder / "pods.csv")
    assert got["name"].tolist() == names
    assert got["pod_id"].tolist() == list(range(len(names)))


# -- every refusal is one line -------------------------------------------------------------------


def _events_parquet(run: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    table = pacsv.read_csv(run / "events.csv")
    pq.write_table(change(table), run / "events.parquet")
    (run / "events.csv").unlink()


def _column(table: pa.Table, name: str, array: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, array)


def _sub_millisecond(table: pa.Table) -> pa.Table:
    us = [v * 1000 + (7 if i == 4 else 0) for i, v in enumerate(table["ts"].to_pylist())]
    return _column(table, "ts", pa.array(us, pa.timestamp("us")))


def _huge_unsigned(table: pa.Table) -> pa.Table:
    ids = [2**63 if i == 5 else v for i, v in enumerate(table["actor"].to_pylist())]
    return _column(table, "actor", pa.array(ids, pa.uint64()))


def _not_utf8(values: list[bytes]) -> pa.Array:
    offsets = np.cumsum([0, *map(len, values)]).astype(np.int32)
    return pa.Array.from_buffers(
        pa.string(), len(values), [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(values))]
    )


def _bad_utf8_parquet(run: Path) -> None:
    pods = pacsv.read_csv(run / "pods.csv")
    pq.write_table(_column(pods, "name", _not_utf8([b"pod-10", b"p\xff", b"pod-30"])), run / "pods.parquet")
    (run / "pods.csv").unlink()


def _fifo(run: Path) -> None:
    (run / "events.csv").unlink()
    os.mkfifo(run / "events.csv")


def _dangling(run: Path) -> None:
    (run / "events.csv").unlink()
    (run / "events.csv").symlink_to(run / "gone.csv")


def _folder(run: Path) -> None:
    (run / "events.csv").unlink()
    (run / "events.csv").mkdir()
    (run / "events.csv" / "part-0.csv").write_text("ts,actor,target,action\n")


Mutation = Callable[[Path], object]

# (what is wrong, how to break the story run, the file named, what the line says)
REFUSED: list[tuple[str, Mutation, str, str]] = [
    (
        "duplicate CSV column",
        lambda r: (r / "events.csv").write_text("ts,actor,target,action,ts\n1,101,201,connect,2\n"),
        "events.csv",
        "column 'ts': expected each column once, found 2 named 'ts'",
    ),
    (
        "duplicate Parquet column",
        lambda r: _events_parquet(r, lambda t: t.append_column("actor", t["actor"])),
        "events.parquet",
        "column 'actor': expected each column once, found 2 named 'actor'",
    ),
    (
        "sub-millisecond Parquet ts",
        lambda r: _events_parquet(r, _sub_millisecond),
        "events.parquet",
        "row 5, column 'ts': expected a time in whole milliseconds",
    ),
    (
        "Parquet uint64 at 2**63",
        lambda r: _events_parquet(r, _huge_unsigned),
        "events.parquet",
        "row 6, column 'actor': expected an integer id that fits in 64 bits, found 9223372036854775808",
    ),
    (
        "Parquet text not UTF-8",
        _bad_utf8_parquet,
        "pods.parquet",
        "row 2, column 'name': expected text in UTF-8",
    ),
    (
        "CSV text not UTF-8",
        lambda r: (r / "pods.csv").write_bytes(
            b"pod_id,name,private\n10,a,true\n20,b\xff,true\n30,c,false\n"
        ),
        "pods.csv",
        "row 2, column 'name': expected text in UTF-8",
    ),
    (
        "CSV header not UTF-8",
        lambda r: (r / "pods.csv").write_bytes(b"pod_id,n\xe4me,private\n10,a,true\n"),
        "pods.csv",
        "expected a header row of column names in UTF-8",
    ),
    (
        "id beyond int64",
        lambda r: _set_cell(r, "events", 7, "actor", "9223372036854775808"),
        "events.csv",
        "row 7, column 'actor': expected an integer id that fits in 64 bits, found '9223372036854775808'",
    ),
    (
        "ts beyond int64",
        lambda r: _set_cell(r, "events", 2, "ts", "-99999999999999999999"),
        "events.csv",
        "row 2, column 'ts': expected an integer (milliseconds since the epoch) that fits in 64 bits",
    ),
    (
        "a hexadecimal id",
        lambda r: _set_cell(r, "events", 3, "actor", "0x65"),
        "events.csv",
        "row 3, column 'actor': expected an integer id, found '0x65'",
    ),
    (
        "a folder in place of a table",
        _folder,
        "events.csv",
        "expected a file holding table 'events', found a folder",
    ),
    ("a FIFO in place of a table", _fifo, "events.csv", "found a named pipe (FIFO)"),
    ("a dangling link in place of a table", _dangling, "events.csv", "found a link to a missing file"),
    (
        "only blank lines",
        lambda r: (r / "crosspod.csv").write_text("\n\r\n\n"),
        "crosspod.csv",
        "expected a header row (the file holds only blank lines)",
    ),
    (
        "not Parquet",
        lambda r: [(r / "events.csv").unlink(), (r / "events.parquet").write_bytes(b"PAR1 not really")],
        "events.parquet",
        "expected a readable Parquet file",
    ),
]


@pytest.mark.parametrize(("what", "mutate", "file", "says"), REFUSED, ids=[r[0] for r in REFUSED])
@pytest.mark.parametrize("command", ["validate", "replay"])
def test_a_refused_input_is_one_line(
    what: str,
    mutate: Mutation,
    file: str,
    says: str,
    command: str,
    story_run: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mutate(story_run)
    line = _refused([command, str(story_run)], capsys, story_run / file, [story_run])
    assert says in line


def test_a_leading_plus_is_a_number(story_run: Path) -> None:
    _set_cell(story_run, "events", 1, "actor", "+101")
    _set_cell(story_run, "pods", 1, "pod_id", " +10")
    run = read_run(story_run)
    assert run.events.actor[0] == 101 and run.population.pod_id[0] == 10


# -- every OSError is one line -------------------------------------------------------------------


def test_out_that_is_a_file(story_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "file"
    file.write_text("keep")
    _refused(["replay", str(story_run), "--out", str(file)], capsys, file, [story_run])
    _refused(["run", SCENARIO, "--out", str(file)], capsys, file, [tmp_path])
    assert file.read_text() == "keep"


def test_out_under_a_file(story_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "file"
    file.write_text("keep")
    under = file / "out"
    _refused(["replay", str(story_run), "--out", str(under)], capsys, file, [story_run, tmp_path])
    _refused(["run", SCENARIO, "--out", str(under / "deeper")], capsys, under, [tmp_path])


def test_a_folder_that_may_not_be_searched(story_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = Path.lstat

    def lstat(self: Path) -> os.stat_result:
        if self.parent == story_run:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self)

    def fake(patch: pytest.MonkeyPatch) -> None:
        patch.setattr(Path, "lstat", lstat)

    for command in ("validate", "replay"):
        line = _refused([command, str(story_run)], capsys, story_run / "pods.csv", [story_run], fake)
        assert line.endswith(": Permission denied")


@pytest.mark.parametrize("form", ["csv", "parquet"])
def test_a_table_that_may_not_be_read(story_run: Path, form: str, capsys: pytest.CaptureFixture[str]) -> None:
    users = story_run / f"users.{form}"
    real = Path.open

    def open_(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == users:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self, *args, **kwargs)

    def parquet_file(path: object, *args: object, **kwargs: object) -> None:
        # pyarrow's own words: no file name, the system's error as a detail.
        raise PermissionError(f"Failed to open local file '{path}'. Detail: [errno 13] Permission denied")

    def fake(patch: pytest.MonkeyPatch) -> None:
        patch.setattr(Path, "open", open_)
        patch.setattr(simkit.io.runs.pq, "ParquetFile", parquet_file)

    if form == "parquet":
        pq.write_table(pacsv.read_csv(story_run / "users.csv"), users)
        (story_run / "users.csv").unlink()
    line = _refused(["replay", str(story_run)], capsys, users, [story_run], fake)
    assert line == f"simkit: error: {users}: Permission denied"


def _read_only(folder: Path) -> Fake:
    """Creating a file or a folder in `folder` fails as on a read-only file system."""
    real_mkstemp, real_mkdtemp = tempfile.mkstemp, tempfile.mkdtemp

    def refuse(dir: Any, prefix: Any, suffix: Any) -> None:
        if dir is not None and Path(dir) == folder:
            name = f"{prefix or ''}x1y2z3{suffix or ''}"
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(Path(dir) / name))

    def mkstemp(suffix: Any = None, prefix: Any = None, dir: Any = None, text: bool = False) -> Any:
        refuse(dir, prefix, suffix)
        return real_mkstemp(suffix, prefix, dir, text)

    def mkdtemp(suffix: Any = None, prefix: Any = None, dir: Any = None) -> Any:
        refuse(dir, prefix, suffix)
        return real_mkdtemp(suffix, prefix, dir)

    def fake(patch: pytest.MonkeyPatch) -> None:
        patch.setattr(simkit.io.atomic.tempfile, "mkstemp", mkstemp)

    return fake


def test_a_read_only_folder(story_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # As root, chmod would not stop a write: the file system's refusal is played by a fake.
    replay_run(story_run)  # earlier outputs, which a failed replay must leave as they were
    line = _refused(
        ["replay", str(story_run)], capsys, story_run / "manifest.json", [story_run], _read_only(story_run)
    )
    assert line.endswith("manifest.json: Read-only file system")
    out = tmp_path / "out"
    out.mkdir()
    argv = ["replay", str(story_run), "--out", str(out)]
    _refused(argv, capsys, out / "manifest.json", [story_run, out], _read_only(out))
    line = _refused(["run", SCENARIO, "--out", str(out)], capsys, out, [out], _read_only(out))
    assert "Read-only file system" in line


def _full_disk(patch: pytest.MonkeyPatch) -> None:
    """Parquet writes fail half-way, as pyarrow does on a full disk."""

    def write_table(table: pa.Table, where: Any, **kwargs: Any) -> None:
        Path(where).write_bytes(b"PAR1 half")
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    patch.setattr(simkit.io.runs.pq, "write_table", write_table)


def test_a_full_disk(story_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replay_run(story_run)
    line = _refused(
        ["replay", str(story_run)], capsys, story_run / "outcomes.parquet", [story_run], _full_disk
    )
    assert line.endswith("outcomes.parquet: No space left on device")
    out = tmp_path / "new" / "out"
    argv = ["replay", str(story_run), "--out", str(out)]
    _refused(argv, capsys, out / "outcomes.parquet", [story_run, tmp_path], _full_disk)
    line = _refused(["run", SCENARIO, "--out", str(out)], capsys, out, [tmp_path], _full_disk)
    # A run writes its demand first (alongside the replay), then the inputs.
    assert line.endswith(f"{out / 'demand.parquet'}: No space left on device")


def _mount_point(monkeypatch: pytest.MonkeyPatch, mount: Path) -> None:
    """A rename into or out of `mount` fails as between two file systems."""

    def inside(path: Any) -> bool:
        return Path(path).absolute().is_relative_to(mount)

    def guarded(real: Callable[..., None]) -> Callable[..., None]:
        def rename(src: Any, dst: Any, **kwargs: Any) -> None:
            if inside(src) != inside(dst):
                raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src), None, str(dst))
            real(src, dst, **kwargs)

        return rename

    monkeypatch.setattr(os, "rename", guarded(os.rename))
    monkeypatch.setattr(os, "replace", guarded(os.replace))


def test_a_run_written_to_a_mount_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mount = tmp_path / "mnt"
    mount.mkdir()
    _mount_point(monkeypatch, mount)
    assert main(["run", SCENARIO, "--out", str(mount)]) == 0
    first = _digest(mount)
    assert main(["run", SCENARIO, "--out", str(mount), "--overwrite"]) == 0
    assert _digest(mount) == first
    assert sorted(p.name for p in mount.iterdir()) == sorted(first)  # no temporary folder left
    capsys.readouterr()


# -- the outputs of a replay, read back ---------------------------------------------------------


def _tamper(folder: Path, name: str, change: Callable[[pa.Table], pa.Table]) -> None:
    file = folder / f"{name}.parquet"
    pq.write_table(change(pq.read_table(file)), file)


TAMPERED: list[tuple[str, str, Callable[[pa.Table], pa.Table], str]] = [
    (
        "code as strings",
        "outcomes",
        lambda t: _column(t, "code", t["code"].cast(pa.string())),
        "column 'code': expected int16 as simkit writes it, found string",
    ),
    (
        "no status",
        "connections",
        lambda t: t.drop_columns(["status"]),
        "column 'status': expected one column named 'status', found none",
    ),
    (
        "a null code",
        "outcomes",
        lambda t: _column(t, "code", pa.array([None, *t["code"].to_pylist()[1:]], pa.int16())),
        "row 1, column 'code': expected a value (the cell is empty)",
    ),
    (
        "an unknown status",
        "connections",
        lambda t: _column(t, "status", pa.array(["PENDING", "LOST", *t["status"].to_pylist()[2:]])),
        "row 2, column 'status': expected one of",
    ),
    (
        "a status not UTF-8",
        "connections",
        lambda t: _column(t, "status", _not_utf8([b"PENDING", b"ACC\xffPTED", b"PENDING", b"ACCEPTED"])),
        "row 2, column 'status': expected text in UTF-8",
    ),
]


@pytest.mark.parametrize("labels", [False, True], ids=["text", "dictionaries"])
@pytest.mark.parametrize(("what", "name", "change", "says"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_tampered_outputs_are_refused(
    story_run: Path, what: str, name: str, change: Callable[[pa.Table], pa.Table], says: str, labels: bool
) -> None:
    replay_run(story_run)
    _tamper(story_run, name, change)
    with pytest.raises(InputError) as info:
        read_outputs(story_run, 46, labels=labels)
    assert str(info.value).startswith(f"{story_run / f'{name}.parquet'}: ")
    assert says in str(info.value)


def test_outputs_that_are_missing_or_not_files_or_short(story_run: Path) -> None:
    with pytest.raises(RunDirError, match=r"outcomes\.parquet: missing; run `simkit replay`"):
        read_outputs(story_run, 46)
    replay_run(story_run)
    with pytest.raises(RunDirError, match="46 rows for 47 events"):
        read_outputs(story_run, 47)
    (story_run / "connections.parquet").unlink()
    (story_run / "connections.parquet").mkdir()
    with pytest.raises(InputError, match="found a folder"):
        read_outputs(story_run, 46)


def test_outputs_read_back_as_written(story_run: Path) -> None:
    result = replay_run(story_run)
    outcomes, connections = read_outputs(story_run, 46)
    assert outcomes.equals(simkit.io.runs.outcomes_table(result.outcomes))
    assert connections.equals(simkit.io.runs.connections_table(result.connections))


def test_outputs_read_with_their_labels_as_dictionaries_give_the_same_codes(story_run: Path) -> None:
    from simkit.io.runs import label_codes
    from simkit.rules import REASONS, STATUSES

    result = replay_run(story_run)
    outcomes, connections = read_outputs(story_run, 46, labels=True)
    assert pa.types.is_dictionary(outcomes["reason"].type) and pa.types.is_dictionary(
        connections["status"].type
    )
    text, _ = read_outputs(story_run, 46)
    for column, labels, codes in (
        ("reason", [r.value for r in REASONS], result.outcomes.reason),
        ("status", [s.value for s in STATUSES], result.outcomes.status),
    ):
        assert label_codes(outcomes[column], labels).tolist() == codes.tolist()
        assert label_codes(text[column], labels).tolist() == codes.tolist()


def _report_reads_outputs_checked() -> bool:
    import inspect

    import simkit.analysis

    return "read_outputs" in inspect.getsource(simkit.analysis.load)


@pytest.mark.skipif(
    not _report_reads_outputs_checked(), reason="simkit.analysis.load does not call io.runs.read_outputs yet"
)
def test_report_refuses_tampered_outputs(
    story_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replay_run(story_run)
    _tamper(story_run, "outcomes", TAMPERED[0][2])
    line = _refused(
        ["report", str(story_run), "--out", str(tmp_path / "report")],
        capsys,
        story_run / "outcomes.parquet",
        [story_run, tmp_path / "report"],
    )
    assert "column 'code'" in line
