"""`app`: the aiohttp application of ``simkit serve``, the Pod API's HTTP face.

Routes (``connections.md`` §7; every other path or method answers 501 ``{code, message}``):

- ``POST /login/pubkey/authenticate`` and ``POST /relay/pubkey/authenticate``: a body
  ``{"token": JWT}`` whose ``sub`` is a username gives ``{"name", "token"}``, a session
  token or a key manager token (what the Symphony BDK's RSA authentication calls);
- ``GET /pod/v2/sessioninfo``: the caller as a ``UserV2`` (id, username, names);
- the six connection endpoints under ``/pod/v1/connection``;
- ``POST /simkit/v1/flush``: write the recording now (``--record``).

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

__all__ = ["POD", "RECORD", "SESSIONS", "create_app", "flush"]

POD: web.AppKey[Pod] = web.AppKey("pod", Pod)
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions", Sessions)
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


def _login_handler(name: str) -> _Handler:
    async def handle(request: web.Request) -> web.Response:
        try:
            raw = await _json_body(request)
            doc = json.loads(raw.decode("utf-8")) if raw else None
        except BadRequest as exc:
            return _bad_request(exc)
        except (UnicodeDecodeError, ValueError):
            return _bad_request(BadRequest('the body is not JSON; expected {"token": JWT}'))
        if not isinstance(doc, dict):
            return _bad_request(BadRequest('expected a JSON object {"token": JWT}'))
        sessions = request.app[SESSIONS]
        try:
            user_id = sessions.login(doc.get("token"))
        except LoginRefused as exc:
            return _error(401, f"Authentication failed: {exc}")
        return _json(200, {"name": name, "token": sessions.open(user_id)})

    handle.__name__ = f"_login_{name}"
    return handle


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


async def _record_on_shutdown(app: web.Application) -> None:
    if app[RECORD] is not None:
        await flush(app)


@web.middleware
async def _errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Every answer is ``{code, message}`` JSON: what is not served is 501, never HTML."""
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
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

    Raises
    ------
    RunDirError
        `record` is a file or a folder that is not empty; `source` is neither a folder nor
        a file.
    """
    target = Path(record) if record is not None else None
    if target is not None and (target.is_file() or (target.is_dir() and any(target.iterdir()))):
        raise RunDirError(f"{target}: the --record folder must be missing or empty")
    pod = Pod(load_source(source), clock=clock)
    app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY)
    app[POD] = pod
    app[SESSIONS] = Sessions(pod.source.population)
    app[RECORD] = target
    app[_FLUSHING] = asyncio.Lock()
    app.router.add_post("/login/pubkey/authenticate", _login_handler("sessionToken"))
    app.router.add_post("/relay/pubkey/authenticate", _login_handler("keyManagerToken"))
    app.router.add_get("/pod/v2/sessioninfo", _session_info)
    app.router.add_post("/pod/v1/connection/create", _action_handler(Action.CONNECT))
    app.router.add_post("/pod/v1/connection/accept", _action_handler(Action.ACCEPT))
    app.router.add_post("/pod/v1/connection/reject", _action_handler(Action.REJECT))
    app.router.add_post("/pod/v1/connection/user/{uid}/remove", _remove)
    app.router.add_get("/pod/v1/connection/user/{userId}/info", _info)
    app.router.add_get("/pod/v1/connection/list", _list)
    app.router.add_post("/simkit/v1/flush", _flush)
    app.on_shutdown.append(_record_on_shutdown)
    return app
