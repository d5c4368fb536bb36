"""`plots`: charts of a run, drawn with matplotlib from frames that others computed.

Each function draws one frame produced by :mod:`simkit.analysis` (or one graph of
:mod:`simkit.graph`) on `ax` (the current Axes if ``None``), labels the axes with their
units and returns the Axes, like pandas' ``.plot`` and networkx's drawing functions. They
compute nothing of their own (no counting, grouping or statistics) and never call ``show``
or ``savefig``: the caller decides where a chart goes. ``matplotlib.pyplot`` is imported only
when no Axes is given, so that :mod:`simkit.report` can draw on its own Agg figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import matplotlib.dates as mdates
import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from simkit.rules import REASONS

__all__ = [
    "STATUS_COLORS",
    "degree_distribution",
    "error_reasons",
    "pod_graph",
    "pod_heatmap",
    "request_counters",
    "status_distribution",
    "status_timeline",
    "time_to_answer",
]

STATUS_COLORS: Mapping[str, str] = {"PENDING": "#e9a23b", "ACCEPTED": "#2a9d8f", "REJECTED": "#d1495b"}
"""One colour per record status, the same in every chart."""

_STATUSES = tuple(STATUS_COLORS)
# A colour per reason key from a qualitative map, fixed by the reason's place in REASONS.
_REASON_CMAP = "tab20"
_DURATION_UNITS = (
    ("days", pd.Timedelta(days=1)),
    ("hours", pd.Timedelta(hours=1)),
    ("minutes", pd.Timedelta(minutes=1)),
)


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.gca()


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes, color="0.4")


def _time_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC)")


def _duration_text(width: pd.Timedelta) -> str:
    for name, unit in (
        ("day", pd.Timedelta(days=1)),
        ("h", pd.Timedelta(hours=1)),
        ("min", pd.Timedelta(minutes=1)),
    ):
        if width >= unit and width % unit == pd.Timedelta(0):
            n = width // unit
            return f"{n} {name}{'s' if name == 'day' and n > 1 else ''}"
    return f"{width.total_seconds():g} s"


def status_timeline(
    timeline: pd.DataFrame,
    ax: Axes | None = None,
    *,
    marks: Iterable[pd.Timestamp] = (),
    mark_label: str = "crossPod change",
) -> Axes:
    """Stacked areas: stored pairs in each status over time.

    Parameters
    ----------
    timeline : DataFrame
        :func:`simkit.analysis.status_timeline` (with or without bins).
    ax : Axes, optional
    marks : iterable of Timestamp
        Times to mark with a dotted vertical line, such as the stages of
        :func:`simkit.analysis.crosspod_stages` (``stages.index.get_level_values("time")``).
    mark_label : str
        Legend entry of the marks.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run, status_timeline as table
    >>> ax = status_timeline(table(from_run(read_run("data/samples/story"))), ax=Figure().subplots())
    >>> ax.get_ylabel(), [t.get_text() for t in ax.get_legend().get_texts()]
    ('pairs with a stored record', ['PENDING', 'ACCEPTED', 'REJECTED'])
    """
    ax = _axes(ax)
    ax.set_title("Connection records by status")
    ax.set_ylabel("pairs with a stored record")
    _time_axis(ax)
    if timeline.empty:
        _no_data(ax, "stored records")
        return ax
    x = timeline.index.to_numpy()
    bottom = np.zeros(len(timeline))
    for status in _STATUSES:
        top = bottom + timeline[status].to_numpy()
        # Counts hold from one change to the next: steps, not slopes.
        ax.fill_between(x, bottom, top, step="post", color=STATUS_COLORS[status], label=status, linewidth=0)
        bottom = top
    for i, when in enumerate(dict.fromkeys(marks)):
        ax.axvline(
            float(mdates.date2num(pd.Timestamp(when))),  # type: ignore[no-untyped-call]
            color="0.15",
            linestyle=":",
            linewidth=1.2,
            label=mark_label if i == 0 else None,
        )
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", frameon=False)
    return ax


def status_distribution(counts: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Bars of stored records by status, one stacked bar per row of `counts`.

    Implicit pairs are not drawn: they are never stored, and a large private pod would
    dwarf every stored record. Their number is in the table.

    Parameters
    ----------
    counts : DataFrame
        :func:`simkit.analysis.status_counts`, or any frame with the status columns
        (for instance its largest rows).
    ax : Axes, optional

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run, status_counts
    >>> counts = status_counts(from_run(read_run("data/samples/story")), by="pod")
    >>> ax = status_distribution(counts, ax=Figure().subplots())
    >>> ax.get_xlabel(), ax.get_ylabel(), len(ax.patches)
    ('stored records', 'pod_id', 9)
    """
    ax = _axes(ax)
    ax.set_title("Stored records by status")
    ax.set_xlabel("stored records")
    names = counts.index.names
    ax.set_ylabel(" / ".join(str(n) for n in names) if any(n is not None for n in names) else "")
    if counts.empty:
        _no_data(ax, "rows")
        return ax
    labels = [" / ".join(str(v) for v in key) if isinstance(key, tuple) else str(key) for key in counts.index]
    y = np.arange(len(counts))
    left = np.zeros(len(counts))
    for status in _STATUSES:
        values = counts[status].to_numpy()
        ax.barh(y, values, left=left, color=STATUS_COLORS[status], label=status)
        left = left + values
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.legend(loc="lower right", frameon=False)
    return ax


