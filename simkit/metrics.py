"""`metrics`: the headline numbers of a run, from the replay's arrays.

One function, :func:`metrics`, computes every headline number of a run (answers by code
and by reason, records by status, implicit pairs, requests, acceptance rate, median time
to accept, re-request rate, users connected across pods, and, for a run with its
:class:`~simkit.events.Demand`, the wishes and the unmet demand) straight from the
population, the log, the :class:`~simkit.results.Replay` and the demand, with numpy alone:
no frame is built and no file is written, so a sweep can afford it on every run. It is the
one home of these numbers; :func:`simkit.analysis.summary` gives the same values as a
pandas table (tested).

A request is a successful connect that created one (a first request, or a new one after a
rejection); its answer is the first accept or decline that follows it on the pair, as in
:func:`simkit.analysis.requests`. :func:`request_rows` names those events, for whoever
counts them by time or place. Pairing them needs the events grouped by pair: a replay asked
for its pair groups (``replay(..., groups=True)``, as a sweep asks) hands over the columnar
engine's own grouping, else they are grouped here (:func:`simkit.results.group_pairs`); the
numbers are the same either way (tested).

The unmet demand is the wishes never sent (fate ``blocked`` or ``dropped``): people who
wanted to connect and could not, because crossPod or an entitlement stood in the way.

This module imports numpy and the core only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from simkit.events import Demand, Events, Fate, apply_order
from simkit.population import Population, id_rows
from simkit.results import Replay, group_pairs
from simkit.rules import ACTIONS, CHECKS, REASONS, STATUSES, TABLE, Action, Kind, View

__all__ = ["CODES", "DEMAND", "METRICS", "SHARES", "Metric", "UserMetric", "metrics", "request_rows"]

Metric: TypeAlias = int | float
"""A metric's value: a count, or a share / duration (NaN where it is undefined)."""

UserMetric: TypeAlias = Callable[[Population, Events, Replay], Metric]
"""A metric of one's own: a function of the population, the log and its replay."""

CODES: tuple[int, ...] = tuple(
    sorted({200} | {c.code for c in CHECKS} | {cell.code for cell in TABLE.values()})
)
"""Every HTTP code an action can be answered with (200, 400, 401, 403, 404)."""

_STATUSES = (Kind.PENDING, Kind.ACCEPTED, Kind.REJECTED)

DEMAND: tuple[str, ...] = (
    "wishes",
    "deferred",
    "unmet_demand",
    "deferred_share",
    "unmet_demand_share",
    "median_deferral_s",
)
"""The metrics of a run's demand, NaN for a run without one (a log read from elsewhere):
its wishes; those sent only later, once the pair became reachable (``deferred``); those
never sent (``unmet_demand``: fate ``blocked`` or ``dropped``); both as shares of the
wishes; and the median wait of a deferred wish, from the wish to its request, in seconds."""

METRICS: tuple[str, ...] = (
    "events",
    *(f"answers_{code}" for code in CODES),
    *(f"reason_{reason.value}" for reason in REASONS),
    *(f"records_{kind.name.lower()}" for kind in _STATUSES),
    "implicit_pairs",
    "requests",
    "acceptance_rate",
    "median_time_to_accept_s",
    "rerequest_rate",
    "cross_pod_share",
    *DEMAND,
)
"""The names :func:`metrics` returns, in its order."""

SHARES: frozenset[str] = frozenset(
    {"acceptance_rate", "rerequest_rate", "cross_pod_share", "deferred_share", "unmet_demand_share"}
)
"""The metrics that are shares (0 to 1); the others are counts, or seconds."""


