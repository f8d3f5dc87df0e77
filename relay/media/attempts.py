"""Media calls to upstreams: one exchange per channel, failing over like the chat relay
(relay/pipeline/failover.py): a retryable failure (429, 5xx, unreachable, 401/403 which
also disables the channel) moves on to the next channel; anything else stops with the
upstream's own message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import orjson
from django.conf import settings

from relay.call import Call
from relay.catalog import ChannelInfo
from relay.errors import RelayError, no_channel
from relay.formats.videos import Target
from relay.pipeline import failover
from relay.pipeline.failover import upstream_message
from relay.pipeline.forward import UpstreamFailure, failure_from_response, send

log = logging.getLogger(__name__)
T = TypeVar("T")


async def open_response(target: Target) -> aiohttp.ClientResponse:
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
    except (TimeoutError, aiohttp.ClientError):
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


def failure_error(failure: UpstreamFailure | None, model: str) -> RelayError:
    """What the client hears when every channel failed."""
    if failure is None or failure.disable:
        return no_channel(model)
    if failure.status == 504:
        return RelayError(
            504, "The upstream did not answer in time.", type="timeout", code="upstream_timeout"
        )
    message = upstream_message(failure.body) if failure.body else ""
    if not message:
        return RelayError(
            502, "The upstream could not serve the request.", type="upstream_error",
            code="upstream_error",
        )  # fmt: skip
    status = failure.status if 400 <= failure.status < 600 else 502
    return RelayError(status, message, type="upstream_error", code="upstream_error")


async def first_success(
    call: Call, route: list[ChannelInfo], exchange: Callable[[ChannelInfo], Awaitable[T]]
) -> tuple[ChannelInfo, T]:
    """The relay's failover (relay/pipeline/failover.py), failing in OpenAI's terms."""
    try:
        return await failover.first_success(call, route, exchange)
    except failover.Exhausted as exc:
        raise failure_error(exc.last, call.model) from None
