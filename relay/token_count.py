"""count_tokens / countTokens: the upstream's own count where a channel speaks the caller's
protocol (the model's real tokenizer), else an estimate from the body (relay/tokens.py).

Counting is free at the providers and moves no money, so it is neither held nor billed.
"""

from __future__ import annotations

from typing import Any

import orjson

from relay import http1, tokens
from relay.catalog import KeyInfo
from relay.channel_types import CHANNEL_TYPES
from relay.pipeline.forward import UpstreamFailure, send
from relay.pipeline.route import candidates
from relay.protocols import ANTHROPIC, WireProtocol

MAX_TRIES = 2


async def count_tokens(
    *, key: KeyInfo, model: str, protocol: WireProtocol, payload: dict[str, Any], raw: bytes,
    headers: dict[str, str],
) -> int:  # fmt: skip
    """The prompt's token count for MODEL, in PROTOCOL (Anthropic or Gemini)."""
    counters = [
        c
        for c in await candidates(model, key.group)
        if CHANNEL_TYPES[c.type].protocol is protocol and CHANNEL_TYPES[c.type].count_path
    ]
    for channel in counters[:MAX_TRIES]:
        kind = CHANNEL_TYPES[channel.type]
        upstream_model = channel.upstream_model(model)
        url, up_headers = kind.target(
            channel, upstream_model, kind.count_path or "", client_headers=headers
        )
        if protocol is ANTHROPIC:
            body, field = orjson.dumps({**payload, "model": upstream_model}), "input_tokens"
        else:
            body, field = raw, "totalTokens"
        count = await _ask(url, up_headers, body, field)
        if count is not None:
            return count
    return tokens.prompt_tokens(payload, bytes_per_token=tokens.ESTIMATE_BYTES_PER_TOKEN)


async def _ask(url: str, headers: dict[str, str], body: bytes, field: str) -> int | None:
    try:
        response = await send(url, headers, body)
    except UpstreamFailure:
        return None
    try:
        data = await response.read()
    except (http1.ClientError, TimeoutError):
        return None
    finally:
        response.release()
    if response.status != 200:
        return None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    value = parsed.get(field) if isinstance(parsed, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    return None
