"""`simkit serve` on loopback: calls per second against a bare aiohttp handler, and memory.

Throughput: each server runs in its own process; one client process drives it with many
concurrent aiohttp clients (one ClientSession per client, its own connection each, every
client logged in as its own user) making action calls (create, accept, reject, remove
among users of two pods with crossPod) for a fixed time. The same clients then drive a
bare aiohttp handler that returns a fixed JSON body, in the same run. Printed: calls per
second for both, their ratio (target at least 0.5), and the server's CPU time per call (a
figure the client's own cost does not cloud). Memory: the resident size of ``simkit serve``
started on a generated population of 1M users (a copy of the tiny scenario with
``users = 1000000``), once it prints its URL, and its peak while starting::

    python benchmarks/bench_serve.py
    python benchmarks/bench_serve.py --clients 128 --seconds 10 --users 1000000
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
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TINY = ROOT / "data" / "scenarios" / "tiny.toml"
_TICKS = os.sysconf("SC_CLK_TCK")

_BARE = """
import sys
from aiohttp import web
BODY = b'{"userId": 1000007, "status": "PENDING_OUTGOING", "firstRequestedAt": 1, "updatedAt": 1, "requestCounter": 1}'
async def handle(request):
    return web.Response(body=BODY, content_type="application/json")
async def login(request):
    return web.Response(body=b'{"name": "sessionToken", "token": "x"}', content_type="application/json")
app = web.Application()
app.router.add_post("/login/pubkey/authenticate", login)
app.router.add_route("*", "/{tail:.*}", handle)
async def main():
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(f"http://{host}:{port}", flush=True)
    import asyncio
    await asyncio.Event().wait()
import asyncio
asyncio.run(main())
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


