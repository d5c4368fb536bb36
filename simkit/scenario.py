"""`scenario`: the knobs of a synthetic network, read from a TOML file into frozen records.

A scenario describes a network and its traffic in words a person can read and change: how
many pods and users, how crossPod is enabled and rolled out, when and for how long, and
how people behave (how often they ask, whom they ask, how they answer, which mistakes they
make). :func:`load_scenario` reads a file (with the standard library's ``tomllib``), applies
``KEY=VALUE`` overrides, and refuses anything it does not understand with a
:class:`~simkit.errors.ScenarioError` naming the key and what was expected. Every knob has a
default, so an empty file is a valid (small) scenario.

The records check themselves with the loader's own checks, so there is no unchecked way to
make one: building a :class:`Scenario` or a section directly, or with
:func:`dataclasses.replace`, refuses what the file would. A section checks its own knobs;
the rules that tie knobs together (shares that sum to 1, pairs naming known pods...) are
checked by :class:`Scenario`. :meth:`Scenario.with_overrides` derives a scenario in Python
through the same path as ``--set``, and :meth:`Scenario.from_dict` rebuilds one from
:meth:`Scenario.to_dict` (a run's manifest).

A scenario may take its population from a folder of tables (``population.from``); then
the knobs that describe a generated population are refused, and the checks that need the
pods (pairs naming pods, roll-out sizes) wait until they are known:
:meth:`Scenario.with_pod_ids` resolves the pods named in pair knobs, by id or by name, against
a population. Where a relative ``population.from`` points is
:meth:`Scenario.population_folder`; this module never reads it.

This module only describes; it draws no random numbers, builds no events (that is
:mod:`simkit.generate`) and reads no table. The meaning, unit and default of every knob is in
``docs/scenarios.md``; the ``unit`` and bounds below are what the loader enforces.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import math
import numbers
import os
import tomllib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, TypeAlias, Union, get_args, get_origin, get_type_hints

from simkit.errors import ScenarioError

__all__ = [
    "DEFAULT_MAX_EVENTS",
    "MAX_DAYS",
    "MAX_PODS",
    "MAX_USERS",
    "BehaviourSection",
    "BlockedSection",
    "CrossPodSection",
    "MistakeMix",
    "PodRef",
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
# A century: times stay far inside int64 milliseconds, and a wait longer than any run (the
# bound of the delay knobs) can only mean "after the end".
MAX_DAYS = 36_525
# The log-normal spreads (σ) are bounded so that exp(σ·Z) stays a finite float for every
# draw; at σ = 10 the 90th percentile is already 10^5.6 times the median.
_MAX_SIGMA = 10.0
# Pairs weigh (size_a × size_b)^size_bias: with sizes up to 10^9 the power stays finite.
_MAX_SIZE_BIAS = 10.0
# With users and days at most their bounds, the mean count of requests stays far below what
# a Poisson draw can take (about 9·10^18).
_MAX_REQUEST_RATE = 10_000.0
DEFAULT_MAX_EVENTS = 150_000_000
"""The most events a run accepts unless told otherwise (``simkit run --max-events``, the
``max_events`` of :func:`simkit.pipeline.simulate`), checked against the upper bound
:func:`simkit.generate.estimate` gives before anything is drawn: the bundled
``whole-network`` scenario is bounded by about 1.1·10^8 (it makes about 7·10^7 events and
needs about 6 GB of memory)."""
_SHARE_TOLERANCE = 1e-6
# Pod names in the "did you mean" of an ambiguous name: enough to find them, not a list.
_SHOWN_IDS = 5

PodRef: TypeAlias = int | str
"""A pod as a pair knob names it: its ``pod_id``, or its name (unique in the population)."""

# The knobs that describe a generated population, per section: refused with `population.from`,
# whose folder has its own pods, users and starting crossPod pairs.
_GENERATED: dict[str, tuple[str, ...]] = {
    "population": ("pods", "users", "pod_size_alpha", "min_pod_size", "private_share", "external_share"),
    "crosspod": ("density", "pairs"),
}
_GENERATED_WHY = {
    "population": "a population read from a folder has its own pods and users",
    "crosspod": "a population read from a folder has its own crosspod table",
}


def _knob(
    default: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    below_hi: bool = False,
    key: str | None = None,
) -> Any:
    """A dataclass field with bounds the loader checks (`hi` excluded when `below_hi`).

    `key` is the knob's name in a file where it differs from the field's (a Python keyword).
    """
    return field(default=default, metadata={"lo": lo, "hi": hi, "below_hi": below_hi, "key": key})


def _key(f: dataclasses.Field[Any]) -> str:
    """The knob's name in a file, ``--set`` and :meth:`Scenario.to_dict`."""
    return f.metadata.get("key") or f.name


