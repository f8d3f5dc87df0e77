"""One asyncio Redis client per event loop, or None in embedded mode (no REDIS_URL)."""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings

_clients: dict[int, Any] = {}


def redis() -> Any | None:
    if not settings.REDIS_URL:
        return None
    loop = asyncio.get_running_loop()
    client = _clients.get(id(loop))
    if client is None:
        import redis.asyncio as aioredis

        client = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
        _clients[id(loop)] = client
    return client


async def close() -> None:
    client = _clients.pop(id(asyncio.get_running_loop()), None)
    if client is not None:
        await client.aclose()
