"""`datafeed`: the connection events of a Symphony datafeed as JSON files (``connections.md`` §6).

Writes the ``CONNECTIONREQUESTED`` and ``CONNECTIONACCEPTED`` events a replay emits, one
V4Event per line (JSON lines), and reads such events back as action events: a connect by the
initiator for each request, an accept by the initiator for each acceptance. It reads JSON
lines of V4Event (a line may also hold a V5EventList or an array of V4Event), or a JSON file
holding one V5EventList as the datafeed read endpoint returns it (``{"events": [...],
"ackId": ...}``) or one array of V4Event.

The V4Event envelope is built in one place, :func:`v4_event` (with :func:`v4_user`), for
these files and for any other face that emits datafeed events. Which effect of the §4 table
emits which event is the rules' (:data:`simkit.rules.EFFECTS`); which event had which effect
is read by :func:`simkit.results.record_changes`. This module applies no rule itself: the
two jobs that need answers (:func:`export_datafeed`, :func:`import_datafeed`) replay with
:func:`simkit.engines.replay`. A datafeed cannot show rejections or removals: they emit no
event.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from simkit.engines import replay
from simkit.errors import DatafeedError, RunDirError
from simkit.events import Events, Policy, apply_order
from simkit.io.atomic import atomic_path
from simkit.io.commit import RunFolderTransaction, is_own
from simkit.io.runs import Run, read_population, read_run, verify_run, write_inputs, write_outputs
from simkit.population import Population
from simkit.results import Replay, record_changes
from simkit.rules import EFFECTS, TABLE, Action, DatafeedEvent, Effect

__all__ = [
    "Datafeed",
    "DatafeedImport",
    "datafeed_events",
    "export_datafeed",
    "import_datafeed",
    "read_datafeed",
    "v4_event",
    "v4_user",
]

# The payload of each event: its key, and the key of the other user in it (§6).
_PAYLOAD: Mapping[DatafeedEvent, tuple[str, str]] = {
    DatafeedEvent.CONNECTIONREQUESTED: ("connectionRequested", "toUser"),
    DatafeedEvent.CONNECTIONACCEPTED: ("connectionAccepted", "fromUser"),
}
_FEED_TYPES: tuple[DatafeedEvent, ...] = tuple(DatafeedEvent)


def _feed_actions() -> dict[DatafeedEvent, Action]:
    """The action behind each datafeed event: the action of the cells whose effect emits it."""
    found: dict[DatafeedEvent, set[Action]] = {}
    for (_view, action), cell in TABLE.items():
        rule = EFFECTS.get(cell.effect)
        if rule is not None and rule.datafeed is not None:
            found.setdefault(rule.datafeed, set()).add(action)
    if set(found) != set(DatafeedEvent) or any(len(actions) != 1 for actions in found.values()):
        raise ValueError("datafeed: every event must be emitted by the cells of one action")
    return {event: next(iter(actions)) for event, actions in found.items()}


_ACTION_OF: Mapping[DatafeedEvent, Action] = _feed_actions()
# The datafeed event each effect emits, as a position in _FEED_TYPES (-1: none), by Effect value.
_FEED_OF_EFFECT: NDArray[np.int8] = np.array(
    [
        _FEED_TYPES.index(rule.datafeed) if (rule := EFFECTS.get(e)) is not None and rule.datafeed else -1
        for e in Effect
    ],
    dtype=np.int8,
)
_INT64 = (-(2**63), 2**63 - 1)


# -- the V4Event envelope ---------------------------------------------------------------------


def v4_user(population: Population, user_id: int) -> dict[str, Any]:
    """A user as the datafeed shows it (V4User): ``userId``, then ``displayName`` and
    ``email`` where the users table has them, and ``username`` (the one given, else
    ``user<user_id>``, ``connections.md`` §1).

    Raises ``KeyError`` if the population has no such user.

    Examples
    --------
    >>> from simkit.population import Pod, User
    >>> pop = Population.from_records(
    ...     pods=[Pod(1, "bank")], users=[User(7, 1, display_name="Ann Lee", email="ann@bank.example")]
    ... )
    >>> v4_user(pop, 7)
    {'userId': 7, 'displayName': 'Ann Lee', 'email': 'ann@bank.example', 'username': 'user7'}
    """
    user = population.user(user_id)
    return _v4_user(user.user_id, population.username(user_id), user.display_name, user.email)


def _v4_user(user_id: int, username: str, display_name: str | None, email: str | None) -> dict[str, Any]:
    # The order of Symphony's own V4User: userId, firstName, lastName, displayName, email, username.
    user: dict[str, Any] = {"userId": user_id}
    if display_name is not None:
        user["displayName"] = display_name
    if email is not None:
        user["email"] = email
    user["username"] = username
    return user


def _message_id(event_id: str) -> str:
    """A message id in Symphony's form (25 bytes, URL-safe base64 without padding: 34
    characters), derived from the event's id so that the same event gives the same one."""
    digest = hashlib.sha256(b"messageId\0" + event_id.encode("utf-8")).digest()[:25]
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def v4_event(
    event_type: DatafeedEvent | str,
    event_id: str,
    ts: int,
    initiator: Mapping[str, Any],
    other: Mapping[str, Any],
) -> dict[str, Any]:
    """One datafeed event about a connection (V4Event), as a JSON-ready dict.

    Parameters
    ----------
    event_type : DatafeedEvent or str
        ``CONNECTIONREQUESTED`` or ``CONNECTIONACCEPTED``.
    event_id : str
        The event's ``id``; the same id gives the same ``messageId`` (34 characters of
        URL-safe base64, the form of Symphony's message ids).
    ts : int
        The event's ``timestamp``, ms since the epoch.
    initiator : mapping
        The V4User who made the call (:func:`v4_user`): the requester of a
        ``CONNECTIONREQUESTED``, the accepter of a ``CONNECTIONACCEPTED``.
    other : mapping
        The other V4User: ``payload.connectionRequested.toUser`` (the user asked), or
        ``payload.connectionAccepted.fromUser`` (the requester).

    Returns
    -------
    dict
        ``{id, messageId, timestamp, type, initiator: {user}, payload}`` in that order, as
        Symphony sends it.

    Examples
    --------
    >>> event = v4_event("CONNECTIONACCEPTED", "kX3p", 1_700_000_000_000, {"userId": 2}, {"userId": 1})
    >>> event["payload"], event["initiator"], len(event["messageId"])
    ({'connectionAccepted': {'fromUser': {'userId': 1}}}, {'user': {'userId': 2}}, 34)
    """
    kind = DatafeedEvent(event_type)
    key, who = _PAYLOAD[kind]
    return {
        "id": event_id,
        "messageId": _message_id(event_id),
        "timestamp": int(ts),
        "type": kind.value,
        "initiator": {"user": dict(initiator)},
        "payload": {key: {who: dict(other)}},
    }


