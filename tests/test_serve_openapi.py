"""The served OpenAPI document, and a fuzzer that knows it (schemathesis) against the
connection paths: no 5xx, and every answer is one the document declares, of its schema."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("aiohttp")
jwt = pytest.importorskip("jwt")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from simkit.serve import Server, running  # noqa: E402
from simkit.serve.openapi import openapi_document  # noqa: E402

STORY = "data/samples/story"
# The story's users, so that many cases reach the rules rather than 404 unknown_user.
STORY_USERS = [101, 102, 201, 202, 203, 301, 302]
CONNECTION_PATHS = [
    ("POST", "/pod/v1/connection/create"),
    ("POST", "/pod/v1/connection/accept"),
    ("POST", "/pod/v1/connection/reject"),
    ("GET", "/pod/v1/connection/user/{userId}/info"),
    ("GET", "/pod/v1/connection/list"),
    ("POST", "/pod/v1/connection/user/{uid}/remove"),
]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running(STORY, clock="run") as srv:
        yield srv


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    request = urllib.request.Request(
        server.url + "/login/pubkey/authenticate",
        data=json.dumps({"token": jwt.encode({"sub": "user102"}, "z" * 32, algorithm="HS256")}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as resp:
        found: str = json.loads(resp.read())["token"]
    return found


def test_the_document_is_served_and_names_every_route(server: Server) -> None:
    with urllib.request.urlopen(server.url + "/simkit/v1/openapi.json") as resp:
        served = json.loads(resp.read())
    assert served == openapi_document()
    routes = {
        (r.method, r.resource.canonical)
        for r in server.app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    documented = {(m.upper(), p) for p, ops in served["paths"].items() for m in ops}
    # The aiohttp path parameters are named as the document names them.
    assert {(m, p.replace("{feedId}", "{id}")) for m, p in routes} == documented
    schemas = served["components"]["schemas"]
    assert {"UserConnection", "UserConnectionList", "Error", "SuccessResponse"} <= set(schemas)


# Negative cases (data the schema does not allow) for every path but info, whose only free
# part is its path id, typed as any string: nothing there is outside the schema.
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in CONNECTION_PATHS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in CONNECTION_PATHS if not p.endswith("/info")
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=str)
def test_the_fuzzer_finds_nothing_on_the_connection_paths(
    server: Server, token: str, method: str, path: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/simkit/v1/openapi.json")
    operation = schema[path][method]
    server.pod.reset()
    statuses: set[int] = set()
    headers = {"sessionToken": token}
    cases = operation.as_strategy(generation_mode=mode, headers=headers)
    if mode is GenerationMode.POSITIVE and path != "/pod/v1/connection/list":
        # Half the cases name a user of the story.
        def known(uid: int) -> st.SearchStrategy[Any]:
            if method == "POST" and "{" not in path:
                return operation.as_strategy(headers=headers, body={"userId": uid})
            name = "uid" if "{uid}" in path else "userId"
            return operation.as_strategy(headers=headers, path_parameters={name: uid})

        cases = st.one_of(cases, st.sampled_from(STORY_USERS).flatmap(known))

    @given(case=cases)
    @settings(
        max_examples=30,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        response = case.call(base_url=server.url, headers=headers)
        statuses.add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    fuzz()
    assert statuses and max(statuses) < 500
