"""The shared upstream HTTP client: httpx's API over aiohttp's faster transport.

httpx's default transport costs ~2 ms CPU per request on this class of machine (see
docs/architecture.md); aiohttp underneath costs ~0.3 ms. One client per event loop.
"""

from __future__ import annotations

import asyncio

import httpx
from django.conf import settings
from httpx_aiohttp import AiohttpTransport

_clients: dict[int, httpx.AsyncClient] = {}


def client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    found = _clients.get(id(loop))
    if found is None:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        found = httpx.AsyncClient(
            transport=AiohttpTransport(limits=limits, trust_env=False),
            timeout=httpx.Timeout(
                connect=settings.RELAY_CONNECT_TIMEOUT,
                read=settings.RELAY_IDLE_TIMEOUT,
                write=settings.RELAY_IDLE_TIMEOUT,
                pool=settings.RELAY_CONNECT_TIMEOUT,
            ),
            follow_redirects=False,
            trust_env=False,
        )
        _clients[id(loop)] = found
    return found


async def close() -> None:
    """Close this event loop's client (server shutdown)."""
    found = _clients.pop(id(asyncio.get_running_loop()), None)
    if found is not None:
        await found.aclose()
