"""Step 5: try channels in order, never the same one twice — for every relayed endpoint.

An exchange with one channel either returns, raises `UpstreamFailure` (counted as an
attempt: logged, metered, the channel cooled down or disabled; a retryable failure moves
on to the next channel), or raises `Unusable` before calling the upstream when the
channel's protocol cannot express the request (not the channel's fault: not counted).
When no channel served, `Exhausted` carries the last failure for the caller to render in
its own format.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import orjson
from django.conf import settings

from relay.call import Call
from relay.catalog import ChannelInfo, catalog
from relay.cooldown import cooldowns
from relay.db import in_db_thread
from relay.errors import RelayError
from relay.metrics import collector
from relay.pipeline.forward import UpstreamFailure
from relay.services import channel_auto_disable

log = logging.getLogger(__name__)
T = TypeVar("T")
_disable = in_db_thread(channel_auto_disable)


class Unusable(Exception):
    """This channel cannot take the request (e.g. its protocol cannot express it)."""

    def __init__(self, error: RelayError) -> None:
        super().__init__(error.message)
        self.error = error


class Exhausted(Exception):
    """No channel served: the last upstream failure, or why no channel could be used."""

    def __init__(self, last: UpstreamFailure | None, unusable: RelayError | None) -> None:
        super().__init__("no channel served the request")
        self.last = last
        self.unusable = unusable


async def first_success(
    call: Call, route: list[ChannelInfo], exchange: Callable[[ChannelInfo], Awaitable[T]]
) -> tuple[ChannelInfo, T]:
    """Run EXCHANGE on ROUTE's channels in order until one succeeds, at most
    RELAY_MAX_ATTEMPTS of them; stop at a failure that is not retryable."""
    last: UpstreamFailure | None = None
    unusable: RelayError | None = None
    attempts = 0
    for channel in route:
        if attempts >= max(1, settings.RELAY_MAX_ATTEMPTS):
            break
        before = call.channel_id, call.upstream_model, call.cost_price, call.cost_multiplier
        attempts += 1
        call.attempts += 1
        call.channel_id = channel.id
        call.upstream_model = channel.upstream_model(call.model)
        call.cost_price = channel.costs.get(call.upstream_model)
        call.cost_multiplier = channel.cost_multiplier
        try:
            result = await exchange(channel)
        except Unusable as exc:
            attempts -= 1
            call.attempts -= 1
            call.channel_id, call.upstream_model, call.cost_price, call.cost_multiplier = before
            unusable = unusable or exc.error
            continue
        except UpstreamFailure as failure:
            last = failure
            collector.upstream_error(channel.id, failure.status)
            log.warning(
                "channel %s failed for request %s: %s", channel.id, call.request_id, failure.reason
            )
            if failure.disable:
                await _disable(channel_id=channel.id, reason=failure.reason)
                catalog.clear()
            elif failure.retryable:
                await cooldowns.failure(channel.id)
            if not failure.retryable:
                break
            continue
        cooldowns.success(channel.id)
        return channel, result
    raise Exhausted(last, unusable)


def upstream_message(body: bytes) -> str:
    """The message inside any provider's error envelope ({"error": {"message": ...}})."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message[:500] if isinstance(message, str) else ""
