"""`app`: the aiohttp application of ``simkit serve``, the Pod API's HTTP face.

Routes (``connections.md`` §7; every other path answers 501 ``{code, message}``, another
method on a path served 405):

- ``POST /login/pubkey/authenticate`` and ``POST /relay/pubkey/authenticate``: a body
  ``{"token": JWT}`` whose ``sub`` is a username gives ``{"name", "token"}``, a session
  token or a key manager token (what the Symphony BDK's RSA authentication calls);
- ``POST /login/pubkey/app/authenticate``: an extension app's login (its JWT's ``sub`` is
  its app id) gives an app session token; ``POST
  /login/pubkey/app/user/{uid}/authenticate`` and ``.../app/username/{username}/authenticate``
  with that token in ``sessionToken`` give a session token acting as that user (OBO);
- ``GET /pod/v2/sessioninfo``: the caller as a ``UserV2`` (id, username, names);
- the six connection endpoints under ``/pod/v1/connection``;
- the agent's datafeed v5 (:mod:`~simkit.serve.feeds`): ``POST`` and ``GET
  /agent/v5/datafeeds``, ``DELETE /agent/v5/datafeeds/{id}`` and ``POST
  /agent/v5/datafeeds/{id}/read`` (long polling), with the headers ``sessionToken`` and
  ``keyManagerToken`` of one user;
- ``POST /simkit/v1/flush``: write the recording now (``--record``);
- ``GET /simkit/v1/openapi.json``: the OpenAPI document of all this
  (:mod:`~simkit.serve.openapi`).

A handler reads the session token and the request, answers a malformed request 400
``bad_request`` (404 ``unknown_user`` for a path id that is not an integer) without reaching
the rules, and hands a well-formed call to the :class:`~simkit.serve.pod.Pod`. This module
imports aiohttp; nothing outside :mod:`simkit.serve` imports it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from simkit.errors import RunDirError
from simkit.rules import Action, Reason, message
from simkit.scenario import Scenario
from simkit.serve.feeds import Feed, Feeds
from simkit.serve.openapi import openapi_document
from simkit.serve.pod import Pod, load_source
from simkit.serve.sessions import LoginRefused, Sessions
from simkit.serve.wire import (
    BAD_REQUEST,
    MAX_BODY,
    BadRequest,
    answer_json,
    error_json,
    list_query,
    path_user_id,
    read_user_id,
    unknown_caller_json,
)

__all__ = ["DATAFEED_WAIT", "FEEDS", "POD", "RECORD", "SESSIONS", "create_app", "flush"]

DATAFEED_WAIT = 30.0
"""How long a datafeed read waits for an event by default, in seconds (Symphony's agent
answers an idle read after about 30 s)."""

POD: web.AppKey[Pod] = web.AppKey("pod", Pod)
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions", Sessions)
FEEDS: web.AppKey[Feeds] = web.AppKey("feeds", Feeds)
RECORD: web.AppKey[Path | None] = web.AppKey("record")
# One recording written at a time: each replaces the folder the one before wrote.
_FLUSHING: web.AppKey[asyncio.Lock] = web.AppKey("flushing", asyncio.Lock)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_UNKNOWN_CALLER = json.dumps(unknown_caller_json()).encode()


def _json(status: int, doc: Any) -> web.Response:
    return web.Response(status=status, body=json.dumps(doc).encode(), content_type="application/json")


def _error(status: int, text: str) -> web.Response:
    return _json(status, error_json(status, text))


def _bad_request(exc: BadRequest) -> web.Response:
    return _error(400, f"{BAD_REQUEST}: {exc}")


def _unknown_caller() -> web.Response:
    return web.Response(status=401, body=_UNKNOWN_CALLER, content_type="application/json")


def _caller(request: web.Request) -> int | None:
    return request.app[SESSIONS].caller(request.headers.get("sessionToken"))


async def _json_body(request: web.Request) -> bytes:
    """The raw body of a JSON request; :class:`BadRequest` if it is not one or too large."""
    if request.content_type != "application/json":
        raise BadRequest(f"Content-Type is {request.content_type!r}; expected application/json")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BadRequest(f"the body is larger than {MAX_BODY} bytes") from None


def _action_handler(action: Action) -> _Handler:
    async def handle(request: web.Request) -> web.Response:
        caller = _caller(request)
        if caller is None:
            return _unknown_caller()
        try:
            target = read_user_id(await _json_body(request))
        except BadRequest as exc:
            return _bad_request(exc)
        answer = await request.app[POD].act(caller, target, action)
        return _json(*answer_json(action, answer))

    handle.__name__ = f"_{action.value}"
    return handle


async def _remove(request: web.Request) -> web.Response:
    caller = _caller(request)
    if caller is None:
        return _unknown_caller()
    target = path_user_id(request.match_info["uid"])
    if target is None:
        return _error(404, message(Reason.UNKNOWN_USER))
    answer = await request.app[POD].act(caller, target, Action.REMOVE)
    return _json(*answer_json(Action.REMOVE, answer))


async def _info(request: web.Request) -> web.Response:
    caller = _caller(request)
    if caller is None:
        return _unknown_caller()
    target = path_user_id(request.match_info["userId"])
    if target is None:
        return _error(404, message(Reason.UNKNOWN_USER))
    answer = await request.app[POD].get(caller, target)
    return _json(*answer_json(None, answer))


async def _list(request: web.Request) -> web.Response:
    caller = _caller(request)
    if caller is None:
        return _unknown_caller()
    try:
        status, user_ids = list_query(request.query)
    except BadRequest as exc:
        return _bad_request(exc)
    found = await request.app[POD].list(caller, status, user_ids)
    return _json(200, [c.to_json() for c in found])


async def _session_info(request: web.Request) -> web.Response:
    caller = _caller(request)
    if caller is None:
        return _unknown_caller()
    user = request.app[POD].source.population.user(caller)
    doc: dict[str, Any] = {
        "id": user.user_id,
        "username": request.app[SESSIONS].username(caller),
        "displayName": user.display_name or request.app[SESSIONS].username(caller),
        "accountType": "NORMAL",
    }
    if user.email is not None:
        doc["emailAddress"] = user.email
    return _json(200, doc)


def _agent_caller(request: web.Request) -> int | None:
    """The caller of an agent call: a session token and a key manager token of one user."""
    caller = _caller(request)
    if caller is None:
        return None
    km = request.app[SESSIONS].caller(request.headers.get("keyManagerToken"))
    return caller if km == caller else None


def _unknown_feed(feed_id: str) -> web.Response:
    # 400, as the agent answers: the BDK's loop then makes a new datafeed.
    return _error(400, f"{BAD_REQUEST}: datafeed {feed_id!r} not found")


async def _optional_object(request: web.Request) -> dict[str, Any]:
    """The JSON object of a body that may be empty; :class:`BadRequest` if it is not one."""
    raw = await request.read() if request.can_read_body else b""
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the body is not JSON; expected a JSON object") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"the body is a JSON {type(doc).__name__}; expected an object")
    return doc


async def _create_datafeed(request: web.Request) -> web.Response:
    caller = _agent_caller(request)
    if caller is None:
        return _unknown_caller()
    try:
        doc = await _optional_object(request)
    except BadRequest as exc:
        return _bad_request(exc)
    tag = doc.get("tag")
    if tag is not None and (not isinstance(tag, str) or not 0 < len(tag) <= 100 or not tag.isprintable()):
        return _bad_request(BadRequest('"tag" must be a string of 1 to 100 printable characters'))
    if tag is not None and (" " in tag or "_" in tag):
        return _bad_request(BadRequest('"tag" must hold no space or underscore'))
    return _json(201, request.app[FEEDS].create(caller, tag).to_json())


async def _list_datafeeds(request: web.Request) -> web.Response:
    caller = _agent_caller(request)
    if caller is None:
        return _unknown_caller()
    tag = request.query.get("tag") or None
    return _json(200, [f.to_json() for f in request.app[FEEDS].of(caller, tag)])


def _feed(request: web.Request, caller: int) -> Feed | None:
    return request.app[FEEDS].find(caller, request.match_info["feedId"])


async def _delete_datafeed(request: web.Request) -> web.Response:
    caller = _agent_caller(request)
    if caller is None:
        return _unknown_caller()
    feed = _feed(request, caller)
    if feed is None:
        return _unknown_feed(request.match_info["feedId"])
    request.app[FEEDS].delete(feed)
    return web.Response(status=204)


async def _read_datafeed(request: web.Request) -> web.Response:
    caller = _agent_caller(request)
    if caller is None:
        return _unknown_caller()
    feed = _feed(request, caller)
    if feed is None:
        return _unknown_feed(request.match_info["feedId"])
    try:
        ack = (await _optional_object(request)).get("ackId", "")
    except BadRequest as exc:
        return _bad_request(exc)
    if ack is not None and not isinstance(ack, str):
        return _bad_request(BadRequest('"ackId" must be a string'))
    events, ack_id = await request.app[FEEDS].read(feed, ack)
    return _json(200, {"events": events, "ackId": ack_id})


async def _login_document(request: web.Request) -> dict[str, Any] | web.Response:
    """The JSON object of a login's body, or the 400 answer to a body that is not one."""
    try:
        raw = await _json_body(request)
        doc = json.loads(raw.decode("utf-8")) if raw else None
    except BadRequest as exc:
        return _bad_request(exc)
    except (UnicodeDecodeError, ValueError):
        return _bad_request(BadRequest('the body is not JSON; expected {"token": JWT}'))
    if not isinstance(doc, dict):
        return _bad_request(BadRequest('expected a JSON object {"token": JWT}'))
    return doc


