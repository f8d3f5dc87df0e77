"""Upstream client cost: aiohttp against relay/http1, side by side in one run.

    make bench-client          (or: python benchmarks/upstream_client.py --rounds 5)

The fake upstream runs pinned to one CPU (started and stopped as `make bench` does); this
process, pinned to the other, sends sequential requests to it (one connection, kept
alive) with each client in turn, round after round, and prints each client's median
latency and CPU time per request: for a non-streaming chat answer and for a whole stream.
The CPU figure is this process's only, so it is what the relay's worker spends per
upstream call, with nothing else in it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import uvloop  # noqa: E402

from benchmarks.relay_overhead import PYTHON, Processes, _wait_http  # noqa: E402
from relay import http1  # noqa: E402
from tests.plugins import servers  # noqa: E402

HEADERS = {
    "authorization": "Bearer sk-bench",
    "content-type": "application/json",
    "accept-encoding": "identity",
}
CHAT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":16}'
STREAM = CHAT[:-1] + b',"stream":true}'

Fetch = Callable[[bytes], Awaitable[bytes]]


async def _measure(fetch: Fetch, body: bytes, n: int) -> tuple[float, float]:
    """Median latency (µs) and CPU µs per request over N sequential requests."""
    latencies = []
    cpu = time.process_time()
    for _ in range(n):
        start = time.perf_counter()
        await fetch(body)
        latencies.append(time.perf_counter() - start)
    return statistics.median(latencies) * 1e6, (time.process_time() - cpu) / n * 1e6


async def _run(url: str, rounds: int, n: int) -> None:
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1000),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        trust_env=False,
    )

    async def with_aiohttp(body: bytes) -> bytes:
        response = await session.request(
            "POST", url, data=body, headers=HEADERS, allow_redirects=False
        )
        out = b"".join([chunk async for chunk in response.content.iter_any()])
        response.release()
        return out

    async def with_http1(body: bytes) -> bytes:
        response = await http1.request(
            "POST", url, HEADERS, body, connect_timeout=5, read_timeout=30
        )
        return b"".join([chunk async for chunk in response])

    clients: dict[str, Fetch] = {"aiohttp": with_aiohttp, "relay/http1": with_http1}
    for name, fetch in clients.items():  # warm up (connections, caches), and check
        if not (await fetch(STREAM)).rstrip().endswith(b"data: [DONE]"):
            raise SystemExit(f"{name}: the stream did not end with [DONE]")
        for body in (CHAT, STREAM):
            await _measure(fetch, body, n // 10)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for kind, body in (("chat", CHAT), ("stream", STREAM)):
            for name, fetch in clients.items():
                results.setdefault((kind, name), []).append(await _measure(fetch, body, n))
    await session.close()
    http1.close_pool()

    print(f"Upstream client cost, {rounds} rounds of {n:,} sequential requests each (µs)")
    print(f"  {'request':<8}{'client':<14}{'latency p50':>12}{'CPU/request':>13}   rounds (CPU)")
    for (kind, name), rows in results.items():
        latency = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        each = " / ".join(f"{r[1]:.0f}" for r in rows)
        print(f"  {kind:<8}{name:<14}{latency:>12.0f}{cpu:>13.0f}   {each}")
    for kind in ("chat", "stream"):
        old = statistics.median(r[1] for r in results[(kind, "aiohttp")])
        new = statistics.median(r[1] for r in results[(kind, "relay/http1")])
        print(f"  {kind}: relay/http1 spends {old - new:.0f} µs less CPU a call ({old / new:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3_000, help="per client per round")
    args = parser.parse_args()
    port = servers._free_ports(1)[0]
    cpus = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="tokenhub-bench-client-") as logs:
        procs = Processes(Path(logs))
        try:
            fake = procs.start(
                "fake-upstream",
                [PYTHON, "-m", "tests.fakes.upstream", "--host", "127.0.0.1", "--port", str(port)],
                env=dict(os.environ),
                cpus={cpus[-1]} if len(cpus) > 1 else None,
            )
            if len(cpus) > 1:
                os.sched_setaffinity(0, {cpus[0]})
            _wait_http(f"http://127.0.0.1:{port}/v1/models", {}, fake)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            uvloop.run(_run(url, args.rounds, args.requests))
        finally:
            procs.stop_all()


if __name__ == "__main__":
    main()
