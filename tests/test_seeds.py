"""Seeds: one normalisation, replications by SeedSequence.spawn, recorded so each reruns alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simkit.generate import generate
from simkit.pipeline import simulate
from simkit.scenario import load_scenario
from simkit.seeds import generator, seed_record, seed_sequence

TINY = Path(__file__).resolve().parent.parent / "data" / "scenarios" / "tiny.toml"


def _same_events(a: object, b: object) -> bool:
    return all(
        bool(np.array_equal(getattr(a, c), getattr(b, c))) for c in ("ts", "actor", "target", "action")
    )


def test_an_int_and_its_seed_sequence_draw_the_same_run() -> None:
    sc = load_scenario(TINY)
    assert _same_events(generate(sc, 11)[1], generate(sc, np.random.SeedSequence(11))[1])


def test_a_spawned_replication_reruns_alone_from_its_record() -> None:
    sc = load_scenario(TINY)
    children = np.random.SeedSequence(3).spawn(3)
    drawn = [generate(sc, child)[1] for child in children]
    assert not _same_events(drawn[0], drawn[1])
    again = generate(sc, seed_sequence(seed_record(children[2])))[1]
    assert _same_events(again, drawn[2])


def test_spawning_from_a_sequence_before_does_not_change_what_it_draws() -> None:
    sc = load_scenario(TINY)
    used = np.random.SeedSequence(5)
    used.spawn(4)
    assert _same_events(generate(sc, used)[1], generate(sc, 5)[1])


def test_the_manifest_records_entropy_and_spawn_key(tmp_path: Path) -> None:
    child = np.random.SeedSequence(9).spawn(2)[1]
    simulate(TINY, tmp_path / "run", seed=child)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["seed_sequence"] == {"entropy": 9, "spawn_key": [1]}
    simulate(TINY, tmp_path / "again", seed=seed_sequence(manifest["seed_sequence"]))
    assert (tmp_path / "again" / "events.parquet").read_bytes() == (
        tmp_path / "run" / "events.parquet"
    ).read_bytes()


@pytest.mark.parametrize("bad", [-1, 1.5, "7", True, None, {"entropy": -2}, {"spawn_key": [1]}])
def test_a_bad_seed_is_refused_in_one_place(bad: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        seed_sequence(bad)  # type: ignore[arg-type]


def test_a_bad_seed_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        simulate(TINY, tmp_path / "run", seed=-3)
    assert list(tmp_path.iterdir()) == []


def test_a_generator_is_used_as_it_is() -> None:
    rng = np.random.default_rng(1)
    assert generator(rng) is rng
    assert generator(2).integers(1 << 30) == np.random.default_rng(np.random.SeedSequence(2)).integers(
        1 << 30
    )
