"""Fuzzing the command line: whatever a scenario knob or an input cell holds, simkit answers
with success or one line of error, never a traceback, and never touches its inputs."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simkit.cli import main
from simkit.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "data" / "scenarios").glob("*.toml"))
STORY = ROOT / "data" / "samples" / "story"
# Small enough that every run the fuzzer lets through takes a fraction of a second.
MAX_EVENTS = 200_000

FUZZ = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _knobs(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every knob (and section) of a scenario's tables by its dotted key, with its value."""
    knobs = {}
    for key, value in table.items():
        knobs[prefix + key] = value
        if isinstance(value, dict):
            knobs |= _knobs(value, f"{prefix}{key}.")
    return knobs


KNOBS = {path: _knobs(load_scenario(path).to_dict()) for path in SCENARIOS}
TINY = ROOT / "data" / "scenarios" / "tiny.toml"
# Knobs that must sum to 1 with others: changed alone they are refused, so they are left to
# the "anything" values.
SUMMED = ("behaviour.accept", "behaviour.reject", "behaviour.ignore", "behaviour.mistakes")


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _assert_clean(code: int, err: str) -> None:
    """Success, or exactly one line of error; never a traceback."""
    assert "Traceback" not in err
    if code == 0:
        assert err == ""
    else:
        assert code == 1, err
        assert err.endswith("\n")
        assert len(err.splitlines()) == 1, err
        assert err.startswith("simkit: error: "), err


_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 10**9, 10**12, 2**63 - 1, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1e-300, 1e300, 0.999999, 1.000001, 36_525.0, 36_526.0]),
)
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_values = st.one_of(
    _numbers.map(lambda n: str(n) if not isinstance(n, float) else repr(n)),
    st.sampled_from(["nan", "inf", "-inf", "true", "false", "[]", "[[1, 2]]", "{}", '""', "2024-01-01"]),
    st.sampled_from(["[{day = 1, pods = 1}]", "[{day = 1e9}]", "[{enable = 2}]", "[[1, 1]]", '[["x", 2]]']),
    _text,
)


@st.composite
def _changes(draw: st.DrawFn) -> tuple[Path, list[tuple[str, str]]]:
    """A bundled scenario (most often tiny, which runs) and one to three knobs set to values
    near their own (a knob scaled, zeroed, negated) or to anything at all."""
    scenario = draw(st.sampled_from([TINY, TINY, *SCENARIOS]))
    knobs = KNOBS[scenario]
    changes = []
    numeric = sorted(
        k
        for k, v in knobs.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and not k.startswith(SUMMED)
    )
    # Mostly numbers that need not sum with others, so that many cases get as far as a run.
    keys = st.sampled_from(numeric) | st.sampled_from(numeric) | st.sampled_from(sorted(knobs))
    for key in draw(st.lists(keys, min_size=1, max_size=3)):
        value = knobs[key]
        if key in numeric and draw(st.integers(0, 3)):
            factor = draw(st.floats(0, 4) | st.floats(0, 4) | st.sampled_from([0, 0.5, 2, 10, 1000, 1e9, -1]))
            scaled = value * factor
            # An integer knob stays an integer, rounded; a number stays a number.
            text = str(round(scaled)) if isinstance(value, int) else repr(float(scaled))
        else:
            text = draw(_values)
        changes.append((key, text))
    return scenario, changes


@given(case=_changes())
@FUZZ
def test_any_knob_value_runs_or_is_refused_in_one_line(case: tuple[Path, list[tuple[str, str]]]) -> None:
    scenario, changes = case
    before = hashlib.sha256(scenario.read_bytes()).hexdigest()
    sets = [item for key, value in changes for item in ("--set", f"{key}={value}")]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        argv = ["run", str(scenario), "--out", str(out), "--max-events", str(MAX_EVENTS), *sets]
        code, _, err = _cli(argv)
        _assert_clean(code, err)
        if code == 0:
            sc = load_scenario(scenario, [f"{key}={value}" for key, value in changes])
            ts = pq.read_table(out / "events.parquet").column("ts").to_numpy()
            assert len(ts) <= 2 * MAX_EVENTS
            if len(ts):
                assert sc.time.start_ms <= int(ts.min()) and int(ts.max()) < sc.time.end_ms
        else:
            assert not out.exists()
    assert hashlib.sha256(scenario.read_bytes()).hexdigest() == before


_cells = st.one_of(
    _text,
    _numbers.map(str),
    st.sampled_from(["", '"', '""', '"a', 'a"b', ",", "\n", "\r", " 7 ", "+5", "-0", "TRUE", "1e3"]),
)


@st.composite
def _mutations(draw: st.DrawFn) -> tuple[str, int, int, str, bool]:
    table = draw(st.sampled_from(sorted(p.name for p in STORY.glob("*.csv"))))
    with (STORY / table).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    row = draw(st.integers(0, len(rows) - 1))
    column = draw(st.integers(0, len(rows[row]) - 1))
    return table, row, column, draw(_cells), draw(st.booleans())


def _mutate(folder: Path, table: str, row: int, column: int, value: str, quoted: bool) -> None:
    """Put `value` in one cell: written as a CSV writer would, or raw as a careless tool would."""
    file = folder / table
    with file.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    rows[row][column] = value
    if quoted:
        with file.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerows(rows)
    else:
        file.write_text("".join(",".join(r) + "\n" for r in rows), encoding="utf-8", newline="")


@given(mutation=_mutations())
@FUZZ
def test_any_cell_of_a_run_folder_validates_and_replays_or_is_refused_in_one_line(
    mutation: tuple[str, int, int, str, bool],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "story"
        shutil.copytree(STORY, run)
        _mutate(run, *mutation)
        before = _digest(run)
        code, _, err = _cli(["validate", str(run)])
        _assert_clean(code, err)
        assert _digest(run) == before
        out = Path(tmp) / "out"
        replayed, _, err = _cli(["replay", str(run), "--out", str(out)])
        _assert_clean(replayed, err)
        assert _digest(run) == before
        # Both read the inputs alike: what validate accepts replays, what it refuses does not.
        assert replayed == code
        assert (out / "manifest.json").exists() == (code == 0)


_TINY_NUMBERS = sorted(
    key
    for key, value in KNOBS[TINY].items()
    if isinstance(value, int | float) and not isinstance(value, bool)
)


@pytest.mark.parametrize("key", _TINY_NUMBERS)
def test_every_number_knob_at_its_extremes_runs_or_is_refused_in_one_line(key: str) -> None:
    value = KNOBS[TINY][key]
    extremes = ["0", "-1", "1e308", "nan", "inf", "-inf", repr(value * 1000.0), repr(value * 1e9)]
    if isinstance(value, int):
        extremes += [str(value * 1000), str(value * 10**9), str(2**63 - 1)]
    for text in extremes:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            argv = [
                "run",
                str(TINY),
                "--out",
                str(out),
                "--max-events",
                str(MAX_EVENTS),
                "--set",
                f"{key}={text}",
            ]
            code, _, err = _cli(argv)
            _assert_clean(code, err)
            assert (out / "manifest.json").exists() == (code == 0)
