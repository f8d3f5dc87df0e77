"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse


async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


async def _redis_ok() -> bool:
    import redis.asyncio as aioredis

    client = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
    try:
        return bool(await asyncio.wait_for(client.ping(), timeout=2))
    except Exception:
        return False
    finally:
        await client.aclose()


async def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, bool] = {"database": await sync_to_async(_database_ok)()}
    if settings.REDIS_URL:
        checks["redis"] = await _redis_ok()
    ready = all(checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
