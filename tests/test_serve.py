"""`simkit serve`: the Pod API emulator over HTTP (connections.md §7–8).

Each test starts the app itself on 127.0.0.1 with a free port (aiohttp's TestServer) and
talks to it with aiohttp's client; tests/test_serve_bdk.py drives it with the real BDK.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

pytest.importorskip("aiohttp")
jwt = pytest.importorskip("jwt")

from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from simkit.errors import RunDirError  # noqa: E402
from simkit.pipeline import replay_run  # noqa: E402
from simkit.rules import Reason, message  # noqa: E402
from simkit.serve import create_app  # noqa: E402
from simkit.serve.app import POD  # noqa: E402
from simkit.serve.clock import Clock  # noqa: E402
from simkit.serve.wire import MAX_BODY  # noqa: E402

STORY = "data/samples/story"
TINY = "data/scenarios/tiny.toml"
# The story's users: pod 10 (private) 101, 102; pod 20 (private) 201, 202, 203 (not
# external); pod 30 (public) 301, 302. After its replay crossPod is on between 10 and 30 only.
STORY_USERS = [101, 102, 201, 202, 203, 301, 302]
_SECRET = "simkit-serve-tests-do-not-verify-this-secret"

T = TypeVar("T")
Session = Callable[[TestClient[Any, Any], web.Application], Awaitable[T]]


def _with_client(session: Session[T], source: str = STORY, **options: Any) -> T:
    async def main() -> T:
        app = create_app(source, **options)
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            return await session(client, app)

    return asyncio.run(main())


def _jwt(username: str) -> str:
    return jwt.encode({"sub": username}, _SECRET, algorithm="HS256")


async def _login(client: TestClient[Any, Any], user_id: int) -> dict[str, str]:
    resp = await client.post("/login/pubkey/authenticate", json={"token": _jwt(f"user{user_id}")})
    assert resp.status == 200, await resp.text()
    return {"sessionToken": (await resp.json())["token"]}


def _state(app: web.Application) -> tuple[list[list[int]], int]:
    pod = app[POD]
    conn = pod.engine.connections()
    rows = [
        conn.user_a.tolist(),
        conn.user_b.tolist(),
        conn.status.tolist(),
        conn.request_counter.tolist(),
        conn.updated_at.tolist(),
    ]
    return rows, len(pod.session_events())


# -- the six endpoints --------------------------------------------------------------------------


def test_a_connection_from_request_to_removal() -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> None:
        a, b = await _login(client, 102), await _login(client, 301)
        resp = await client.post("/pod/v1/connection/create", json={"userId": 301}, headers=a)
        assert resp.status == 200
        created = await resp.json()
        assert created["userId"] == 301 and created["status"] == "PENDING_OUTGOING"
        assert created["requestCounter"] == 1 and created["firstRequestedAt"] == created["updatedAt"]
        assert all(isinstance(created[k], int) for k in ("firstRequestedAt", "updatedAt", "requestCounter"))
        resp = await client.get("/pod/v1/connection/list", headers=b)
        assert [c["userId"] for c in await resp.json()] == [102]
        resp = await client.post("/pod/v1/connection/accept", json={"userId": 102}, headers=b)
        assert (await resp.json())["status"] == "ACCEPTED"
        resp = await client.get("/pod/v1/connection/user/301/info", headers=a)
        assert (await resp.json())["status"] == "ACCEPTED"
        resp = await client.post("/pod/v1/connection/user/301/remove", headers=a)
        assert resp.status == 200
        assert await resp.json() == {"format": "TEXT", "message": "Connection Removed."}
        resp = await client.get("/pod/v1/connection/user/301/info", headers=a)
        assert resp.status == 404
        assert await resp.json() == {"code": 404, "message": message(Reason.NOT_FOUND)}
        assert app[POD].session_events().actions() == ["connect", "accept", "remove"]

    _with_client(session)


@pytest.mark.parametrize(
    ("query", "user_ids"),
    [
        ("", [201, 302]),  # both pending statuses by default
        ("?status=ALL", [201, 301, 302]),
        ("?status=all", [201, 301, 302]),
        ("?status=PENDING_INCOMING", [201]),
        ("?status=pending_outgoing", [302]),
        ("?status=ACCEPTED", [301]),
        ("?status=REJECTED", []),
        ("?status=ALL&userIds=302,301", [301, 302]),
        ("?status=ACCEPTED&userIds=102,301", [102, 301]),  # the implicit colleague, when named
        ("?status=&userIds=", [201, 302]),
    ],
)
def test_list_filters_by_status_and_user_ids(query: str, user_ids: list[int]) -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> list[Any]:
        resp = await client.get("/pod/v1/connection/list" + query, headers=await _login(client, 101))
        assert resp.status == 200
        return list(await resp.json())

    found = _with_client(session)
    assert [c["userId"] for c in found] == user_ids
    implicit = [c for c in found if c["userId"] == 102]
    assert implicit in ([], [{"userId": 102, "status": "ACCEPTED"}])


def test_session_info_names_the_caller() -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> Any:
        resp = await client.get("/pod/v2/sessioninfo", headers=await _login(client, 203))
        return resp.status, await resp.json()

    status, doc = _with_client(session)
    assert status == 200
    assert doc["id"] == 203 and doc["username"] == "user203"


# -- sessions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"token": "not-a-jwt"}, 401),
        ({"token": _jwt("nobody")}, 401),
        ({"token": _jwt("user0101")}, 401),
        ({"token": jwt.encode({"name": "user101"}, _SECRET, algorithm="HS256")}, 401),
        ({}, 401),
        ([1], 400),
    ],
)
def test_a_login_names_a_known_username(body: Any, status: int) -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> Any:
        resp = await client.post("/login/pubkey/authenticate", json=body)
        return resp.status, await resp.json()

    got, doc = _with_client(session)
    assert got == status and doc["code"] == status and isinstance(doc["message"], str)


def test_each_login_gets_its_own_random_token_and_the_key_manager_one_too() -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> list[str]:
        tokens = [(await _login(client, 101))["sessionToken"] for _ in range(2)]
        resp = await client.post("/relay/pubkey/authenticate", json={"token": _jwt("user101")})
        doc = await resp.json()
        assert doc["name"] == "keyManagerToken"
        return [*tokens, doc["token"]]

    tokens = _with_client(session)
    assert len(set(tokens)) == 3 and all(len(t) == 64 and "101" not in t[:3] for t in tokens)


def test_a_token_acts_and_reads_only_as_its_own_user() -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> None:
        a, b = await _login(client, 102), await _login(client, 301)
        await client.post("/pod/v1/connection/create", json={"userId": 301}, headers=a)
        # A cannot accept its own request: the token acts as A, never as B.
        resp = await client.post("/pod/v1/connection/accept", json={"userId": 301}, headers=a)
        assert (resp.status, (await resp.json())["message"]) == (400, message(Reason.OWN_REQUEST))
        # Each reads its own side of the pair.
        mine = await (await client.get("/pod/v1/connection/user/301/info", headers=a)).json()
        theirs = await (await client.get("/pod/v1/connection/user/102/info", headers=b)).json()
        assert (mine["status"], theirs["status"]) == ("PENDING_OUTGOING", "PENDING_INCOMING")
        assert [
            c["userId"] for c in await (await client.get("/pod/v1/connection/list", headers=a)).json()
        ] == [301]
        assert app[POD].session_events().actor.tolist() == [102, 102]

    _with_client(session)


CALLS = [
    ("POST", "/pod/v1/connection/create", {"userId": 301}),
    ("POST", "/pod/v1/connection/accept", {"userId": 301}),
    ("POST", "/pod/v1/connection/reject", {"userId": 301}),
    ("POST", "/pod/v1/connection/user/301/remove", None),
    ("GET", "/pod/v1/connection/user/301/info", None),
    ("GET", "/pod/v1/connection/list", None),
    ("GET", "/pod/v2/sessioninfo", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CALLS)
@pytest.mark.parametrize("token", [None, "", "0" * 64])
def test_a_missing_or_unknown_token_is_unknown_caller(
    method: str, path: str, body: Any, token: str | None
) -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> Any:
        before = _state(app)
        headers = {} if token is None else {"sessionToken": token}
        resp = await client.request(method, path, json=body, headers=headers)
        assert _state(app) == before
        return resp.status, await resp.json()

    assert _with_client(session) == (401, {"code": 401, "message": message(Reason.UNKNOWN_CALLER)})


# -- malformed requests (§8): 400 bad_request or 404, nothing changes, nothing recorded ----------

BAD_BODIES: list[tuple[bytes | None, str]] = [
    (b"not json", "application/json"),
    (b"", "application/json"),
    (None, "application/json"),
    (b'"101"', "application/json"),
    (b"[301]", "application/json"),
    (b"{}", "application/json"),
    (b'{"user_id": 301}', "application/json"),
    (b'{"userId": "301"}', "application/json"),
    (b'{"userId": 301.0}', "application/json"),
    (b'{"userId": true}', "application/json"),
    (b'{"userId": null}', "application/json"),
    (b'{"userId": NaN}', "application/json"),
    (b'{"userId": 9223372036854775808}', "application/json"),
    (b'{"userId": -9223372036854775809}', "application/json"),
    (b'{"userId": 1' + b"0" * 400 + b"}", "application/json"),
    (b'{"userId": 301}', "text/plain"),
    (b'{"userId": 301}', "application/x-www-form-urlencoded"),
    (b"\xff\xfe{}", "application/json"),
    (b'{"userId": 301, "pad": "' + b"x" * MAX_BODY + b'"}', "application/json"),
]


@pytest.mark.parametrize(("body", "content_type"), BAD_BODIES)
@pytest.mark.parametrize("action", ["create", "accept", "reject"])
def test_a_malformed_body_is_a_bad_request_that_changes_nothing(
    body: bytes | None, content_type: str, action: str
) -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> Any:
        headers = await _login(client, 102)
        headers["Content-Type"] = content_type
        before = _state(app)
        resp = await client.post(f"/pod/v1/connection/{action}", data=body, headers=headers)
        assert _state(app) == before
        return resp.status, await resp.json()

    status, doc = _with_client(session)
    assert status == 400 and doc["code"] == 400 and doc["message"].startswith("bad_request")
    assert set(doc) == {"code", "message"}


@pytest.mark.parametrize("uid", ["abc", "1.5", "3e2", "+301", "0x12d", "99999999999999999999", "%20301"])
@pytest.mark.parametrize("endpoint", ["remove", "info"])
def test_a_path_id_that_is_not_an_integer_is_unknown_user(uid: str, endpoint: str) -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> Any:
        headers = await _login(client, 102)
        before = _state(app)
        path = f"/pod/v1/connection/user/{uid}/{endpoint}"
        resp = await (
            client.post(path, headers=headers) if endpoint == "remove" else client.get(path, headers=headers)
        )
        assert _state(app) == before
        return resp.status, await resp.json()

    assert _with_client(session) == (404, {"code": 404, "message": message(Reason.UNKNOWN_USER)})


@pytest.mark.parametrize(
    "query",
    ["status=BOGUS", "status=NONE", "userIds=1,x", "userIds=1.5", "status=ALL&status=ACCEPTED", "userIds=,"],
)
def test_a_bad_list_query_is_a_bad_request(query: str) -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> Any:
        resp = await client.get(f"/pod/v1/connection/list?{query}", headers=await _login(client, 101))
        return resp.status, (await resp.json())["code"]

    assert _with_client(session) == (400, 400)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("POST", "/pod/v1/user/search"),
        ("POST", "/agent/v4/stream/x/message/create"),
    ],
)
def test_anything_else_is_not_implemented(method: str, path: str) -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> Any:
        resp = await client.request(method, path)
        return resp.status, await resp.json()

    status, doc = _with_client(session)
    assert status == 501 and doc["code"] == 501 and path in doc["message"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/pod/v1/connection/create", "POST"),
        ("DELETE", "/pod/v1/connection/user/301/remove", "POST"),
        ("TRACE", "/pod/v1/connection/list", "GET, HEAD"),
        ("GET", "/simkit/v1/flush", "POST"),
    ],
)
def test_another_method_on_a_served_path_is_405(method: str, path: str, allowed: str) -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> Any:
        resp = await client.request(method, path)
        return resp.status, resp.headers.get("Allow"), await resp.json()

    status, allow, doc = _with_client(session)
    assert (status, allow, doc["code"]) == (405, allowed, 405) and path in doc["message"]


# -- time and recording -------------------------------------------------------------------------


def test_the_run_clock_starts_one_past_the_source_and_steps_one_ms() -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> list[int]:
        headers = await _login(client, 102)
        for _ in range(3):
            await client.post("/pod/v1/connection/create", json={"userId": 301}, headers=headers)
        return list(app[POD].session_events().ts.tolist())

    assert _with_client(session, clock="run") == [1700002700001, 1700002700002, 1700002700003]


def test_the_wall_clock_never_goes_below_the_floor_nor_back() -> None:
    clock = Clock("wall", floor=100, now=iter([50, 200, 150, 300]).__next__)
    assert [clock.stamp() for _ in range(4)] == [100, 200, 200, 300]


def test_a_scenario_is_served_from_its_start() -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> Any:
        pod = app[POD]
        users = pod.source.population.user_id.tolist()
        headers = await _login(client, users[0])
        await client.post("/pod/v1/connection/create", json={"userId": users[-1]}, headers=headers)
        return pod.source.floor, pod.session_events().ts.tolist()

    floor, stamps = _with_client(session, TINY, clock="run")
    assert stamps == [floor] and floor == 1709510400000  # 2024-03-04T00:00:00Z


def _answer_key(action: str, status: int, doc: Any) -> tuple[Any, ...]:
    if status != 200:
        return (status, doc["message"])
    if action == "remove":
        return (200, "removed")
    return (200, doc["status"], doc.get("requestCounter"))


def _recorded_key(
    action: str, code: int, reason: str | None, status: str | None, counter: int
) -> tuple[Any, ...]:
    if code != 200:
        return (code, message(Reason(reason)))
    if action == "remove":
        return (200, "removed")
    return (200, status, counter or None)


def test_concurrent_clients_lose_no_update_and_the_recording_replays_their_answers(tmp_path: Path) -> None:
    rng = random.Random(17)
    paths = {"connect": "create", "accept": "accept", "reject": "reject"}
    plan = [
        (
            rng.choice(STORY_USERS),
            rng.choice([*STORY_USERS, 999]),
            rng.choice(["connect", "accept", "reject", "remove"]),
        )
        for _ in range(300)
    ]
    record = tmp_path / "session"

    async def session(client: TestClient[Any, Any], app: web.Application) -> list[tuple[Any, ...]]:
        tokens = {u: [await _login(client, u) for _ in range(2)] for u in STORY_USERS}

        async def call(i: int, actor: int, target: int, action: str) -> tuple[Any, ...]:
            headers = tokens[actor][i % 2]
            if action == "remove":
                resp = await client.post(f"/pod/v1/connection/user/{target}/remove", headers=headers)
            else:
                resp = await client.post(
                    f"/pod/v1/connection/{paths[action]}", json={"userId": target}, headers=headers
                )
            return (actor, target, action, *_answer_key(action, resp.status, await resp.json()))

        answers = await asyncio.gather(*(call(i, *row) for i, row in enumerate(plan)))
        resp = await client.post("/simkit/v1/flush")
        assert resp.status == 200 and (await resp.json())["events"] == 46 + len(plan)
        live = app[POD].engine.connections()
        return [*answers, ("live", live.user_a.tolist(), live.status.tolist(), live.request_counter.tolist())]

    *answers, live = _with_client(session, record=record)
    assert len(answers) == len(plan)
    result = replay_run(record, out=tmp_path / "replayed")
    events = result.outcomes
    n = len(plan)
    from simkit.io.runs import read_run

    run = read_run(record)
    assert len(run.events) == 46 + n
    ts = run.events.ts[46:]
    assert ts.min() > 1700002700000 and bool((ts[1:] >= ts[:-1]).all())
    recorded = [
        (a, t, act, *_recorded_key(act, c, r, s, k))
        for a, t, act, c, r, s, k in zip(
            run.events.actor[46:].tolist(),
            run.events.target[46:].tolist(),
            run.events.actions()[46:],
            events.code[46:].tolist(),
            events.reasons()[46:],
            events.statuses()[46:],
            events.request_counter[46:].tolist(),
        )
    ]
    assert Counter(recorded) == Counter(answers)
    conn = result.connections
    assert live == ("live", conn.user_a.tolist(), conn.status.tolist(), conn.request_counter.tolist())
    manifest = json.loads((record / "manifest.json").read_text())
    assert manifest["served"]["session_events"] == n and manifest["served"]["source_events"] == 46


def test_a_scenario_recording_holds_the_session_only(tmp_path: Path) -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> None:
        users = app[POD].source.population.user_id.tolist()
        headers = await _login(client, users[0])
        await client.post("/pod/v1/connection/create", json={"userId": users[1]}, headers=headers)
        await client.post("/pod/v1/connection/create", data=b"junk", headers=headers)

    _with_client(session, TINY, record=tmp_path / "rec")
    # Written on shutdown: the one well-formed call, not the malformed one.
    result = replay_run(tmp_path / "rec", out=tmp_path / "out")
    assert len(result.outcomes) == 1


def test_flush_without_record_is_refused_and_record_must_start_empty(tmp_path: Path) -> None:
    async def session(client: TestClient[Any, Any], app: web.Application) -> Any:
        resp = await client.post("/simkit/v1/flush")
        return resp.status, (await resp.json())["code"]

    assert _with_client(session) == (400, 400)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="missing or empty"):
        create_app(STORY, record=tmp_path / "full")


def test_the_command_prints_its_url_first_and_records_on_sigterm(tmp_path: Path) -> None:
    record = tmp_path / "rec"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simkit",
            "serve",
            STORY,
            "--port",
            "0",
            "--clock",
            "run",
            "--record",
            str(record),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        said = [proc.stdout.readline() for _ in range(2)]
        assert "logins are not verified" in said[1]

        async def talk() -> int:
            from aiohttp import ClientSession

            async with ClientSession() as http:
                login = await http.post(url + "/login/pubkey/authenticate", json={"token": _jwt("user102")})
                token = (await login.json())["token"]
                resp = await http.post(
                    url + "/pod/v1/connection/create", json={"userId": 301}, headers={"sessionToken": token}
                )
                return resp.status

        assert asyncio.run(talk()) == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "recorded 47 events" in out
    result = replay_run(record, out=tmp_path / "out")
    assert len(result.outcomes) == 47 and result.outcomes.statuses()[-1] == "PENDING_OUTGOING"


# -- bots --------------------------------------------------------------------------------------


def test_bdk_configs_name_each_bot_and_keep_their_keys(tmp_path: Path) -> None:
    from simkit.pipeline import population_of
    from simkit.serve.bdk import BotUserError, default_bot_users, resolve_bot_users, write_bdk_configs

    pop = population_of(STORY)
    assert default_bot_users(pop) == [101, 201, 301]
    # After the story, crossPod is on between pods 10 and 30 only.
    assert default_bot_users(pop, 2, crosspod=lambda a, b: {a, b} == {10, 30}) == [101, 301]
    assert resolve_bot_users(pop, ["user302", "101"]) == [302, 101]
    with pytest.raises(BotUserError, match="'nobody'"):
        resolve_bot_users(pop, ["nobody"])
    first = write_bdk_configs(tmp_path, pop, [101], host="127.0.0.1", port=1234)
    again = write_bdk_configs(tmp_path, pop, [101], host="127.0.0.1", port=5678)
    assert first[0].private_key.read_bytes() == again[0].private_key.read_bytes()
    text = again[0].config.read_text()
    assert "port: 5678" in text and "maxAttempts: 1" in text and "scheme: http" in text
    assert oct(again[0].private_key.stat().st_mode & 0o777) == "0o600"
