"""Shared fixtures: the conformance vectors and small run folders."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from simkit import replay_run, simulate
from simkit.events import Events

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


@pytest.fixture(scope="module")
def story_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The story sample with its outputs, in a folder of its own (one per test module)."""
    folder = tmp_path_factory.mktemp("story") / "run"
    shutil.copytree("data/samples/story", folder)
    replay_run(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `simkit run` of the tiny scenario, seed 5: its folder holds demand.parquet."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    simulate("data/scenarios/tiny.toml", out, seed=5, progress=False)
    return out


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


def random_log(seed: int, n: int, users: int, seconds: int) -> Events:
    """`n` calls between users 1 to `users` (an id past them is unknown; a user may call
    themselves), the four actions at random, at whole seconds below `seconds`: out of ts
    order and with ties, so that every rule and every reopen gets exercised."""
    rng = np.random.default_rng(seed)
    actions = np.array(["connect", "accept", "reject", "remove"])
    ts, actor, target = (
        rng.integers(0, seconds, n) * 1000,
        rng.integers(1, users + 1, n),
        rng.integers(1, users + 1, n),
    )
    return Events.from_records(
        [
            (int(t), int(a), int(b), str(x))
            for t, a, b, x in zip(ts, actor, target, rng.choice(actions, n), strict=True)
        ]
    )
