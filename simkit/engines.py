"""`engines`: the one place that names the replay engines and picks one.

Two engines replay a log and give the same answers, event for event: the per-event
reference (:func:`simkit.engine.replay`, ``"event"``) and the numpy columnar engine
(:func:`simkit.columnar.replay`, ``"columnar"``). Everything that replays (the pipeline,
analysis, the command line, benchmarks) asks this module for an engine by name, so the
default is stated once (:data:`DEFAULT_ENGINE`) and the :class:`~simkit.results.Replay` an
engine returns carries the name of the engine that actually ran.

This module holds no rules and imports no file, frame or chart library; the columnar
engine is imported only when it is first asked for.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from simkit.events import Events, Policy
from simkit.population import Population
from simkit.results import Replay

__all__ = ["DEFAULT_ENGINE", "ENGINES", "ReplayEngine", "get_engine", "replay"]


class ReplayEngine(Protocol):
    """What every engine is: a function from a population and a log to a :class:`Replay`."""

    def __call__(self, population: Population, events: Events, policy: Policy | None = None, /) -> Replay:
        """Replay `events` (and the crossPod changes of `policy`) over `population`."""
        ...


# name -> module whose `replay` is that engine; imported on first use.
_MODULES: Mapping[str, str] = MappingProxyType({"columnar": "simkit.columnar", "event": "simkit.engine"})

# Engines whose `replay` takes the `threads` and `groups` keywords.
_THREADED = frozenset({"columnar"})

ENGINES: tuple[str, ...] = tuple(_MODULES)
"""The engine names, the default first."""

DEFAULT_ENGINE: str = "columnar"
"""The engine used wherever none is named: the columnar engine, the faster of the two."""


def get_engine(name: str = DEFAULT_ENGINE) -> ReplayEngine:
    """The replay function of the engine called `name`.

    Raises
    ------
    ValueError
        `name` is not one of :data:`ENGINES`.

    Examples
    --------
    >>> get_engine("event").__module__
    'simkit.engine'
    """
    module = _MODULES.get(name)
    if module is None:
        raise ValueError(f"unknown engine {name!r}; expected one of {', '.join(ENGINES)}")
    engine: ReplayEngine = importlib.import_module(module).replay
    return engine


def replay(
    population: Population,
    events: Events,
    policy: Policy | None = None,
    *,
    engine: str = DEFAULT_ENGINE,
    threads: int | None = None,
    groups: bool = False,
) -> Replay:
    """Replay a log with the engine called `engine`; the result names that engine.

    `threads` caps the threads an engine may use (``None``: its own default); the
    per-event engine always uses one. A sweep running one replay per process asks for 1,
    so that its workers do not oversubscribe the cores.

    `groups` asks an engine that groups the events by pair as it walks them to hand that
    grouping back (:attr:`Replay.groups`; the columnar engine does, the per-event one gives
    ``None``), so that :func:`simkit.metrics.metrics` need not group them again.

    Examples
    --------
    >>> from simkit import Events, Pod, Population, User, replay
    >>> pop = Population.from_records([Pod(1, "a"), Pod(2, "b")], [User(1, 1), User(2, 2)], [(1, 2)])
    >>> result = replay(pop, Events.from_records([(5, 1, 2, "connect"), (9, 2, 1, "reject")]))
    >>> result.engine, result.outcomes.statuses(), result.connections.statuses()
    ('columnar', ['PENDING_OUTGOING', 'REJECTED'], ['REJECTED'])
    >>> replay(pop, Events.empty(), engine="event").engine
    'event'
    >>> replay(pop, Events.from_records([(5, 1, 2, "connect")]), threads=1).outcomes.statuses()
    ['PENDING_OUTGOING']
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if engine in _THREADED and (threads is not None or groups):
        options: dict[str, bool | int] = {"groups": True} if groups else {}
        if threads is not None:
            options["threads"] = threads
        result: Replay = importlib.import_module(_MODULES[engine]).replay(
            population, events, policy, **options
        )
    else:
        result = get_engine(engine)(population, events, policy)
    return dataclasses.replace(result, engine=engine)


if DEFAULT_ENGINE not in _MODULES:  # pragma: no cover - a guard on this file's own constants
    raise ValueError(f"engines: the default {DEFAULT_ENGINE!r} is not an engine")
