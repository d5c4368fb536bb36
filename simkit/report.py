"""`report`: a replayed run's charts as PNG files and a one-page Markdown summary.

:func:`write_report` is the Python face of ``simkit report``: it reads a run folder with
:func:`simkit.analysis.load`, draws the charts of :mod:`simkit.plots` on its own figures
with matplotlib's Agg renderer (it never touches ``pyplot`` or the caller's backend), and
writes ``report.md`` with the headline numbers beside them. Every file is written to a
temporary name and renamed into place, and the same run gives the same bytes (the PNGs
carry no software version or timestamp). It writes only into its output folder and never
changes the run folder's tables.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import simkit.analysis as analysis
import simkit.graph as graph
import simkit.plots as plots
from simkit.errors import RunDirError
from simkit.io.atomic import write_bytes

__all__ = ["CHARTS", "Report", "write_report"]

CHARTS: tuple[str, ...] = (
    "status-timeline.png",
    "status-by-pod.png",
    "request-counters.png",
    "time-to-answer.png",
    "pod-heatmap.png",
    "error-reasons.png",
    "degree-distribution.png",
    "pod-graph.png",
)
"""The chart files of a report, in the order the summary shows them."""

_SUMMARY = "report.md"
_DPI = 100
# The timeline is drawn from at most about this many bins, whatever the run's length.
_TIMELINE_BINS = 400
# Policy stages listed one by one in the summary; the totals cover them all.
_POLICY_ROWS = 20


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


def _png(draw: Callable[[Axes], object], size: tuple[float, float]) -> bytes:
    fig = Figure(figsize=size, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    draw(fig.subplots())
    buffer = io.BytesIO()
    # No "Software" entry: the bytes must not change with matplotlib's version.
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _charts(
    frames: analysis.RunFrames, top: int, changes: pd.DataFrame, users: nx.DiGraph, pods: nx.Graph
) -> dict[str, tuple[Callable[[Axes], object], tuple[float, float]]]:
    """Each chart file: how to draw it on an Axes, and the figure size in inches."""
    largest = analysis.largest_pods(frames, top)
    by_pod = analysis.status_counts(frames, by="pod").loc[largest]
    timeline = analysis.status_timeline(frames)
    if len(timeline) > _TIMELINE_BINS:
        timeline = analysis.status_timeline(frames, freq=analysis.bin_width(frames, _TIMELINE_BINS))
    matrix = analysis.pod_matrix(frames, top=top)
    stages: list[pd.Timestamp] = (
        list(analysis.crosspod_stages(changes).index.get_level_values("time")) if len(changes) else []
    )

    def answer_times(ax: Axes) -> None:
        for answer in ("ACCEPTED", "REJECTED"):
            plots.time_to_answer(analysis.answer_times(frames, answer), ax=ax, label=answer.lower())

    wide, tall = (8.0, 4.5), (8.0, max(3.0, 1.2 + 0.3 * len(largest)))
    return {
        "status-timeline.png": (lambda ax: plots.status_timeline(timeline, ax=ax, marks=stages), wide),
        "status-by-pod.png": (lambda ax: plots.status_distribution(by_pod, ax=ax), tall),
        "request-counters.png": (
            lambda ax: plots.request_counters(analysis.request_counter_counts(frames), ax=ax),
            wide,
        ),
        "time-to-answer.png": (answer_times, wide),
        "pod-heatmap.png": (
            lambda ax: plots.pod_heatmap(matrix, analysis.crosspod_matrix(frames, matrix.index), ax=ax),
            (7.5, 7.0),
        ),
        "error-reasons.png": (
            lambda ax: plots.error_reasons(analysis.error_counts(frames), ax=ax),
            (9.0, 4.5),
        ),
        "degree-distribution.png": (
            lambda ax: plots.degree_distribution(graph.degree_counts(users), ax=ax),
            wide,
        ),
        "pod-graph.png": (lambda ax: plots.pod_graph(pods, ax=ax), (8.0, 7.0)),
    }


# -- the summary page ---------------------------------------------------------------------


def _number(value: Any) -> str:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, pd.Timedelta):
        return _duration(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.3g}"


def _share(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f} %"


def _duration(value: pd.Timedelta) -> str:
    seconds = round(value.total_seconds())
    parts = []
    for name, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size} {name}")
            seconds %= size
    if seconds or not parts:
        parts.append(f"{seconds} s")
    return " ".join(parts[:2])


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], numbers_from: int = 1) -> list[str]:
    """A Markdown table; columns from `numbers_from` on are right-aligned."""
    head = list(header)
    rule = ["---" if i < numbers_from else "--:" for i in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


_SHARES = ("acceptance rate", "re-request rate", "users connected across pods")


def _headline_rows(headline: pd.Series) -> list[list[str]]:
    return [[str(k), _share(v) if k in _SHARES else _number(v)] for k, v in headline.items()]


def _policy_lines(changes: pd.DataFrame) -> list[str]:
    if changes.empty:
        return ["The run has no crossPod policy events: crossPod stayed as it started."]
    stages = analysis.crosspod_stages(changes)
    measures = ("requests", "accepted", "crosspod_disabled")
    lines = [
        f"{len(changes):,} policy events ({int(changes['changed'].sum()):,} changed the relation) in "
        f"{len(stages):,} stages. For each pod pair, the traffic between its two pods in equal windows "
        "before and after the change, summed per stage (see `crosspod_changes` in docs/analysis.md):",
        "",
    ]
    header = ["time (UTC)", "set to", "pod pairs", "shortest window"]
    header += [f"{m.replace('_', ' ')} before / after" for m in measures]
    rows = [
        [
            f"{time:%Y-%m-%d %H:%M}",
            "enabled" if enabled else "disabled",
            f"{row['pairs']:,}",
            _duration(row["window"]),
            *(f"{row[f'{m}_before']:,} / {row[f'{m}_after']:,}" for m in measures),
        ]
        for (time, enabled), row in zip(
            stages.index, stages.head(_POLICY_ROWS).to_dict("records"), strict=False
        )
    ]
    totals = stages.sum(numeric_only=True)
    rows.append(
        [
            "**all**",
            "",
            f"{int(totals['pairs']):,}",
            "",
            *(f"{int(totals[f'{m}_before']):,} / {int(totals[f'{m}_after']):,}" for m in measures),
        ]
    )
    lines += _table(header, rows, numbers_from=2)
    if len(stages) > _POLICY_ROWS:
        lines += [
            "",
            f"The first {_POLICY_ROWS} of {len(stages):,} stages are listed; **all** sums every one.",
        ]
    return lines


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
    changes: pd.DataFrame,
    title: str,
    files: Mapping[str, str],
) -> str:
    ts = frames.events["ts"]
    span = (
        f"{len(ts):,} action events from {pd.Timestamp(int(ts.min()), unit='ms'):%Y-%m-%d %H:%M} to "
        f"{pd.Timestamp(int(ts.max()), unit='ms'):%Y-%m-%d %H:%M} UTC"
        if len(ts)
        else "no action events"
    )
    pods, users = len(frames.pods), len(frames.users)
    counts = analysis.status_counts(frames).iloc[0]
    stored = int(sum(counts[s] for s in analysis.STATUS_COLUMNS))

    def image(name: str, alt: str) -> str:
        return f"![{alt}]({files[name]})"

    lines = [
        f"# simkit report: {title}",
        "",
        f"{pods:,} pods, {users:,} users, {span}.",
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
        f"{stored:,} stored records: "
        + ", ".join(f"{int(counts[s]):,} {s}" for s in analysis.STATUS_COLUMNS)
        + ".",
        "",
        image("status-timeline.png", "stored records by status over time"),
        "",
        image("status-by-pod.png", "stored records by status for the largest pods"),
        "",
        "## How often people re-request, and how long answers take",
        "",
        f"Re-request rate: {_share(headline['re-request rate'])}; median time to accept: "
        f"{_number(headline['median time to accept'])}.",
        "",
        image("request-counters.png", "stored records by requestCounter"),
        "",
        image("time-to-answer.png", "time to answer, accepted and rejected requests"),
        "",
        "## What crossPod changed",
        "",
        *_policy_lines(changes),
        "",
        image("pod-heatmap.png", "accepted connections between the largest pods"),
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
) -> Report:
    """Write a replayed run's charts and summary: the Python face of ``simkit report``.

    Parameters
    ----------
    run_dir : path
        A run folder whose outputs exist (``simkit run`` or ``simkit replay`` wrote them).
    out : path, optional
        Where to write (created if missing); ``RUN_DIR/report`` by default.
    outputs : path, optional
        The folder holding ``outcomes.parquet`` and ``connections.parquet``, if not
        `run_dir` (a replay run with ``--out``).
    top : int
        How many of the largest pods the per-pod chart and the heat map show.
    graphml : bool
        Also write ``users.graphml`` and ``pods.graphml``.

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
    (['degree-distribution.png', 'error-reasons.png', 'pod-graph.png'], 'report.md')
    >>> report.headline["events"], report.headline["records ACCEPTED"]
    (46, 2)
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    root = Path(run_dir)
    frames = analysis.load(root, outputs)
    target = Path(out) if out is not None else root / "report"
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"{target}: cannot create the report folder ({exc.strerror})") from None
    manifest_file = Path(outputs if outputs is not None else root) / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8")) if manifest_file.is_file() else {}

    headline = analysis.summary(frames)
    users, pods = graph.user_graph(frames), graph.pod_graph(frames)
    network = graph.metrics(users, pods)
    written: list[Path] = []
    changes = analysis.crosspod_changes(frames)
    for name, (draw, size) in _charts(frames, top, changes, users, pods).items():
        write_bytes(target / name, _png(draw, size))
        written.append(target / name)
    if graphml:
        written.append(graph.write_graphml(users, target / "users.graphml"))
        written.append(graph.write_graphml(pods, target / "pods.graphml"))
    text = _summary(
        frames,
        headline,
        network,
        changes,
        _title(root, manifest),
        {name: name for name in CHARTS},
    )
    summary = target / _SUMMARY
    write_bytes(summary, text.encode("utf-8"))
    written.append(summary)
    return Report(summary, tuple(written), headline)
