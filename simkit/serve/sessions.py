"""`sessions`: who is calling: logins by JWT and the session tokens they hand out (§8).

A login presents a JWT whose ``sub`` is a username of the users table. Given a folder of
public keys (``--keys DIR``: ``DIR/USERNAME.pem``, PEM), the JWT's RS512 signature is
verified with the key of the user it names, and its ``exp`` must be present and not past:
a JWT that fails is refused. Without keys the emulator trusts any well-formed JWT: it
decodes it without verifying the signature (it is a test double, not a security boundary,
and says so when it starts). Each login gets a fresh random token
(``secrets.token_hex``, never derived from the username) that acts as its own user only.

An extension application logs in the same way, its JWT's ``sub`` its app id (verified with
``DIR/APP_ID.pem`` when there are keys; any app id is trusted without them). Its app
session token acts as no user; it only opens on-behalf-of (OBO) sessions, each a session
token acting as the user it names. No
HTTP here: :mod:`simkit.serve.app` reads the headers and bodies.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from simkit.population import Population

__all__ = ["ALGORITHM", "LoginRefused", "Sessions", "key_file"]

_DEFAULT_NAME = re.compile(r"user(-?[0-9]+)")
# A username that can name a key file as it is (no folder separator, no leading dot).
_KEY_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
ALGORITHM = "RS512"
"""The signature of a login's JWT, as the Symphony BDK makes it."""


class LoginRefused(ValueError):
    """A login that is refused: a JWT that does not decode, or names no known user."""


def key_file(keys: str | os.PathLike[str], name: str) -> Path | None:
    """Where the public key of `name` is in the folder `keys` (``None``: no file can be named so).

    Examples
    --------
    >>> key_file("keys", "user7").as_posix(), key_file("keys", "../etc/passwd")
    ('keys/user7.pem', None)
    """
    return Path(keys) / f"{name}.pem" if _KEY_NAME.fullmatch(name) else None


class Sessions:
    """The usernames of a population and the session tokens handed out to them.

    With `keys` (a folder of ``USERNAME.pem`` public keys), logins are verified.

    Examples
    --------
    >>> from simkit.population import Pod, Population, User
    >>> pop = Population.from_records([Pod(1, "a")], [User(10, 1), User(11, 1)])
    >>> sessions = Sessions(pop)
    >>> sessions.user_of("user11"), sessions.user_of("bob")
    (11, None)
    >>> token = sessions.open(11)
    >>> sessions.caller(token), sessions.caller("nope"), token == sessions.open(11)
    (11, None, False)
    """

    def __init__(self, population: Population, keys: str | os.PathLike[str] | None = None) -> None:
        self._population = population
        self.keys = Path(keys) if keys is not None else None
        self._public_keys: dict[str, Any] = {}
        # Default usernames (user<id>) are parsed rather than held in a dict: at a million
        # users the dict would cost more than the engine's own state.
        self._names: dict[str, int] | None = None
        if population.user_name is not None:
            self._names = dict(zip(population.user_name, population.user_id.tolist()))
        self._ids = np.sort(population.user_id)
        self._tokens: dict[str, int] = {}
        self._apps: dict[str, str] = {}

    def user_of(self, username: str) -> int | None:
        """The id of the user with this username, or ``None``."""
        if self._names is not None:
            return self._names.get(username)
        match = _DEFAULT_NAME.fullmatch(username)
        if match is None:
            return None
        user_id = int(match.group(1))
        # The canonical spelling only: "user010" is not user10's name.
        if f"user{user_id}" != username:
            return None
        i = int(np.searchsorted(self._ids, user_id))
        return user_id if i < len(self._ids) and int(self._ids[i]) == user_id else None

    def username(self, user_id: int) -> str:
        """The username of a user (``KeyError`` if there is none)."""
        return self._population.username(user_id)

    def subject(self, jwt_text: object) -> str:
        """The ``sub`` of a login's JWT, its signature and expiry verified when there are
        keys; :class:`LoginRefused` if it does not decode, fails, or names no subject."""
        import jwt

        if not isinstance(jwt_text, str):
            raise LoginRefused("the login has no JWT in 'token'")
        try:
            claims = jwt.decode(jwt_text, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise LoginRefused(f"the JWT does not decode ({exc})") from None
        subject = claims.get("sub")
        if not isinstance(subject, str):
            raise LoginRefused("the JWT has no 'sub' username")
        if self.keys is not None:
            try:
                jwt.decode(
                    jwt_text,
                    self._public_key(subject),
                    algorithms=[ALGORITHM],
                    options={"require": ["exp", "sub"]},
                )
            except jwt.PyJWTError as exc:
                raise LoginRefused(f"the JWT of {subject!r} is not valid ({exc})") from None
        return subject

    def _public_key(self, name: str) -> Any:
        """The public key of `name` from the keys folder (read once)."""
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        key = self._public_keys.get(name)
        if key is not None:
            return key
        path = key_file(self.keys, name) if self.keys is not None else None
        if path is None or not path.is_file():
            raise LoginRefused(f"no public key for {name!r} in {self.keys}")
        try:
            key = load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise LoginRefused(f"{path}: not a PEM public key ({exc})") from None
        self._public_keys[name] = key
        return key

    def login(self, jwt_text: object) -> int:
        """The user a login's JWT names (its ``sub``), or :class:`LoginRefused`."""
        subject = self.subject(jwt_text)
        user_id = self.user_of(subject)
        if user_id is None:
            raise LoginRefused(f"no user has the username {subject!r}")
        return user_id

    def login_app(self, jwt_text: object) -> str:
        """The app id a login's JWT names (its ``sub``, verified if there are keys)."""
        return self.subject(jwt_text)

    def open_app(self, app_id: str) -> str:
        """A fresh app session token for `app_id`: it opens OBO sessions and acts as no user."""
        token = secrets.token_hex(32)
        self._apps[token] = app_id
        return token

    def app(self, token: str | None) -> str | None:
        """The app an app session token belongs to, or ``None``."""
        return self._apps.get(token) if token else None

    def open(self, user_id: int) -> str:
        """A fresh session token for `user_id`."""
        token = secrets.token_hex(32)
        self._tokens[token] = user_id
        return token

    def caller(self, token: str | None) -> int | None:
        """The user a session token acts as, or ``None`` for a missing or unknown token."""
        if not token:
            return None
        return self._tokens.get(token)

    def __len__(self) -> int:
        return len(self._tokens)
