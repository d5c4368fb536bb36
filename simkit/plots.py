"""`plots`: charts of a run, drawn with matplotlib from frames that others computed.

Each function draws one frame produced by :mod:`simkit.analysis` (or one graph of
:mod:`simkit.graph`) on `ax` (the current Axes if ``None``), labels the axes in plain words
with their units and returns the Axes, like pandas' ``.plot`` and networkx's drawing
functions. They compute nothing of their own (no counting, grouping or statistics) and never
call ``show`` or ``savefig``: the caller decides where a chart goes. ``matplotlib.pyplot`` is
imported only when no Axes is given, so that :mod:`simkit.report` can draw on its own Agg
figures.

A chart must not mislead at any scale: counts with a long tail are drawn on log axes, a
legend lists only what is drawn, and a chart of a sample says what was left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap, LogNorm, SymLogNorm
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    NullLocator,
    PercentFormatter,
    SymmetricalLogLocator,
)

from simkit.rules import Reason

if TYPE_CHECKING:  # a pod graph comes with networkx imported; drawing charts needs none
    import networkx as nx

__all__ = [
    "REASON_COLORS",
    "STATUS_COLORS",
    "crosspod_candidates",
    "degree_distribution",
    "difference_heatmap",
    "error_reasons",
    "pair_differences",
    "pod_graph",
    "pod_heatmap",
    "request_counters",
    "status_distribution",
    "status_timeline",
    "status_timelines",
    "time_to_answer",
]

STATUS_COLORS: Mapping[str, str] = {"PENDING": "#e9a23b", "ACCEPTED": "#2a9d8f", "REJECTED": "#d1495b"}
"""One colour per record status, the same in every chart."""

REASON_COLORS: Mapping[str, str] = {
    # The most frequent reasons take the most distinct hues; no two share a hue.
    Reason.NOT_FOUND.value: "#1f77b4",  # blue
    Reason.ALREADY_PENDING.value: "#ff7f0e",  # orange
    Reason.CROSSPOD_DISABLED.value: "#d62728",  # red
    Reason.IMPLICIT.value: "#2ca02c",  # green
    Reason.ENTITLEMENT.value: "#9467bd",  # purple
    Reason.SELF.value: "#8c564b",  # brown
    Reason.UNKNOWN_USER.value: "#e377c2",  # pink
    Reason.NOT_CONNECTED.value: "#17becf",  # cyan
    Reason.OWN_REQUEST.value: "#bcbd22",  # olive
    Reason.ACCEPTED.value: "#222222",  # black
    Reason.NOT_PENDING.value: "#8f8f8f",  # grey
    Reason.UNKNOWN_CALLER.value: "#f2c80f",  # yellow
}
"""One colour per reason key, each a distinct hue, the same in every chart."""

_STATUSES = tuple(STATUS_COLORS)
# Pod levels of a table's index, and what to call them on an axis.
_POD_AXES = {("pod_id",): "pod", ("pod",): "pod", ("pod_a", "pod_b"): "pod pair"}
_DURATION_UNITS = (
    ("days", pd.Timedelta(days=1)),
    ("hours", pd.Timedelta(hours=1)),
    ("minutes", pd.Timedelta(minutes=1)),
)
# Round durations a reader knows, for the ticks of a log time axis (seconds, label); the
# finer ones too where fewer than two of the coarse ones fall in a short range.
_DURATION_TICKS = (
    (1, "1 s"),
    (10, "10 s"),
    (60, "1 min"),
    (600, "10 min"),
    (3_600, "1 h"),
    (6 * 3_600, "6 h"),
    (86_400, "1 day"),
    (7 * 86_400, "1 week"),
    (30 * 86_400, "30 days"),
    (365 * 86_400, "1 year"),
)
_FINER_DURATION_TICKS = (
    (2, "2 s"),
    (5, "5 s"),
    (20, "20 s"),
    (30, "30 s"),
    (120, "2 min"),
    (300, "5 min"),
    (1_200, "20 min"),
    (1_800, "30 min"),
    (2 * 3_600, "2 h"),
    (12 * 3_600, "12 h"),
    (2 * 86_400, "2 days"),
    (14 * 86_400, "2 weeks"),
    (90 * 86_400, "90 days"),
)
# Heat map cells from one connection up; a light start keeps one connection visible and
# distinct from the white of none.
_HEAT_CMAP = "Greens"
_HEAT_FROM = 0.2
# Pod graph: node area per user at the largest pod, and the width of the busiest link (pt).
_NODE_AREA = 1400.0
_NODE_MIN = 30.0
_EDGE_WIDTH = (0.4, 6.0)
_GATHERED = "#b8b8b8"
_DECADE_STEPS = (1.0, 2.0, 5.0)


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


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _counts_axis(axis: Any) -> None:
    """Whole numbers with thousands separators on a linear axis of counts."""
    axis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    axis.set_major_formatter(FuncFormatter(lambda v, _: _count(v)))


def _percent(share: float) -> str:
    return f"{100 * share:.1f} %"


def _marks(ax: Axes, marks: Iterable[pd.Timestamp], label: str) -> None:
    for i, when in enumerate(dict.fromkeys(pd.Timestamp(m) for m in marks)):
        ax.axvline(
            float(mdates.date2num(when)),  # type: ignore[no-untyped-call]
            color="0.15",
            linestyle=":",
            linewidth=1.2,
            label=label if i == 0 else None,
        )


def _round_steps(largest: float, smallest: float = 1.0, most: int = 3) -> list[float]:
    """Powers of ten from `smallest` to `largest`, at most `most` of them, largest kept."""
    if largest < smallest:
        return [largest] if largest > 0 else []
    top = int(np.floor(np.log10(largest)))
    bottom = int(np.ceil(np.log10(max(smallest, 1e-12))))
    powers = [10.0**k for k in range(bottom, top + 1)]
    step = max(1, -(-len(powers) // most))
    return powers[::-1][::step][::-1]


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
    _marks(ax, marks, mark_label)
    ax.set_ylim(bottom=0)
    _counts_axis(ax.yaxis)
    ax.legend(loc="upper left", frameon=False)
    return ax


def status_distribution(counts: pd.DataFrame, ax: Axes | None = None, *, order: str | None = None) -> Axes:
    """Bars of stored records by status, one stacked bar per row of `counts`.

    Implicit pairs are not drawn: they are never stored, and a large private pod would
    dwarf every stored record. Their number is in the table.

    Parameters
    ----------
    counts : DataFrame
        :func:`simkit.analysis.status_counts`, or any frame with the status columns (for
        instance its largest rows, with pod names from
        :func:`simkit.analysis.with_pod_names`). Rows are drawn top to bottom in order.
    ax : Axes, optional
    order : str, optional
        How the rows are sorted, said on the axis: ``"most users first"``.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run, status_counts, with_pod_names
    >>> frames = from_run(read_run("data/samples/story"))
    >>> counts = with_pod_names(status_counts(frames, by="pod"), frames)
    >>> ax = status_distribution(counts, ax=Figure().subplots(), order="by id")
    >>> ax.get_title(), ax.get_ylabel(), ax.get_yticklabels()[0].get_text()
    ('Stored records by status, by pod', 'pod (by id)', 'pod-10')
    """
    ax = _axes(ax)
    names = tuple(str(n) for n in counts.index.names if n is not None)
    what = _POD_AXES.get(names, " / ".join(names))
    ax.set_title("Stored records by status" + (f", by {what}" if what else ""))
    ax.set_xlabel("stored records")
    ax.set_ylabel(f"{what} ({order})" if order and what else what or (order or ""))
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
    _counts_axis(ax.xaxis)
    ax.legend(loc="lower right", frameon=False)
    return ax


def request_counters(counts: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Bars on a log scale: stored records by ``requestCounter``.

    Nearly every record holds one request, so a linear axis would hide the bars past 1;
    each bar also carries its number.

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
    >>> [int(p.get_height()) for p in ax.patches], ax.get_yscale()
    ([3, 1], 'log')
    """
    ax = _axes(ax)
    ax.set_title("Requests per record")
    ax.set_xlabel("requestCounter (requests made on the record)")
    ax.set_ylabel("stored records (log scale)")
    ax.set_yscale("log")
    if counts.empty:
        _no_data(ax, "stored records")
        return ax
    bars = ax.bar(
        counts.index.to_numpy(), counts["records"].to_numpy(), color=STATUS_COLORS["PENDING"], width=0.8
    )
    ax.bar_label(bars, fmt="{:,.0f}", padding=2)
    # From half a record (a bar of one stands out from the axis), with room above the
    # tallest bar for its label: a share of the decades shown, and a little more.
    high = float(counts["records"].max())
    decades = np.log10(max(high, 1.0) / 0.5)
    ax.set_ylim(0.5, max(high, 1.0) * 10 ** (0.12 * decades) * 1.15)
    # Within two decades 1, 2 and 5 of each are named (a few records still get a scale);
    # over more, the decades. Never a fraction of a record, nor powers of ten.
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=_DECADE_STEPS if high < 100 else (1.0,)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _count(v) if v >= 1 else ""))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return ax


