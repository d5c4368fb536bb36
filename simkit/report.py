"""`report`: a replayed run's charts as PNG files and a one-page Markdown summary.

:func:`write_report` is the Python face of ``simkit report``: it reads a run folder with
:func:`simkit.analysis.load`, draws the charts of :mod:`simkit.plots` on its own figures
with matplotlib's Agg renderer (it never touches ``pyplot`` or the caller's backend), and
writes ``report.md`` with the headline numbers beside them. Every file is written to a
temporary name and renamed into place, and the same run gives the same bytes (the PNGs
carry no software version or timestamp). It writes only into its output folder and never
changes the run folder's tables. It reads only what the run folder holds and never runs
another simulation: what crossPod changed is read off the run's own periods between
policy stages, and where enabling crossPod would connect the most people off the wishes
``simkit run`` recorded beside the log (``demand.parquet``; a recorded log has none, and the
page says its demand is unknown).

The charts are drawn by :mod:`simkit.drawing`: on Linux with two CPUs or more, in two helper
processes while this one computes the rest; the files are the same bytes whichever process
draws them.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd

import simkit.analysis as analysis
import simkit.graph as graph
from simkit.drawing import Chart, Drawers
from simkit.errors import RunDirError
from simkit.io.commit import write_files
from simkit.io.runs import verify_run

__all__ = ["CHARTS", "Report", "write_report"]

CHARTS: tuple[str, ...] = (
    "status-timeline.png",
    "status-by-pod.png",
    "request-counters.png",
    "time-to-answer.png",
    "pod-heatmap.png",
    "crosspod-candidates.png",
    "error-reasons.png",
    "degree-distribution.png",
    "pod-graph.png",
)
"""The chart files of a report, in the order the summary shows them."""

_SUMMARY = "report.md"
# The timeline is drawn from at most about this many bins, whatever the run's length.
_TIMELINE_BINS = 400
# Periods between crossPod stages listed one by one in the summary.
_POLICY_ROWS = 20
# Pod pairs at most in the table and chart of where enabling crossPod would help most.
_CANDIDATE_ROWS = 20
# From this many events on, one helper process draws the charts instead of two: the tables
# take tens of seconds and the charts about one, and each helper holds 0.13 GB (the whole
# network's report peaked at 9.80 GB with two, 3 % under its 10 GB target).
_ONE_DRAWER_FROM = 10_000_000


@dataclass(frozen=True)
class Report:
    """What :func:`write_report` wrote: the summary, every file, and the headline numbers."""

    summary: Path
    files: tuple[Path, ...]
    headline: pd.Series

    def headline_text(self) -> str:
        """The headline numbers as aligned ``measure: value`` lines, as the summary shows them."""
        rows = _headline_rows(self.headline)
        width = max(len(k) for k, _ in rows) + 2
        return "\n".join(f"{k + ':':<{width}}{v}" for k, v in rows)


class _Tables:
    """The tables the charts and the summary share, each computed when first asked.

    With `beside`, the two that take longest on a large run (where enabling crossPod would
    help, which needs the wishes; how soon requests are answered) start at once on that
    executor's thread, while this thread computes the others: numpy lets go of the GIL in
    the sorts and gathers that make most of their time.
    """

    def __init__(self, frames: analysis.RunFrames, beside: Executor | None = None) -> None:
        self.frames = frames
        self._early: dict[str, Future[Any]] = {}
        if beside is not None:
            self._early = {
                "candidates": beside.submit(self._candidates),
                "answered": beside.submit(self._answered),
            }

    @functools.cached_property
    def periods(self) -> pd.DataFrame:
        return analysis.crosspod_periods(self.frames)

    @functools.cached_property
    def pods(self) -> nx.Graph:
        return graph.pod_graph(self.frames)

    @functools.cached_property
    def candidates(self) -> pd.DataFrame | None:
        early = self._early.pop("candidates", None)
        return early.result() if early is not None else self._candidates()

    @functools.cached_property
    def answered(self) -> pd.DataFrame:
        early = self._early.pop("answered", None)
        return early.result() if early is not None else self._answered()

    def _candidates(self) -> pd.DataFrame | None:
        frames = self.frames
        if frames.demand is None:
            return None
        return analysis.with_pod_names(analysis.crosspod_candidates(frames, top=_CANDIDATE_ROWS), frames)

    def _answered(self) -> pd.DataFrame:
        return analysis.answered_within(self.frames)


def _charts(tables: _Tables, top: int) -> Iterator[tuple[str, Chart]]:
    """Each chart file and how to draw it, as soon as its table is known: the helpers draw
    it while the next tables are computed."""
    frames = tables.frames
    stages: list[pd.Timestamp] = list(tables.periods["start"].iloc[1:])
    wide = (8.0, 4.5)
    timeline = analysis.status_timeline(frames, most=_TIMELINE_BINS)
    yield "status-timeline.png", Chart("status_timeline", (timeline,), {"marks": stages}, wide)
    largest = analysis.largest_pods(frames, top)
    by_pod = analysis.with_pod_names(analysis.status_counts(frames, by="pod").loc[largest], frames)
    tall = (8.0, max(3.0, 1.2 + 0.3 * len(largest)))
    yield "status-by-pod.png", Chart("status_distribution", (by_pod,), {"order": "most users first"}, tall)
    matrix = analysis.pod_matrix(frames, top=top, other=True)
    crosspod = analysis.crosspod_matrix(frames, matrix.index)
    yield (
        "pod-heatmap.png",
        Chart(
            "pod_heatmap",
            (analysis.with_pod_names(matrix, frames), analysis.with_pod_names(crosspod, frames)),
            {},
            (8.0, 7.5),
        ),
    )
    yield (
        "error-reasons.png",
        Chart("error_reasons", (analysis.error_counts(frames),), {"marks": stages}, (9.5, 4.5)),
    )
    # Laid out here, where simkit.graph (and scipy, which networkx's layout uses) is imported.
    pods = graph.top_pods(tables.pods, top)
    yield "pod-graph.png", Chart("pod_graph", (pods,), {"pos": graph.pod_layout(pods)}, (10.0, 7.0))
    candidates = tables.candidates
    pairs = len(candidates) if candidates is not None else 0
    yield (
        "crosspod-candidates.png",
        Chart("crosspod_candidates", (candidates,), {}, (8.0, max(3.0, 1.6 + 0.32 * pairs))),
    )
    yield (
        "request-counters.png",
        Chart("request_counters", (analysis.request_counter_counts(frames),), {}, wide),
    )
    yield "time-to-answer.png", Chart("time_to_answer", (tables.answered,), {}, wide)
    yield "degree-distribution.png", Chart("degree_distribution", (graph.degree_counts(frames),), {}, wide)


# -- the summary page ---------------------------------------------------------------------


def _plural(n: int, word: str, plural: str | None = None) -> str:
    """``1 stage``, ``2 stages``: a count and its noun, the noun agreeing."""
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], numbers_from: int = 1) -> list[str]:
    """A Markdown table; columns from `numbers_from` on are right-aligned."""
    head = list(header)
    rule = ["---" if i < numbers_from else "--:" for i in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _headline_rows(headline: pd.Series) -> list[list[str]]:
    return [[str(k), str(v)] for k, v in analysis.readable(headline).items()]


def _period_text(start: pd.Timestamp, end: pd.Timestamp, whole_days: bool) -> str:
    form = "%Y-%m-%d" if whole_days else "%Y-%m-%d %H:%M"
    return f"{start:{form}} – {end:{form}}"


def _stage_text(enabled: int, disabled: int) -> str:
    changes = [
        f"{verb} {_plural(n, 'pod pair')}" for verb, n in (("enabled", enabled), ("disabled", disabled)) if n
    ]
    return ", ".join(changes) or "as at the start"


def _per_day(count: float, days: float) -> str:
    return f"{count / days:,.1f}" if days > 0 else "n/a"


def _policy_lines(frames: analysis.RunFrames, periods: pd.DataFrame) -> list[str]:
    if periods.empty:
        return ["The run has no action events."]
    changed = int(periods["enabled"].sum() + periods["disabled"].sum())
    stages = len(periods) - 1
    known = frames.demand is not None
    if stages:
        text = (
            f"{_plural(len(frames.policy), 'policy event')} ({changed:,} changed the relation) in "
            f"{_plural(stages, 'stage')}. The run is cut at each stage: each row is the whole network "
            "from one stage to the next, so each stage is the step from a row to the next. Rates are "
            "per day of the period"
        )
    else:
        text = (
            f"No policy event changed crossPod during the run ({_plural(len(frames.policy), 'policy event')}"
            f", {changed:,} changing the relation before it began): it is one period. Rates are per day"
        )
    text += (
        "; the wishes never sent are those made in the period that were never sent at all"
        if known
        else "; this run has no demand table, so its wishes are unknown"
    )
    lines = [text + " (see `crosspod_periods` in docs/analysis.md):"]
    lines.append("")
    shown = periods.head(_POLICY_ROWS)
    starts, ends = pd.DatetimeIndex(shown["start"]), pd.DatetimeIndex(shown["end"])
    whole_days = bool((starts == starts.normalize()).all() and (ends == ends.normalize()).all())
    lengths = analysis.readable(pd.Series(ends - starts))
    header = ["period (UTC)", "length", "crossPod at its start", "requests sent / day", "accepted / day"]
    header.append("403 crosspod_disabled / day")
    if known:
        header.append("wishes never sent / day (share of the period's wishes)")
    rows = []
    for start, end, length, row in zip(starts, ends, lengths, shown.to_dict("records"), strict=True):
        days = float(row["days"])
        cells = [
            _period_text(start, end, whole_days),
            str(length),
            _stage_text(int(row["enabled"]), int(row["disabled"])),
            *(_per_day(int(row[m]), days) for m in ("requests", "accepted", "crosspod_disabled")),
        ]
        if known:
            wishes, unmet = int(row["wishes"]), int(row["unmet"])
            share = f"{100 * unmet / wishes:.1f} %" if wishes else "n/a"
            cells.append(f"{_per_day(unmet, days)} ({share})")
        rows.append(cells)
    lines += _table(header, rows, numbers_from=3)
    if len(periods) > _POLICY_ROWS:
        lines += ["", f"The first {_POLICY_ROWS} of {len(periods):,} periods are listed."]
    return lines


def _candidate_lines(frames: analysis.RunFrames, candidates: pd.DataFrame | None) -> list[str]:
    if candidates is None:
        return [
            "This run has no demand table (`demand.parquet`; only `simkit run` writes one): the wishes "
            "behind its events, and which of them were never sent, are unknown."
        ]
    table = analysis.unmet_demand(frames)
    wishes, unmet = int(table["wishes"].sum()), int(table["unmet"].sum())
    alone = int(table["crosspod_unmet"].sum())
    share = f" ({100 * unmet / wishes:.1f} %)" if wishes else ""
    opened = int(table.loc[table["crosspod"].to_numpy(dtype=bool), "unmet"].sum())
    lines = [
        f"Of {_plural(wishes, 'wish', 'wishes')} to connect, {unmet:,} {'was' if unmet == 1 else 'were'} "
        f"never sent{share}: "
        f"{int(table['blocked'].sum()):,} tried and refused, {int(table['dropped'].sum()):,} given up "
        f"without trying. {opened:,} of them were between pods that have crossPod by the end of the "
        f"run, and {unmet - opened - alone:,} between pods without it but with a user lacking the "
        f"external entitlement. crossPod alone stood in the way of the other {alone:,} (both users "
        "external, two pods without crossPod at the end of the run)"
    ]
    pairs = int(candidates.attrs.get("pairs", len(candidates)))
    if not pairs:
        lines[0] += "."
        return lines
    lines[0] += f", between {_plural(pairs, 'pod pair')}" + (
        f"; the {len(candidates):,} with the most:" if len(candidates) < pairs else ":"
    )
    header = ["pod pair", "wishes never sent for want of crossPod", "people who made them"]
    header += ["wishes between the two pods", "of them sent"]
    rows = [
        [
            " – ".join(str(p) for p in key),
            f"{row['crosspod_unmet']:,}",
            f"{row['crosspod_users']:,}",
            f"{row['wishes']:,}",
            f"{row['sent'] + row['deferred']:,}",
        ]
        for key, row in zip(candidates.index, candidates.to_dict("records"), strict=True)
    ]
    return [*lines, "", *_table(header, rows)]


def _unanswered(answered: pd.DataFrame) -> str:
    requests = int(answered.attrs.get("requests", 0))
    if not requests or answered.empty:
        return f"{_plural(requests, 'request')}, none answered"
    never = 1.0 - float(answered.iloc[-1].sum())
    return (
        f"never answered by the end of the run: {round(never * requests):,} of "
        f"{_plural(requests, 'request')} ({100 * never:.1f} %)"
    )


def _title(run_dir: Path, manifest: Mapping[str, Any]) -> str:
    scenario = manifest.get("scenario")
    if isinstance(scenario, Mapping) and scenario.get("name"):
        seed = manifest.get("seed")
        return f"scenario {scenario['name']}" + (f", seed {seed}" if seed is not None else "")
    return f"run {run_dir.name}"


def _summary(
    frames: analysis.RunFrames,
    headline: pd.Series,
    network: pd.Series,
    periods: pd.DataFrame,
    candidates: pd.DataFrame | None,
    answered: pd.DataFrame,
    title: str,
    files: Mapping[str, str],
) -> str:
    ts = frames.events["ts"]
    span = (
        f"{_plural(len(ts), 'action event')} from {pd.Timestamp(int(ts.min()), unit='ms'):%Y-%m-%d %H:%M} to "
        f"{pd.Timestamp(int(ts.max()), unit='ms'):%Y-%m-%d %H:%M} UTC"
        if len(ts)
        else "no action events"
    )
    pods, users = len(frames.pods), len(frames.users)
    shown = analysis.readable(headline)
    counts = analysis.status_counts(frames).iloc[0]
    stored = int(sum(counts[s] for s in analysis.STATUS_COLUMNS))

    def image(name: str, alt: str) -> str:
        return f"![{alt}]({files[name]})"

    lines = [
        f"# simkit report: {title}",
        "",
        f"{_plural(pods, 'pod')}, {_plural(users, 'user')}, {span}.",
        "",
        "## Headline numbers",
        "",
        *_table(["measure", "value"], _headline_rows(headline)),
        "",
        "Records are the stored pair records after the last event; implicit pairs (two users of",
        "the same private pod) are never stored and are counted apart. The acceptance rate is",
        "accepted over answered requests; the re-request rate is the share of records whose",
        "requestCounter is above 1.",
        "",
        "## How connections are distributed by status",
        "",
        f"{_plural(stored, 'stored record')}: "
        + ", ".join(f"{int(counts[s]):,} {s}" for s in analysis.STATUS_COLUMNS)
        + ".",
        "",
        image("status-timeline.png", "stored records by status over time"),
        "",
        image("status-by-pod.png", "stored records by status for the largest pods"),
        "",
        "## How often people re-request, and how long answers take",
        "",
        f"Re-request rate: {shown['re-request rate']}; median time to accept: "
        f"{shown['median time to accept']}; {_unanswered(answered)}.",
        "",
        image("request-counters.png", "stored records by requestCounter"),
        "",
        image("time-to-answer.png", "share of requests answered within a time, and never answered"),
        "",
        "## What crossPod changed",
        "",
        *_policy_lines(frames, periods),
        "",
        image("pod-heatmap.png", "accepted connections between the largest pods"),
        "",
        "## Where enabling crossPod would connect the most people",
        "",
        *_candidate_lines(frames, candidates),
        "",
        image("crosspod-candidates.png", "pod pairs without crossPod by wishes never sent"),
        "",
        "## Refused answers",
        "",
        image("error-reasons.png", "refused answers by reason over time"),
        "",
        "## The connection graph",
        "",
        *_table(["measure", "value"], _headline_rows(network)),
        "",
        image("degree-distribution.png", "users by number of accepted connections"),
        "",
        image("pod-graph.png", "pods and the connections between them"),
        "",
    ]
    return "\n".join(lines)


def write_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    outputs: str | os.PathLike[str] | None = None,
    top: int = 20,
    graphml: bool = False,
    progress: bool | None = None,
) -> Report:
    """Write a replayed run's charts and summary: the Python face of ``simkit report``.

    Parameters
    ----------
    run_dir : path
        A run folder whose outputs exist (``simkit run`` or ``simkit replay`` wrote them),
        with the wishes behind its events if ``simkit run`` wrote it (``demand.parquet``).
    out : path, optional
        Where to write (created if missing); ``RUN_DIR/report`` by default.
    outputs : path, optional
        The folder holding ``outcomes.parquet`` and ``connections.parquet``, if not
        `run_dir` (a replay run with ``--out``).
    top : int
        How many of the largest pods the per-pod chart, the heat map and the pod graph show;
        the heat map and the graph gather the other pods into one ``other``.
    graphml : bool
        Also write ``users.graphml`` and ``pods.graphml``.
    progress : bool, optional
        Show a progress bar over the report's stages on stderr; by default only when stderr
        is a terminal (and ``CI`` is not set).

    Raises
    ------
    InputError, RunDirError
        The run folder cannot be read (nothing is written).

    Examples
    --------
    >>> import tempfile
    >>> from simkit import replay_run
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = replay_run("data/samples/story", out=tmp)
    ...     report = write_report("data/samples/story", Path(tmp) / "report", outputs=tmp)
    ...     names = sorted(p.name for p in report.files)
    >>> names[:3], report.summary.name
    (['crosspod-candidates.png', 'degree-distribution.png', 'error-reasons.png'], 'report.md')
    >>> report.headline["events"], report.headline["records ACCEPTED"]
    (46, 2)
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    root = Path(run_dir)
    show = (sys.stderr.isatty() and not os.environ.get("CI")) if progress is None else progress
    with _Stages(3 + len(CHARTS) + 1, show) as stages:
        return _write(root, out, outputs, top, graphml, stages)


