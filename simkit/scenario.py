"""`scenario`: the knobs of a synthetic network, read from a TOML file into frozen records.

A scenario describes a network and its traffic in words a person can read and change: how
many pods and users, how crossPod is enabled and rolled out, when and for how long, and
how people behave (how often they ask, whom they ask, how they answer, which mistakes they
make). :func:`load_scenario` reads a file (with the standard library's ``tomllib``), applies
``KEY=VALUE`` overrides, and refuses anything it does not understand with a
:class:`~simkit.errors.ScenarioError` naming the key and what was expected. Every knob has a
default, so an empty file is a valid (small) scenario.

This module only describes; it draws no random numbers and builds no events (that is
:mod:`simkit.generate`). The meaning, unit and default of every knob is in
``docs/scenarios.md``; the ``unit`` and bounds below are what the loader enforces.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from simkit.errors import ScenarioError

__all__ = [
    "MAX_PODS",
    "MAX_USERS",
    "BehaviourSection",
    "CrossPodSection",
    "MistakeMix",
    "PolicyChange",
    "PopulationSection",
    "Scenario",
    "TimeSection",
    "load_scenario",
]

# crossPod is modelled over every pair of pods, so the number of pods bounds memory
# quadratically: 10,000 pods is 50 million pairs.
MAX_PODS = 10_000
# Users are numbered in 32 bits inside the generator; this leaves room for unknown ids.
MAX_USERS = 1_000_000_000
_SHARE_TOLERANCE = 1e-6


def _knob(default: Any, *, lo: float | None = None, hi: float | None = None, below_hi: bool = False) -> Any:
    """A dataclass field with bounds the loader checks (`hi` excluded when `below_hi`)."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "below_hi": below_hi})


@dataclass(frozen=True)
class PopulationSection:
    """``[population]``: pods, their heavy-tailed sizes, and who may talk across pods."""

    pods: int = _knob(10, lo=1, hi=MAX_PODS)
    users: int = _knob(1_000, lo=1, hi=MAX_USERS)
    pod_size_alpha: float = _knob(1.2, lo=0.1)
    min_pod_size: int = _knob(2, lo=1)
    private_share: float = _knob(0.9, lo=0.0, hi=1.0)
    external_share: float = _knob(0.9, lo=0.0, hi=1.0)


@dataclass(frozen=True)
class PolicyChange:
    """One ``[[crosspod.changes]]`` entry: crossPod pairs switched on or off on a given day."""

    day: float = _knob(0.0, lo=0.0)
    enable: float = _knob(0.0, lo=0.0, hi=1.0)
    disable: float = _knob(0.0, lo=0.0, hi=1.0)
    pods: int = _knob(0, lo=0)
    enable_pairs: tuple[tuple[int, int], ...] = ()
    disable_pairs: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class CrossPodSection:
    """``[crosspod]``: the pairs of pods enabled at the start, and scheduled changes."""

    density: float = _knob(0.3, lo=0.0, hi=1.0)
    pairs: tuple[tuple[int, int], ...] | None = None
    size_bias: float = _knob(0.5, lo=0.0)
    changes: tuple[PolicyChange, ...] = ()


@dataclass(frozen=True)
class TimeSection:
    """``[time]``: when the simulated traffic starts (UTC), how long it lasts, and its rhythm."""

    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    days: float = _knob(30.0, lo=0.0)
    office_hours_share: float = _knob(0.8, lo=0.0, hi=1.0)

    @property
    def start_ms(self) -> int:
        """The start as milliseconds since the epoch."""
        return _epoch_ms(self.start)

    @property
    def end_ms(self) -> int:
        """The end (excluded) as milliseconds since the epoch."""
        return self.start_ms + round(self.days * 86_400_000)


