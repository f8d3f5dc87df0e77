"""The relay's ASGI application: OpenAI, Anthropic, Gemini and Responses surfaces."""

from __future__ import annotations

from django.utils import timezone

from relay.asgi_io import Receive, Request, Scope, Send, read_body, send_json
from relay.catalog import KeyInfo, catalog
from relay.dashboard_billing import billing_answer
from relay.errors import RelayError, bad_request, model_not_found
from relay.formats import openai
from relay.generations import generation_answer
from relay.media import endpoints as media
from relay.pipeline.authenticate import authenticate
from relay.pipeline.authorize import authorize, authorize_model, client_ip, model_allowed
from relay.pipeline.call import Call
from relay.protocols import ANTHROPIC, GEMINI, OPENAI, RESPONSES, WireProtocol
from relay.proxy import Inbound, proxy
from relay.token_count import count_tokens

_TEXTS = (str, list)
_INBOUND = {
    "/v1/chat/completions": Inbound(OPENAI, "chat/completions", "/chat/completions"),
    "/v1/completions": Inbound(OPENAI, "completions", "/completions", content=("prompt", _TEXTS)),
    "/v1/embeddings": Inbound(OPENAI, "embeddings", "/embeddings", content=("input", _TEXTS)),
    "/v1/messages": Inbound(ANTHROPIC, "messages"),
    "/v1/responses": Inbound(RESPONSES, "responses", content=("input", _TEXTS)),
}
_GEMINI_ACTIONS = {
    "generateContent": Inbound(GEMINI, "generateContent", content=("contents", (list,))),
    "streamGenerateContent": Inbound(
        GEMINI, "streamGenerateContent", content=("contents", (list,))
    ),
    "embedContent": Inbound(
        GEMINI, "embedContent", gemini_embed="embedContent", content=("content", (dict,))
    ),
    "batchEmbedContents": Inbound(
        GEMINI,
        "batchEmbedContents",
        gemini_embed="batchEmbedContents",
        content=("requests", (list,)),
    ),
}
_GEMINI_PREFIXES = ("/v1beta/models/", "/v1/models/")


async def _visible_models(key: KeyInfo) -> dict[str, str]:
    """Model → owner for every model this key may call and some channel serves."""
    models: dict[str, str] = {}
    for channel in await catalog.channels():
        if channel.groups and key.group not in channel.groups:
            continue
        for model in channel.models:
            if model_allowed(key, model):
                models.setdefault(model, channel.type)
    return models


def _model_object(model: str, owner: str) -> dict[str, object]:
    return {"id": model, "object": "model", "created": 0, "owned_by": owner}


async def _authorized(request: Request) -> KeyInfo:
    key = await authenticate(request)
    authorize(key, client_ip(request), timezone.now())
    return key


def _gemini_call(path: str) -> tuple[str, str] | None:
    """(model, action) of /v1beta/models/{model}:{action} (or /v1/models/...)."""
    for prefix in _GEMINI_PREFIXES:
        if path.startswith(prefix) and ":" in path:
            model, _, action = path[len(prefix) :].rpartition(":")
            return (model, action) if model else None
    return None


def _protocol_of(request: Request, path: str) -> WireProtocol:
    """The caller's protocol, for model lists and errors outside a relayed call."""
    if path == "/v1/messages/count_tokens":  # only Anthropic's SDK calls it
        return ANTHROPIC
    if path == "/v1beta" or path.startswith("/v1beta/"):
        return GEMINI
    if "x-goog-api-key" in request.headers:
        return GEMINI
    if "anthropic-version" in request.headers:
        return ANTHROPIC
    return OPENAI


def _gemini_model(model: str) -> dict[str, object]:
    methods = ["generateContent", "streamGenerateContent", "countTokens"]
    return {"name": f"models/{model}", "displayName": model, "supportedGenerationMethods": methods}


def _models_body(protocol: WireProtocol, models: dict[str, str]) -> dict[str, object]:
    names = sorted(models)
    if protocol is ANTHROPIC:
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "1970-01-01T00:00:00Z"}
            for m in names
        ]
        return {
            "data": data,
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }
    if protocol is GEMINI:
        return {"models": [_gemini_model(m) for m in names]}
    return {"object": "list", "data": [_model_object(m, models[m]) for m in names]}


