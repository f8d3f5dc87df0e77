"""Media calls to upstreams: the Target a media client builds, sent and read, failing
with the `UpstreamFailure` that relay/pipeline/failover.py fails over on, as chat does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
from django.conf import settings

from relay import http1
from relay.pipeline.forward import UpstreamFailure, failure_from_response, send


@dataclass(frozen=True)
class Target:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""


async def open_response(target: Target) -> http1.Response:
    """Send TARGET; returns the response once its headers arrived (status < 400)."""
    response = await send(target.url, target.headers, target.body or None, target.method)
    if response.status >= 400:
        raise await failure_from_response(response)
    return response


async def fetch_json(target: Target) -> dict[str, object]:
    """The upstream's JSON object answer to TARGET."""
    response = await open_response(target)
    try:
        async with asyncio.timeout(settings.RELAY_IDLE_TIMEOUT):
            body = await response.read()
    except (TimeoutError, http1.ClientError):
        raise UpstreamFailure("upstream connection failed mid-response", retryable=True) from None
    finally:
        response.release()
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamFailure("upstream answer is not a JSON object", retryable=False, status=502)
    return parsed
