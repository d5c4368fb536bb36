"""`openapi`: the OpenAPI 3.0 document of what ``simkit serve`` answers (``GET
/simkit/v1/openapi.json``).

The connection paths carry the Pod API's own schemas (``UserConnection``,
``UserConnectionList``, ``UserConnectionRequest``, ``SuccessResponse``, ``Error``) and
declare every answer the rules may give (``connections.md`` §3–4, §8): 200 and the business
refusals 400, 401, 403 and 404, each an ``Error``; the logins, the session info and the
datafeed carry theirs. A contract test fuzzes the served document (``tests/test_serve_openapi.py``
with schemathesis). The document is plain data: no HTTP here, and nothing here decides an
answer.
"""

from __future__ import annotations

from typing import Any

from simkit.rules import Status
from simkit.version import __version__

__all__ = ["openapi_document"]

_JSON = "application/json"
_STATUSES = [s.value for s in Status if s is not Status.NONE]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {_JSON: {"schema": schema}}


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": _content(_ref(schema))}


_ERRORS = {
    "400": "Client error: a malformed request, or the rules refuse the call.",
    "401": "Unauthorized: the session token is missing or unknown.",
    "403": "Forbidden: an entitlement or crossPod refuses the call.",
    "404": "Not found: no such user, or no such connection.",
}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _answer(_ERRORS[code], "Error") for code in codes}


_SESSION = {
    "name": "sessionToken",
    "in": "header",
    "required": True,
    "description": "Session authentication token.",
    "schema": {"type": "string"},
}
_KEY_MANAGER = {
    "name": "keyManagerToken",
    "in": "header",
    "required": True,
    "description": "Key manager authentication token.",
    "schema": {"type": "string"},
}
_FEED_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}

_SCHEMAS: dict[str, Any] = {
    "UserConnection": {
        "type": "object",
        "description": "A connection seen from the caller (connections.md §2).",
        "required": ["userId", "status"],
        "properties": {
            "userId": {"type": "integer", "format": "int64", "description": "The other user."},
            "status": {"type": "string", "enum": _STATUSES},
            "firstRequestedAt": {"type": "integer", "format": "int64"},
            "updatedAt": {"type": "integer", "format": "int64"},
            "requestCounter": {"type": "integer", "format": "int32"},
        },
    },
    "UserConnectionList": {"type": "array", "items": _ref("UserConnection")},
    "UserConnectionRequest": {
        "type": "object",
        "required": ["userId"],
        "properties": {"userId": {"type": "integer", "format": "int64"}},
    },
    "SuccessResponse": {
        "type": "object",
        "required": ["format", "message"],
        "properties": {"format": {"type": "string", "enum": ["TEXT", "XML"]}, "message": {"type": "string"}},
    },
    "Error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "integer", "format": "int32"}, "message": {"type": "string"}},
    },
    "AuthenticateRequest": {
        "type": "object",
        "required": ["token"],
        "properties": {"token": {"type": "string", "description": "A JWT whose 'sub' is a username."}},
    },
    "Token": {
        "type": "object",
        "required": ["name", "token"],
        "properties": {"name": {"type": "string"}, "token": {"type": "string"}},
    },
    "UserV2": {
        "type": "object",
        "required": ["id", "username"],
        "properties": {
            "id": {"type": "integer", "format": "int64"},
            "username": {"type": "string"},
            "displayName": {"type": "string"},
            "emailAddress": {"type": "string"},
            "accountType": {"type": "string"},
        },
    },
    "V5Datafeed": {
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "string"}, "createdAt": {"type": "integer", "format": "int64"}},
    },
    "V5DatafeedCreateBody": {"type": "object", "properties": {"tag": {"type": "string", "maxLength": 100}}},
    "AckId": {
        "type": "object",
        "properties": {"ackId": {"type": "string"}, "updatePresence": {"type": "boolean"}},
    },
    "V4Event": {
        "type": "object",
        "description": "A CONNECTIONREQUESTED or CONNECTIONACCEPTED event (connections.md §6).",
        "required": ["id", "messageId", "timestamp", "type", "initiator", "payload"],
        "properties": {
            "id": {"type": "string"},
            "messageId": {"type": "string"},
            "timestamp": {"type": "integer", "format": "int64"},
            "type": {"type": "string", "enum": ["CONNECTIONREQUESTED", "CONNECTIONACCEPTED"]},
            "initiator": {"type": "object"},
            "payload": {"type": "object"},
        },
    },
    "V5EventList": {
        "type": "object",
        "required": ["events", "ackId"],
        "properties": {"events": {"type": "array", "items": _ref("V4Event")}, "ackId": {"type": "string"}},
    },
}


def _action(summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [_SESSION],
            "requestBody": {"required": True, "content": _content(_ref("UserConnectionRequest"))},
            "responses": {"200": _answer("The caller's view afterwards.", "UserConnection")}
            | _errors("400", "401", "403", "404"),
        }
    }


def _login(summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": _content(_ref("AuthenticateRequest"))},
            "responses": {"200": _answer("A session token.", "Token")} | _errors("400", "401"),
        }
    }