class _Stages:
    """A progress bar over the stages of a report (tqdm), or nothing when it would not be seen."""

    def __init__(self, total: int, show: bool) -> None:
        self._bar: Any = None
        if show:
            from tqdm import tqdm

            self._bar = tqdm(total=total, file=sys.stderr, unit="stage", leave=False)

    def __enter__(self) -> _Stages:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            if self._bar.desc and exc[0] is None:
                self._bar.update(1)
            self._bar.close()

    def start(self, label: str) -> None:
        """Name the stage now under way; the one before it is done."""
        if self._bar is not None:
            if self._bar.desc:
                self._bar.update(1)
            self._bar.set_description(label)


def _write(
    root: Path,
    out: str | os.PathLike[str] | None,
    outputs: str | os.PathLike[str] | None,
    top: int,
    graphml: bool,
    stages: _Stages,
) -> Report:
    stages.start("reading the run")
    frames = analysis.load(root, outputs)
    verify_run(root, outputs)  # the outputs read are those the manifest records, of these inputs
    target = Path(out) if out is not None else root / "report"
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"{target}: cannot create the report folder ({exc.strerror})") from None
    manifest_file = Path(outputs if outputs is not None else root) / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8")) if manifest_file.is_file() else {}

    stages.start("tables")
    # The charts' helpers, and a thread for the two slowest tables: both start now.
    beside = ThreadPoolExecutor(1, thread_name_prefix="simkit-report")
    try:
        with Drawers(processes=1 if len(frames.events) >= _ONE_DRAWER_FROM else 2) as drawers:
            return _tables_on(root, frames, target, manifest, top, graphml, stages, drawers, beside)
    finally:
        # Its tables are taken before the graph metrics; after a failure, it is not waited for.
        beside.shutdown(wait=False, cancel_futures=True)


