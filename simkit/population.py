"""`population`: the pods, users and starting crossPod relation of a simulated network.

A :class:`Population` is columnar (one numpy array per field) so that a million users cost
megabytes, not a million objects; :class:`Pod` and :class:`User` are the record forms a
person types in a notebook. This module checks the population's own consistency
(:func:`problems`) but knows nothing of files: naming the file a problem came from is the
job of :mod:`simkit.io.runs`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
from numpy.typing import NDArray

from simkit.blocks import map_blocks

__all__ = ["Pod", "Population", "Problem", "User", "first_unknown", "id_rows", "problems"]


@dataclass(frozen=True, slots=True)
class Pod:
    """A company's pod. Users of the same private pod are connected implicitly."""

    pod_id: int
    name: str
    private: bool = True


@dataclass(frozen=True, slots=True)
class User:
    """A user; `external` users are entitled to communicate across pods.

    `username` (unique, non-empty), `display_name` and `email` are optional; a user without
    a username is known as ``user<user_id>`` (:meth:`Population.username`).
    """

    user_id: int
    pod_id: int
    external: bool = True
    username: str | None = None
    display_name: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """One inconsistency in input tables: table, 0-based row (``None``: whole table), column."""

    table: str
    row: int | None
    column: str | None
    expected: str