def _duration_axis(ax: Axes, shortest: float, longest: float) -> None:
    """A log x axis in seconds, ticked at durations a reader knows."""
    left, right = max(shortest, 1.0) / 1.5, max(longest, 1.0) * 1.5
    ax.set_xscale("log")
    ax.set_xlim(left, right)
    ticks = [(s, t) for s, t in _DURATION_TICKS if left <= s <= right]
    if len(ticks) < 2:
        ticks = sorted(ticks + [(s, t) for s, t in _FINER_DURATION_TICKS if left <= s <= right])
    if len(ticks) >= 2:
        ax.xaxis.set_major_locator(FixedLocator([float(s) for s, _ in ticks]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: dict(ticks).get(round(v), "")))
        ax.xaxis.set_minor_locator(NullLocator())
    else:  # under a factor of two or so: matplotlib's ticks, read as durations
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _duration_text(pd.Timedelta(seconds=v))))
        ax.xaxis.set_minor_formatter(NullFormatter())


def time_to_answer(shares: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Stacked steps on a log time axis: the share of all requests answered within a time.

    Accepted and rejected answers are stacked, so the top of the stack is the share of
    requests answered within that time; it ends at the share answered by the end of the
    run (a dashed line), and the gap above it is the share never answered.

    Parameters
    ----------
    shares : DataFrame
        :func:`simkit.analysis.answered_within`.
    ax : Axes, optional

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from simkit import read_run
    >>> from simkit.analysis import answered_within, from_run
    >>> ax = time_to_answer(answered_within(from_run(read_run("data/samples/story"))), ax=Figure().subplots())
    >>> ax.get_xscale(), ax.get_ylabel()
    ('log', 'share of all requests answered within that time')
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['accepted', 'rejected', 'answered by the end of the run: 71.4 %']
    """
    ax = _axes(ax)
    ax.set_title("Time to answer")
    ax.set_xlabel("time from request to answer (log scale)")
    ax.set_ylabel("share of all requests answered within that time")
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    requests = int(shares.attrs.get("requests", 0))
    if shares.empty:
        _no_data(ax, "answered requests" if requests else "requests")
        return ax
    x = pd.TimedeltaIndex(shares.index).total_seconds().to_numpy(dtype=float)
    # A wait of no time at all is drawn at the axis' first second.
    x = np.maximum(x, 1.0)
    accepted = shares["ACCEPTED"].to_numpy(dtype=float)
    answered = accepted + shares["REJECTED"].to_numpy(dtype=float)
    # Steps hold from one wait to the next and on to the edge of the axis.
    x = np.append(x, x[-1] * 1.5)
    accepted, answered = np.append(accepted, accepted[-1]), np.append(answered, answered[-1])
    ax.fill_between(
        x, 0, accepted, step="post", color=STATUS_COLORS["ACCEPTED"], label="accepted", linewidth=0
    )
    ax.fill_between(
        x, accepted, answered, step="post", color=STATUS_COLORS["REJECTED"], label="rejected", linewidth=0
    )
    final = float(answered[-1])
    ax.axhline(
        final,
        color="0.15",
        linestyle="--",
        linewidth=1,
        label=f"answered by the end of the run: {_percent(final)}",
    )
    _duration_axis(ax, float(x[0]), float(x[-2]))
    never = 1.0 - final
    if never > 0.005:
        ax.text(
            0.98,
            (final + 1.0) / 2,
            f"never answered: {_percent(never)}\n({round(never * requests):,} of {requests:,} requests)",
            transform=ax.get_yaxis_transform(),
            ha="right",
            va="center",
            fontsize="small",
            color="0.15",
        )
    ax.legend(loc="upper left", frameon=False, fontsize="small")
    return ax


def pod_heatmap(
    matrix: pd.DataFrame,
    crosspod: pd.DataFrame | None = None,
    ax: Axes | None = None,
    *,
    colorbar: bool = True,
    vmax: float | None = None,
) -> Axes:
    """Pod × pod heat map of connections on a log colour scale, crossPod pairs dotted.

    A few pod pairs hold most connections; on a log scale the others still show. Cells
    without a connection are white.

    Parameters
    ----------
    matrix : DataFrame
        :func:`simkit.analysis.pod_matrix` (accepted records by default there), with
        ``other=True`` to gather the smaller pods, and pod names from
        :func:`simkit.analysis.with_pod_names`.
    crosspod : DataFrame, optional
        :func:`simkit.analysis.crosspod_matrix` for the same pods (named the same way).
    ax : Axes, optional
    colorbar : bool
        Add a colour bar beside the Axes.
    vmax : float, optional
        The top of the colour scale; the largest cell by default. Give two maps drawn side
        by side the same, so that one colour means one number on both.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from simkit import read_run
    >>> from simkit.analysis import crosspod_matrix, from_run, pod_matrix, with_pod_names
    >>> frames = from_run(read_run("data/samples/story"))
    >>> m = pod_matrix(frames)
    >>> ax = pod_heatmap(with_pod_names(m, frames), with_pod_names(crosspod_matrix(frames, m.index), frames), ax=Figure().subplots())
    >>> len(ax.images), [t.get_text() for t in ax.get_xticklabels()]
    (1, ['pod-20', 'pod-10', 'pod-30'])
    >>> ax.get_xlabel()
    'pod (most users first)\\n• crossPod enabled at the end   white: no connection'
    """
    ax = _axes(ax)
    status = matrix.attrs.get("status")
    what = status.lower() if status else "stored"
    ax.set_title(f"{what.capitalize()} connections between pods")
    ax.set_ylabel("pod (most users first)")
    if matrix.empty:
        ax.set_xlabel("pod (most users first)")
        _no_data(ax, "pods")
        return ax
    values = matrix.to_numpy(dtype=float)
    top = float(vmax) if vmax is not None else float(values.max())
    import matplotlib

    cmap = ListedColormap(matplotlib.colormaps[_HEAT_CMAP](np.linspace(_HEAT_FROM, 1.0, 256))).with_extremes(
        bad="white"
    )
    image = ax.imshow(
        np.ma.masked_less(values, 1),
        cmap=cmap,
        norm=LogNorm(vmin=1, vmax=max(top, 10.0)),
        interpolation="nearest",
        aspect="auto",
    )
    labels = [str(p) for p in matrix.columns]
    ax.set_xticks(np.arange(len(labels)), labels, rotation=90)
    ax.set_yticks(np.arange(len(labels)), labels)
    gathered = matrix.attrs.get("other")
    if gathered is not None and len(labels) > 1 and str(matrix.columns[-1]) == str(gathered):
        # The gathered pods are not one pod: set their row and column apart.
        ax.axhline(len(labels) - 1.5, color="0.3", linewidth=1)
        ax.axvline(len(labels) - 1.5, color="0.3", linewidth=1)
    keys = []
    if crosspod is not None and crosspod.to_numpy().any():
        rows, cols = np.nonzero(crosspod.to_numpy())
        ax.scatter(cols, rows, s=10, c="#1d3557", edgecolors="white", linewidths=0.5, marker="o")
        keys.append("• crossPod enabled at the end")
    if (values < 1).any():
        keys.append("white: no connection")
    # The key goes under the axis label, where rotated pod names cannot cover it.
    ax.set_xlabel("pod (most users first)" + ("\n" + "   ".join(keys) if keys else ""))
    if colorbar:
        bar = ax.figure.colorbar(image, ax=ax, label=f"{what} connections (log scale)", shrink=0.8)
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _count(v)))
    return ax


def error_reasons(
    errors: pd.DataFrame,
    ax: Axes | None = None,
    *,
    marks: Iterable[pd.Timestamp] = (),
    mark_label: str = "crossPod change",
) -> Axes:
    """Stacked bars: refused answers per reason in each time bin, partial bins hatched.

    Each reason keeps its colour (:data:`REASON_COLORS`); the legend lists them top to
    bottom as they are stacked. A bin that reaches past the days of the run holds fewer
    days than the others: it is drawn faded and hatched and says how much it holds.

    Parameters
    ----------
    errors : DataFrame
        :func:`simkit.analysis.error_counts` (its bin width in ``attrs["freq"]`` and its
        partial bins in ``attrs["partial"]``).
    ax : Axes, optional
    marks : iterable of Timestamp
        Times to mark with a dotted vertical line, such as crossPod changes.
    mark_label : str
        Legend entry of the marks.

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
    partial: Mapping[pd.Timestamp, float] = errors.attrs.get("partial", {})
    ax.set_title("Refused answers by reason")
    per = _duration_text(width).removeprefix("1 ") if width is not None else None
    ax.set_ylabel(f"refused answers per {per}" if per else "refused answers")
    _time_axis(ax)
    if errors.empty or not len(errors.columns):
        _no_data(ax, "refused answers")
        return ax
    x = errors.index.to_numpy()
    bar_width = (width / pd.Timedelta(days=1)) if width is not None else 0.8
    whole = np.array([pd.Timestamp(t) not in partial for t in errors.index])
    bottom = np.zeros(len(errors))
    handles: list[Any] = []
    for reason in errors.columns:
        values = errors[reason].to_numpy()
        color = REASON_COLORS.get(reason, "0.5")
        for keep, faded in ((whole, False), (~whole, True)):
            if keep.any():
                ax.bar(
                    x[keep],
                    values[keep],
                    width=bar_width,
                    bottom=bottom[keep],
                    align="edge",
                    color=color,
                    alpha=0.45 if faded else 1.0,
                    hatch="////" if faded else None,
                    edgecolor="white",
                    linewidth=0.4,
                )
        handles.append(Patch(facecolor=color, label=reason))
        bottom = bottom + values
    # Read top to bottom, like the stack.
    handles.reverse()
    if (~whole).any() and width is not None:
        for t, total in zip(x[~whole], bottom[~whole], strict=True):
            inside = _duration_text(pd.Timedelta(width * partial[pd.Timestamp(t)]).round("1h"))
            ax.annotate(
                f"{inside}\nonly",
                (float(mdates.date2num(pd.Timestamp(t) + width / 2)), float(total)),  # type: ignore[no-untyped-call]
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize="x-small",
                color="0.3",
            )
        handles.append(
            Patch(facecolor="0.55", alpha=0.45, hatch="////", edgecolor="white", label="partial bin")
        )
    _marks(ax, marks, mark_label)
    handles += [h for h in ax.get_lines() if h.get_label() == mark_label]
    # Room above the tallest bar for the note on a partial bin.
    ax.set_ylim(0, max(float(bottom.max()), 1.0) * 1.12)
    _counts_axis(ax.yaxis)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize="small")
    return ax


