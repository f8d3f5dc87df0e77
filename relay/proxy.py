"""Relayed calls, strung together top to bottom, whatever protocol the client speaks.

authenticate → authorize → reserve → route → forward → meter → settle

OpenAI-format calls to OpenAI-format channels pass their body through (the fast path).
A client protocol that differs from the channel's is translated through relay/formats/ir.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings

from billing.journal import progress_snapshot
from billing.pricing import Usage, worst_case_micros
from relay import http1, response_store, tokens
from relay.affinity import affinity_key
from relay.asgi_io import (
    ClientDisconnected,
    Receive,
    Request,
    Send,
    end_stream,
    read_body,
    send_bytes,
    send_chunk,
    start_stream,
)
from relay.catalog import ChannelInfo, KeyInfo, catalog
from relay.channel_types import (
    CHAT_TYPES,
    GEMINI_EMBED_TYPES,
    OPENAI_TYPES,
    chat_target,
    openai_target,
    protocol_of,
)
from relay.errors import SHUTDOWN, RelayError, bad_request, stack_of
from relay.formats import anthropic, cost, fields, gemini, ir, openai, responses
from relay.pipeline import failover, frame
from relay.pipeline.authenticate import authenticate, extract_secret
from relay.pipeline.authorize import (
    authorize,
    authorize_model,
    check_rate_limits,
    tpm_keys,
)
from relay.pipeline.call import Call
from relay.pipeline.forward import (
    UpstreamFailure,
    failure_from_response,
    send,
)
from relay.pipeline.journal import StreamJournal
from relay.pipeline.reserve import reserve
from relay.pipeline.route import candidates, routable_price
from relay.pipeline.settle import (
    Bill,
    call_bill,
    log_row,
    opening_progress,
    settle_call,
)
from relay.protocols import GEMINI, OPENAI, RESPONSES, WireProtocol
from relay.ratelimit import limiter
from relay.stream_adapters import (
    OpenAIPassThrough,
    PassThrough,
    Stamping,
    StreamAdapter,
    Translating,
)

# The steps the request frame (relay/pipeline/frame.py) and this module run, importable
# from here for tools that look them up by the chat relay's name (benchmarks/).
__all__ = ["Inbound", "authenticate", "authorize", "proxy", "reserve", "settle_call"]
log = logging.getLogger(__name__)
DROPPED_HEADER = "x-tokenhub-dropped-params"
_JSON_KINDS: dict[type, str] = {list: "array", str: "string", dict: "object"}
MAX_CHOICES = 128  # OpenAI's own limit on n
# Where each protocol's answer body keeps its usage. The OpenAI formats show the call's
# cost there (`usage.cost`); from the others an upstream's own cost is only removed.
_BODY_USAGE = {
    "openai": ("usage",),
    "responses": ("usage",),
    "anthropic": ("usage",),
    "gemini": ("usageMetadata",),
}
_BODY_COST = frozenset({"openai", "responses"})
# Same-protocol streams whose last usage event carries the cost, re-written on the way
# (Gemini's SDK drops the field, so Gemini streams carry none: docs/protocols.md).
_STREAM_COST = {"anthropic": anthropic.COST_CARRIER, "responses": responses.COST_CARRIER}


@dataclass(frozen=True)
class Inbound:
    """How the client called: its protocol and, for OpenAI, which endpoint."""

    protocol: WireProtocol
    endpoint: str  # for the logs: chat/completions, messages, responses, generateContent...
    openai_path: str | None = None  # /chat/completions, /completions, /embeddings
    gemini_embed: str | None = None  # embedContent or batchEmbedContents
    # The field that carries the content, and the JSON types it may have: checked before
    # anything is held, also for bodies that pass through untouched.
    content: tuple[str, tuple[type, ...]] = ("messages", (list,))

    def check_shape(self, payload: dict[str, Any]) -> None:
        name, types = self.content
        value = payload.get(name)
        if not isinstance(value, types) or not value:
            kinds = " or ".join(_JSON_KINDS[t] for t in types)
            raise bad_request(f"'{name}' must be a non-empty {kinds}.", param=name)

    @property
    def chat(self) -> bool:
        return self.openai_path in (None, "/chat/completions") and self.gemini_embed is None


@dataclass
class _Prepared:
    """One attempt's upstream request and how to read its answer."""

    url: str
    headers: dict[str, str]
    body: bytes
    mode: str  # "openai" (pass-through fast path), "same" (pass-through), "translate"
    protocol: WireProtocol  # the channel's
    strip_usage: bool = False
    dropped: tuple[str, ...] = ()  # advisory fields left out in translation


