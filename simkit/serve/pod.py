"""`pod`: the emulated pod: the per-event engine wrapped for callers who arrive concurrently.

:class:`Pod` holds an :class:`~simkit.engine.Engine` started from a source (a run folder's
population and the final state of its replay, or a scenario's population), and adds what a
server needs around the plain engine, the way SimPy's ``rt.py`` wraps its ``Environment``:
an asyncio lock so that calls apply one at a time in arrival order, a :class:`Clock` that
stamps each action call, and the log of the session's action calls. :meth:`Pod.record`
writes the source's log followed by the session's as a complete run folder, which
``simkit replay`` reproduces answer for answer. The engine itself stays plain; nothing here
speaks HTTP or JSON (:mod:`simkit.serve.app` does).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simkit.engine import Answer, Engine, UserConnection
from simkit.engines import replay
from simkit.errors import RunDirError
from simkit.events import Events, Policy
from simkit.io.commit import RunFolderTransaction
from simkit.io.runs import RUN_FILES, Run, read_run, verify_run, write_inputs, write_outputs
from simkit.pipeline import population_of
from simkit.population import Population
from simkit.results import Replay
from simkit.rules import ACTIONS, EFFECTS, TABLE, Action, DatafeedEvent, Effect, Kind, Status, View
from simkit.scenario import Scenario, load_scenario
from simkit.serve.clock import Clock

__all__ = ["Pod", "Publish", "Source", "datafeed_event", "load_source"]

Publish = Callable[[DatafeedEvent, int, int, int], object]
"""What hears of each datafeed event: ``publish(kind, ts, initiator, other)``."""


def _moves() -> Mapping[tuple[Kind, Kind, Action], DatafeedEvent]:
    """The datafeed event of each move of a record on an action, read from the §4 table and
    :data:`simkit.rules.EFFECTS`: (kind before, kind after, action) -> event."""
    moves: dict[tuple[Kind, Kind, Action], DatafeedEvent] = {}
    for (view, action), cell in TABLE.items():
        rule = EFFECTS.get(cell.effect) if cell.effect is not Effect.KEEP else None
        if rule is not None and rule.datafeed is not None:
            moves[(view.kind, rule.after, action)] = rule.datafeed
    return moves


_MOVES = _moves()
_EMITTING = frozenset(action for _, _, action in _MOVES)
_KIND_OF_STATUS: Mapping[Status, Kind] = {view.status: view.kind for view in View}


def _kind(answer: Answer) -> Kind:
    """The kind of the stored record an answer shows (``NONE``: none, or an implicit one)."""
    shown = answer.connection
    if answer.code != 200 or shown is None or shown.request_counter is None:
        return Kind.NONE
    return _KIND_OF_STATUS[shown.status]


def datafeed_event(before: Answer, after: Answer, action: Action) -> DatafeedEvent | None:
    """The datafeed event of a call, from the caller's view before it (a get) and its answer.

    Examples
    --------
    >>> from simkit.engine import UserConnection
    >>> none = Answer(404, None, None, None)
    >>> made = Answer(200, None, Status.PENDING_OUTGOING, UserConnection(2, Status.PENDING_OUTGOING, 1, 1, 1))
    >>> datafeed_event(none, made, Action.CONNECT), datafeed_event(made, made, Action.CONNECT)
    (<DatafeedEvent.CONNECTIONREQUESTED: 'CONNECTIONREQUESTED'>, None)
    """
    return _MOVES.get((_kind(before), _kind(after), action))


@dataclass(frozen=True, eq=False)
class Source:
    """What the emulator starts from: a population, the log that led to its state, and the
    first time stamp a session's call may take (`floor`)."""

    name: str
    population: Population
    events: Events
    policy: Policy
    floor: int
    kind: str  # "run" or "scenario"


def load_source(source: str | os.PathLike[str] | Scenario) -> Source:
    """The source of ``simkit serve``: a run folder (read and checked) or a scenario.

    A run folder gives its population, its events and its policy; the session's stamps
    start one ms past its last event or policy change, so that a replay of the recording
    applies the session's calls after all of them. A scenario gives its population (drawn,
    or read from ``population.from``) with the crossPod pairs enabled at its start, no
    events and no policy; stamps start at the scenario's start time.

    Examples
    --------
    >>> src = load_source("data/samples/story")
    >>> src.kind, src.population.n_users, len(src.events), src.floor
    ('run', 7, 46, ...)
    >>> load_source("data/scenarios/tiny.toml").population.n_users
    300
    """
    if isinstance(source, Scenario) or not Path(source).is_dir():
        if not isinstance(source, Scenario) and not Path(source).is_file():
            raise RunDirError(f"{source}: no such run folder or scenario file")
        sc = source if isinstance(source, Scenario) else load_scenario(source)
        population = population_of(sc)
        name = sc.name if isinstance(source, Scenario) else str(source)
        return Source(name, population, Events.empty(), Policy.empty(), sc.time.start_ms, "scenario")
    run = read_run(source)
    verify_run(source)  # a folder that disagrees with its manifest is refused, as by `simkit report`
    last = max(
        [
            int(run.events.ts.max()) if len(run.events) else 0,
            int(run.policy.ts.max()) if len(run.policy) else 0,
        ]
    )
    return Source(str(source), run.population, run.events, run.policy, last + 1, "run")