class _Child:
    """A server process, started, its URL read from its first line."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        self.start_seconds = time.perf_counter() - self.started
        if not self.url.startswith("http"):
            raise RuntimeError(f"{shlex.join(argv)}: printed {self.url!r}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def _jwt(username: str) -> str:
    import jwt

    return jwt.encode({"sub": username}, "bench-secret-bench-secret-bench-secret", algorithm="HS256")


async def _drive(url: str, users: list[int], clients: int, seconds: float) -> tuple[int, float]:
    """Calls made by `clients` concurrent clients in `seconds` (after a warm-up), and the time."""
    from aiohttp import ClientSession, TCPConnector

    paths = ["create", "accept", "reject"]
    sessions = [ClientSession(connector=TCPConnector(limit=1)) for _ in range(clients)]
    try:
        tokens = []
        for i, session in enumerate(sessions):
            user = users[i % len(users)]
            async with session.post(
                url + "/login/pubkey/authenticate", json={"token": _jwt(f"user{user}")}
            ) as r:
                tokens.append((await r.json())["token"])

        async def client(i: int, warm: bool) -> int:
            session, headers = sessions[i], {"sessionToken": tokens[i]}
            n = 0
            k = i
            end = time.perf_counter() + (0.5 if warm else seconds)
            while time.perf_counter() < end:
                other = users[(k * 7 + 3) % len(users)]
                k += 1
                if k % 4 == 3:
                    resp = await session.post(f"{url}/pod/v1/connection/user/{other}/remove", headers=headers)
                else:
                    resp = await session.post(
                        f"{url}/pod/v1/connection/{paths[k % 4 % 3]}", json={"userId": other}, headers=headers
                    )
                await resp.read()
                n += 1
            return n

        await asyncio.gather(*(client(i, True) for i in range(clients)))
        start = time.perf_counter()
        done = sum(await asyncio.gather(*(client(i, False) for i in range(clients))))
        return done, time.perf_counter() - start
    finally:
        for session in sessions:
            await session.close()


def _throughput(argv: list[str], users: list[int], clients: int, seconds: float) -> dict[str, Any]:
    child = _Child(argv)
    try:
        before = _cpu_seconds(child.proc.pid)
        calls, elapsed = asyncio.run(_drive(child.url, users, clients, seconds))
        cpu = _cpu_seconds(child.proc.pid) - before
    finally:
        child.stop()
    return {"calls": calls, "seconds": elapsed, "rate": calls / elapsed, "cpu_us": 1e6 * cpu / max(calls, 1)}


def _users() -> list[int]:
    """Users of the tiny scenario in two pods with crossPod, so that calls mostly succeed."""
    from simkit.serve import load_source
    from simkit.serve.pod import Pod

    pod = Pod(load_source(TINY))
    pop = pod.source.population
    by_pod: dict[int, list[int]] = {}
    for uid, p, ext in zip(pop.user_id.tolist(), pop.user_pod.tolist(), pop.user_external.tolist()):
        if ext:
            by_pod.setdefault(p, []).append(uid)
    pods = sorted(by_pod, key=lambda p: -len(by_pod[p]))
    for a in pods:
        for b in pods:
            if a != b and pod.engine.crosspod_enabled(a, b):
                return by_pod[a][:32] + by_pod[b][:32]
    return pop.user_id.tolist()[:64]


def _memory(users: int) -> dict[str, Any]:
    text = TINY.read_text()
    text = re.sub(r"(?m)^users = \d+", f"users = {users}", text)
    text = re.sub(r"(?m)^pods = \d+", f"pods = {max(12, users // 500)}", text)
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "big.toml"
        scenario.write_text(text)
        argv = [sys.executable, "-m", "simkit", "serve", str(scenario), "--port", "0"]
        child = _Child(argv)
        try:
            time.sleep(0.2)
            rss = _status_mb(child.proc.pid, "VmRSS")
            peak = _status_mb(child.proc.pid, "VmHWM")
        finally:
            child.stop()
    return {"argv": argv, "rss_mb": rss, "peak_mb": peak, "start_s": child.start_seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (default: %(default)s)")
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="seconds per measurement (default: %(default)s)"
    )
    parser.add_argument(
        "--users", type=int, default=1_000_000, help="users for the memory figure (default: 1M)"
    )
    args = parser.parse_args(argv)

    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    print(f"command: python benchmarks/bench_serve.py {shlex.join(sys.argv[1:])}".rstrip())
    users = _users()
    serve_argv = [
        sys.executable,
        "-m",
        "simkit",
        "serve",
        str(TINY.relative_to(ROOT)),
        "--port",
        "0",
        "--clock",
        "run",
    ]
    bare_argv = [sys.executable, "-c", _BARE]
    simkit = _throughput(serve_argv, users, args.clients, args.seconds)
    bare = _throughput(bare_argv, users, args.clients, args.seconds)
    print(f"\nthroughput, {args.clients} concurrent aiohttp clients on loopback, {args.seconds:g} s each:")
    print(f"  {shlex.join(['simkit', *serve_argv[3:]])}")
    print(
        f"    {simkit['rate']:>9,.0f} calls/s  ({simkit['calls']:,} calls)  server CPU {simkit['cpu_us']:.0f} µs/call"
    )
    print("  bare aiohttp handler, fixed JSON body")
    print(
        f"    {bare['rate']:>9,.0f} calls/s  ({bare['calls']:,} calls)  server CPU {bare['cpu_us']:.0f} µs/call"
    )
    print(f"  ratio simkit / bare: {simkit['rate'] / bare['rate']:.2f} (target >= 0.5)")
    print(f"  server CPU per call, bare / simkit: {bare['cpu_us'] / simkit['cpu_us']:.2f}")

    mem = _memory(args.users)
    print(f"\nmemory, {args.users:,} users:")
    print(f"  simkit serve <tiny.toml with users = {args.users}> --port 0")
    print(
        f"    RSS once listening {mem['rss_mb']:,.0f} MB, peak {mem['peak_mb']:,.0f} MB, up in {mem['start_s']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