def _login_handler(name: str) -> _Handler:
    async def handle(request: web.Request) -> web.Response:
        doc = await _login_document(request)
        if isinstance(doc, web.Response):
            return doc
        sessions = request.app[SESSIONS]
        try:
            user_id = sessions.login(doc.get("token"))
        except LoginRefused as exc:
            return _error(401, f"Authentication failed: {exc}")
        return _json(200, {"name": name, "token": sessions.open(user_id)})

    handle.__name__ = f"_login_{name}"
    return handle


async def _app_login(request: web.Request) -> web.Response:
    doc = await _login_document(request)
    if isinstance(doc, web.Response):
        return doc
    sessions = request.app[SESSIONS]
    try:
        app_id = sessions.login_app(doc.get("token"))
    except LoginRefused as exc:
        return _error(401, f"Authentication failed: {exc}")
    return _json(200, {"name": "sessionToken", "token": sessions.open_app(app_id)})


def _obo_handler(by: str) -> _Handler:
    async def handle(request: web.Request) -> web.Response:
        sessions = request.app[SESSIONS]
        if sessions.app(request.headers.get("sessionToken")) is None:
            return _error(401, "Authentication failed: no valid app session token in 'sessionToken'")
        raw = request.match_info[by]
        user_id = path_user_id(raw) if by == "uid" else sessions.user_of(raw)
        try:
            if user_id is None:
                raise KeyError(raw)
            request.app[POD].source.population.user(user_id)
        except KeyError:
            return _error(404, message(Reason.UNKNOWN_USER))
        return _json(200, {"name": "sessionToken", "token": sessions.open(user_id)})

    handle.__name__ = f"_obo_by_{by}"
    return handle


