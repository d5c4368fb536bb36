"""Signed logins (``--keys``) and on-behalf-of sessions of `simkit serve`: over HTTP with
urllib, and through the real BDK (symphony-bdk-python 3.0.0)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp")
jwt = pytest.importorskip("jwt")
pytest.importorskip("cryptography")

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from simkit.errors import RunDirError  # noqa: E402
from simkit.rules import Reason, message  # noqa: E402
from simkit.serve import Server, create_app, running  # noqa: E402
from simkit.serve.bdk import APP_ID  # noqa: E402

STORY = "data/samples/story"
BOTS = ["user102", "user301"]


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    bdk = tmp_path_factory.mktemp("bdk")
    with running(STORY, bdk_config=bdk, bdk_users=BOTS, keys=bdk / "keys") as srv:
        yield srv


def _private(srv: Server, username: str) -> bytes:
    return next(b for b in srv.bots if b.username == username).private_key.read_bytes()


def _post(srv: Server, path: str, doc: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        srv.url + path,
        data=json.dumps(doc).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _login(srv: Server, token: str, path: str = "/login/pubkey/authenticate") -> tuple[int, Any]:
    return _post(srv, path, {"token": token})


def _signed(key: bytes, sub: str, exp: float | None = 60) -> str:
    claims: dict[str, Any] = {"sub": sub}
    if exp is not None:
        claims["exp"] = int(time.time() + exp)
    return jwt.encode(claims, key, algorithm="RS512")


def _other_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_a_jwt_signed_by_the_users_key_logs_in(signed: Server) -> None:
    code, doc = _login(signed, _signed(_private(signed, "user102"), "user102"))
    assert code == 200 and doc["name"] == "sessionToken"
    assert sorted(p.name for p in (signed.bots[0].config.parent.parent / "keys").iterdir()) == [
        f"{APP_ID}.pem",
        "user102.pem",
        "user301.pem",
    ]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("another user's key", "Signature verification failed"),
        ("a stranger's key", "Signature verification failed"),
        ("expired", "Signature has expired"),
        ("no exp", 'Token is missing the "exp" claim'),
        ("HS256", "The specified alg value is not allowed"),
        ("no key for the user", "no public key for 'user101'"),
        ("not a JWT", "does not decode"),
    ],
)
def test_a_forged_expired_or_unsigned_jwt_is_401(signed: Server, case: str, expected: str) -> None:
    own = _private(signed, "user102")
    token = {
        "another user's key": _signed(_private(signed, "user301"), "user102"),
        "a stranger's key": _signed(_other_key(), "user102"),
        "expired": _signed(own, "user102", exp=-5),
        "no exp": _signed(own, "user102", exp=None),
        "HS256": jwt.encode({"sub": "user102", "exp": int(time.time()) + 60}, "x" * 32, algorithm="HS256"),
        "no key for the user": _signed(own, "user101"),
        "not a JWT": "abc.def",
    }[case]
    for path in ("/login/pubkey/authenticate", "/relay/pubkey/authenticate"):
        code, doc = _login(signed, token, path)
        assert code == 401 and expected in doc["message"], doc


def test_keys_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="no such folder of public keys"):
        create_app(STORY, keys=tmp_path / "missing")


def test_without_keys_any_well_formed_jwt_is_trusted() -> None:
    with running(STORY) as srv:
        code, _ = _login(srv, jwt.encode({"sub": "user101"}, "y" * 32, algorithm="HS256"))
    assert code == 200


def test_obo_over_http(signed: Server) -> None:
    app_key = (signed.bots[0].config.parent.parent / "app" / "privatekey.pem").read_bytes()
    # The app logs in with its own key; a user's key does not make an app session.
    assert (
        _login(signed, _signed(_private(signed, "user102"), APP_ID), "/login/pubkey/app/authenticate")[0]
        == 401
    )
    code, doc = _login(signed, _signed(app_key, APP_ID), "/login/pubkey/app/authenticate")
    assert code == 200
    app_token = {"sessionToken": doc["token"]}
    # An app session acts as no user.
    assert _post(signed, "/pod/v1/connection/create", {"userId": 301}, app_token) == (
        401,
        {"code": 401, "message": message(Reason.UNKNOWN_CALLER)},
    )
    code, obo = _post(signed, "/login/pubkey/app/username/user101/authenticate", {}, app_token)
    assert code == 200
    request = urllib.request.Request(
        signed.url + "/pod/v2/sessioninfo", headers={"sessionToken": obo["token"]}
    )
    with urllib.request.urlopen(request) as resp:
        assert json.loads(resp.read())["id"] == 101
    for path, headers in [
        ("/login/pubkey/app/user/999/authenticate", app_token),
        ("/login/pubkey/app/user/abc/authenticate", app_token),
        ("/login/pubkey/app/username/nobody/authenticate", app_token),
    ]:
        assert _post(signed, path, {}, headers)[0] == 404
    # A user's session token is no app session.
    user_token = {"sessionToken": obo["token"]}
    assert _post(signed, "/login/pubkey/app/user/101/authenticate", {}, user_token)[0] == 401


def test_obo_through_the_bdk(signed: Server) -> None:
    core = pytest.importorskip("symphony.bdk.core.symphony_bdk")
    from symphony.bdk.core.config.loader import BdkConfigLoader
    from symphony.bdk.core.service.connection.model.connection_status import ConnectionStatus

    incoming = ConnectionStatus.PENDING_INCOMING

    signed.pod.reset()
    config = BdkConfigLoader.load_from_file(str(signed.bots[0].config))

    async def main() -> tuple[Any, Any, Any]:
        bdk = core.SymphonyBdk(config)
        try:
            # The app acts for user102 (by id) and user301 (by username).
            async with bdk.obo_services(bdk.obo(user_id=102)) as services:
                created = await services.connections().create_connection(301)
            async with bdk.obo_services(bdk.obo(username="user301")) as services:
                listed = await services.connections().list_connections(incoming)
            info = await bdk.connections().get_connection(301)
            return created, listed, info
        finally:
            await bdk.close_clients()

    loop = asyncio.new_event_loop()
    try:
        created, listed, info = loop.run_until_complete(main())
    finally:
        loop.close()
    assert (created.user_id, created.status) == (301, "PENDING_OUTGOING")
    assert [(c.user_id, c.status) for c in listed] == [(102, "PENDING_INCOMING")]
    # The bot (user102) sees the request its OBO session made for it.
    assert info.status == "PENDING_OUTGOING"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            ["--keys", "no-such-folder"],
            "simkit: error: no-such-folder: no such folder of public keys (--keys)\n",
        ),
        (
            ["--datafeed-wait", "0"],
            "simkit: error: --datafeed-wait: expected seconds in (0, 3600], found 0\n",
        ),
        (
            ["--datafeed-wait", "nan"],
            "simkit: error: --datafeed-wait: expected seconds in (0, 3600], found nan\n",
        ),
    ],
)
def test_the_command_refuses_bad_keys_and_waits_in_one_line(
    capsys: pytest.CaptureFixture[str], options: list[str], expected: str
) -> None:
    from simkit.cli import main

    assert main(["serve", STORY, "--port", "0", *options]) == 1
    assert capsys.readouterr().err == expected


def test_the_command_says_logins_are_verified_and_verifies_them(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    bdk = tmp_path / "bdk"
    argv = [sys.executable, "-m", "simkit", "serve", STORY, "--port", "0", "--bdk-config", str(bdk)]
    proc = subprocess.Popen(
        [*argv, "--bdk-users", "user102", "--keys", str(bdk / "keys")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        said = [proc.stdout.readline() for _ in range(3)]
        assert (
            said[1]
            == f"logins are verified: RS512 JWTs signed by the key of their 'sub' in {bdk / 'keys'}, not expired\n"
        )
        assert said[2].startswith("bot user102 (user 102, pod 10)")
        key = (bdk / "user102" / "privatekey.pem").read_bytes()
        for token, expected in ((_signed(key, "user102"), 200), (_signed(_other_key(), "user102"), 401)):
            request = urllib.request.Request(
                url + "/login/pubkey/authenticate",
                data=json.dumps({"token": token}).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request) as resp:
                    code = resp.status
            except urllib.error.HTTPError as exc:
                code = exc.code
            assert code == expected
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
