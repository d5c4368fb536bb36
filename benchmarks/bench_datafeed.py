"""`simkit serve`'s datafeed on loopback: delivery latency with many bots listening.

The server runs in its own process (``simkit serve tiny.toml --clock run``, or a copy of
the tiny scenario with ``--users`` users). Every
listening bot logs in (session and key manager tokens), opens a datafeed and long-polls it
in a loop on its own connection, acknowledging each batch. One driver, on its own
connection, then makes action calls one after another, each followed by a short pause:
connects between users of two pods with crossPod (a CONNECTIONREQUESTED each) and the
accepts of those requests (a CONNECTIONACCEPTED each). Both users of each call listen, so
each event is read twice. The latency of a copy is the time from just before the call is
sent to the moment its read returns it, both taken on the one client clock. Printed:
median, 99th percentile and maximum over all copies::

    python benchmarks/bench_datafeed.py
    python benchmarks/bench_datafeed.py --users 2000 --listeners 1000 --calls 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TINY = ROOT / "data" / "scenarios" / "tiny.toml"


def _jwt(username: str) -> str:
    import jwt

    return jwt.encode({"sub": username}, "bench-secret-bench-secret-bench-secret", algorithm="HS256")


def _users(scenario: Path) -> tuple[list[int], list[int], list[int]]:
    """The scenario's users, and the external users of two pods with crossPod."""
    from simkit.serve import load_source
    from simkit.serve.pod import Pod

    pod = Pod(load_source(scenario))
    pop = pod.source.population
    by_pod: dict[int, list[int]] = {}
    for uid, p, ext in zip(pop.user_id.tolist(), pop.user_pod.tolist(), pop.user_external.tolist()):
        if ext:
            by_pod.setdefault(p, []).append(uid)
    pods = sorted(by_pod, key=lambda p: -len(by_pod[p]))
    for a in pods:
        for b in pods:
            if a != b and pod.engine.crosspod_enabled(a, b):
                return pop.user_id.tolist(), by_pod[a], by_pod[b]
    raise RuntimeError(f"no two pods of {scenario} have crossPod")


async def _run(url: str, listeners: list[int], pairs: list[tuple[int, int]], gap: float) -> list[float]:
    from aiohttp import ClientSession, ClientTimeout, TCPConnector

    sent: dict[tuple[str, int, int], float] = {}
    latencies: list[float] = []
    stop = asyncio.Event()
    timeout = ClientTimeout(total=None)

    async def login(session: ClientSession, user: int) -> dict[str, str]:
        headers = {}
        for path, header in (
            ("/login/pubkey/authenticate", "sessionToken"),
            ("/relay/pubkey/authenticate", "keyManagerToken"),
        ):
            async with session.post(url + path, json={"token": _jwt(f"user{user}")}) as r:
                headers[header] = (await r.json())["token"]
        return headers

    async def listen(session: ClientSession, headers: dict[str, str], feed: str) -> None:
        ack = ""
        while not stop.is_set():
            async with session.post(
                f"{url}/agent/v5/datafeeds/{feed}/read", json={"ackId": ack}, headers=headers
            ) as r:
                doc = await r.json()
            now = time.perf_counter()
            ack = doc["ackId"]
            for event in doc["events"]:
                payload = next(iter(event["payload"].values()))
                other = next(iter(payload.values()))["userId"]
                key = (event["type"], event["initiator"]["user"]["userId"], other)
                latencies.append(now - sent[key])

    sessions = [ClientSession(connector=TCPConnector(limit=1), timeout=timeout) for _ in listeners]
    driver = ClientSession(connector=TCPConnector(limit=1), timeout=timeout)
    try:
        tokens = {}
        tasks = []
        for user, session in zip(listeners, sessions):
            headers = await login(session, user)
            tokens[user] = headers
            async with session.post(url + "/agent/v5/datafeeds", json={}, headers=headers) as r:
                feed = (await r.json())["id"]
            tasks.append(asyncio.create_task(listen(session, headers, feed)))
        await asyncio.sleep(0.2)
        for action, (a, b) in [("create", p) for p in pairs] + [("accept", (b, a)) for a, b in pairs]:
            kind = "CONNECTIONREQUESTED" if action == "create" else "CONNECTIONACCEPTED"
            sent[(kind, a, b)] = time.perf_counter()
            headers = {"sessionToken": tokens[a]["sessionToken"]}
            async with driver.post(
                f"{url}/pod/v1/connection/{action}", json={"userId": b}, headers=headers
            ) as r:
                if r.status != 200:
                    raise RuntimeError(f"{action} {a} -> {b}: {r.status} {await r.text()}")
            await asyncio.sleep(gap)
        expected = 4 * len(pairs)
        deadline = time.perf_counter() + 10
        while len(latencies) < expected and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        if len(latencies) != expected:
            raise RuntimeError(f"read {len(latencies)} event copies, expected {expected}")
        stop.set()
        # Idle reads answer within --datafeed-wait (5 s); the listeners stop then.
        await asyncio.gather(*tasks)
    finally:
        for session in [*sessions, driver]:
            await session.close()
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--listeners", type=int, default=300, help="bots listening on a datafeed (default: %(default)s)"
    )
    parser.add_argument(
        "--calls", type=int, default=1000, help="connects, then as many accepts (default: %(default)s)"
    )
    parser.add_argument(
        "--gap", type=float, default=0.002, help="pause after each call, seconds (default: %(default)s)"
    )
    parser.add_argument(
        "--users", type=int, help="serve a copy of the tiny scenario with this many users (default: it as is)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        scenario = TINY
        if args.users is not None:
            scenario = Path(tmp) / "tiny-users.toml"
            scenario.write_text(re.sub(r"(?m)^users = \d+", f"users = {args.users}", TINY.read_text()))
        return _bench(args, scenario)


def _bench(args: argparse.Namespace, scenario: Path) -> int:

    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    print(f"command: python benchmarks/bench_datafeed.py {shlex.join(sys.argv[1:])}".rstrip())
    everyone, side_a, side_b = _users(scenario)
    pairs = [(a, b) for a in side_a for b in side_b][: args.calls]
    involved = sorted({u for p in pairs for u in p})
    others = [u for u in everyone if u not in set(involved)]
    listeners = (involved + others)[: max(args.listeners, len(involved))]
    serve_argv = [
        sys.executable, "-m", "simkit", "serve", str(scenario.relative_to(ROOT)) if scenario == TINY else str(scenario),
        "--port", "0", "--clock", "run", "--datafeed-wait", "5",
    ]  # fmt: skip
    proc = subprocess.Popen(serve_argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        latencies = asyncio.run(_run(url, listeners, pairs, args.gap))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    ms = np.array(latencies) * 1e3
    print(f"\n{shlex.join(['simkit', *serve_argv[3:]])}")
    print(
        f"{len(listeners)} bots long-polling their datafeeds; {len(pairs)} connects then "
        f"{len(pairs)} accepts, one at a time, {args.gap * 1e3:g} ms apart; "
        f"{len(ms):,} event copies read (both users of each call)"
    )
    print(
        f"delivery latency (call sent -> event read): median {np.median(ms):.2f} ms, "
        f"p99 {np.percentile(ms, 99):.2f} ms, max {ms.max():.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
