"""Tests of simkit.plots: each chart returns its Axes with the expected artists and labels.

The frames come from the story sample, whose numbers the analysis doctests spell out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

from simkit import analysis, graph, plots, read_run


@pytest.fixture(scope="module")
def story() -> analysis.RunFrames:
    return analysis.from_run(read_run("data/samples/story"))


@pytest.fixture
def ax() -> Axes:
    return Figure().subplots()


def test_status_timeline(story: analysis.RunFrames, ax: Axes) -> None:
    timeline = analysis.status_timeline(story)
    assert plots.status_timeline(timeline, ax=ax) is ax
    assert len(ax.collections) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["PENDING", "ACCEPTED", "REJECTED"]
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
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == "crossPod change"


def test_status_distribution_stacks_one_bar_per_row(story: analysis.RunFrames, ax: Axes) -> None:
    counts = analysis.status_counts(story, by="pod")
    plots.status_distribution(counts, ax=ax)
    assert len(ax.patches) == 3 * len(counts)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["10", "20", "30"]
    widths = np.array([p.get_width() for p in ax.patches]).reshape(3, -1)  # status by pod
    assert widths.T.tolist() == counts[list(analysis.STATUS_COLUMNS)].to_numpy().tolist()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("stored records", "pod_id")


def test_status_distribution_of_pod_pairs_labels_both_pods(story: analysis.RunFrames, ax: Axes) -> None:
    plots.status_distribution(analysis.status_counts(story, by="pod_pair"), ax=ax)
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["10 / 10", "10 / 20"]
    assert ax.get_ylabel() == "pod_a / pod_b"


def test_request_counters(story: analysis.RunFrames, ax: Axes) -> None:
    plots.request_counters(analysis.request_counter_counts(story), ax=ax)
    assert [(p.get_x() + p.get_width() / 2, p.get_height()) for p in ax.patches] == [(1, 3), (2, 1)]
    assert [t.get_text() for t in ax.texts] == ["3", "1"]
    assert ax.get_xlabel() == "requestCounter (requests made on the record)"
    assert ax.get_ylabel() == "stored records"


def test_time_to_answer_draws_a_cdf_in_a_unit_it_names(ax: Axes) -> None:
    waits = pd.Series(pd.to_timedelta([1, 2, 3, 6], unit="h"))
    plots.time_to_answer(waits, ax=ax, label="accepted")
    (line,) = ax.get_lines()
    assert ax.get_xlabel() == "time to answer (hours)"
    assert ax.get_ylabel() == "share of requests answered within"
    x, y = line.get_data()
    assert max(x) == 6 and min(y) == 0 and max(y) == 1
    # A second curve keeps the first one's unit, though its own waits are shorter.
    plots.time_to_answer(pd.Series(pd.to_timedelta([30], unit="min")), ax=ax, label="rejected")
    assert ax.get_xlabel() == "time to answer (hours)"
    assert max(ax.get_lines()[1].get_data()[0]) == 0.5
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["accepted", "rejected"]


@pytest.mark.parametrize(
    ("waits", "unit"),
    [
        (["30s"], "seconds"),
        (["3min"], "minutes"),
        (["90min"], "minutes"),
        (["2h"], "hours"),
        (["3D"], "days"),
    ],
)
def test_time_to_answer_unit_follows_the_longest_wait(waits: list[str], unit: str, ax: Axes) -> None:
    plots.time_to_answer(pd.Series(pd.to_timedelta(waits)), ax=ax)
    assert ax.get_xlabel() == f"time to answer ({unit})"


def test_pod_heatmap_marks_crosspod_pairs(story: analysis.RunFrames, ax: Axes) -> None:
    matrix = analysis.pod_matrix(story)
    enabled = analysis.crosspod_matrix(story, matrix.index)
    plots.pod_heatmap(matrix, enabled, ax=ax)
    (image,) = ax.images
    assert np.asarray(image.get_array()).tolist() == matrix.to_numpy().tolist()
    (dots,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    # Pods 10 and 30 (rows and columns 1 and 2, largest first) have crossPod at the end.
    assert sorted(map(tuple, dots.get_offsets().tolist())) == [(1.0, 2.0), (2.0, 1.0)]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["20", "10", "30"]
    assert ax.get_title() == "Accepted connections between pods"
    assert ax.get_xlabel() == ax.get_ylabel() == "pod (id, largest first)"
    assert len(ax.figure.axes) == 2  # and its colour bar
    assert ax.figure.axes[1].get_ylabel() == "connections (stored records)"


def test_error_reasons_stacks_a_bar_per_reason_and_bin(story: analysis.RunFrames, ax: Axes) -> None:
    errors = analysis.error_counts(story, freq="10min")
    plots.error_reasons(errors, ax=ax)
    assert len(ax.patches) == errors.size
    assert [t.get_text() for t in ax.get_legend().get_texts()] == errors.columns.tolist()
    assert ax.get_ylabel() == "refused answers per 10 min"
    assert ax.get_xlabel() == "time (UTC)"
    # Stacked: the top of each bin's last bar is the bin's total.
    tops = [p.get_y() + p.get_height() for p in ax.patches[-len(errors) :]]
    assert tops == errors.sum(axis=1).tolist()


@pytest.mark.parametrize(
    ("freq", "text"), [("1D", "1 day"), ("7D", "7 days"), ("6h", "6 h"), ("10s", "10 s")]
)
def test_error_reasons_names_the_bin_width(story: analysis.RunFrames, ax: Axes, freq: str, text: str) -> None:
    plots.error_reasons(analysis.error_counts(story, freq=freq), ax=ax)
    assert ax.get_ylabel() == f"refused answers per {text}"


def test_degree_distribution(story: analysis.RunFrames, ax: Axes) -> None:
    degrees = graph.degree_counts(graph.user_graph(story))
    plots.degree_distribution(degrees, ax=ax)
    assert [int(p.get_height()) for p in ax.patches] == [4, 2, 1]
    assert ax.get_xlabel() == "accepted connections per user (records)"
    assert ax.get_ylabel() == "users"


def test_pod_graph_draws_nodes_edges_and_names(story: analysis.RunFrames, ax: Axes) -> None:
    g = graph.pod_graph(story)
    plots.pod_graph(g, ax=ax)
    (nodes,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(nodes.get_offsets()) == 3
    edges = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert sum(len(c.get_segments()) for c in edges) == g.number_of_edges() == 2
    assert sorted(t.get_text() for t in ax.texts) == ["pod-10", "pod-20", "pod-30"]
    assert not ax.axison
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == [
        "crossPod enabled",
        "crossPod disabled",
    ]


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
    )


_EMPTY: list[tuple[str, Callable[[analysis.RunFrames, Axes], Axes]]] = [
    ("status_timeline", lambda f, ax: plots.status_timeline(analysis.status_timeline(f), ax=ax)),
    (
        "status_distribution",
        lambda f, ax: plots.status_distribution(analysis.status_counts(f, by="pod"), ax=ax),
    ),
    ("request_counters", lambda f, ax: plots.request_counters(analysis.request_counter_counts(f), ax=ax)),
    ("time_to_answer", lambda f, ax: plots.time_to_answer(analysis.answer_times(f), ax=ax)),
    ("pod_heatmap", lambda f, ax: plots.pod_heatmap(analysis.pod_matrix(f), ax=ax)),
    ("error_reasons", lambda f, ax: plots.error_reasons(analysis.error_counts(f), ax=ax)),
    (
        "degree_distribution",
        lambda f, ax: plots.degree_distribution(graph.degree_counts(graph.user_graph(f)), ax=ax),
    ),
    ("pod_graph", lambda f, ax: plots.pod_graph(graph.pod_graph(f), ax=ax)),
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
    errors = analysis.error_counts(story)
    before = (timeline.copy(), errors.copy())
    plots.status_timeline(timeline, ax=ax)
    plots.error_reasons(errors, ax=Figure().subplots())
    pd.testing.assert_frame_equal(timeline, before[0])
    pd.testing.assert_frame_equal(errors, before[1])
