"""The Parquet settings simkit writes with, and the inputs written while the replay runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import simkit.io.commit
import simkit.io.runs
import simkit.pipeline
from simkit.cli import main
from simkit.io.runs import read_run, write_inputs
from simkit.pipeline import simulate
from simkit.schema import TABLES, ColumnType

SCENARIO = "data/scenarios/tiny.toml"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("encodings") / "run"
    simulate(SCENARIO, folder)
    return folder


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    "name", ["pods", "users", "crosspod", "policy", "events", "outcomes", "connections", "demand"]
)
def test_ids_and_times_are_delta_encoded_uncompressed_with_statistics_and_every_other_column_keeps_a_dictionary(
    tiny_run: Path, name: str
) -> None:
    metadata = pq.read_metadata(tiny_run / f"{name}.parquet")
    assert metadata.num_row_groups >= 1
    for group in range(metadata.num_row_groups):
        for i in range(metadata.num_columns):
            chunk = metadata.row_group(group).column(i)
            kind = TABLES[name].column(chunk.path_in_schema).type
            delta = kind in (ColumnType.ID, ColumnType.TS)
            assert chunk.compression == ("UNCOMPRESSED" if delta else "ZSTD"), chunk.path_in_schema
            # Row groups can be skipped by their ids and times, never by their labels or codes.
            assert chunk.is_stats_set == (kind in (ColumnType.ID, ColumnType.TS)), chunk.path_in_schema
            if kind in (ColumnType.ID, ColumnType.TS):
                assert "DELTA_BINARY_PACKED" in chunk.encodings, chunk.path_in_schema
                assert not chunk.has_dictionary_page, chunk.path_in_schema
            elif kind is ColumnType.BOOL:  # Parquet has no dictionary for booleans
                assert chunk.encodings == ("RLE", "PLAIN"), chunk.path_in_schema
            else:
                assert chunk.has_dictionary_page, chunk.path_in_schema
                assert "RLE_DICTIONARY" in chunk.encodings, chunk.path_in_schema


def test_the_files_read_back_as_the_tables_written(tiny_run: Path) -> None:
    run = read_run(tiny_run)
    events = pq.read_table(tiny_run / "events.parquet")
    assert events.column("ts").to_numpy().tolist() == run.events.ts.tolist()
    assert events.column("actor").to_numpy().tolist() == run.events.actor.tolist()
    assert events.schema.field("action").type == "string"


def test_writing_the_inputs_stops_at_the_next_table_once_told(tmp_path: Path) -> None:
    run = read_run("data/samples/story")
    stop = threading.Event()
    stop.set()
    assert write_inputs(tmp_path, run.population, run.events, run.policy, stop=stop) == {}
    assert list(tmp_path.iterdir()) == []


def _slow(seconds: float, inner: Any) -> Any:
    def slowed(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return inner(*args, **kwargs)

    return slowed


@pytest.mark.parametrize("slower", ["replay", "writing"])
def test_outputs_are_identical_whether_the_inputs_are_written_alongside_or_not(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slower: str
) -> None:
    # Whichever of the two threads finishes first, the same bytes as one after the other.
    with monkeypatch.context() as patch:
        patch.setattr(simkit.io.commit, "_WRITE_ALONGSIDE", False)
        simulate(SCENARIO, tmp_path / "sequential")
    if slower == "replay":
        monkeypatch.setattr(simkit.pipeline, "replay", _slow(0.3, simkit.pipeline.replay))
    else:
        monkeypatch.setattr(simkit.io.runs, "_write_parquet", _slow(0.05, simkit.io.runs._write_parquet))
    simulate(SCENARIO, tmp_path / "alongside")
    assert _digests(tmp_path / "alongside") == _digests(tmp_path / "sequential") == _digests(tiny_run)


def test_a_failed_replay_stops_the_writing_and_leaves_nothing(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    written: list[str] = []
    real = simkit.io.runs._write_parquet

    def write(table: Any, name: str, part: Any) -> None:
        time.sleep(0.05)
        real(table, name, part)
        written.append(name)

    def replay(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr(simkit.io.runs, "_write_parquet", write)
    monkeypatch.setattr(simkit.pipeline, "replay", replay)
    with pytest.raises(MemoryError):
        simulate(SCENARIO, tmp_path / "new")
    assert not [t for t in threading.enumerate() if t.name.startswith("simkit-write")]
    assert len(written) < 6  # stopped before the last table: the demand and five inputs
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_while_writing_alongside_leaves_the_old_run(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The interrupt arrives while the other thread writes; more may follow, one per table,
    # and are not let cut the clean-up short.
    folder = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    before = _digests(folder)
    real = simkit.io.runs._write_parquet

    def write(table: Any, name: str, part: Any) -> None:
        real(table, name, part)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(simkit.io.runs, "_write_parquet", write)
    monkeypatch.setattr(simkit.pipeline, "replay", _slow(0.5, simkit.pipeline.replay))
    assert main(["run", SCENARIO, "--out", str(folder), "--overwrite", "--seed", "2"]) == 128 + signal.SIGINT
    assert capsys.readouterr().err == "simkit: interrupted\n"
    assert _digests(folder) == before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("when", ["before the demand", "after the demand"])
def test_a_failed_draw_stops_the_writer_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    # The writer starts before the draw and waits for the demand; a draw that fails before
    # handing it over, or after (while the demand is being written), ends the writer too.
    real = simkit.pipeline.draw

    def draw(*args: Any, on_demand: Any = None, **kwargs: Any) -> Any:
        if when == "before the demand":
            raise MemoryError
        real(*args, on_demand=on_demand, **kwargs)
        raise MemoryError

    monkeypatch.setattr(simkit.pipeline, "draw", draw)
    with pytest.raises(MemoryError):
        simulate(SCENARIO, tmp_path / "new")
    assert not [t for t in threading.enumerate() if t.name.startswith("simkit-write")]
    assert list(tmp_path.iterdir()) == []


def test_a_staged_file_is_hashed_once_whoever_asks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[Path] = []
    inner = simkit.io.commit.file_sha256
    monkeypatch.setattr(simkit.io.commit, "file_sha256", lambda f: hashed.append(f) or inner(f))
    (tmp_path / "old.txt").write_text("old")
    with simkit.io.commit.RunFolderTransaction(tmp_path, "test") as txn:
        txn.stage("new.txt").write_text("new")
        digests = {txn.sha256(tmp_path / name) for name in ("new.txt", "new.txt", "old.txt", "old.txt")}
        assert digests == {hashlib.sha256(b"new").hexdigest(), hashlib.sha256(b"old").hexdigest()}
        # The staged file once, the folder's own file each time (it is not the transaction's).
        assert [p.name for p in hashed].count("old.txt") == 2
        assert len([p for p in hashed if p.name != "old.txt"]) == 1
        staged_again = txn.stage("new.txt")
        staged_again.write_text("newer")
        assert txn.sha256(tmp_path / "new.txt") == hashlib.sha256(b"newer").hexdigest()


def test_simkit_run_hashes_each_file_once_and_the_manifest_records_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[str] = []
    inner = simkit.io.commit.file_sha256

    def counted(file: Path) -> str:
        hashed.append(file.name.split(".")[1])  # .NAME.XXXXXXXX.tmp
        return inner(file)

    monkeypatch.setattr(simkit.io.commit, "file_sha256", counted)
    simulate(SCENARIO, tmp_path / "run")
    monkeypatch.undo()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text(encoding="utf-8"))
    recorded = {**manifest["inputs"], **manifest["outputs"], **manifest.get("own", {})}
    assert sorted(hashed) == sorted(record["file"].split(".")[0] for record in recorded.values())
    for record in recorded.values():
        assert (
            hashlib.sha256((tmp_path / "run" / record["file"]).read_bytes()).hexdigest() == record["sha256"]
        )
