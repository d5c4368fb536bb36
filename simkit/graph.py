"""`graph`: the connections of a run as networkx graphs, their metrics, and GraphML.

:func:`user_graph` has a node per user and an edge per stored record, from its requester
to the other user; :func:`pod_graph` has a node per pod and an edge per pod pair that holds
records or has crossPod enabled at the end of the run, and :func:`top_pods` cuts it to the
largest pods with the rest gathered into one node. The metrics (:func:`degree_counts`,
:func:`component_sizes`, :func:`cross_pod_share`, :func:`bridging_pods`, :func:`metrics`)
read those graphs; :func:`write_graphml` saves one for Gephi and similar tools.

This module builds graphs from the frames of :mod:`simkit.analysis` and measures them; it
draws nothing (:mod:`simkit.plots` does) and applies no connection rule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.sparse import coo_array  # type: ignore[import-untyped]
from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]

from simkit.analysis import STATUS_COLUMNS, RunFrames, crosspod_at_end, status_counts
from simkit.blocks import bincount
from simkit.errors import GraphTooLargeError
from simkit.io.atomic import atomic_path
from simkit.population import id_rows

__all__ = [
    "MAX_USER_GRAPH_EDGES",
    "OTHER",
    "bridging_pods",
    "component_sizes",
    "cross_pod_share",
    "degree_counts",
    "metrics",
    "pod_graph",
    "pod_layout",
    "top_pods",
    "user_graph",
    "write_graphml",
]

_ACCEPTED = "ACCEPTED"
_COUNTS = tuple(s.lower() for s in STATUS_COLUMNS)
OTHER = "other"
"""The node :func:`top_pods` gathers the smaller pods into."""
# spring_layout needs scipy from this many nodes on; beyond it pods go on a circle.
_SPRING_LIMIT = 500
# Betweenness as matrix products (n x n floats, n^3 work per level) up to this many pods.
_MATRIX_BETWEENNESS = 3_000
MAX_USER_GRAPH_EDGES = 2_000_000
"""The most edges :func:`user_graph` builds unless asked with ``force=True``.

