"""`GET /v1/generations/{id}` (and OpenRouter's own `GET /v1/generation?id=`): the
metadata and cost of one of the caller's requests, read from the request log.

Only the key that made a request can read it, by TokenHub's id (`req_...`, the
X-Request-Id of its answer) or by the X-Request-Id the client sent itself. Settlement
is batched, so a row appears a few milliseconds after its answer: the not-found message
says so. Not on the hot path (one indexed read per call, off the event loop).
"""

from __future__ import annotations

import re
from typing import Any

from relay.asgi_io import Send, send_json
from relay.catalog import KeyInfo
from relay.db import in_db_thread
from relay.errors import RelayError, bad_request
from relay.formats import cost

# What relay/call.py accepts as a client's X-Request-Id, and so also TokenHub's own ids:
# anything else names no request, and is answered without a query.
_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
_OURS = re.compile(r"req_[0-9a-f]{32}")
_COLUMNS = (
    "request_id",
    "created_at",
    "model",
    "endpoint",
    "stream",
    "status_code",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost",
    "plan_cost",
    "subscription_id",
    "latency_ms",
    "usage_estimated",
)


def _generation_row(*, api_key_id: int, organization_id: int, ident: str) -> dict[str, Any] | None:
    """The log row of IDENT made with the key API_KEY_ID: TokenHub's id first, else the
    client's own (the newest, should the client have reused it)."""
    from logs.models import RequestLog

    own = RequestLog.objects.filter(organization_id=organization_id, api_key_id=api_key_id)
    if _OURS.fullmatch(ident):
        row: dict[str, Any] | None = own.filter(request_id=ident).values(*_COLUMNS).first()
        if row is not None:
            return row
    found: dict[str, Any] | None = (
        own.filter(client_request_id=ident).order_by("-created_at", "-id").values(*_COLUMNS).first()
    )
    return found


_find = in_db_thread(_generation_row)


def _not_found() -> RelayError:
    return RelayError(
        404,
        "No request with this id was made with this API key. A request is recorded a few "
        "milliseconds after its answer: if it has just finished, retry shortly.",
        code="generation_not_found",
        param="id",
    )


def generation_body(row: dict[str, Any]) -> dict[str, Any]:
    """The answer's shape, after OpenRouter's generation endpoint."""
    return {
        "data": {
            "id": row["request_id"],
            "model": row["model"],
            "created_at": row["created_at"].isoformat(),
            "endpoint": row["endpoint"],
            "stream": row["stream"],
            "status_code": row["status_code"],
            "tokens_prompt": row["prompt_tokens"],
            "tokens_completion": row["completion_tokens"],
            "cache_read_tokens": row["cache_read_tokens"],
            "cache_write_tokens": row["cache_write_tokens"],
            "reasoning_tokens": row["reasoning_tokens"],
            # What the request was billed: to the balance, or drawn from the plan.
            "total_cost": cost.usd(row["cost"] + row["plan_cost"]),
            "billed_to": "plan" if row["subscription_id"] is not None else "balance",
            "latency_ms": row["latency_ms"],
            "usage_estimated": row["usage_estimated"],
        }
    }


async def generation_answer(
    key: KeyInfo, ident: str | None, send: Send, headers: dict[str, str]
) -> None:
    """Answer with the request IDENT made with KEY, else 404 `generation_not_found`."""
    if not ident:
        raise bad_request("Name the request: /v1/generation?id=<X-Request-Id>.", param="id")
    row = None
    if len(ident) <= 64 and _ID.fullmatch(ident):
        row = await _find(api_key_id=key.id, organization_id=key.organization_id, ident=ident)
    if row is None:
        raise _not_found()
    await send_json(send, 200, generation_body(row), headers)
