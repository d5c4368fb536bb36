"""Scenario files: defaults, overrides, the bundled scenarios, and every refusal in one line."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simkit.cli import main
from simkit.errors import ScenarioError
from simkit.scenario import (
    BehaviourSection,
    BlockedSection,
    CrossPodSection,
    MistakeMix,
    PolicyChange,
    PopulationSection,
    Scenario,
    TimeSection,
    load_scenario,
)

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "data" / "scenarios"
BUNDLED = sorted(p.name for p in SCENARIOS.glob("*.toml"))
TINY = SCENARIOS / "tiny.toml"


def _write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _knob_paths(cls: type, prefix: str = "") -> list[str]:
    """Every knob of a scenario section as a dotted path, e.g. ``behaviour.mistakes.self``."""
    paths: list[str] = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("knob") is False:
            continue
        # A knob named by a Python keyword (`from`) is a field with another name (`from_`).
        key = f.metadata.get("key") or f.name
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            paths += _knob_paths(type(default), f"{prefix}{key}.")
        else:
            paths.append(prefix + key)
    return paths


def test_bundled_scenarios_are_all_there() -> None:
    assert BUNDLED == ["baseline.toml", "crosspod-rollout.toml", "tiny.toml", "whole-network.toml"]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_scenario_loads_and_serialises(name: str) -> None:
    sc = load_scenario(SCENARIOS / name)
    assert sc.name == Path(name).stem
    assert sc.description
    plain = sc.to_dict()
    assert json.loads(json.dumps(plain)) == plain


def test_empty_file_is_the_defaults_named_after_the_file(tmp_path: Path) -> None:
    assert load_scenario(_write(tmp_path, "", "empty.toml")) == Scenario(name="empty")


def test_whole_network_is_the_size_the_issue_asks_for() -> None:
    sc = load_scenario(SCENARIOS / "whole-network.toml")
    assert sc.population.users == 1_000_000
    assert sc.population.pods == 1_000
    assert sc.time.days == 365


def test_crosspod_rollout_schedules_changes() -> None:
    sc = load_scenario(SCENARIOS / "crosspod-rollout.toml")
    assert [c.day for c in sc.crosspod.changes] == [30.0, 60.0, 90.0, 120.0]
    assert sum(c.pods for c in sc.crosspod.changes) == 80


@pytest.mark.parametrize(
    ("text", "overrides", "path", "expected"),
    [
        ("", ["behaviour.accept=0.5", "behaviour.ignore=0.4"], ("behaviour", "accept"), 0.5),
        ("", {"population.pods": "40"}, ("population", "pods"), 40),
        ("", ["crosspod.pairs=[[1, 2], [3, 1]]"], ("crosspod", "pairs"), ((1, 2), (3, 1))),
        ("", ["time.start=2024-03-01"], ("time", "start"), datetime(2024, 3, 1, tzinfo=UTC)),
        (
            "",
            ["time.start=2024-03-01T09:30:00+02:00"],
            ("time", "start"),
            datetime(2024, 3, 1, 7, 30, tzinfo=UTC),
        ),
        ("", ["name=what-if"], ("name",), "what-if"),
        (
            "",
            ["behaviour.mistakes.connect_self=0.1", "behaviour.mistakes.unknown_user=0.05"],
            ("behaviour", "mistakes", "connect_self"),
            0.1,
        ),
        ("[crosspod]\ndensity = 0.2\n", ["crosspod.pairs=[[1, 2]]"], ("crosspod", "pairs"), ((1, 2),)),
        ("[time]\ndays = 3\n", [], ("time", "days"), 3.0),
        ("seed = 12\n", [], ("seed",), 12),
    ],
)
def test_knobs_are_read_and_overridden(
    tmp_path: Path, text: str, overrides: object, path: tuple[str, ...], expected: object
) -> None:
    value: object = load_scenario(_write(tmp_path, text), overrides)  # type: ignore[arg-type]
    for part in path:
        value = getattr(value, part)
    assert value == expected


def test_an_integer_is_accepted_where_a_number_is_expected(tmp_path: Path) -> None:
    sc = load_scenario(_write(tmp_path, "[behaviour]\naccept = 1\nreject = 0\nignore = 0\n"))
    assert sc.behaviour.accept == 1.0
    assert isinstance(sc.behaviour.accept, float)


def test_overrides_as_mapping_or_sequence_agree() -> None:
    a = load_scenario(TINY, {"behaviour.rerequest_chance": "0.9", "time.days": "3"})
    b = load_scenario(TINY, ["behaviour.rerequest_chance=0.9", "time.days = 3"])
    assert a == b
    assert a.behaviour.rerequest_chance == 0.9
    assert load_scenario(TINY, "time.days=3").time.days == 3.0


# Each refusal: (file text, overrides, the key the message must name, a phrase it must hold).
BAD = [
    pytest.param("colour = 1\n", [], "colour", "a known key", id="unknown-top-level-key"),
    pytest.param(
        "[behaviour]\nacept = 0.5\n", [], "behaviour.acept", "did you mean 'accept'", id="unknown-key"
    ),
    pytest.param("[weather]\nsun = 1\n", [], "weather", "a known key", id="unknown-section"),
    pytest.param(
        "[behaviour]\naccept = 'most'\n",
        [],
        "behaviour.accept",
        "a number, found text 'most'",
        id="text-for-number",
    ),
    pytest.param("[population]\npods = 2.5\n", [], "population.pods", "an integer", id="float-for-integer"),
    pytest.param(
        "[population]\npods = true\n",
        [],
        "population.pods",
        "an integer, found boolean",
        id="bool-for-integer",
    ),
    pytest.param("behaviour = 3\n", [], "behaviour", "a table", id="value-for-section"),
    pytest.param("[time]\nstart = 'monday'\n", [], "time.start", "a TOML date", id="text-for-date"),
    pytest.param(
        "[crosspod]\npairs = [[1, 2, 3]]\n", [], "crosspod.pairs", "[pod, pod] pairs", id="bad-pair"
    ),
    pytest.param(
        "[behaviour]\nrequests_per_user_per_day = -0.1\n",
        [],
        "behaviour.requests_per_user_per_day",
        "between 0 and 10000, found -0.1",
        id="negative-rate",
    ),
    pytest.param(
        "[behaviour]\nremove_per_year = -1\n",
        [],
        "behaviour.remove_per_year",
        "not negative",
        id="negative-removal-rate",
    ),
    pytest.param("[time]\ndays = -1\n", [], "time.days", "between 0 and 36525", id="negative-duration"),
    pytest.param("[time]\ndays = 36526\n", [], "time.days", "between 0 and 36525", id="over-a-century"),
    pytest.param(
        "[behaviour]\nanswer_delay_sigma = 1e3\n",
        [],
        "behaviour.answer_delay_sigma",
        "between 0 and 10, found 1000",
        id="spread-overflows",
    ),
    pytest.param(
        "[population]\nexternal_share = 1.5\n",
        [],
        "population.external_share",
        "between 0 and 1",
        id="share-above-1",
    ),
    pytest.param(
        "[blocked]\npersist = 1.5\n", [], "blocked.persist", "between 0 and 1", id="persist-above-1"
    ),
    pytest.param(
        "[behaviour]\nmistake_share = 0.1\n",
        [],
        "behaviour.mistake_share",
        "behaviour.mistakes_per_user_per_day in its place",
        id="replaced-knob",
    ),
    pytest.param(
        "[behaviour]\naccept = 0.9\n",
        [],
        "behaviour.accept, behaviour.reject, behaviour.ignore",
        "sum to 1",
        id="answer-shares",
    ),
    pytest.param(
        "[behaviour.mistakes]\nconnect_self = 0.5\n",
        [],
        "behaviour.mistakes",
        "sum to 1, they sum to 1.45",
        id="mistake-shares",
    ),
    pytest.param(
        "[population]\npods = 10\nusers = 5\n",
        [],
        "population.users",
        "at least pods × min_pod_size",
        id="too-few-users",
    ),
    pytest.param(
        "[population]\npods = 20000\n", [], "population.pods", "between 1 and 10000", id="too-many-pods"
    ),
    pytest.param(
        "[crosspod]\npairs = [[1, 11]]\n", [], "crosspod.pairs", "between 1 and 10", id="pair-of-unknown-pod"
    ),
    pytest.param(
        "[crosspod]\npairs = [[3, 3]]\n", [], "crosspod.pairs", "two different pod ids", id="pair-with-itself"
    ),
    pytest.param(
        "[crosspod]\ndensity = 0.1\npairs = [[1, 2]]\n",
        [],
        "crosspod.pairs",
        "not both",
        id="density-and-pairs",
    ),
    pytest.param(
        "[[crosspod.changes]]\nday = -1\n",
        [],
        "crosspod.changes[0].day",
        "between 0 and 36525",
        id="change-before-start",
    ),
    pytest.param(
        "[[crosspod.changes]]\nday = 1\npods = 11\n",
        [],
        "crosspod.changes[0].pods",
        "at most",
        id="rollout-too-big",
    ),
    pytest.param(
        "[[crosspod.changes]]\nday = 1\nwhen = 2\n",
        [],
        "crosspod.changes[0].when",
        "a known key",
        id="unknown-change-key",
    ),
    pytest.param(
        "[[crosspod.changes]]\nday = 1\nenable_pairs = [[0, 1]]\n",
        [],
        "crosspod.changes[0].enable_pairs",
        "between 1",
        id="change-pair",
    ),
    pytest.param("[behaviour\n", [], "(file)", "valid TOML", id="not-toml"),
    pytest.param("", ["behaviour.accept"], "behaviour.accept", "KEY=VALUE", id="set-without-value"),
    pytest.param("", ["behaviour.acept=0.5"], "behaviour.acept", "did you mean", id="set-unknown-key"),
    pytest.param(
        "",
        ["behaviour.accept=0.5"],
        "behaviour.accept, behaviour.reject, behaviour.ignore",
        "they sum to 0.8",
        id="set-breaks-shares",
    ),
    pytest.param("", ["behaviour.accept.x=1"], "behaviour.accept", "a table", id="set-below-a-value"),
]


@pytest.mark.parametrize(("text", "overrides", "key", "phrase"), BAD)
def test_bad_scenario_is_refused_in_one_line_naming_the_key(
    tmp_path: Path, text: str, overrides: list[str], key: str, phrase: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert f": {key}: expected" in message
    assert phrase in message
    assert info.value.key == key


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.toml: \(file\): expected an existing scenario file"):
        load_scenario(tmp_path / "nope.toml")


def test_error_from_an_override_says_so(tmp_path: Path) -> None:
    with pytest.raises(
        ScenarioError, match=r"s\.toml \(--set\): behaviour\.accept: expected a number between 0 and 1"
    ):
        load_scenario(_write(tmp_path, ""), ["behaviour.accept=2"])


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("colour = 1\n", "colour"),
        ("[behaviour]\naccept = 'x'\n", "behaviour.accept"),
        ("[behaviour]\nrequests_per_user_per_day = -2\n", "behaviour.requests_per_user_per_day"),
        ("[behaviour]\naccept = 0.2\n", "behaviour.accept"),
    ],
    ids=["unknown-key", "wrong-type", "negative-rate", "shares-not-1"],
)
def test_cli_refuses_bad_scenario_with_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    path = _write(tmp_path, text)
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"simkit: error: {path}: {key}")
    assert "Traceback" not in captured.err
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_cli_refuses_a_bad_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", str(TINY), "--out", str(out), "--set", "behaviour.remove_per_year=-3"]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"simkit: error: {TINY} (--set): behaviour.remove_per_year: expected a number ≥ 0 (not negative), found -3\n"
    )
    assert not out.exists()


@pytest.mark.parametrize("seed", ["-1", "x"])
def test_cli_refuses_a_bad_seed_as_usage(tmp_path: Path, seed: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", str(TINY), "--out", str(tmp_path / "run"), "--seed", seed])
    assert info.value.code == 2


def test_every_knob_is_documented() -> None:
    doc = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    missing = [path for path in _knob_paths(Scenario) if f"`{path.rsplit('.', 1)[-1]}`" not in doc]
    assert not missing
    sections = set(re.findall(r"^#+ .*`\[\[?([a-z.]+)\]?\]`", doc, flags=re.MULTILINE))
    assert {
        "population",
        "crosspod",
        "crosspod.changes",
        "time",
        "behaviour",
        "behaviour.mistakes",
    } <= sections


def test_every_bundled_scenario_is_described_in_data_readme() -> None:
    readme = (ROOT / "data" / "README.md").read_text(encoding="utf-8")
    assert [name for name in BUNDLED if f"scenarios/{name}" not in readme] == []


_share = st.floats(min_value=0, max_value=1, allow_nan=False)


@given(accept=_share, reject=_share)
@settings(max_examples=60, deadline=None)
def test_answer_shares_are_accepted_exactly_when_they_sum_to_1(accept: float, reject: float) -> None:
    ignore = 1.0 - accept - reject
    overrides = {
        "behaviour.accept": repr(accept),
        "behaviour.reject": repr(reject),
        "behaviour.ignore": repr(ignore),
    }
    if ignore < 0:
        with pytest.raises(ScenarioError, match=r"behaviour\.ignore: expected a number between 0 and 1"):
            load_scenario(TINY, overrides)
    else:
        sc = load_scenario(TINY, overrides)
        assert (sc.behaviour.accept, sc.behaviour.reject) == (accept, reject)


@given(value=st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v < 0 or v > 1))
@settings(max_examples=40, deadline=None)
def test_any_share_outside_0_1_is_refused(value: float) -> None:
    with pytest.raises(ScenarioError, match=r"population\.private_share: expected a number between 0 and 1"):
        load_scenario(TINY, {"population.private_share": repr(value)})


# -- deriving scenarios in Python -----------------------------------------------------------


def _with_overrides_message(set_message: str) -> str:
    """What `with_overrides` on tiny must say where `--set` on tiny.toml says `set_message`."""
    return set_message.replace(f"{TINY} (--set)", "scenario 'tiny' (with_overrides)").replace(
        str(TINY), "scenario 'tiny'"
    )


@pytest.mark.parametrize(
    ("overrides", "sets"),
    [
        (
            {"behaviour.accept": 0.5, "behaviour.ignore": 0.35},
            ["behaviour.accept=0.5", "behaviour.ignore=0.35"],
        ),
        ({"population.pods": 20}, ["population.pods=20"]),
        ({"time.days": 3}, ["time.days=3"]),
        ({"crosspod.pairs": [(1, 2), (3, 1)]}, ["crosspod.pairs=[[1, 2], [3, 1]]"]),
        ({"time.start": date(2024, 3, 1)}, ["time.start=2024-03-01"]),
        (
            {"time.start": datetime(2024, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))},
            ["time.start=2024-03-01T09:30:00+02:00"],
        ),
        ({"name": "what-if", "seed": 3}, ["name=what-if", "seed=3"]),
        ({"crosspod.changes": [{"day": 1, "pods": 2}]}, ["crosspod.changes=[{day = 1, pods = 2}]"]),
        ({"crosspod.changes": (PolicyChange(day=1, pods=2),)}, ["crosspod.changes=[{day = 1, pods = 2}]"]),
        (
            {"behaviour.mistakes": MistakeMix(accept_missing=0.3, connect_again=0.3)},
            ["behaviour.mistakes.accept_missing=0.3", "behaviour.mistakes.connect_again=0.3"],
        ),
        (
            {"population.pods": np.int64(20), "time.days": np.float64(3)},
            ["population.pods=20", "time.days=3"],
        ),
        ({}, []),
    ],
    ids=[
        "shares",
        "integer",
        "integer-for-number",
        "pairs-as-tuples",
        "date",
        "date-time-with-offset",
        "top-level",
        "changes-as-dicts",
        "changes-as-records",
        "section-as-record",
        "numpy-scalars",
        "nothing",
    ],
)
def test_with_overrides_gives_what_set_gives(overrides: dict[str, object], sets: list[str]) -> None:
    tiny = load_scenario(TINY)
    derived = tiny.with_overrides(overrides)
    assert derived == load_scenario(TINY, sets)
    assert json.dumps(derived.to_dict()) == json.dumps(load_scenario(TINY, sets).to_dict())
    assert tiny == load_scenario(TINY)


def test_with_overrides_can_drop_pairs_for_density() -> None:
    paired = load_scenario(TINY, ["crosspod.pairs=[[1, 2]]"])
    assert paired.with_overrides({"crosspod.pairs": None}) == load_scenario(TINY)


# Each refusal: a key, the Python value and the `--set` text that mean the same.
BAD_OVERRIDES = [
    pytest.param("behaviour.acept", 0.5, "0.5", id="unknown-key"),
    pytest.param("colour", 1, "1", id="unknown-top-level-key"),
    pytest.param("weather.sun", 1, "1", id="unknown-section"),
    pytest.param("behaviour.accept", "most", "most", id="text-for-number"),
    pytest.param("population.pods", 2.5, "2.5", id="float-for-integer"),
    pytest.param("population.pods", True, "true", id="bool-for-integer"),
    pytest.param("time.start", "monday", "monday", id="text-for-date"),
    pytest.param("behaviour", 3, "3", id="value-for-section"),
    pytest.param("behaviour.accept.x", 1, "1", id="below-a-value"),
    pytest.param("crosspod.pairs", [[1, 2, 3]], "[[1, 2, 3]]", id="bad-pair"),
    pytest.param("crosspod.changes", 3, "3", id="value-for-changes"),
    pytest.param("population.private_share", math.inf, "inf", id="not-finite"),
    pytest.param("behaviour.accept", 2, "2", id="share-above-1"),
    pytest.param("time.days", -3, "-3", id="negative-duration"),
    pytest.param("blocked.attempt", 2, "2", id="attempt-above-1"),
    pytest.param("population.pods", 20_000, "20000", id="too-many-pods"),
    pytest.param("behaviour.accept", 0.5, "0.5", id="answer-shares"),
    pytest.param("behaviour.mistakes.connect_self", 0.5, "0.5", id="mistake-shares"),
    pytest.param("population.users", 20, "20", id="too-few-users"),
    pytest.param("crosspod.pairs", [(1, 13)], "[[1, 13]]", id="pair-of-unknown-pod"),
    pytest.param("crosspod.pairs", [(3, 3)], "[[3, 3]]", id="pair-with-itself"),
    pytest.param(
        "crosspod.changes", [{"day": 1, "pods": 13}], "[{day = 1, pods = 13}]", id="rollout-too-big"
    ),
]


@pytest.mark.parametrize(("key", "value", "text"), BAD_OVERRIDES)
def test_with_overrides_refuses_as_set_does(key: str, value: object, text: str) -> None:
    with pytest.raises(ScenarioError) as by_set:
        load_scenario(TINY, [f"{key}={text}"])
    with pytest.raises(ScenarioError) as by_python:
        load_scenario(TINY).with_overrides({key: value})
    assert str(by_python.value) == _with_overrides_message(str(by_set.value))
    assert (by_python.value.key, by_python.value.expected) == (by_set.value.key, by_set.value.expected)


def test_with_overrides_names_the_override_that_broke_the_shares() -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(TINY).with_overrides({"behaviour.ignore": 0.5})
    assert str(info.value) == (
        "scenario 'tiny' (with_overrides): behaviour.accept, behaviour.reject, behaviour.ignore: "
        "expected answer shares that sum to 1, they sum to 1.3"
    )


@given(value=st.floats())
@settings(max_examples=60, deadline=None)
def test_with_overrides_and_set_agree_on_any_share(value: float) -> None:
    tiny = load_scenario(TINY)
    try:
        by_set = load_scenario(TINY, {"population.private_share": repr(value)})
    except ScenarioError as error:
        with pytest.raises(ScenarioError) as info:
            tiny.with_overrides({"population.private_share": value})
        assert str(info.value) == _with_overrides_message(str(error))
    else:
        assert tiny.with_overrides({"population.private_share": value}) == by_set


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (Scenario, {"seed": -1}, "Scenario(...): seed: expected an integer ≥ 0 (not negative), found -1"),
        (Scenario, {"name": 3}, "Scenario(...): name: expected a string, found number 3"),
        (
            Scenario,
            {"population": "big"},
            "Scenario(...): population: expected a table of knobs, found text 'big'",
        ),
        (
            PopulationSection,
            {"pods": 0},
            "PopulationSection(...): pods: expected an integer between 1 and 10000, found 0",
        ),
        (
            BehaviourSection,
            {"accept": "most"},
            "BehaviourSection(...): accept: expected a number, found text 'most'",
        ),
        (
            MistakeMix,
            {"connect_self": -0.1},
            "MistakeMix(...): connect_self: expected a number between 0 and 1, found -0.1",
        ),
        (TimeSection, {"days": math.nan}, "TimeSection(...): days: expected a finite number, found nan"),
        (
            TimeSection,
            {"start": "monday"},
            "TimeSection(...): start: expected a TOML date or date-time in UTC",
        ),
        (
            PolicyChange,
            {"enable_pairs": [(1,)]},
            "PolicyChange(...): enable_pairs: expected an array of [pod, pod] pairs",
        ),
        (
            CrossPodSection,
            {"changes": [3]},
            "CrossPodSection(...): changes[0]: expected a table of knobs, found number 3",
        ),
        (
            Scenario,
            {"population": PopulationSection(pods=10, users=5)},
            "Scenario(...): population.users: expected at least pods × min_pod_size = 20 users, found 5",
        ),
        (
            Scenario,
            {"behaviour": BehaviourSection(accept=0.5)},
            "Scenario(...): behaviour.accept, behaviour.reject, behaviour.ignore: expected answer shares that sum to 1",
        ),
        (
            Scenario,
            {"behaviour": BehaviourSection(mistakes=MistakeMix(connect_self=0.5))},
            "Scenario(...): behaviour.mistakes: expected shares of the 6 kinds of mistake that sum to 1",
        ),
        (
            Scenario,
            {"crosspod": CrossPodSection(pairs=((1, 11),))},
            "Scenario(...): crosspod.pairs: expected pairs of two different pod ids between 1 and 10, found [1, 11]",
        ),
        (
            Scenario,
            {"crosspod": CrossPodSection(changes=(PolicyChange(pods=11),))},
            "Scenario(...): crosspod.changes[0].pods: expected at most population.pods = 10, found 11",
        ),
    ],
    ids=[
        "seed",
        "name",
        "value-for-section",
        "pods",
        "text-for-number",
        "mistake-kind",
        "not-finite",
        "text-for-date",
        "bad-pair",
        "value-for-change",
        "too-few-users",
        "answer-shares",
        "mistake-shares",
        "pair-of-unknown-pod",
        "rollout-too-big",
    ],
)
def test_building_a_bad_scenario_directly_is_refused(
    cls: type, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        cls(**kwargs)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda sc: dataclasses.replace(sc, seed=-1), "Scenario(...): seed: expected an integer ≥ 0"),
        (
            lambda sc: dataclasses.replace(sc.behaviour, accept=2),
            "BehaviourSection(...): accept: expected a number between 0 and 1, found 2",
        ),
        (
            lambda sc: dataclasses.replace(sc, behaviour=dataclasses.replace(sc.behaviour, accept=0.5)),
            "Scenario(...): behaviour.accept, behaviour.reject, behaviour.ignore: expected answer shares",
        ),
        (
            lambda sc: dataclasses.replace(sc, population=dataclasses.replace(sc.population, pods=200)),
            "Scenario(...): population.users: expected at least pods × min_pod_size = 600 users, found 300",
        ),
        (
            lambda sc: dataclasses.replace(sc, crosspod=dataclasses.replace(sc.crosspod, pairs=[[1, 13]])),
            "Scenario(...): crosspod.pairs: expected pairs of two different pod ids between 1 and 12",
        ),
    ],
    ids=["seed", "section-bound", "answer-shares", "too-few-users", "unknown-pod"],
)
def test_replacing_a_knob_with_a_bad_value_is_refused(
    change: Callable[[Scenario], object], message: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        change(load_scenario(TINY))
    assert str(info.value).startswith(message)


def test_a_scenario_built_in_python_is_the_one_its_file_gives(tmp_path: Path) -> None:
    built = Scenario(
        name="tiny-ish",
        population=PopulationSection(pods=4, users=40),
        crosspod=CrossPodSection(pairs=[[1, 2]], changes=[{"day": 1, "enable_pairs": [[2, 3]]}]),
        time=TimeSection(start=date(2024, 3, 4), days=14),
        behaviour=BehaviourSection(accept=1, reject=0, ignore=0),
    )
    text = """
        [population]
        pods = 4
        users = 40
        [crosspod]
        pairs = [[1, 2]]
        [[crosspod.changes]]
        day = 1
        enable_pairs = [[2, 3]]
        [time]
        start = 2024-03-04
        days = 14
        [behaviour]
        accept = 1
        reject = 0
        ignore = 0
    """
    loaded = load_scenario(_write(tmp_path, text, "tiny-ish.toml"))
    assert built == loaded
    assert json.dumps(built.to_dict()) == json.dumps(loaded.to_dict())
    assert built.crosspod.changes == (PolicyChange(day=1.0, enable_pairs=((2, 3),)),)
    assert isinstance(built.behaviour.accept, float)
    assert hash(built) == hash(dataclasses.replace(built))


@pytest.mark.parametrize("name", BUNDLED)
def test_from_dict_rebuilds_a_bundled_scenario(name: str) -> None:
    sc = load_scenario(SCENARIOS / name)
    assert Scenario.from_dict(sc.to_dict()) == sc
    # ...also from a manifest, where the scenario went through JSON.
    assert Scenario.from_dict(json.loads(json.dumps(sc.to_dict()))) == sc


def test_from_dict_rebuilds_pairs_and_changes() -> None:
    sc = load_scenario(
        SCENARIOS / "crosspod-rollout.toml",
        ["crosspod.pairs=[[1, 2], [2, 3]]", "time.start=2024-05-01T12:30:00+02:00"],
    )
    again = Scenario.from_dict(json.loads(json.dumps(sc.to_dict())))
    assert again == sc
    assert again.to_dict() == sc.to_dict()


@pytest.mark.parametrize(
    ("plain", "message"),
    [
        ({"seed": -1}, "Scenario.from_dict: seed: expected an integer ≥ 0 (not negative), found -1"),
        ({"time": {"start": "monday"}}, "Scenario.from_dict: time.start: expected a TOML date"),
        (
            {"behaviour": {"acept": 1}},
            "Scenario.from_dict: behaviour.acept: expected a known key (did you mean 'accept'?)",
        ),
        (
            {"population": {"users": 5}},
            "Scenario.from_dict: population.users: expected at least pods × min_pod_size",
        ),
    ],
    ids=["bound", "start", "unknown-key", "cross-field"],
)
def test_from_dict_refuses_bad_values(plain: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        Scenario.from_dict(plain)
    assert str(info.value).startswith(message)


_SECTIONS: dict[str, type] = {
    "Top level": Scenario,
    "`[population]`": PopulationSection,
    "`[crosspod]`": CrossPodSection,
    "`[[crosspod.changes]]`": PolicyChange,
    "`[time]`": TimeSection,
    "`[behaviour]`": BehaviourSection,
    "`[behaviour.mistakes]`": MistakeMix,
    "`[blocked]`": BlockedSection,
}


_SECTION_FIELDS = ("population", "crosspod", "time", "behaviour", "blocked")


def _number(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _range(f: dataclasses.Field[object]) -> str:
    lo, hi, below = f.metadata.get("lo"), f.metadata.get("hi"), f.metadata.get("below_hi", False)
    if lo is not None and hi is not None:
        return f"{_number(lo)} to {_number(hi)}" + (f" ({_number(hi)} excluded)" if below else "")
    return "—" if lo is None else f"≥ {_number(lo)}"


def _documented_ranges() -> dict[tuple[type, str], str]:
    """The range column of every knob table of docs/scenarios.md, by (section, knob)."""
    ranges: dict[tuple[type, str], str] = {}
    section: type | None = None
    for line in (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^#+ (.*)$", line)
        if heading:
            section = _SECTIONS.get(heading.group(1))
        row = re.match(r"^\| `([a-z_]+)` \|", line)
        if section is not None and row:
            ranges[section, row.group(1)] = line.split(" | ")[-2]
    return ranges


def test_every_knob_documents_the_range_the_loader_enforces() -> None:
    documented = _documented_ranges()
    expected = {
        (cls, f.metadata.get("key") or f.name): _range(f)
        for cls in _SECTIONS.values()
        for f in dataclasses.fields(cls)
        # The sections of the top level have tables of their own.
        if f.metadata.get("knob") is not False and not (cls is Scenario and f.name in _SECTION_FIELDS)
    }
    assert documented == expected


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("nosuch.key=1", "tiny.toml (--set): nosuch: expected a known key"),
        ("behaviour.nosuch.key=1", "tiny.toml (--set): behaviour.nosuch: expected a known key"),
        ("crosspod.changes=[{day = -1}]", "tiny.toml (--set): crosspod.changes[0].day: expected a number"),
        (
            "time.days=1e12",
            "tiny.toml (--set): time.days: expected a number between 0 and 36525, found 1e+12",
        ),
    ],
)
def test_a_refusal_inside_or_above_an_override_names_the_override(override: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(TINY, [override])
    assert message in str(info.value)


def test_a_refusal_of_the_file_beside_an_override_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[behaviour]\nacept = 0.5\n")
    with pytest.raises(ScenarioError, match=r"s\.toml: behaviour\.acept: expected a known key"):
        load_scenario(path, ["behaviour.accept=0.7"])