async def _openapi(request: web.Request) -> web.Response:
    return _json(200, openapi_document())


async def _flush(request: web.Request) -> web.Response:
    record = request.app[RECORD]
    if record is None:
        return _error(400, f"{BAD_REQUEST}: this server records nothing (start it with --record DIR)")
    result = await flush(request.app)
    return _json(200, {"recorded": str(record), "events": len(result.outcomes) if result else 0})


async def flush(app: web.Application) -> Any:
    """Write the recording of `app` (if it has one) now; return the replay written."""
    record = app[RECORD]
    if record is None:
        return None
    pod = app[POD]
    async with app[_FLUSHING]:
        events = await pod.snapshot()
        loop = asyncio.get_running_loop()
        # Writing is file work; it runs beside the loop so that calls go on being answered.
        return await loop.run_in_executor(None, pod.record, record, events)


async def _close_feeds(app: web.Application) -> None:
    app[FEEDS].close()


async def _record_on_shutdown(app: web.Application) -> None:
    if app[RECORD] is not None:
        await flush(app)


@web.middleware
async def _errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Every answer is ``{code, message}`` JSON: a path not served is 501, a method a served
    path does not take 405 (with ``Allow``), never HTML."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        answer = _error(405, f"{request.method} is not allowed on {request.path}; allowed: {allowed}")
        answer.headers["Allow"] = allowed
        return answer
    except web.HTTPNotFound:
        return _error(501, f"not implemented by simkit serve: {request.method} {request.path}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)


def create_app(
    source: str | os.PathLike[str] | Scenario,
    *,
    record: str | os.PathLike[str] | None = None,
    clock: str = "wall",
    datafeed_wait: float = DATAFEED_WAIT,
    keys: str | os.PathLike[str] | None = None,
) -> web.Application:
    """The emulator as an aiohttp application, serving `source`.

    Parameters
    ----------
    source : str, PathLike or Scenario
        A run folder (its population, and the final state of its replay) or a scenario
        file or :class:`~simkit.scenario.Scenario` (its population at the start).
    record : str or PathLike, optional
        A folder that becomes a complete run folder on shutdown and on
        ``POST /simkit/v1/flush``: the source's inputs and events followed by the
        session's action calls, with outcomes, connections and manifest. It must be
        missing or empty when the server starts.
    clock : {"wall", "run"}
        How action calls are stamped: the wall clock in ms, or the run's clock (one past
        the source's last event, then one ms per call).
    datafeed_wait : float
        How long a datafeed read waits for an event before answering none, in seconds.
    keys : str or PathLike, optional
        A folder of public keys, ``USERNAME.pem``: logins are then verified (RS512
        signature and expiry); without it any well-formed JWT is trusted.

    Raises
    ------
    RunDirError
        `record` is a file or a folder that is not empty; `source` is neither a folder nor
        a file; `keys` is not a folder.
    """
    target = Path(record) if record is not None else None
    if target is not None and (target.is_file() or (target.is_dir() and any(target.iterdir()))):
        raise RunDirError(f"{target}: the --record folder must be missing or empty")
    if keys is not None and not Path(keys).is_dir():
        raise RunDirError(f"{keys}: no such folder of public keys (--keys)")
    pod = Pod(load_source(source), clock=clock)
    app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY)
    app[POD] = pod
    app[SESSIONS] = Sessions(pod.source.population, keys)
    app[FEEDS] = Feeds(pod.source.population, wait=datafeed_wait)
    pod.publish = app[FEEDS].publish
    app[RECORD] = target
    app[_FLUSHING] = asyncio.Lock()
    app.router.add_post("/login/pubkey/authenticate", _login_handler("sessionToken"))
    app.router.add_post("/relay/pubkey/authenticate", _login_handler("keyManagerToken"))
    app.router.add_post("/login/pubkey/app/authenticate", _app_login)
    app.router.add_post("/login/pubkey/app/user/{uid}/authenticate", _obo_handler("uid"))
    app.router.add_post("/login/pubkey/app/username/{username}/authenticate", _obo_handler("username"))
    app.router.add_get("/pod/v2/sessioninfo", _session_info)
    app.router.add_post("/pod/v1/connection/create", _action_handler(Action.CONNECT))
    app.router.add_post("/pod/v1/connection/accept", _action_handler(Action.ACCEPT))
    app.router.add_post("/pod/v1/connection/reject", _action_handler(Action.REJECT))
    app.router.add_post("/pod/v1/connection/user/{uid}/remove", _remove)
    app.router.add_get("/pod/v1/connection/user/{userId}/info", _info)
    app.router.add_get("/pod/v1/connection/list", _list)
    app.router.add_post("/agent/v5/datafeeds", _create_datafeed)
    app.router.add_get("/agent/v5/datafeeds", _list_datafeeds)
    app.router.add_delete("/agent/v5/datafeeds/{feedId}", _delete_datafeed)
    app.router.add_post("/agent/v5/datafeeds/{feedId}/read", _read_datafeed)
    app.router.add_post("/simkit/v1/flush", _flush)
    app.router.add_get("/simkit/v1/openapi.json", _openapi)
    app.on_shutdown.append(_close_feeds)
    app.on_shutdown.append(_record_on_shutdown)
    return app
