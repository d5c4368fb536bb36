"""`analysis`: the tables an analyst asks of a run, as pandas frames.

:func:`load` reads a run folder (its input tables and the outputs of a replay) into a
:class:`RunFrames`; :func:`from_run` does the same from objects already in memory. Every
other function is pure: frames in, a new frame (or a number) out, with the definitions
written in its docstring. This module is an adapter at the edge: it imports the core and
pandas, never the other way round; it draws nothing (that is :mod:`simkit.plots`) and
builds no graph (that is :mod:`simkit.graph`).

Conventions
-----------
- Input tables keep their columns and types: ids and ``ts`` are int64, ``ts`` in
  milliseconds since the epoch. Derived frames give times as naive ``datetime64`` in UTC
  and durations as ``Timedelta``.
- Record statuses are the stored kinds ``PENDING``, ``ACCEPTED``, ``REJECTED``
  (:data:`STATUS_COLUMNS`); the caller's views (``PENDING_OUTGOING``...) appear only in
  the per-event ``status`` column.
- Implicit connections (two users of the same private pod) are never stored; where a table
  counts them it does so in a column of their own, never mixed into ``ACCEPTED``.
- A pod pair is unordered and written ``(pod_a, pod_b)`` with ``pod_a <= pod_b``.
- A run without a demand table (a recorded log) has ``frames.demand = None``: its demand is
  unknown, not empty. A table that is all demand (:func:`unmet_demand`,
  :func:`crosspod_candidates`) then raises :class:`~simkit.errors.RunDirError` in one line;
  a table with demand columns among others (:func:`crosspod_periods`) fills them with
  ``<NA>``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

if TYPE_CHECKING:
    from pandas._libs.tslibs.nattype import NaTType

from simkit.blocks import bincount, bincount_cells, map_blocks, run_all, spans
from simkit.engines import replay
from simkit.errors import RunDirError
from simkit.events import FATES, Demand, Events, Fate, apply_order
from simkit.io.runs import Run, label_codes, read_demand, read_outputs, read_run
from simkit.population import id_rows
from simkit.results import Connections, Outcomes, Replay, record_changes
from simkit.rules import ACTIONS, CHECKS, REASONS, STATUSES, TABLE, Effect, Kind, Reason
from simkit.schema import TABLES

__all__ = [
    "CODES",
    "STATUS_COLUMNS",
    "RunFrames",
    "acceptance_by_pod_pair",
    "acceptance_rate",
    "answer_times",
    "answered_within",
    "bin_width",
    "cross_pod_share",
    "crosspod_at_end",
    "crosspod_candidates",
    "crosspod_changes",
    "crosspod_matrix",
    "crosspod_periods",
    "crosspod_stages",
    "error_counts",
    "from_run",
    "largest_pods",
    "load",
    "median_time_to_accept",
    "pod_matrix",
    "readable",
    "request_counter_counts",
    "requests",
    "rerequest_rate",
    "status_counts",
    "status_timeline",
    "summary",
    "transitions",
    "unmet_demand",
    "with_pod_names",
]

STATUS_COLUMNS: tuple[str, ...] = tuple(k.name for k in (Kind.PENDING, Kind.ACCEPTED, Kind.REJECTED))
"""The statuses of a stored record, in the order every table lists them."""

CODES: tuple[int, ...] = tuple(
    sorted({200} | {c.code for c in CHECKS} | {cell.code for cell in TABLE.values()})
)
"""Every HTTP code an action can be answered with (200, 400, 401, 403, 404)."""

_OUTCOME_COLUMNS = TABLES["outcomes"].names
_WISH_TS, _WISH_USER, _WISH_TARGET, _WISH_FATE, _WISH_SENT_TS = TABLES["demand"].names
_UNMET = (Fate.BLOCKED.label, Fate.DROPPED.label)
_UNMET_CODES = [FATES.index(f) for f in _UNMET]
_T = TypeVar("_T")
# Bin widths tried, smallest first, when a caller gives none (see bin_width).
_BIN_WIDTHS = tuple(
    pd.Timedelta(s) for s in ("1s", "10s", "1min", "10min", "1h", "6h", "1D", "7D", "30D", "365D")
)


@dataclass(frozen=True)
class _LockFor:
    """The key, in a frames' cache of derived tables, of the lock under which the table
    `key` is computed."""

    key: Hashable


@dataclass(frozen=True, eq=False, repr=False)
class RunFrames:
    """A run as pandas frames: its input tables and what the replay answered.

    Attributes
    ----------
    pods : DataFrame
        ``pod_id``, ``name``, ``private``; input order.
    users : DataFrame
        ``user_id``, ``pod_id``, ``external``; input order.
    crosspod : DataFrame
        ``pod_a``, ``pod_b``: pairs with crossPod enabled at the start, ``pod_a < pod_b``.
    policy : DataFrame
        ``ts``, ``pod_a``, ``pod_b``, ``crosspod``; input order (empty without a policy).
    Text columns (the events' ``action``, ``reason`` and ``status``, the records' ``status``,
    the wishes' ``fate``) are categoricals whose categories are every value the column can
    take, so that a row holds one byte rather than a string.

    events : DataFrame
        One row per action event in input order (the index is the 0-based input row):
        ``ts``, ``actor``, ``target``, ``action``, then the outcome of the event
        (``code``, ``reason``, ``status``, ``request_counter``), then ``actor_pod`` and
        ``target_pod`` (nullable integers, ``<NA>`` for an unknown user) and ``implicit`` (both
        users in the same private pod).
    connections : DataFrame
        The stored records after the last event: ``user_a``, ``user_b``, ``requester``,
        ``status``, ``request_counter``, ``first_requested_at``, ``updated_at``.
    demand : DataFrame or None
        The wishes behind a synthetic run (its ``demand`` table), one row per wish in file
        order (the index is the 0-based row, named ``wish``): ``ts``, ``user``, ``target``,
        ``fate`` (``sent``, ``deferred``, ``blocked``, ``dropped``), ``sent_ts`` (nullable
        int64, ``<NA>`` for a wish never sent), then ``user_pod`` and ``target_pod``
        (nullable, like the events'). ``None`` for a run without one (a recorded log): its
        demand is unknown, not empty.
    """

    pods: pd.DataFrame
    users: pd.DataFrame
    crosspod: pd.DataFrame
    policy: pd.DataFrame
    events: pd.DataFrame
    connections: pd.DataFrame
    demand: pd.DataFrame | None = None
    # The derived tables computed so far (see _derived): each is built once per frames.
    _cache: dict[Hashable, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _derived(self, key: Hashable, compute: Callable[[RunFrames], _T]) -> _T:
        """The derived table `key` of these frames, computed by `compute` the first time.

        The frames are frozen, so a table derived from them never goes stale; a table is
        computed once even when several threads ask for it. Frames are handed out as shallow
        copies, so a caller adding or dropping a column changes only
        its own copy.
        """
        if key not in self._cache:
            # One computation per table even when two threads ask at once (the report
            # computes some tables beside the others): the second waits for the first.
            with self._cache.setdefault(_LockFor(key), threading.Lock()):
                if key not in self._cache:
                    self._cache[key] = compute(self)
        value = self._cache[key]
        if isinstance(value, pd.DataFrame):
            return value.copy(deep=False)  # type: ignore[return-value]
        return value  # type: ignore[no-any-return]

    def _forget(self, *keys: Hashable) -> None:
        """Let go of derived tables no longer needed: for a job that owns these frames and
        knows its order (the report, before its graph metrics), so that the memory they
        hold serves what comes next. Asked again, a table is computed again."""
        for key in keys:
            with self._cache.get(_LockFor(key), contextlib.nullcontext()):
                self._cache.pop(key, None)

    def __repr__(self) -> str:
        wishes = f", {len(self.demand):,} wishes" if self.demand is not None else ""
        return (
            f"RunFrames({len(self.pods):,} pods, {len(self.users):,} users, {len(self.events):,} events, "
            f"{len(self.policy):,} policy events, {len(self.connections):,} connections{wishes})"
        )


# -- building the frames --------------------------------------------------------------------

# The labels behind the codes of the core's arrays, in code order: text columns of the frames
# are categoricals over these, so that millions of rows hold one byte each, not a string.
_ACTION_LABELS = tuple(a.value for a in ACTIONS)
_REASON_LABELS = tuple(r.value for r in REASONS)
_VIEW_LABELS = tuple(s.value for s in STATUSES)
_KIND_LABELS = tuple(k.name for k in Kind)
_EFFECT_LABELS = tuple(e.name.lower() for e in Effect)
_CREATE, _ACCEPT, _DECLINE, _REREQUEST = (
    int(e) for e in (Effect.CREATE, Effect.ACCEPT, Effect.DECLINE, Effect.REREQUEST)
)
# A record's status as a position in STATUS_COLUMNS: its Kind less one.
_RECORD_OFFSET = int(Kind.PENDING)
# The answers a request can get, as requests() names them.
_ANSWERS = (Kind.ACCEPTED.name, Kind.REJECTED.name)


def _labelled(codes: NDArray[np.integer[Any]], labels: tuple[str, ...]) -> pd.Categorical:
    """Codes (-1: missing) as a categorical column of their labels, every label a category."""
    return pd.Categorical.from_codes(  # type: ignore[return-value]
        np.asarray(codes, dtype=np.int8), categories=pd.Index(list(labels)), validate=False
    )


def _codes(column: pd.Series, labels: tuple[str, ...]) -> NDArray[np.int8]:
    """The position of each value of a text column among `labels` (-1: missing or unknown)."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype) and tuple(dtype.categories) == labels:
        return np.asarray(column.cat.codes, dtype=np.int8)
    found: NDArray[np.int8] = pd.Index(list(labels)).get_indexer(pd.Index(column)).astype(np.int8)
    return found


def _frame(columns: dict[str, Any]) -> pd.DataFrame:
    # The arrays are not copied (nor gathered into blocks): a run's columns can be gigabytes.
    return pd.DataFrame(columns, copy=False)


def _input_frames(run: Run) -> dict[str, pd.DataFrame]:
    pop, pol = run.population, run.policy
    return {
        "pods": pd.DataFrame({"pod_id": pop.pod_id, "name": list(pop.pod_name), "private": pop.pod_private}),
        "users": pd.DataFrame(
            {"user_id": pop.user_id, "pod_id": pop.user_pod, "external": pop.user_external}
        ),
        "crosspod": pd.DataFrame({"pod_a": pop.crosspod[:, 0], "pod_b": pop.crosspod[:, 1]}),
        "policy": pd.DataFrame(
            {"ts": pol.ts, "pod_a": pol.pod_a, "pod_b": pol.pod_b, "crosspod": pol.crosspod}
        ),
    }


def _distinct(values: NDArray[Any]) -> NDArray[Any]:
    """The distinct values, sorted: np.unique, by sorting (numpy 2.4's np.unique hashes, and
    takes a minute where a sort takes a second on tens of millions of distinct values)."""
    return _distinct_sorted(np.sort(values))


def _count_distinct(ordered: NDArray[Any]) -> int:
    """How many distinct values sorted values hold."""
    return int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1 if len(ordered) else 0


def _distinct_sorted(ordered: NDArray[Any]) -> NDArray[Any]:
    """The distinct values of sorted values."""
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _distinct_inverse(values: NDArray[Any]) -> tuple[NDArray[Any], NDArray[np.intp]]:
    """``np.unique(values, return_inverse=True)``, by sorting (see _distinct)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(len(values), dtype=np.intp)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def _user_rows(users: pd.DataFrame) -> Callable[[NDArray[np.int64]], NDArray[np.int64]]:
    """A function from user ids to their rows in `users` (-1 for an unknown id)."""
    return id_rows(users["user_id"].to_numpy(dtype=np.int64))


def _pods_of(user_ids: NDArray[np.int64], users: pd.DataFrame) -> pd.arrays.IntegerArray:
    """The pod of each user id, ``<NA>`` where the user is unknown.

    In the smallest integers that hold every pod id: a column per event can be millions of rows.
    """
    return pd.arrays.IntegerArray(*_pod_arrays(user_ids, users))


def _pod_arrays(
    user_ids: NDArray[np.int64], users: pd.DataFrame
) -> tuple[NDArray[np.integer[Any]], NDArray[np.bool_]]:
    """The values (0 where unknown) and the mask (True where unknown) of :func:`_pods_of`,
    looked up a block of ids at a time."""
    pod = users["pod_id"].to_numpy(dtype=np.int64)
    small: type[np.integer[Any]] = next(
        (
            t
            for t in (np.int16, np.int32)
            if not len(pod) or np.iinfo(t).min <= pod.min() <= pod.max() <= np.iinfo(t).max
        ),
        np.int64,
    )
    pod = np.append(pod, 0).astype(small)  # an unknown user's row, -1, finds the 0 at the end
    rows = _user_rows(users)
    pods: NDArray[np.integer[Any]] = np.empty(len(user_ids), dtype=small)
    unknown = np.empty(len(user_ids), dtype=bool)
    for start, stop in spans(len(user_ids)):
        at = rows(np.asarray(user_ids[start:stop], dtype=np.int64))
        np.less(at, 0, out=unknown[start:stop])
        pods[start:stop] = pod[at]
    return pods, unknown


def _demand_frame(demand: Demand, users: pd.DataFrame) -> pd.DataFrame:
    """The wishes as a frame (see :class:`RunFrames`), with the pods of both users."""
    sent = demand.was_sent
    frame = _frame(
        {
            _WISH_TS: demand.ts,
            _WISH_USER: demand.user,
            _WISH_TARGET: demand.target,
            _WISH_FATE: _labelled(demand.fate, FATES),
            # The times of wishes never sent are masked, whatever they hold: no copy.
            _WISH_SENT_TS: pd.arrays.IntegerArray(demand.sent_ts, ~sent),
            "user_pod": _pods_of(demand.user, users),
            "target_pod": _pods_of(demand.target, users),
        }
    )
    frame.index.name = "wish"
    return frame


def _connections_frame(connections: Connections) -> pd.DataFrame:
    columns: dict[str, Any] = {name: getattr(connections, name) for name in TABLES["connections"].names}
    columns["status"] = _labelled(connections.status.astype(np.int8) - _RECORD_OFFSET, STATUS_COLUMNS)
    return _frame(columns)


def _assemble(
    run: Run,
    outcomes: Outcomes,
    connections: Connections,
    demand: pd.DataFrame | None,
) -> RunFrames:
    tables = _input_frames(run)
    users, pods = tables["users"], tables["pods"]
    ev = run.events
    (a_pod, a_unknown), (t_pod, t_unknown) = _pod_arrays(ev.actor, users), _pod_arrays(ev.target, users)
    private = pods.loc[pods["private"], "pod_id"].to_numpy(dtype=np.int64)
    implicit = np.empty(len(a_pod), dtype=bool)
    for start, stop in spans(len(a_pod)):  # two known users of the same private pod
        same = a_pod[start:stop] == t_pod[start:stop]
        same &= ~a_unknown[start:stop]
        same &= ~t_unknown[start:stop]
        same &= np.isin(a_pod[start:stop], private)
        implicit[start:stop] = same
    actor_pod = pd.arrays.IntegerArray(a_pod, a_unknown)
    target_pod = pd.arrays.IntegerArray(t_pod, t_unknown)
    events = _frame(
        {
            "ts": ev.ts,
            "actor": ev.actor,
            "target": ev.target,
            "action": _labelled(ev.action, _ACTION_LABELS),
            "code": outcomes.code,
            "reason": _labelled(outcomes.reason, _REASON_LABELS),
            "status": _labelled(outcomes.status, _VIEW_LABELS),
            "request_counter": outcomes.request_counter,
            "actor_pod": actor_pod,
            "target_pod": target_pod,
            "implicit": implicit,
        }
    )
    events.index.name = "event"
    frames = RunFrames(
        pods=pods,
        users=users,
        crosspod=tables["crosspod"],
        policy=tables["policy"],
        events=events,
        connections=_connections_frame(connections),
        demand=demand,
    )
    # The log as the core holds it, for the record history: no need to read it back from text.
    frames._cache["log"] = (ev, outcomes)
    return frames


def from_run(run: Run, result: Replay | None = None, demand: Demand | None = None) -> RunFrames:
    """The frames of a run already in memory.

    Parameters
    ----------
    run : Run
        The inputs, as :func:`simkit.read_run` returns them.
    result : Replay, optional
        What replaying `run` gave; replayed here with the default engine
        (:data:`simkit.engines.DEFAULT_ENGINE`) if left out.
    demand : Demand, optional
        The wishes behind the run (:attr:`simkit.generate.Drawn.demand`); without them
        ``frames.demand`` is ``None`` and the tables of unmet demand are not known.

    Examples
    --------
    >>> from simkit import read_run
    >>> frames = from_run(read_run("data/samples/story"))
    >>> frames
    RunFrames(3 pods, 7 users, 46 events, 2 policy events, 4 connections)
    >>> frames.connections["status"].tolist()
    ['PENDING', 'ACCEPTED', 'PENDING', 'ACCEPTED']
    """
    if result is None:
        result = replay(run.population, run.events, run.policy)
    if len(result.outcomes) != len(run.events):
        raise ValueError(
            f"{len(result.outcomes)} outcomes for {len(run.events)} events; replay the run again"
        )
    wishes = _demand_frame(demand, _input_frames(run)["users"]) if demand is not None else None
    return _assemble(run, result.outcomes, result.connections, wishes)


def load(run_dir: str | os.PathLike[str], outputs: str | os.PathLike[str] | None = None) -> RunFrames:
    """Read a replayed run folder into frames.

    Parameters
    ----------
    run_dir : path
        The run folder with the input tables (checked as :func:`simkit.read_run` does),
        and the wishes behind them if it holds a ``demand`` table (``simkit run`` writes
        one; a recorded log has none, and ``frames.demand`` is then ``None``).
    outputs : path, optional
        The folder holding ``outcomes.parquet`` and ``connections.parquet``; `run_dir`
        itself by default (where ``simkit run`` and ``simkit replay`` put them).

    Raises
    ------
    InputError
        An input table, or the demand table, is refused.
    RunDirError
        An output file is missing, lacks a column, or does not match the events; or the
        demand table is not the one the run's manifest records.

    Examples
    --------
    >>> import tempfile
    >>> from simkit import replay_run
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = replay_run("data/samples/story", out=tmp)
    ...     frames = load("data/samples/story", outputs=tmp)
    >>> frames.events.loc[0, "status"], frames.connections["status"].tolist()
    ('PENDING_OUTGOING', ['PENDING', 'ACCEPTED', 'PENDING', 'ACCEPTED'])
    """
    # Arrow keeps the memory of the tables it has read for the next ones; each table is
    # handed back as arrays, so that memory goes back at once: a run's tables can be gigabytes.
    pool = pa.default_memory_pool()
    run = read_run(run_dir)
    pool.release_unused()
    folder = Path(outputs) if outputs is not None else run.path
    # The wishes are read and checked on a thread of their own while the outputs are read
    # and the record history, which every history table needs, is read off the log.
    with ThreadPoolExecutor(1, thread_name_prefix="simkit-demand") as side:
        wishes = side.submit(_wishes_of, run)
        try:
            outcomes, connections = _outputs_of(*read_outputs(folder, len(run.events), labels=True))
            pool.release_unused()
            moves = _moves_of_log(run.events, outcomes)
        except Exception:
            # Both faulty: the demand's fault is told, as when the tables are read in turn.
            fault = wishes.exception()
            if fault is not None:
                raise fault from None
            raise
        demand = wishes.result()
    frames = _assemble(run, outcomes, connections, demand)
    frames._cache["moves"] = moves
    return frames


def _wishes_of(run: Run) -> pd.DataFrame | None:
    """The run's wishes as a frame, or None when the run folder holds none."""
    demand = read_demand(run.path, run.population)
    pa.default_memory_pool().release_unused()
    if demand is None:
        return None
    return _demand_frame(demand, _input_frames(run)["users"])


def _outputs_of(outcomes: pa.Table, connections: pa.Table) -> tuple[Outcomes, Connections]:
    """The outputs as the core holds them, from the tables of their files."""
    return (
        Outcomes(
            code=outcomes["code"].to_numpy(),
            reason=label_codes(outcomes["reason"], _REASON_LABELS),
            status=label_codes(outcomes["status"], _VIEW_LABELS),
            request_counter=outcomes["request_counter"].to_numpy(),
        ),
        Connections(
            **{
                name: connections[name].to_numpy() for name in TABLES["connections"].names if name != "status"
            },
            status=label_codes(connections["status"], STATUS_COLUMNS) + np.int8(_RECORD_OFFSET),
        ),
    )


# -- small shared pieces --------------------------------------------------------------------


def _times(ts: pd.Series | NDArray[np.int64]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(ts, dtype=np.int64), unit="ms"))


def _pod_sizes(frames: RunFrames) -> pd.Series:
    """Number of users of each pod, in pod-id order."""
    ids = np.sort(frames.pods["pod_id"].to_numpy())
    return frames.users.groupby("pod_id").size().reindex(ids, fill_value=0).rename("users")


def _implicit_pairs(frames: RunFrames) -> pd.Series:
    """Number of implicit pairs in each pod (n(n-1)/2 in a private pod, else 0)."""
    sizes = _pod_sizes(frames)
    private = frames.pods.set_index("pod_id")["private"].reindex(sizes.index)
    return (sizes * (sizes - 1) // 2).where(private.to_numpy(), 0).rename("implicit")


def _record_pods(
    frames: RunFrames,
) -> tuple[NDArray[np.integer[Any]], NDArray[np.integer[Any]], NDArray[np.int8]]:
    """The stored records' unordered pod pairs (``pod_a <= pod_b``) and statuses.

    The status is a position in :data:`STATUS_COLUMNS`; a user outside the population has
    pod -1.
    """
    return frames._derived("record_pods", _record_pods_of)


def _record_pods_of(
    frames: RunFrames,
) -> tuple[NDArray[np.integer[Any]], NDArray[np.integer[Any]], NDArray[np.int8]]:
    conn = frames.connections
    # As _pods_of, with -1 for a user outside the population.
    pods = [_pods_of(conn[c].to_numpy(dtype=np.int64), frames.users) for c in ("user_a", "user_b")]
    a, b = (p.to_numpy(dtype=np.dtype(str(p.dtype).lower()), na_value=-1) for p in pods)
    del pods
    lo = np.minimum(a, b)
    np.maximum(a, b, out=b)
    return lo, b, _codes(conn["status"], STATUS_COLUMNS)


def bin_width(frames: RunFrames, bins: int = 60) -> pd.Timedelta:
    """A round time-bin width that cuts the run into fewer than `bins` bins.

    The smallest of 1 s, 10 s, 1 min, 10 min, 1 h, 6 h, 1 day, 7 days, 30 days and 365
    days that does, measured from the first event to the last.

    Examples
    --------
    >>> from simkit import read_run
    >>> bin_width(from_run(read_run("data/samples/story")))  # 45 minutes of events
    Timedelta('0 days 00:01:00')
    >>> bin_width(from_run(read_run("data/samples/story")), bins=10)
    Timedelta('0 days 00:10:00')
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    ts = frames.events["ts"]
    span = pd.Timedelta(milliseconds=int(ts.max() - ts.min())) if len(ts) else pd.Timedelta(0)
    return next((w for w in _BIN_WIDTHS if span / w < bins), _BIN_WIDTHS[-1])


def largest_pods(frames: RunFrames, top: int | None = None) -> list[int]:
    """The ids of the `top` pods with the most users, largest first (ties: smaller id first).

    Examples
    --------
    >>> from simkit import read_run
    >>> largest_pods(from_run(read_run("data/samples/story")), top=2)
    [20, 10]
    """
    if top is not None and top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    sizes = _pod_sizes(frames)
    # np.lexsort sorts by its last key first: size descending, then id ascending.
    ranked = sizes.index.to_numpy()[np.lexsort((sizes.index.to_numpy(), -sizes.to_numpy()))]
    return [int(p) for p in ranked[:top]]


def _bins(frames: RunFrames, freq: str | pd.Timedelta | None) -> tuple[pd.DatetimeIndex, pd.Timedelta]:
    """Regular bins covering every event of the run: their start times and their width.

    The bins are counted from midnight (UTC) of the first event's day, so that weekly bins
    are weeks of the run rather than weeks since the epoch (which start on a Thursday).
    """
    times = _first_and_last(frames)
    if freq is None:
        width = bin_width(frames)
    else:
        width = pd.Timedelta(freq)
        if width <= pd.Timedelta(0):
            raise ValueError(f"freq must be a positive duration, got {freq!r}")
    if not len(times):
        return pd.DatetimeIndex([], name="time"), width
    origin = times.min().floor("D")
    first, last = _bin_starts(pd.DatetimeIndex([times.min(), times.max()]), origin, width)
    edges = pd.date_range(first, last, freq=width, name="time")
    return edges, width


def _first_and_last(frames: RunFrames) -> pd.DatetimeIndex:
    """The times of the first and the last event (none for a run without events)."""
    ts = frames.events["ts"].to_numpy(dtype=np.int64)
    return _times(np.array([ts.min(), ts.max()]) if len(ts) else ts)


def _bin_starts(times: pd.DatetimeIndex, origin: pd.Timestamp, width: pd.Timedelta) -> pd.DatetimeIndex:
    """The start of the bin of each time, bins of `width` counted from `origin`."""
    return pd.DatetimeIndex(origin + ((times - origin) // width) * width)


def _partial_bins(
    frames: RunFrames, edges: pd.DatetimeIndex, width: pd.Timedelta
) -> dict[pd.Timestamp, float]:
    """The bins that reach past the days of the run, with the share of each inside them.

    A run is taken to cover whole days (UTC), from midnight of its first event's day to the
    midnight after its last event: a simulated run starts and ends at midnight.
    """
    if not len(edges):
        return {}
    times = _first_and_last(frames)
    start, end = times.min().floor("D"), times.max().floor("D") + pd.Timedelta(days=1)
    partial: dict[pd.Timestamp, float] = {}
    for edge in dict.fromkeys((edges[0], edges[-1])):
        inside = min(end, edge + width) - max(start, edge)
        if inside < width:
            partial[pd.Timestamp(edge)] = float(inside / width)
    return partial


# -- stored records -------------------------------------------------------------------------


def status_counts(frames: RunFrames, by: Literal["all", "pod", "pod_pair"] = "all") -> pd.DataFrame:
    """Stored records by status after the last event, with implicit pairs counted apart.

    Parameters
    ----------
    frames : RunFrames
    by : {"all", "pod", "pod_pair"}
        ``"all"``: one row, labelled ``all``. ``"pod"``: one row per pod (by pod id); a
        record between two pods counts once for each of them. ``"pod_pair"``: one row per
        unordered pod pair ``(pod_a, pod_b)`` that holds a record or implicit pairs, with a
        ``crosspod`` column: whether crossPod is enabled between the two pods at the end
        of the run (``False`` where ``pod_a == pod_b``).

    Returns
    -------
    DataFrame
        Columns ``PENDING``, ``ACCEPTED``, ``REJECTED`` (stored records) and ``implicit``
        (pairs of users of the same private pod, connected without a record).

    Examples
    --------
    >>> from simkit import read_run
    >>> frames = from_run(read_run("data/samples/story"))
    >>> status_counts(frames)
         PENDING  ACCEPTED  REJECTED  implicit
    all        2         2         0         4
    >>> status_counts(frames, by="pod_pair")  # doctest: +NORMALIZE_WHITESPACE
                 PENDING  ACCEPTED  REJECTED  implicit  crosspod
    pod_a pod_b
    10    10           0         0         0         1     False
          20           1         0         0         0     False
          30           1         1         0         0      True
    20    20           0         0         0         3     False
    30    30           0         1         0         0     False
    """
    pod_a, pod_b, status = _record_pods(frames)
    implicit = _implicit_pairs(frames)
    columns = [*STATUS_COLUMNS, "implicit"]
    if by == "all":
        counts = bincount(status[status >= 0], minlength=len(STATUS_COLUMNS))
        row = [*(int(c) for c in counts), int(implicit.sum())]
        return pd.DataFrame([row], index=pd.Index(["all"]), columns=columns)
    if by == "pod":
        # A record inside one (public) pod counts once for it, not twice.
        across = pod_a != pod_b
        touching = _crosstab([pod_a], status, ["pod"]).add(
            _crosstab([pod_b[across]], status[across], ["pod"]), fill_value=0
        )
        table = touching.reindex(implicit.index, fill_value=0).astype(np.int64)
        table["implicit"] = implicit
        table.index.name = "pod_id"
        return table[columns]
    if by == "pod_pair":
        table = _crosstab([pod_a, pod_b], status, ["pod_a", "pod_b"])
        inside = implicit[implicit > 0]
        implicit_pairs = pd.Series(
            inside.to_numpy(),
            index=pd.MultiIndex.from_arrays([inside.index, inside.index], names=["pod_a", "pod_b"]),
        )
        index = table.index.union(implicit_pairs.index).sort_values()
        table = table.reindex(index, fill_value=0)
        table["implicit"] = implicit_pairs.reindex(index, fill_value=0).astype(np.int64)
        enabled = crosspod_at_end(frames)
        enabled_index = pd.MultiIndex.from_frame(enabled)
        table["crosspod"] = index.isin(enabled_index)
        return table[[*columns, "crosspod"]]
    raise ValueError(f"by must be 'all', 'pod' or 'pod_pair', got {by!r}")


def _crosstab(
    keys: list[NDArray[np.integer[Any]]], status: NDArray[np.int8], names: list[str]
) -> pd.DataFrame:
    """Records per status for each distinct key (sorted), the statuses as int64 columns in order."""
    width = len(STATUS_COLUMNS)
    index: pd.Index
    if not len(status):
        index = (
            pd.MultiIndex.from_arrays([[]] * len(names), names=names)
            if len(names) > 1
            else pd.Index([], name=names[0])
        )
        return pd.DataFrame(0, index=index, columns=list(STATUS_COLUMNS), dtype=np.int64)
    found, group = _groups(keys)
    index = (
        pd.MultiIndex.from_arrays(found, names=names) if len(keys) > 1 else pd.Index(found[0], name=names[0])
    )
    counts = bincount_cells(group, status, width, len(index))
    return pd.DataFrame(counts, index=index, columns=list(STATUS_COLUMNS))


# Count by a dense table of every combination of pods up to this many cells; sort beyond.
_DENSE_CELLS = 1 << 24


# Ids spanning at most this many values (pod ids do) are found in a table, not searched.
_DENSE_IDS = 1 << 22


def _id_positions(
    keys: list[NDArray[np.integer[Any]]],
) -> tuple[NDArray[np.integer[Any]], Callable[[NDArray[np.integer[Any]]], NDArray[np.signedinteger[Any]]]]:
    """The distinct values of `keys` (sorted), and a function from a block of them to their
    positions among those: a table indexed by value where the values span little (one
    gather, three to five times a binary search over a thousand pods), else a search."""
    dtype = np.result_type(*keys)
    filled = [k for k in keys if len(k)]
    if filled:
        lo = min(int(k.min()) for k in filled)
        span = max(int(k.max()) for k in filled) - lo + 1
        if span <= _DENSE_IDS:
            present = np.zeros(span, dtype=bool)
            for column in filled:
                for start, stop in spans(len(column)):
                    present[column[start:stop] - lo] = True
            position = np.cumsum(present, dtype=np.int64) - 1
            ids = (np.flatnonzero(present) + lo).astype(dtype)
            return ids, lambda block: position[block - lo]
    ids = _distinct(np.concatenate([pd.unique(k) for k in keys])).astype(dtype, copy=False)
    return ids, lambda block: np.searchsorted(ids, block)


def _groups(
    keys: list[NDArray[np.integer[Any]]],
) -> tuple[list[NDArray[np.integer[Any]]], NDArray[np.signedinteger[Any]]]:
    """The distinct rows of one or two columns of pod ids (sorted), and each row's position
    among them (in 32 bits where they fit).

    A run has few pods and many rows: with few enough pods, each combination's cell in a
    dense table is found in one pass (no sort of the rows).
    """
    ids, find = _id_positions(keys)
    n = max(len(ids), 1)
    small = np.int32 if n ** len(keys) < 2**31 else np.int64
    # Each row's cell in the table of every combination, made a block of rows at a time.
    code: NDArray[np.signedinteger[Any]] = np.empty(len(keys[0]), dtype=small)
    for start, stop in spans(len(code)):
        block: NDArray[np.signedinteger[Any]] = find(keys[0][start:stop]).astype(small)
        for column in keys[1:]:
            block *= n
            block += find(column[start:stop]).astype(small)
        code[start:stop] = block
    if n ** len(keys) <= _DENSE_CELLS:
        present = bincount(code, minlength=n ** len(keys)) > 0
        cells = np.flatnonzero(present)
        position = (np.cumsum(present) - 1).astype(small)
        for start, stop in spans(len(code)):  # the cell, then its position among those used
            code[start:stop] = position[code[start:stop]]
        group = code
    else:
        cells, group = _distinct_inverse(code)
    found = []
    for i in range(len(keys)):
        found.append(ids[(cells // n ** (len(keys) - 1 - i)) % n])
    return found, group


def request_counter_counts(frames: RunFrames) -> pd.DataFrame:
    """Stored records by ``request_counter``, from 1 to the largest, gaps filled with 0.

    Returns
    -------
    DataFrame
        Index ``request_counter``; columns ``records`` and ``share`` (of stored records).

    Examples
    --------
    >>> from simkit import read_run
    >>> request_counter_counts(from_run(read_run("data/samples/story")))  # doctest: +NORMALIZE_WHITESPACE
                     records  share
    request_counter
    1                      3   0.75
    2                      1   0.25
    """
    counts = bincount(frames.connections["request_counter"].to_numpy())
    index = pd.RangeIndex(1, max(len(counts), 1), name="request_counter")
    records = pd.Series(counts[1:], index=index, name="count", dtype=np.int64)
    total = int(records.sum())
    share = records / total if total else records.astype(float)
    return pd.DataFrame({"records": records, "share": share}, index=index)


def rerequest_rate(frames: RunFrames) -> float:
    """Share of stored records whose ``request_counter`` is above 1 (NaN with no record).

    Examples
    --------
    >>> from simkit import read_run
    >>> rerequest_rate(from_run(read_run("data/samples/story")))
    0.25
    """
    counter = frames.connections["request_counter"]
    return float((counter > 1).mean()) if len(counter) else float("nan")


def cross_pod_share(frames: RunFrames) -> float:
    """Share of all users with at least one accepted record with a user of another pod.

    Implicit connections never count (they join users of the same pod). NaN with no user.

    Examples
    --------
    >>> from simkit import read_run
    >>> round(cross_pod_share(from_run(read_run("data/samples/story"))), 4)
    0.2857
    """
    n_users = len(frames.users)
    if not n_users:
        return float("nan")
    conn = frames.connections
    pod_a, pod_b, status = _record_pods(frames)
    accepted = STATUS_COLUMNS.index(Kind.ACCEPTED.name)
    rows = _user_rows(frames.users)
    # A mark per user of the population, set a block of records at a time; users outside it
    # (only a recorded log's records can name them) are counted by id.
    linked = np.zeros(n_users, dtype=bool)
    strays = []
    for column in ("user_a", "user_b"):
        ids = conn[column].to_numpy(dtype=np.int64)
        for start, stop in spans(len(ids)):
            across = status[start:stop] == accepted
            across &= pod_a[start:stop] != pod_b[start:stop]
            found = ids[start:stop][across]
            at = rows(found)
            linked[at[at >= 0]] = True
            strays.append(found[at < 0])
    return (int(np.count_nonzero(linked)) + len(_distinct(np.concatenate([*strays, ids[:0]])))) / n_users


# -- crossPod -------------------------------------------------------------------------------


def _crosspod_history(frames: RunFrames) -> tuple[list[int], list[bool], frozenset[tuple[int, int]]]:
    """Policy rows in apply order, whether each changed the relation, and the final relation."""
    return frames._derived("crosspod_history", _crosspod_history_of)


def _crosspod_history_of(frames: RunFrames) -> tuple[list[int], list[bool], frozenset[tuple[int, int]]]:
    start = frames.crosspod[["pod_a", "pod_b"]].to_numpy(dtype=np.int64).tolist()
    enabled = {(min(a, b), max(a, b)) for a, b in start}
    pol = frames.policy
    order = apply_order(pol["ts"].to_numpy(dtype=np.int64)).tolist()
    pod_a = pol["pod_a"].to_numpy(dtype=np.int64).tolist()
    pod_b = pol["pod_b"].to_numpy(dtype=np.int64).tolist()
    setting = pol["crosspod"].to_numpy(dtype=bool).tolist()
    changed: list[bool] = []
    for i in order:
        a, b, on = pod_a[i], pod_b[i], setting[i]
        pair = (min(a, b), max(a, b))
        changed.append((pair in enabled) != on)
        if on:
            enabled.add(pair)
        else:
            enabled.discard(pair)
    return order, changed, frozenset(enabled)


def crosspod_at_end(frames: RunFrames) -> pd.DataFrame:
    """The pod pairs with crossPod enabled after the last policy event, sorted.

    Examples
    --------
    >>> from simkit import read_run
    >>> crosspod_at_end(from_run(read_run("data/samples/story")))
       pod_a  pod_b
    0     10     30
    """
    pairs = sorted(_crosspod_history(frames)[2])
    return pd.DataFrame(np.array(pairs, dtype=np.int64).reshape(-1, 2), columns=["pod_a", "pod_b"])


def crosspod_matrix(frames: RunFrames, pods: pd.Index | list[int]) -> pd.DataFrame:
    """Whether crossPod is enabled at the end of the run between each two of `pods`.

    A boolean square frame, rows and columns in the order of `pods`; the diagonal is False,
    and so is every cell of a label that is not a pod id (the ``other`` of
    :func:`pod_matrix`, which gathers pods with and without crossPod).

    Examples
    --------
    >>> from simkit import read_run
    >>> crosspod_matrix(from_run(read_run("data/samples/story")), [10, 20, 30])  # doctest: +NORMALIZE_WHITESPACE
    pod     10     20     30
    pod
    10   False  False   True
    20   False  False  False
    30    True  False  False
    """
    ids = [int(p) if isinstance(p, int | np.integer) else p for p in pods]
    pos = {p: i for i, p in enumerate(ids) if isinstance(p, int)}
    grid = np.zeros((len(ids), len(ids)), dtype=bool)
    for a, b in sorted(_crosspod_history(frames)[2]):
        if a in pos and b in pos:
            grid[pos[a], pos[b]] = grid[pos[b], pos[a]] = True
    return pd.DataFrame(grid, index=pd.Index(ids, name="pod"), columns=pd.Index(ids, name="pod"))


def pod_matrix(
    frames: RunFrames, status: str = "ACCEPTED", top: int | None = None, *, other: bool = False
) -> pd.DataFrame:
    """Stored records of one status between each two pods, for the largest `top` pods.

    Parameters
    ----------
    frames : RunFrames
    status : {"PENDING", "ACCEPTED", "REJECTED"}
    top : int, optional
        Keep the `top` pods with the most users (ties: smaller pod id first); all pods if
        left out. Pods are listed largest first.
    other : bool
        Gather the pods left out by `top` into a last row and column, labelled
        ``"other (N pods)"``, so that no record is lost from the map.

    Returns
    -------
    DataFrame
        Symmetric, int64; the diagonal counts records between two users of the same pod
        (public pods only: a private pod's pairs are implicit and never stored), and for
        ``other`` the records between two of its pods. The status is in
        ``.attrs["status"]``, the label of the gathered pods (if any) in ``.attrs["other"]``.

    Examples
    --------
    >>> from simkit import read_run
    >>> pod_matrix(from_run(read_run("data/samples/story")))  # doctest: +NORMALIZE_WHITESPACE
    pod  20  10  30
    pod
    20    0   0   0
    10    0   0   1
    30    0   1   1
    >>> pod_matrix(from_run(read_run("data/samples/story")), top=1, other=True)  # doctest: +NORMALIZE_WHITESPACE
    pod             20  other (2 pods)
    pod
    20               0               0
    other (2 pods)   0               2
    """
    if status not in STATUS_COLUMNS:
        raise ValueError(f"status must be one of {', '.join(STATUS_COLUMNS)}, got {status!r}")
    ids = largest_pods(frames, top)
    left_out = len(frames.pods) - len(ids)
    labels: list[int | str] = [*ids]
    if other and left_out:
        labels.append(f"other ({left_out:,} pod{'' if left_out == 1 else 's'})")
    pod_a, pod_b, kind = _record_pods(frames)
    # Each pod's slot in the grid: its place among `ids`, else the last slot where the pods
    # left out share one, else none (the slot past the grid, dropped); a block at a time.
    order = np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")
    chosen_ids = np.asarray(ids, dtype=np.int64)[order]
    left = len(ids) if len(labels) > len(ids) else len(labels)
    size = len(labels) + 1

    def slots(pods: NDArray[np.integer[Any]]) -> NDArray[np.int64]:
        at = np.searchsorted(chosen_ids, pods).clip(0, max(len(ids) - 1, 0))
        hit = chosen_ids[at] == pods if len(ids) else np.zeros(len(pods), dtype=bool)
        return np.where(hit, order[at] if len(ids) else 0, left)

    chosen = kind == STATUS_COLUMNS.index(status)
    cells = bincount_cells(
        map_blocks(slots, pod_a[chosen], np.int32), map_blocks(slots, pod_b[chosen], np.int32), size, size
    )
    grid = cells[: len(labels), : len(labels)].copy()
    # Records between two pods were counted once, at (pod_a, pod_b); mirror them.
    grid = grid + grid.T - np.diag(np.diag(grid))
    out = pd.DataFrame(grid, index=pd.Index(labels, name="pod"), columns=pd.Index(labels, name="pod"))
    out.attrs["status"] = status
    if len(labels) > len(ids):
        out.attrs["other"] = labels[-1]
    return out


def crosspod_changes(frames: RunFrames, window: str | pd.Timedelta | None = None) -> pd.DataFrame:
    """Traffic between two pods in equal windows before and after each crossPod policy event.

    For a policy event at time *t* on pods *a* and *b*, the window before is
    ``[t - w, t)`` and the window after ``[t, t + w)`` (policy events apply before the
    actions at the same ``ts``). Only action events between a user of *a* and a user of
    *b*, either way round, are counted.

    Parameters
    ----------
    frames : RunFrames
    window : str or Timedelta, optional
        The width *w*. By default, the longest width for which neither window reaches past
        the run's first or last event or another policy event on the same two pods, so
        the two windows are comparable. Windows are half-open, like time bins: an event
        exactly at ``t + w`` is in neither.

    Returns
    -------
    DataFrame
        One row per policy event in apply order: ``time``, ``pod_a``, ``pod_b``,
        ``crosspod`` (the value set), ``changed`` (whether the relation was different
        before), ``window``, then for each measure a ``_before`` and an ``_after`` column:
        ``events``; ``ok`` (answered 200); ``crosspod_disabled`` (refused for crossPod);
        ``requests`` (connects that created a request); ``accepted`` (requests accepted).

    Examples
    --------
    >>> from simkit import read_run
    >>> table = crosspod_changes(from_run(read_run("data/samples/story")))
    >>> table[["pod_a", "pod_b", "crosspod", "changed", "window"]]
       pod_a  pod_b  crosspod  changed          window
    0     10     20     False     True 0 days 00:13:00
    1     10     30      True     True 0 days 00:11:00
    >>> table[["crosspod_disabled_before", "crosspod_disabled_after"]]
       crosspod_disabled_before  crosspod_disabled_after
    0                         0                        3
    1                         1                        0
    >>> table[["requests_before", "requests_after", "accepted_before", "accepted_after"]]
       requests_before  requests_after  accepted_before  accepted_after
    0                1               0                0               0
    1                0               3                0               1
    """
    key = ("crosspod_changes", None if window is None else pd.Timedelta(window))
    return frames._derived(key, lambda f: _crosspod_changes(f, window))


def _crosspod_changes(frames: RunFrames, window: str | pd.Timedelta | None) -> pd.DataFrame:
    order, changed, _ = _crosspod_history(frames)
    pol = frames.policy.iloc[order].reset_index(drop=True)
    pol_ts = pol["ts"].to_numpy(dtype=np.int64)
    lo = np.minimum(pol["pod_a"].to_numpy(dtype=np.int64), pol["pod_b"].to_numpy(dtype=np.int64))
    hi = np.maximum(pol["pod_a"].to_numpy(dtype=np.int64), pol["pod_b"].to_numpy(dtype=np.int64))
    pairs = pd.MultiIndex.from_arrays([lo, hi]).unique()
    pair_of_policy = pairs.get_indexer(pd.MultiIndex.from_arrays([lo, hi]))

    ev = frames.events
    ts = ev["ts"].to_numpy(dtype=np.int64)
    width = _policy_windows(pol_ts, pair_of_policy, ts, window)
    # The events between the two pods of some policy pair, keyed by (pair, ts) so that one
    # sorted array answers "how many in [a, b) on this pair" with two binary searches.
    known = (ev["actor_pod"].notna() & ev["target_pod"].notna()).to_numpy()
    a_pod = ev["actor_pod"].to_numpy(dtype=np.int64, na_value=0)
    t_pod = ev["target_pod"].to_numpy(dtype=np.int64, na_value=0)
    event_pair = pairs.get_indexer(
        pd.MultiIndex.from_arrays([np.minimum(a_pod, t_pod), np.maximum(a_pod, t_pod)])
    )
    inside = known & (event_pair >= 0)
    times = _distinct(ts)
    slots = len(times) + 1
    keys = event_pair[inside] * slots + np.searchsorted(times, ts[inside])
    order_in = np.argsort(keys, kind="stable")
    keys = keys[order_in]

    def position(at: NDArray[np.int64]) -> NDArray[np.intp]:
        """Sorted position of the first event on each policy's pair at or after `at`."""
        return np.searchsorted(keys, pair_of_policy * slots + np.searchsorted(times, at))

    edges = [position(pol_ts - width), position(pol_ts), position(pol_ts + width)]
    moves = _moves(frames)
    effect = np.zeros(len(ev), dtype=np.int8)  # KEEP where the event changed no record
    effect[moves.row] = moves.effect
    _, outcomes = _log_of(frames)
    counted = {
        "events": np.ones(len(ev), dtype=bool),
        "ok": outcomes.code == 200,
        "crosspod_disabled": outcomes.reason == _REASON_LABELS.index(Reason.CROSSPOD_DISABLED.value),
        "requests": (effect == _CREATE) | (effect == _REREQUEST),
        "accepted": effect == _ACCEPT,
    }
    table = pd.DataFrame(
        {
            "time": _times(pol_ts),
            "pod_a": lo,
            "pod_b": hi,
            "crosspod": pol["crosspod"].to_numpy(dtype=bool),
            "changed": np.array(changed, dtype=bool),
            "window": pd.to_timedelta(width, unit="ms"),
        }
    )
    for m, mask in counted.items():
        running = np.concatenate([[0], np.cumsum(mask[inside][order_in], dtype=np.int64)])
        table[f"{m}_before"] = running[edges[1]] - running[edges[0]]
        table[f"{m}_after"] = running[edges[2]] - running[edges[1]]
    return table


def crosspod_stages(changes: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`crosspod_changes` summed per stage: same time, same setting.

    A roll-out enables crossPod for many pod pairs at once; a stage adds up their
    before/after counts (each pair still in its own pair of equal windows).

    Parameters
    ----------
    changes : DataFrame
        :func:`crosspod_changes`.

    Returns
    -------
    DataFrame
        Index ``(time, crosspod)``; columns ``pairs`` (policy events), ``changed`` (of
        them, those that changed the relation), ``window`` (the shortest) and the sums of
        every ``_before`` and ``_after`` column.

    Examples
    --------
    >>> from simkit import read_run
    >>> stages = crosspod_stages(crosspod_changes(from_run(read_run("data/samples/story"))))
    >>> stages[["pairs", "requests_before", "requests_after"]]  # doctest: +NORMALIZE_WHITESPACE
                                  pairs  requests_before  requests_after
    time                crosspod
    2023-11-14 22:45:20 False         1                1               0
    2023-11-14 22:47:20 True          1                0               3
    """
    counts = [c for c in changes.columns if c.endswith(("_before", "_after"))]
    grouped = changes.groupby(["time", "crosspod"], sort=True)
    table = grouped[counts].sum()
    table.insert(0, "pairs", grouped.size())
    table.insert(1, "changed", grouped["changed"].sum().astype(np.int64))
    table.insert(2, "window", grouped["window"].min())
    return table


def _policy_windows(
    pol_ts: NDArray[np.int64],
    pair: NDArray[np.intp],
    ts: NDArray[np.int64],
    window: str | pd.Timedelta | None,
) -> NDArray[np.int64]:
    """The window width (ms) of each policy event, in apply order; see crosspod_changes."""
    if window is not None:
        fixed = int(pd.Timedelta(window) / pd.Timedelta(milliseconds=1))
        return np.full(len(pol_ts), fixed, dtype=np.int64)
    start = int(ts.min()) if len(ts) else 0
    end = int(ts.max()) if len(ts) else 0
    on_pair = pd.Series(pol_ts).groupby(pair)
    prev = on_pair.shift(1).fillna(start).to_numpy(dtype=np.int64)
    nxt = on_pair.shift(-1).fillna(end).to_numpy(dtype=np.int64)
    prev = np.maximum(prev, start)
    nxt = np.minimum(nxt, end)
    widths: NDArray[np.int64] = np.maximum(0, np.minimum(pol_ts - prev, nxt - pol_ts))
    return widths


# -- demand: the wishes behind a synthetic run ----------------------------------------------


def _demand(frames: RunFrames) -> pd.DataFrame:
    """The wishes of the run, or one line saying why a run without them cannot answer."""
    if frames.demand is None:
        raise RunDirError(
            "this run has no demand table (demand.parquet): only `simkit run` records the wishes "
            "behind its events, so the demand of a recorded log is unknown"
        )
    return frames.demand


def _users_per_group(
    groups: NDArray[np.signedinteger[Any]],
    users: NDArray[np.int64],
    n: int,
    where: NDArray[np.bool_] | None = None,
) -> NDArray[np.int64]:
    """How many distinct users each of `n` groups holds, given a group and a user per row
    (the rows `where` says, all by default)."""
    chosen = len(groups) if where is None else int(np.count_nonzero(where))
    if not chosen:
        return np.zeros(n, dtype=np.int64)
    base = int(users.min() if where is None else users[where].min())
    top = int(users.max() if where is None else users[where].max())
    span = top - base + 1
    if span * n < 2**62:
        # One number per (group, user), made a block of rows at a time and distinct by
        # sorting in place: on 30M of them numpy's sort took 0.9 s where hashing
        # (pd.unique) took 5.5 s.
        keys = np.empty(chosen, dtype=np.int64)
        filled = 0
        for start, stop in spans(len(groups)):
            group, user = groups[start:stop], users[start:stop]
            if where is not None:
                group, user = group[where[start:stop]], user[where[start:stop]]
            block = keys[filled : filled + len(group)]
            block[...] = group
            block *= span
            block += user
            block -= base
            filled += len(group)
        keys.sort()
        first = np.ones(len(keys), dtype=bool)
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        return np.bincount(keys[first] // span, minlength=n).astype(np.int64)
    if where is not None:
        groups, users = groups[where], users[where]
    pairs = pd.DataFrame({"group": groups, "user": users}).drop_duplicates()
    return np.bincount(pairs["group"].to_numpy(dtype=np.intp), minlength=n).astype(np.int64)


def unmet_demand(frames: RunFrames) -> pd.DataFrame:
    """What became of the wishes between each two pods, and how many were never sent.

    A wish is a user's wish to connect with another, at a time, drawn whatever crossPod
    allows (``frames.demand``; see ``docs/scenarios.md``). **Unmet demand** is the wishes
    never sent: fate ``blocked`` (tried, refused, given up) or ``dropped`` (given up without
    trying). Of those, crossPod alone stands in the way where both users are external and
    the two pods are different pods without crossPod at the end of the run: enabling
    crossPod between them would let those wishes be sent.

    Returns
    -------
    DataFrame
        Index ``(pod_a, pod_b)`` for each unordered pod pair with a wish (a wish inside a
        public pod on its pod's own row), sorted; int64 columns ``wishes``, ``sent``,
        ``deferred`` (sent later, once the pair could be reached), ``blocked``,
        ``dropped``, ``unmet`` (``blocked`` + ``dropped``), ``unmet_users`` (distinct users
        with an unmet wish), ``crosspod_unmet`` (unmet wishes that crossPod alone stands in
        the way of) and ``crosspod_users`` (distinct users with such a wish); then
        ``crosspod``, whether crossPod is enabled between the two pods at the end of the run
        (False where ``pod_a == pod_b``). A wish naming a user outside the population (which
        ``simkit run`` never writes) has no pod pair and is left out.

    Raises
    ------
    RunDirError
        The run has no demand table (a recorded log): its unmet demand is unknown.

    Examples
    --------
    In the story, pods 10 and 20 lose crossPod at 22:45:20 and 10 and 30 gain it at
    22:47:20; 203 is not external:

    >>> from simkit import read_run
    >>> from simkit.events import Demand
    >>> demand = Demand.from_records([
    ...     (1700000000000, 101, 201, "sent", 1700000000000),
    ...     (1700000100000, 101, 301, "deferred", 1700002100000),
    ...     (1700000200000, 102, 301, "dropped", None),
    ...     (1700001000000, 202, 302, "blocked", None),
    ...     (1700001100000, 201, 301, "dropped", None),
    ...     (1700001200000, 203, 301, "dropped", None),
    ...     (1700002000000, 102, 202, "dropped", None),
    ...     (1700002200000, 301, 302, "sent", 1700002200000),
    ... ])
    >>> frames = from_run(read_run("data/samples/story"), demand=demand)
    >>> table = unmet_demand(frames)
    >>> table[["wishes", "sent", "deferred", "blocked", "dropped", "unmet"]]  # doctest: +NORMALIZE_WHITESPACE
                 wishes  sent  deferred  blocked  dropped  unmet
    pod_a pod_b
    10    20          2     1         0        0        1      1
          30          2     0         1        0        1      1
    20    30          3     0         0        1        2      3
    30    30          1     1         0        0        0      0
    >>> table[["unmet_users", "crosspod_unmet", "crosspod_users", "crosspod"]]  # doctest: +NORMALIZE_WHITESPACE
                 unmet_users  crosspod_unmet  crosspod_users  crosspod
    pod_a pod_b
    10    20               1               1               1     False
          30               1               0               0      True
    20    30               3               2               2     False
    30    30               0               0               0     False
    """
    return frames._derived("unmet_demand", _unmet_demand)


def _unmet_demand(frames: RunFrames) -> pd.DataFrame:
    wishes = _demand(frames)
    known = (wishes["user_pod"].notna() & wishes["target_pod"].notna()).to_numpy()
    every = bool(known.all())

    def column(name: str, dtype: type[np.integer[Any]] = np.int64) -> NDArray[Any]:
        """A column of the known wishes (the column itself where every wish is known)."""
        values = wishes[name].to_numpy(dtype=dtype, na_value=0)
        return values if every else values[known]

    # Pods as their rank among the pod ids, so that a pod pair is one small integer whose
    # order is that of (pod_a, pod_b): one pass counts millions of wishes.
    ids = np.sort(frames.pods["pod_id"].to_numpy(dtype=np.int64))
    span = max(len(ids), 1)
    # In the pods' own width (a column per wish is tens of millions of rows), then as ranks.
    width = np.dtype(str(wishes["user_pod"].dtype).lower()).type
    rank: type[np.signedinteger[Any]] = np.int32 if span * span < 2**31 else np.int64
    first = int(ids[0]) if len(ids) else 0
    dense = len(ids) and int(ids[-1]) - first == len(ids) - 1  # ranks by subtraction

    def ranks(pods: NDArray[np.signedinteger[Any]]) -> NDArray[np.signedinteger[Any]]:
        found = pods - first if dense else np.searchsorted(ids, pods)
        return found.astype(rank)

    # Each wish's pod pair as one number, and whether it crosses pods, a block at a time.
    user_pods, target_pods = column("user_pod", width), column("target_pod", width)
    pair: NDArray[np.signedinteger[Any]] = np.empty(len(user_pods), dtype=rank)
    crossing = np.empty(len(user_pods), dtype=bool)
    for start, stop in spans(len(pair)):
        lo, hi = ranks(user_pods[start:stop]), ranks(target_pods[start:stop])
        np.not_equal(lo, hi, out=crossing[start:stop])
        smaller = np.minimum(lo, hi)
        np.maximum(lo, hi, out=hi)
        smaller *= span
        smaller += hi
        pair[start:stop] = smaller
    del user_pods, target_pods
    if span * span <= _DENSE_CELLS:
        present = bincount(pair, minlength=span * span) > 0
        keys = np.flatnonzero(present)
        position = (np.cumsum(present) - 1).astype(rank)
        for start, stop in spans(len(pair)):  # the pair's number, then its position
            pair[start:stop] = position[pair[start:stop]]
        del present, position
    else:
        keys, pair = _distinct_inverse(pair)
    n = len(keys)
    index = pd.MultiIndex.from_arrays([ids[keys // span], ids[keys % span]], names=["pod_a", "pod_b"])
    fate = _codes(wishes[_WISH_FATE], FATES)
    if not every:
        fate = fate[known]
    by_fate = bincount_cells(pair, fate, len(FATES), n)
    table = pd.DataFrame(by_fate, index=index, columns=list(FATES))
    table.insert(0, "wishes", by_fate.sum(axis=1).astype(np.int64))
    table["unmet"] = table[list(_UNMET)].sum(axis=1).astype(np.int64)

    enabled = index.isin(pd.MultiIndex.from_frame(crosspod_at_end(frames)))
    rows = _user_rows(frames.users)
    external = frames.users["external"].to_numpy(dtype=bool)
    user, target = column(_WISH_USER), column(_WISH_TARGET)
    unmet = np.isin(fate, _UNMET_CODES)
    alone = unmet & crossing
    del crossing
    for start, stop in spans(len(pair)):
        still = alone[start:stop]
        still &= ~enabled[pair[start:stop]]
        still &= external[rows(user[start:stop])]
        still &= external[rows(target[start:stop])]
    table["unmet_users"] = _users_per_group(pair, user, n, where=unmet)
    table["crosspod_unmet"] = np.bincount(pair[alone], minlength=n).astype(np.int64)
    table["crosspod_users"] = _users_per_group(pair, user, n, where=alone)
    table["crosspod"] = enabled
    return table


def crosspod_candidates(frames: RunFrames, top: int | None = None) -> pd.DataFrame:
    """Where enabling crossPod would connect the most people: pod pairs by unmet demand.

    The rows of :func:`unmet_demand` of two different pods without crossPod at the end of
    the run that hold unmet wishes crossPod alone stands in the way of, ranked by those
    (``crosspod_unmet``), then by the users who made them (``crosspod_users``), then by pod
    ids.

    Parameters
    ----------
    frames : RunFrames
    top : int, optional
        Keep the first `top` pairs; all by default.

    Returns
    -------
    DataFrame
        The columns of :func:`unmet_demand` but ``crosspod`` (always False here), ranked.
        ``.attrs["pairs"]`` is the number of such pairs, ``.attrs["left_out"]`` how many
        of them `top` left out and ``.attrs["left_out_unmet"]`` their ``crosspod_unmet``.

    Raises
    ------
    RunDirError
        The run has no demand table (a recorded log).

    Examples
    --------
    With the frames of :func:`unmet_demand`:

    >>> from simkit import read_run
    >>> from simkit.events import Demand
    >>> demand = Demand.from_records([
    ...     (1700001000000, 202, 302, "blocked", None),
    ...     (1700001100000, 201, 301, "dropped", None),
    ...     (1700002000000, 102, 202, "dropped", None),
    ... ])
    >>> frames = from_run(read_run("data/samples/story"), demand=demand)
    >>> best = crosspod_candidates(frames, top=1)
    >>> best[["wishes", "unmet", "crosspod_unmet", "crosspod_users"]]  # doctest: +NORMALIZE_WHITESPACE
                 wishes  unmet  crosspod_unmet  crosspod_users
    pod_a pod_b
    20    30          2      2               2               2
    >>> best.attrs
    {'pairs': 2, 'left_out': 1, 'left_out_unmet': 1}
    """
    if top is not None and top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    table = unmet_demand(frames)
    pod_a = table.index.get_level_values("pod_a").to_numpy()
    pod_b = table.index.get_level_values("pod_b").to_numpy()
    keep = (
        ~table["crosspod"].to_numpy(dtype=bool) & (pod_a != pod_b) & (table["crosspod_unmet"].to_numpy() > 0)
    )
    found = table[keep].drop(columns="crosspod")
    # np.lexsort sorts by its last key first.
    order = np.lexsort(
        (pod_b[keep], pod_a[keep], -found["crosspod_users"].to_numpy(), -found["crosspod_unmet"].to_numpy())
    )
    ranked = found.iloc[order]
    shown: pd.DataFrame = ranked.iloc[:top].copy()
    shown.attrs = {
        "pairs": len(ranked),
        "left_out": len(ranked) - len(shown),
        "left_out_unmet": int(ranked["crosspod_unmet"].iloc[len(shown) :].sum()),
    }
    return shown


def crosspod_periods(frames: RunFrames) -> pd.DataFrame:
    """The run cut at each crossPod stage: traffic and unmet demand from one stage to the next.

    A stage is a time at which policy events changed the crossPod relation (a roll-out
    changes many pod pairs at once). The run, taken to cover whole days (UTC) from midnight
    of its first event or wish to the midnight after its last, is cut at each stage inside
    it: the period before a stage and the period after it compare the whole network before
    and after the change. Periods differ in length; divide by ``days`` for rates.

    Returns
    -------
    DataFrame
        Index ``period`` (0, 1, ...); columns ``start`` and ``end`` (UTC; the period is
        ``[start, end)``), ``days`` (float), ``enabled`` and ``disabled`` (pod pairs whose
        crossPod the stage at ``start`` turned on or off; a change before the run's start
        counts in period 0), then counts of what happened in the period: ``requests``
        (connects that created a request), ``accepted`` (requests accepted),
        ``crosspod_disabled`` (403 ``crosspod_disabled`` answers), ``wishes`` (wishes made)
        and ``unmet`` (of them, those never sent, whenever their time). ``wishes`` and
        ``unmet`` are nullable and ``<NA>`` for a run without a demand table (a recorded
        log), whose demand is unknown.

    Examples
    --------
    >>> from simkit import read_run
    >>> periods = crosspod_periods(from_run(read_run("data/samples/story")))
    >>> periods[["start", "end", "enabled", "disabled"]]  # doctest: +NORMALIZE_WHITESPACE
                         start                 end  enabled  disabled
    period
    0      2023-11-14 00:00:00 2023-11-14 22:45:20        0         0
    1      2023-11-14 22:45:20 2023-11-14 22:47:20        0         1
    2      2023-11-14 22:47:20 2023-11-15 00:00:00        1         0
    >>> periods[["requests", "accepted", "crosspod_disabled", "wishes", "unmet"]]  # doctest: +NORMALIZE_WHITESPACE
            requests  accepted  crosspod_disabled  wishes  unmet
    period
    0              4         2                  1    <NA>   <NA>
    1              0         0                  2    <NA>   <NA>
    2              3         1                  1    <NA>   <NA>
    """
    return frames._derived("crosspod_periods", _crosspod_periods)


def _crosspod_periods(frames: RunFrames) -> pd.DataFrame:
    order, changed, _ = _crosspod_history(frames)
    pol_ts = frames.policy["ts"].to_numpy(dtype=np.int64)[order]
    setting = frames.policy["crosspod"].to_numpy(dtype=bool)[order]
    did = np.array(changed, dtype=bool)
    ev_ts = frames.events["ts"].to_numpy(dtype=np.int64)
    wishes = frames.demand
    wish_ts = wishes[_WISH_TS].to_numpy(dtype=np.int64) if wishes is not None else ev_ts[:0]
    times = [t for t in (ev_ts, wish_ts) if len(t)]
    day = 86_400_000
    if times:
        first, last = min(int(t.min()) for t in times), max(int(t.max()) for t in times)
        start, end = first // day * day, (last // day + 1) * day
    else:
        start = end = 0
    inside = did & (pol_ts > start) & (pol_ts < end)
    edges = np.concatenate([[start], _distinct(pol_ts[inside]), [end]]).astype(np.int64)
    n = len(edges) - 1 if times else 0

    def count(
        ts: NDArray[np.int64], where: NDArray[np.bool_] | None = None, cuts: NDArray[np.int64] | None = None
    ) -> NDArray[np.int64]:
        """How many of the times (those `where` says) fall in each period; before the first, in
        it. `cuts`: where each period begins in the times, when they are in order."""
        if not n:
            return np.zeros(0, dtype=np.int64)
        if cuts is None and len(ts) and bool(np.all(ts[1:] >= ts[:-1])):
            # Times in order (a generated log, the record history): each period is a slice.
            cuts = np.concatenate([[0], np.searchsorted(ts, edges[1:], side="left")])
        if cuts is not None:
            return np.diff(cuts).astype(np.int64) if where is None else _slice_sums(where, cuts)
        chosen = ts if where is None else ts[where]
        period = np.searchsorted(edges, chosen, side="right")
        period -= 1
        np.clip(period, 0, None, out=period)
        if len(chosen) and int(chosen.max()) >= end:  # only policy events can be that late
            period = period[chosen < end]
        return np.bincount(period, minlength=n).astype(np.int64)[:n]

    moves = _moves(frames)
    effect = moves.effect
    # The history's times are in order: where each period begins in them, a block at a time.
    move_cuts = np.zeros(len(edges), dtype=np.int64)
    for _, ts in moves.ts_blocks():
        move_cuts[1:] += np.searchsorted(ts, edges[1:], side="left")
    table = pd.DataFrame(
        {
            "start": _times(edges[:-1]) if n else _times(edges[:0]),
            "end": _times(edges[1:]) if n else _times(edges[:0]),
        },
        index=pd.RangeIndex(n, name="period"),
    )
    table["days"] = (edges[1:] - edges[:-1])[:n] / day
    table["enabled"] = count(pol_ts, did & setting)
    table["disabled"] = count(pol_ts, did & ~setting)
    table["requests"] = count(_NO_TIMES, (effect == _CREATE) | (effect == _REREQUEST), move_cuts)
    table["accepted"] = count(_NO_TIMES, effect == _ACCEPT, move_cuts)
    _, outcomes = _log_of(frames)
    refused = outcomes.reason == _REASON_LABELS.index(Reason.CROSSPOD_DISABLED.value)
    table["crosspod_disabled"] = count(ev_ts, refused)
    if wishes is None:
        table["wishes"] = table["unmet"] = pd.array([pd.NA] * n, dtype="Int64")
    else:
        table["wishes"] = pd.array(count(wish_ts), dtype="Int64")
        table["unmet"] = pd.array(
            count(wish_ts, np.isin(_codes(wishes[_WISH_FATE], FATES), _UNMET_CODES)), dtype="Int64"
        )
    return table


def _slice_sums(where: NDArray[np.bool_], cuts: NDArray[np.int64]) -> NDArray[np.int64]:
    """How many of `where` are true in each slice ``cuts[i]:cuts[i + 1]`` (ascending cuts from
    0), a block of rows at a time: numpy's ``reduceat`` would copy the whole column to int64."""
    counts = np.zeros(len(cuts) - 1, dtype=np.int64)
    for start, stop in spans(int(cuts[-1])):
        local = np.clip(cuts, start, stop) - start
        filled = local[:-1] < local[1:]  # an empty slice's sum is 0, not reduceat's
        counts[filled] += np.add.reduceat(where[start:stop], local[:-1][filled], dtype=np.int64)
    return counts


# -- the record history, rebuilt from the outcomes ------------------------------------------


def _log_of(frames: RunFrames) -> tuple[Events, Outcomes]:
    """The action events and outcomes behind the per-event frame, as the core holds them."""
    return frames._derived("log", _log_from_frame)


def _log_from_frame(frames: RunFrames) -> tuple[Events, Outcomes]:
    # Frames built by load or from_run hold the log already; these are frames built by hand.
    ev = frames.events
    action = _codes(ev["action"], _ACTION_LABELS)
    if (action < 0).any():
        row = int(np.flatnonzero(action < 0)[0])
        raise ValueError(
            f"events row {int(ev.index.to_numpy()[row]) + 1}: unknown action {ev['action'].iloc[row]!r}"
        )
    events = Events(
        ts=ev["ts"].to_numpy(dtype=np.int64),
        actor=ev["actor"].to_numpy(dtype=np.int64),
        target=ev["target"].to_numpy(dtype=np.int64),
        action=action,
    )
    outcomes = Outcomes(
        code=ev["code"].to_numpy(dtype=np.int16),
        reason=_codes(ev["reason"], _REASON_LABELS),
        status=_codes(ev["status"], _VIEW_LABELS),
        request_counter=ev["request_counter"].to_numpy(dtype=np.int32),
    )
    return events, outcomes


@dataclass(frozen=True)
class _Moves:
    """The record changes as arrays, in apply order: what every history table is built from.

    Only the event rows and the kinds are kept; the events' columns are read through them
    when asked (a run can hold tens of millions of changes).
    """

    row: NDArray[np.signedinteger[Any]]  # position of the event in the frame (32 bits where it fits)
    before: NDArray[np.int8]  # Kind
    after: NDArray[np.int8]  # Kind
    effect: NDArray[np.int8]  # Effect
    log: Events
    by_pair: NDArray[np.signedinteger[Any]]  # positions of the moves, grouped by pair

    @property
    def ts(self) -> NDArray[np.int64]:
        ts: NDArray[np.int64] = self.log.ts[self.row]
        return ts

    def ts_blocks(self) -> Iterator[tuple[int, NDArray[np.int64]]]:
        """The times of the moves a block at a time (ascending: the moves are in apply
        order), with the position of each block's first move: passes over the whole history
        that never hold all its times at once."""
        for start, stop in spans(len(self.row)):
            yield start, self.log.ts[self.row[start:stop]]

    def counts_after(self, ends: NDArray[np.signedinteger[Any]]) -> NDArray[np.int64]:
        """The number of records of each status (the columns, as STATUS_COLUMNS) after the
        first `ends[j]` moves, for ascending `ends`: running sums a block at a time."""
        values = np.zeros((len(ends), len(STATUS_COLUMNS)), dtype=np.int64)
        totals = [0] * len(STATUS_COLUMNS)
        for start, stop in spans(len(self.row)):
            lo, hi = np.searchsorted(ends, (start + 1, stop + 1))  # those within the block
            at = ends[lo:hi] - (start + 1)
            for i, name in enumerate(STATUS_COLUMNS):
                kind = Kind[name]
                step = (self.after[start:stop] == kind).astype(np.int64)
                step -= self.before[start:stop] == kind
                running = np.cumsum(step, out=step)
                values[lo:hi, i] = running[at] + totals[i]
                totals[i] += int(running[-1])
        return values

    @property
    def actor(self) -> NDArray[np.int64]:
        actor: NDArray[np.int64] = self.log.actor[self.row]
        return actor

    @property
    def target(self) -> NDArray[np.int64]:
        target: NDArray[np.int64] = self.log.target[self.row]
        return target


def _moves(frames: RunFrames) -> _Moves:
    return frames._derived("moves", _moves_of)


def _moves_of(frames: RunFrames) -> _Moves:
    return _moves_of_log(*_log_of(frames))


# Above this many events, the record changes are read pod pair group by group (see below).
_CHANGES_AT_ONCE = 8_000_000
# Shares of the record history read at once (see _moves_of_log).
_SHARE_THREADS = 2
_NO_TIMES = np.zeros(0, dtype=np.int64)


def _moves_of_log(events: Events, outcomes: Outcomes) -> _Moves:
    parts = -(-len(events) // _CHANGES_AT_ONCE)
    if parts <= 1:
        changes = record_changes(events, outcomes)
        return _Moves(changes.event, changes.before, changes.after, changes.effect, events, changes.by_pair)
    # A pair's record depends on that pair's events alone: read the changes of one share of
    # the pairs at a time (by the smaller user id), so that what record_changes holds while it
    # works is a share of the log, then put the changes back in apply order. Two shares are
    # read at once, on two threads: numpy lets go of the GIL in the sorts and gathers.
    share = np.empty(len(events), dtype=np.uint8 if parts < 256 else np.int64)
    for start in range(0, len(events), _CHANGES_AT_ONCE):  # a block at a time: no 64-bit temporaries
        end = start + _CHANGES_AT_ONCE
        np.remainder(
            np.minimum(events.actor[start:end], events.target[start:end]),
            parts,
            out=share[start:end],
            casting="unsafe",
        )

    small: type[np.signedinteger[Any]] = np.int32 if len(events) < 2**31 else np.int64  # event rows

    def piece(k: int, share: NDArray[Any] = share) -> tuple[NDArray[Any], ...]:
        rows = np.flatnonzero(share == k)
        part_events = Events(
            ts=events.ts[rows],
            actor=events.actor[rows],
            target=events.target[rows],
            action=events.action[rows],
        )
        part_outcomes = Outcomes(
            code=outcomes.code[rows],
            reason=outcomes.reason[rows],
            status=outcomes.status[rows],
            request_counter=outcomes.request_counter[rows],
        )
        changes = record_changes(part_events, part_outcomes)
        return (
            rows[changes.event].astype(small),
            changes.before,
            changes.after,
            changes.effect,
            changes.by_pair,
        )

    try:
        with ThreadPoolExecutor(_SHARE_THREADS, thread_name_prefix="simkit-history") as pool:
            pieces: list[tuple[NDArray[Any], ...] | None] = list(pool.map(piece, range(parts)))
    except ValueError:
        del share, piece
        changes = record_changes(events, outcomes)  # to name the row of the whole log
        return _Moves(changes.event, changes.before, changes.after, changes.effect, events, changes.by_pair)
    del share, piece
    ts = events.ts
    rank_of: NDArray[np.signedinteger[Any]] | None = None  # each event's place in apply order
    if not (len(ts) and bool(np.all(ts[1:] >= ts[:-1]))):  # else the log is in apply order already
        order = apply_order(ts)
        rank_of = np.empty(len(order), dtype=small)
        rank_of[order] = np.arange(len(order), dtype=small)
        del order
    # Where each change goes in apply order: the events with a change marked in apply order,
    # then counted. Each share's changes are put in place, and let go of, in turn.
    dest = np.zeros(len(ts), dtype=small)
    for part in pieces:
        assert part is not None
        dest[part[0] if rank_of is None else rank_of[part[0]]] = 1
    np.cumsum(dest, dtype=small, out=dest)
    total = int(dest[-1]) if len(dest) else 0
    dest -= 1
    row = np.empty(total, dtype=small)
    before, after, effect = (np.empty(total, dtype=np.int8) for _ in range(3))
    by_pair = np.empty(total, dtype=small)
    # Where each share's moves go among those grouped by pair: no pair has changes in two shares.
    grouped = np.cumsum([0, *(len(part[4]) if part is not None else 0 for part in pieces)]).tolist()

    def place(i: int) -> None:
        part = pieces[i]
        assert part is not None
        pieces[i] = None
        rows, part_before, part_after, part_effect, part_by_pair = part
        del part
        at = dest[rows if rank_of is None else rank_of[rows]]
        row[at], before[at], after[at], effect[at] = rows, part_before, part_after, part_effect
        by_pair[grouped[i] : grouped[i + 1]] = at[part_by_pair]

    # The shares are put in place on two threads: each writes positions no other share has.
    run_all([functools.partial(place, i) for i in range(len(pieces))], _SHARE_THREADS)
    return _Moves(row, before, after, effect, events, by_pair)


def transitions(frames: RunFrames) -> pd.DataFrame:
    """Every change of a stored record, in apply order, rebuilt from the outcomes.

    Each outcome with a status, outside implicit pairs, shows the pair's record as it is
    after the event (a refused call shows it unchanged); the record changes exactly where
    that kind differs from the one the pair showed before (``NONE`` at the start). Only a
    200 answer can change it, and the effect follows from the kinds and the action, as
    :data:`simkit.rules.TABLE` and :data:`simkit.rules.EFFECTS` say. The changes are read
    by :func:`simkit.results.record_changes`; this adds the columns of the events.

    Returns
    -------
    DataFrame
        ``event`` (input row), ``ts``, ``user_a``, ``user_b`` (the pair, smaller id
        first), ``actor``, ``target``, ``action``, ``before`` and ``after`` (record kinds:
        ``NONE``, ``PENDING``, ``ACCEPTED``, ``REJECTED``), ``effect`` (``create``,
        ``accept``, ``decline``, ``delete``, ``rerequest``, ``reopen``, as in
        :class:`simkit.rules.Effect`) and ``request_counter`` after the event.

    Examples
    --------
    >>> from simkit import read_run
    >>> moves = transitions(from_run(read_run("data/samples/story")))
    >>> moves[["event", "actor", "target", "action", "before", "after", "effect"]].head(4)
       event  actor  target   action    before     after   effect
    0      0    101     201  connect      NONE   PENDING   create
    1      6    201     101   reject   PENDING  REJECTED  decline
    2     10    201     101   remove  REJECTED   PENDING   reopen
    3     11    201     101   remove   PENDING  REJECTED  decline
    """
    return frames._derived("transitions", _transitions)


def _transitions(frames: RunFrames) -> pd.DataFrame:
    moves = _moves(frames)
    events, outcomes = _log_of(frames)
    actor, target = moves.actor, moves.target
    return _frame(
        {
            "event": frames.events.index.to_numpy()[moves.row],
            "ts": moves.ts,
            "user_a": np.minimum(actor, target),
            "user_b": np.maximum(actor, target),
            "actor": actor,
            "target": target,
            "action": _labelled(events.action[moves.row], _ACTION_LABELS),
            "before": _labelled(moves.before, _KIND_LABELS),
            "after": _labelled(moves.after, _KIND_LABELS),
            "effect": _labelled(moves.effect, _EFFECT_LABELS),
            "request_counter": outcomes.request_counter[moves.row].astype(np.int64),
        }
    )


def status_timeline(
    frames: RunFrames, freq: str | pd.Timedelta | None = None, *, most: int | None = None
) -> pd.DataFrame:
    """Number of stored pairs in each status over time, rebuilt from the outcomes.

    Parameters
    ----------
    frames : RunFrames
    freq : str or Timedelta, optional
        Without it, one row per timestamp at which a record changed, giving the counts
        after the last event at that time. With it, one row per bin of that width
        (labelled by its start) giving the counts at the end of the bin, from the bin of
        the first event to the bin of the last.
    most : int, optional
        Without `freq`: if records changed at more than `most` timestamps, give the counts
        in bins of :func:`bin_width` (fewer than `most` bins) instead, as a chart draws them.
        The timeline at every timestamp of a large run is tens of millions of rows; this
        never builds it.

    Returns
    -------
    DataFrame
        Index ``time`` (UTC); columns ``PENDING``, ``ACCEPTED``, ``REJECTED`` (int64).
        Implicit pairs are never stored and never counted here. Binned, the bin width is
        in ``.attrs["freq"]``.

    Examples
    --------
    >>> from simkit import read_run
    >>> frames = from_run(read_run("data/samples/story"))
    >>> status_timeline(frames).head(4)  # doctest: +NORMALIZE_WHITESPACE
                         PENDING  ACCEPTED  REJECTED
    time
    2023-11-14 22:13:20        1         0         0
    2023-11-14 22:19:20        0         0         1
    2023-11-14 22:23:20        1         0         0
    2023-11-14 22:24:20        0         0         1
    >>> len(status_timeline(frames)), len(status_timeline(frames, most=10))
    (15, 5)
    """
    if freq is None and most is not None:
        if most < 1:
            raise ValueError(f"most must be at least 1, got {most}")
        if _distinct_times(_moves(frames)) > most:
            freq = bin_width(frames, most)
    if freq is None:
        return frames._derived("status_timeline", _status_timeline)
    edges, width = _bins(frames, freq)
    moves = _moves(frames)
    # The counts at the end of each bin: after every change before the next bin begins.
    bounds = (edges + width).as_unit("ms").asi8
    ends = np.zeros(len(bounds), dtype=np.int64)
    for _, ts in moves.ts_blocks():
        ends += np.searchsorted(ts, bounds, side="left")
    out = pd.DataFrame(moves.counts_after(ends), index=edges, columns=list(STATUS_COLUMNS))
    out.index.name = "time"
    out.attrs["freq"] = width
    return out


def _distinct_times(moves: _Moves) -> int:
    """How many distinct times the moves have."""
    count, previous = 0, None
    for _, ts in moves.ts_blocks():
        count += int(np.count_nonzero(ts[1:] != ts[:-1])) + int(previous is None or ts[0] != previous)
        previous = ts[-1]
    return count


def _status_timeline(frames: RunFrames) -> pd.DataFrame:
    """The counts of :func:`status_timeline` at each timestamp where a record changed."""
    moves = _moves(frames)
    # Several changes can share a timestamp; the counts after the last one stand.
    ends, times = [], []
    for start, ts in moves.ts_blocks():
        last = np.ones(len(ts), dtype=bool)
        np.not_equal(ts[1:], ts[:-1], out=last[:-1])
        if start + len(ts) < len(moves.row):  # the block's last time may go on in the next
            last[-1] = ts[-1] != moves.log.ts[moves.row[start + len(ts)]]
        ends.append(np.flatnonzero(last) + (start + 1))
        times.append(ts[last])
    at = np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64)
    index = _times(np.concatenate(times) if times else np.zeros(0, dtype=np.int64)).rename("time")
    return pd.DataFrame(moves.counts_after(at), columns=list(STATUS_COLUMNS), index=index)


@dataclass(frozen=True)
class _Asked:
    """The requests, as positions in :class:`_Moves`, and the position of each one's first
    answer (-1 while unanswered)."""

    request: NDArray[np.signedinteger[Any]]  # in 32 bits where they fit
    answer: NDArray[np.signedinteger[Any]]


def _forget_history(frames: RunFrames) -> None:
    """Let go of the record history, the requests and their waits (see RunFrames._forget)."""
    frames._forget("moves", "asked", *(_waits_key(kind) for kind in (Kind.ACCEPTED, Kind.REJECTED)))


def _asked(frames: RunFrames) -> _Asked:
    return frames._derived("asked", _asked_of)


def _asked_of(frames: RunFrames) -> _Asked:
    moves = _moves(frames)
    by_pair = moves.by_pair  # as record_changes grouped them
    effect = moves.effect[by_pair]
    is_request = (effect == _CREATE) | (effect == _REREQUEST)
    is_answer = (effect == _ACCEPT) | (effect == _DECLINE)
    del effect
    # An answer belongs to the latest request on its pair; a pair's first change is always
    # a request (a record is created by one), so the latest request before it is its pair's.
    small = np.int32 if len(by_pair) < 2**31 else np.int64
    latest = np.arange(len(by_pair), dtype=small)  # positions, then the latest request's
    latest[~is_request] = -1
    np.maximum.accumulate(latest, out=latest)
    owner = latest[is_answer]
    del latest, is_request
    # Only its first answer counts (a request reopened and answered again keeps the first).
    first = np.ones(len(owner), dtype=bool)
    np.not_equal(owner[1:], owner[:-1], out=first[1:])
    # Each request's first answer, both as positions in apply order.
    answer_of: NDArray[np.signedinteger[Any]] = np.full(len(by_pair), -1, dtype=small)
    answer_of[by_pair[owner[first]]] = by_pair[is_answer][first]
    del owner, first, is_answer
    # The requests in apply order, found a block at a time (no 64-bit positions).
    effect = moves.effect
    found: list[NDArray[np.signedinteger[Any]]] = []
    for start, stop in spans(len(effect)):
        block = effect[start:stop]
        found.append((np.flatnonzero((block == _CREATE) | (block == _REREQUEST)) + start).astype(small))
    request: NDArray[np.signedinteger[Any]] = np.concatenate(found) if found else np.zeros(0, dtype=small)
    del found
    return _Asked(request=request, answer=answer_of[request])


def requests(frames: RunFrames) -> pd.DataFrame:
    """Every connection request and its answer, in the order they were made.

    A request is a successful connect that created one (on a pair with no record, or
    after a rejection). Its answer is the first accept or decline that follows it on the
    pair: ``accept``, ``reject``, or a ``remove`` by its recipient, which declines it. A
    declined request that its recipient reopens with ``remove`` and answers again keeps
    its first answer here.

    Returns
    -------
    DataFrame
        ``requester``, ``recipient``, ``requester_pod``, ``recipient_pod``,
        ``request_counter`` (1 for a first request), ``requested_at``, ``answer``
        (``ACCEPTED``, ``REJECTED`` or missing), ``answer_action``, ``answered_at`` and
        ``time_to_answer`` (``NaT`` while unanswered).

    Examples
    --------
    >>> from simkit import read_run
    >>> table = requests(from_run(read_run("data/samples/story")))
    >>> table[["requester", "recipient", "request_counter", "answer", "time_to_answer"]]
       requester  recipient  request_counter    answer  time_to_answer
    0        101        201                1  REJECTED 0 days 00:06:00
    1        101        201                2  ACCEPTED 0 days 00:01:00
    2        201        101                1       NaN             NaT
    3        301        302                1  ACCEPTED 0 days 00:01:00
    4        101        301                1  ACCEPTED 0 days 00:01:00
    5        302        101                1  REJECTED 0 days 00:01:00
    6        101        302                2       NaN             NaT
    """
    return frames._derived("requests", _requests)


def _requests(frames: RunFrames) -> pd.DataFrame:
    moves = _moves(frames)
    asked = _asked(frames)
    events, outcomes = _log_of(frames)
    req, ans = asked.request, asked.answer
    answered = ans >= 0
    at = np.maximum(ans, 0)
    pod = frames.users["pod_id"].to_numpy(dtype=np.int64)
    rows = _user_rows(frames.users)
    requester, recipient = events.actor[moves.row[req]], events.target[moves.row[req]]
    answer = np.where(answered, moves.after[at].astype(np.int8) - int(Kind.ACCEPTED), -1)
    requested_at = _times(events.ts[moves.row[req]])
    answered_at = _times(np.where(answered, events.ts[moves.row[at]], 0)).where(answered)
    table = _frame(
        {
            "requester": requester,
            "recipient": recipient,
            "requester_pod": pod[rows(requester)],
            "recipient_pod": pod[rows(recipient)],
            "request_counter": outcomes.request_counter[moves.row[req]],
            "requested_at": requested_at,
            "answer": _labelled(answer, _ANSWERS),
            "answer_action": _labelled(np.where(answered, events.action[moves.row[at]], -1), _ACTION_LABELS),
            "answered_at": answered_at,
        }
    )
    table["time_to_answer"] = table["answered_at"] - table["requested_at"]
    return table


def acceptance_by_pod_pair(frames: RunFrames) -> pd.DataFrame:
    """Requests and answers between each two pods, and the acceptance rate.

    Returns
    -------
    DataFrame
        Index ``(pod_a, pod_b)`` for each unordered pod pair with a request; columns
        ``requests``, ``answered``, ``accepted``, ``rejected``, ``acceptance_rate``
        (accepted over answered; NaN with no answer) and ``crosspod`` (enabled at the
        end of the run; False where ``pod_a == pod_b``).

    Examples
    --------
    >>> from simkit import read_run
    >>> acceptance_by_pod_pair(from_run(read_run("data/samples/story")))  # doctest: +NORMALIZE_WHITESPACE
                 requests  answered  accepted  rejected  acceptance_rate  crosspod
    pod_a pod_b
    10    20            3         2         1         1              0.5     False
          30            3         2         1         1              0.5      True
    30    30            1         1         1         0              1.0     False
    """
    table = requests(frames)
    lo = np.minimum(table["requester_pod"], table["recipient_pod"])
    hi = np.maximum(table["requester_pod"], table["recipient_pod"])
    answer = table["answer"]
    counts = pd.DataFrame(
        {
            "pod_a": lo,
            "pod_b": hi,
            "requests": 1,
            "answered": answer.notna().astype(np.int64),
            "accepted": (answer == Kind.ACCEPTED.name).fillna(False).astype(np.int64),
            "rejected": (answer == Kind.REJECTED.name).fillna(False).astype(np.int64),
        }
    )
    out = counts.groupby(["pod_a", "pod_b"]).sum().astype(np.int64)
    out["acceptance_rate"] = (out["accepted"] / out["answered"].where(out["answered"] > 0)).astype(float)
    out["crosspod"] = out.index.isin(pd.MultiIndex.from_frame(crosspod_at_end(frames)))
    return out


def acceptance_rate(frames: RunFrames) -> float:
    """Accepted requests over answered requests, the whole run (NaN with no answer).

    Examples
    --------
    >>> from simkit import read_run
    >>> acceptance_rate(from_run(read_run("data/samples/story")))
    0.6
    """
    kinds = _answer_kinds(frames)
    return int((kinds == Kind.ACCEPTED).sum()) / len(kinds) if len(kinds) else float("nan")


def _answer_kinds(frames: RunFrames) -> NDArray[np.int8]:
    """The record kind each answered request was answered with, in request order."""
    moves, asked = _moves(frames), _asked(frames)
    kinds: NDArray[np.int8] = moves.after[asked.answer[asked.answer >= 0]]
    return kinds


def answer_times(frames: RunFrames, answer: str | None = "ACCEPTED") -> pd.Series:
    """How long each answered request waited for its answer, in request order.

    Parameters
    ----------
    frames : RunFrames
    answer : {"ACCEPTED", "REJECTED"} or None
        Keep the requests that got this answer (by default: accepted ones); ``None``:
        every answered request.

    Returns
    -------
    Series
        ``time_to_answer`` as ``Timedelta``, indexed like :func:`requests`.

    Examples
    --------
    >>> from simkit import read_run
    >>> answer_times(from_run(read_run("data/samples/story"))).dt.total_seconds().tolist()
    [60.0, 60.0, 60.0]
    """
    if answer is not None and answer not in (Kind.ACCEPTED.name, Kind.REJECTED.name):
        raise ValueError(f"answer must be ACCEPTED, REJECTED or None, got {answer!r}")
    table = requests(frames)
    got = table["answer"].notna() if answer is None else (table["answer"] == answer).fillna(False)
    return table.loc[got.to_numpy(dtype=bool), "time_to_answer"]


def median_time_to_accept(frames: RunFrames) -> pd.Timedelta | NaTType:
    """Median time from a request to its acceptance (``NaT`` with no accepted request).

    Examples
    --------
    >>> from simkit import read_run
    >>> median_time_to_accept(from_run(read_run("data/samples/story")))
    Timedelta('0 days 00:01:00')
    """
    waits = _sorted_waits(frames, Kind.ACCEPTED)
    if not len(waits):
        return pd.NaT
    # The middle one or two; their median in nanoseconds, as a Series of durations takes it.
    half = len(waits) // 2
    middle = [half - 1, half] if len(waits) % 2 == 0 else [half]
    return pd.Timedelta(int(np.median(waits[middle] * 1_000_000)))


def _sorted_waits(frames: RunFrames, kind: Kind) -> NDArray[np.int64]:
    """:func:`_waits` of the requests answered with `kind`, ascending (read-only): shared by
    the median time to accept and :func:`answered_within`."""
    return frames._derived(_waits_key(kind), functools.partial(_sorted_waits_of, kind=kind))


def _waits_key(kind: Kind) -> tuple[str, Kind]:
    """The key of :func:`_sorted_waits`' table among the frames' derived tables."""
    return ("sorted waits", kind)


def _sorted_waits_of(frames: RunFrames, kind: Kind) -> NDArray[np.int64]:
    waits = _waits(frames, kind)
    waits.sort()
    waits.flags.writeable = False
    return waits


def _waits(frames: RunFrames, kind: Kind | None = None) -> NDArray[np.int64]:
    """Milliseconds from each request to its answer, for the requests answered with `kind`
    (any answer if None), in request order; made a block of requests at a time."""
    moves, asked = _moves(frames), _asked(frames)
    ts, row = moves.log.ts, moves.row
    chosen = asked.answer >= 0
    for start, stop in spans(len(chosen)):
        if kind is not None:
            block = chosen[start:stop]
            block[block] = moves.after[asked.answer[start:stop][block]] == kind
    waits = np.empty(int(np.count_nonzero(chosen)), dtype=np.int64)
    filled = 0
    for start, stop in spans(len(chosen)):
        block = chosen[start:stop]
        answer, request = asked.answer[start:stop][block], asked.request[start:stop][block]
        out = waits[filled : filled + len(answer)]
        np.subtract(ts[row[answer]], ts[row[request]], out=out)
        filled += len(answer)
    return waits


def answered_within(frames: RunFrames, points: int = 500) -> pd.DataFrame:
    """Share of all requests answered within each time, accepted and rejected apart.

    Unlike the distribution of :func:`answer_times`, the shares are of *every* request,
    answered or not: they rise to the share answered by the end of the run, and the rest,
    one minus the last row's sum, was never answered.

    Parameters
    ----------
    frames : RunFrames
    points : int
        At most this many rows: one per distinct wait when there are no more, else waits
        spread evenly on a log scale from the shortest to the longest (always included,
        so the last row is exact).

    Returns
    -------
    DataFrame
        Index ``time_to_answer`` (Timedelta, ascending); columns ``ACCEPTED`` and
        ``REJECTED``: the share of all requests that got that answer within that time
        (float). ``.attrs["requests"]`` is the number of requests.

    Examples
    --------
    >>> from simkit import read_run
    >>> shares = answered_within(from_run(read_run("data/samples/story")))
    >>> shares.round(3)  # doctest: +NORMALIZE_WHITESPACE
                    ACCEPTED  REJECTED
    time_to_answer
    0 days 00:01:00     0.429     0.143
    0 days 00:06:00     0.429     0.286
    >>> shares.attrs["requests"], round(1 - float(shares.iloc[-1].sum()), 3)  # 2 of 7 never answered
    (7, 0.286)
    """
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    got = {kind: _sorted_waits(frames, kind) for kind in (Kind.ACCEPTED, Kind.REJECTED)}
    # The distinct waits of both, only where they are few (the union of two short lists);
    # else their range is all the grid needs.
    few = [_distinct_sorted(w) for w in got.values() if _count_distinct(w) <= points]
    distinct = np.union1d(*few) if len(few) == len(got) else None
    if distinct is not None and len(distinct) <= points:
        grid = distinct
    else:
        # Waits run from seconds to months; a log scale gives each decade its share of rows.
        longest = max(int(w[-1]) for w in got.values() if len(w))
        shortest = max(min(int(w[0]) for w in got.values() if len(w)), 1)
        grid = _distinct(np.geomspace(shortest, longest, points).round().astype(np.int64))
        grid[-1] = longest
    shares = {}
    n = len(_asked(frames).request)
    for kind, waits in got.items():
        shares[kind.name] = np.searchsorted(waits, grid, side="right") / n if n else grid * 0.0
    out = pd.DataFrame(
        shares, index=pd.TimedeltaIndex(pd.to_timedelta(grid, unit="ms"), name="time_to_answer")
    )
    out.attrs["requests"] = n
    return out


# -- answers --------------------------------------------------------------------------------


def error_counts(frames: RunFrames, freq: str | pd.Timedelta | None = None) -> pd.DataFrame:
    """Refused answers (4xx) per reason in regular time bins.

    Parameters
    ----------
    frames : RunFrames
    freq : str or Timedelta, optional
        Bin width. By default :func:`bin_width` (fewer than 60 bins), but never less than
        a day for a run of two days or more: people refuse in office hours, so shorter
        bins would show the time of day rather than a change.

    Returns
    -------
    DataFrame
        Index ``time`` (bin start, UTC), every bin from the first event's to the last's,
        counted from midnight of the first event's day; one int64 column per reason that
        occurs, in the order of :data:`simkit.rules.REASONS`. The bin width is in
        ``.attrs["freq"]``; ``.attrs["partial"]`` maps the start of each bin that reaches
        past the days of the run (from midnight of the first event's day to the midnight
        after the last) to the share of the bin inside them, so that a half-empty last week
        is not read as a drop.

    Examples
    --------
    >>> from simkit import read_run
    >>> errors = error_counts(from_run(read_run("data/samples/story")), freq="10min")
    >>> errors[["already_pending", "crosspod_disabled", "self"]]  # doctest: +NORMALIZE_WHITESPACE
                         already_pending  crosspod_disabled  self
    time
    2023-11-14 22:10:00                2                  0     0
    2023-11-14 22:20:00                0                  0     0
    2023-11-14 22:30:00                0                  0     1
    2023-11-14 22:40:00                0                  3     1
    2023-11-14 22:50:00                0                  1     0
    >>> errors.attrs["freq"], errors.attrs["partial"]
    (Timedelta('0 days 00:10:00'), {})
    """
    edges, width = _bins(frames, freq if freq is not None else _error_bin_width(frames))
    events, outcomes = _log_of(frames)
    refused = (outcomes.code != 200) & (outcomes.reason >= 0)
    reasons = len(_REASON_LABELS)
    if len(edges):
        step = int(width / pd.Timedelta(milliseconds=1))
        origin = int(edges[0].value // 1_000_000)
        # The bin of each refusal, counted from the first bin's start: every bin is in edges.
        at = (events.ts[refused] - origin) // step
        cells = np.bincount(at * reasons + outcomes.reason[refused], minlength=len(edges) * reasons)
        counts = cells[: len(edges) * reasons].reshape(len(edges), reasons)
    else:
        counts = np.zeros((0, reasons), dtype=np.int64)
    present = [i for i in range(reasons) if counts[:, i].any()]
    out = pd.DataFrame(
        counts[:, present].astype(np.int64),
        index=edges,
        columns=pd.Index([_REASON_LABELS[i] for i in present]),
    )
    out.index.name = "time"
    out.attrs["freq"] = width
    out.attrs["partial"] = _partial_bins(frames, edges, width)
    return out


def _error_bin_width(frames: RunFrames) -> pd.Timedelta:
    """The default bin of :func:`error_counts`: :func:`bin_width`, at least a day from two days on."""
    width = bin_width(frames)
    ts = frames.events["ts"]
    day = pd.Timedelta(days=1)
    if len(ts) and pd.Timedelta(milliseconds=int(ts.max() - ts.min())) >= 2 * day:
        return max(width, day)
    return width


def summary(frames: RunFrames) -> pd.Series:
    """The headline numbers of a run, in a fixed order.

    Returns
    -------
    Series
        ``events``; ``answers 200`` ... ``answers 404`` (every code in :data:`CODES`);
        ``records PENDING``, ``records ACCEPTED``, ``records REJECTED``; ``implicit
        pairs``; ``acceptance rate``; ``median time to accept``; ``re-request rate``;
        ``users connected across pods`` (a share). Object dtype, so counts stay integers.

    Examples
    --------
    >>> from simkit import read_run
    >>> summary(from_run(read_run("data/samples/story")))
    events                                      46
    answers 200                                 20
    answers 400                                 15
    answers 401                                  2
    answers 403                                  5
    answers 404                                  4
    records PENDING                              2
    records ACCEPTED                             2
    records REJECTED                             0
    implicit pairs                               4
    acceptance rate                            0.6
    median time to accept          0 days 00:01:00
    re-request rate                           0.25
    users connected across pods           0.285714
    dtype: object
    """
    codes = bincount(frames.events["code"].to_numpy())
    counts = status_counts(frames).iloc[0]
    values: dict[str, Any] = {"events": len(frames.events)}
    values.update({f"answers {c}": int(codes[c]) if c < len(codes) else 0 for c in CODES})
    values.update({f"records {s}": int(counts[s]) for s in STATUS_COLUMNS})
    values["implicit pairs"] = int(counts["implicit"])
    values["acceptance rate"] = acceptance_rate(frames)
    values["median time to accept"] = median_time_to_accept(frames)
    values["re-request rate"] = rerequest_rate(frames)
    values["users connected across pods"] = cross_pod_share(frames)
    return pd.Series(values, dtype=object)


# -- for reading ----------------------------------------------------------------------------

# Labels under which simkit's own tables hold shares (0 to 1): readable shows them as percentages.
_SHARES = frozenset(
    {"acceptance rate", "re-request rate", "users connected across pods", "acceptance_rate", "share"}
)
# Input columns holding milliseconds since the epoch.
_MS_TIMES = frozenset({"ts", "first_requested_at", "updated_at"})
# Index levels and column axes that hold pod ids.
_POD_LEVELS = frozenset({"pod_id", "pod", "pod_a", "pod_b"})
_DURATION_UNITS = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))


def _duration_text(value: pd.Timedelta) -> str:
    """A duration in its two largest units, rounded: ``4 h 9 min``, ``13 min``, ``73 d``."""
    seconds = round(value.total_seconds())
    for i, (big, size) in enumerate(_DURATION_UNITS[:-1]):
        small, step = _DURATION_UNITS[i + 1]
        if seconds >= size:
            steps = round(seconds / step)
            whole, rest = divmod(steps, size // step)
            return f"{whole} {big}" + (f" {rest} {small}" if rest else "")
    return f"{seconds} s"


def _missing(value: Any) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value))


def _number_text(value: float, share: bool) -> str:
    if share:
        # A share too small to show at one decimal is still not none.
        return "< 0.1 %" if 0 < value < 0.0005 else f"{100 * value:.1f} %"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _value_text(value: Any, share: bool, time: bool = False) -> str:
    """One value of a mixed series (a summary, graph metrics, an edge's data) as text."""
    if _missing(value):
        return "n/a"
    if time and isinstance(value, int | np.integer) and not isinstance(value, bool):
        return str(pd.Timestamp(int(value), unit="ms").floor("s"))
    if isinstance(value, pd.Timedelta):
        return _duration_text(value)
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return _number_text(float(value), share)
    return str(value)


def _readable_column(column: pd.Series, share: bool) -> pd.Series:
    if column.name in _MS_TIMES and pd.api.types.is_integer_dtype(column.dtype):
        return pd.Series(pd.to_datetime(column, unit="ms").dt.floor("s"))
    if pd.api.types.is_datetime64_dtype(column.dtype):
        return pd.Series(column.dt.floor("s"))
    if pd.api.types.is_timedelta64_dtype(column.dtype):
        return column.map(lambda v: "n/a" if _missing(v) else _duration_text(v)).astype(object)
    if pd.api.types.is_float_dtype(column.dtype):
        return column.map(lambda v: "n/a" if _missing(v) else _number_text(v, share)).astype(object)
    return column


def readable(
    table: pd.DataFrame | pd.Series, *, percent: bool | tuple[str, ...] = ()
) -> pd.DataFrame | pd.Series:
    """A copy of a table for reading, not for computing: times, durations and shares in words.

    - Milliseconds since the epoch (the columns, or rows, ``ts``, ``first_requested_at``,
      ``updated_at``) become datetimes (UTC), and every datetime is cut to the second.
    - Durations become rounded text in their two largest units (``4 h 9 min``).
    - Shares become percentages (``78.1 %``): the columns or rows simkit's tables name
      ``acceptance rate``, ``re-request rate``, ``users connected across pods``,
      ``acceptance_rate`` and ``share``, those named in `percent`, or every float if
      `percent` is True. Other floats keep three significant digits.
    - In a series of mixed values (:func:`summary`, :func:`simkit.graph.metrics`), counts
      get thousands separators and missing values read ``n/a``.

    Examples
    --------
    >>> from simkit import read_run
    >>> frames = from_run(read_run("data/samples/story"))
    >>> readable(summary(frames)).tail(4)
    acceptance rate                   60.0 %
    median time to accept              1 min
    re-request rate                   25.0 %
    users connected across pods       28.6 %
    dtype: object
    >>> readable(frames.connections)[["user_a", "user_b", "status", "updated_at"]].head(2)
       user_a  user_b    status          updated_at
    0     101     201   PENDING 2023-11-14 22:33:20
    1     101     301  ACCEPTED 2023-11-14 22:48:20
    """
    every = percent is True
    shares = _SHARES if isinstance(percent, bool) else _SHARES | set(percent)
    if isinstance(table, pd.Series):
        if table.dtype == object:
            return pd.Series(
                [_value_text(v, every or k in shares, k in _MS_TIMES) for k, v in table.items()],
                index=table.index,
                name=table.name,
                dtype=object,
            )
        return _readable_column(table, every or table.name in shares)
    out = table.copy()
    for name in out.columns:
        out[name] = _readable_column(out[name], every or name in shares)
    return out


def _pod_labels(frames: RunFrames) -> dict[int, str]:
    """Each pod's name, with its id added where two pods share a name."""
    ids = frames.pods["pod_id"].to_numpy(dtype=np.int64).tolist()
    names = [str(n) for n in frames.pods["name"].tolist()]
    twice = pd.Series(names).duplicated(keep=False).tolist()
    return {p: f"{n} ({p})" if dup else n for p, n, dup in zip(ids, names, twice, strict=True)}


def _named(index: pd.Index, labels: dict[int, str]) -> pd.Index:
    if isinstance(index, pd.MultiIndex):
        levels = [
            [labels.get(p, p) for p in level] if name in _POD_LEVELS else list(level)
            for level, name in zip(index.levels, index.names, strict=True)
        ]
        return index.set_levels(levels)
    if index.name in _POD_LEVELS:
        named: pd.Index = pd.Index([labels.get(p, p) for p in index], name="pod")
        return named
    return index


def with_pod_names(table: pd.DataFrame, frames: RunFrames) -> pd.DataFrame:
    """A copy of a table with each pod id in it replaced by the pod's name, for reading.

    Index levels named ``pod_id``, ``pod``, ``pod_a`` or ``pod_b`` are renamed, and so are
    the columns of a pod × pod frame (:func:`pod_matrix`, :func:`crosspod_matrix`); a single
    pod level is then called ``pod``. Columns so named, or ending in ``_pod``
    (``actor_pod``, ``requester_pod``...), hold names instead of ids. Two pods with the same
    name keep their ids beside it; labels that are not pod ids (``other``) stay as they are.

    Examples
    --------
    >>> from simkit import read_run
    >>> frames = from_run(read_run("data/samples/story"))
    >>> with_pod_names(status_counts(frames, by="pod"), frames)  # doctest: +NORMALIZE_WHITESPACE
            PENDING  ACCEPTED  REJECTED  implicit
    pod
    pod-10        2         1         0         1
    pod-20        1         0         0         3
    pod-30        1         2         0         0
    """
    labels = _pod_labels(frames)
    out = table.copy()
    out.index = _named(out.index, labels)
    for name in out.columns:
        if isinstance(name, str) and (name in _POD_LEVELS or name.endswith("_pod")):
            out[name] = out[name].map(lambda p: labels.get(p, p)).astype(object)
    if out.columns.name in _POD_LEVELS:
        out.columns = _named(out.columns, labels)
    return out