networkx keeps each edge as Python dicts (about 270 bytes an edge): 2M edges take about
0.5 GB and several seconds; the whole network's 31.9M took 8.7 GB and 90 s.
"""


@dataclass(frozen=True)
class _Edges:
    """A user graph as arrays: its nodes, their pods, and its edges as node positions.

    An edge's status is a position in `labels` (-1: none).
    """

    pods: NDArray[np.int64]
    a: NDArray[np.signedinteger[Any]]
    b: NDArray[np.signedinteger[Any]]
    status: NDArray[np.int8]
    labels: tuple[str, ...]
    implicit: NDArray[np.bool_]
    # Each pair at most once among the edges (as stored records are), in either direction.
    distinct: bool = False

    def having(self, status: str) -> NDArray[np.bool_]:
        """Which edges have that status."""
        if status not in self.labels:
            return np.zeros(len(self.a), dtype=bool)
        having: NDArray[np.bool_] = self.status == self.labels.index(status)
        return having

    def select(
        self, status: str | None
    ) -> tuple[NDArray[np.signedinteger[Any]], NDArray[np.signedinteger[Any]]]:
        """The undirected edges with that status (any if None), each pair once."""
        keep = np.ones(len(self.a), dtype=bool) if status is None else self.having(status)
        if self.distinct:  # no pair twice: nothing to sort out
            return self.a[keep], self.b[keep]
        lo = np.minimum(self.a[keep], self.b[keep])
        hi = np.maximum(self.a[keep], self.b[keep])
        # Distinct by sorting: numpy 2.4's np.unique hashes, a minute on tens of millions.
        pairs = np.sort(lo.astype(np.int64) * len(self.pods) + hi)
        if len(pairs) > 1:
            pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])]
        return (pairs // max(len(self.pods), 1)).astype(np.intp), (pairs % max(len(self.pods), 1)).astype(
            np.intp
        )


def _edges(source: nx.Graph | RunFrames | _Edges) -> _Edges:
    """The arrays of a :func:`user_graph`, or of the one a run's frames would give.

    From frames no graph is built: the nodes are the users in input order (then any other
    user a record names, with pod -1), the edges the stored records.
    """
    if isinstance(source, _Edges):
        return source
    if isinstance(source, RunFrames):
        users, conn = source.users, source.connections
        ids = users["user_id"].to_numpy(dtype=np.int64)
        pods = users["pod_id"].to_numpy(dtype=np.int64)
        ends = [conn[c].to_numpy(dtype=np.int64) for c in ("user_a", "user_b")]
        rows_of = id_rows(ids)
        a, b = (rows_of(e) for e in ends)  # in 32 bits where they fit
        stray = pd.unique(np.concatenate([e[at < 0] for e, at in zip(ends, (a, b), strict=True)]))
        if len(stray):
            ids = np.concatenate([ids, stray])
            pods = np.concatenate([pods, np.full(len(stray), -1, dtype=np.int64)])
            rows_of = id_rows(ids)
            a, b = (rows_of(e) for e in ends)
        status = conn["status"]
        if isinstance(status.dtype, pd.CategoricalDtype):
            labels = tuple(str(c) for c in status.cat.categories)
            codes = np.asarray(status.cat.codes, dtype=np.int8)
        else:
            labels = STATUS_COLUMNS
            codes = np.asarray(pd.Index(list(labels)).get_indexer(pd.Index(status)), dtype=np.int8)
        return _Edges(pods, a, b, codes, labels, np.zeros(len(a), dtype=bool), distinct=True)
    position = {u: i for i, u in enumerate(source.nodes)}
    pods = np.array([p if p is not None else -1 for _, p in source.nodes(data="pod")], dtype=np.int64)
    rows = list(source.edges(data=True))
    statuses = [d.get("status") for *_, d in rows]
    labels = tuple(sorted({str(x) for x in statuses if x is not None}))
    where = {label: i for i, label in enumerate(labels)}
    return _Edges(
        pods,
        np.array([position[u] for u, _, _ in rows], dtype=np.intp),
        np.array([position[v] for _, v, _ in rows], dtype=np.intp),
        np.array([where[str(x)] if x is not None else -1 for x in statuses], dtype=np.int8),
        labels,
        np.array([bool(d.get("implicit", False)) for *_, d in rows], dtype=bool),
    )


def user_graph(frames: RunFrames, *, implicit: bool = False, force: bool = False) -> nx.DiGraph:
    """The users and their stored connections at the end of the run.

    Parameters
    ----------
    frames : RunFrames
    implicit : bool
        Also add an edge for every pair of users of the same private pod (from the
        smaller id, ``status`` ``ACCEPTED``, no counter or times). A pod of *n* users adds
        n(n-1)/2 edges, so this is for small runs.
    force : bool
        Build the graph even above :data:`MAX_USER_GRAPH_EDGES` edges.

    Raises
    ------
    simkit.errors.GraphTooLargeError
        Above :data:`MAX_USER_GRAPH_EDGES` edges without `force`. The metrics of this
        module take the frames themselves at any size; for a graph, sample the run first.

    Returns
    -------
    networkx.DiGraph
        Nodes: user ids in input order, with ``pod`` (int) and ``external`` (bool).
        Edges: one per stored record, from its requester to the other user, with
        ``status`` (``PENDING``, ``ACCEPTED``, ``REJECTED``), ``request_counter``,
        ``first_requested_at`` and ``updated_at`` (ms since the epoch) and ``implicit``
        (False); implicit edges have ``status`` and ``implicit`` (True) only.

    Examples
    --------
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run
    >>> g = user_graph(from_run(read_run("data/samples/story")))
    >>> g.number_of_nodes(), g.number_of_edges()
    (7, 4)
    >>> g.nodes[301], g.edges[101, 301]["status"]
    ({'pod': 30, 'external': True}, 'ACCEPTED')
    """
    users = frames.users
    edges = len(frames.connections)
    if implicit:
        private = frames.pods.loc[frames.pods["private"], "pod_id"]
        sizes = users["pod_id"][users["pod_id"].isin(private)].value_counts().to_numpy(dtype=np.int64)
        edges += int((sizes * (sizes - 1) // 2).sum())
    if edges > MAX_USER_GRAPH_EDGES and not force:
        raise GraphTooLargeError(
            f"the user graph would have {edges:,} edges, more than networkx holds well "
            f"({MAX_USER_GRAPH_EDGES:,}); pass force=True, or sample the run first "
            "(e.g. `simkit run` with a smaller population, or frames of a subset of users)"
        )
    g = nx.DiGraph()
    g.add_nodes_from(
        (u, {"pod": p, "external": e})
        for u, p, e in zip(
            users["user_id"].tolist(), users["pod_id"].tolist(), users["external"].tolist(), strict=True
        )
    )
    conn = frames.connections
    a, b, requester = (conn[c].tolist() for c in ("user_a", "user_b", "requester"))
    attrs = zip(
        conn["status"].tolist(),
        conn["request_counter"].tolist(),
        conn["first_requested_at"].tolist(),
        conn["updated_at"].tolist(),
        strict=True,
    )
    g.add_edges_from(
        (
            r,
            y if r == x else x,
            {
                "status": s,
                "request_counter": n,
                "first_requested_at": first,
                "updated_at": updated,
                "implicit": False,
            },
        )
        for x, y, r, (s, n, first, updated) in zip(a, b, requester, attrs, strict=True)
    )
    if implicit:
        private = set(frames.pods.loc[frames.pods["private"], "pod_id"].tolist())
        for pod, members in users.groupby("pod_id", sort=True)["user_id"]:
            if pod in private:
                ids = sorted(members.tolist())
                g.add_edges_from(
                    (x, y, {"status": _ACCEPTED, "implicit": True})
                    for i, x in enumerate(ids)
                    for y in ids[i + 1 :]
                )
    return g


def pod_graph(frames: RunFrames) -> nx.Graph:
    """The pods, linked where they share stored records or crossPod at the end of the run.

    Returns
    -------
    networkx.Graph
        Nodes: pod ids in id order, with ``name``, ``private``, ``users`` (how many) and
        ``pending``, ``accepted``, ``rejected``: records between two users of the pod
        (public pods only). Edges: one per pair of different pods with a stored record or
        crossPod enabled at the end of the run, with ``pending``, ``accepted``,
        ``rejected`` (records between the two pods), ``weight`` (= ``accepted``) and
        ``crosspod`` (enabled at the end of the run).

    Examples
    --------
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run
    >>> g = pod_graph(from_run(read_run("data/samples/story")))
    >>> sorted(g.edges(data=True))
    [(10, 20, {'pending': 1, 'accepted': 0, 'rejected': 0, 'weight': 0, 'crosspod': False}), (10, 30, {'pending': 1, 'accepted': 1, 'rejected': 0, 'weight': 1, 'crosspod': True})]
    >>> g.nodes[30]
    {'name': 'pod-30', 'private': False, 'users': 2, 'pending': 0, 'accepted': 1, 'rejected': 0}
    """
    g = nx.Graph()
    sizes = frames.users.groupby("pod_id").size()
    pods = frames.pods.sort_values("pod_id", kind="stable")
    by_pair = status_counts(frames, by="pod_pair")
    pod_a = by_pair.index.get_level_values(0).to_numpy(dtype=np.int64).tolist()
    pod_b = by_pair.index.get_level_values(1).to_numpy(dtype=np.int64).tolist()
    counts = by_pair[list(STATUS_COLUMNS)].to_numpy(dtype=np.int64).tolist()
    enabled = by_pair["crosspod"].to_numpy(dtype=bool).tolist()
    inside = {a: row for a, b, row in zip(pod_a, pod_b, counts, strict=True) if a == b}
    zero = [0] * len(STATUS_COLUMNS)
    g.add_nodes_from(
        (
            pod,
            {
                "name": name,
                "private": private,
                "users": int(sizes.get(pod, 0)),
                **dict(zip(_COUNTS, inside.get(pod, zero), strict=True)),
            },
        )
        for pod, name, private in zip(
            pods["pod_id"].tolist(), pods["name"].tolist(), pods["private"].tolist(), strict=True
        )
    )
    g.add_edges_from(
        (a, b, {**dict(zip(_COUNTS, row, strict=True)), "weight": row[1], "crosspod": on})
        for a, b, row, on in zip(pod_a, pod_b, counts, enabled, strict=True)
        if a != b and any(row)
    )
    for a, b in crosspod_at_end(frames).to_numpy().tolist():
        if not g.has_edge(a, b):
            g.add_edge(a, b, **dict.fromkeys(_COUNTS, 0), weight=0, crosspod=True)
    return g


def degree_counts(g: nx.Graph | RunFrames, status: str | None = _ACCEPTED) -> pd.DataFrame:
    """How many users have each number of connections of one status.

    Computed on arrays (numpy), so it takes the run's frames at any size as well as a graph.

    Parameters
    ----------
    g : networkx.Graph or RunFrames
        A :func:`user_graph` (its implicit edges count if it has them), or the frames it
        would be built from.
    status : str or None
        Count edges of this status (``ACCEPTED`` by default); ``None``: every edge.

    Returns
    -------
    DataFrame
        Index ``connections`` (a user's degree in the graph) from 0 to the largest; column
        ``users``. The status counted is in ``.attrs["status"]``.

    Examples
    --------
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run
    >>> degree_counts(user_graph(from_run(read_run("data/samples/story"))))  # doctest: +NORMALIZE_WHITESPACE
                 users
    connections
    0                4
    1                2
    2                1
    """
    edges = _edges(g)
    a, b = edges.select(status)
    degrees = bincount(a, minlength=len(edges.pods)) + bincount(b, minlength=len(edges.pods))
    counts = np.bincount(degrees) if len(degrees) else np.zeros(0, dtype=np.int64)
    table = pd.DataFrame({"users": counts}, index=pd.RangeIndex(len(counts), name="connections"))
    table.attrs["status"] = status
    return table


def component_sizes(g: nx.Graph | RunFrames, status: str | None = _ACCEPTED) -> pd.Series:
    """Sizes of the connected components, largest first, over edges of one status.

    Users without such an edge are components of one. Direction is ignored. `g` is a
    :func:`user_graph` or the frames it would be built from; the components come from
    :func:`scipy.sparse.csgraph.connected_components` over the edge arrays.

    Examples
    --------
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run
    >>> component_sizes(user_graph(from_run(read_run("data/samples/story")))).tolist()
    [3, 1, 1, 1, 1]
    """
    return _component_sizes(_edges(g), status)


def _component_sizes(edges: _Edges, status: str | None) -> pd.Series:
    n = len(edges.pods)
    a, b = edges.select(status)
    if n:
        matrix = coo_array((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
        _, labels = connected_components(matrix, directed=False)
        sizes = -np.sort(-np.bincount(labels))
    else:
        sizes = np.zeros(0, dtype=np.int64)
    return pd.Series(sizes, index=pd.RangeIndex(len(sizes), name="component"), name="users", dtype=np.int64)


def cross_pod_share(g: nx.Graph | RunFrames) -> float:
    """Share of the users of a :func:`user_graph` with an accepted edge to another pod.

    `g` may also be the frames the graph would be built from (counted on arrays).

    NaN for a graph without nodes. Agrees with :func:`simkit.analysis.cross_pod_share`.

    Examples
    --------
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run
    >>> round(cross_pod_share(user_graph(from_run(read_run("data/samples/story")))), 4)
    0.2857
    """
    return _cross_pod_share(_edges(g))


def _cross_pod_share(edges: _Edges) -> float:
    if not len(edges.pods):
        return float("nan")
    across = edges.having(_ACCEPTED) & (edges.pods[edges.a] != edges.pods[edges.b])
    linked = np.zeros(len(edges.pods), dtype=bool)
    linked[edges.a[across]] = linked[edges.b[across]] = True
    return int(linked.sum()) / len(edges.pods)


def bridging_pods(g: nx.Graph) -> pd.DataFrame:
    """Which pods bridge the network: betweenness over accepted connections between pods.

    A pod's betweenness is the share of shortest paths between two other pods that pass
    through it, in the graph whose edges are the pod pairs holding at least one accepted
    connection (networkx's normalised betweenness, unweighted).

    Parameters
    ----------
    g : networkx.Graph
        A :func:`pod_graph`.

    Returns
    -------
    DataFrame
        One row per pod, index ``pod_id``, most bridging first (ties: smaller id first):
        ``name``, ``users``, ``partners`` (pods linked by an accepted connection) and
        ``betweenness``.

    Examples
    --------
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run
    >>> bridging_pods(pod_graph(from_run(read_run("data/samples/story"))))  # doctest: +NORMALIZE_WHITESPACE
              name  users  partners  betweenness
    pod_id
    10      pod-10      2         1          0.0
    20      pod-20      3         0          0.0
    30      pod-30      2         1          0.0
    """
    nodes = sorted(g.nodes)
    position = {p: i for i, p in enumerate(nodes)}
    linked = np.zeros((len(nodes), len(nodes)), dtype=bool)
    for u, v, n in g.edges(data="accepted"):
        if n and u != v:
            linked[position[u], position[v]] = linked[position[v], position[u]] = True
    if len(nodes) <= _MATRIX_BETWEENNESS:
        centrality = _betweenness(linked)
    else:
        accepted = nx.Graph()
        accepted.add_nodes_from(nodes)
        accepted.add_edges_from((u, v) for u, v, n in g.edges(data="accepted") if n)
        found = nx.betweenness_centrality(accepted, normalized=True)
        centrality = np.array([float(found[p]) for p in nodes])
    table = pd.DataFrame(
        {
            "name": [g.nodes[p]["name"] for p in nodes],
            "users": [g.nodes[p]["users"] for p in nodes],
            "partners": linked.sum(axis=1).astype(np.int64),
            "betweenness": centrality,
        },
        index=pd.Index(nodes, name="pod_id", dtype=np.int64),
    )
    return table.sort_values("betweenness", ascending=False, kind="stable")


def _betweenness(linked: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Normalised betweenness of each node of an undirected graph (a symmetric adjacency
    matrix), as networkx's ``betweenness_centrality`` gives it.

    Brandes' algorithm run from every source at once, as matrix products: a breadth-first
    search counts the shortest paths from each source (one product per level), then each
    level, farthest first, passes its dependency back to the level before it. A thousand
    pods take a fraction of a second, where networkx takes minutes on a dense pod graph.
    """
    n = len(linked)
    if n <= 2:
        return np.zeros(n)
    adjacency = linked.astype(np.float64)
    distance = np.full((n, n), -1, dtype=np.int32)
    np.fill_diagonal(distance, 0)
    paths = np.eye(n)
    frontier = np.eye(n)
    level = 0
    while frontier.any():
        level += 1
        reach = frontier @ adjacency
        new = (reach > 0) & (distance < 0)
        distance[new] = level
        paths[new] = reach[new]
        frontier = np.where(new, reach, 0.0)
    dependency = np.zeros((n, n))
    for d in range(level - 1, 1, -1):
        share = np.where(distance == d, (1.0 + dependency) / np.where(paths > 0, paths, 1.0), 0.0)
        dependency += np.where(distance == d - 1, paths * (share @ adjacency), 0.0)
    np.fill_diagonal(dependency, 0.0)
    scores: NDArray[np.float64] = dependency.sum(axis=0) / ((n - 1) * (n - 2))
    return scores


def metrics(users: nx.Graph | RunFrames, pods: nx.Graph) -> pd.Series:
    """The headline measures of the connection graph.

    The user measures are counted on arrays (numpy and :mod:`scipy.sparse.csgraph`), so
    passing the run's frames instead of a user graph gives the same numbers at any size.

    Parameters
    ----------
    users : networkx.Graph or RunFrames
        A :func:`user_graph`, or the frames it would be built from.
    pods : networkx.Graph
        The :func:`pod_graph` of the same run.

    Returns
    -------
    Series
        ``users``; ``stored connections``; ``accepted connections``; ``accepted
        connections per user`` (the mean; each connection counts for both its users);
        ``components`` and ``largest component`` (over accepted edges, users alone counted
        as components of one); ``users connected across pods`` (a share);
        ``pod pairs with crossPod``; ``pod pairs with accepted connections``; ``most
        bridging pod`` (its name; ``None`` if no pod lies between two others).

    Examples
    --------
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run
    >>> frames = from_run(read_run("data/samples/story"))
    >>> metrics(user_graph(frames), pod_graph(frames))
    users                                         7
    stored connections                            4
    accepted connections                          2
    accepted connections per user          0.571429
    components                                    5
    largest component                             3
    users connected across pods            0.285714
    pod pairs with crossPod                       1
    pod pairs with accepted connections           1
    most bridging pod                          None
    dtype: object
    """
    edges = _edges(users)
    accepted = int(edges.having(_ACCEPTED).sum())
    n = len(edges.pods)
    sizes = _component_sizes(edges, _ACCEPTED)
    bridges = bridging_pods(pods)
    top = bridges.index[0] if len(bridges) and bridges["betweenness"].iloc[0] > 0 else None
    values: dict[str, Any] = {
        "users": n,
        "stored connections": int((~edges.implicit).sum()),
        "accepted connections": accepted,
        "accepted connections per user": 2 * accepted / n if n else float("nan"),
        "components": len(sizes),
        "largest component": int(sizes.iloc[0]) if len(sizes) else 0,
        "users connected across pods": _cross_pod_share(edges),
        "pod pairs with crossPod": sum(1 for *_, c in pods.edges(data="crosspod") if c),
        "pod pairs with accepted connections": sum(1 for *_, a in pods.edges(data="accepted") if a),
        "most bridging pod": None if top is None else str(pods.nodes[top]["name"]),
    }
    return pd.Series(values, dtype=object)


def pod_layout(g: nx.Graph, seed: int = 0) -> dict[Any, tuple[float, float]]:
    """Positions for drawing a :func:`pod_graph`: the same graph and seed, the same layout.

    A force-directed layout pulled by the log of accepted connections (up to 500 pods; a
    circle beyond, in pod-id order: draw :func:`top_pods` of a large network).

    Examples
    --------
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run
    >>> pos = pod_layout(pod_graph(from_run(read_run("data/samples/story"))))
    >>> sorted(pos), all(-1.0 <= c <= 1.0 for xy in pos.values() for c in xy)
    ([10, 20, 30], True)
    """
    ordered = nx.Graph()
    ordered.add_nodes_from(sorted(g.nodes, key=_node_order))
    # Every edge pulls a little; accepted connections pull harder, by their order of
    # magnitude, so that one busy pair does not crush the big pods into one spot.
    ordered.add_edges_from(
        (u, v, {"pull": 1.0 + float(np.log1p(a))}) for u, v, a in g.edges(data="accepted", default=0)
    )
    if ordered.number_of_nodes() >= _SPRING_LIMIT:
        pos = nx.circular_layout(ordered)
    else:
        pos = nx.spring_layout(ordered, weight="pull", seed=seed)
    return {node: (float(xy[0]), float(xy[1])) for node, xy in pos.items()}


def _node_order(node: Any) -> tuple[bool, Any]:
    """Pods in id order, then the gathered node of :func:`top_pods`."""
    return (isinstance(node, str), node)


def top_pods(g: nx.Graph, top: int) -> nx.Graph:
    """A :func:`pod_graph` cut to its `top` largest pods, the others gathered into one node.

    The pods with the most users (ties: smaller id first) keep their nodes and the edges
    between them. Every other pod goes into the node ``"other"`` (:data:`OTHER`), named
    ``other (N pods)``, with ``gathered`` (how many pods), ``users`` and the records inside
    and between them summed, and no ``private`` (it gathers both kinds); each kept pod's edges to gathered pods become one edge to
    ``"other"``, their records summed and ``crosspod`` True if any of them has it. A graph of
    at most `top` pods is returned as a copy.

    Examples
    --------
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run
    >>> g = top_pods(pod_graph(from_run(read_run("data/samples/story"))), top=1)
    >>> list(g.nodes(data="name")), g.nodes["other"]["users"]
    ([(20, 'pod-20'), ('other', 'other (2 pods)')], 4)
    >>> g.edges[20, "other"]
    {'pending': 1, 'accepted': 0, 'rejected': 0, 'weight': 0, 'crosspod': False}
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    if g.number_of_nodes() <= top:
        return g.copy()
    # np.lexsort sorts by its last key first: users descending, then id ascending.
    ids = sorted(g.nodes)
    users = [int(g.nodes[p].get("users", 0)) for p in ids]
    kept = [ids[i] for i in np.lexsort((ids, np.negative(users)))[:top]]
    keep = set(kept)
    gathered = [p for p in ids if p not in keep]
    out = nx.Graph()
    out.add_nodes_from((p, g.nodes[p]) for p in kept)
    out.add_node(
        OTHER,
        name=f"other ({len(gathered):,} pod{'' if len(gathered) == 1 else 's'})",
        users=sum(int(g.nodes[p].get("users", 0)) for p in gathered),
        gathered=len(gathered),
        **{c: sum(int(g.nodes[p].get(c, 0)) for p in gathered) for c in _COUNTS},
    )
    for u, v, data in g.edges(data=True):
        a, b = (u if u in keep else OTHER), (v if v in keep else OTHER)
        counts = {c: int(data.get(c, 0)) for c in _COUNTS}
        if a == b == OTHER:
            for c in _COUNTS:
                out.nodes[OTHER][c] += counts[c]
        elif (a, b) == (u, v) or not out.has_edge(a, b):
            out.add_edge(
                a, b, **counts, weight=counts["accepted"], crosspod=bool(data.get("crosspod", False))
            )
        else:
            edge = out.edges[a, b]
            for c in _COUNTS:
                edge[c] += counts[c]
            edge["weight"] = edge["accepted"]
            edge["crosspod"] = edge["crosspod"] or bool(data.get("crosspod", False))
    return out


def write_graphml(g: nx.Graph, path: str | os.PathLike[str]) -> Path:
    """Write a graph as GraphML (for Gephi, Cytoscape, yEd...); return the path.

    The file goes to a temporary name beside `path` and is renamed into place, so a
    reader never sees half a file. The same graph gives the same bytes.

    Examples
    --------
    >>> import tempfile
    >>> from simkit import read_run
    >>> from simkit.analysis import from_run
    >>> frames = from_run(read_run("data/samples/story"))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     file = write_graphml(user_graph(frames), Path(tmp) / "users.graphml")
    ...     back = nx.read_graphml(file, node_type=int)
    >>> back.edges[101, 301]["request_counter"], back.nodes[101]["pod"]
    (1, 10)
    """
    target = Path(path)
    with atomic_path(target) as tmp:
        nx.write_graphml(g, tmp)
    return target