def _tables_on(
    root: Path,
    frames: analysis.RunFrames,
    target: Path,
    manifest: Mapping[str, Any],
    top: int,
    graphml: bool,
    stages: _Stages,
    drawers: Drawers,
    beside: Executor,
) -> Report:
    tables = _Tables(frames, beside)
    for name, chart in _charts(tables, top):
        drawers.submit(name, chart)  # drawn beside this process, which computes the rest
    headline = analysis.summary(frames)
    tables.candidates, tables.answered  # noqa: B018  (done with the history, the requests)
    # The record history, the requests and their waits (a gigabyte on the whole network) have
    # served every table above; the graph metrics need their room.
    analysis._forget_history(frames)
    stages.start("graph metrics")
    network = graph.metrics(frames, tables.pods)  # on the record arrays: no user graph is built
    pngs: dict[str, bytes] = {}
    for name in CHARTS:
        stages.start(name)
        pngs[name] = drawers.result(name)
    files: dict[str, bytes | Callable[[Path], object]] = {name: pngs[name] for name in CHARTS}
    written = [target / name for name in CHARTS]
    if graphml:
        users = graph.user_graph(frames)
        files["users.graphml"] = lambda path: graph.write_graphml(users, path)
        files["pods.graphml"] = lambda path: graph.write_graphml(tables.pods, path)
        written += [target / "users.graphml", target / "pods.graphml"]
    stages.start("writing")
    text = _summary(
        frames,
        headline,
        network,
        tables.periods,
        tables.candidates,
        tables.answered,
        _title(root, manifest),
        {name: name for name in CHARTS},
    )
    summary = target / _SUMMARY
    files[_SUMMARY] = text.encode("utf-8")
    write_files(target, files, "simkit report")
    written.append(summary)
    return Report(summary, tuple(written), headline)