def _is_knob(f: dataclasses.Field[Any]) -> bool:
    """Whether a field is a knob (not where the scenario was read from)."""
    return f.metadata.get("knob", True) is not False


@dataclass(frozen=True)
class PopulationSection:
    """``[population]``: pods, their heavy-tailed sizes, and who may talk across pods."""

    pods: int = _knob(10, lo=1, hi=MAX_PODS)
    users: int = _knob(1_000, lo=1, hi=MAX_USERS)
    pod_size_alpha: float = _knob(1.2, lo=0.1)
    min_pod_size: int = _knob(2, lo=1)
    private_share: float = _knob(0.9, lo=0.0, hi=1.0)
    external_share: float = _knob(0.9, lo=0.0, hi=1.0)
    seed: int | None = _knob(None, lo=0)
    from_: str | None = _knob(None, key="from")

    def __post_init__(self) -> None:
        _check_knobs(self)


@dataclass(frozen=True)
class PolicyChange:
    """One ``[[crosspod.changes]]`` entry: crossPod pairs switched on or off on a given day."""

    day: float = _knob(0.0, lo=0.0, hi=MAX_DAYS)
    enable: float = _knob(0.0, lo=0.0, hi=1.0)
    disable: float = _knob(0.0, lo=0.0, hi=1.0)
    pods: int = _knob(0, lo=0)
    enable_pairs: tuple[tuple[PodRef, PodRef], ...] = ()
    disable_pairs: tuple[tuple[PodRef, PodRef], ...] = ()

    def __post_init__(self) -> None:
        _check_knobs(self)


@dataclass(frozen=True)
class CrossPodSection:
    """``[crosspod]``: the pairs of pods enabled at the start, and scheduled changes."""

    density: float = _knob(0.3, lo=0.0, hi=1.0)
    pairs: tuple[tuple[PodRef, PodRef], ...] | None = None
    size_bias: float = _knob(0.5, lo=0.0, hi=_MAX_SIZE_BIAS)
    changes: tuple[PolicyChange, ...] = ()

    def __post_init__(self) -> None:
        _check_knobs(self)


@dataclass(frozen=True)
class TimeSection:
    """``[time]``: when the simulated traffic starts (UTC), how long it lasts, and its rhythm."""

    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    days: float = _knob(30.0, lo=0.0, hi=MAX_DAYS)
    office_hours_share: float = _knob(0.8, lo=0.0, hi=1.0)

    def __post_init__(self) -> None:
        _check_knobs(self)

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

    accept_missing: float = _knob(0.35, lo=0.0, hi=1.0)
    connect_again: float = _knob(0.25, lo=0.0, hi=1.0)
    reject_colleague: float = _knob(0.15, lo=0.0, hi=1.0)
    remove_pending: float = _knob(0.1, lo=0.0, hi=1.0)
    unknown_user: float = _knob(0.1, lo=0.0, hi=1.0)
    connect_self: float = _knob(0.05, lo=0.0, hi=1.0)

    def __post_init__(self) -> None:
        _check_knobs(self)

    def shares(self) -> dict[str, float]:
        """The kinds and their shares, in declaration order."""
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class BehaviourSection:
    """``[behaviour]``: how often people want to connect, with whom, how they answer, what they get wrong."""

    requests_per_user_per_day: float = _knob(0.05, lo=0.0, hi=_MAX_REQUEST_RATE)
    crosspod_share: float = _knob(0.7, lo=0.0, hi=1.0)
    activity_skew: float = _knob(1.0, lo=0.0, hi=_MAX_SIGMA)
    popularity_skew: float = _knob(2.0, lo=0.0)
    pod_affinity: float = _knob(1.0, lo=0.0, hi=_MAX_SIGMA)
    accept: float = _knob(0.7, lo=0.0, hi=1.0)
    reject: float = _knob(0.1, lo=0.0, hi=1.0)
    ignore: float = _knob(0.2, lo=0.0, hi=1.0)
    answer_delay_hours: float = _knob(6.0, lo=0.0, hi=24 * MAX_DAYS)
    answer_delay_sigma: float = _knob(1.5, lo=0.0, hi=_MAX_SIGMA)
    rerequest_chance: float = _knob(0.3, lo=0.0, hi=1.0)
    rerequest_delay_days: float = _knob(3.0, lo=0.0, hi=MAX_DAYS)
    rerequest_delay_sigma: float = _knob(1.0, lo=0.0, hi=_MAX_SIGMA)
    remove_per_year: float = _knob(0.1, lo=0.0)
    mistakes_per_user_per_day: float = _knob(0.002, lo=0.0, hi=_MAX_REQUEST_RATE)
    mistakes: MistakeMix = field(default_factory=MistakeMix)

    def __post_init__(self) -> None:
        _check_knobs(self)


