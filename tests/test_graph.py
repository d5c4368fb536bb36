"""Tests of simkit.graph on a small run whose graphs are drawn by hand below.

Pods 1, 2 and 4 are private, 3 is public. Accepted connections chain the pods 1-2-3-4;
crossPod is also enabled between 1 and 4, which share no record.

    11 -> 21 ACCEPTED   (pods 1-2)      12 -> 22 REJECTED  (pods 1-2)
    22 -> 31 ACCEPTED   (pods 2-3)      31 -> 32 PENDING   (inside pod 3)
    41 -> 32 ACCEPTED   (pods 4-3)
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from simkit import analysis, graph, read_run
from simkit.errors import GraphTooLargeError

EVENTS = [
    (1000, 11, 21, "connect"),
    (2000, 21, 11, "accept"),
    (3000, 22, 31, "connect"),
    (4000, 31, 22, "accept"),
    (5000, 41, 32, "connect"),
    (6000, 32, 41, "accept"),
    (7000, 31, 32, "connect"),
    (8000, 12, 22, "connect"),
    (9000, 22, 12, "reject"),
]


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> analysis.RunFrames:
    folder = tmp_path_factory.mktemp("graph")
    (folder / "pods.csv").write_text("pod_id,name,private\n1,a,true\n2,b,true\n3,c,false\n4,d,true\n")
    (folder / "users.csv").write_text("user_id,pod_id\n11,1\n12,1\n21,2\n22,2\n31,3\n32,3\n41,4\n")
    (folder / "crosspod.csv").write_text("pod_a,pod_b\n1,2\n2,3\n4,3\n1,4\n")
    rows = "".join(f"{t},{a},{b},{act}\n" for t, a, b, act in EVENTS)
    (folder / "events.csv").write_text("ts,actor,target,action\n" + rows)
    return analysis.from_run(read_run(folder))


def test_user_graph_has_an_edge_per_record_from_its_requester(frames: analysis.RunFrames) -> None:
    g = graph.user_graph(frames)
    assert list(g.nodes) == [11, 12, 21, 22, 31, 32, 41]
    assert g.nodes[41] == {"pod": 4, "external": True}
    assert sorted((u, v, s) for u, v, s in g.edges(data="status")) == [
        (11, 21, "ACCEPTED"),
        (12, 22, "REJECTED"),
        (22, 31, "ACCEPTED"),
        (31, 32, "PENDING"),
        (41, 32, "ACCEPTED"),
    ]
    assert g.edges[12, 22] == {
        "status": "REJECTED",
        "request_counter": 1,
        "first_requested_at": 8000,
        "updated_at": 9000,
        "implicit": False,
    }


def test_user_graph_adds_implicit_edges_only_when_asked(frames: analysis.RunFrames) -> None:
    g = graph.user_graph(frames, implicit=True)
    implicit = sorted((u, v) for u, v, i in g.edges(data="implicit") if i)
    assert implicit == [(11, 12), (21, 22)]  # pod 3 is public, pod 4 has one user
    assert g.edges[11, 12] == {"status": "ACCEPTED", "implicit": True}


def test_pod_graph_by_hand(frames: analysis.RunFrames) -> None:
    g = graph.pod_graph(frames)
    assert list(g.nodes) == [1, 2, 3, 4]
    assert g.nodes[3] == {
        "name": "c",
        "private": False,
        "users": 2,
        "pending": 1,
        "accepted": 0,
        "rejected": 0,
    }
    edges = {(min(u, v), max(u, v)): d for u, v, d in g.edges(data=True)}
    zero = {"pending": 0, "accepted": 0, "rejected": 0}
    assert edges == {
        (1, 2): {**zero, "accepted": 1, "rejected": 1, "weight": 1, "crosspod": True},
        (2, 3): {**zero, "accepted": 1, "weight": 1, "crosspod": True},
        (3, 4): {**zero, "accepted": 1, "weight": 1, "crosspod": True},
        (1, 4): {**zero, "weight": 0, "crosspod": True},
    }


def test_degree_counts(frames: analysis.RunFrames) -> None:
    g = graph.user_graph(frames)
    assert graph.degree_counts(g)["users"].to_dict() == {0: 1, 1: 6}
    assert graph.degree_counts(g).index.name == "connections"
    assert graph.degree_counts(g, status=None)["users"].to_dict() == {0: 0, 1: 4, 2: 3}
    assert graph.degree_counts(g, status="PENDING")["users"].to_dict() == {0: 5, 1: 2}


@pytest.mark.parametrize(
    ("status", "implicit", "sizes"),
    [
        ("ACCEPTED", False, [2, 2, 2, 1]),
        (None, False, [5, 2]),
        ("ACCEPTED", True, [5, 2]),
    ],
)
def test_component_sizes(
    frames: analysis.RunFrames, status: str | None, implicit: bool, sizes: list[int]
) -> None:
    g = graph.user_graph(frames, implicit=implicit)
    assert graph.component_sizes(g, status).tolist() == sizes


def test_cross_pod_share_agrees_with_the_tables(frames: analysis.RunFrames) -> None:
    assert graph.cross_pod_share(graph.user_graph(frames)) == pytest.approx(6 / 7)
    assert graph.cross_pod_share(graph.user_graph(frames, implicit=True)) == analysis.cross_pod_share(frames)
    story = analysis.from_run(read_run("data/samples/story"))
    assert graph.cross_pod_share(graph.user_graph(story)) == analysis.cross_pod_share(story)


def test_bridging_pods_ranks_the_middle_of_the_chain_first(frames: analysis.RunFrames) -> None:
    table = graph.bridging_pods(graph.pod_graph(frames))
    assert table.index.tolist() == [2, 3, 1, 4]
    assert table["betweenness"].tolist() == pytest.approx([2 / 3, 2 / 3, 0, 0])
    assert table["partners"].tolist() == [2, 2, 1, 1]


def test_metrics_by_hand(frames: analysis.RunFrames) -> None:
    got = graph.metrics(graph.user_graph(frames), graph.pod_graph(frames)).to_dict()
    assert got == {
        "users": 7,
        "stored connections": 5,
        "accepted connections": 3,
        "accepted connections per user": pytest.approx(6 / 7),
        "components": 4,
        "largest component": 2,
        "users connected across pods": pytest.approx(6 / 7),
        "pod pairs with crossPod": 4,
        "pod pairs with accepted connections": 3,
        "most bridging pod": "b",
    }


def test_pod_layout_is_reproducible(frames: analysis.RunFrames) -> None:
    g = graph.pod_graph(frames)
    assert graph.pod_layout(g) == graph.pod_layout(g)
    assert graph.pod_layout(g, seed=1) != graph.pod_layout(g, seed=2)
    assert sorted(graph.pod_layout(g)) == [1, 2, 3, 4]


def test_top_pods_gathers_the_smaller_pods(frames: analysis.RunFrames) -> None:
    g = graph.pod_graph(frames)
    top = graph.top_pods(g, 2)  # pods 1 and 2 (2 users each, smaller ids first); 3 and 4 gathered
    assert list(top.nodes) == [1, 2, graph.OTHER]
    assert top.nodes[graph.OTHER] == {
        "name": "other (2 pods)",
        "users": 3,
        "gathered": 2,
        "pending": 1,  # 31 -> 32 inside pod 3
        "accepted": 1,  # 41 -> 32, between the two gathered pods
        "rejected": 0,
    }
    edges = {frozenset((u, v)): d for u, v, d in top.edges(data=True)}
    zero = {"pending": 0, "accepted": 0, "rejected": 0}
    assert edges == {
        frozenset((1, 2)): {**zero, "accepted": 1, "rejected": 1, "weight": 1, "crosspod": True},
        frozenset((2, graph.OTHER)): {**zero, "accepted": 1, "weight": 1, "crosspod": True},
        frozenset((1, graph.OTHER)): {**zero, "weight": 0, "crosspod": True},
    }
    # Nothing is lost: every record of the graph is in the cut one.
    for count in ("pending", "accepted", "rejected"):
        total = sum(d[count] for _, d in g.nodes(data=True)) + sum(c for *_, c in g.edges(data=count))
        kept = sum(d[count] for _, d in top.nodes(data=True)) + sum(c for *_, c in top.edges(data=count))
        assert kept == total
    assert sorted(graph.pod_layout(top), key=str) == [1, 2, graph.OTHER]


def test_top_pods_of_a_small_graph_is_a_copy(frames: analysis.RunFrames) -> None:
    g = graph.pod_graph(frames)
    top = graph.top_pods(g, 4)
    assert top is not g and nx.utils.graphs_equal(top, g)
    with pytest.raises(ValueError, match="top must be at least 1"):
        graph.top_pods(g, 0)


@pytest.mark.parametrize("implicit", [False, True])
def test_graphml_round_trip_and_same_bytes(
    frames: analysis.RunFrames, tmp_path: Path, implicit: bool
) -> None:
    g = graph.user_graph(frames, implicit=implicit)
    first = graph.write_graphml(g, tmp_path / "a.graphml")
    second = graph.write_graphml(graph.user_graph(frames, implicit=implicit), tmp_path / "b.graphml")
    assert first.read_bytes() == second.read_bytes()
    back = nx.read_graphml(first, node_type=int)
    assert isinstance(back, nx.DiGraph)
    assert dict(back.nodes(data=True)) == dict(g.nodes(data=True))
    assert sorted(back.edges(data=True)) == sorted(g.edges(data=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.graphml", "b.graphml"]


def test_graphml_of_the_pod_graph(frames: analysis.RunFrames, tmp_path: Path) -> None:
    g = graph.pod_graph(frames)
    back = nx.read_graphml(graph.write_graphml(g, tmp_path / "pods.graphml"), node_type=int)
    assert back.nodes[3]["name"] == "c" and back.edges[1, 4]["crosspod"] is True


def test_empty_graphs(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "pods.csv").write_text("pod_id,name\n1,a\n")
    (folder / "users.csv").write_text("user_id,pod_id\n")
    (folder / "crosspod.csv").write_text("pod_a,pod_b\n")
    (folder / "events.csv").write_text("ts,actor,target,action\n")
    frames = analysis.from_run(read_run(folder))
    users, pods = graph.user_graph(frames), graph.pod_graph(frames)
    assert graph.degree_counts(users).empty and graph.component_sizes(users).empty
    got = graph.metrics(users, pods)
    assert got["users"] == 0 and got["most bridging pod"] is None


def _networkx_reference(g: nx.DiGraph) -> dict[str, object]:
    """The user measures counted by networkx itself, to check the array versions against."""
    accepted = nx.Graph()
    accepted.add_nodes_from(g.nodes)
    accepted.add_edges_from((u, v) for u, v, s in g.edges(data="status") if s == "ACCEPTED")
    degrees = [d for _, d in accepted.degree()]
    pod = nx.get_node_attributes(g, "pod")
    across = {x for u, v in accepted.edges if pod[u] != pod[v] for x in (u, v)}
    return {
        "degrees": [degrees.count(k) for k in range(max(degrees, default=-1) + 1)],
        "components": sorted((len(c) for c in nx.connected_components(accepted)), reverse=True),
        "across": len(across) / g.number_of_nodes(),
        "accepted": accepted.number_of_edges(),
    }


def _check_against_networkx(frames: analysis.RunFrames, *, small: bool = True) -> None:
    g = graph.user_graph(frames)
    want = _networkx_reference(g)
    for source in (frames, g) if small else (frames,):
        assert graph.degree_counts(source)["users"].tolist() == want["degrees"]
        assert graph.component_sizes(source).tolist() == want["components"]
        assert graph.cross_pod_share(source) == pytest.approx(want["across"], abs=0)
    pods = graph.pod_graph(frames)
    from_frames = graph.metrics(frames, pods)
    if small:
        assert from_frames.equals(graph.metrics(g, pods))
    assert from_frames["accepted connections"] == want["accepted"]
    assert from_frames["largest component"] == want["components"][0]  # type: ignore[index]


def test_array_metrics_match_networkx_by_hand(frames: analysis.RunFrames) -> None:
    _check_against_networkx(frames)


@pytest.mark.parametrize("scenario", ["tiny", "baseline"])
def test_array_metrics_match_networkx_on_generated_runs(scenario: str, tmp_path: Path) -> None:
    from simkit.pipeline import simulate

    simulate(f"data/scenarios/{scenario}.toml", tmp_path / "run", seed=7, progress=False)
    _check_against_networkx(analysis.load(tmp_path / "run"), small=scenario == "tiny")


def test_metrics_count_implicit_edges_of_a_graph_like_networkx(frames: analysis.RunFrames) -> None:
    g = graph.user_graph(frames, implicit=True)
    want = _networkx_reference(g)
    assert graph.component_sizes(g).tolist() == want["components"]
    assert graph.degree_counts(g)["users"].tolist() == want["degrees"]
    assert graph.metrics(g, graph.pod_graph(frames))["stored connections"] == len(frames.connections)


def test_user_graph_refuses_a_large_run_unless_forced(
    frames: analysis.RunFrames, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph, "MAX_USER_GRAPH_EDGES", 4)
    with pytest.raises(GraphTooLargeError, match="5 edges") as caught:
        graph.user_graph(frames)
    assert "\n" not in str(caught.value) and "sample" in str(caught.value)
    assert graph.user_graph(frames, force=True).number_of_edges() == 5
    # The implicit edges count towards the limit: pods 1, 2 and 4 are private (1 + 1 + 0).
    monkeypatch.setattr(graph, "MAX_USER_GRAPH_EDGES", 6)
    assert graph.user_graph(frames).number_of_edges() == 5
    with pytest.raises(GraphTooLargeError, match="7 edges"):
        graph.user_graph(frames, implicit=True)