@dataclass(frozen=True, eq=False)
class Population:
    """Pods, users and the pairs of pods with crossPod enabled at the start.

    Columns are numpy arrays in input order. `crosspod` holds each enabled pair once, as
    ``(smaller, larger)`` rows sorted ascending, whatever way round it was given.

    `user_name`, `user_display_name` and `user_email` are the optional columns of the users
    table: one string per user, or ``None`` where the table has no such column. Ask
    :meth:`username` for a user's username, given or by default.

    Examples
    --------
    >>> pop = Population.from_records(
    ...     pods=[Pod(1, "bank"), Pod(2, "fund")],
    ...     users=[User(10, 1), User(20, 2, external=False)],
    ...     crosspod=[(2, 1)],
    ... )
    >>> pop.n_users, pop.crosspod.tolist()
    (2, [[1, 2]])
    >>> pop.user(20)
    User(user_id=20, pod_id=2, external=False, username=None, display_name=None, email=None)
    >>> pop.username(20), pop.user_name is None
    ('user20', True)
    """

    pod_id: NDArray[np.int64]
    pod_name: tuple[str, ...]
    pod_private: NDArray[np.bool_]
    user_id: NDArray[np.int64]
    user_pod: NDArray[np.int64]
    user_external: NDArray[np.bool_]
    crosspod: NDArray[np.int64]
    user_name: tuple[str, ...] | None = None
    user_display_name: tuple[str, ...] | None = None
    user_email: tuple[str, ...] | None = None

    @classmethod
    def from_arrays(
        cls,
        *,
        pod_id: Iterable[int] | NDArray[np.int64],
        pod_name: Iterable[str],
        pod_private: Iterable[bool] | NDArray[np.bool_],
        user_id: Iterable[int] | NDArray[np.int64],
        user_pod: Iterable[int] | NDArray[np.int64],
        user_external: Iterable[bool] | NDArray[np.bool_],
        crosspod: Iterable[tuple[int, int]] | NDArray[np.int64] = (),
        user_name: Iterable[str] | None = None,
        user_display_name: Iterable[str] | None = None,
        user_email: Iterable[str] | None = None,
    ) -> Population:
        """Build a population from columns; raise ``ValueError`` on the first problem."""
        pairs = np.asarray(list(crosspod) if not isinstance(crosspod, np.ndarray) else crosspod)
        pairs = pairs.astype(np.int64).reshape(-1, 2)
        pop = cls(
            pod_id=_int_array(pod_id),
            pod_name=tuple(str(n) for n in pod_name),
            pod_private=_bool_array(pod_private),
            user_id=_int_array(user_id),
            user_pod=_int_array(user_pod),
            user_external=_bool_array(user_external),
            crosspod=pairs,
            user_name=_texts(user_name),
            user_display_name=_texts(user_display_name),
            user_email=_texts(user_email),
        )
        first = next(problems(pop), None)
        if first is not None:
            where = f"row {first.row + 1}, " if first.row is not None else ""
            raise ValueError(f"{first.table}: {where}column {first.column!r}: {first.expected}")
        return pop._normalised()

    @classmethod
    def from_records(
        cls,
        pods: Iterable[Pod],
        users: Iterable[User],
        crosspod: Iterable[tuple[int, int]] = (),
    ) -> Population:
        """Build a population from :class:`Pod` and :class:`User` records.

        A user given no username takes the default one (see :meth:`username`) when others
        have one. A display name or an email is given for every user or for none; otherwise
        ``ValueError``.
        """
        pods = list(pods)
        users = list(users)
        names: list[str] | None = None
        if any(u.username is not None for u in users):
            names = [u.username if u.username is not None else _default_username(u.user_id) for u in users]
        return cls.from_arrays(
            pod_id=[p.pod_id for p in pods],
            pod_name=[p.name for p in pods],
            pod_private=[p.private for p in pods],
            user_id=[u.user_id for u in users],
            user_pod=[u.pod_id for u in users],
            user_external=[u.external for u in users],
            crosspod=list(crosspod),
            user_name=names,
            user_display_name=_all_or_none(users, "display_name", [u.display_name for u in users]),
            user_email=_all_or_none(users, "email", [u.email for u in users]),
        )

    def _normalised(self) -> Population:
        pairs = np.sort(self.crosspod, axis=1)
        pairs = np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)
        return Population(
            pod_id=self.pod_id,
            pod_name=self.pod_name,
            pod_private=self.pod_private,
            user_id=self.user_id,
            user_pod=self.user_pod,
            user_external=self.user_external,
            crosspod=np.ascontiguousarray(pairs, dtype=np.int64),
            user_name=self.user_name,
            user_display_name=self.user_display_name,
            user_email=self.user_email,
        )

    @property
    def n_pods(self) -> int:
        """Number of pods."""
        return len(self.pod_id)

    @property
    def n_users(self) -> int:
        """Number of users."""
        return len(self.user_id)

    def pods(self) -> list[Pod]:
        """The pods as records, in input order."""
        return [
            Pod(int(i), n, bool(p))
            for i, n, p in zip(self.pod_id.tolist(), self.pod_name, self.pod_private.tolist())
        ]

    def users(self) -> Iterator[User]:
        """The users as records, in input order."""
        columns = zip(
            self.user_id.tolist(),
            self.user_pod.tolist(),
            self.user_external.tolist(),
            _or_nones(self.user_name),
            _or_nones(self.user_display_name),
            _or_nones(self.user_email),
        )
        for uid, pod, ext, name, shown, email in columns:
            yield User(uid, pod, ext, name, shown, email)

    def user(self, user_id: int) -> User:
        """The user with this id; ``KeyError`` if there is none."""
        i = self._row(user_id)
        return User(
            int(self.user_id[i]),
            int(self.user_pod[i]),
            bool(self.user_external[i]),
            self.user_name[i] if self.user_name is not None else None,
            self.user_display_name[i] if self.user_display_name is not None else None,
            self.user_email[i] if self.user_email is not None else None,
        )

    def username(self, user_id: int) -> str:
        """The user's username: the one given, else ``user<user_id>``; ``KeyError`` if there
        is no such user."""
        i = self._row(user_id)
        return self.user_name[i] if self.user_name is not None else _default_username(user_id)

    def usernames(self) -> tuple[str, ...]:
        """Every user's username (as :meth:`username` gives it), in input order."""
        if self.user_name is not None:
            return self.user_name
        return tuple(_default_username(uid) for uid in self.user_id.tolist())

    def _row(self, user_id: int) -> int:
        hits = np.flatnonzero(self.user_id == user_id)
        if not len(hits):
            raise KeyError(user_id)
        return int(hits[0])