@dataclass(frozen=True)
class MistakeMix:
    """``[behaviour.mistakes]``: what share of mistaken calls is of each kind (sums to 1)."""

    accept_missing: float = _knob(0.25, lo=0.0, hi=1.0)
    connect_again: float = _knob(0.2, lo=0.0, hi=1.0)
    no_crosspod: float = _knob(0.2, lo=0.0, hi=1.0)
    reject_colleague: float = _knob(0.1, lo=0.0, hi=1.0)
    not_entitled: float = _knob(0.1, lo=0.0, hi=1.0)
    remove_pending: float = _knob(0.05, lo=0.0, hi=1.0)
    unknown_user: float = _knob(0.05, lo=0.0, hi=1.0)
    connect_self: float = _knob(0.05, lo=0.0, hi=1.0)

    def shares(self) -> dict[str, float]:
        """The kinds and their shares, in declaration order."""
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class BehaviourSection:
    """``[behaviour]``: how often people ask, whom, how they answer and what they get wrong."""

    requests_per_user_per_day: float = _knob(0.05, lo=0.0)
    crosspod_share: float = _knob(0.7, lo=0.0, hi=1.0)
    activity_skew: float = _knob(1.0, lo=0.0)
    popularity_skew: float = _knob(2.0, lo=0.0)
    pod_affinity: float = _knob(1.0, lo=0.0)
    accept: float = _knob(0.7, lo=0.0, hi=1.0)
    reject: float = _knob(0.1, lo=0.0, hi=1.0)
    ignore: float = _knob(0.2, lo=0.0, hi=1.0)
    answer_delay_hours: float = _knob(6.0, lo=0.0)
    answer_delay_sigma: float = _knob(1.5, lo=0.0)
    rerequest_chance: float = _knob(0.3, lo=0.0, hi=1.0)
    rerequest_delay_days: float = _knob(3.0, lo=0.0)
    rerequest_delay_sigma: float = _knob(1.0, lo=0.0)
    remove_per_year: float = _knob(0.1, lo=0.0)
    mistake_share: float = _knob(0.03, lo=0.0, hi=1.0, below_hi=True)
    mistakes: MistakeMix = field(default_factory=MistakeMix)


