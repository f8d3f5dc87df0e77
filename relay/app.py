"""The relay's ASGI application: the OpenAI-compatible /v1 surface."""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone

from relay.asgi_io import Receive, Request, Scope, Send, send_json
from relay.call import Call
from relay.catalog import KeyInfo, catalog
from relay.db import in_db_thread
from relay.errors import RelayError, model_not_found
from relay.formats import openai
from relay.openai_proxy import proxy
from relay.pipeline.authenticate import authenticate
from relay.pipeline.authorize import authorize, client_ip, model_allowed

_POST_PATHS = {
    "/v1/chat/completions": "/chat/completions",
    "/v1/completions": "/completions",
    "/v1/embeddings": "/embeddings",
}


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


def _billing_figures(key_id: int) -> tuple[int, int, int | None]:
    """(available credit, key spend, key limit) in micro-USD."""
    from accounts.models import ApiKey

    key = ApiKey.objects.select_related("organization__wallet").get(pk=key_id)
    wallet = key.organization.wallet
    return wallet.balance - wallet.held, key.spent, key.spend_limit


def _usd(micros: int) -> float:
    # OpenAI's billing endpoints answer in JSON numbers; converted only at this edge.
    return float(Decimal(micros) / 1_000_000)


async def _billing(request: Request, send: Send, kind: str, headers: dict[str, str]) -> None:
    key = await _authorized(request)
    available, spent, limit = await in_db_thread(_billing_figures)(key.id)
    if kind == "usage":
        await send_json(send, 200, {"object": "list", "total_usage": _usd(spent) * 100}, headers)
        return
    # Clients show hard_limit_usd - total_usage as what is left.
    hard = _usd(limit) if limit is not None else _usd(max(0, available) + spent)
    expires = int(key.expires_at.timestamp()) if key.expires_at else 0
    await send_json(
        send,
        200,
        {
            "object": "billing_subscription",
            "has_payment_method": True,
            "soft_limit_usd": hard,
            "hard_limit_usd": hard,
            "system_hard_limit_usd": hard,
            "access_until": expires,
        },
        headers,
    )


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope)
    method, path = request.method, request.path.rstrip("/") or "/"
    if method == "POST" and path in _POST_PATHS:
        await proxy(request, receive, send, path=_POST_PATHS[path])
        return
    call = Call.start(request, endpoint=path)
    headers = {"x-request-id": call.public_id}
    try:
        if method == "GET" and path == "/v1/models":
            key = await _authorized(request)
            models = await _visible_models(key)
            data = [_model_object(m, o) for m, o in sorted(models.items())]
            await send_json(send, 200, {"object": "list", "data": data}, headers)
        elif method == "GET" and path.startswith("/v1/models/"):
            key = await _authorized(request)
            model = path[len("/v1/models/") :]
            models = await _visible_models(key)
            if model not in models:
                raise model_not_found(model)
            await send_json(send, 200, _model_object(model, models[model]), headers)
        elif method == "GET" and path.endswith("/dashboard/billing/subscription"):
            await _billing(request, send, "subscription", headers)
        elif method == "GET" and path.endswith("/dashboard/billing/usage"):
            await _billing(request, send, "usage", headers)
        else:
            raise RelayError(
                404, f"Unknown request URL: {method} {path[:200]}.", code="unknown_url"
            )
    except RelayError as err:
        await send_json(send, err.status, openai.error_body(err), {**headers, **err.headers})
