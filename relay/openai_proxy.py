"""The OpenAI-format endpoints: the pipeline strung together, top to bottom.

authenticate → authorize → reserve → route → forward → meter → settle
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from django.conf import settings
from django.utils import timezone

from billing.holds import Settlement
from billing.pricing import Usage, cost_micros, worst_case_micros
from relay import tokens
from relay.asgi_io import (
    ClientDisconnected,
    Receive,
    Request,
    Send,
    end_stream,
    read_body,
    send_bytes,
    send_chunk,
    send_json,
    start_stream,
)
from relay.call import Call
from relay.catalog import ChannelInfo, catalog
from relay.cooldown import cooldowns
from relay.db import in_db_thread
from relay.errors import RelayError, model_not_found, no_channel
from relay.formats import openai
from relay.pipeline.authenticate import authenticate
from relay.pipeline.authorize import (
    authorize,
    authorize_model,
    check_rate_limits,
    client_ip,
    tpm_keys,
)
from relay.pipeline.forward import (
    OPENAI_TYPES,
    UpstreamFailure,
    failure_from_response,
    openai_target,
    send,
)
from relay.pipeline.meter import metered_usage
from relay.pipeline.reserve import reserve
from relay.pipeline.route import candidates
from relay.pipeline.settle import in_flight, settle
from relay.ratelimit import limiter

log = logging.getLogger(__name__)


def _channel_disable(channel_id: int, reason: str) -> None:
    from relay.models import Channel

    Channel.objects.filter(pk=channel_id, status=Channel.Status.ENABLED).update(
        status=Channel.Status.AUTO_DISABLED, disabled_reason=reason[:300]
    )


_disable = in_db_thread(_channel_disable)


async def proxy(request: Request, receive: Receive, send_: Send, *, path: str) -> None:
    """Relay one OpenAI-format call (PATH like '/chat/completions') and settle it."""
    call = Call.start(request, endpoint=path.lstrip("/"))
    call.client_ip = client_ip(request)
    headers = {"x-request-id": call.public_id}
    with in_flight():
        await _proxy(call, request, receive, send_, path, headers)


async def _proxy(
    call: Call, request: Request, receive: Receive, send_: Send, path: str, headers: dict[str, str]
) -> None:
    try:
        await _serve(call, request, receive, send_, path, headers)
    except _PassThrough as err:
        call.status, call.error_code = err.status, "upstream_error"
        ctype = err.content_type.encode("latin-1")
        await send_bytes(send_, err.status, err.body, headers, ctype)
    except RelayError as err:
        call.status, call.error_code = err.status, err.code or err.type
        if not call.response_started:
            await send_json(send_, err.status, openai.error_body(err), {**headers, **err.headers})
    except ClientDisconnected:
        call.status, call.error_code, call.client_gone = 499, "client_disconnected", True
    except Exception as exc:
        # Log the type only: exception messages can quote request content.
        log.error("request %s failed: %s", call.request_id, type(exc).__name__)
        call.status, call.error_code = 500, "internal_error"
        if not call.response_started:
            internal = RelayError(
                500, "Internal error.", type="server_error", code="internal_error"
            )
            await send_json(send_, 500, openai.error_body(internal), headers)
    finally:
        if call.key is not None:
            await _finish(call)


async def _serve(
    call: Call, request: Request, receive: Receive, send_: Send, path: str, headers: dict[str, str]
) -> None:
    # Headers first: an unauthenticated caller never gets us to read a large body.
    key = await authenticate(request)
    call.key = key
    authorize(key, call.client_ip, timezone.now())
    raw = await read_body(receive, settings.RELAY_MAX_BODY_MB * 1024 * 1024)
    payload = openai.parse_body(raw)
    model = call.model = openai.requested_model(payload)
    authorize_model(key, model)
    embeddings = path == "/embeddings"
    stream = call.stream = payload.get("stream") is True and not embeddings

    all_routes = await candidates(model, key.group)
    route = [c for c in all_routes if c.type in OPENAI_TYPES]
    price = call.price = await catalog.price(model)
    if not route:
        # A priced model is one the operator offers: its channels are just all down.
        raise no_channel(model) if price is not None or all_routes else model_not_found(model)
    if price is None:
        log.error("model %s has channels but no price; refusing to serve it unbilled", model)
        raise RelayError(
            503,
            f"The model '{model}' is not available yet (no price configured).",
            type="service_unavailable",
            code="model_not_priced",
        )

    hold_tokens = tokens.prompt_tokens(payload, bytes_per_token=tokens.HOLD_BYTES_PER_TOKEN)
    call.prompt_estimate = tokens.prompt_tokens(
        payload, bytes_per_token=tokens.ESTIMATE_BYTES_PER_TOKEN
    )
    max_out = (
        0
        if embeddings
        else (
            openai.requested_max_output(payload)
            or price.max_output_tokens
            or settings.RELAY_DEFAULT_MAX_OUTPUT_TOKENS
        )
    )
    call.tpm_estimate = hold_tokens
    await check_rate_limits(key, hold_tokens)
    amount = worst_case_micros(
        prompt_tokens=hold_tokens, max_output_tokens=max_out, price=price, multiplier=key.multiplier
    )
    await reserve(
        reference=call.request_id, wallet_id=key.wallet_id, api_key_id=key.id, amount=amount
    )
    call.held = True

    response, strip_usage = await _attempt(call, route, path, raw, payload, stream)
    if stream:
        await _pump_stream(call, response, strip_usage, receive, send_, headers)
    else:
        await _relay_body(call, response, send_, headers)


async def _attempt(
    call: Call,
    route: list[ChannelInfo],
    path: str,
    raw: bytes,
    payload: dict[str, object],
    stream: bool,
) -> tuple[aiohttp.ClientResponse, bool]:
    """Try channels in order; never the same one twice; stop on a non-retryable failure."""
    last: UpstreamFailure | None = None
    for channel in route[: max(1, settings.RELAY_MAX_ATTEMPTS)]:
        call.attempts += 1
        call.channel_id = channel.id
        upstream_model = call.upstream_model = channel.upstream_model(call.model)
        body, strip_usage = openai.upstream_body(raw, payload, upstream_model, stream)
        url, up_headers = openai_target(channel, path, upstream_model)
        try:
            response = await send(url, up_headers, body)
            if response.status >= 400:
                raise await failure_from_response(response)
        except UpstreamFailure as failure:
            last = failure
            log.warning(
                "channel %s failed for request %s: %s", channel.id, call.request_id, failure.reason
            )
            if failure.disable:
                await _disable(channel.id, failure.reason)
                catalog.clear()
            elif failure.retryable:
                await cooldowns.failure(channel.id)
            if not failure.retryable:
                break
            continue
        cooldowns.success(channel.id)
        call.ttfb_ms = call.elapsed_ms()
        return response, strip_usage
    if last is None:  # RELAY_MAX_ATTEMPTS and route are never empty; keep mypy honest
        raise no_channel(call.model)
    raise _exhausted(call, last)


def _exhausted(call: Call, failure: UpstreamFailure) -> RelayError:
    if failure.disable:
        return no_channel(call.model)
    if failure.status == 504:
        return RelayError(
            504, "The upstream did not answer in time.", type="timeout", code="upstream_timeout"
        )
    if not failure.body:
        return RelayError(
            502, "The upstream could not be reached.", type="upstream_error", code="upstream_error"
        )
    return _PassThrough(failure)


class _PassThrough(RelayError):
    """The upstream's own error, status and body, after every retry failed."""

    def __init__(self, failure: UpstreamFailure) -> None:
        super().__init__(
            failure.status, failure.reason, type="upstream_error", code="upstream_error"
        )
        self.body = failure.body
        self.content_type = failure.content_type