def id_rows(ids: NDArray[np.int64]) -> Callable[[NDArray[np.int64]], NDArray[np.signedinteger[Any]]]:
    """A function from ids to their rows in `ids` (distinct), -1 for an id not among them;
    the rows in 32 bits where they fit (tens of millions of ids are looked up at a time).

    Ids numbered in a run, as generated populations number their users, are found by
    subtraction; others by binary search.

    Examples
    --------
    >>> rows_of = id_rows(np.array([7, 3, 9]))
    >>> rows_of(np.array([9, 3, 4])).tolist(), id_rows(np.array([5, 6, 7]))(np.array([7, 8])).tolist()
    ([2, 1, -1], [2, -1])
    """
    n = len(ids)
    small = np.int32 if n < 2**31 else np.int64
    if n and int(ids[-1]) - int(ids[0]) == n - 1 and bool(np.all(ids[1:] > ids[:-1])):
        first = int(ids[0])

        def dense(block: NDArray[np.int64]) -> NDArray[np.int64]:
            at = np.asarray(block, dtype=np.int64) - first
            at[(at < 0) | (at >= n)] = -1
            return at

        return functools.partial(map_blocks, dense, dtype=small)
    order = np.argsort(ids, kind="stable").astype(small)
    ordered = ids[order]

    def searched(block: NDArray[np.int64]) -> NDArray[np.signedinteger[Any]]:
        if not n:
            return np.full(len(block), -1, dtype=small)
        at = np.clip(np.searchsorted(ordered, block), 0, n - 1)
        found: NDArray[np.signedinteger[Any]] = np.where(ordered[at] == block, order[at], small(-1))
        return found

    return functools.partial(map_blocks, searched, dtype=small)


def _default_username(user_id: int) -> str:
    """The username of a user given none (``connections.md`` §1, a choice of simkit's)."""
    return f"user{user_id}"


def _int_array(values: Iterable[int] | NDArray[np.int64]) -> NDArray[np.int64]:
    if isinstance(values, np.ndarray):
        return np.ascontiguousarray(values, dtype=np.int64)
    return np.fromiter(values, dtype=np.int64)


def _bool_array(values: Iterable[bool] | NDArray[np.bool_]) -> NDArray[np.bool_]:
    if isinstance(values, np.ndarray):
        return np.ascontiguousarray(values, dtype=np.bool_)
    return np.fromiter(values, dtype=np.bool_)