async def proxy(
    request: Request,
    receive: Receive,
    send_: Send,
    *,
    inbound: Inbound,
    path_model: str | None = None,
    path_stream: bool = False,
) -> None:
    """Relay one call in the request frame (relay/pipeline/frame.py), which settles it."""

    async def serve(call: Call, key: KeyInfo, headers: dict[str, str]) -> None:
        await _serve(call, key, request, receive, send_, headers, inbound, path_model, path_stream)

    await frame.run(
        request, send_, endpoint=inbound.endpoint, protocol=inbound.protocol, serve=serve,
        settle=_finish,
    )  # fmt: skip


async def _serve(
    call: Call,
    key: KeyInfo,
    request: Request,
    receive: Receive,
    send_: Send,
    headers: dict[str, str],
    inbound: Inbound,
    path_model: str | None,
    path_stream: bool,
) -> None:
    raw = await read_body(receive, settings.RELAY_MAX_BODY_MB * 1024 * 1024)
    payload = openai.parse_body(raw)
    model = call.model = path_model or openai.requested_model(payload)
    authorize_model(key, model)
    fast = inbound.protocol is OPENAI
    embed_texts: list[str] = []
    embed_dimensions: int | None = None
    # The IR depends on the target protocol (what it drops) and the channel's strictness.
    translations: dict[tuple[str, bool], tuple[ir.ChatRequest, tuple[str, ...]]] = {}
    max_out: int | None = 0
    if inbound.gemini_embed:
        stream = False
        try:
            embed_texts, embed_dimensions = gemini.embed_request(
                payload, batch=inbound.gemini_embed == "batchEmbedContents"
            )
        except ir.TranslationError as exc:
            raise bad_request(str(exc)) from None
    elif fast:
        stream = payload.get("stream") is True and inbound.openai_path != "/embeddings"
        max_out = openai.requested_max_output(payload)
    else:
        # The IR is built only when a channel needs a translation: a same-protocol call
        # passes through even with fields the IR cannot carry.
        stream = path_stream if path_model else payload.get("stream") is True
        if inbound.protocol is RESPONSES:
            if payload.get("conversation"):
                raise bad_request(
                    f"'conversation' is not supported: {responses.STATELESS}.",
                    param="conversation",
                )
            if payload.get("previous_response_id"):
                payload = await response_store.continue_conversation(
                    payload,
                    store=key.store_responses,
                    organization_id=key.organization_id,
                    secret=extract_secret(request) or "",
                )
                raw = orjson.dumps(payload)
        max_out = _requested_max_output(inbound.protocol, payload)
    call.stream = stream

    usable = CHAT_TYPES if inbound.chat else OPENAI_TYPES
    if inbound.gemini_embed:
        usable = GEMINI_EMBED_TYPES
    conversation = affinity_key(key_id=key.id, headers=request.headers, payload=payload, raw=raw)
    all_routes = await candidates(model, key.group, conversation)
    route = [c for c in all_routes if c.type in usable]
    price = call.price = routable_price(
        model, await catalog.price(model), routed=bool(route), known=bool(all_routes)
    )

    inbound.check_shape(payload)  # before anything is held, also for pass-through bodies
    hold_tokens = tokens.prompt_tokens(
        payload, bytes_per_token=tokens.HOLD_BYTES_PER_TOKEN
    ) + tokens.hold_overhead(payload)
    call.prompt_estimate = tokens.prompt_tokens(
        payload, bytes_per_token=tokens.ESTIMATE_BYTES_PER_TOKEN
    )
    if inbound.openai_path == "/embeddings" or inbound.gemini_embed:
        max_out = 0
    else:
        max_out = max_out or price.max_output_tokens or settings.RELAY_DEFAULT_MAX_OUTPUT_TOKENS
        if price.max_output_tokens:
            # The model cannot write more: a larger ask would only lock credit for nothing.
            max_out = min(max_out, price.max_output_tokens)
        max_out *= _requested_choices(inbound, payload)  # every choice may write it all
    call.tpm_estimate = hold_tokens
    await check_rate_limits(key, hold_tokens)
    amount = worst_case_micros(
        prompt_tokens=hold_tokens, max_output_tokens=max_out, price=price, multiplier=key.multiplier
    )
    await reserve(call, key=key, model=model, amount=amount, progress=opening_progress(call, key))

    def prepare(channel: ChannelInfo) -> _Prepared:
        upstream_model = channel.upstream_model(model)
        protocol = protocol_of(channel)
        if inbound.gemini_embed:
            return _prepare_embed(
                channel, protocol, upstream_model, inbound.gemini_embed, raw, embed_texts,
                embed_dimensions,
            )  # fmt: skip
        if fast and protocol is OPENAI:
            path = inbound.openai_path or "/chat/completions"
            body, strip = openai.upstream_body(raw, payload, upstream_model, stream)
            url, up_headers = openai_target(channel, path, upstream_model, conversation)
            return _Prepared(url, up_headers, body, "openai", protocol, strip)
        url, up_headers = chat_target(
            channel, upstream_model, stream, request.headers, conversation
        )
        if protocol is inbound.protocol:
            return _Prepared(url, up_headers, _same_body(protocol, payload, raw, upstream_model),
                             "same", protocol)  # fmt: skip
        target = (protocol.name, channel.strict_fields)
        if target not in translations:
            translations[target] = _to_ir(inbound.protocol, payload, model, stream, *target)
        request_ir, dropped = translations[target]
        try:
            translated = protocol.from_ir(request_ir, upstream_model)
        except ir.TranslationError as exc:
            raise bad_request(str(exc)) from None
        if stream and protocol is OPENAI:
            translated["stream"] = True
        body = orjson.dumps(translated)
        return _Prepared(url, up_headers, body, "translate", protocol, dropped=dropped)

    response, prepared = await _attempt(call, route, prepare)
    if prepared.dropped:
        call.dropped_params = headers[DROPPED_HEADER] = fields.header_value(prepared.dropped)
    # An organization that opted in keeps Responses answers for previous_response_id.
    keeper = None
    if key.store_responses and inbound.protocol is RESPONSES and payload.get("store") is not False:
        keeper = response_store.Keeper(
            payload=payload,
            organization_id=key.organization_id,
            api_key_id=key.id,
            secret=extract_secret(request) or "",
        )
    if stream:
        adapter = _adapter(prepared, inbound, payload, model, _quote(call, key))
        call.journal = StreamJournal(call.request_id, lambda: _snapshot(call, key, adapter))
        if key.show_cost and call.funding:
            headers[cost.BILLED_TO_HEADER] = call.funding  # the cost is in the stream's end
        await _pump_stream(call, response, adapter, receive, send_, headers, keeper)
    else:
        await _relay_body(call, response, prepared, inbound, model, payload, send_, headers, keeper)


