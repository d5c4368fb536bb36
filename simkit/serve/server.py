"""`server`: the emulator on a socket, in the foreground (``simkit serve``) or in a thread.

:func:`serve` listens until SIGINT or SIGTERM, printing the URL it listens on as its first
line; :func:`running` starts the emulator in a background thread for a test or a script
and stops it (writing the recording, if any) when the ``with`` block ends. Both hand the
work to :func:`simkit.serve.app.create_app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from aiohttp import web

from simkit.scenario import Scenario
from simkit.serve.app import DATAFEED_WAIT, POD, create_app
from simkit.serve.bdk import Bot, default_bot_users, resolve_bot_users, write_bdk_configs
from simkit.serve.pod import Pod

__all__ = ["Server", "running", "serve"]

_NOTICE = (
    "logins are not verified: any well-formed JWT acts as the user its 'sub' names "
    "(simkit serve is a test double, not a security boundary; --keys DIR verifies them)"
)


def _notice(keys: str | os.PathLike[str] | None) -> str:
    if keys is None:
        return _NOTICE
    return f"logins are verified: RS512 JWTs signed by the key of their 'sub' in {keys}, not expired"


def _app(
    source: str | os.PathLike[str] | Scenario,
    record: str | os.PathLike[str] | None,
    clock: str,
    datafeed_wait: float,
    keys: str | os.PathLike[str] | None,
    bdk_config: str | os.PathLike[str] | None,
) -> web.Application:
    if bdk_config is not None and keys is not None:
        # The bots' public keys are written there once the port is known; `--keys` may name it.
        (Path(bdk_config) / "keys").mkdir(parents=True, exist_ok=True)
    return create_app(source, record=record, clock=clock, datafeed_wait=datafeed_wait, keys=keys)


@dataclass(frozen=True)
class Server:
    """A running emulator: where it listens, its pod, and the bots configured for it."""

    url: str
    host: str
    port: int
    app: web.Application
    bots: list[Bot] = field(default_factory=list)

    @property
    def pod(self) -> Pod:
        """The emulated pod (its engine, clock and session log)."""
        return self.app[POD]


async def _start(runner: web.AppRunner, host: str, port: int) -> tuple[str, int]:
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    return str(bound[0]), int(bound[1])


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _bot_users(app: web.Application, users: Sequence[str] | None) -> list[int]:
    pod = app[POD]
    if users:
        return resolve_bot_users(pod.source.population, users)
    return default_bot_users(pod.source.population, crosspod=pod.engine.crosspod_enabled)


def _bots(
    app: web.Application, folder: str | os.PathLike[str] | None, user_ids: list[int], host: str, port: int
) -> list[Bot]:
    if folder is None:
        return []
    return write_bdk_configs(folder, app[POD].source.population, user_ids, host=host, port=port)


def serve(
    source: str | os.PathLike[str] | Scenario,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    record: str | os.PathLike[str] | None = None,
    clock: str = "wall",
    bdk_config: str | os.PathLike[str] | None = None,
    bdk_users: Sequence[str] | None = None,
    datafeed_wait: float = DATAFEED_WAIT,
    keys: str | os.PathLike[str] | None = None,
    out: TextIO | None = None,
) -> int:
    """Serve `source` until SIGINT or SIGTERM; the Python face of ``simkit serve``.

    The first line printed is the URL the server listens on (with the port chosen when
    `port` is 0). On shutdown the recording, if any, is written. Returns 0.
    """
    out = sys.stdout if out is None else out
    app = _app(source, record, clock, datafeed_wait, keys, bdk_config)
    # Bots are resolved before listening, so that a wrong name stops nothing that started.
    user_ids = _bot_users(app, bdk_users) if bdk_config is not None else []
    return asyncio.run(_serve(app, host, port, bdk_config, user_ids, record, _notice(keys), out))


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    bdk_config: str | os.PathLike[str] | None,
    user_ids: list[int],
    record: str | os.PathLike[str] | None,
    notice: str,
    out: TextIO,
) -> int:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    bound_host, bound_port = await _start(runner, host, port)
    try:
        print(_url(bound_host, bound_port), file=out, flush=True)
        pod = app[POD]
        pop = pod.source.population
        print(
            f"serving {pod.source.name}: {pop.n_pods:,} pods, {pop.n_users:,} users, "
            f"{len(pod.source.events):,} events replayed; clock {pod.clock.kind}",
            file=out,
        )
        print(notice, file=out)
        for bot in _bots(app, bdk_config, user_ids, bound_host, bound_port):
            print(f"bot {bot.username} (user {bot.user_id}, pod {bot.pod_id}): {bot.config}", file=out)
        if record is not None:
            print(f"recording into {record} on SIGINT, SIGTERM or POST /simkit/v1/flush", file=out)
        out.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
    if record is not None:
        print(f"recorded {len(app[POD].events()):,} events into {record}", file=out, flush=True)
    return 0


@contextlib.contextmanager
def running(
    source: str | os.PathLike[str] | Scenario,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    record: str | os.PathLike[str] | None = None,
    clock: str = "wall",
    bdk_config: str | os.PathLike[str] | None = None,
    bdk_users: Sequence[str] | None = None,
    datafeed_wait: float = DATAFEED_WAIT,
    keys: str | os.PathLike[str] | None = None,
) -> Iterator[Server]:
    """Run the emulator in a background thread for the ``with`` block (a free port by default).

    Leaving the block stops the server and writes the recording, if any. A pytest fixture
    is two lines (see ``docs/serve.md``)::

        @pytest.fixture
        def pod(tmp_path):
            with running("data/scenarios/tiny.toml", bdk_config=tmp_path / "bdk") as server:
                yield server

    Examples
    --------
    >>> import urllib.request, urllib.error
    >>> with running("data/samples/story") as server:
    ...     try:
    ...         urllib.request.urlopen(server.url + "/pod/v1/connection/list")
    ...     except urllib.error.HTTPError as exc:
    ...         exc.code, exc.read()
    (401, b'{"code": 401, "message": ...}')
    """
    app = _app(source, record, clock, datafeed_wait, keys, bdk_config)
    user_ids = _bot_users(app, bdk_users) if bdk_config is not None else []
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="simkit-serve", daemon=True)
    thread.start()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    try:
        bound_host, bound_port = asyncio.run_coroutine_threadsafe(_start(runner, host, port), loop).result()
        bots = _bots(app, bdk_config, user_ids, bound_host, bound_port)
        yield Server(_url(bound_host, bound_port), bound_host, bound_port, app, bots)
    finally:
        try:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
