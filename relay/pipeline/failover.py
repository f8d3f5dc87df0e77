"""Step 7: try channels in order, never the same one twice — for every relayed endpoint.

An exchange with one channel either returns, raises `UpstreamFailure` (counted as an
attempt: logged, metered, the channel cooled down or disabled; a retryable failure moves
on to the next channel), or raises `Unusable` before calling the upstream when the
channel's protocol cannot express the request (not the channel's fault: not counted).
When no channel served, the caller gets one `RelayError`, which the request frame
(relay/pipeline/frame.py) renders in the caller's format.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import orjson
from django.conf import settings

from relay.catalog import ChannelInfo, catalog
from relay.cooldown import cooldowns
from relay.db import in_db_thread
from relay.errors import RelayError, no_channel
from relay.metrics import collector
from relay.pipeline.call import Call
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


class UpstreamError(RelayError):
    """The upstream's own error, status and body, after every channel failed: passed
    through to a caller of the same protocol, its message only to any other."""

    def __init__(self, failure: UpstreamFailure) -> None:
        super().__init__(
            failure.status, failure.reason, type="upstream_error", code="upstream_error"
        )
        self.body = failure.body
        self.content_type = failure.content_type
        self.protocol = failure.protocol

    def translated(self) -> RelayError:
        """The error for a caller of another protocol: the upstream's status and message."""
        message = upstream_message(self.body) or f"The upstream answered {self.status}."
        return RelayError(self.status, message, type="upstream_error", code="upstream_error")


async def first_success(
    call: Call, route: list[ChannelInfo], exchange: Callable[[ChannelInfo], Awaitable[T]]
) -> tuple[ChannelInfo, T]:
    """Run EXCHANGE on ROUTE's channels in order until one succeeds, at most
    RELAY_MAX_ATTEMPTS of them; stop at a failure that is not retryable. When none
    served, raises what the caller hears: the last failure (`exhausted`), else why no
    channel could take the request, else that none is available."""
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
        call.ttfb_ms = call.elapsed_ms()  # a stream's first chunk moves it later
        return channel, result
    if last is not None:
        raise exhausted(call.model, last)
    raise unusable or no_channel(call.model)


def exhausted(model: str, failure: UpstreamFailure) -> RelayError:
    """What the caller hears when FAILURE was the last attempt at MODEL."""
    if failure.disable:
        return no_channel(model)
    if failure.status == 504:
        return RelayError(
            504, "The upstream did not answer in time.", type="timeout", code="upstream_timeout"
        )
    if not failure.body:
        return RelayError(
            502, "The upstream could not serve the request.", type="upstream_error",
            code="upstream_error",
        )  # fmt: skip
    return UpstreamError(failure)


def upstream_message(body: bytes) -> str:
    """The message inside any provider's error envelope ({"error": {"message": ...}})."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message[:500] if isinstance(message, str) else ""
