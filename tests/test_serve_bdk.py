"""The real Symphony BDK (symphony-bdk-python 3.0.0) against `simkit serve`.

Each test starts the emulator on 127.0.0.1 with a free port (simkit.serve.running), with
BDK configs written by --bdk-config (retry.maxAttempts: 1), and drives ConnectionService.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("symphony.bdk.core.symphony_bdk")

from symphony.bdk.core.config.loader import BdkConfigLoader
from symphony.bdk.core.service.connection.model.connection_status import ConnectionStatus
from symphony.bdk.core.symphony_bdk import SymphonyBdk
from symphony.bdk.gen.exceptions import (
    ApiException,
    BadRequestException,
    ForbiddenException,
    NotFoundException,
    UnauthorizedException,
)

from simkit.rules import Reason, message
from simkit.serve import Server, running

STORY = "data/samples/story"
# Bots of the story: 101 and 102 share private pod 10; 301 and 302 are in public pod 30;
# crossPod is on between pods 10 and 30 (and off between 10 and 20) after its replay.
BOTS = ["user101", "user102", "user301", "user302"]

Bots = dict[int, SymphonyBdk]


@dataclass
class World:
    """One emulator and one BDK per bot for the module, on one event loop (BDK clients are
    bound to the loop they first ran on, and making one costs a tenth of a second)."""

    server: Server
    loop: asyncio.AbstractEventLoop
    bots: Bots


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    keys = tmp_path_factory.mktemp("bdk")
    with running(STORY, bdk_config=keys, bdk_users=BOTS) as srv:
        loop = asyncio.new_event_loop()
        bots = {b.user_id: SymphonyBdk(BdkConfigLoader.load_from_file(str(b.config))) for b in srv.bots}
        try:
            yield World(srv, loop, bots)
        finally:
            for bdk in bots.values():
                loop.run_until_complete(bdk.close_clients())
            loop.close()


@pytest.fixture
def server(world: World) -> Server:
    # Each test starts from the story's final state; the server and bots are shared.
    world.server.pod.reset()
    return world.server


@pytest.fixture
def drive(world: World, server: Server) -> Callable[[Callable[[Bots], Awaitable[Any]]], Any]:
    def run(script: Callable[[Bots], Awaitable[Any]]) -> Any:
        return world.loop.run_until_complete(script(world.bots))

    return run


Drive = Callable[[Callable[[Bots], Awaitable[Any]]], Any]


def test_the_configs_are_what_the_bdk_reads(server: Server) -> None:
    config = BdkConfigLoader.load_from_file(str(server.bots[0].config))
    assert (config.scheme, config.host, config.port) == ("http", "127.0.0.1", server.port)
    assert config.bot.username == "user101" and config.retry.max_attempts == 1
    assert Path(config.bot.private_key.path).is_file()
    listed = json.loads((server.bots[0].config.parent.parent / "bots.json").read_text())
    assert [b["username"] for b in listed] == BOTS


def test_two_bots_connect_accept_get_list_and_remove(drive: Drive) -> None:
    async def script(bots: Bots) -> None:
        a, b = bots[102].connections(), bots[301].connections()
        created = await a.create_connection(301)
        assert (created.user_id, created.status, created.request_counter) == (301, "PENDING_OUTGOING", 1)
        incoming = await b.list_connections(ConnectionStatus.PENDING_INCOMING)
        assert [c.user_id for c in incoming] == [102]
        accepted = await b.accept_connection(102)
        assert accepted.status == "ACCEPTED" and accepted.updated_at >= created.updated_at
        got = await a.get_connection(301)
        assert (got.status, got.first_requested_at) == ("ACCEPTED", created.first_requested_at)
        assert [c.user_id for c in await a.list_connections(ConnectionStatus.ACCEPTED)] == [301]
        await a.remove_connection(301)
        with pytest.raises(NotFoundException) as info:
            await a.get_connection(301)
        assert json.loads(info.value.body) == {"code": 404, "message": message(Reason.NOT_FOUND)}

    drive(script)


def test_a_bot_rejects_and_lists_each_status(drive: Drive) -> None:
    async def script(bots: Bots) -> None:
        await bots[302].connections().create_connection(102)
        rejected = await bots[102].connections().reject_connection(302)
        assert rejected.status == "REJECTED"
        c101 = bots[101].connections()
        by_status = {
            s: [c.user_id for c in await c101.list_connections(s)]
            for s in (
                ConnectionStatus.ALL,
                ConnectionStatus.PENDING_INCOMING,
                ConnectionStatus.PENDING_OUTGOING,
                ConnectionStatus.ACCEPTED,
                ConnectionStatus.REJECTED,
            )
        }
        assert by_status == {
            ConnectionStatus.ALL: [201, 301, 302],
            ConnectionStatus.PENDING_INCOMING: [201],
            ConnectionStatus.PENDING_OUTGOING: [302],
            ConnectionStatus.ACCEPTED: [301],
            ConnectionStatus.REJECTED: [],
        }
        assert [
            c.user_id for c in await bots[102].connections().list_connections(ConnectionStatus.REJECTED)
        ] == [302]
        # Implicit colleagues appear when named, in their short form.
        named = await c101.list_connections(ConnectionStatus.ACCEPTED, [102, 301])
        assert [(c.user_id, c.status, c.request_counter) for c in named] == [
            (102, "ACCEPTED", None),
            (301, "ACCEPTED", 1),
        ]
        colleague = await c101.get_connection(102)
        assert (colleague.status, colleague.updated_at) == ("ACCEPTED", None)

    drive(script)


@pytest.mark.parametrize(
    ("caller", "call", "target", "exception", "code", "reason"),
    [
        (102, "create_connection", 102, BadRequestException, 400, Reason.SELF),
        (101, "create_connection", 302, BadRequestException, 400, Reason.ALREADY_PENDING),
        (101, "accept_connection", 302, BadRequestException, 400, Reason.OWN_REQUEST),
        (101, "reject_connection", 301, BadRequestException, 400, Reason.ACCEPTED),
        (101, "remove_connection", 102, BadRequestException, 400, Reason.IMPLICIT),
        (102, "create_connection", 201, ForbiddenException, 403, Reason.CROSSPOD_DISABLED),
        (102, "create_connection", 999, NotFoundException, 404, Reason.UNKNOWN_USER),
        (102, "get_connection", 203, NotFoundException, 404, Reason.UNKNOWN_USER),
        (102, "accept_connection", 302, NotFoundException, 404, Reason.NOT_FOUND),
    ],
)
def test_each_refusal_raises_the_bdk_exception_with_our_body(
    server: Server,
    drive: Drive,
    caller: int,
    call: str,
    target: int,
    exception: type[ApiException],
    code: int,
    reason: Reason,
) -> None:
    async def script(bots: Bots) -> ApiException:
        with pytest.raises(exception) as info:
            await getattr(bots[caller].connections(), call)(target)
        return info.value

    before = len(server.pod.session_events())
    error = drive(script)
    assert error.status == code
    assert json.loads(error.body) == {"code": code, "message": message(reason)}
    # A refusal is an action event all the same (a get is not one).
    assert len(server.pod.session_events()) == before + (call != "get_connection")


def test_an_unknown_session_token_raises_unauthorized(server: Server, drive: Drive) -> None:
    async def script(bots: Bots) -> ApiException:
        session = bots[102].bot_session()
        session.session_token = "0" * 64
        with pytest.raises(UnauthorizedException) as info:
            await bots[102].connections().create_connection(301)
        return info.value

    error = drive(script)
    assert json.loads(error.body) == {"code": 401, "message": message(Reason.UNKNOWN_CALLER)}
    assert len(server.pod.session_events()) == 0


def test_the_bdk_reads_its_own_session_info(drive: Drive) -> None:
    async def script(bots: Bots) -> Any:
        return await bots[301].sessions().get_session()

    info = drive(script)
    assert (info.id, info.username) == (301, "user301")
