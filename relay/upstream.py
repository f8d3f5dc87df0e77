"""The aiohttp session (one per event loop) for upstream calls off the hot path: video
task polling. Chat, embeddings, images and video downloads go through relay/http1.

Measured on this class of machine (benchmarks/relay_overhead.py, py-spy): httpx's own
transport costs ~2 ms CPU a request; httpx over aiohttp's transport still spends ~22% of
the relay's CPU in httpx's request/response objects. No cookie jar: an upstream's
Set-Cookie must never follow another customer.
"""

from __future__ import annotations

import asyncio

import aiohttp
from django.conf import settings

from relay import http1

_sessions: dict[int, aiohttp.ClientSession] = {}


def session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    found = _sessions.get(id(loop))
    if found is None or found.closed:
        connector = aiohttp.TCPConnector(limit=1000, ttl_dns_cache=300, keepalive_timeout=30)
        found = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=settings.RELAY_CONNECT_TIMEOUT,
                sock_read=settings.RELAY_IDLE_TIMEOUT,
            ),
        )
        _sessions[id(loop)] = found
    return found


async def close() -> None:
    """Close this event loop's session and idle connections (server shutdown)."""
    http1.close_pool()
    found = _sessions.pop(id(asyncio.get_running_loop()), None)
    if found is not None:
        await found.close()