def _prepare_embed(
    channel: ChannelInfo,
    protocol: WireProtocol,
    upstream_model: str,
    action: str,
    raw: bytes,
    texts: list[str],
    dimensions: int | None,
) -> _Prepared:
    """Gemini embeddings: passed through to Gemini, translated for OpenAI-format channels."""
    if protocol is GEMINI:
        url, headers = chat_target(channel, upstream_model, False, {})
        url = url.rsplit(":", 1)[0] + ":" + action
        return _Prepared(url, headers, raw, "gemini-embed", protocol)
    body: dict[str, Any] = {"model": upstream_model, "input": texts}
    if dimensions is not None:
        body["dimensions"] = dimensions
    url, headers = openai_target(channel, "/embeddings", upstream_model)
    return _Prepared(url, headers, orjson.dumps(body), "embed-translate", protocol)


_MAX_OUTPUT_FIELDS = {"anthropic": "max_tokens", "responses": "max_output_tokens"}


def _requested_max_output(protocol: WireProtocol, payload: dict[str, Any]) -> int | None:
    if protocol is GEMINI:
        config = payload.get("generationConfig")
        value = config.get("maxOutputTokens") if isinstance(config, dict) else None
        name = "generationConfig.maxOutputTokens"
    else:
        name = _MAX_OUTPUT_FIELDS.get(protocol.name, "max_tokens")
        value = payload.get(name)
    if value is None:
        return None
    return openai.positive_int(value, name)