# -- export: the events a replay emits ----------------------------------------------------------


def _log_digest(events: Events) -> bytes:
    """A digest of the log's content: the seed of its events' ids."""
    digest = hashlib.sha256(b"simkit events\0")
    for column in (events.ts, events.actor, events.target):
        digest.update(np.ascontiguousarray(column, dtype="<i8").tobytes())
    digest.update(np.ascontiguousarray(events.action, dtype=np.int8).tobytes())
    return digest.digest()


def _event_id(log: bytes, row: int) -> str:
    """The id of the event emitted by input row `row` of the log of digest `log`: 12
    characters of URL-safe base64, so that the same run always gives the same ids."""
    digest = hashlib.sha256(log + row.to_bytes(8, "little")).digest()[:9]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def _v4_users(population: Population, ids: NDArray[np.int64]) -> dict[int, dict[str, Any]]:
    """The V4User of each user of `ids` (all in the population), found in one pass."""
    wanted = np.unique(ids)
    by_id = np.argsort(population.user_id, kind="stable")
    rows = by_id[np.searchsorted(population.user_id, wanted, sorter=by_id)].tolist()
    names = population.usernames()
    shown, email = population.user_display_name, population.user_email
    return {
        uid: _v4_user(
            uid,
            names[row],
            shown[row] if shown is not None else None,
            email[row] if email is not None else None,
        )
        for uid, row in zip(wanted.tolist(), rows)
    }


