"""Media calls to upstreams: one exchange per channel, failing over like the chat relay.

A retryable failure (429, 5xx, unreachable, 401/403 which also disables the channel)
moves on to the next channel; anything else stops with the upstream's own message.
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
from relay.catalog import ChannelInfo, catalog
from relay.cooldown import cooldowns
from relay.db import in_db_thread
from relay.errors import RelayError, no_channel
from relay.formats.videos import Target
from relay.pipeline.forward import UpstreamFailure, failure_from_response, send
from relay.services import channel_auto_disable

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


def _message(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message[:500] if isinstance(message, str) else ""


def failure_error(failure: UpstreamFailure | None, model: str) -> RelayError:
    """What the client hears when every channel failed."""
    if failure is None or failure.disable:
        return no_channel(model)
    if failure.status == 504:
        return RelayError(
            504, "The upstream did not answer in time.", type="timeout", code="upstream_timeout"
        )
    message = _message(failure.body) if failure.body else ""
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
    """Run EXCHANGE on channels in order until one succeeds; never the same one twice."""
    last: UpstreamFailure | None = None
    for channel in route[: max(1, settings.RELAY_MAX_ATTEMPTS)]:
        call.attempts += 1
        call.channel_id = channel.id
        call.upstream_model = channel.upstream_model(call.model)
        try:
            result = await exchange(channel)
        except UpstreamFailure as failure:
            last = failure
            log.warning(
                "channel %s failed for request %s: %s", channel.id, call.request_id, failure.reason
            )
            if failure.disable:
                await in_db_thread(channel_auto_disable)(
                    channel_id=channel.id, reason=failure.reason
                )
                catalog.clear()
            elif failure.retryable:
                await cooldowns.failure(channel.id)
            if not failure.retryable:
                break
            continue
        cooldowns.success(channel.id)
        return channel, result
    raise failure_error(last, call.model)