@dataclass(frozen=True)
class BlockedSection:
    """``[blocked]``: what people do with a wish the network does not allow at its time."""

    attempt: float = _knob(0.3, lo=0.0, hi=1.0)
    persist: float = _knob(0.25, lo=0.0, hi=1.0)
    retry_delay_days: float = _knob(7.0, lo=0.0, hi=MAX_DAYS)
    retry_delay_sigma: float = _knob(1.0, lo=0.0, hi=_MAX_SIGMA)

    def __post_init__(self) -> None:
        _check_knobs(self)


@dataclass(frozen=True)
class Scenario:
    """A synthetic network and its traffic: every knob, with defaults.

    Build one with :func:`load_scenario`, or directly (``Scenario()`` is the defaults), and
    derive others with :meth:`with_overrides` or :func:`dataclasses.replace`. However it is
    built, a scenario is checked as a file is: an int given for a number becomes a float, a
    list becomes a tuple, and a bad value raises :class:`~simkit.errors.ScenarioError`
    naming ``Scenario(...)`` (or the section built) and the key.

    Examples
    --------
    >>> sc = Scenario()
    >>> sc.population.pods, sc.behaviour.accept, sc.time.start.isoformat()
    (10, 0.7, '2024-01-01T00:00:00+00:00')
    >>> sc.to_dict()["time"]
    {'start': '2024-01-01T00:00:00Z', 'days': 30.0, 'office_hours_share': 0.8}
    >>> dataclasses.replace(sc, seed=-1)
    Traceback (most recent call last):
    ...
    simkit.errors.ScenarioError: Scenario(...): seed: expected an integer ≥ 0 (not negative), found -1
    """

    name: str = "scenario"
    description: str = ""
    seed: int = _knob(0, lo=0)
    population: PopulationSection = field(default_factory=PopulationSection)
    crosspod: CrossPodSection = field(default_factory=CrossPodSection)
    time: TimeSection = field(default_factory=TimeSection)
    behaviour: BehaviourSection = field(default_factory=BehaviourSection)
    blocked: BlockedSection = field(default_factory=BlockedSection)
    # Not a knob: the file the scenario was read from, which a relative `population.from`
    # is relative to and later refusals name. Two scenarios of equal knobs are equal.
    source: str | None = field(default=None, compare=False, repr=False, metadata={"knob": False})

    def __post_init__(self) -> None:
        origin = _Origin("Scenario(...)")
        _check_knobs(self, origin)
        if self.source is not None:
            object.__setattr__(self, "source", os.fspath(self.source))
        _check(self.population, self.crosspod, self.behaviour, origin)

    @property
    def population_seed(self) -> int:
        """The seed of the population and of the crossPod plan: ``population.seed``, else ``seed``.

        Examples
        --------
        >>> Scenario(seed=7).population_seed, Scenario(seed=7, population={"seed": 3}).population_seed
        (7, 3)
        """
        return self.seed if self.population.seed is None else self.population.seed

    def population_folder(self) -> Path | None:
        """Where ``population.from`` points: relative to the scenario's file (:attr:`source`),
        or to the working folder for a scenario built in Python; ``None`` for a generated
        population. Nothing is read or checked here.

        Examples
        --------
        >>> load_scenario("data/samples/bank-opens-crosspod.toml").population_folder().as_posix()
        'data/samples/directory'
        >>> Scenario(population={"from": "pop"}).population_folder().as_posix()
        'pop'
        >>> Scenario().population_folder() is None
        True
        """
        if self.population.from_ is None:
            return None
        folder = Path(self.population.from_)
        if folder.is_absolute() or self.source is None:
            return folder
        return Path(self.source).parent / folder

    def error(self, key: str, expected: str) -> ScenarioError:
        """A refusal of knob `key`, naming the file the scenario was read from (or the scenario).

        For the checks that can only run once the population is known.

        Examples
        --------
        >>> str(Scenario(name="what-if").error("population.from", "a folder"))
        "scenario 'what-if': population.from: expected a folder"
        """
        return ScenarioError(self.source or f"scenario {self.name!r}", key, expected)

    def with_pod_ids(self, pod_ids: Sequence[int], pod_names: Sequence[str]) -> Scenario:
        """This scenario with every pod of its pair knobs given by id, checked against the pods.

        Pair knobs (``crosspod.pairs``, ``enable_pairs``, ``disable_pairs``) name a pod by its
        id or by its name. Once the population is known, each name must be the name of
        exactly one pod, each id that of a pod, the two pods of a pair different, and a
        roll-out no larger than the population.

        Parameters
        ----------
        pod_ids, pod_names : sequence
            The population's pods: their ids and names, in the same order.

        Returns
        -------
        Scenario
            Equal to this one but for names replaced by ids (and :attr:`source` kept).

        Raises
        ------
        ScenarioError
            Naming the knob and the pod: an unknown name (with the closest name, if one is
            close), a name several pods have, an unknown id, a pair of one pod.

        Examples
        --------
        >>> sc = Scenario(crosspod={"changes": [{"day": 1, "enable_pairs": [["bank-1", 2]]}]})
        >>> sc.with_pod_ids([1, 2], ["bank-1", "firm-2"]).crosspod.changes[0].enable_pairs
        ((1, 2),)
        >>> sc.with_pod_ids([1, 2], ["bank-01", "firm-02"])
        Traceback (most recent call last):
        ...
        simkit.errors.ScenarioError: scenario 'scenario': crosspod.changes[0].enable_pairs: expected the name of a pod, found 'bank-1' (did you mean 'bank-01'?)
        """
        pods = _Pods(pod_ids, pod_names, self)
        cp = self.crosspod
        pairs = None if cp.pairs is None else pods.resolve(cp.pairs, "crosspod.pairs")
        changes = []
        for i, change in enumerate(cp.changes):
            key = f"crosspod.changes[{i}]"
            if change.pods > len(pods.ids):
                raise self.error(
                    f"{key}.pods", f"at most the population's {len(pods.ids):,} pods, found {change.pods:,}"
                )
            changes.append(
                dataclasses.replace(
                    change,
                    enable_pairs=pods.resolve(change.enable_pairs, f"{key}.enable_pairs"),
                    disable_pairs=pods.resolve(change.disable_pairs, f"{key}.disable_pairs"),
                )
            )
        crosspod = dataclasses.replace(cp, pairs=pairs, changes=tuple(changes))
        return dataclasses.replace(self, crosspod=crosspod)

    def to_dict(self) -> dict[str, Any]:
        """The scenario as plain JSON-able values (the ``scenario`` key of a run's manifest).

        Every knob is there, defaults included, except the knobs of a generated population
        when the population is read from a folder (``population.from``).
        """
        return _scenario_tables(self, _plain)

    @classmethod
    def from_dict(cls, plain: Mapping[str, Any]) -> Scenario:
        """Rebuild a scenario from :meth:`to_dict`'s values, checked as a file is.

        Parameters
        ----------
        plain : mapping
            The values of :meth:`to_dict`, e.g. the ``scenario`` of a run's manifest read
            back from JSON: ``time.start`` may be ISO 8601 text, ``crosspod.pairs`` may be
            None. Absent knobs take their defaults.

        Returns
        -------
        Scenario
            Equal to the scenario that was written: ``Scenario.from_dict(sc.to_dict()) == sc``.

        Raises
        ------
        ScenarioError
            As :func:`load_scenario` would for the same values, naming ``Scenario.from_dict``.

        Examples
        --------
        >>> sc = load_scenario("data/scenarios/tiny.toml")
        >>> Scenario.from_dict(sc.to_dict()) == sc
        True
        >>> Scenario.from_dict({"population": {"pods": 0}})
        Traceback (most recent call last):
        ...
        simkit.errors.ScenarioError: Scenario.from_dict: population.pods: expected an integer between 1 and 10000, found 0
        """
        raw = dict(plain)
        moment = raw.get("time")
        if isinstance(moment, dict) and isinstance(moment.get("start"), str):
            # JSON has no dates, so to_dict writes the start as text; text that is not a
            # date is left for the usual refusal.
            with contextlib.suppress(ValueError):
                raw["time"] = {**moment, "start": datetime.fromisoformat(moment["start"])}
        return _from_raw(raw, _Origin("Scenario.from_dict"))

    def with_overrides(self, overrides: Mapping[str, Any]) -> Scenario:
        """A copy of this scenario with some knobs changed, checked as ``--set`` is.

        Parameters
        ----------
        overrides : mapping
            Knobs to change, keyed by their dotted path as for ``--set``
            (``"behaviour.accept"``, ``"behaviour.mistakes.connect_self"``), with Python
            values: numbers, text, a :class:`~datetime.datetime` or :class:`~datetime.date`
            for ``time.start``, pairs as ``[(1, 2), ("bank-001", 3)]`` (pod ids or names;
            None: back to ``crosspod.density``), and sections or ``crosspod.changes`` as
            records or dicts. The result keeps this scenario's :attr:`source`.
            They are applied together, so shares that must sum to 1 can change at once.

        Returns
        -------
        Scenario
            A new scenario; this one is unchanged.

        Raises
        ------
        ScenarioError
            For what ``--set`` refuses, with the same message, except that it names
            ``scenario '<name>' (with_overrides)`` where ``--set`` names ``<file> (--set)``
            (and ``scenario '<name>'`` where it names the file).

        Examples
        --------
        >>> tiny = load_scenario("data/scenarios/tiny.toml")
        >>> careful = tiny.with_overrides({"behaviour.mistakes_per_user_per_day": 0, "population.pods": 20})
        >>> careful.behaviour.mistakes_per_user_per_day, careful.population.pods, tiny.population.pods
        (0.0, 20, 12)
        >>> tiny.with_overrides({"behaviour.acept": 0.5})
        Traceback (most recent call last):
        ...
        simkit.errors.ScenarioError: scenario 'tiny' (with_overrides): behaviour.acept: expected a known key (did you mean 'accept'?)
        """
        raw = _scenario_tables(self, _raw)
        derived = _override(raw, list(overrides.items()), f"scenario {self.name!r}", "with_overrides")
        return dataclasses.replace(derived, source=self.source)