def _obo(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": "Open a session acting as a user, on behalf of an app (OBO).",
            "parameters": [
                {**_SESSION, "description": "The app session token."},
                {"name": name, "in": "path", "required": True, "schema": schema},
            ],
            "responses": {"200": _answer("A session token acting as the user.", "Token")}
            | _errors("401", "404"),
        }
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 document of the emulator's endpoints, as a JSON-ready dict.

    Examples
    --------
    >>> doc = openapi_document()
    >>> doc["openapi"], sorted(doc["paths"]["/pod/v1/connection/create"]["post"]["responses"])
    ('3.0.3', ['200', '400', '401', '403', '404'])
    """
    paths: dict[str, Any] = {
        "/login/pubkey/authenticate": _login("Log a user in; a session token."),
        "/relay/pubkey/authenticate": _login("Log a user in; a key manager token."),
        "/login/pubkey/app/authenticate": _login("Log an extension app in; an app session token."),
        "/login/pubkey/app/user/{uid}/authenticate": _obo("uid", {"type": "integer", "format": "int64"}),
        "/login/pubkey/app/username/{username}/authenticate": _obo("username", {"type": "string"}),
        "/pod/v2/sessioninfo": {
            "get": {
                "summary": "The caller.",
                "parameters": [_SESSION],
                "responses": {"200": _answer("The caller.", "UserV2")} | _errors("401"),
            }
        },
        "/pod/v1/connection/create": _action("Ask a user to connect."),
        "/pod/v1/connection/accept": _action("Accept a user's request."),
        "/pod/v1/connection/reject": _action("Decline a user's request."),
        "/pod/v1/connection/user/{userId}/info": {
            "get": {
                "summary": "The caller's connection with a user.",
                "parameters": [
                    _SESSION,
                    {"name": "userId", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {"200": _answer("The caller's view.", "UserConnection")}
                | _errors("400", "401", "403", "404"),
            }
        },
        "/pod/v1/connection/list": {
            "get": {
                "summary": "The caller's connections, by userId.",
                "parameters": [
                    _SESSION,
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["ALL", *_STATUSES]},
                    },
                    {
                        "name": "userIds",
                        "in": "query",
                        "required": False,
                        "description": "Comma-separated user ids.",
                        "schema": {"type": "string", "pattern": r"^( *-?[0-9]+ *(, *-?[0-9]+ *)*)?$"},
                    },
                ],
                "responses": {"200": _answer("The connections.", "UserConnectionList")}
                | _errors("400", "401"),
            }
        },
        "/pod/v1/connection/user/{uid}/remove": {
            "post": {
                "summary": "Remove a connection.",
                "parameters": [
                    _SESSION,
                    {
                        "name": "uid",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "format": "int64"},
                    },
                ],
                "responses": {"200": _answer("Connection Removed.", "SuccessResponse")}
                | _errors("400", "401", "403", "404"),
            }
        },
        "/agent/v5/datafeeds": {
            "post": {
                "summary": "Open a datafeed.",
                "parameters": [_SESSION, _KEY_MANAGER],
                "requestBody": {"required": False, "content": _content(_ref("V5DatafeedCreateBody"))},
                "responses": {"201": _answer("The datafeed.", "V5Datafeed")} | _errors("400", "401"),
            },
            "get": {
                "summary": "The caller's datafeeds.",
                "parameters": [
                    _SESSION,
                    _KEY_MANAGER,
                    {"name": "tag", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "The datafeeds.",
                        "content": _content({"type": "array", "items": _ref("V5Datafeed")}),
                    }
                }
                | _errors("401"),
            },
        },
        "/agent/v5/datafeeds/{id}": {
            "delete": {
                "summary": "Close a datafeed.",
                "parameters": [_SESSION, _KEY_MANAGER, _FEED_ID],
                "responses": {"204": {"description": "Closed."}} | _errors("400", "401"),
            }
        },
        "/agent/v5/datafeeds/{id}/read": {
            "post": {
                "summary": "Read a datafeed (long polling).",
                "parameters": [_SESSION, _KEY_MANAGER, _FEED_ID],
                "requestBody": {"required": False, "content": _content(_ref("AckId"))},
                "responses": {"200": _answer("The next events.", "V5EventList")} | _errors("400", "401"),
            }
        },
        "/simkit/v1/flush": {
            "post": {
                "summary": "Write the recording now (--record).",
                "responses": {
                    "200": {
                        "description": "Where, and how many events.",
                        "content": _content(
                            {
                                "type": "object",
                                "properties": {"recorded": {"type": "string"}, "events": {"type": "integer"}},
                            }
                        ),
                    }
                }
                | _errors("400"),
            }
        },
        "/simkit/v1/openapi.json": {
            "get": {
                "summary": "This document.",
                "responses": {
                    "200": {"description": "OpenAPI 3.0.", "content": _content({"type": "object"})}
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "simkit serve: the Pod API's connection endpoints, emulated",
            "version": __version__,
            "description": "The rules are connections.md; the choices the documentation leaves open are §8.",
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
