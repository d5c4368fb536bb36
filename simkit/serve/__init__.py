"""`serve`: a Pod API emulator that real Symphony clients talk to (``simkit serve``).

The HTTP face of the connection rules (``connections.md`` §7–8): an aiohttp application
(:func:`create_app`) that authenticates bots as the Symphony BDK does (signed logins with
``--keys``, on-behalf-of sessions for an extension app), answers the six connection
endpoints with the per-event engine one call at a time, delivers the connection events to
the users' datafeeds (§6), and records the session as a run folder that ``simkit replay``
reproduces. The modules, each one idea:

- :mod:`~simkit.serve.wire`: the JSON in and out, and what makes a request malformed;
- :mod:`~simkit.serve.sessions`: logins (verified or trusted), session and OBO tokens;
- :mod:`~simkit.serve.feeds`: the users' datafeeds, long polling and acknowledgement;
- :mod:`~simkit.serve.openapi`: the OpenAPI document of the routes;
- :mod:`~simkit.serve.clock`: the time stamps of action calls;
- :mod:`~simkit.serve.pod`: the engine with its lock, clock and session log, and the recording;
- :mod:`~simkit.serve.app`: the routes; :mod:`~simkit.serve.server`: the socket;
- :mod:`~simkit.serve.bdk`: key pairs and BDK configurations for bots.

This package needs the ``serve`` extra (``pip install simkit[serve]``): aiohttp, PyJWT and
cryptography are imported here and nowhere else in simkit.
"""

from __future__ import annotations

from simkit.serve.app import create_app
from simkit.serve.bdk import Bot, write_bdk_configs
from simkit.serve.pod import Pod, load_source
from simkit.serve.server import Server, running, serve

__all__ = ["Bot", "Pod", "Server", "create_app", "load_source", "running", "serve", "write_bdk_configs"]