def _texts(values: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(str(v) for v in values)


def _or_nones(values: tuple[str, ...] | None) -> Iterable[str | None]:
    return repeat(None) if values is None else values


def _all_or_none(users: list[User], column: str, values: list[str | None]) -> list[str] | None:
    """`values` if every user has one, ``None`` if none has; else ``ValueError``."""
    given = [v for v in values if v is not None]
    if not given:
        return None
    if len(given) < len(values):
        row = values.index(None)
        raise ValueError(
            f"users: row {row + 1}, column {column!r}: a value for every user or for none "
            f"(user {users[row].user_id} has none)"
        )
    return given


def _first_duplicate(values: NDArray[np.int64]) -> int | None:
    """0-based position of the first value that repeats an earlier one, or ``None``."""
    if len(values) < 2:
        return None
    _, first_seen = np.unique(values, return_index=True)
    if len(first_seen) == len(values):
        return None
    seen = np.zeros(len(values), dtype=bool)
    seen[first_seen] = True
    return int(np.flatnonzero(~seen)[0])


def _first_repeat(values: Sequence[str]) -> int | None:
    """0-based position of the first string that repeats an earlier one, or ``None``."""
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            return i
        seen.add(value)
    return None


def first_unknown(values: NDArray[np.int64], known: NDArray[np.int64]) -> int | None:
    """0-based position of the first value not in `known`, or ``None``.

    Where `known` numbers its ids in a run (as generated populations do), two passes find
    that every value lies in its range, and nothing more is done.

    Examples
    --------
    >>> first_unknown(np.array([3, 4, 9, 5]), np.array([3, 4, 5])), first_unknown(np.array([5]), np.array([5, 1]))
    (2, None)
    """
    if not len(values):
        return None
    n = len(known)
    if n and int(known[-1]) - int(known[0]) == n - 1 and bool(np.all(known[1:] > known[:-1])):
        if int(known[0]) <= int(values.min()) and int(values.max()) <= int(known[-1]):
            return None
        bad = np.flatnonzero((values < known[0]) | (values > known[-1]))
    else:
        bad = np.flatnonzero(~np.isin(values, known))
    return int(bad[0]) if len(bad) else None


def problems(pop: Population, *, policy_pods: NDArray[np.int64] | None = None) -> Iterator[Problem]:
    """Yield the population's inconsistencies, table by table, first row first.

    `policy_pods`, if given, is an ``(n, 2)`` array of the pods named by policy events,
    checked like crossPod pairs.
    """
    dup = _first_duplicate(pop.pod_id)
    if dup is not None:
        yield Problem("pods", dup, "pod_id", f"a unique pod_id ({pop.pod_id[dup]} repeats)")
    dup = _first_duplicate(pop.user_id)
    if dup is not None:
        yield Problem("users", dup, "user_id", f"a unique user_id ({pop.user_id[dup]} repeats)")
    bad = first_unknown(pop.user_pod, pop.pod_id)
    if bad is not None:
        yield Problem("users", bad, "pod_id", f"a pod_id of pods ({pop.user_pod[bad]} is unknown)")
    yield from _text_problems(pop)
    tables: list[tuple[str, NDArray[np.int64]]] = [("crosspod", pop.crosspod.reshape(-1, 2))]
    if policy_pods is not None:
        tables.append(("policy", policy_pods.reshape(-1, 2)))
    for table, pairs in tables:
        yield from _pair_problems(table, pairs, pop.pod_id)


def _text_problems(pop: Population) -> Iterator[Problem]:
    """The optional text columns of users: one non-empty value per user, usernames unique."""
    for column, values in (
        ("username", pop.user_name),
        ("display_name", pop.user_display_name),
        ("email", pop.user_email),
    ):
        if values is None:
            continue
        if len(values) != pop.n_users:
            yield Problem(
                "users", None, column, f"one {column} per user ({len(values)} for {pop.n_users} users)"
            )
            continue
        empty = next((i for i, v in enumerate(values) if not v.strip()), None)
        if empty is not None:
            yield Problem("users", empty, column, "a value (the cell is empty)")
    if pop.user_name is not None and len(pop.user_name) == pop.n_users:
        dup = _first_repeat(pop.user_name)
        if dup is not None:
            yield Problem("users", dup, "username", f"a unique username ({pop.user_name[dup]!r} repeats)")


def _pair_problems(table: str, pairs: NDArray[np.int64], pod_ids: NDArray[np.int64]) -> Iterator[Problem]:
    found: list[Problem] = []
    for col, column in ((0, "pod_a"), (1, "pod_b")):
        bad = first_unknown(pairs[:, col], pod_ids)
        if bad is not None:
            found.append(Problem(table, bad, column, f"a pod_id of pods ({pairs[bad, col]} is unknown)"))
    same = np.flatnonzero(pairs[:, 0] == pairs[:, 1])
    if len(same):
        i = int(same[0])
        found.append(Problem(table, i, "pod_b", f"a pod other than pod_a ({pairs[i, 1]} is both)"))
    yield from sorted(found, key=lambda p: p.row if p.row is not None else -1)
