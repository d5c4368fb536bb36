"""Shared fixtures: the conformance vectors and small run folders."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

VECTORS = Path(__file__).parent / "vectors"
VECTOR_NAMES = sorted(p.name for p in VECTORS.iterdir() if p.is_dir())
INPUT_FILES = ("pods.csv", "users.csv", "crosspod.csv", "policy.csv", "events.csv")


def read_expected(name: str, table: str) -> list[dict[str, str]]:
    """Rows of a vector's expected_<table>.csv as strings (an empty cell is '')."""
    with (VECTORS / name / f"expected_{table}.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def copy_inputs(name: str, dest: Path) -> Path:
    """Copy a vector's input tables (not its answers) into a fresh run folder."""
    dest.mkdir(parents=True, exist_ok=True)
    for file in INPUT_FILES:
        shutil.copy(VECTORS / name / file, dest / file)
    return dest


@pytest.fixture
def story_run(tmp_path: Path) -> Path:
    """A run folder holding the inputs of the `story` vector."""
    return copy_inputs("story", tmp_path / "story")


def one_line(capsys: pytest.CaptureFixture[str], *parts: str) -> str:
    """The one error line on stderr, which holds every one of `parts`."""
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("simkit: error: "), err
    assert all(part in lines[0] for part in parts), lines[0]
    return lines[0]