def _requested_choices(inbound: Inbound, payload: dict[str, Any]) -> int:
    """How many answers the call asks for (OpenAI `n`, Gemini `candidateCount`)."""
    if inbound.protocol is OPENAI:
        value, name = payload.get("n"), "n"
    elif inbound.protocol is GEMINI:
        config = payload.get("generationConfig")
        value = config.get("candidateCount") if isinstance(config, dict) else None
        name = "generationConfig.candidateCount"
    else:
        return 1
    if value is None:
        return 1
    return openai.positive_int(value, name, most=MAX_CHOICES)


def _to_ir(
    protocol: WireProtocol,
    payload: dict[str, Any],
    model: str,
    stream: bool,
    target: str,
    strict: bool,
) -> tuple[ir.ChatRequest, tuple[str, ...]]:
    try:
        return protocol.request_ir(payload, model, stream, target=target, strict=strict)
    except ir.TranslationError as exc:
        raise bad_request(str(exc)) from None


def _same_body(protocol: WireProtocol, payload: dict[str, Any], raw: bytes, model: str) -> bytes:
    """A same-protocol body: untouched but for the model name (Gemini's is in the URL)."""
    if protocol.name == "gemini":
        return raw
    changed = dict(payload)
    changed["model"] = model
    if protocol.name == "responses":
        changed["store"] = False  # TokenHub is stateless; nothing stored upstream either
    return orjson.dumps(changed) if changed != payload else raw


def _quote(call: Call, key: KeyInfo) -> cost.Quote | None:
    """What a stream's last usage event says the call costs (None: the key hides costs):
    the bill settlement will charge, from the same state of the same stream."""
    if not key.show_cost:
        return None

    def quote(reported: Usage | None, output_bytes: int, complete: bool) -> int:
        return call_bill(
            call, reported=reported, output_bytes=output_bytes, complete=complete
        ).charge

    return quote


def _adapter(
    prepared: _Prepared,
    inbound: Inbound,
    payload: dict[str, Any],
    model: str,
    quote: cost.Quote | None,
) -> StreamAdapter:
    if prepared.mode == "openai":
        return OpenAIPassThrough(prepared.strip_usage, quote)
    if prepared.mode == "same":
        carrier = _STREAM_COST.get(prepared.protocol.name)
        if carrier is None:
            return PassThrough(prepared.protocol)
        return Stamping(prepared.protocol, carrier, quote)
    writer = inbound.protocol.writer(model, payload)
    return Translating(prepared.protocol.parser(), writer, quote)


async def _attempt(
    call: Call, route: list[ChannelInfo], prepare: Callable[[ChannelInfo], _Prepared]
) -> tuple[http1.Response, _Prepared]:
    """The first channel that answers. A channel whose protocol cannot express the request
    is skipped (not its fault); if no channel could take it, the caller gets that 400."""

    async def exchange(channel: ChannelInfo) -> tuple[http1.Response, _Prepared]:
        try:
            prepared = prepare(channel)
        except RelayError as exc:
            raise failover.Unusable(exc) from None
        try:
            response = await send(prepared.url, prepared.headers, prepared.body)
            if response.status >= 400:
                raise await failure_from_response(response)
        except UpstreamFailure as failure:
            failure.protocol = prepared.protocol  # its error body is in that protocol
            raise
        return response, prepared

    _, (response, prepared) = await failover.first_success(call, route, exchange)
    return response, prepared


