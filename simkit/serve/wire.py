"""`wire`: the JSON of the Pod API's connection endpoints (``connections.md`` §7–8).

Turns what a client sends (a body, a path id, a query) into plain values, refusing a
malformed request with :class:`BadRequest` before it reaches the rules, and turns an
engine's :class:`~simkit.engine.Answer` into the status and JSON body the API answers. It
knows nothing of HTTP servers, sessions or time: :mod:`simkit.serve.app` does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from simkit.engine import Answer
from simkit.rules import Action, Reason, Status, message

__all__ = [
    "BAD_REQUEST",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_BODY",
    "REMOVED",
    "BadRequest",
    "answer_json",
    "error_json",
    "list_query",
    "path_user_id",
    "read_user_id",
    "unknown_caller_json",
]

MAX_BODY = 64 * 1024
"""The largest request body accepted, in bytes; a larger one is a bad request."""

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

BAD_REQUEST = "bad_request"
"""The reason key of a malformed request (§8); not one of the rules' reasons."""

REMOVED: dict[str, str] = {"format": "TEXT", "message": "Connection Removed."}
"""The body of a successful remove (§4)."""

_INTEGER = re.compile(r"-?[0-9]+")
# list's `status`: the five values the API names, in any case (§8).
_LIST_STATUSES = ("ALL", *(s.value for s in Status if s is not Status.NONE))


class BadRequest(ValueError):
    """A malformed request: answered 400 ``bad_request``, never applied, never recorded."""


def error_json(code: int, text: str) -> dict[str, Any]:
    """The API's error body: ``{"code", "message"}``."""
    return {"code": code, "message": text}


def read_user_id(body: bytes) -> int:
    """The ``userId`` of a create, accept or reject body (``{"userId": int}``).

    Raises :class:`BadRequest` for a body that is not UTF-8 JSON holding an object, and for
    a ``userId`` that is missing or not an integer within int64 (a string, a float, a
    boolean, a huge number).

    Examples
    --------
    >>> read_user_id(b'{"userId": 202}')
    202
    >>> read_user_id(b'{"userId": "202"}')
    Traceback (most recent call last):
    ...
    simkit.serve.wire.BadRequest: "userId" must be an integer, found a str
    """
    if not body:
        raise BadRequest("the body is empty; expected a JSON object with an integer userId")
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the body is not JSON; expected a JSON object with an integer userId") from None
    if not isinstance(doc, dict):
        raise BadRequest(
            f"the body is a JSON {type(doc).__name__}; expected an object with an integer userId"
        )
    if "userId" not in doc:
        raise BadRequest('the body has no "userId"')
    value = doc["userId"]
    # bool is an int in Python; JSON true is not an integer.
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f'"userId" must be an integer, found a {type(value).__name__}')
    if not INT64_MIN <= value <= INT64_MAX:
        raise BadRequest('"userId" is out of the int64 range')
    return value


def path_user_id(text: str) -> int | None:
    """The user id in a path, or ``None`` if it is not an integer within int64.

    No user has such an id, so the caller answers 404 ``unknown_user`` (§8).

    Examples
    --------
    >>> path_user_id("202"), path_user_id("abc"), path_user_id("99999999999999999999")
    (202, None, None)
    """
    if not _INTEGER.fullmatch(text):
        return None
    value = int(text)
    return value if INT64_MIN <= value <= INT64_MAX else None


def list_query(query: Mapping[str, str] | Any) -> tuple[str | None, list[int] | None]:
    """The ``status`` and ``userIds`` of a list call, from its query (a multidict).

    An empty or absent parameter means none given. Raises :class:`BadRequest` for a status
    that is not one of ``ALL``, ``PENDING_INCOMING``, ``PENDING_OUTGOING``, ``ACCEPTED``,
    ``REJECTED`` (any case), a ``userIds`` item that is not an integer, or a parameter
    given twice.

    Examples
    --------
    >>> list_query({"status": "accepted", "userIds": "3,1"})
    ('ACCEPTED', [3, 1])
    >>> list_query({})
    (None, None)
    """
    for name in ("status", "userIds"):
        getall = getattr(query, "getall", None)
        if getall is not None and len(getall(name, [])) > 1:
            raise BadRequest(f"query parameter {name!r} is given more than once")
    raw_status = query.get("status") or None
    status = None
    if raw_status is not None:
        status = raw_status.strip().upper()
        if status not in _LIST_STATUSES:
            raise BadRequest(f"status {raw_status!r} is not one of {', '.join(_LIST_STATUSES)}")
    raw_ids = query.get("userIds") or None
    user_ids = None
    if raw_ids is not None:
        user_ids = []
        for item in raw_ids.split(","):
            if not _INTEGER.fullmatch(item.strip()):
                raise BadRequest(f"userIds item {item!r} is not an integer")
            user_ids.append(int(item))
    return status, user_ids


def answer_json(action: Action | None, answer: Answer) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body of an action's answer (`action` ``None``: a get).

    Examples
    --------
    >>> from simkit.engine import Answer
    >>> answer_json(Action.REMOVE, Answer(200, None, Status.NONE, None))
    (200, {'format': 'TEXT', 'message': 'Connection Removed.'})
    >>> answer_json(Action.CONNECT, Answer(403, Reason.ENTITLEMENT, None, None))[1]["code"]
    403
    """
    if answer.code != 200:
        return answer.code, error_json(answer.code, answer.message)
    if action is Action.REMOVE:
        return 200, dict(REMOVED)
    if answer.connection is None:  # pragma: no cover - every other success shows a connection
        raise ValueError(f"answer_json: a successful {action} shows no connection")
    return 200, answer.connection.to_json()


def unknown_caller_json() -> dict[str, Any]:
    """The body of a call without a valid session (401 ``unknown_caller``)."""
    return error_json(401, message(Reason.UNKNOWN_CALLER))