class _Pods:
    """A population's pods, for resolving the pods that pair knobs name."""

    def __init__(self, pod_ids: Sequence[int], pod_names: Sequence[str], scenario: Scenario) -> None:
        self.ids = [int(i) for i in pod_ids]
        self.known = set(self.ids)
        self.by_name: dict[str, list[int]] = {}
        for pod_id, name in zip(self.ids, pod_names):
            self.by_name.setdefault(name, []).append(pod_id)
        self.scenario = scenario

    def resolve(
        self, pairs: tuple[tuple[PodRef, PodRef], ...], key: str
    ) -> tuple[tuple[PodRef, PodRef], ...]:
        resolved: list[tuple[PodRef, PodRef]] = []
        for a, b in pairs:
            ids = (self._id(a, key), self._id(b, key))
            if ids[0] == ids[1]:
                raise self.scenario.error(
                    key, f"pairs of two different pods, found [{a!r}, {b!r}] (both pod {ids[0]})"
                )
            resolved.append(ids)
        return tuple(resolved)

    def _id(self, pod: PodRef, key: str) -> int:
        if isinstance(pod, int):
            if pod not in self.known:
                raise self.scenario.error(
                    key, f"the id of a pod of the population, found {pod} (no pod has it)"
                )
            return pod
        found = self.by_name.get(pod, [])
        if len(found) > 1:
            shown = ", ".join(map(str, found[:_SHOWN_IDS])) + (", ..." if len(found) > _SHOWN_IDS else "")
            raise self.scenario.error(
                key,
                f"the name of one pod, found {pod!r}, the name of {len(found)} pods (ids {shown}); name it by id",
            )
        if not found:
            close = difflib.get_close_matches(pod, list(self.by_name), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "no pod has it"
            raise self.scenario.error(key, f"the name of a pod, found {pod!r} ({hint})")
        return found[0]


def _scenario_tables(sc: Scenario, tables: Any) -> dict[str, Any]:
    """`tables(sc)` (the scenario as nested tables), without the knobs a read population makes moot."""
    out: dict[str, Any] = tables(sc)
    if sc.population.from_ is not None:
        for section, keys in _GENERATED.items():
            for key in keys:
                del out[section][key]
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_key(f): _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if _is_knob(f)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def _raw(value: Any) -> Any:
    """A record as nested tables of its values, for overrides to change before it is rebuilt."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_key(f): _raw(getattr(value, f.name)) for f in dataclasses.fields(value) if _is_knob(f)}
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
        ``[[1, 2]]``); text that is not TOML is taken as a string. The values are then
        applied and checked as :meth:`Scenario.with_overrides` does.

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
    scenario = _override(raw, [(key, _toml_value(text)) for key, text in items], file, "--set")
    return dataclasses.replace(scenario, source=file)


@dataclass(frozen=True)
class _Origin:
    """Where values come from, as a refusal names it: a file or a call, tagged for overrides.

    ``_Origin("s.toml", "--set", frozenset({"time.days"}))("time.days")`` is
    ``"s.toml (--set)"``, and so is a key inside or above it (``"time"``); any other key is
    just ``"s.toml"``.
    """

    name: str
    tag: str = ""
    overridden: frozenset[str] = frozenset()

    def __call__(self, key: str) -> str:
        return f"{self.name} ({self.tag})" if self._overrides(key) else self.name

    def _overrides(self, key: str) -> bool:
        """Whether `key` was set by an override, lies inside a value one set, or holds one.

        ``--set nosuch.key=1`` creates the table ``nosuch``, so its refusal is the
        override's; so is a refusal inside ``crosspod.changes[0]`` when the override set
        ``crosspod.changes``.
        """
        return any(
            key == given
            or given.startswith((key + ".", key + "["))
            or key.startswith((given + ".", given + "["))
            for given in self.overridden
        )


def _override(raw: dict[str, Any], items: Sequence[tuple[str, Any]], name: str, tag: str) -> Scenario:
    """Set the dotted keys of `items` in the tables `raw` and build the scenario they make."""
    origin = _Origin(name, tag, frozenset(key for key, _ in items))
    for key, value in items:
        _assign(raw, key, value, origin(key))
    return _from_raw(raw, origin)


def _from_raw(raw: Any, origin: _Origin) -> Scenario:
    """Build a scenario from nested tables, naming `origin` in every refusal."""
    _check_not_generated(raw, origin)
    values = _values(Scenario, raw, "", origin)
    # The rules that tie knobs together run before the constructor runs them again, so that a
    # refusal names the file or the call and not ``Scenario(...)``.
    _check(
        values.get("population", PopulationSection()),
        values.get("crosspod", CrossPodSection()),
        values.get("behaviour", BehaviourSection()),
        origin,
    )
    return Scenario(**values)


def _check_not_generated(raw: Any, origin: _Origin) -> None:
    """Refuse the knobs of a generated population given with ``population.from``, by the tables.

    A record (a section given in Python) is checked by :func:`_check` instead, which can
    only tell a knob from its default.
    """
    population = raw.get("population") if isinstance(raw, dict) else None
    given = population.get("from") if isinstance(population, dict) else None
    if not isinstance(given, str) or not given.strip():
        # Not a path: refused as such by the usual checks.
        return
    for section, keys in _GENERATED.items():
        table = raw.get(section)
        for key in keys:
            if isinstance(table, dict) and table.get(key) is not None:
                _refuse_generated(section, key, origin)


def _refuse_generated(section: str, key: str, origin: _Origin) -> None:
    path = f"{section}.{key}"
    raise ScenarioError(
        origin(path), path, f"either population.from or {path}, not both ({_GENERATED_WHY[section]})"
    )


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
    if value is None:
        return "None"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, str):
        return f"text {value!r}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    return f"{type(value).__name__} {value}"


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _build(cls: type, raw: Any, prefix: str, origin: _Origin) -> Any:
    """Build dataclass `cls` from TOML table `raw`, checking keys, types and bounds."""
    return cls(**_values(cls, raw, prefix, origin))


def _values(cls: type, raw: Any, prefix: str, origin: _Origin) -> dict[str, Any]:
    """The knobs table `raw` gives dataclass `cls`, converted and checked in declaration order."""
    where = prefix.rstrip(".") or "(top level)"
    if not isinstance(raw, dict):
        raise ScenarioError(origin(where), where, f"a table of knobs, found {_type_name(raw)}")
    hints = _hints(cls)
    fields = {_key(f): f for f in dataclasses.fields(cls) if _is_knob(f)}
    for key in raw:
        if prefix + key in _REPLACED:
            raise ScenarioError(origin(prefix + key), prefix + key, _REPLACED[prefix + key])
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"one of {', '.join(fields)}"
            raise ScenarioError(origin(prefix + key), prefix + key, f"a known key ({hint})")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        key = prefix + name
        values[f.name] = _convert(hints[f.name], raw[name], key, origin)
        _check_bounds(f, values[f.name], key, origin)
    return values


# Knobs of earlier versions, and what took their place (docs/scenarios.md).
_REPLACED = {
    "behaviour.mistake_share": (
        "behaviour.mistakes_per_user_per_day in its place (mistakes are now a rate per user "
        "per day, drawn whatever crossPod allows)"
    ),
    "behaviour.mistakes.no_crosspod": (
        "one of the kinds of mistake left; no_crosspod is gone: requests refused for crossPod "
        "now come from wishes the network does not allow (the [blocked] section)"
    ),
    "behaviour.mistakes.not_entitled": (
        "one of the kinds of mistake left; not_entitled is gone: requests refused for "
        "entitlement now come from wishes the network does not allow (the [blocked] section)"
    ),
}


def _check_knobs(record: Any, origin: _Origin | None = None) -> None:
    """Check the knobs of a record built in Python as the loader does, and keep their normal form."""
    cls: type = type(record)
    if origin is None:
        origin = _Origin(f"{cls.__name__}(...)")
    hints = _hints(cls)
    for f in dataclasses.fields(record):
        if not _is_knob(f):
            continue
        value = _convert(hints[f.name], getattr(record, f.name), _key(f), origin)
        _check_bounds(f, value, _key(f), origin)
        # Store what the loader would have (a float for an int, tuples for lists), so that
        # equal scenarios serialise alike; a frozen record can only be set this way.
        object.__setattr__(record, f.name, value)


def _section(cls: Any, value: Any, prefix: str, origin: _Origin) -> Any:
    """A record given as a table, or as the record itself (which checked its own knobs)."""
    return value if isinstance(value, cls) else _build(cls, value, prefix, origin)


def _convert(hint: Any, value: Any, key: str, origin: _Origin) -> Any:
    generic = get_origin(hint)
    if generic in (Union, types.UnionType):
        # `X | None`: None means "absent"; TOML cannot write it, but Python and JSON can.
        if value is None:
            return None
        (inner,) = [a for a in get_args(hint) if a is not type(None)]
        return _convert(inner, value, key, origin)
    if dataclasses.is_dataclass(hint):
        return _section(hint, value, key + ".", origin)
    if generic is tuple:
        item = get_args(hint)[0]
        if item == tuple[PodRef, PodRef]:
            return _pairs(value, key, origin)
        if not isinstance(value, list | tuple):
            raise ScenarioError(origin(key), key, f"an array of tables, found {_type_name(value)}")
        return tuple(_section(item, v, f"{key}[{i}].", origin) for i, v in enumerate(value))
    if hint is datetime:
        return _moment(value, key, origin)
    # numbers.Real and Integral also take numpy's scalars, e.g. from a sweep over np.linspace.
    if hint is float and not isinstance(value, bool) and isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise ScenarioError(origin(key), key, f"a finite number, found {value}")
        return number
    if hint is int and not isinstance(value, bool) and isinstance(value, numbers.Integral):
        return int(value)
    if (hint is bool and isinstance(value, bool)) or (hint is str and isinstance(value, str)):
        return value
    raise ScenarioError(origin(key), key, f"{_KIND_TEXT[hint]}, found {_type_name(value)}")


def _pairs(value: Any, key: str, origin: _Origin) -> tuple[tuple[PodRef, PodRef], ...]:
    expected = 'an array of [pod, pod] pairs of pod ids or names, e.g. [[1, 2], ["bank-001", 3]]'
    if not isinstance(value, list | tuple):
        raise ScenarioError(origin(key), key, f"{expected}, found {_type_name(value)}")
    pairs: list[tuple[PodRef, PodRef]] = []
    for item in value:
        ok = isinstance(item, list | tuple) and len(item) == 2
        if not ok or not all(_is_pod_ref(v) for v in item):
            raise ScenarioError(origin(key), key, f"{expected}, found {item!r}")
        pairs.append((_pod_ref(item[0]), _pod_ref(item[1])))
    return tuple(pairs)


def _is_pod_ref(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _pod_ref(value: Any) -> PodRef:
    return value if isinstance(value, str) else int(value)


def _moment(value: Any, key: str, origin: _Origin) -> datetime:
    if isinstance(value, datetime):
        # A TOML local date-time has no offset; scenarios are in UTC.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    expected = "a TOML date or date-time in UTC, e.g. 2024-01-01 or 2024-01-01T09:00:00Z"
    raise ScenarioError(origin(key), key, f"{expected}, found {_type_name(value)}")


def _check_bounds(f: dataclasses.Field[Any], value: Any, key: str, origin: _Origin) -> None:
    lo, hi, below_hi = f.metadata.get("lo"), f.metadata.get("hi"), f.metadata.get("below_hi", False)
    if (lo is None and hi is None) or value is None:
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
        raise ScenarioError(origin(key), key, f"{text}, found {value:g}")


def _check(pop: PopulationSection, cp: CrossPodSection, beh: BehaviourSection, origin: _Origin) -> None:
    """Rules that tie several knobs together."""
    if pop.from_ is not None and not pop.from_.strip():
        raise ScenarioError(
            origin("population.from"),
            "population.from",
            "the path of a folder of pods, users and crosspod tables, found an empty text",
        )
    generated = pop.from_ is None
    if not generated:
        for section, record in (("population", pop), ("crosspod", cp)):
            defaults = {f.name: f.default for f in dataclasses.fields(record)}
            for key in _GENERATED[section]:
                if getattr(record, key) != defaults[key]:
                    _refuse_generated(section, key, origin)
    if generated and pop.users < pop.pods * pop.min_pod_size:
        raise ScenarioError(
            origin("population.users"),
            "population.users",
            f"at least pods × min_pod_size = {pop.pods * pop.min_pod_size:,} users, found {pop.users:,}",
        )
    total = beh.accept + beh.reject + beh.ignore
    if abs(total - 1.0) > _SHARE_TOLERANCE:
        keys = ("behaviour.accept", "behaviour.reject", "behaviour.ignore")
        # Name the override that broke the sum, if one did.
        worst = next((k for k in keys if k in origin.overridden), "behaviour.accept")
        raise ScenarioError(
            origin(worst), ", ".join(keys), f"answer shares that sum to 1, they sum to {total:g}"
        )
    mix = beh.mistakes.shares()
    if abs(sum(mix.values()) - 1.0) > _SHARE_TOLERANCE:
        raise ScenarioError(
            origin("behaviour.mistakes"),
            "behaviour.mistakes",
            f"shares of the {len(mix)} kinds of mistake that sum to 1, they sum to {sum(mix.values()):g}",
        )
    # A population read from a folder has pods only known once it is read: its pairs and
    # roll-out sizes are checked then (Scenario.with_pod_ids).
    pods = pop.pods if generated else None
    if cp.pairs is not None:
        _check_pairs(cp.pairs, pods, "crosspod.pairs", origin)
    for i, change in enumerate(cp.changes):
        key = f"crosspod.changes[{i}]"
        if pods is not None and change.pods > pods:
            raise ScenarioError(
                origin(key), f"{key}.pods", f"at most population.pods = {pods}, found {change.pods}"
            )
        _check_pairs(change.enable_pairs, pods, f"{key}.enable_pairs", origin)
        _check_pairs(change.disable_pairs, pods, f"{key}.disable_pairs", origin)


def _check_pairs(
    pairs: tuple[tuple[PodRef, PodRef], ...], pods: int | None, key: str, origin: _Origin
) -> None:
    """Pairs of two pods; with `pods`, ids between 1 and `pods` (names wait for the population)."""
    for a, b in pairs:
        ids = [p for p in (a, b) if isinstance(p, int)]
        if pods is not None and (not all(1 <= p <= pods for p in ids) or (a == b and len(ids) == 2)):
            raise ScenarioError(
                origin(key), key, f"pairs of two different pod ids between 1 and {pods}, found [{a!r}, {b!r}]"
            )
        if a == b:
            raise ScenarioError(origin(key), key, f"pairs of two different pods, found [{a!r}, {b!r}]")