async def _relay_body(
    call: Call,
    response: http1.Response,
    prepared: _Prepared,
    inbound: Inbound,
    model: str,
    payload: dict[str, Any],
    send_: Send,
    headers: dict[str, str],
    keeper: response_store.Keeper | None = None,
) -> None:
    try:
        body = await response.read()
    except (http1.ClientError, TimeoutError):
        raise RelayError(
            502,
            "The upstream connection failed mid-response.",
            type="upstream_error",
            code="upstream_error",
        ) from None
    finally:
        response.release()
    call.served = True
    content_type = response.headers.get("content-type", "application/json")
    # The answer as a JSON object, when TokenHub read or wrote it: where its cost goes.
    parsed: dict[str, Any] | None = None
    rewrite = False  # PARSED must be serialised: the body sent is not the upstream's
    if prepared.mode == "openai":
        call.reported_usage, call.output_bytes, parsed = openai.read_answer(body)
    elif prepared.mode == "gemini-embed":
        call.reported_usage = None  # Gemini reports no usage for embeddings: estimated
    elif prepared.mode == "embed-translate":
        call.reported_usage, _ = openai.meter_body(body)
        body = orjson.dumps(
            gemini.embed_response(
                _embedding_vectors(body), batch=inbound.gemini_embed == "batchEmbedContents"
            )
        )
        content_type = "application/json"
    else:
        try:
            upstream = orjson.loads(body)
            result = prepared.protocol.response_to_ir(upstream)
        except (orjson.JSONDecodeError, ir.TranslationError, AttributeError, TypeError):
            raise RelayError(
                502,
                "The upstream sent a response TokenHub could not read.",
                type="upstream_error",
                code="upstream_error",
            ) from None
        call.reported_usage = result.usage
        call.output_bytes = _parts_bytes(result.parts)
        if prepared.mode == "translate":
            parsed, rewrite = inbound.protocol.response_from_ir(result, model, payload), True
            content_type = "application/json"
        elif isinstance(upstream, dict):
            parsed = upstream
    # PARSED, if any, is in the client's protocol (passed through, or translated into it).
    if _show_cost(call, inbound.protocol, parsed, headers) or rewrite:
        body = orjson.dumps(parsed)
    call.response_started = True
    if keeper is not None and response.status == 200:
        await keeper.body(body)
    await send_bytes(send_, response.status, body, headers, content_type.encode("latin-1"))


def _embedding_vectors(body: bytes) -> list[list[float]]:
    """The vectors of an OpenAI embeddings response, in input order."""
    try:
        data = orjson.loads(body)["data"]
        return [item["embedding"] for item in sorted(data, key=lambda d: d["index"])]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise RelayError(
            502,
            "The upstream sent a response TokenHub could not read.",
            type="upstream_error",
            code="upstream_error",
        ) from None


def _parts_bytes(parts: list[ir.Part]) -> int:
    total = 0
    for part in parts:
        if isinstance(part, ir.TextPart | ir.ThinkingPart):
            total += len(part.text.encode())
        elif isinstance(part, ir.ToolCallPart):
            total += len(part.arguments.encode())
    return total