def metrics(
    population: Population,
    events: Events,
    result: Replay,
    extra: Mapping[str, UserMetric] | None = None,
    *,
    demand: Demand | None = None,
) -> dict[str, Metric]:
    """The headline numbers of a replayed run, named as in :data:`METRICS`.

    Parameters
    ----------
    population, events : Population, Events
        The run's inputs (the crossPod policy does not enter any metric).
    result : Replay
        What replaying `events` over `population` gave.
    extra : mapping of name to callable, optional
        Metrics of one's own, each called as ``f(population, events, result)``; added after
        the built-in ones under their names, which must not clash with :data:`METRICS`.
    demand : Demand, optional
        The wishes behind a synthetic log (:func:`simkit.generate.draw`, or
        ``demand.parquet`` of a run folder). Without it the metrics of :data:`DEMAND` are
        NaN: a log read from elsewhere says nothing of the wishes it did not carry.

    Returns
    -------
    dict
        Counts as ``int``; ``acceptance_rate`` (accepted over answered requests),
        ``rerequest_rate`` (records asked more than once over records), ``cross_pod_share``
        (users with an accepted record across pods over users) and
        ``median_time_to_accept_s`` (seconds) as ``float``, NaN where nothing is counted.
        With `demand`: ``wishes``, ``deferred`` and ``unmet_demand`` as ``int``, their
        shares of the wishes and ``median_deferral_s`` as ``float``; all NaN without it.

    Examples
    --------
    >>> from simkit import read_run, replay
    >>> run = read_run("data/samples/story")
    >>> values = metrics(run.population, run.events, replay(run.population, run.events, run.policy))
    >>> values["answers_200"], values["records_accepted"], values["acceptance_rate"]
    (20, 2, 0.6)
    >>> values["median_time_to_accept_s"], values["rerequest_rate"], round(values["cross_pod_share"], 4)
    (60.0, 0.25, 0.2857)
    >>> values["unmet_demand"]  # this run has no demand table
    nan

    A synthetic run's demand gives the wishes and what became of them:

    >>> from simkit.events import Demand
    >>> wishes = Demand.from_records(
    ...     [(0, 101, 201, "sent", 0), (5, 101, 301, "deferred", 65_005), (7, 102, 301, "blocked", None),
    ...      (9, 202, 301, "dropped", None)]
    ... )
    >>> values = metrics(run.population, run.events, replay(run.population, run.events, run.policy), demand=wishes)
    >>> values["wishes"], values["deferred"], values["unmet_demand"], values["unmet_demand_share"]
    (4, 1, 2, 0.5)
    >>> values["median_deferral_s"]
    65.0
    """
    out, conn = result.outcomes, result.connections
    if len(out) != len(events):
        raise ValueError(f"{len(out)} outcomes for {len(events)} events; replay the run again")
    values: dict[str, Metric] = {"events": len(events)}
    codes = np.asarray(out.code, dtype=np.int64)
    values.update({f"answers_{code}": int(np.count_nonzero(codes == code)) for code in CODES})
    by_reason = np.bincount(out.reason[out.reason >= 0].astype(np.intp), minlength=len(REASONS))
    values.update({f"reason_{reason.value}": int(by_reason[i]) for i, reason in enumerate(REASONS)})
    by_status = np.bincount(conn.status.astype(np.intp), minlength=len(Kind))
    values.update({f"records_{kind.name.lower()}": int(by_status[kind]) for kind in _STATUSES})
    values["implicit_pairs"] = _implicit_pairs(population)
    requested, accepted, waits = _requests(population, events, result)
    values["requests"] = requested
    answered = int(accepted.size)
    values["acceptance_rate"] = float(np.count_nonzero(accepted)) / answered if answered else float("nan")
    values["median_time_to_accept_s"] = float(np.median(waits)) / 1000 if waits.size else float("nan")
    counter = conn.request_counter
    values["rerequest_rate"] = (
        float(np.count_nonzero(counter > 1)) / len(counter) if len(counter) else float("nan")
    )
    values["cross_pod_share"] = _cross_pod_share(population, result)
    values.update(_demand(demand))
    for name, function in (extra or {}).items():
        if name in values:
            raise ValueError(f"metrics: {name!r} is a built-in metric; name yours otherwise")
        values[name] = function(population, events, result)
    return values


