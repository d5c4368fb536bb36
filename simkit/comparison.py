"""`comparison`: two replayed runs of one population side by side, and their difference.

With a population that stays put and common random numbers, two runs of the same seed
with and without a policy change differ only where the change reaches. :func:`compare`
shows that difference plainly: the headline numbers of :func:`simkit.metrics.metrics` of
both runs and their difference; per pod pair (by name) the accepted connections, the
connect requests sent, the refused answers by reason and, where both runs hold their
demand (``demand.parquet``), the unmet demand, in each run and the difference, ranked by
its size; which pod pairs saw exactly the same events and answers in both runs (the change
did not reach them) and which did not; and per crossPod stage (the spans between the
policy changes of either run) the requests, acceptances, ``crosspod_disabled`` refusals
and unmet demand per day. :func:`compare_replications` does the same for runs replicated
over seeds, paired by seed, with a 95 % Student-t interval on each difference
(:func:`simkit.sweeps.interval`). :func:`write_comparison` writes it all into a folder
(``compare.md``, the tables as CSV, the charts as PNG).

A run is read as everywhere else: its files are checked against its manifest first
(:func:`simkit.io.runs.verify_run`), and a folder without outputs is refused. Runs whose
populations differ are refused unless asked otherwise; the pod-pair table is then limited
to pods present in both and says so.

Differences are always B - A.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from simkit.errors import RunDirError
from simkit.events import Demand, Policy
from simkit.io.commit import write_files
from simkit.io.runs import Run, read_demand, read_outputs, read_run, verify_run
from simkit.metrics import DEMAND, METRICS, metrics, request_rows
from simkit.population import Population
from simkit.results import Connections, Outcomes, Replay
from simkit.rules import ACTIONS, REASONS, STATUSES, Action, Kind, Reason

__all__ = [
    "STAGE_METRICS",
    "Comparison",
    "ReplicatedComparison",
    "compare",
    "compare_points",
    "compare_replications",
    "replication_lines",
    "same_population",
    "summary_lines",
    "write_comparison",
    "write_replications",
]

_CONNECT = ACTIONS.index(Action.CONNECT)
_PAIR_COLUMNS = ("accepted", "requests_sent", *(f"refused_{r.value}" for r in REASONS))
_CROSSPOD_DISABLED = REASONS.index(Reason.CROSSPOD_DISABLED)
_DAY_MS = 86_400_000

STAGE_METRICS: tuple[str, ...] = (
    "requests_per_day",
    "accepted_per_day",
    "refused_crosspod_disabled_per_day",
    "unmet_demand_per_day",
)
"""What :attr:`Comparison.stages` counts per day of each crossPod stage: requests made (as
:func:`simkit.metrics.metrics` counts ``requests``), requests accepted (on the day of the
accept), 403 ``crosspod_disabled`` answers, and wishes made in the stage and never sent
(only where both runs hold their demand)."""


@dataclass(frozen=True)
class _Loaded:
    run: Run
    result: Replay
    demand: Demand | None = None


def _load(folder: str | os.PathLike[str]) -> _Loaded:
    """A run folder's inputs and outputs, checked against its manifest."""
    run = read_run(folder)
    if verify_run(folder) is None:
        raise RunDirError(f"{folder}: no outputs to compare; run `simkit replay {folder}` first")
    outcomes, connections = read_outputs(folder, len(run.events))
    o = outcomes.to_pandas()
    c = connections.to_pandas()
    reasons = pd.Index([r.value for r in REASONS])
    statuses = pd.Index([s.value for s in STATUSES])
    result = Replay(
        Outcomes(
            code=o["code"].to_numpy(np.int16),
            reason=reasons.get_indexer(pd.Index(o["reason"])).astype(np.int8),
            status=statuses.get_indexer(pd.Index(o["status"])).astype(np.int8),
            request_counter=o["request_counter"].to_numpy(np.int32),
        ),
        Connections(
            user_a=c["user_a"].to_numpy(np.int64),
            user_b=c["user_b"].to_numpy(np.int64),
            requester=c["requester"].to_numpy(np.int64),
            status=c["status"].map({k.name: int(k) for k in Kind}).to_numpy(np.int8),
            request_counter=c["request_counter"].to_numpy(np.int32),
            first_requested_at=c["first_requested_at"].to_numpy(np.int64),
            updated_at=c["updated_at"].to_numpy(np.int64),
        ),
    )
    return _Loaded(run, result, read_demand(folder, run.population))


def same_population(a: Population, b: Population) -> bool:
    """Whether two populations hold the same pods, users and initial crossPod pairs."""
    return (
        a.pod_name == b.pod_name
        and all(
            np.array_equal(getattr(a, f), getattr(b, f))
            for f in ("pod_id", "pod_private", "user_id", "user_pod", "user_external")
        )
        and np.array_equal(
            np.sort(np.sort(a.crosspod, axis=1), axis=0), np.sort(np.sort(b.crosspod, axis=1), axis=0)
        )
    )


def _pod_names(pop: Population) -> dict[int, str]:
    return dict(zip(pop.pod_id.tolist(), pop.pod_name, strict=True))


UNKNOWN = "(unknown user)"
"""The pod name given to a user the population does not hold."""