async def _relay_body(
    call: Call, response: aiohttp.ClientResponse, send_: Send, headers: dict[str, str]
) -> None:
    try:
        body = await response.read()
    except (aiohttp.ClientError, TimeoutError):
        raise RelayError(
            502,
            "The upstream connection failed mid-response.",
            type="upstream_error",
            code="upstream_error",
        ) from None
    finally:
        response.release()
    call.reported_usage, call.output_bytes = openai.meter_body(body)
    call.served = True
    content_type = response.headers.get("content-type", "application/json").encode("latin-1")
    call.response_started = True
    await send_bytes(send_, response.status, body, headers, content_type)


async def _pump_stream(
    call: Call,
    response: aiohttp.ClientResponse,
    strip_usage: bool,
    receive: Receive,
    send_: Send,
    headers: dict[str, str],
) -> None:
    meter = openai.StreamMeter(strip_usage_chunk=strip_usage)
    content_type = response.headers.get("content-type", "text/event-stream").encode("latin-1")
    await start_stream(send_, response.status, headers, content_type)
    call.response_started = True
    call.served = True

    async def pump() -> None:
        first = True
        try:
            async for chunk in response.content.iter_any():
                out = meter.feed(chunk)
                if out:
                    await send_chunk(send_, out)
                    if first:
                        call.ttfb_ms, first = call.elapsed_ms(), False
            rest = meter.flush()
            if rest:
                await send_chunk(send_, rest)
        except (aiohttp.ClientError, TimeoutError):
            call.status, call.error_code = 502, "upstream_stream_error"
            err = RelayError(
                502,
                "The upstream stream was interrupted.",
                type="upstream_error",
                code="upstream_error",
            )
            await send_chunk(send_, openai.stream_error_event(err))
        await end_stream(send_)

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    pump_task = asyncio.ensure_future(pump())
    watch_task = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({pump_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
        if pump_task not in done:
            call.client_gone = True
            call.status, call.error_code = 499, "client_disconnected"
            pump_task.cancel()
        await asyncio.gather(pump_task, return_exceptions=True)
    finally:
        watch_task.cancel()
        pump_task.cancel()
        if call.client_gone or call.status != 200:
            # A stream cut short drops the upstream connection: that is what tells the
            # upstream to stop generating.
            response.close()
        else:
            response.release()
        call.reported_usage = meter.usage
        call.output_bytes = meter.output_bytes


async def _finish(call: Call) -> None:
    """Meter and settle. Runs for every authenticated request, whatever happened."""
    key = call.key
    if key is None:
        return
    usage = Usage()
    cost = 0
    if call.served and call.price is not None:
        usage = metered_usage(
            call.reported_usage,
            prompt_estimate=call.prompt_estimate,
            output_bytes=call.output_bytes,
        )
        cost = cost_micros(usage, call.price, key.multiplier)
    if call.tpm_estimate:
        for slot in tpm_keys(key):
            await limiter.adjust(slot, usage.total_tokens - call.tpm_estimate)
    await settle(
        Settlement(
            reference=call.request_id,
            wallet_id=key.wallet_id,
            api_key_id=key.id,
            cost=cost,
            log={
                "created_at": timezone.now(),
                "client_request_id": call.client_request_id,
                "organization_id": key.organization_id,
                "api_key_id": key.id,
                "channel_id": call.channel_id,
                "endpoint": call.endpoint,
                "model": call.model[:200],
                "upstream_model": call.upstream_model[:200],
                "stream": call.stream,
                "status_code": call.status,
                "error_code": call.error_code[:64],
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "cache_read_tokens": usage.cache_read_tokens,
                "cache_write_tokens": usage.cache_write_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
                "usage_estimated": usage.estimated,
                "latency_ms": call.elapsed_ms(),
                "ttfb_ms": call.ttfb_ms,
                "attempts": max(1, call.attempts),
                "client_ip": call.client_ip,
                "user_agent": call.user_agent,
            },
        )
    )
