"""`feeds`: the datafeeds of the emulator's users (agent API v5, ``connections.md`` §6, §8).

A user may open datafeeds (``POST /agent/v5/datafeeds``); every datafeed event about a
connection is delivered to each feed of both users, the same event (same ``id``) in each.
A read long-polls: it answers at once when events wait, else when one arrives or when
`wait` seconds have passed (with no events), so that a bot's loop stops within that time.
Delivery is at least once, as Symphony's: a read names the ``ackId`` of the batch before;
events of a batch not acknowledged are handed out again. An event is delivered only to
the feeds open when it happens. No HTTP here (:mod:`simkit.serve.app` reads the requests);
the V4Event itself is built by :func:`simkit.io.datafeed.v4_event`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from simkit.io.datafeed import v4_event, v4_user
from simkit.population import Population
from simkit.rules import DatafeedEvent

__all__ = ["MAX_BATCH", "MAX_QUEUE", "Feed", "Feeds"]

MAX_BATCH = 100
"""The most events one read hands out."""

MAX_QUEUE = 10_000
"""The most events a feed keeps unread; past it the oldest are dropped (a feed nobody reads
must not hold the server's memory)."""


@dataclass(eq=False)
class Feed:
    """One datafeed: its owner, the events not yet acknowledged, and the last batch handed out."""

    feed_id: str
    owner: int
    created_at: int
    tag: str | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    # The ackId of the last batch handed out, and how many events it held.
    sent: tuple[str, int] | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def to_json(self) -> dict[str, Any]:
        """The feed as the agent API shows it (V5Datafeed)."""
        return {"id": self.feed_id, "createdAt": self.created_at}


class Feeds:
    """The open datafeeds of a population's users, and the events published to them.

    Examples
    --------
    >>> import asyncio
    >>> from simkit.population import Pod, Population, User
    >>> pop = Population.from_records([Pod(1, "a"), Pod(2, "b")], [User(10, 1), User(20, 2)], crosspod=[(1, 2)])
    >>> async def main():
    ...     feeds = Feeds(pop, wait=0.01)
    ...     feed = feeds.create(20)
    ...     feeds.publish("CONNECTIONREQUESTED", 1_000, 10, 20)
    ...     events, _ = await feeds.read(feed, "")
    ...     again, ack = await feeds.read(feed, "")  # not acknowledged: handed out again
    ...     after, _ = await feeds.read(feed, ack)
    ...     return [e["type"] for e in events], len(again), after
    >>> asyncio.run(main())
    (['CONNECTIONREQUESTED'], 1, [])
    """

    def __init__(self, population: Population, wait: float = 30.0) -> None:
        self.population = population
        self.wait = wait
        self._by_id: dict[str, Feed] = {}
        self._by_user: dict[int, list[Feed]] = {}

    def create(self, owner: int, tag: str | None = None) -> Feed:
        """Open a datafeed for `owner`; its id has the form the BDK's v2 loop looks for."""
        suffix = f"_{tag}" if tag else ""
        feed = Feed(f"{secrets.token_hex(16)}_f{suffix}", owner, time.time_ns() // 1_000_000, tag)
        self._by_id[feed.feed_id] = feed
        self._by_user.setdefault(owner, []).append(feed)
        return feed

    def of(self, owner: int, tag: str | None = None) -> list[Feed]:
        """The open feeds of `owner` (with this tag, if given), oldest first."""
        return [f for f in self._by_user.get(owner, []) if tag is None or f.tag == tag]

    def find(self, owner: int, feed_id: str) -> Feed | None:
        """`owner`'s feed of this id, or ``None`` (another user's feed is not found either)."""
        feed = self._by_id.get(feed_id)
        return feed if feed is not None and feed.owner == owner else None

    def delete(self, feed: Feed) -> None:
        """Close a feed; a read waiting on it answers at once."""
        feed.closed = True
        feed.arrived.set()
        del self._by_id[feed.feed_id]
        self._by_user[feed.owner].remove(feed)

    def close(self) -> None:
        """Close every feed: reads waiting answer at once (the server is stopping)."""
        for feed in list(self._by_id.values()):
            self.delete(feed)

    def publish(self, kind: DatafeedEvent | str, ts: int, initiator: int, other: int) -> dict[str, Any]:
        """Build one event and deliver it to every feed of both users; return it.

        The initiator made the call (the requester of a request, the accepter of an
        acceptance); `other` is the user asked, or the requester accepted (§6).
        """
        event = v4_event(
            kind,
            secrets.token_urlsafe(9),
            ts,
            v4_user(self.population, initiator),
            v4_user(self.population, other),
        )
        for user in (initiator, other):
            for feed in self._by_user.get(user, ()):
                feed.pending.append(event)
                if len(feed.pending) > MAX_QUEUE:
                    dropped = len(feed.pending) - MAX_QUEUE
                    del feed.pending[:dropped]
                    feed.sent = None
                feed.arrived.set()
        return event

    async def read(self, feed: Feed, ack_id: str | None) -> tuple[list[dict[str, Any]], str]:
        """The next batch of `feed` and its ackId, waiting up to :attr:`wait` seconds for one.

        `ack_id` acknowledges the batch handed out before (it is dropped); any other value,
        ``""`` included, acknowledges nothing, and that batch is handed out again.
        """
        if feed.sent is not None and ack_id == feed.sent[0]:
            del feed.pending[: feed.sent[1]]
            feed.sent = None
        if not feed.pending and not feed.closed:
            feed.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.arrived.wait(), self.wait)
        batch = feed.pending[:MAX_BATCH]
        ack = secrets.token_urlsafe(12)
        feed.sent = (ack, len(batch))
        return list(batch), ack