def degree_distribution(degrees: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Dots on log axes: how many users have each number of accepted connections.

    A few users hold hundreds of connections and most hold a handful, so both axes are
    logarithmic; the connection axis is linear between 0 and 1 so that the users with none
    are drawn too.

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
    >>> ax.get_xlabel(), ax.get_lines()[0].get_ydata().tolist()
    ('accepted connections per user (log scale)', [4, 2, 1])
    """
    ax = _axes(ax)
    status = degrees.attrs.get("status")
    what = status.lower() if status else "stored"
    ax.set_title(f"How many {what} connections users have")
    ax.set_xlabel(f"{what} connections per user (log scale)")
    ax.set_ylabel("users (log scale)")
    ax.set_xscale("symlog", linthresh=1, linscale=0.4)
    ax.set_yscale("log")
    if degrees.empty:
        _no_data(ax, "users")
        return ax
    users = degrees["users"].to_numpy()
    some = users > 0
    ax.plot(
        degrees.index.to_numpy()[some],
        users[some],
        marker="o",
        markersize=4,
        linestyle="none",
        color=STATUS_COLORS["ACCEPTED"],
    )
    ax.set_xlim(left=-0.3)
    ax.set_ylim(bottom=0.7)
    # 1, 2, 5 in each decade: a short range still gets a few readable ticks.
    ax.xaxis.set_major_locator(SymmetricalLogLocator(base=10, linthresh=1, subs=_DECADE_STEPS))
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=_DECADE_STEPS))
    plain = FuncFormatter(lambda v, _: _count(v))
    ax.xaxis.set_major_formatter(plain)
    ax.yaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_locator(NullLocator())
    return ax


def _edge_data(g: nx.Graph) -> list[tuple[Any, Any, bool, float]]:
    """Each edge of a pod graph with its crossPod flag and accepted connections."""
    return [
        (u, v, bool(d.get("crosspod", False)), float(d.get("accepted", 0))) for u, v, d in g.edges(data=True)
    ]


def _edge_width(accepted: float, widest: float) -> float:
    # Width by the square root: the busiest links stand out, a single connection stays a hairline.
    low, high = _EDGE_WIDTH
    return low + (high - low) * float(np.sqrt(accepted / max(widest, 1.0)))


def pod_graph(
    g: nx.Graph, pos: Mapping[Any, tuple[float, float]] | None = None, ax: Axes | None = None
) -> Axes:
    """Draw a pod graph: pods sized by users, links as wide as their accepted connections.

    A circle's area grows with the pod's users (private pods filled, public pods hollow,
    gathered pods grey); a line's width grows with the square root of its accepted connections;
    pairs with crossPod enabled at the end of the run are solid, others dashed. The legend
    gives the scale of both and lists only the kinds drawn. Draw
    :func:`simkit.graph.top_pods` of a large network: every node is named.

    Parameters
    ----------
    g : networkx.Graph
        :func:`simkit.graph.pod_graph`, or :func:`simkit.graph.top_pods` of one.
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
    >>> sorted(t.get_text() for t in ax.texts)
    ['pod-10', 'pod-20', 'pod-30']
    >>> [t.get_text() for t in ax.get_legend().get_texts()][:3]
    ['crossPod enabled at the end', 'no crossPod at the end', 'private pod']
    """
    ax = _axes(ax)
    ax.set_axis_off()
    gathered = [p for p in g.nodes if g.nodes[p].get("gathered")]
    ax.set_title(
        "Pods and their connections"
        + (f": the {g.number_of_nodes() - len(gathered):,} largest" if gathered else "")
    )
    if not g.number_of_nodes():
        _no_data(ax, "pods")
        return ax
    if pos is None:
        from simkit.graph import pod_layout  # scipy and the run's tables: only when needed

        pos = pod_layout(g)
    pos = dict(pos)
    nodes = list(g.nodes)
    users = np.array([g.nodes[p].get("users", 1) for p in nodes], dtype=float)
    most = float(users.max()) if users.max() > 0 else 1.0
    sizes = np.maximum(_NODE_MIN, _NODE_AREA * users / most)
    # Plain matplotlib rather than networkx's drawing helpers, which load pyplot.
    edges = _edge_data(g)
    widest = max([1.0, *(a for *_, a in edges)])
    handles: list[Any] = []
    styles: tuple[tuple[bool, Literal["solid", "dashed"], str], ...] = (
        (True, "solid", "crossPod enabled at the end"),
        (False, "dashed", "no crossPod at the end"),
    )
    for enabled, style, label in styles:
        # The busiest links last, on top.
        drawn = sorted(((u, v, a) for u, v, c, a in edges if c is enabled), key=lambda e: e[2])
        if not drawn:
            continue
        ax.add_collection(
            LineCollection(
                [[pos[u], pos[v]] for u, v, _ in drawn],
                linewidths=[_edge_width(a, widest) for *_, a in drawn],
                linestyles=style,
                colors="0.45",
                alpha=0.7,
                zorder=1,
            )
        )
        handles.append(Line2D([], [], color="0.45", linestyle=style, linewidth=1.5, label=label))
    kind = [
        "gathered"
        if g.nodes[p].get("gathered")
        else "private"
        if g.nodes[p].get("private", True)
        else "public"
        for p in nodes
    ]
    face = {"private": STATUS_COLORS["ACCEPTED"], "public": "white", "gathered": _GATHERED}
    edge = {"private": STATUS_COLORS["ACCEPTED"], "public": STATUS_COLORS["ACCEPTED"], "gathered": "0.45"}
    xy = np.array([pos[p] for p in nodes], dtype=float)
    ax.scatter(
        xy[:, 0],
        xy[:, 1],
        s=sizes,
        c=[face[k] for k in kind],
        edgecolors=[edge[k] for k in kind],
        linewidths=1.5,
        zorder=2,
    )
    for p, (x, y), size in zip(nodes, xy.tolist(), sizes.tolist(), strict=True):
        ax.annotate(
            str(g.nodes[p].get("name", p)),
            (x, y),
            xytext=(0, -(np.sqrt(size) / 2 + 2)),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=8,
            zorder=3,
            bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.7},
        )
    ax.margins(0.12)
    for name, label in (
        ("private", "private pod"),
        ("public", "public pod"),
        ("gathered", "other pods, gathered"),
    ):
        if name in kind:
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="o",
                    linestyle="",
                    markersize=7,
                    markerfacecolor=face[name],
                    markeredgecolor=edge[name],
                    label=label,
                )
            )
    # The scales: a circle of so many users, a line of so many accepted connections.
    # Only sizes above the smallest circle drawn differ from one another.
    for n in _round_steps(most, smallest=max(float(users.min()), most * _NODE_MIN / _NODE_AREA, 1.0)):
        area = max(_NODE_MIN, _NODE_AREA * n / most)
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markersize=float(np.sqrt(area)),
                markerfacecolor="none",
                markeredgecolor="0.45",
                label=f"{_count(n)} user{'' if n == 1 else 's'}",
            )
        )
    if any(a for *_, a in edges):
        for n in _round_steps(widest, smallest=widest / 1000):
            handles.append(
                Line2D(
                    [],
                    [],
                    color="0.45",
                    linewidth=_edge_width(n, widest),
                    label=f"{_count(n)} accepted connection{'' if n == 1 else 's'}",
                )
            )
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
        fontsize="small",
        labelspacing=1.1,
        # Room for the largest sample circle beside its label.
        handlelength=4.0,
        handletextpad=1.2,
        borderaxespad=0.0,
    )
    return ax


# -- two runs compared (simkit.comparison) --------------------------------------------------


def pair_differences(
    a: pd.Series,
    b: pd.Series,
    ax: Axes | None = None,
    *,
    labels: Iterable[str] | None = None,
    what: str = "accepted connections",
) -> Axes:
    """Horizontal bars: a count per pod pair in run A and run B, on one scale, largest
    difference on top.

    Parameters
    ----------
    a, b : Series
        The counts of each run, in the same order (the rows of
        :attr:`simkit.comparison.Comparison.pairs`, ranked).
    ax : Axes, optional
    labels : iterable of str, optional
        One label per row (pod pair names); the index by default.
    what : str
        What is counted, for the axis label.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> ax = pair_differences(pd.Series([3, 1]), pd.Series([5, 1]), ax=Figure().subplots(), labels=["p – q", "p – r"])
    >>> ax.get_xlabel(), [t.get_text() for t in ax.get_yticklabels()]
    ('accepted connections (pairs of users)', ['p – q', 'p – r'])
    """
    ax = _axes(ax)
    ax.set_title(f"{what.capitalize()} per pod pair: A against B")
    ax.set_xlabel(f"{what} (pairs of users)")
    ax.set_ylabel("pod pair")
    if not len(a):
        _no_data(ax, "pod pairs")
        return ax
    names = [str(x) for x in (labels if labels is not None else a.index)]
    y = np.arange(len(names))
    ax.barh(y - 0.2, a.to_numpy(dtype=float), height=0.4, color="#9aa5b1", label="A")
    ax.barh(y + 0.2, b.to_numpy(dtype=float), height=0.4, color="#1d3557", label="B")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    _counts_axis(ax.xaxis)
    ax.legend(loc="lower right", frameon=False)
    return ax


def status_timelines(
    a: pd.DataFrame,
    b: pd.DataFrame,
    ax: Axes | None = None,
    *,
    marks: Iterable[pd.Timestamp] = (),
    mark_label: str = "crossPod change",
) -> Axes:
    """Lines: stored pairs in each status over time, run A dashed and run B solid, on one
    y-axis.

    Parameters
    ----------
    a, b : DataFrame
        :func:`simkit.analysis.status_timeline` of each run.
    ax : Axes, optional
    marks : iterable of Timestamp
        Times to mark with a dotted vertical line (the policy changes).
    mark_label : str

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run, status_timeline as table
    >>> t = table(from_run(read_run("data/samples/story")))
    >>> ax = status_timelines(t, t, ax=Figure().subplots())
    >>> ax.get_ylabel(), len(ax.get_lines())
    ('pairs with a stored record', 6)
    """
    ax = _axes(ax)
    ax.set_title("Connection records by status: A dashed, B solid")
    ax.set_ylabel("pairs with a stored record")
    _time_axis(ax)
    if a.empty and b.empty:
        _no_data(ax, "stored records")
        return ax
    for frame, style, run in ((a, "--", "A"), (b, "-", "B")):
        if frame.empty:
            continue
        for status in _STATUSES:
            ax.step(
                frame.index.to_numpy(),
                frame[status].to_numpy(),
                where="post",
                linestyle=style,
                color=STATUS_COLORS[status],
                linewidth=1.4,
                label=f"{status} ({run})",
            )
    _marks(ax, marks, mark_label)
    ax.set_ylim(bottom=0)
    _counts_axis(ax.yaxis)
    ax.legend(loc="upper left", frameon=False, ncols=2, fontsize="small")
    return ax


def difference_heatmap(
    diff: pd.DataFrame, ax: Axes | None = None, *, what: str = "accepted connections"
) -> Axes:
    """Pod × pod heat map of a difference B - A, diverging around 0 (RdBu: blue more in B,
    red fewer), on a symmetric log scale (linear between -1 and 1).

    Parameters
    ----------
    diff : DataFrame
        Pod × pod differences, pods named (two :func:`simkit.analysis.pod_matrix` tables
        of the same pods subtracted).
    ax : Axes, optional
    what : str
        What is counted, for the colour bar.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> d = pd.DataFrame([[0, 2], [2, -1]], index=["p", "q"], columns=["p", "q"])
    >>> ax = difference_heatmap(d, ax=Figure().subplots())
    >>> ax.images[0].norm.vmin, ax.images[0].norm.vmax
    (-2.0, 2.0)
    """
    ax = _axes(ax)
    ax.set_title(f"Difference in {what}, B - A")
    ax.set_xlabel("pod (most users first)")
    ax.set_ylabel("pod (most users first)")
    if diff.empty:
        _no_data(ax, "pods")
        return ax
    values = diff.to_numpy(dtype=float)
    top = max(float(np.abs(values).max()), 1.0)
    # A symmetric log scale: the few big cells do not wash out the many small ones.
    norm = SymLogNorm(linthresh=1.0, vmin=-top, vmax=top, base=10)
    image = ax.imshow(values, cmap="RdBu", norm=norm, interpolation="nearest", aspect="auto")
    labels = [str(p) for p in diff.columns]
    ax.set_xticks(np.arange(len(labels)), labels, rotation=90)
    ax.set_yticks(np.arange(len(labels)), [str(p) for p in diff.index])
    bar = ax.figure.colorbar(image, ax=ax, label=f"{what}, B - A (symmetric log scale)", shrink=0.8)
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _count(v)))
    return ax


def crosspod_candidates(candidates: pd.DataFrame | None, ax: Axes | None = None) -> Axes:
    """Horizontal bars: where enabling crossPod would connect the most people.

    One bar per pod pair without crossPod, top to bottom in the order given (most wishes
    first), as long as its wishes never sent that crossPod alone stood in the way of; each
    bar says how many and how many people made them. Under the axis, a note says how many
    pairs were left out and the wishes they hold, so a top-N chart does not pass for all.

    Parameters
    ----------
    candidates : DataFrame or None
        :func:`simkit.analysis.crosspod_candidates` (its ``crosspod_unmet`` and
        ``crosspod_users`` columns, and ``attrs["pairs"]``, ``attrs["left_out"]`` and
        ``attrs["left_out_unmet"]``), with pod names from
        :func:`simkit.analysis.with_pod_names`; ``None`` for a run without a demand
        table, whose demand is unknown (the chart says so rather than show no bars).
    ax : Axes, optional

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> table = pd.DataFrame(
    ...     {"crosspod_unmet": [40, 12], "crosspod_users": [25, 12]},
    ...     index=pd.MultiIndex.from_tuples([("Bank", "Fund"), ("Bank", "Broker")], names=["pod", "pod"]),
    ... )
    >>> table.attrs = {"pairs": 5, "left_out": 3, "left_out_unmet": 9}
    >>> ax = crosspod_candidates(table, ax=Figure().subplots())
    >>> [t.get_text() for t in ax.get_yticklabels()], [t.get_text() for t in ax.texts]
    (['Bank – Fund', 'Bank – Broker'], ['40 wishes, 25 people', '12 wishes, 12 people'])
    >>> print(ax.get_xlabel())
    wishes never sent (both users external, no crossPod between their pods)
    top 2 of 5 pod pairs; the other 3 hold 9 more wishes
    """
    ax = _axes(ax)
    ax.set_title("Where enabling crossPod would connect the most people")
    ax.set_ylabel("pod pair (most wishes first)")
    what = "wishes never sent (both users external, no crossPod between their pods)"
    if candidates is None:
        ax.set_xlabel(what)
        # No bars: an axis from 0 to 1 would read as a scale of nothing.
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(
            0.5,
            0.5,
            "demand unknown: this run has no demand table\n(only `simkit run` records the wishes behind its events)",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="0.4",
        )
        return ax
    pairs = int(candidates.attrs.get("pairs", len(candidates)))
    left_out = int(candidates.attrs.get("left_out", 0))
    if left_out:
        more = int(candidates.attrs.get("left_out_unmet", 0))
        others = "the other pair holds" if left_out == 1 else f"the other {left_out:,} hold"
        what += f"\ntop {len(candidates):,} of {pairs:,} pod pairs; {others} {more:,} more wish{'' if more == 1 else 'es'}"
    ax.set_xlabel(what)
    if candidates.empty:
        ax.set_xticks([])
        ax.set_yticks([])
        _no_data(ax, "pod pair without crossPod holds a wish never sent")
        return ax
    labels = [
        " – ".join(str(v) for v in key) if isinstance(key, tuple) else str(key) for key in candidates.index
    ]
    y = np.arange(len(candidates))
    wishes = candidates["crosspod_unmet"].to_numpy(dtype=float)
    people = candidates["crosspod_users"].to_numpy(dtype=np.int64)
    bars = ax.barh(y, wishes, color=REASON_COLORS[Reason.CROSSPOD_DISABLED.value], height=0.7)
    ax.bar_label(
        bars,
        labels=[
            f"{_count(w)} wish{'' if w == 1 else 'es'}, {p:,} {'person' if p == 1 else 'people'}"
            for w, p in zip(wishes, people, strict=True)
        ],
        padding=3,
        fontsize="small",
    )
    ax.set_yticks(y, labels)
    # Top to bottom; room for three bars at least, so one or two do not swell to fill the chart.
    ax.set_ylim(max(len(candidates), 3) - 0.3, -0.7)
    # Room on the right for the longest bar's label.
    ax.set_xlim(0, float(wishes.max()) * 1.4)
    _counts_axis(ax.xaxis)
    return ax