def _pod_pairs(pop: Population, x: Any, y: Any) -> tuple[Any, Any]:
    """The unordered pod pair (names, the smaller first) of each pair of users."""
    names = _pod_names(pop)
    row_of = pd.Index(pop.user_id)

    def pod_names(users: Any) -> Any:
        at = row_of.get_indexer(pd.Index(np.asarray(users)))
        labels = np.array([names[p] for p in pop.user_pod.tolist()] + [UNKNOWN], dtype=object)
        return labels[np.where(at >= 0, at, len(labels) - 1)]

    a, b = pod_names(x), pod_names(y)
    first = a <= b
    return np.where(first, a, b), np.where(first, b, a)


def _event_frame(loaded: _Loaded) -> pd.DataFrame:
    """One row per event: its unordered pod pair (names), what it was and its answer."""
    pop, ev, out = loaded.run.population, loaded.run.events, loaded.result.outcomes
    low, high = _pod_pairs(pop, ev.actor, ev.target)
    return pd.DataFrame(
        {
            "pod_a": low,
            "pod_b": high,
            "ts": ev.ts,
            "actor": ev.actor,
            "target": ev.target,
            "action": ev.action,
            "code": out.code,
            "reason": out.reason,
            "status": out.status,
        }
    )


def _pair_counts(loaded: _Loaded, events: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Per unordered pod pair: accepted records, connect requests sent, refusals by reason,
    and the unmet demand if `columns` names it."""
    pop, conn = loaded.run.population, loaded.result.connections
    accepted = conn.status == Kind.ACCEPTED
    low, high = _pod_pairs(pop, conn.user_a[accepted], conn.user_b[accepted])
    rec = pd.DataFrame({"pod_a": low, "pod_b": high})
    parts = [rec.groupby(["pod_a", "pod_b"]).size().rename("accepted")]
    connects = events[events["action"] == _CONNECT]
    parts.append(connects.groupby(["pod_a", "pod_b"]).size().rename("requests_sent"))
    refused = events[events["reason"] >= 0]
    for i, reason in enumerate(REASONS):
        rows = refused[refused["reason"] == i]
        parts.append(rows.groupby(["pod_a", "pod_b"]).size().rename(f"refused_{reason.value}"))
    if "unmet_demand" in columns and loaded.demand is not None:
        unmet = ~loaded.demand.was_sent
        low, high = _pod_pairs(pop, loaded.demand.user[unmet], loaded.demand.target[unmet])
        wishes = pd.DataFrame({"pod_a": low, "pod_b": high})
        parts.append(wishes.groupby(["pod_a", "pod_b"]).size().rename("unmet_demand"))
    table = pd.concat(parts, axis=1).fillna(0).astype(np.int64)
    return table.reindex(columns=list(columns), fill_value=0)


def _fingerprints(events: pd.DataFrame) -> pd.DataFrame:
    """Per pod pair: its number of events and one 64-bit digest of them, in order."""
    frame = events.copy()
    frame["position"] = frame.groupby(["pod_a", "pod_b"]).cumcount()
    cols = ["ts", "actor", "target", "action", "code", "reason", "status", "position"]
    frame["digest"] = pd.util.hash_pandas_object(frame[cols], index=False).to_numpy(np.uint64)
    grouped = frame.groupby(["pod_a", "pod_b"])
    digest = grouped["digest"].agg(lambda d: int(np.bitwise_xor.reduce(d.to_numpy(np.uint64))))
    return pd.DataFrame({"events": grouped.size(), "digest": digest})


@dataclass(frozen=True)
class Comparison:
    """Two runs compared (see :func:`compare`).

    Attributes
    ----------
    a, b : Path
        The run folders; every difference is B - A.
    headline : DataFrame
        Index ``metric`` (:data:`simkit.metrics.METRICS`); columns ``a``, ``b``,
        ``difference``. The metrics of the demand (:data:`simkit.metrics.DEMAND`) are NaN
        for a run without ``demand.parquet``.
    pairs : DataFrame
        Index ``pod_a``, ``pod_b`` (pod names, ``pod_a <= pod_b``); for each of
        ``accepted``, ``requests_sent``, ``refused_<reason>`` and, where both runs hold their
        demand, ``unmet_demand`` (wishes between users of the two pods never sent), the
        columns ``<name>_a``, ``<name>_b`` and ``<name>_diff``; ``events`` (identical or
        differ). Ranked by the largest absolute difference of any count, then by name.
    note : str or None
        What was left out when the populations differ.
    timelines : tuple of DataFrame
        :func:`simkit.analysis.status_timeline` of A and of B.
    matrices : tuple of DataFrame
        :func:`simkit.analysis.pod_matrix` of A and of B (accepted records, the largest 20
        pods and the others gathered), pods named, on the same pods.
    changes : tuple of Timestamp
        When the crossPod policy changed in either run.
    stages : DataFrame
        One row per crossPod stage, index ``stage`` (0, 1, ...). The stages are the spans
        between the policy changes of *either* run (so that both runs are cut at the same
        times; usually A has none and B has the roll-out's), from midnight (UTC) before the
        first event to midnight after the last. Columns ``from``, ``to`` (Timestamps),
        ``days``, ``change`` (the changes that open the stage, ``B: 10 pairs on``), and for
        each of :data:`STAGE_METRICS` (``unmet_demand_per_day`` only where both runs hold
        their demand) ``<name>_a``, ``<name>_b`` and ``<name>_diff``, per day of the stage.
    """

    a: Path
    b: Path
    headline: pd.DataFrame
    pairs: pd.DataFrame
    note: str | None = None
    timelines: tuple[pd.DataFrame, pd.DataFrame] = (pd.DataFrame(), pd.DataFrame())
    matrices: tuple[pd.DataFrame, pd.DataFrame] = (pd.DataFrame(), pd.DataFrame())
    changes: tuple[pd.Timestamp, ...] = ()
    stages: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)

    @property
    def identical(self) -> list[tuple[str, str]]:
        """The pod pairs whose events and answers are the same in both runs."""
        return [tuple(p) for p in self.pairs.index[self.pairs["events"] == "identical"]]

    @property
    def differ(self) -> list[tuple[str, str]]:
        """The pod pairs whose events or answers differ between the runs."""
        return [tuple(p) for p in self.pairs.index[self.pairs["events"] == "differ"]]


def _headline(a: _Loaded, b: _Loaded) -> pd.DataFrame:
    va = metrics(a.run.population, a.run.events, a.result, demand=a.demand)
    vb = metrics(b.run.population, b.run.events, b.result, demand=b.demand)
    table = pd.DataFrame({"a": pd.Series(va, dtype=float), "b": pd.Series(vb, dtype=float)}).reindex(
        list(METRICS)
    )
    table["difference"] = table["b"] - table["a"]
    table.index.name = "metric"
    return table


@dataclass(frozen=True)
class _Times:
    """When each thing :data:`STAGE_METRICS` counts happened in one run (ms), the run's
    policy changes, and the first and last time of anything in it (None: no events)."""

    counted: dict[str, NDArray[np.int64]]
    policy: Policy
    span: tuple[int, int] | None


def _times(x: _Loaded) -> _Times:
    ev, out = x.run.events, x.result.outcomes
    made, took = request_rows(x.run.population, ev, x.result)
    counted = {
        "requests_per_day": ev.ts[made],
        "accepted_per_day": ev.ts[took],
        "refused_crosspod_disabled_per_day": ev.ts[out.reason == _CROSSPOD_DISABLED],
    }
    if x.demand is not None:
        counted["unmet_demand_per_day"] = x.demand.ts[~x.demand.was_sent]
    span = None
    if len(ev):
        times = [ev.ts, x.run.policy.ts, *([x.demand.ts] if x.demand is not None else [])]
        span = min(int(t.min()) for t in times if len(t)), max(int(t.max()) for t in times if len(t))
    return _Times(counted, x.run.policy, span)


def _stage_bounds(runs: Sequence[_Times]) -> NDArray[np.int64]:
    """The bounds of the crossPod stages (ms) of runs compared together: midnight (UTC)
    before the first event, each policy change of any of the runs, midnight after the last
    event; none if no run has events."""
    spans = [t.span for t in runs if t.span is not None]
    if not spans:
        return np.empty(0, np.int64)
    changes = np.concatenate([t.policy.ts for t in runs]).astype(np.int64)
    times = [t for span in spans for t in span] + changes.tolist()
    start, end = min(times) // _DAY_MS * _DAY_MS, (max(times) // _DAY_MS + 1) * _DAY_MS
    return np.unique(np.concatenate([[start, end], changes]).astype(np.int64))


def _per_stage(ts: NDArray[np.int64], bounds: NDArray[np.int64]) -> NDArray[np.int64]:
    """How many of the times `ts` fall in each stage ``[bounds[i], bounds[i + 1])``."""
    at = np.searchsorted(bounds, ts, side="right") - 1
    counts: NDArray[np.int64] = np.bincount(at, minlength=len(bounds) - 1)[: len(bounds) - 1]
    return counts


def _change_text(a: Policy, b: Policy, at: int) -> str:
    """The policy changes of each run at `at`: ``B: 10 pairs on, 1 off``."""
    parts = []
    for name, policy in (("A", a), ("B", b)):
        mine = policy.ts == at
        on, off = int(np.count_nonzero(policy.crosspod[mine])), int(np.count_nonzero(~policy.crosspod[mine]))
        said = [
            f"{n:,} {'pair' if n == 1 else 'pairs'} {what}" for n, what in ((on, "on"), (off, "off")) if n
        ]
        if said:
            parts.append(f"{name}: {', '.join(said)}")
    return "; ".join(parts)


def _stages(a: _Times, b: _Times, bounds: NDArray[np.int64]) -> pd.DataFrame:
    """The counts of :data:`STAGE_METRICS` per day of each stage, in A, in B, and B - A."""
    names = [m for m in STAGE_METRICS if m in a.counted and m in b.counted]
    if len(bounds) < 2:
        bounds = np.empty(0, np.int64)  # no event in any run: no stage
    days = np.diff(bounds) / _DAY_MS
    columns: dict[str, Any] = {
        "from": pd.to_datetime(bounds[:-1], unit="ms"),
        "to": pd.to_datetime(bounds[1:], unit="ms"),
        "days": days,
        "change": [_change_text(a.policy, b.policy, int(t)) for t in bounds[:-1]],
    }
    for name in names:
        ca, cb = (_per_stage(x.counted[name], bounds) if len(bounds) else np.empty(0) for x in (a, b))
        columns[f"{name}_a"] = ca / days
        columns[f"{name}_b"] = cb / days
        columns[f"{name}_diff"] = (cb - ca) / days
    table = pd.DataFrame(columns)
    table.index.name = "stage"
    return table


def _compare_loaded(a: _Loaded, b: _Loaded, allow_different_populations: bool) -> Comparison:
    note = None
    if not same_population(a.run.population, b.run.population):
        if not allow_different_populations:
            raise RunDirError(
                f"{a.run.path} and {b.run.path}: the populations differ (pods, users or crossPod pairs); "
                "compare runs of one population, or pass --allow-different-populations"
            )
        shared = sorted(set(a.run.population.pod_name) & set(b.run.population.pod_name))
        note = f"the populations differ: pod pairs limited to the {len(shared)} pods present in both runs"
    ev_a, ev_b = _event_frame(a), _event_frame(b)
    names = _PAIR_COLUMNS
    if a.demand is not None and b.demand is not None:
        names = (*names, "unmet_demand")
    ca, cb = _pair_counts(a, ev_a, names), _pair_counts(b, ev_b, names)
    index = ca.index.union(cb.index)
    if note is not None:
        keep = set(a.run.population.pod_name) & set(b.run.population.pod_name)
        index = index[[x in keep and y in keep for x, y in index]]
    ca, cb = ca.reindex(index, fill_value=0), cb.reindex(index, fill_value=0)
    columns: dict[str, Any] = {}
    for name in names:
        columns[f"{name}_a"] = ca[name]
        columns[f"{name}_b"] = cb[name]
        columns[f"{name}_diff"] = cb[name] - ca[name]
    pairs = pd.DataFrame(columns, index=index)
    fa, fb = _fingerprints(ev_a).reindex(index), _fingerprints(ev_b).reindex(index)
    same = (fa["events"].fillna(0) == fb["events"].fillna(0)) & (
        (fa["digest"] == fb["digest"]) | (fa["events"].isna() & fb["events"].isna())
    )
    pairs["events"] = np.where(same, "identical", "differ")
    size = pairs[[f"{n}_diff" for n in names]].abs().max(axis=1)
    pairs = pairs.assign(_size=size).reset_index()
    pairs = pairs.sort_values(["_size", "pod_a", "pod_b"], ascending=[False, True, True], kind="stable")
    pairs = pairs.drop(columns="_size").set_index(["pod_a", "pod_b"])
    from simkit.analysis import from_run, pod_matrix, status_timeline, with_pod_names

    fr_a, fr_b = from_run(a.run, a.result), from_run(b.run, b.result)
    ma = with_pod_names(pod_matrix(fr_a, top=20, other=True), fr_a)
    mb = with_pod_names(pod_matrix(fr_b, top=20, other=True), fr_b)
    pods = ma.index.append(mb.index[~mb.index.isin(ma.index)])
    ma, mb = (m.reindex(index=pods, columns=pods, fill_value=0) for m in (ma, mb))
    ts = np.union1d(a.run.policy.ts, b.run.policy.ts)
    changes = tuple(pd.to_datetime(ts, unit="ms"))
    return Comparison(
        a.run.path,
        b.run.path,
        _headline(a, b),
        pairs,
        note,
        (status_timeline(fr_a), status_timeline(fr_b)),
        (ma, mb),
        changes,
        _stages(ta := _times(a), tb := _times(b), _stage_bounds([ta, tb])),
    )


def compare(
    a: str | os.PathLike[str], b: str | os.PathLike[str], *, allow_different_populations: bool = False
) -> Comparison:
    """Compare two replayed run folders; every difference is B - A.

    Raises
    ------
    RunDirError
        A folder has no outputs, or its files do not match its manifest; or the two
        populations differ and `allow_different_populations` is not set.
    InputError
        A table is refused as :func:`simkit.read_run` refuses it.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from simkit.pipeline import replay_run
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     run = shutil.copytree("data/samples/story", Path(tmp) / "run")
    ...     _ = replay_run(run)
    ...     result = compare(run, run)
    >>> float(result.headline["difference"].abs().sum()), result.differ
    (0.0, [])
    """
    return _compare_loaded(_load(a), _load(b), allow_different_populations)


@dataclass(frozen=True)
class ReplicatedComparison:
    """Runs replicated over seeds and compared pair by pair (see :func:`compare_replications`).

    `table` has index ``metric`` and columns ``mean_a``, ``mean_b``, ``diff_mean``,
    ``diff_ci_low``, ``diff_ci_high`` (95 % Student-t) and ``n``; `runs` one row per
    replication and metric with ``a``, ``b`` and ``difference``.

    `stages` gives the same per crossPod stage (:attr:`Comparison.stages`, the stages cut
    at the changes of every run compared): index ``stage``, ``metric``
    (:data:`STAGE_METRICS`, per day), columns ``from``, ``to``, ``change`` (as in the first
    pair, or ``varies`` if the pairs' changes differ there), then ``mean_a``, ``mean_b``,
    ``diff_mean``, ``diff_ci_low``, ``diff_ci_high``, ``n``. It is None when computed from
    a sweep's ``runs.parquet``, which holds no events.
    """

    table: pd.DataFrame
    runs: pd.DataFrame
    source: str = "run folders"
    """What the numbers were computed from: ``run folders`` (replayed and measured again) or
    ``runs.parquet`` (the metric rows a sweep wrote, for a sweep that kept no run folders)."""
    stages: pd.DataFrame | None = None


def compare_replications(
    a: Sequence[str | os.PathLike[str]],
    b: Sequence[str | os.PathLike[str]],
    *,
    allow_different_populations: bool = False,
) -> ReplicatedComparison:
    """Compare two lists of run folders paired by position (replication r of A with that of B).

    Each headline difference is given with its mean over the pairs and 95 % Student-t
    interval, as the sweep's ``summary.csv`` gives it (:func:`simkit.sweeps.interval`); so
    is each per-day difference of each crossPod stage (``.stages``).

    The stages are cut at the crossPod changes of every run compared (the replications of
    one roll-out share theirs), so that they line up over the pairs.

    Raises
    ------
    RunDirError
        As :func:`compare` raises it; or the lists differ in length.
    """
    if len(a) != len(b) or not a:
        raise RunDirError(f"compare: {len(a)} runs against {len(b)}; give as many of each, paired by seed")
    rows = []
    times = []
    for r, (fa, fb) in enumerate(zip(a, b, strict=True)):
        la, lb = _load(fa), _load(fb)
        if not allow_different_populations and not same_population(la.run.population, lb.run.population):
            raise RunDirError(
                f"{fa} and {fb}: the populations differ (pods, users or crossPod pairs); "
                "compare runs of one population, or pass --allow-different-populations"
            )
        head = _headline(la, lb)
        for metric, row in head.iterrows():
            rows.append({"replication": r, "metric": metric, **row.to_dict()})
        times.append((_times(la), _times(lb)))
        del la, lb  # one pair in memory at a time; the stages need only the times kept
    bounds = _stage_bounds([t for pair in times for t in pair])
    return _replicated(pd.DataFrame(rows), stages=[_stages(ta, tb, bounds) for ta, tb in times])


def _replicated(
    runs: pd.DataFrame, source: str = "run folders", stages: Sequence[pd.DataFrame] = ()
) -> ReplicatedComparison:
    """Mean of A, of B, and of B - A with its 95 % interval, per metric, over the pairs in
    `runs` (columns ``replication``, ``metric``, ``a``, ``b``, ``difference``); the same per
    stage over the pairs' `stages` (:func:`_stages` of each pair), if given."""
    from simkit.sweeps import interval

    out = []
    for metric in METRICS:
        mine = runs[runs["metric"] == metric]
        mean_a = interval(mine["a"].tolist())[0]
        mean_b = interval(mine["b"].tolist())[0]
        d_mean, _, lo, hi, n = interval(mine["difference"].tolist())
        out.append(
            {
                "metric": metric,
                "mean_a": mean_a,
                "mean_b": mean_b,
                "diff_mean": d_mean,
                "diff_ci_low": lo,
                "diff_ci_high": hi,
                "n": n,
            }
        )
    table = pd.DataFrame(out).set_index("metric")
    return ReplicatedComparison(table, runs, source, _replicated_stages(stages) if stages else None)


def _replicated_stages(stages: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per stage and metric: the mean of A, of B, and of B - A with its 95 % interval, over
    the stage tables of the pairs (whose stages line up)."""
    from simkit.sweeps import interval

    first = stages[0]
    names = [m for m in STAGE_METRICS if all(f"{m}_diff" in t.columns for t in stages)]
    out = []
    for stage in first.index:
        at = [t.loc[stage] for t in stages]
        changes = {row["change"] for row in at}
        for metric in names:
            d_mean, _, lo, hi, n = interval([float(row[f"{metric}_diff"]) for row in at])
            out.append(
                {
                    "stage": stage,
                    "metric": metric,
                    "from": first.at[stage, "from"],
                    "to": first.at[stage, "to"],
                    "change": first.at[stage, "change"] if len(changes) == 1 else "varies",
                    "mean_a": interval([float(row[f"{metric}_a"]) for row in at])[0],
                    "mean_b": interval([float(row[f"{metric}_b"]) for row in at])[0],
                    "diff_mean": d_mean,
                    "diff_ci_low": lo,
                    "diff_ci_high": hi,
                    "n": n,
                }
            )
    columns = ["stage", "metric", "from", "to", "change", "mean_a", "mean_b"]
    columns += ["diff_mean", "diff_ci_low", "diff_ci_high", "n"]
    return pd.DataFrame(out, columns=columns).set_index(["stage", "metric"])


def compare_points(
    folder: str | os.PathLike[str],
    a: int,
    b: int,
    *,
    allow_different_populations: bool = False,
) -> ReplicatedComparison:
    """Compare two points of the sweep in `folder` over their replications, paired by
    replication (the same seed); every difference is point `b` - point `a`.

    If the sweep kept its run folders (``simkit sweep --keep-runs``: ``runs/point-P-replication-R``),
    those are compared with :func:`compare_replications` (each run checked against its
    manifest); otherwise the metric rows of the sweep's ``runs.parquet`` are paired. The
    result's ``source`` says which. Replications that failed at either point are left out.

    Raises
    ------
    SweepError
        `folder` is not a finished sweep, or its ``runs.parquet`` does not match its manifest;
        a point is not one of the sweep's; fewer than two replications succeeded at both.
    RunDirError
        As :func:`compare_replications` raises it, for kept run folders.
    """
    import hashlib
    import json

    import pyarrow.parquet as pq

    from simkit.errors import SweepError

    root = Path(folder)
    manifest_file, table_file = root / "manifest.json", root / "runs.parquet"
    if not root.is_dir() or not manifest_file.is_file() or not table_file.is_file():
        raise SweepError(
            f"{folder}: not a sweep folder (no manifest.json and runs.parquet); run `simkit sweep` first"
        )
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SweepError(f"{manifest_file}: not a sweep manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "sweep":
        raise SweepError(f"{folder}: not a sweep folder (its manifest is not a sweep's)")
    files = manifest.get("files")
    expected = files.get("runs.parquet") if isinstance(files, dict) else None
    if hashlib.sha256(table_file.read_bytes()).hexdigest() != expected:
        raise SweepError(f"{table_file}: changed since the sweep wrote it (does not match manifest.json)")
    points = manifest.get("points")
    count = len(points) if isinstance(points, list) else 0
    for name, p in (("A", a), ("B", b)):
        if not 0 <= p < count:
            raise SweepError(f"--points: point {name} = {p}: expected a point from 0 to {count - 1}")
    frame = pq.read_table(table_file).to_pandas()
    missing = [c for c in ("point", "replication", "error", *METRICS) if c not in frame.columns]
    if missing:
        raise SweepError(f"{table_file}: no column {missing[0]!r}; sweep again with this version of simkit")
    ok = frame[frame["error"].isna()]
    rows_a = ok[ok["point"] == a].set_index("replication")
    rows_b = ok[ok["point"] == b].set_index("replication")
    paired = sorted(set(rows_a.index) & set(rows_b.index))
    if len(paired) < 2:
        raise SweepError(
            f"{folder}: points {a} and {b} have {len(paired)} replication(s) that succeeded at both; "
            "an interval needs at least 2 (sweep with --replications 2 or more)"
        )
    runs_dir = root / "runs"
    kept = [
        (runs_dir / f"point-{a}-replication-{r}", runs_dir / f"point-{b}-replication-{r}") for r in paired
    ]
    if all(x.is_dir() and y.is_dir() for x, y in kept):
        result = compare_replications(
            [x for x, _ in kept],
            [y for _, y in kept],
            allow_different_populations=allow_different_populations,
        )
        runs = result.runs.assign(replication=[paired[r] for r in result.runs["replication"]])
        return ReplicatedComparison(result.table, runs, "run folders", result.stages)
    rows = []
    for r in paired:
        for metric in METRICS:
            va, vb = float(rows_a.at[r, metric]), float(rows_b.at[r, metric])
            rows.append({"replication": int(r), "metric": metric, "a": va, "b": vb, "difference": vb - va})
    return _replicated(pd.DataFrame(rows), "runs.parquet")


# -- files ------------------------------------------------------------------------------------


def _number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:,.4g}"


def _signed(value: float) -> str:
    """A difference with its sign: ``+1,282``, ``-0.0003306``."""
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if float(value).is_integer():
        return f"{int(value):+,}"
    return f"{value:+,.1f}" if abs(value) >= 1000 else f"{value:+,.4g}"


def _csv(table: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    table.to_csv(buf, lineterminator="\n")
    return buf.getvalue().encode()


_STAGE_LABELS = {
    "requests_per_day": "requests",
    "accepted_per_day": "accepted",
    "refused_crosspod_disabled_per_day": "refused crosspod_disabled",
    "unmet_demand_per_day": "unmet demand",
}


def _day(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat()


def _span(start: pd.Timestamp, end: pd.Timestamp, change: str) -> str:
    """A stage for a reader: ``2024-03-11 to 2024-03-18 (7 days; B: 10 pairs on)``."""
    days = (end - start) / pd.Timedelta(days=1)
    text = f"{_day(start)} to {_day(end)} ({_number(days)} {'day' if days == 1 else 'days'}"
    return text + (f"; {change})" if change else ")")


def _stage_lines(stages: pd.DataFrame) -> list[str]:
    """Per stage, the per-day differences B - A, one line each (none for a single stage)."""
    if len(stages) < 2:
        return []
    names = [m for m in STAGE_METRICS if f"{m}_diff" in stages.columns]
    lines = ["per crossPod stage (per day, B - A):"]
    for stage, row in stages.iterrows():
        diffs = ", ".join(f"{_STAGE_LABELS[m]} {_signed(float(row[f'{m}_diff']))}" for m in names)
        lines.append(f"  {stage}: {_span(row['from'], row['to'], row['change'])}: {diffs}")
    return lines


def summary_lines(result: Comparison, top: int = 5) -> list[str]:
    """A short summary for the terminal: the headline numbers that changed, the pairs reached."""
    head = result.headline
    changed = head[head["difference"].fillna(0) != 0]
    lines = [f"A: {result.a}", f"B: {result.b}"]
    if result.note:
        lines.append(f"note: {result.note}")
    if changed.empty:
        lines.append("headline: no difference")
    for metric, row in changed.iterrows():
        lines.append(f"{metric}: {_number(row['a'])} -> {_number(row['b'])} ({_signed(row['difference'])})")
    lines.append(f"pod pairs: {len(result.differ):,} differ, {len(result.identical):,} identical")
    head_pairs = result.pairs.head(top)
    for (pa_, pb_), (_, row) in zip(head_pairs.index, head_pairs.iterrows(), strict=True):
        if row["events"] == "identical":
            break
        lines.append(
            f"  {pa_} - {pb_}: accepted {row['accepted_a']:,} -> {row['accepted_b']:,}, "
            f"requests {row['requests_sent_a']:,} -> {row['requests_sent_b']:,}"
            + (
                f", unmet demand {row['unmet_demand_a']:,} -> {row['unmet_demand_b']:,}"
                if "unmet_demand_a" in row.index
                else ""
            )
        )
    return lines + _stage_lines(result.stages)


def replication_lines(replicated: ReplicatedComparison) -> list[str]:
    """A short summary for the terminal: each headline difference that is not always 0, with
    its 95 % interval."""
    n = int(replicated.table["n"].max())
    lines = [f"over {n} replications, from {replicated.source} (mean B - A, 95% interval):"]
    for metric, row in replicated.table.iterrows():
        if row["diff_mean"] != 0 and not math.isnan(row["diff_mean"]):
            lines.append(
                f"  {metric}: {_signed(row['diff_mean'])} "
                f"[{_signed(row['diff_ci_low'])}, {_signed(row['diff_ci_high'])}]"
            )
    stages = replicated.stages
    if stages is None:
        lines.append("per crossPod stage: not from runs.parquet (sweep with --keep-runs to compare the runs)")
    elif stages.index.get_level_values("stage").nunique() > 1:
        lines.append("per crossPod stage (per day, mean B - A, 95% interval):")
        records = stages.reset_index().to_dict("records")
        for stage in sorted({r["stage"] for r in records}):
            mine = [r for r in records if r["stage"] == stage]
            diffs = ", ".join(
                f"{_STAGE_LABELS[r['metric']]} {_signed(r['diff_mean'])} "
                f"[{_signed(r['diff_ci_low'])}, {_signed(r['diff_ci_high'])}]"
                for r in mine
            )
            lines.append(f"  {stage}: {_span(mine[0]['from'], mine[0]['to'], mine[0]['change'])}: {diffs}")
    return lines


def _replication_markdown(replicated: ReplicatedComparison) -> list[str]:
    n = int(replicated.table["n"].max())
    lines = [
        f"## Over {n} replications, paired by seed",
        "",
        f"Computed from: {replicated.source}.",
        "",
        "| metric | mean A | mean B | mean B - A | 95 % interval |",
        "|---|---:|---:|---:|---|",
    ]
    for metric, row in replicated.table.iterrows():
        if metric in DEMAND and row["n"] == 0:
            continue  # no demand table in the runs
        lines.append(
            f"| {metric} | {_number(row['mean_a'])} | {_number(row['mean_b'])} | "
            f"{_signed(row['diff_mean'])} | {_signed(row['diff_ci_low'])} to {_signed(row['diff_ci_high'])} |"
        )
    stages = replicated.stages
    if stages is not None and stages.index.get_level_values("stage").nunique() > 1:
        lines += [
            "",
            f"### Per crossPod stage, over {n} replications",
            "",
            "Per day of each stage; the stages are cut at the crossPod changes of every run compared.",
            "",
            "| stage | span | per day | mean A | mean B | mean B - A | 95 % interval |",
            "|---|---|---|---:|---:|---:|---|",
        ]
        for r in stages.reset_index().to_dict("records"):
            lines.append(
                f"| {r['stage']} | {_span(r['from'], r['to'], r['change'])} | {_STAGE_LABELS[r['metric']]} | "
                f"{_number(r['mean_a'])} | {_number(r['mean_b'])} | {_signed(r['diff_mean'])} | "
                f"{_signed(r['diff_ci_low'])} to {_signed(r['diff_ci_high'])} |"
            )
    return lines


def write_replications(
    folder: str | os.PathLike[str], replicated: ReplicatedComparison, a: str, b: str
) -> list[Path]:
    """Write `compare.md` (the differences over replications; `a` and `b` name what was
    compared), `replications.csv` and, from run folders, `replication_stages.csv` into
    `folder` (made if missing), in one transaction."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Comparison over replications",
        "",
        f"- A: {a}",
        f"- B: {b}",
        "- every difference is B - A",
        "",
    ]
    lines += _replication_markdown(replicated)
    files: dict[str, Any] = {
        "replications.csv": _csv(replicated.table),
        "compare.md": ("\n".join(lines) + "\n").encode(),
    }
    if replicated.stages is not None:
        files["replication_stages.csv"] = _csv(replicated.stages)
    return write_files(root, files, "simkit compare")


def _markdown(result: Comparison, replicated: ReplicatedComparison | None, charts: Sequence[str]) -> str:
    head = result.headline
    lines = [
        "# Comparison of two runs",
        "",
        f"- A: `{result.a}`",
        f"- B: `{result.b}`",
        "- every difference is B - A",
    ]
    if result.note:
        lines.append(f"- **note**: {result.note}")
    lines += ["", "## Headline numbers", "", "| metric | A | B | B - A |", "|---|---:|---:|---:|"]
    for metric, row in head.iterrows():
        if metric in DEMAND and math.isnan(row["a"]) and math.isnan(row["b"]):
            continue  # neither run holds its demand
        lines.append(
            f"| {metric} | {_number(row['a'])} | {_number(row['b'])} | {_signed(row['difference'])} |"
        )
    if replicated is not None:
        lines += ["", *_replication_markdown(replicated)]
    pairs = result.pairs
    lines += [
        "",
        "## Pod pairs",
        "",
        f"{len(result.differ):,} pod pairs saw different events or answers (the pairs the change "
        f"reached, with common random numbers); {len(result.identical):,} saw exactly the same. "
        "The full table is `pairs.csv`; the largest differences:",
    ]
    if pairs.empty:
        lines[-1] = "No pod pair saw an event in either run."
    elif not result.identical:
        lines[-1] = (
            f"All {len(result.differ):,} pod pairs saw different events or answers: the traffic "
            "itself differs everywhere (generated traffic reacts to the answers it gets), so this "
            "split cannot show where the change reached; to see that, replay one log under both "
            "policies (docs/compare.md). The full table is `pairs.csv`; the largest differences:"
        )
    unmet = "unmet_demand_diff" in pairs.columns
    lines += [
        "",
        "| pod pair | accepted A | accepted B | B - A | requests A | requests B | B - A | refused B - A |"
        + (" unmet demand A | unmet demand B | B - A |" if unmet else ""),
        "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if unmet else ""),
    ]
    refused = [f"refused_{r.value}_diff" for r in REASONS]
    shown = pairs[pairs["events"] == "differ"].head(15)
    for (pa_, pb_), (_, row) in zip(shown.index, shown.iterrows(), strict=True):
        lines.append(
            f"| {pa_} – {pb_} | {row['accepted_a']:,} | {row['accepted_b']:,} | {row['accepted_diff']:+,} | "
            f"{row['requests_sent_a']:,} | {row['requests_sent_b']:,} | {row['requests_sent_diff']:+,} | "
            f"{int(row[refused].sum()):+,} |"
            + (
                f" {row['unmet_demand_a']:,} | {row['unmet_demand_b']:,} | {row['unmet_demand_diff']:+,} |"
                if unmet
                else ""
            )
        )
    lines += ["", *_stage_markdown(result.stages)]
    if charts:
        lines += ["", "## Charts", ""]
        lines += [f"![{c}]({c})" for c in charts]
    return "\n".join(lines) + "\n"


def _stage_markdown(stages: pd.DataFrame) -> list[str]:
    lines = ["## Per crossPod stage", ""]
    if not len(stages):
        return [*lines, "No event in either run: no stage."]
    if len(stages) < 2:
        return [
            *lines,
            "Neither run changes crossPod: there is one stage, the whole run (the headline numbers).",
        ]
    names = [m for m in STAGE_METRICS if f"{m}_diff" in stages.columns]
    lines += [
        "The stages are cut at the crossPod changes of either run; counts per day of each stage "
        "(requests made, requests accepted, 403 `crosspod_disabled` answers"
        + (", wishes made and never sent" if "unmet_demand_per_day" in names else "")
        + "). The table is `stages.csv`.",
        "",
        "| stage | span | per day | A | B | B - A |",
        "|---|---|---|---:|---:|---:|",
    ]
    for stage, row in stages.iterrows():
        span = _span(row["from"], row["to"], row["change"])
        for m in names:
            lines.append(
                f"| {stage} | {span} | {_STAGE_LABELS[m]} | {_number(float(row[f'{m}_a']))} | "
                f"{_number(float(row[f'{m}_b']))} | {_signed(float(row[f'{m}_diff']))} |"
            )
    return lines


def write_comparison(
    folder: str | os.PathLike[str],
    result: Comparison,
    replicated: ReplicatedComparison | None = None,
    *,
    charts: bool = True,
) -> list[Path]:
    """Write `compare.md`, `headline.csv`, `pairs.csv`, `stages.csv` (and
    `replications.csv`, `replication_stages.csv`) and the charts into `folder` (made if
    missing), all in one transaction."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {
        "headline.csv": _csv(result.headline),
        "pairs.csv": _csv(result.pairs),
        "stages.csv": _csv(result.stages),
    }
    if replicated is not None:
        files["replications.csv"] = _csv(replicated.table)
        if replicated.stages is not None:
            files["replication_stages.csv"] = _csv(replicated.stages)
    names: list[str] = []
    if charts:
        for name, draw in _charts(result).items():
            files[name] = draw
            names.append(name)
    files["compare.md"] = _markdown(result, replicated, names).encode()
    return write_files(root, files, "simkit compare")


def _charts(result: Comparison) -> dict[str, Any]:
    """The charts, each a function writing its PNG at the path it is given."""
    from matplotlib.figure import Figure

    import simkit.plots as plots

    def png(fig: Figure) -> Any:
        def write(path: Path) -> None:
            fig.savefig(path, format="png", dpi=100, metadata={"Software": None})

        return write

    top = result.pairs[result.pairs["events"] == "differ"].head(20)
    labels = [f"{x} – {y}" for x, y in top.index]
    fig = Figure(figsize=(8, max(3.0, 0.3 * len(top) + 1.5)), layout="constrained")
    plots.pair_differences(top["accepted_a"], top["accepted_b"], labels=labels, ax=fig.subplots())
    charts = {"accepted_by_pair.png": png(fig)}

    fig = Figure(figsize=(9, 4.5), layout="constrained")
    plots.status_timelines(*result.timelines, ax=fig.subplots(), marks=result.changes)
    charts["status_timelines.png"] = png(fig)

    ma, mb = result.matrices
    if not ma.empty:
        fig = Figure(figsize=(15, 6.5), layout="constrained")
        left, right = fig.subplots(1, 2)
        vmax = float(max(ma.to_numpy().max(), mb.to_numpy().max()))
        plots.pod_heatmap(ma, ax=left, vmax=vmax, colorbar=False)
        plots.pod_heatmap(mb, ax=right, vmax=vmax)
        left.set_title(f"A: {left.get_title()}")
        right.set_title(f"B: {right.get_title()}")
        charts["pod_heatmaps.png"] = png(fig)
        fig = Figure(figsize=(8, 6.5), layout="constrained")
        plots.difference_heatmap(mb - ma, ax=fig.subplots())
        charts["pod_difference.png"] = png(fig)
    return charts