def _demand(demand: Demand | None) -> dict[str, Metric]:
    """The metrics of :data:`DEMAND`, NaN without a demand."""
    if demand is None:
        return dict.fromkeys(DEMAND, float("nan"))
    fates = np.bincount(demand.fate.astype(np.intp), minlength=len(Fate))
    wishes = len(demand)
    deferred = int(fates[Fate.DEFERRED])
    unmet = int(fates[Fate.BLOCKED] + fates[Fate.DROPPED])
    later = demand.fate == Fate.DEFERRED
    waits = demand.sent_ts[later] - demand.ts[later]
    return {
        "wishes": wishes,
        "deferred": deferred,
        "unmet_demand": unmet,
        "deferred_share": deferred / wishes if wishes else float("nan"),
        "unmet_demand_share": unmet / wishes if wishes else float("nan"),
        "median_deferral_s": float(np.median(waits)) / 1000 if waits.size else float("nan"),
    }


def _implicit_pairs(population: Population) -> int:
    """Pairs of users of the same private pod: n(n-1)/2 per private pod."""
    order = np.argsort(population.pod_id, kind="stable")
    at = np.searchsorted(population.pod_id[order], population.user_pod)
    sizes = np.bincount(at, minlength=len(order))[: len(order)].astype(np.int64)
    private = population.pod_private[order]
    return int((sizes[private] * (sizes[private] - 1) // 2).sum())


def _kind_of_status() -> NDArray[np.int8]:
    """The kind of record behind each status a caller can be shown, by position in STATUSES."""
    kind = np.zeros(len(STATUSES), np.int8)
    for view in View:
        kind[STATUSES.index(view.status)] = view.kind
    return kind


_KIND_OF_STATUS = _kind_of_status()
_CONNECT = np.int8(ACTIONS.index(Action.CONNECT))


def request_rows(
    population: Population, events: Events, result: Replay
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The events that made a request, and those that accepted one, as rows of `events`.

    A request and its answer as :func:`metrics` counts them: a successful connect that made
    a request, and the first answer to it where that answer accepted it. Both in row order.

    Examples
    --------
    >>> from simkit import read_run, replay
    >>> run = read_run("data/samples/story")
    >>> made, accepted = request_rows(run.population, run.events, replay(run.population, run.events, run.policy))
    >>> made.tolist(), accepted.tolist()
    ([0, 12, 20, 30, 34, 40, 42], [13, 31, 35])
    >>> [(int(run.events.actor[i]), int(run.events.target[i])) for i in accepted]
    [(201, 101), (302, 301), (301, 101)]
    """
    rows, is_request, answers, _, accepted = _answered(population, events, result)
    made = np.sort(rows[np.flatnonzero(is_request)]).astype(np.int64, copy=False)
    took = np.sort(rows[answers[accepted]]).astype(np.int64, copy=False)
    return made, took


def _requests(
    population: Population, events: Events, result: Replay
) -> tuple[int, NDArray[np.bool_], NDArray[np.int64]]:
    """How many requests were made; for each answered one, whether it was accepted; and the
    wait in milliseconds of each accepted one."""
    rows, is_request, answers, owner, accepted = _answered(population, events, result)
    ts = events.ts
    waits = ts[rows[answers[accepted]]] - ts[rows[owner[accepted]]]
    return int(np.count_nonzero(is_request)), accepted, waits.astype(np.int64)


def _answered(population: Population, events: Events, result: Replay) -> tuple[NDArray[Any], ...]:
    """The requests and their first answers, on the 200 answers grouped by pair.

    Returns the rows of `events` taken (the 200 answers with a status), grouped by pair and
    in apply order within a pair; whether each made a request; the positions (in those
    rows) of the first answers, and of the requests they answer; and whether each such
    answer accepted.

    Only a 200 answer changes a record, and every answer with a status shows the kind of
    the pair's record after the event (none where ``request_counter`` is 0), as
    :func:`simkit.results.record_changes` reads it. So the 200 answers of a pair, in apply
    order, give the kind of its record before and after each change: a request makes it
    PENDING on a connect; an answer moves a PENDING record to ACCEPTED or REJECTED.

    The grouping is the engine's when the replay carries it (``groups=True``), else made
    here by sorting pair keys.
    """
    out = result.outcomes
    keep = (out.code == 200) & (out.status >= 0)
    groups = result.groups
    if groups is not None:
        # The engine's grouping, kept to the 200 answers with a status; a pair begins where
        # the engine's pair number changes.
        taken = keep[groups.rows]
        pair = np.zeros(len(groups.rows), np.int32 if len(groups.starts) < 2**31 else np.int64)
        pair[groups.starts[1:]] = 1
        np.cumsum(pair, out=pair)
        rows, pair = groups.rows[taken], pair[taken]
        starts = np.ones(len(rows), dtype=bool)
        np.not_equal(pair[1:], pair[:-1], out=starts[1:])
    else:
        ts = events.ts
        if len(ts) and bool(np.all(ts[1:] >= ts[:-1])):
            rows = np.flatnonzero(keep)  # already in apply order, as generated logs are
        else:
            order = apply_order(ts)
            rows = order[keep[order]]
        ids = population.user_id
        if len(ids) and (int(ids.max()) - int(ids.min())).bit_length() > 31:
            # Ids too far apart to key a pair by (as recorded ones may be): key by rows.
            rows_of = id_rows(population.user_id)
            by_pair, starts = group_pairs(rows_of(events.actor[rows]), rows_of(events.target[rows]))
        else:
            by_pair, starts = group_pairs(events.actor, events.target, rows)
        rows = rows[by_pair]
    status = out.status[rows]
    after = np.where(out.request_counter[rows] > 0, _KIND_OF_STATUS[status], np.int8(Kind.NONE))
    connect = events.action[rows] == _CONNECT
    n = len(after)
    before = np.empty(n, np.int8)
    before[1:] = after[:-1]
    before[starts] = Kind.NONE
    was_pending = before == Kind.PENDING
    is_request = (after == Kind.PENDING) & ~was_pending & connect
    is_answer = was_pending & (after != Kind.PENDING) & (after != Kind.NONE)
    # An answer belongs to the latest request before it, which is on its pair: a record is
    # pending only after a request on the pair (or a reopen, which follows one).
    position = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    latest = np.maximum.accumulate(np.where(is_request, position, -1))
    answers = np.flatnonzero(is_answer)
    owner = latest[answers]
    # Only its first answer counts (a request reopened and answered again keeps the first);
    # owners only grow along the pairs, so a request's answers sit side by side.
    first = np.ones(len(answers), dtype=bool)
    np.not_equal(owner[1:], owner[:-1], out=first[1:])
    answers, owner = answers[first], owner[first]
    accepted = after[answers] == Kind.ACCEPTED
    return rows, is_request, answers, owner, accepted


def _cross_pod_share(population: Population, result: Replay) -> float:
    """Users with an accepted record with a user of another pod, over all users."""
    n_users = len(population.user_id)
    if not n_users:
        return float("nan")
    conn = result.connections
    accepted = conn.status == Kind.ACCEPTED
    # A stored record is always between two known users.
    rows_of = id_rows(population.user_id)
    row_a, row_b = rows_of(conn.user_a[accepted]), rows_of(conn.user_b[accepted])
    pod = population.user_pod
    across = pod[row_a] != pod[row_b]
    connected = np.zeros(n_users, dtype=bool)
    connected[row_a[across]] = True
    connected[row_b[across]] = True
    return int(np.count_nonzero(connected)) / n_users