async def _pump_stream(
    call: Call,
    response: http1.Response,
    adapter: StreamAdapter,
    receive: Receive,
    send_: Send,
    headers: dict[str, str],
    keeper: response_store.Keeper | None = None,
) -> None:
    content_type = response.headers.get("content-type", "text/event-stream")
    if isinstance(adapter, Translating):  # the upstream's content type is another protocol's
        content_type = "text/event-stream"
    await start_stream(send_, response.status, headers, content_type.encode("latin-1"))
    call.response_started = True
    call.served = True
    journal = call.journal

    async def pump() -> None:
        first = True
        try:
            async for chunk in response:
                out = adapter.feed(chunk)
                if out:
                    if keeper is not None:
                        await keeper.chunk(out)
                    await send_chunk(send_, out)
                    if journal is not None:
                        journal.tick()
                    if first:
                        call.ttfb_ms, first = call.elapsed_ms(), False
            rest = adapter.finish()
            if rest:
                await send_chunk(send_, rest)
        except (http1.ClientError, TimeoutError):
            call.status, call.error_code = 502, "upstream_stream_error"
            err = RelayError(
                502,
                "The upstream stream was interrupted.",
                type="upstream_error",
                code="upstream_error",
            )
            await send_chunk(send_, adapter.interrupted(err))
        except ClientDisconnected:
            raise
        except Exception as exc:
            # A parser or writer that could not handle what the upstream sent: the stream
            # still ends, in the caller's format, and the failure is logged (no content).
            log.error("request %s stream failed: %s", call.request_id, stack_of(exc))
            call.status, call.error_code = 500, "internal_error"
            err = RelayError(500, "Internal error.", type="server_error", code="internal_error")
            await send_chunk(send_, adapter.interrupted(err))
        await end_stream(send_)

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    pump_task = asyncio.ensure_future(pump())
    watch_task = asyncio.ensure_future(watch())
    cut = True
    try:
        done, _ = await asyncio.wait({pump_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
        cut = pump_task not in done
        # A client that hangs up after its protocol's last event ([DONE], message_stop...)
        # had the whole answer, even if the upstream had not closed yet: not a 499.
        if cut and not adapter.complete:
            call.client_gone = True
            call.status, call.error_code = 499, "client_disconnected"
        pump_task.cancel()
        await asyncio.gather(pump_task, return_exceptions=True)
    except asyncio.CancelledError:
        # Server shutdown outlasted its drain: end the stream in the caller's format.
        pump_task.cancel()
        await asyncio.gather(pump_task, return_exceptions=True)
        if not adapter.complete:
            call.status, call.error_code = 503, SHUTDOWN.code or ""
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await send_chunk(send_, adapter.interrupted(SHUTDOWN))
                    await end_stream(send_)
        raise
    finally:
        watch_task.cancel()
        pump_task.cancel()
        if cut or call.status != 200:
            # A stream cut short drops the upstream connection: that is what tells the
            # upstream to stop generating.
            response.close()
        else:
            response.release()
        call.reported_usage = adapter.usage
        call.output_bytes = adapter.output_bytes
        call.answer_complete = adapter.complete


def _show_cost(
    call: Call, protocol: WireProtocol, parsed: dict[str, Any] | None, headers: dict[str, str]
) -> bool:
    """Add the cost headers of a whole answer, and write its cost into PARSED, the body
    in PROTOCOL, where that protocol shows it; a key that hides costs gets neither, and no
    upstream's own cost either. Whether PARSED changed."""
    key = call.key
    shown: int | None = None
    if key is not None and key.show_cost:
        bill = call_bill(
            call, reported=call.reported_usage, output_bytes=call.output_bytes,
            complete=call.answer_complete,
        )  # fmt: skip
        headers.update(_cost_headers(bill))
        if protocol.name in _BODY_COST:
            shown = bill.charge
    if parsed is None:
        return False
    return cost.stamp(parsed, _BODY_USAGE[protocol.name], shown)


def _cost_headers(bill: Bill) -> dict[str, str]:
    return cost.headers(charge=bill.charge, billed_to=bill.billed_to, balance=bill.balance)


def _snapshot(call: Call, key: KeyInfo, adapter: StreamAdapter) -> dict[str, Any]:
    """What the sweep charges if this process dies now: the stream so far, as if cut."""
    bill = call_bill(
        call, reported=adapter.usage, output_bytes=adapter.output_bytes, complete=False
    )
    return progress_snapshot(cost=bill.cost, record=log_row(call, key, bill))


async def _finish(call: Call) -> None:
    """Meter and settle. Runs for every authenticated request, whatever happened."""
    key = call.key
    if key is None:
        return
    bill = call_bill(
        call, reported=call.reported_usage, output_bytes=call.output_bytes,
        complete=call.answer_complete,
    )  # fmt: skip
    if call.tpm_estimate:
        for slot in tpm_keys(key):
            await limiter.adjust(slot, bill.usage.total_tokens - call.tpm_estimate)
    await settle_call(call, key, bill)
    if call.journal is not None:
        await call.journal.close()
