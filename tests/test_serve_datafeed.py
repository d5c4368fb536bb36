"""The emulator's datafeed (agent v5): over HTTP with aiohttp's client, and through the real
BDK's datafeed loop (symphony-bdk-python 3.0.0, datafeed version v2)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

pytest.importorskip("aiohttp")
jwt = pytest.importorskip("jwt")

from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from simkit.io.datafeed import v4_user  # noqa: E402
from simkit.serve import create_app, running  # noqa: E402
from simkit.serve.app import FEEDS, POD  # noqa: E402
from simkit.serve.feeds import Feeds  # noqa: E402

STORY = "data/samples/story"
# In the story (after its replay) crossPod is on between pods 10 and 30: 102 and 301 may
# connect and have no record; 101 and 102 are colleagues of private pod 10.
T = TypeVar("T")
Client = TestClient[Any, Any]


def _with_client(session: Callable[[Client, web.Application], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        app = create_app(STORY, datafeed_wait=options.pop("wait", 0.2), **options)
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            return await session(client, app)

    return asyncio.run(main())


async def _agent_login(client: Client, user_id: int) -> dict[str, str]:
    token = jwt.encode(
        {"sub": f"user{user_id}"}, "not-verified-by-the-emulator-without-keys", algorithm="HS256"
    )
    headers = {}
    for path, header in (
        ("/login/pubkey/authenticate", "sessionToken"),
        ("/relay/pubkey/authenticate", "keyManagerToken"),
    ):
        resp = await client.post(path, json={"token": token})
        assert resp.status == 200
        headers[header] = (await resp.json())["token"]
    return headers


async def _feed(client: Client, headers: dict[str, str]) -> str:
    resp = await client.post("/agent/v5/datafeeds", json={}, headers=headers)
    assert resp.status == 201, await resp.text()
    feed_id: str = (await resp.json())["id"]
    return feed_id


async def _read(client: Client, headers: dict[str, str], feed: str, ack: str = "") -> dict[str, Any]:
    resp = await client.post(f"/agent/v5/datafeeds/{feed}/read", json={"ackId": ack}, headers=headers)
    assert resp.status == 200, await resp.text()
    doc: dict[str, Any] = await resp.json()
    return doc


def test_both_users_feeds_get_the_same_events_built_from_the_users_table() -> None:
    async def session(client: Client, app: web.Application) -> None:
        a, b = await _agent_login(client, 102), await _agent_login(client, 301)
        fa, fb = await _feed(client, a), await _feed(client, b)
        s102, s301 = {"sessionToken": a["sessionToken"]}, {"sessionToken": b["sessionToken"]}
        assert (
            await client.post("/pod/v1/connection/create", json={"userId": 301}, headers=s102)
        ).status == 200
        assert (
            await client.post("/pod/v1/connection/accept", json={"userId": 102}, headers=s301)
        ).status == 200
        # Reject, remove and refusals emit nothing.
        await client.post("/pod/v1/connection/create", json={"userId": 301}, headers=s102)
        await client.post("/pod/v1/connection/user/301/remove", json={}, headers=s102)
        got_a, got_b = await _read(client, a, fa), await _read(client, b, fb)
        pop = app[POD].source.population
        assert [e["type"] for e in got_a["events"]] == ["CONNECTIONREQUESTED", "CONNECTIONACCEPTED"]
        assert got_a["events"] == got_b["events"]
        requested, accepted = got_a["events"]
        assert requested["initiator"]["user"] == v4_user(pop, 102)
        assert requested["payload"] == {"connectionRequested": {"toUser": v4_user(pop, 301)}}
        assert accepted["initiator"]["user"] == v4_user(pop, 301)
        assert accepted["payload"] == {"connectionAccepted": {"fromUser": v4_user(pop, 102)}}
        assert requested["id"] != accepted["id"]
        assert requested["timestamp"] <= accepted["timestamp"]
        # Acknowledged, the batch is gone; an idle read answers none after the wait.
        start = time.monotonic()
        assert (await _read(client, a, fa, got_a["ackId"]))["events"] == []
        assert 0.15 < time.monotonic() - start < 2

    _with_client(session)


def test_an_unacknowledged_batch_is_handed_out_again() -> None:
    async def session(client: Client, app: web.Application) -> list[list[str]]:
        b = await _agent_login(client, 301)
        fb = await _feed(client, b)
        await app[POD].act(102, 301, "connect")
        first = await _read(client, b, fb)
        again = await _read(client, b, fb, "some-other-ack")
        await app[POD].act(301, 102, "accept")
        after = await _read(client, b, fb, again["ackId"])
        return [[e["id"] for e in r["events"]] for r in (first, again, after)]

    first, again, after = _with_client(session)
    assert first == again and len(first) == 1 and len(after) == 1 and after != first


def test_a_waiting_read_answers_when_the_event_happens() -> None:
    async def session(client: Client, app: web.Application) -> float:
        b = await _agent_login(client, 301)
        fb = await _feed(client, b)
        reading = asyncio.ensure_future(_read(client, b, fb))
        await asyncio.sleep(0.05)
        start = time.monotonic()
        await app[POD].act(102, 301, "connect")
        got = await reading
        assert [e["type"] for e in got["events"]] == ["CONNECTIONREQUESTED"]
        return time.monotonic() - start

    assert _with_client(session, wait=5.0) < 1.0


def test_feeds_list_delete_and_belong_to_their_user() -> None:
    async def session(client: Client, app: web.Application) -> None:
        a, b = await _agent_login(client, 102), await _agent_login(client, 301)
        fa = await _feed(client, a)
        tagged = (await (await client.post("/agent/v5/datafeeds", json={"tag": "mine"}, headers=a)).json())[
            "id"
        ]
        listed = await (await client.get("/agent/v5/datafeeds", headers=a)).json()
        assert [f["id"] for f in listed] == [fa, tagged] and fa.endswith("_f") and tagged.endswith("_f_mine")
        by_tag = await (await client.get("/agent/v5/datafeeds?tag=mine", headers=a)).json()
        assert [f["id"] for f in by_tag] == [tagged]
        for bad in ({"tag": "a b"}, {"tag": "a_b"}, {"tag": 7}, {"tag": "x" * 101}):
            assert (await client.post("/agent/v5/datafeeds", json=bad, headers=a)).status == 400
        assert (await client.delete(f"/agent/v5/datafeeds/{tagged}", headers=a)).status == 204
        assert await (await client.get("/agent/v5/datafeeds", headers=b)).json() == []
        # Another user's feed is not found (400, as the agent answers), nor is a deleted one.
        assert (await client.post(f"/agent/v5/datafeeds/{fa}/read", json={}, headers=b)).status == 400
        assert (await client.delete(f"/agent/v5/datafeeds/{fa}", headers=b)).status == 400
        assert (await client.delete(f"/agent/v5/datafeeds/{fa}", headers=a)).status == 204
        assert (await client.post(f"/agent/v5/datafeeds/{fa}/read", json={}, headers=a)).status == 400
        # Both tokens of one user are needed.
        only_session = {"sessionToken": a["sessionToken"]}
        mixed = {"sessionToken": a["sessionToken"], "keyManagerToken": b["keyManagerToken"]}
        for headers in (only_session, mixed):
            assert (await client.post("/agent/v5/datafeeds", json={}, headers=headers)).status == 401
        resp = await client.post("/agent/v5/datafeeds", data=b"[1]", headers=a)
        assert resp.status == 400

    _with_client(session)


def test_a_feed_opened_after_an_event_does_not_get_it() -> None:
    async def session(client: Client, app: web.Application) -> list[Any]:
        b = await _agent_login(client, 301)
        await app[POD].act(102, 301, "connect")
        fb = await _feed(client, b)
        events: list[Any] = (await _read(client, b, fb))["events"]
        return events

    assert _with_client(session, wait=0.05) == []


# -- the real BDK's datafeed loop ---------------------------------------------------------------


def test_a_bdk_bot_on_its_datafeed_accepts_another_bots_request(tmp_path: Any) -> None:
    bdk_core = pytest.importorskip("symphony.bdk.core.symphony_bdk")
    from symphony.bdk.core.config.loader import BdkConfigLoader
    from symphony.bdk.core.service.datafeed.real_time_event_listener import RealTimeEventListener
    from symphony.bdk.gen.agent_model.v4_connection_requested import V4ConnectionRequested
    from symphony.bdk.gen.agent_model.v4_initiator import V4Initiator

    seen: dict[int, list[str]] = {102: [], 301: []}

    class Recorder(RealTimeEventListener):  # type: ignore[misc]
        def __init__(self, me: int) -> None:
            self.me = me

        async def is_accepting_event(self, event: Any, bot_info: Any) -> bool:
            # The BDK's default drops the bot's own events; this listener sees its whole feed.
            return True

        async def on_connection_requested(self, initiator: V4Initiator, event: V4ConnectionRequested) -> None:
            seen[self.me].append("CONNECTIONREQUESTED")

        async def on_connection_accepted(self, initiator: V4Initiator, event: Any) -> None:
            seen[self.me].append("CONNECTIONACCEPTED")

    class Acceptor(Recorder):
        def __init__(self, me: int, bdk: Any) -> None:
            super().__init__(me)
            self.bdk = bdk

        async def on_connection_requested(self, initiator: V4Initiator, event: V4ConnectionRequested) -> None:
            await super().on_connection_requested(initiator, event)
            if initiator.user.user_id != self.me:
                await self.bdk.connections().accept_connection(initiator.user.user_id)

    async def main(bots: dict[int, Any], feeds: Feeds) -> str:
        requester, accepter = bots[102], bots[301]
        loops = {102: requester.datafeed(), 301: accepter.datafeed()}
        loops[102].subscribe(Recorder(102))
        loops[301].subscribe(Acceptor(301, accepter))
        tasks = [asyncio.create_task(loop.start()) for loop in loops.values()]
        try:
            # Both loops have opened their feeds before the request is made.
            deadline = time.monotonic() + 5
            while not all(feeds.of(u) for u in loops) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await requester.connections().create_connection(301)
            while time.monotonic() < deadline:
                got = await requester.connections().get_connection(301)
                if got.status == "ACCEPTED" and len(seen[102]) == 2:
                    break
                await asyncio.sleep(0.02)
            status: str = got.status
        finally:
            for loop in loops.values():
                await loop.stop()
            done, pending = await asyncio.wait(tasks, timeout=5)
        assert not pending and all(t.exception() is None for t in done)
        return status

    keys = tmp_path / "bdk"
    with running(STORY, bdk_config=keys, bdk_users=["user102", "user301"], datafeed_wait=0.2) as srv:
        loop = asyncio.new_event_loop()
        bots = {
            b.user_id: bdk_core.SymphonyBdk(BdkConfigLoader.load_from_file(str(b.config))) for b in srv.bots
        }
        try:
            status = loop.run_until_complete(main(bots, srv.app[FEEDS]))
        finally:
            for bdk in bots.values():
                loop.run_until_complete(bdk.close_clients())
            loop.close()
    assert status == "ACCEPTED"
    assert seen == {
        102: ["CONNECTIONREQUESTED", "CONNECTIONACCEPTED"],
        301: ["CONNECTIONREQUESTED", "CONNECTIONACCEPTED"],
    }


@pytest.mark.parametrize("seed", range(4))
def test_the_events_published_are_those_datafeed_export_finds_in_the_recording(
    seed: int, tmp_path: Any
) -> None:
    import random

    from simkit.io.datafeed import datafeed_events
    from simkit.io.runs import read_run
    from simkit.serve.pod import Pod, load_source

    pod = Pod(load_source(STORY), clock="run")
    published: list[tuple[str, int, int, int]] = []
    pod.publish = lambda kind, ts, initiator, other: published.append((kind.value, ts, initiator, other))
    rng = random.Random(seed)
    users = [101, 102, 201, 202, 203, 301, 302, 999]

    async def session() -> None:
        for _ in range(300):
            await pod.act(
                rng.choice(users), rng.choice(users), rng.choice(["connect", "accept", "reject", "remove"])
            )

    asyncio.run(session())
    pod.record(tmp_path / "rec")
    exported = [
        (e["type"], e["timestamp"], e["initiator"]["user"]["userId"], next(iter(e["payload"].values())))
        for e in datafeed_events(read_run(tmp_path / "rec"))
        if e["timestamp"] >= pod.source.floor
    ]
    expected = [(kind, ts, initiator, other) for kind, ts, initiator, other in published]
    assert [(k, ts, i, next(iter(o.values()))["userId"]) for k, ts, i, o in exported] == expected
    assert len(expected) > 5


def test_stopping_the_server_answers_a_waiting_read_at_once() -> None:
    import threading
    import urllib.request

    def call(url: str, path: str, doc: Any, headers: dict[str, str]) -> Any:
        request = urllib.request.Request(
            url + path, data=json.dumps(doc).encode(), headers={"Content-Type": "application/json", **headers}
        )
        with urllib.request.urlopen(request, timeout=20) as resp:
            return json.loads(resp.read())

    answers: list[Any] = []
    with running(STORY, datafeed_wait=30) as srv:
        token = jwt.encode({"sub": "user301"}, "not-verified-by-the-emulator-without-keys", algorithm="HS256")
        headers = {
            "sessionToken": call(srv.url, "/login/pubkey/authenticate", {"token": token}, {})["token"],
            "keyManagerToken": call(srv.url, "/relay/pubkey/authenticate", {"token": token}, {})["token"],
        }
        feed = call(srv.url, "/agent/v5/datafeeds", {}, headers)["id"]
        reader = threading.Thread(
            target=lambda: answers.append(
                call(srv.url, f"/agent/v5/datafeeds/{feed}/read", {"ackId": ""}, headers)
            )
        )
        reader.start()
        time.sleep(0.2)
        start = time.monotonic()
    reader.join(timeout=20)
    assert time.monotonic() - start < 5
    assert [a["events"] for a in answers] == [[]]