def datafeed_events(run: Run, result: Replay | None = None) -> Iterator[dict[str, Any]]:
    """The datafeed events a run's replay emits, as V4Event dicts, in apply order.

    A ``CONNECTIONREQUESTED`` for each connect that made a request (from no record or a
    declined one; never between colleagues of a private pod, who are connected
    implicitly), a ``CONNECTIONACCEPTED`` for each accept that moved a request to
    accepted: whichever effects :data:`simkit.rules.EFFECTS` says emit them. Each
    event's ``id`` is derived from the log's content and the event's input row.

    Parameters
    ----------
    run : Run
        The inputs, as :func:`simkit.io.runs.read_run` returns them.
    result : Replay, optional
        What replaying `run` gave; replayed here with the default engine if left out.

    Examples
    --------
    >>> run = read_run("data/samples/story")
    >>> events = list(datafeed_events(run))
    >>> [(e["type"], e["initiator"]["user"]["userId"]) for e in events[:3]]
    [('CONNECTIONREQUESTED', 101), ('CONNECTIONREQUESTED', 101), ('CONNECTIONACCEPTED', 201)]
    """
    if result is None:
        result = replay(run.population, run.events, run.policy)
    changes = record_changes(run.events, result.outcomes)
    feed = _FEED_OF_EFFECT[changes.effect]
    emits = feed >= 0
    rows, types = changes.event[emits], feed[emits]
    ev = run.events
    # The caller is the initiator of both events: the requester of a request (the rules
    # make the caller the requester), the accepter of an acceptance; the other user is
    # the target, the requester of the request accepted.
    actor, target = ev.actor[rows], ev.target[rows]
    users = _v4_users(run.population, np.concatenate([actor, target]))
    log = _log_digest(ev)
    for row, kind, ts, a, t in zip(
        rows.tolist(), types.tolist(), ev.ts[rows].tolist(), actor.tolist(), target.tolist()
    ):
        yield v4_event(_FEED_TYPES[kind], _event_id(log, row), ts, users[a], users[t])