@dataclass(frozen=True)
class Scenario:
    """A synthetic network and its traffic: every knob, with defaults.

    Build one with :func:`load_scenario`, or directly (``Scenario()`` is the defaults) and
    change knobs with :func:`dataclasses.replace`. Values are checked by the loader, not
    by the constructor.

    Examples
    --------
    >>> sc = Scenario()
    >>> sc.population.pods, sc.behaviour.accept, sc.time.start.isoformat()
    (10, 0.7, '2024-01-01T00:00:00+00:00')
    >>> sc.to_dict()["time"]
    {'start': '2024-01-01T00:00:00Z', 'days': 30.0, 'office_hours_share': 0.8}
    """

    name: str = "scenario"
    description: str = ""
    seed: int = _knob(0, lo=0)
    population: PopulationSection = field(default_factory=PopulationSection)
    crosspod: CrossPodSection = field(default_factory=CrossPodSection)
    time: TimeSection = field(default_factory=TimeSection)
    behaviour: BehaviourSection = field(default_factory=BehaviourSection)

    def to_dict(self) -> dict[str, Any]:
        """The scenario as plain JSON-able values (the ``scenario`` key of a run's manifest)."""
        return _plain(self)  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def _epoch_ms(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * 86_400_000 + delta.seconds * 1_000 + delta.microseconds // 1_000


# -- loading ------------------------------------------------------------------------------


def load_scenario(
    path: str | os.PathLike[str],
    overrides: Mapping[str, str] | Sequence[str] = (),
) -> Scenario:
    """Read a scenario file and apply overrides.

    Parameters
    ----------
    path : str or PathLike
        A TOML file. Top-level keys ``name``, ``description``, ``seed``; tables
        ``[population]``, ``[crosspod]`` (with ``[[crosspod.changes]]``), ``[time]``,
        ``[behaviour]`` (with ``[behaviour.mistakes]``). Absent keys take their defaults;
        ``name`` defaults to the file's stem.
    overrides : mapping or sequence of str
        Knobs to change, as ``{"behaviour.accept": "0.5"}`` or ``["behaviour.accept=0.5"]``.
        Each value is read as a TOML value (``0.5``, ``true``, ``2024-03-01``,
        ``[[1, 2]]``); text that is not TOML is taken as a string.

    Raises
    ------
    ScenarioError
        The file is missing or not TOML, or a key is unknown, of the wrong type or out of
        range, or shares do not sum to 1; the message names the file and the key.

    Examples
    --------
    >>> sc = load_scenario("data/scenarios/tiny.toml", ["behaviour.remove_per_year=0"])
    >>> sc.name, sc.behaviour.remove_per_year
    ('tiny', 0.0)
    >>> load_scenario("data/scenarios/tiny.toml", ["behaviour.accept=-1"])
    Traceback (most recent call last):
    ...
    simkit.errors.ScenarioError: data/scenarios/tiny.toml (--set): behaviour.accept: expected a number between 0 and 1, found -1
    """
    file = str(path)
    try:
        with Path(path).open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ScenarioError(file, "(file)", "an existing scenario file (TOML)") from None
    except IsADirectoryError:
        raise ScenarioError(file, "(file)", "a scenario file (TOML), found a folder") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(file, "(file)", f"valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(file, "(file)", f"a readable TOML file ({exc})") from None
    raw.setdefault("name", Path(path).stem)
    # `pairs` replaces `density`; both in one file is a contradiction, but `--set pairs` may
    # override a file's density.
    file_crosspod = raw.get("crosspod", {})
    if isinstance(file_crosspod, dict) and "pairs" in file_crosspod and "density" in file_crosspod:
        raise ScenarioError(file, "crosspod.pairs", "either crosspod.density or crosspod.pairs, not both")
    if isinstance(overrides, str):
        overrides = [overrides]
    items = (
        list(overrides.items()) if isinstance(overrides, Mapping) else [_split(o, file) for o in overrides]
    )
    from_set: set[str] = set()
    for key, text in items:
        _assign(raw, key, _toml_value(text), f"{file} (--set)")
        from_set.add(key)

    def source(key: str) -> str:
        return f"{file} (--set)" if key in from_set else file

    scenario: Scenario = _build(Scenario, raw, "", source)
    _check(scenario, source)
    return scenario


def _split(item: str, file: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ScenarioError(f"{file} (--set)", item, "KEY=VALUE, e.g. behaviour.accept=0.5")
    return key.strip(), value.strip()


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        # Bare words such as a scenario name need no quotes on a command line.
        return text


def _assign(raw: dict[str, Any], key: str, value: Any, where: str) -> None:
    parts = key.split(".")
    table = raw
    for i, part in enumerate(parts[:-1]):
        nxt = table.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ScenarioError(where, ".".join(parts[: i + 1]), "a table of knobs, found a value")
        table = nxt
    table[parts[-1]] = value


_KIND_TEXT = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"text {value!r}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    return f"{type(value).__name__} {value}"


def _build(cls: type, raw: Any, prefix: str, source: Any) -> Any:
    """Build dataclass `cls` from TOML table `raw`, checking keys, types and bounds."""
    where = prefix.rstrip(".") or "(top level)"
    if not isinstance(raw, dict):
        raise ScenarioError(source(where), where, f"a table of knobs, found {_type_name(raw)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"one of {', '.join(fields)}"
            raise ScenarioError(source(prefix + key), prefix + key, f"a known key ({hint})")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        key = prefix + name
        values[name] = _convert(hints[name], raw[name], key, source)
        _check_bounds(f, values[name], key, source)
    return cls(**values)


def _convert(hint: Any, value: Any, key: str, source: Any) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        # `X | None`: None means "absent", which TOML cannot write, so only X is accepted.
        (inner,) = [a for a in get_args(hint) if a is not type(None)]
        return _convert(inner, value, key, source)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".", source)  # type: ignore[arg-type]
    if origin is tuple:
        item = get_args(hint)[0]
        if item == tuple[int, int]:
            return _pairs(value, key, source)
        if not isinstance(value, list):
            raise ScenarioError(source(key), key, f"an array of tables, found {_type_name(value)}")
        return tuple(_build(item, v, f"{key}[{i}].", source) for i, v in enumerate(value))
    if hint is datetime:
        return _moment(value, key, source)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if not math.isfinite(number):
            raise ScenarioError(source(key), key, f"a finite number, found {value}")
        return number
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if (hint is bool and isinstance(value, bool)) or (hint is str and isinstance(value, str)):
        return value
    raise ScenarioError(source(key), key, f"{_KIND_TEXT[hint]}, found {_type_name(value)}")


def _pairs(value: Any, key: str, source: Any) -> tuple[tuple[int, int], ...]:
    expected = "an array of [pod, pod] pairs of integer pod ids, e.g. [[1, 2], [1, 3]]"
    if not isinstance(value, list):
        raise ScenarioError(source(key), key, f"{expected}, found {_type_name(value)}")
    pairs: list[tuple[int, int]] = []
    for item in value:
        ok = isinstance(item, list) and len(item) == 2
        if not ok or any(isinstance(v, bool) or not isinstance(v, int) for v in item):
            raise ScenarioError(source(key), key, f"{expected}, found {item!r}")
        pairs.append((int(item[0]), int(item[1])))
    return tuple(pairs)


def _moment(value: Any, key: str, source: Any) -> datetime:
    if isinstance(value, datetime):
        # A TOML local date-time has no offset; scenarios are in UTC.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    expected = "a TOML date or date-time in UTC, e.g. 2024-01-01 or 2024-01-01T09:00:00Z"
    raise ScenarioError(source(key), key, f"{expected}, found {_type_name(value)}")


def _check_bounds(f: dataclasses.Field[Any], value: Any, key: str, source: Any) -> None:
    lo, hi, below_hi = f.metadata.get("lo"), f.metadata.get("hi"), f.metadata.get("below_hi", False)
    if lo is None and hi is None:
        return
    kind = "an integer" if isinstance(value, int) else "a number"
    if lo is not None and hi is not None:
        upper = f"{hi:g} (excluded)" if below_hi else f"{hi:g}"
        text = f"{kind} between {lo:g} and {upper}"
    elif lo == 0:
        text = f"{kind} ≥ 0 (not negative)"
    else:
        text = f"{kind} ≥ {lo:g}"
    too_high = hi is not None and (value >= hi if below_hi else value > hi)
    if (lo is not None and value < lo) or too_high:
        raise ScenarioError(source(key), key, f"{text}, found {value:g}")


def _check(sc: Scenario, source: Any) -> None:
    """Rules that tie several knobs together."""
    pop, cp, beh = sc.population, sc.crosspod, sc.behaviour
    if pop.users < pop.pods * pop.min_pod_size:
        raise ScenarioError(
            source("population.users"),
            "population.users",
            f"at least pods × min_pod_size = {pop.pods * pop.min_pod_size:,} users, found {pop.users:,}",
        )
    total = beh.accept + beh.reject + beh.ignore
    if abs(total - 1.0) > _SHARE_TOLERANCE:
        keys = "behaviour.accept, behaviour.reject, behaviour.ignore"
        worst = next(
            (
                k
                for k in ("behaviour.accept", "behaviour.reject", "behaviour.ignore")
                if "(--set)" in source(k)
            ),
            "behaviour.accept",
        )
        raise ScenarioError(source(worst), keys, f"answer shares that sum to 1, they sum to {total:g}")
    mix = beh.mistakes.shares()
    if abs(sum(mix.values()) - 1.0) > _SHARE_TOLERANCE:
        raise ScenarioError(
            source("behaviour.mistakes"),
            "behaviour.mistakes",
            f"shares of the {len(mix)} kinds of mistake that sum to 1, they sum to {sum(mix.values()):g}",
        )
    if cp.pairs is not None:
        _check_pairs(cp.pairs, pop.pods, "crosspod.pairs", source)
    for i, change in enumerate(cp.changes):
        key = f"crosspod.changes[{i}]"
        if change.pods > pop.pods:
            raise ScenarioError(
                source(key), f"{key}.pods", f"at most population.pods = {pop.pods}, found {change.pods}"
            )
        _check_pairs(change.enable_pairs, pop.pods, f"{key}.enable_pairs", source)
        _check_pairs(change.disable_pairs, pop.pods, f"{key}.disable_pairs", source)


def _check_pairs(pairs: tuple[tuple[int, int], ...], pods: int, key: str, source: Any) -> None:
    for a, b in pairs:
        if not (1 <= a <= pods and 1 <= b <= pods) or a == b:
            raise ScenarioError(
                source(key), key, f"pairs of two different pod ids between 1 and {pods}, found [{a}, {b}]"
            )
