"""`sessions`: who is calling: logins by JWT and the session tokens they hand out (§8).

A login presents a JWT whose ``sub`` is a username of the users table. The emulator trusts
any well-formed JWT: it decodes it without verifying the signature (it is a test double,
not a security boundary, and says so when it starts). Each login gets a fresh random token
(``secrets.token_hex``, never derived from the username) that acts as its own user only. No
HTTP here: :mod:`simkit.serve.app` reads the headers and bodies.
"""

from __future__ import annotations

import re
import secrets

import numpy as np

from simkit.population import Population

__all__ = ["LoginRefused", "Sessions"]

_DEFAULT_NAME = re.compile(r"user(-?[0-9]+)")


class LoginRefused(ValueError):
    """A login that is refused: a JWT that does not decode, or names no known user."""


class Sessions:
    """The usernames of a population and the session tokens handed out to them.

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

    def __init__(self, population: Population) -> None:
        self._population = population
        # Default usernames (user<id>) are parsed rather than held in a dict: at a million
        # users the dict would cost more than the engine's own state.
        self._names: dict[str, int] | None = None
        if population.user_name is not None:
            self._names = dict(zip(population.user_name, population.user_id.tolist()))
        self._ids = np.sort(population.user_id)
        self._tokens: dict[str, int] = {}

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

    def login(self, jwt_text: object) -> int:
        """The user a login's JWT names (its ``sub``), or :class:`LoginRefused`."""
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
        user_id = self.user_of(subject)
        if user_id is None:
            raise LoginRefused(f"no user has the username {subject!r}")
        return user_id

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