def _made_folders(path: Path) -> list[Path]:
    """The folders above `path` that do not exist yet, deepest first."""
    return [p for p in path.absolute().parents if not p.exists()]


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def export_datafeed(run_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> dict[str, int]:
    """Write the datafeed events of a run folder's replay to `out`, one V4Event per line.

    The run is read (and checked) from `run_dir` and replayed with the default engine,
    whatever outputs it holds; the events are those of :func:`datafeed_events`, in apply
    order. The file is written through a temporary name, so it is complete or absent, and
    the same run always gives the same bytes. Missing folders above `out` are created.

    Returns
    -------
    dict
        The number of events written of each type.

    Raises
    ------
    InputError
        An input table of `run_dir` is refused.
    RunDirError
        `run_dir` is not a folder, or `out` is one.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     export_datafeed("data/samples/story", Path(tmp) / "story.jsonl")
    {'CONNECTIONREQUESTED': 7, 'CONNECTIONACCEPTED': 3}
    """
    run = read_run(run_dir)
    verify_run(run_dir)  # a folder that disagrees with its manifest is refused, as by `simkit report`
    target = Path(out)
    if target.is_dir():
        raise RunDirError(f"{target}: a folder; expected the path of the file to write, e.g. feed.jsonl")
    result = replay(run.population, run.events, run.policy)
    counts = {kind.value: 0 for kind in _FEED_TYPES}
    made = _made_folders(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as part, part.open("w", encoding="utf-8", newline="\n") as fh:
            for event in datafeed_events(run, result):
                counts[event["type"]] += 1
                fh.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
                fh.write("\n")
    except BaseException:
        _remove_empty(made)
        raise
    return counts


# -- import: the action events behind a datafeed ---------------------------------------------------


@dataclass(frozen=True, eq=False)
class Datafeed:
    """The connection events of datafeed files, as action events.

    Attributes
    ----------
    events : Events
        A connect by the initiator to ``toUser`` for each ``CONNECTIONREQUESTED``, an accept
        by the initiator of ``fromUser``'s request for each ``CONNECTIONACCEPTED``; ordered
        by timestamp, equal timestamps in the order read (files in the order given).
    read : int
        V4Event objects read, of every type.
    duplicates : int
        Connection events left out because they repeat one read before: the same ``id``,
        type, timestamp and users (the feed delivers an event to both users with one id).
        An event without an ``id`` is never a duplicate.
    other_types : int
        Events of other types (messages, rooms...), ignored.
    files : tuple of (str, str)
        The name and SHA-256 of each file read, in order.
    """

    events: Events
    read: int
    duplicates: int
    other_types: int
    files: tuple[tuple[str, str], ...] = ()


class _Where:
    """Where an event was read, to name it in an error: file, line, field prefix."""

    def __init__(self, file: Path, line: int, prefix: str) -> None:
        self.file, self.line, self.prefix = file, line, prefix

    def error(self, field: str, expected: str) -> DatafeedError:
        """The error of the event's `field` (a dotted path; ``""``: the event itself)."""
        name = ".".join(part for part in (self.prefix, field) if part)
        return DatafeedError(str(self.file), self.line, name or None, expected)


_MISSING = object()
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _skip(text: str, i: int) -> int:
    """The offset of the first character at or after `i` that is not JSON whitespace."""
    match = _WS.match(text, i)
    return match.end() if match is not None else i


def _shown(value: Any) -> str:
    """A JSON value as an error message shows what was found."""
    if value is _MISSING:
        return "nothing"
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return f"the string {text if len(text) <= 40 else text[:37] + '...'}"
    return "a list" if isinstance(value, list) else "an object"


def _lines(data: bytes, file: Path) -> list[str]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DatafeedError(str(file), line, None, "UTF-8 text (a byte is not UTF-8)") from None
    # Split on line feeds only: a JSON string may hold other line separators (U+2028).
    return text.split("\n")


def _element_offsets(text: str, in_events: bool) -> list[int]:
    """Where each element of the array of the JSON document `text` starts: the document
    itself, or (`in_events`) the value of its top-level key ``events`` (the last one, as
    :func:`json.loads` keeps it). `text` must be valid JSON."""
    i = _skip(text, 0)
    if in_events:
        start = i
        i = _skip(text, i + 1)  # past "{"
        while text[i] != "}":
            key, i = _DECODER.raw_decode(text, i)
            i = _skip(text, _skip(text, i) + 1)  # past ":"
            if key == "events":
                start = i
            _, i = _DECODER.raw_decode(text, i)
            i = _skip(text, i)
            if text[i] == ",":
                i = _skip(text, i + 1)
        i = start
    offsets = []
    i = _skip(text, i + 1)  # past "["
    while text[i] != "]":
        offsets.append(i)
        _, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text[i] == ",":
            i = _skip(text, i + 1)
    return offsets


def _documents(file: Path, lines: list[str]) -> Iterator[tuple[int, Any, str | None]]:
    """``(line, value, text)`` of each JSON document of a file: one per non-blank line
    (JSON lines), or the whole file as one document (`text` is then the file's text)."""
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return
    try:
        json.loads(lines[first])
    except json.JSONDecodeError:
        text = "\n".join(lines)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatafeedError(
                str(file),
                exc.lineno,
                None,
                f"JSON: one V4Event per line, or one V5EventList ({exc.msg} at column {exc.colno})",
            ) from None
        yield first + 1, value, text
        return
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatafeedError(
                str(file), number, None, f"a line of JSON ({exc.msg} at column {exc.colno})"
            ) from None
        yield number, value, None


def _v4_events(file: Path, lines: list[str]) -> Iterator[tuple[_Where, Any]]:
    """Each V4Event of a file, with where it starts."""
    for line, value, text in _documents(file, lines):
        # A V5EventList: events (null or absent when a read found none) and an ackId.
        listed = isinstance(value, dict) and "type" not in value and ("events" in value or "ackId" in value)
        if listed:
            events, prefix = value.get("events") or [], "events"
            if not isinstance(events, list):
                raise _Where(file, line, "").error(
                    "events", f"a list of V4Event objects, found {_shown(events)}"
                )
        elif isinstance(value, list):
            events, prefix = value, ""
        else:
            yield _Where(file, line, ""), value
            continue
        offsets = _element_offsets(text, listed) if text is not None and events else []
        for i, event in enumerate(events):
            at = text.count("\n", 0, offsets[i]) + 1 if text is not None else line
            yield _Where(file, at, f"{prefix}[{i}]"), event


def _field(event: dict[str, Any], path: str, where: _Where) -> Any:
    """The value at the dotted `path` of `event`, or _MISSING; an error if a step is not an object."""
    value: Any = event
    parts = path.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(value, dict):
            raise where.error(".".join(parts[:depth]), f"a JSON object, found {_shown(value)}")
        if part not in value:
            return _MISSING
        value = value[part]
    return value


def _integer(event: dict[str, Any], path: str, what: str, where: _Where) -> int:
    value = _field(event, path, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(path, f"{what}, found {_shown(value)}")
    if not _INT64[0] <= value <= _INT64[1]:
        raise where.error(path, f"{what} within int64, found {value}")
    return value


def read_datafeed(files: Iterable[str | os.PathLike[str]]) -> Datafeed:
    """Read the connection events of datafeed files as action events.

    Each file holds JSON lines, each line a V4Event (or a V5EventList, or an array of
    V4Event), or is one JSON document: a V5EventList as the datafeed read endpoint
    returns it (``{"events": [...], "ackId": ...}``), an array of V4Event, or one V4Event.
    Events of other types are counted and ignored; a repeated event is counted once (see
    :class:`Datafeed`). Blank lines are skipped; an empty file holds no events.

    Raises
    ------
    DatafeedError
        A file that is missing or not UTF-8 JSON, an event that is not an object, lacks a
        field it needs (``type``, ``timestamp``, ``initiator.user.userId``, the other
        user's ``userId``), or has a timestamp or user id that is not an integer (within
        int64), or an ``id`` that is not a string. The message names the file, the 1-based
        line where the event starts and the field.

    Examples
    --------
    >>> feed = read_datafeed(["data/samples/datafeed/story.jsonl"])
    >>> feed.read, len(feed.events), feed.events.actions()[:3]
    (10, 10, ['connect', 'connect', 'accept'])
    """
    rows: list[tuple[int, int, int, str]] = []
    seen: set[tuple[str, str, int, int, int]] = set()
    read = duplicates = other = 0
    names: list[tuple[str, str]] = []
    for name in files:
        file = Path(name)
        if not file.is_file():
            found = "a folder" if file.is_dir() else "nothing"
            raise DatafeedError(str(file), None, None, f"a file of datafeed events, found {found}")
        data = file.read_bytes()
        names.append((file.name, hashlib.sha256(data).hexdigest()))
        for where, event in _v4_events(file, _lines(data, file)):
            read += 1
            if not isinstance(event, dict):
                raise where.error("", f"a V4Event object, found {_shown(event)}")
            kind = _field(event, "type", where)
            if not isinstance(kind, str):
                raise where.error(
                    "type", f"a string, the event type (e.g. CONNECTIONREQUESTED), found {_shown(kind)}"
                )
            if kind not in _PAYLOAD:
                other += 1
                continue
            feed_type = DatafeedEvent(kind)
            key, who = _PAYLOAD[feed_type]
            ts = _integer(event, "timestamp", "an integer timestamp (ms since the epoch)", where)
            actor = _integer(event, "initiator.user.userId", "an integer user id", where)
            target = _integer(event, f"payload.{key}.{who}.userId", "an integer user id", where)
            event_id = event.get("id")
            if event_id is not None:
                if not isinstance(event_id, str):
                    raise where.error("id", f"a string, found {_shown(event_id)}")
                seen_as = (event_id, kind, ts, actor, target)
                if seen_as in seen:
                    duplicates += 1
                    continue
                seen.add(seen_as)
            rows.append((ts, actor, target, _ACTION_OF[feed_type].value))
    events = Events.from_records(rows)
    order = apply_order(events.ts)
    events = Events(
        ts=events.ts[order],
        actor=events.actor[order],
        target=events.target[order],
        action=events.action[order],
    )
    return Datafeed(events=events, read=read, duplicates=duplicates, other_types=other, files=tuple(names))


@dataclass(frozen=True, eq=False)
class DatafeedImport:
    """What :func:`import_datafeed` read and wrote.

    Attributes
    ----------
    feed : Datafeed
        The events read and their counts.
    unknown_users : int
        Events kept that name a user the population does not have (valid input: the
        replay answers them, ``connections.md`` §5).
    result : Replay
        The replay of the run written.
    path : Path
        The run folder written.
    """

    feed: Datafeed
    unknown_users: int
    result: Replay
    path: Path


def _has_table(folder: Path, name: str) -> bool:
    return (folder / f"{name}.csv").exists() or (folder / f"{name}.parquet").exists()


def _population_and_policy(folder: Path) -> tuple[Population, Policy]:
    """The population of `folder` and its policy: a run folder's (read and checked as a
    replay would), or a folder of pods, users and crosspod tables without one."""
    if _has_table(folder, "events"):
        run = read_run(folder)
        return run.population, run.policy
    population, _files = read_population(folder)
    if _has_table(folder, "policy"):
        raise RunDirError(
            f"{folder}: a policy table without an events table; give a run folder (its policy "
            "is copied) or a folder of pods, users and crosspod tables only"
        )
    return population, Policy.empty()


def import_datafeed(
    files: Iterable[str | os.PathLike[str]],
    population: str | os.PathLike[str],
    out: str | os.PathLike[str],
) -> DatafeedImport:
    """Turn datafeed files into a run folder and replay it.

    The run's events are those of :func:`read_datafeed`; its ``pods``, ``users``,
    ``crosspod`` and ``policy`` (if any) come from the folder `population` (a run folder,
    whose own events are not used, or a folder of pods, users and crosspod tables). The
    folder `out` gets the input tables (Parquet), the outputs of a replay with the default
    engine and a manifest whose ``datafeed`` key records the files read (name and SHA-256)
    and the counts, so ``simkit replay`` and ``simkit report`` work on it as on any run.
    Everything is read and checked first, and the run is staged and committed as one
    (:class:`~simkit.io.commit.RunFolderTransaction`), so nothing is written if anything is
    refused.

    Raises
    ------
    DatafeedError
        A datafeed file is refused (names the file, the line and the field).
    InputError
        A table of `population` is refused.
    RunDirError
        `population` is not a folder of tables, or `out` is a file or a folder that is not
        empty.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     imported = import_datafeed(
    ...         ["data/samples/datafeed/story.jsonl"], "data/samples/story", Path(tmp) / "run"
    ...     )
    ...     sorted(p.name for p in imported.path.iterdir())[:3]
    ['connections.parquet', 'crosspod.parquet', 'events.parquet']
    >>> imported.result.connections.status_counts()
    {'PENDING': 1, 'ACCEPTED': 3, 'REJECTED': 0}
    """
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise RunDirError(f"{target}: not a folder; expected a folder to write the run into")
    if target.is_dir() and not all(is_own(p.name) for p in target.iterdir()):
        raise RunDirError(f"{target}: folder is not empty; give a new or empty folder for the imported run")
    feed = read_datafeed(files)
    pop, policy = _population_and_policy(Path(population))
    ev = feed.events
    unknown = int(np.count_nonzero(~(np.isin(ev.actor, pop.user_id) & np.isin(ev.target, pop.user_id))))
    extra = {
        "datafeed": {
            "duplicates": feed.duplicates,
            "files": [{"file": name, "sha256": digest} for name, digest in feed.files],
            "kept": len(ev),
            "other_types": feed.other_types,
            "read": feed.read,
            "unknown_users": unknown,
        }
    }
    made = ([] if target.exists() else [target.absolute()]) + _made_folders(target)
    try:
        target.mkdir(parents=True, exist_ok=True)
        # Under the folder's lock the run is staged in it and put in place by one commit.
        with RunFolderTransaction(target, "simkit datafeed import") as txn:
            if not all(is_own(p.name) for p in target.iterdir()):
                raise RunDirError(
                    f"{target}: folder is not empty; give a new or empty folder for the imported run"
                )
            written = write_inputs(txn, pop, ev, policy)
            result = replay(pop, ev, policy)
            write_outputs(txn, Run(target, pop, ev, policy, written), result, extra=extra)
            txn.commit(last="manifest.json")
    except BaseException:
        _remove_empty(made)
        raise
    return DatafeedImport(feed=feed, unknown_users=unknown, result=result, path=target)
