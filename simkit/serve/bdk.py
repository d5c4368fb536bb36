"""`bdk`: ready-made Symphony BDK configurations for bots that talk to the emulator.

For each chosen user, :func:`write_bdk_configs` writes an RSA key pair and a BDK 3.0
configuration (``config.yaml``: ``scheme: http``, the emulator's host and port, the bot's
username and private key path, ``retry.maxAttempts: 1`` so that an error surfaces at once; the datafeed v2 loop, which
reads the agent's v5 endpoints, with three quick attempts)
into a folder of its own (with the extension app :data:`APP_ID`, whose key pair is in
``app/``, for on-behalf-of sessions), its public key as ``keys/USERNAME.pem`` (the folder ``simkit serve
--keys`` reads), and ``bots.json`` listing them. :func:`default_bot_users` picks a
handful of users who can connect to one another. The emulator verifies logins with
those public keys only when started with ``--keys``. Nothing here serves HTTP.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from simkit.errors import SimkitError
from simkit.io.atomic import write_bytes
from simkit.population import Population
from simkit.serve.sessions import key_file

__all__ = [
    "APP_ID",
    "DEFAULT_BOTS",
    "Bot",
    "BotUserError",
    "default_bot_users",
    "resolve_bot_users",
    "write_bdk_configs",
]

APP_ID = "simkit-app"
"""The extension app of the configs (``app:``, for on-behalf-of sessions); its key pair is in
``folder/app/``."""

DEFAULT_BOTS = 4
"""How many bots :func:`default_bot_users` picks."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class BotUserError(SimkitError):
    """A bot named (``--bdk-users``) who is no user of the population."""


@dataclass(frozen=True)
class Bot:
    """A user set up as a BDK bot: where its configuration and key are."""

    user_id: int
    username: str
    pod_id: int
    config: Path
    private_key: Path


def default_bot_users(
    population: Population, n: int = DEFAULT_BOTS, crosspod: Callable[[int, int], bool] | None = None
) -> list[int]:
    """Up to `n` external users of distinct pods, chosen so that they can connect.

    The first is the first external user of the pod with the most crossPod partners; the
    others are the first external users of its partners (by pod id), then of any other
    pods. `crosspod` tells whether two pods have crossPod now (an engine's
    ``crosspod_enabled``); by default, the pairs enabled at the start. Deterministic.

    Examples
    --------
    >>> from simkit.pipeline import population_of
    >>> default_bot_users(population_of("data/samples/story"), 2)
    [101, 201]
    """
    if crosspod is None:
        pairs = {(a, b) for a, b in population.crosspod.tolist()}

        def crosspod(a: int, b: int) -> bool:
            return (min(a, b), max(a, b)) in pairs

    first_external: dict[int, int] = {}
    for uid, pod, external in zip(
        population.user_id.tolist(), population.user_pod.tolist(), population.user_external.tolist()
    ):
        if external and pod not in first_external:
            first_external[pod] = uid
    candidates = [p for p in population.pod_id.tolist() if p in first_external]
    if not candidates:
        return [int(u) for u in population.user_id[:n].tolist()]
    partners = {p: {q for q in candidates if q != p and crosspod(p, q)} for p in candidates}
    hub = max(candidates, key=lambda p: (len(partners[p]), -candidates.index(p)))
    rest = set(candidates) - partners[hub] - {hub}
    order = [hub, *sorted(partners[hub]), *sorted(rest)]
    return [first_external[p] for p in order[:n]]


def resolve_bot_users(population: Population, names: Sequence[str]) -> list[int]:
    """User ids for `names`, each a username or a user id; :class:`BotUserError` naming one
    that is neither."""
    by_name = dict(zip(population.usernames(), population.user_id.tolist()))
    ids = set(population.user_id.tolist())
    found = []
    for name in names:
        if name in by_name:
            found.append(by_name[name])
        elif re.fullmatch(r"-?[0-9]+", name) and int(name) in ids:
            found.append(int(name))
        else:
            raise BotUserError(f"--bdk-users: no user has the username or id {name!r}")
    return found


def _key_pair(folder: Path) -> Path:
    """The bot's private key in `folder`, made (with its public key) if missing."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = folder / "privatekey.pem"
    if private.is_file():
        return private
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_bytes(private, pem)
    os.chmod(private, 0o600)
    write_bytes(folder / "publickey.pem", public)
    return private


def _config_yaml(host: str, port: int, username: str, key: Path, app_key: Path, comment: str) -> str:
    # JSON strings are YAML double-quoted scalars: no YAML library is needed to write them.
    q = json.dumps
    return (
        f"# {comment}\n"
        "scheme: http\n"
        f"host: {q(host)}\n"
        f"port: {port}\n"
        "bot:\n"
        f"  username: {q(username)}\n"
        "  privateKey:\n"
        f"    path: {q(str(key))}\n"
        "app:\n"
        f"  appId: {q(APP_ID)}\n"
        "  privateKey:\n"
        f"    path: {q(str(app_key))}\n"
        "retry:\n"
        "  maxAttempts: 1\n"
        "datafeed:\n"
        "  version: v2\n"
        "  retry:\n"
        "    maxAttempts: 3\n"
        "    initialIntervalMillis: 100\n"
    )


def write_bdk_configs(
    folder: str | os.PathLike[str],
    population: Population,
    user_ids: Sequence[int],
    *,
    host: str,
    port: int,
) -> list[Bot]:
    """Write a key pair and a BDK config per user into ``folder/<username>/``.

    Keys already there are kept (a restarted emulator reuses them); the configs are
    rewritten with the host and port given. ``folder/keys/USERNAME.pem`` holds each bot's
    public key (for ``--keys``); ``folder/bots.json`` lists the bots.
    """
    root = Path(folder).absolute()
    (root / "keys").mkdir(parents=True, exist_ok=True)
    (root / "app").mkdir(exist_ok=True)
    app_key = _key_pair(root / "app")
    write_bytes(root / "keys" / f"{APP_ID}.pem", (root / "app" / "publickey.pem").read_bytes())
    bots = []
    for user_id in user_ids:
        user = population.user(user_id)
        username = population.username(user_id)
        home = root / (_UNSAFE.sub("_", username) or f"user-{user_id}")
        home.mkdir(exist_ok=True)
        key = _key_pair(home)
        public = key_file(root / "keys", username)
        if public is not None:
            write_bytes(public, (home / "publickey.pem").read_bytes())
        config = home / "config.yaml"
        comment = f"BDK 3.0 config of {username} (user {user_id}, pod {user.pod_id}) for simkit serve"
        write_bytes(config, _config_yaml(host, port, username, key, app_key, comment).encode())
        bots.append(Bot(user_id, username, user.pod_id, config, key))
    index = [
        {"userId": b.user_id, "username": b.username, "podId": b.pod_id, "config": str(b.config)}
        for b in bots
    ]
    write_bytes(root / "bots.json", (json.dumps(index, indent=2) + "\n").encode())
    return bots