def request_counters(counts: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Bars: stored records by ``requestCounter``.

    Parameters
    ----------
    counts : DataFrame
        :func:`simkit.analysis.request_counter_counts`.
    ax : Axes, optional

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run, request_counter_counts
    >>> counts = request_counter_counts(from_run(read_run("data/samples/story")))
    >>> ax = request_counters(counts, ax=Figure().subplots())
    >>> [int(p.get_height()) for p in ax.patches]
    [3, 1]
    """
    ax = _axes(ax)
    ax.set_title("Requests per record")
    ax.set_xlabel("requestCounter (requests made on the record)")
    ax.set_ylabel("stored records")
    if counts.empty:
        _no_data(ax, "stored records")
        return ax
    bars = ax.bar(
        counts.index.to_numpy(), counts["records"].to_numpy(), color=STATUS_COLORS["PENDING"], width=0.8
    )
    # The bars past 1 are small; their numbers say what the eye cannot.
    ax.bar_label(bars, fmt="{:,.0f}", padding=2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return ax


def _wait_unit(waits: pd.Series, label: str) -> tuple[str, pd.Timedelta]:
    """The unit to draw waits in: the one already on the axis label, else one that fits."""
    # A second curve on the same Axes must keep the unit of the first.
    for name, unit in _DURATION_UNITS:
        if f"({name})" in label:
            return name, unit
    longest = waits.max()
    for name, unit in _DURATION_UNITS:
        if longest >= 2 * unit:
            return name, unit
    return "seconds", pd.Timedelta(seconds=1)


def time_to_answer(waits: pd.Series, ax: Axes | None = None, *, label: str | None = None) -> Axes:
    """Empirical CDF of the time requests waited for their answer.

    Parameters
    ----------
    waits : Series of Timedelta
        :func:`simkit.analysis.answer_times` (accepted requests by default).
    ax : Axes, optional
    label : str, optional
        Legend entry, to compare runs on one Axes. The time unit (minutes, hours or days)
        is chosen from the longest wait and written on the x axis.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from simkit import read_run
    >>> from simkit.analysis import answer_times, from_run
    >>> ax = time_to_answer(answer_times(from_run(read_run("data/samples/story"))), ax=Figure().subplots())
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('time to answer (seconds)', 'share of requests answered within')
    """
    ax = _axes(ax)
    ax.set_ylabel("share of requests answered within")
    if ax.get_title() == "":
        ax.set_title("Time to answer")
    waits = waits.dropna()
    if waits.empty:
        ax.set_xlabel(ax.get_xlabel() or "time to answer")
        _no_data(ax, "answered requests")
        return ax
    unit_name, unit = _wait_unit(waits, ax.get_xlabel())
    ax.set_xlabel(f"time to answer ({unit_name})")
    ax.ecdf(waits.dt.total_seconds().to_numpy(dtype=float) / unit.total_seconds(), label=label)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    if label is not None:
        ax.legend(loc="lower right", frameon=False)
    return ax


def pod_heatmap(
    matrix: pd.DataFrame,
    crosspod: pd.DataFrame | None = None,
    ax: Axes | None = None,
    *,
    colorbar: bool = True,
) -> Axes:
    """Pod × pod heat map of connections, crossPod-enabled pairs marked with a dot.

    Parameters
    ----------
    matrix : DataFrame
        :func:`simkit.analysis.pod_matrix` (accepted records by default there).
    crosspod : DataFrame, optional
        :func:`simkit.analysis.crosspod_matrix` for the same pods.
    ax : Axes, optional
    colorbar : bool
        Add a colour bar beside the Axes.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from simkit import read_run
    >>> from simkit.analysis import crosspod_matrix, from_run, pod_matrix
    >>> frames = from_run(read_run("data/samples/story"))
    >>> m = pod_matrix(frames)
    >>> ax = pod_heatmap(m, crosspod_matrix(frames, m.index), ax=Figure().subplots())
    >>> len(ax.images), [t.get_text() for t in ax.get_xticklabels()]
    (1, ['20', '10', '30'])
    """
    ax = _axes(ax)
    status = matrix.attrs.get("status")
    ax.set_title(f"{status.capitalize() if status else 'Stored'} connections between pods")
    ax.set_xlabel("pod (id, largest first)")
    ax.set_ylabel("pod (id, largest first)")
    if matrix.empty:
        _no_data(ax, "pods")
        return ax
    image = ax.imshow(matrix.to_numpy(), cmap="Greens", vmin=0, interpolation="nearest", aspect="auto")
    labels = [str(p) for p in matrix.columns]
    ax.set_xticks(np.arange(len(labels)), labels, rotation=90)
    ax.set_yticks(np.arange(len(labels)), labels)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="connections (stored records)", shrink=0.8)
    if crosspod is not None:
        rows, cols = np.nonzero(crosspod.to_numpy())
        ax.scatter(
            cols,
            rows,
            s=14,
            c="#1d3557",
            edgecolors="white",
            linewidths=0.5,
            marker="o",
            label="crossPod enabled at the end",
        )
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    return ax


def error_reasons(errors: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Stacked bars: refused answers per reason in each time bin.

    Parameters
    ----------
    errors : DataFrame
        :func:`simkit.analysis.error_counts` (its bin width in ``attrs["freq"]``).
    ax : Axes, optional

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from simkit import read_run
    >>> from simkit.analysis import error_counts, from_run
    >>> errors = error_counts(from_run(read_run("data/samples/story")), freq="10min")
    >>> ax = error_reasons(errors, ax=Figure().subplots())
    >>> ax.get_ylabel(), len(ax.get_legend().get_texts())
    ('refused answers per 10 min', 12)
    """
    ax = _axes(ax)
    width: pd.Timedelta | None = errors.attrs.get("freq")
    ax.set_title("Refused answers by reason")
    ax.set_ylabel(f"refused answers per {_duration_text(width)}" if width is not None else "refused answers")
    _time_axis(ax)
    if errors.empty or not len(errors.columns):
        _no_data(ax, "refused answers")
        return ax
    import matplotlib

    cmap = matplotlib.colormaps[_REASON_CMAP]
    places = {r.value: i for i, r in enumerate(REASONS)}
    x = errors.index.to_numpy()
    bar_width = (width / pd.Timedelta(days=1)) if width is not None else 0.8
    bottom = np.zeros(len(errors))
    for reason in errors.columns:
        values = errors[reason].to_numpy()
        ax.bar(
            x,
            values,
            width=bar_width,
            bottom=bottom,
            align="edge",
            label=reason,
            color=cmap(places.get(reason, 0)),
        )
        bottom = bottom + values
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize="small")
    return ax