class Pod:
    """An engine that callers share: one call at a time, each action stamped and logged.

    Parameters
    ----------
    source : Source
        The starting point (see :func:`load_source`); a run folder's log is replayed
        through the engine first.
    clock : {"wall", "run"}
        How action calls are stamped (see :class:`~simkit.serve.clock.Clock`).

    Examples
    --------
    >>> import asyncio
    >>> pod = Pod(load_source("data/samples/story"), clock="run")
    >>> answer = asyncio.run(pod.act(101, 301, "connect"))
    >>> answer.code, pod.session_events().ts.tolist() == [pod.source.floor]
    (..., True)
    """

    def __init__(self, source: Source, clock: str = "wall") -> None:
        self.source = source
        self.lock = asyncio.Lock()
        self.clock = Clock(clock, source.floor)
        self.engine = self._started()
        # The session's action calls in arrival order: (ts, actor, target, action index).
        self._log: list[tuple[int, int, int, int]] = []
        self.publish: Publish | None = None

    def _started(self) -> Engine:
        engine = Engine(self.source.population)
        if len(self.source.events) or len(self.source.policy):
            engine.run(self.source.events, self.source.policy)
        return engine

    def reset(self) -> None:
        """Start again from the source: a fresh engine, clock and session log.

        For a test fixture that shares one server between tests; call it while no call is
        in flight. Session tokens stay valid.
        """
        self.engine = self._started()
        self.clock = Clock(self.clock.kind, self.source.floor)
        self._log = []

    async def act(self, actor: int, target: int, action: Action | str) -> Answer:
        """Apply one action call now; it is stamped and logged.

        A call that emits a datafeed event (§6) is told to :attr:`publish`, if set, under
        the lock, so that events are published in the order the calls applied.
        """
        code = ACTIONS.index(Action(action))
        act = ACTIONS[code]
        async with self.lock:
            ts = self.clock.stamp()
            watch = self.publish is not None and act in _EMITTING
            before = self.engine.get(actor, target) if watch else None
            answer = self.engine.apply(actor, target, act, ts)
            self._log.append((ts, actor, target, code))
            if before is not None and self.publish is not None:
                kind = datafeed_event(before, answer, act)
                if kind is not None:
                    # The caller initiates both events; the other user is the target (§6).
                    self.publish(kind, ts, actor, target)
        return answer

    async def get(self, caller: int, user_id: int) -> Answer:
        """The caller's view of one connection (a read; not logged)."""
        async with self.lock:
            return self.engine.get(caller, user_id)

    async def list(
        self, caller: int, status: str | None = None, user_ids: Iterable[int] | None = None
    ) -> list[UserConnection]:
        """The caller's connections (a read; not logged)."""
        async with self.lock:
            return self.engine.list(caller, status, user_ids)

    def session_events(self) -> Events:
        """The session's action calls so far, as an event log in arrival order."""
        rows = self._log
        return Events(
            ts=np.array([r[0] for r in rows], dtype=np.int64),
            actor=np.array([r[1] for r in rows], dtype=np.int64),
            target=np.array([r[2] for r in rows], dtype=np.int64),
            action=np.array([r[3] for r in rows], dtype=np.int8),
        )

    def events(self) -> Events:
        """The source's events followed by the session's: the log a recording holds."""
        mine = self.session_events()
        src = self.source.events
        return Events(
            ts=np.concatenate([src.ts, mine.ts]),
            actor=np.concatenate([src.actor, mine.actor]),
            target=np.concatenate([src.target, mine.target]),
            action=np.concatenate([src.action, mine.action]).astype(np.int8),
        )

    async def snapshot(self) -> Events:
        """:meth:`events`, taken under the lock."""
        async with self.lock:
            return self.events()

    def record(self, out: str | os.PathLike[str], events: Events | None = None) -> Replay:
        """Write the recording (`events`, default :meth:`events`) as a complete run folder.

        The files are staged in `out` under its lock and replace an earlier recording there
        by one commit (:mod:`simkit.io.commit`); a failure leaves `out` as it was.
        """
        events = self.events() if events is None else events
        return write_recording(out, self.source, events, clock=self.clock.kind)


def write_recording(out: str | os.PathLike[str], source: Source, events: Events, *, clock: str) -> Replay:
    """Write `source`'s population and policy with `events` as a run folder at `out`."""
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise RunDirError(f"{target}: not a folder; expected a folder to record the session into")
    target.mkdir(parents=True, exist_ok=True)
    # Under the folder's lock the recording is staged beside an earlier one and replaces it
    # by one commit (simkit.io.commit), the manifest last.
    with RunFolderTransaction(target, "simkit serve --record") as txn:
        files = write_inputs(txn, source.population, events, source.policy)
        result = replay(source.population, events, source.policy)
        run = Run(target, source.population, events, source.policy, files)
        # The manifest names no absolute path (§5): an absolute source is named by its name.
        name = Path(source.name).name if Path(source.name).is_absolute() else source.name
        extra: dict[str, Any] = {
            "served": {
                "source": name,
                "source_kind": source.kind,
                "clock": clock,
                "source_events": len(source.events),
                "session_events": len(events) - len(source.events),
            }
        }
        write_outputs(txn, run, result, extra=extra)
        txn.commit(last="manifest.json", stale=RUN_FILES)
    return result
