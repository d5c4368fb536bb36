"""Tests of simkit.plots: each chart returns its Axes with the expected artists, words and
scales, and its legend lists only what it drew.

The frames come from the story sample, whose numbers the analysis doctests spell out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection, PolyCollection
from matplotlib.colors import LogNorm, to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from simkit import analysis, graph, plots, read_run
from simkit.events import Demand
from simkit.rules import REASONS

# Wishes behind the story, as in the doctest of simkit.analysis.unmet_demand: (20, 30) holds
# two wishes crossPod alone stands in the way of, by two people, (10, 20) one.
STORY_WISHES = [
    (1700000000000, 101, 201, "sent", 1700000000000),
    (1700000100000, 101, 301, "deferred", 1700002100000),
    (1700000200000, 102, 301, "dropped", None),
    (1700001000000, 202, 302, "blocked", None),
    (1700001100000, 201, 301, "dropped", None),
    (1700001200000, 203, 301, "dropped", None),
    (1700002000000, 102, 202, "dropped", None),
    (1700002200000, 301, 302, "sent", 1700002200000),
]


@pytest.fixture(scope="module")
def story() -> analysis.RunFrames:
    return analysis.from_run(read_run("data/samples/story"), demand=Demand.from_records(STORY_WISHES))


@pytest.fixture
def ax() -> Axes:
    return Figure().subplots()


def _legend(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


def _drawn_labels(ax: Axes) -> set[str]:
    """The labels of the artists drawn on the Axes (not legend proxies)."""
    return {str(a.get_label()) for a in [*ax.collections, *ax.lines, *ax.patches, *ax.containers]}


def test_status_timeline(story: analysis.RunFrames, ax: Axes) -> None:
    timeline = analysis.status_timeline(story)
    assert plots.status_timeline(timeline, ax=ax) is ax
    assert len(ax.collections) == 3
    assert _legend(ax) == ["PENDING", "ACCEPTED", "REJECTED"]
    assert set(_legend(ax)) <= _drawn_labels(ax)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("time (UTC)", "pairs with a stored record")
    # The top layer reaches the largest number of stored records at any time.
    top = max(p.vertices[:, 1].max() for p in ax.collections[-1].get_paths())
    assert top == timeline.sum(axis=1).max() == 4


def test_status_timeline_marks_policy_stages(story: analysis.RunFrames, ax: Axes) -> None:
    stages = analysis.crosspod_stages(analysis.crosspod_changes(story))
    times = stages.index.get_level_values("time")
    plots.status_timeline(analysis.status_timeline(story), ax=ax, marks=[*times, times[0]])
    lines = ax.get_lines()
    assert len(lines) == 2  # a repeated time is marked once
    assert [line.get_xdata()[0] for line in lines] == [mdates.date2num(t) for t in times]
    assert _legend(ax)[-1] == "crossPod change"
    assert set(_legend(ax)) <= _drawn_labels(ax)


def test_status_distribution_names_pods_and_says_its_order(story: analysis.RunFrames, ax: Axes) -> None:
    counts = analysis.with_pod_names(analysis.status_counts(story, by="pod"), story)
    plots.status_distribution(counts, ax=ax, order="most users first")
    assert len(ax.patches) == 3 * len(counts)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["pod-10", "pod-20", "pod-30"]
    widths = np.array([p.get_width() for p in ax.patches]).reshape(3, -1)  # status by pod
    assert widths.T.tolist() == counts[list(analysis.STATUS_COLUMNS)].to_numpy().tolist()
    assert ax.get_title() == "Stored records by status, by pod"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("stored records", "pod (most users first)")
    assert set(_legend(ax)) <= _drawn_labels(ax)


def test_status_distribution_of_pod_pairs_labels_both_pods(story: analysis.RunFrames, ax: Axes) -> None:
    pairs = analysis.with_pod_names(analysis.status_counts(story, by="pod_pair"), story)
    plots.status_distribution(pairs, ax=ax)
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["pod-10 / pod-10", "pod-10 / pod-20"]
    assert (ax.get_title(), ax.get_ylabel()) == ("Stored records by status, by pod pair", "pod pair")


def test_request_counters_on_a_log_scale(story: analysis.RunFrames, ax: Axes) -> None:
    plots.request_counters(analysis.request_counter_counts(story), ax=ax)
    assert [(p.get_x() + p.get_width() / 2, p.get_height()) for p in ax.patches] == [(1, 3), (2, 1)]
    assert [t.get_text() for t in ax.texts] == ["3", "1"]
    assert ax.get_yscale() == "log"
    assert ax.get_ylim()[0] < 1  # a bar of one record rises above the axis
    assert ax.get_xlabel() == "requestCounter (requests made on the record)"
    assert ax.get_ylabel() == "stored records (log scale)"


def test_time_to_answer_ends_at_the_answered_share(story: analysis.RunFrames, ax: Axes) -> None:
    shares = analysis.answered_within(story)
    answered = float(analysis.requests(story)["answer"].notna().mean())  # 5 of 7
    plots.time_to_answer(shares, ax=ax)
    accepted, rejected = (c for c in ax.collections if isinstance(c, PolyCollection))
    # The stack's top at the longest wait is the share of all requests ever answered.
    top = rejected.get_paths()[0].vertices
    assert top[:, 1].max() == pytest.approx(answered)
    assert accepted.get_paths()[0].vertices[:, 1].max() == pytest.approx(3 / 7)
    (line,) = ax.get_lines()
    assert line.get_ydata()[0] == pytest.approx(answered)
    assert _legend(ax) == ["accepted", "rejected", "answered by the end of the run: 71.4 %"]
    assert set(_legend(ax)) <= _drawn_labels(ax)
    assert [t.get_text() for t in ax.texts] == ["never answered: 28.6 %\n(2 of 7 requests)"]
    assert ax.get_xscale() == "log" and ax.get_ylim() == (0, 1)
    assert ax.get_xlabel() == "time from request to answer (log scale)"
    assert ax.get_ylabel() == "share of all requests answered within that time"


def test_time_to_answer_ticks_durations_a_reader_knows(ax: Axes) -> None:
    waits = pd.to_timedelta(["2min", "30min", "5h", "3D"])
    shares = pd.DataFrame({"ACCEPTED": [0.1, 0.2, 0.3, 0.4], "REJECTED": [0.0, 0.1, 0.1, 0.1]}, index=waits)
    shares.attrs["requests"] = 10
    plots.time_to_answer(shares, ax=ax)
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["10 min", "1 h", "6 h", "1 day"]
    assert [t.get_text() for t in ax.texts] == ["never answered: 50.0 %\n(5 of 10 requests)"]


def test_time_to_answer_over_a_short_range_ticks_finer_durations(ax: Axes) -> None:
    waits = pd.to_timedelta(["45s", "100s", "280s"])
    shares = pd.DataFrame({"ACCEPTED": [0.1, 0.2, 0.3], "REJECTED": [0.0, 0.1, 0.1]}, index=waits)
    shares.attrs["requests"] = 10
    plots.time_to_answer(shares, ax=ax)
    ax.figure.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["30 s", "1 min", "2 min", "5 min"]


def test_request_counters_name_a_few_records_plainly(story: analysis.RunFrames, ax: Axes) -> None:
    plots.request_counters(analysis.request_counter_counts(story), ax=ax)
    low, high = ax.get_ylim()
    named = [
        text
        for axis_ticks, formatter in (
            (ax.yaxis.get_majorticklocs(), ax.yaxis.get_major_formatter()),
            (ax.yaxis.get_minorticklocs(), ax.yaxis.get_minor_formatter()),
        )
        for value in axis_ticks
        if low <= value <= high and (text := formatter(value, 0))
    ]
    assert named == ["1", "2"]  # no fraction of a record, no powers of ten
    assert ax.get_ylim()[1] > 3 * 1.2  # room above the tallest bar (3) for its label


def test_time_to_answer_without_requests_says_so(ax: Axes) -> None:
    shares = pd.DataFrame({"ACCEPTED": [], "REJECTED": []}, index=pd.to_timedelta([]))
    shares.attrs["requests"] = 3
    plots.time_to_answer(shares, ax=ax)
    assert [t.get_text() for t in ax.texts] == ["no answered requests"]


def test_pod_heatmap_on_a_log_scale_with_names(story: analysis.RunFrames, ax: Axes) -> None:
    matrix = analysis.pod_matrix(story)
    enabled = analysis.crosspod_matrix(story, matrix.index)
    plots.pod_heatmap(analysis.with_pod_names(matrix, story), analysis.with_pod_names(enabled, story), ax=ax)
    (image,) = ax.images
    # Cells without a connection are masked: white, not the lightest colour.
    data = image.get_array()
    assert np.ma.getmaskarray(data).tolist() == (matrix.to_numpy() == 0).tolist()
    assert np.ma.filled(data, 0).tolist() == matrix.to_numpy().tolist()
    assert isinstance(image.norm, LogNorm) and image.norm.vmin == 1
    (dots,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    # Pods 10 and 30 (rows and columns 1 and 2, largest first) have crossPod at the end.
    assert sorted(map(tuple, dots.get_offsets().tolist())) == [(1.0, 2.0), (2.0, 1.0)]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["pod-20", "pod-10", "pod-30"]
    assert ax.get_title() == "Accepted connections between pods"
    assert ax.get_ylabel() == "pod (most users first)"
    assert ax.get_xlabel() == "pod (most users first)\n• crossPod enabled at the end   white: no connection"
    assert len(ax.figure.axes) == 2  # and its colour bar
    assert ax.figure.axes[1].get_ylabel() == "accepted connections (log scale)"


def test_pod_heatmap_sets_the_gathered_pods_apart(story: analysis.RunFrames, ax: Axes) -> None:
    matrix = analysis.with_pod_names(analysis.pod_matrix(story, top=1, other=True), story)
    plots.pod_heatmap(matrix, ax=ax, colorbar=False)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["pod-20", "other (2 pods)"]
    assert [line.get_ydata()[0] for line in ax.get_lines()][:1] == [0.5]
    # No crossPod drawn, so none said; every cell without a connection is white.
    assert ax.get_xlabel() == "pod (most users first)\nwhite: no connection"
    assert len(ax.figure.axes) == 1


def test_two_pod_heatmaps_share_one_colour_scale(story: analysis.RunFrames) -> None:
    fig = Figure()
    left, right = fig.subplots(1, 2)
    plots.pod_heatmap(analysis.pod_matrix(story), ax=left, colorbar=False, vmax=1000)
    plots.pod_heatmap(analysis.pod_matrix(story, top=2), ax=right, vmax=1000)
    assert left.images[0].norm.vmax == right.images[0].norm.vmax == 1000


def test_reason_colours_are_distinct_hues() -> None:
    assert set(plots.REASON_COLORS) == {r.value for r in REASONS}
    assert len({to_hex(c) for c in plots.REASON_COLORS.values()}) == len(REASONS)


def test_error_reasons_stacks_a_bar_per_reason_and_bin(story: analysis.RunFrames, ax: Axes) -> None:
    errors = analysis.error_counts(story, freq="10min")
    plots.error_reasons(errors, ax=ax)
    assert len(ax.patches) == errors.size
    # Read top to bottom, like the stack; every entry in the colour of its bars.
    assert _legend(ax) == errors.columns.tolist()[::-1]
    bar_colours = {to_hex(p.get_facecolor()) for p in ax.patches}
    legend = ax.get_legend()
    assert {to_hex(h.get_facecolor()) for h in legend.legend_handles} == bar_colours
    assert ax.get_ylabel() == "refused answers per 10 min"
    assert ax.get_xlabel() == "time (UTC)"
    # Stacked: the top of each bin's last bar is the bin's total.
    tops = [p.get_y() + p.get_height() for p in ax.patches[-len(errors) :]]
    assert tops == errors.sum(axis=1).tolist()


def test_error_reasons_fades_and_names_a_partial_bin(story: analysis.RunFrames, ax: Axes) -> None:
    errors = analysis.error_counts(story, freq="7D")  # 45 minutes of events: 1 day of 7
    assert list(errors.attrs["partial"].values()) == [pytest.approx(1 / 7)]
    stages = analysis.crosspod_stages(analysis.crosspod_changes(story))
    plots.error_reasons(errors, ax=ax, marks=stages.index.get_level_values("time"))
    assert all(p.get_hatch() == "////" and p.get_alpha() == 0.45 for p in ax.patches)
    assert _legend(ax)[-2:] == ["partial bin", "crossPod change"]
    assert [t.get_text() for t in ax.texts] == ["1 day\nonly"]
    assert len(ax.get_lines()) == 2


def test_error_reasons_without_partial_bins_has_no_such_entry(story: analysis.RunFrames, ax: Axes) -> None:
    plots.error_reasons(analysis.error_counts(story, freq="10min"), ax=ax)
    assert "partial bin" not in _legend(ax) and "crossPod change" not in _legend(ax)
    assert all(p.get_alpha() in (None, 1.0) for p in ax.patches)


@pytest.mark.parametrize(("freq", "text"), [("1D", "day"), ("7D", "7 days"), ("6h", "6 h"), ("10s", "10 s")])
def test_error_reasons_names_the_bin_width(story: analysis.RunFrames, ax: Axes, freq: str, text: str) -> None:
    plots.error_reasons(analysis.error_counts(story, freq=freq), ax=ax)
    assert ax.get_ylabel() == f"refused answers per {text}"


def test_degree_distribution_on_log_axes_in_plain_words(story: analysis.RunFrames, ax: Axes) -> None:
    degrees = graph.degree_counts(graph.user_graph(story))
    plots.degree_distribution(degrees, ax=ax)
    (dots,) = ax.get_lines()
    assert dots.get_xdata().tolist() == [0, 1, 2]  # users with none are drawn too
    assert dots.get_ydata().tolist() == [4, 2, 1]
    assert (ax.get_xscale(), ax.get_yscale()) == ("symlog", "log")
    assert ax.get_title() == "How many accepted connections users have"
    assert ax.get_xlabel() == "accepted connections per user (log scale)"
    assert ax.get_ylabel() == "users (log scale)"
    assert "degree" not in f"{ax.get_title()} {ax.get_xlabel()} {ax.get_ylabel()}"


def test_pod_graph_draws_nodes_edges_and_names(story: analysis.RunFrames, ax: Axes) -> None:
    g = graph.pod_graph(story)
    plots.pod_graph(g, ax=ax)
    (nodes,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(nodes.get_offsets()) == 3
    edges = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert sum(len(c.get_segments()) for c in edges) == g.number_of_edges() == 2
    assert sorted(t.get_text() for t in ax.texts) == ["pod-10", "pod-20", "pod-30"]
    assert not ax.axison
    # 10-30 has crossPod at the end, 10-20 lost it: one solid and one dashed collection.
    assert _legend(ax)[:4] == [
        "crossPod enabled at the end",
        "no crossPod at the end",
        "private pod",
        "public pod",
    ]
    assert [c.get_linestyle()[0][1] is None for c in edges] == [True, False]


def _pods(n: int, *, crosspod: bool = True) -> nx.Graph:
    """A pod graph by hand: pod i has 10 * i users and i accepted connections with pod 1."""
    g = nx.Graph()
    for i in range(1, n + 1):
        g.add_node(i, name=f"pod-{i}", private=i % 5 != 0, users=10 * i, pending=0, accepted=0, rejected=0)
    for i in range(2, n + 1):
        g.add_edge(1, i, pending=0, accepted=i, rejected=0, weight=i, crosspod=crosspod)
    return g


@pytest.mark.parametrize("top", [1, 5, 12])
def test_pod_graph_of_the_top_pods_names_at_most_top_pods(top: int, ax: Axes) -> None:
    plots.pod_graph(graph.top_pods(_pods(30), top), ax=ax)
    names = [t.get_text() for t in ax.texts]
    assert len([n for n in names if n.startswith("pod-")]) == top
    assert names[-1] == f"other ({30 - top} pods)" and len(names) == top + 1
    assert ax.get_title() == f"Pods and their connections: the {top} largest"
    assert "other pods, gathered" in _legend(ax)


def test_pod_graph_legend_lists_only_what_is_drawn(ax: Axes) -> None:
    plots.pod_graph(_pods(4), ax=ax)  # no public pod, no pair without crossPod, nothing gathered
    legend = _legend(ax)
    assert legend[:2] == ["crossPod enabled at the end", "private pod"]
    assert not {"no crossPod at the end", "public pod", "other pods, gathered"} & set(legend)


def test_pod_graph_legend_gives_the_scale_of_circles_and_lines(ax: Axes) -> None:
    g = _pods(10)  # users 10 to 100; accepted connections 2 to 10
    plots.pod_graph(g, ax=ax)
    handles = {h.get_label(): h for h in ax.get_legend().legend_handles if isinstance(h, Line2D)}
    (nodes,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    # The sample circle of 100 users has the area of pod 10, which has 100 users.
    assert handles["100 users"].get_markersize() ** 2 == pytest.approx(nodes.get_sizes()[9])
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    widths = dict(zip([g.edges[e]["accepted"] for e in g.edges], lines.get_linewidths(), strict=True))
    assert handles["10 accepted connections"].get_linewidth() == pytest.approx(widths[10])


def test_pod_graph_uses_given_positions(story: analysis.RunFrames, ax: Axes) -> None:
    pos = {10: (0.0, 0.0), 20: (1.0, 0.0), 30: (0.0, 1.0)}
    plots.pod_graph(graph.pod_graph(story), pos=pos, ax=ax)
    (nodes,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert nodes.get_offsets().tolist() == [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]


def _empty_frames() -> analysis.RunFrames:
    frames = analysis.from_run(read_run("data/samples/story"))
    keep = frames.events.iloc[:0]
    return analysis.RunFrames(
        pods=frames.pods.iloc[:0],
        users=frames.users.iloc[:0],
        crosspod=frames.crosspod.iloc[:0],
        policy=frames.policy.iloc[:0],
        events=keep,
        connections=frames.connections.iloc[:0],
        demand=analysis.from_run(read_run("data/samples/story"), demand=Demand.empty()).demand,
    )


_EMPTY: list[tuple[str, Callable[[analysis.RunFrames, Axes], Axes]]] = [
    ("status_timeline", lambda f, ax: plots.status_timeline(analysis.status_timeline(f), ax=ax)),
    (
        "status_distribution",
        lambda f, ax: plots.status_distribution(analysis.status_counts(f, by="pod"), ax=ax),
    ),
    ("request_counters", lambda f, ax: plots.request_counters(analysis.request_counter_counts(f), ax=ax)),
    ("time_to_answer", lambda f, ax: plots.time_to_answer(analysis.answered_within(f), ax=ax)),
    ("pod_heatmap", lambda f, ax: plots.pod_heatmap(analysis.pod_matrix(f), ax=ax)),
    ("error_reasons", lambda f, ax: plots.error_reasons(analysis.error_counts(f), ax=ax)),
    (
        "degree_distribution",
        lambda f, ax: plots.degree_distribution(graph.degree_counts(graph.user_graph(f)), ax=ax),
    ),
    ("pod_graph", lambda f, ax: plots.pod_graph(graph.pod_graph(f), ax=ax)),
    ("crosspod_candidates", lambda f, ax: plots.crosspod_candidates(analysis.crosspod_candidates(f), ax=ax)),
]


@pytest.mark.parametrize(("name", "draw"), _EMPTY, ids=[n for n, _ in _EMPTY])
def test_a_chart_of_nothing_says_so(
    name: str, draw: Callable[[analysis.RunFrames, Axes], Axes], ax: Axes
) -> None:
    assert draw(_empty_frames(), ax) is ax
    assert any(t.get_text().startswith("no ") for t in ax.texts)
    assert ax.get_title()
    ax.figure.canvas.draw()  # and it renders


@pytest.fixture
def pyplot_figure() -> Iterator[None]:
    plt.close("all")
    yield
    plt.close("all")


@pytest.mark.usefixtures("pyplot_figure")
@pytest.mark.parametrize(("name", "draw"), _EMPTY, ids=[n for n, _ in _EMPTY])
def test_without_an_axes_a_chart_draws_on_the_current_one(
    story: analysis.RunFrames, name: str, draw: Callable[[analysis.RunFrames, Any], Axes]
) -> None:
    ax = draw(story, None)
    assert ax is plt.gca()
    assert ax.get_title()
    ax.figure.canvas.draw()


def test_charts_leave_their_frames_as_they_were(story: analysis.RunFrames, ax: Axes) -> None:
    timeline = analysis.status_timeline(story)
    errors = analysis.error_counts(story, freq="7D")
    shares = analysis.answered_within(story)
    matrix = analysis.pod_matrix(story, top=1, other=True)
    candidates = analysis.crosspod_candidates(story, top=1)
    before = [t.copy() for t in (timeline, errors, shares, matrix, candidates)]
    plots.status_timeline(timeline, ax=ax)
    plots.error_reasons(errors, ax=Figure().subplots())
    plots.time_to_answer(shares, ax=Figure().subplots())
    plots.pod_heatmap(matrix, ax=Figure().subplots())
    plots.crosspod_candidates(candidates, ax=Figure().subplots())
    for after, copy in zip((timeline, errors, shares, matrix, candidates), before, strict=True):
        pd.testing.assert_frame_equal(after, copy)
        assert after.attrs == copy.attrs


def test_crosspod_candidates_draws_a_bar_per_pair_most_wishes_on_top(
    story: analysis.RunFrames, ax: Axes
) -> None:
    table = analysis.with_pod_names(analysis.crosspod_candidates(story), story)
    assert plots.crosspod_candidates(table, ax=ax) is ax
    assert ax.get_title() == "Where enabling crossPod would connect the most people"
    assert ax.get_xlabel() == "wishes never sent (both users external, no crossPod between their pods)"
    assert ax.get_ylabel() == "pod pair (most wishes first)"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["pod-20 – pod-30", "pod-10 – pod-20"]
    assert [p.get_width() for p in ax.patches] == [2, 1]
    # The first bar is drawn on top.
    assert ax.yaxis_inverted() and ax.patches[0].get_y() < ax.patches[1].get_y()
    assert [t.get_text() for t in ax.texts] == ["2 wishes, 2 people", "1 wish, 1 person"]
    ax.figure.canvas.draw()


def test_crosspod_candidates_says_how_many_pairs_it_left_out(story: analysis.RunFrames, ax: Axes) -> None:
    table = analysis.with_pod_names(analysis.crosspod_candidates(story, top=1), story)
    plots.crosspod_candidates(table, ax=ax)
    assert len(ax.patches) == 1
    assert ax.get_xlabel().splitlines()[1] == "top 1 of 2 pod pairs; the other pair holds 1 more wish"


def test_crosspod_candidates_of_a_run_without_demand_says_it_is_unknown(ax: Axes) -> None:
    plots.crosspod_candidates(None, ax=ax)
    assert not ax.patches and not ax.get_xticks().size and not ax.get_yticks().size
    assert [t.get_text().splitlines()[0] for t in ax.texts] == [
        "demand unknown: this run has no demand table"
    ]