def degree_distribution(degrees: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Bars: how many users have each number of accepted connections.

    Parameters
    ----------
    degrees : DataFrame
        :func:`simkit.graph.degree_counts`.
    ax : Axes, optional

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run
    >>> from simkit.graph import degree_counts, user_graph
    >>> degrees = degree_counts(user_graph(from_run(read_run("data/samples/story"))))
    >>> ax = degree_distribution(degrees, ax=Figure().subplots())
    >>> ax.get_xlabel(), [int(p.get_height()) for p in ax.patches]
    ('accepted connections per user (records)', [4, 2, 1])
    """
    ax = _axes(ax)
    status = degrees.attrs.get("status")
    ax.set_title("Degree distribution")
    ax.set_xlabel(f"{status.lower() if status else 'stored'} connections per user (records)")
    ax.set_ylabel("users")
    if degrees.empty:
        _no_data(ax, "users")
        return ax
    ax.bar(degrees.index.to_numpy(), degrees["users"].to_numpy(), color=STATUS_COLORS["ACCEPTED"], width=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return ax


def _edge_data(g: nx.Graph) -> list[tuple[Any, Any, bool, float]]:
    """Each edge of a pod graph with its crossPod flag and accepted connections."""
    return [
        (u, v, bool(d.get("crosspod", False)), float(d.get("accepted", 0))) for u, v, d in g.edges(data=True)
    ]


def pod_graph(
    g: nx.Graph, pos: Mapping[Any, tuple[float, float]] | None = None, ax: Axes | None = None
) -> Axes:
    """Draw a :func:`simkit.graph.pod_graph`: pods sized by users, links by connections.

    Node area grows with the pod's users (private pods filled, public pods hollow); an
    edge's width grows with its accepted connections; crossPod-enabled pairs are solid,
    pairs whose records outlived a disabled crossPod are dashed.

    Parameters
    ----------
    g : networkx.Graph
    pos : mapping, optional
        Node positions; :func:`simkit.graph.pod_layout` if left out.
    ax : Axes, optional

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run
    >>> from simkit.graph import pod_graph as build
    >>> ax = pod_graph(build(from_run(read_run("data/samples/story"))), ax=Figure().subplots())
    >>> len(ax.collections), sorted(t.get_text() for t in ax.texts)
    (3, ['pod-10', 'pod-20', 'pod-30'])
    """
    from simkit.graph import pod_layout

    ax = _axes(ax)
    ax.set_title("Pods and their connections")
    ax.set_axis_off()
    if not g.number_of_nodes():
        _no_data(ax, "pods")
        return ax
    pos = dict(pos) if pos is not None else pod_layout(g)
    nodes = list(g.nodes)
    users = np.array([g.nodes[p].get("users", 1) for p in nodes], dtype=float)
    sizes = 60 + 600 * np.sqrt(users / users.max()) if users.max() > 0 else np.full(len(nodes), 60.0)
    private = [bool(g.nodes[p].get("private", True)) for p in nodes]
    # Plain matplotlib rather than networkx's drawing helpers, which load pyplot.
    widest = max([1.0, *(float(a) for *_, a in g.edges(data="accepted", default=0))])
    for enabled, style in ((True, "solid"), (False, "dashed")):
        edges = [(u, v, a) for u, v, c, a in _edge_data(g) if c is enabled]
        ax.add_collection(
            LineCollection(
                [[pos[u], pos[v]] for u, v, _ in edges],
                linewidths=[0.5 + 4.0 * a / widest for *_, a in edges],
                linestyles=style,
                colors="0.45",
                zorder=1,
            )
        )
    xy = np.array([pos[p] for p in nodes], dtype=float)
    ax.scatter(
        xy[:, 0],
        xy[:, 1],
        s=sizes,
        c=[STATUS_COLORS["ACCEPTED"] if p else "white" for p in private],
        edgecolors=STATUS_COLORS["ACCEPTED"],
        linewidths=1.5,
        zorder=2,
    )
    for p, (x, y) in zip(nodes, xy.tolist(), strict=True):
        ax.text(x, y, str(g.nodes[p].get("name", p)), ha="center", va="center", fontsize=8, zorder=3)
    ax.margins(0.12)
    ax.legend(
        handles=[
            Line2D([], [], color="0.45", linestyle="solid", label="crossPod enabled"),
            Line2D([], [], color="0.45", linestyle="dashed", label="crossPod disabled"),
            Line2D([], [], marker="o", linestyle="", color=STATUS_COLORS["ACCEPTED"], label="private pod"),
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markerfacecolor="white",
                color=STATUS_COLORS["ACCEPTED"],
                label="public pod",
            ),
        ],
        loc="lower left",
        frameon=False,
        fontsize="small",
    )
    return ax