async def _count_tokens(
    request: Request, receive: Receive, send: Send, model: str | None, protocol: WireProtocol,
    headers: dict[str, str],
) -> None:  # fmt: skip
    """The upstream's count where it speaks PROTOCOL, else an estimate (relay/token_count)."""
    key = await _authorized(request)
    raw = await read_body(receive, 32 * 1024 * 1024)
    payload = openai.parse_body(raw)
    model = model or openai.requested_model(payload)
    authorize_model(key, model)
    count = await count_tokens(
        key=key, model=model, protocol=protocol, payload=payload, raw=raw, headers=request.headers
    )
    body = {"totalTokens": count} if protocol is GEMINI else {"input_tokens": count}
    await send_json(send, 200, body, headers)


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope)
    method, path = request.method, request.path.rstrip("/") or "/"
    if "\x00" in path or b"%00" in request.query_string:
        # No model, id or cursor has one, and no database column could store it.
        err = bad_request("NUL characters are not allowed in the URL.")
        await send_json(send, 400, _protocol_of(request, path).error_body(err), {})
        return
    if method == "POST":
        inbound = _INBOUND.get(path)
        if inbound is not None:
            await proxy(request, receive, send, inbound=inbound)
            return
        gemini_call = _gemini_call(path)
        if gemini_call is not None and gemini_call[1] in _GEMINI_ACTIONS:
            model, action = gemini_call
            await proxy(
                request,
                receive,
                send,
                inbound=_GEMINI_ACTIONS[action],
                path_model=model,
                path_stream=action == "streamGenerateContent",
            )
            return
    # --- media: images and video tasks (relay/media), after the chat hot path ---
    if media.handles(path):
        await media.application(request, receive, send, path)
        return
    protocol = _protocol_of(request, path)
    call = Call.start(request, endpoint=path)
    headers = {"x-request-id": call.public_id}
    try:
        gemini_call = _gemini_call(path)
        if method == "POST" and path == "/v1/messages/count_tokens":
            await _count_tokens(request, receive, send, None, ANTHROPIC, headers)
        elif method == "POST" and gemini_call is not None and gemini_call[1] == "countTokens":
            await _count_tokens(request, receive, send, gemini_call[0], GEMINI, headers)
        elif method == "GET" and path in ("/v1/models", "/v1beta/models"):
            key = await _authorized(request)
            models = await _visible_models(key)
            await send_json(send, 200, _models_body(protocol, models), headers)
        elif method == "GET" and path.startswith(_GEMINI_PREFIXES) and protocol is GEMINI:
            key = await _authorized(request)
            model = path.split("/models/", 1)[1]
            if model not in await _visible_models(key):
                raise model_not_found(model)
            await send_json(send, 200, _gemini_model(model), headers)
        elif method == "GET" and path.startswith("/v1/models/"):
            key = await _authorized(request)
            model = path[len("/v1/models/") :]
            models = await _visible_models(key)
            if model not in models:
                raise model_not_found(model)
            await send_json(send, 200, _model_object(model, models[model]), headers)
        elif method == "GET" and path.endswith("/dashboard/billing/subscription"):
            await billing_answer(await _authorized(request), send, "subscription", headers)
        elif method == "GET" and path.endswith("/dashboard/billing/usage"):
            await billing_answer(await _authorized(request), send, "usage", headers)
        elif method == "GET" and path.startswith("/v1/generations/"):
            generation = path[len("/v1/generations/") :]
            await generation_answer(await _authorized(request), generation, send, headers)
        elif method == "GET" and path == "/v1/generation":  # OpenRouter's own path
            asked = request.query.get("id")
            await generation_answer(await _authorized(request), asked, send, headers)
        else:
            raise RelayError(
                404, f"Unknown request URL: {method} {path[:200]}.", code="unknown_url"
            )
    except RelayError as err:
        await send_json(send, err.status, protocol.error_body(err), {**headers, **err.headers})
