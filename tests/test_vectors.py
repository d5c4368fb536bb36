"""The conformance vectors of connections.md, reproduced exactly by every engine and the CLI."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from simkit.cli import main
from simkit.engines import ENGINES
from simkit.io.runs import read_run
from simkit.pipeline import replay_run
from tests.conftest import VECTOR_NAMES, copy_inputs, read_expected


def _as_text(value: object) -> str:
    return "" if value is None else str(value)


def _rows(table_path: Path) -> list[dict[str, str]]:
    return [{k: _as_text(v) for k, v in row.items()} for row in pq.read_table(table_path).to_pylist()]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_through_python_api(name: str, engine: str, tmp_path: Path) -> None:
    run = copy_inputs(name, tmp_path / "run")
    result = replay_run(run, out=tmp_path / "out", engine=engine)
    got = [
        {"code": str(c), "reason": _as_text(r), "status": _as_text(s), "request_counter": str(n)}
        for c, r, s, n in zip(
            result.outcomes.code.tolist(),
            result.outcomes.reasons(),
            result.outcomes.statuses(),
            result.outcomes.request_counter.tolist(),
        )
    ]
    assert got == read_expected(name, "outcomes")
    assert _rows(tmp_path / "out" / "connections.parquet") == read_expected(name, "connections")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_through_cli(
    name: str, engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_inputs(name, tmp_path / "run")
    assert main(["replay", str(run), "--engine", engine, "--csv"]) == 0
    assert "events:" in capsys.readouterr().out
    assert _rows(run / "outcomes.parquet") == read_expected(name, "outcomes")
    assert _rows(run / "connections.parquet") == read_expected(name, "connections")
    # The CSV copies hold the same answers, spelled as the vectors spell them.
    assert (run / "outcomes.csv").read_text().splitlines() == (
        (Path(__file__).parent / "vectors" / name / "expected_outcomes.csv").read_text().splitlines()
    )


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_events_keep_input_order(name: str) -> None:
    run = read_run(Path(__file__).parent / "vectors" / name)
    assert len(run.events) == len(read_expected(name, "outcomes"))
