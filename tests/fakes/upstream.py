"""A fake LLM provider: a real HTTP server that answers in the providers' own wire formats.

The relay is tested (and benchmarked) against what OpenAI, Azure OpenAI, Anthropic and Gemini
actually send: the same JSON shapes, SSE framing, usage fields and error bodies. Replies, usage,
timing and failures are scripted per test, and per API key so one server can play several
channels. Every request is recorded for assertions.

    with FakeUpstream() as fake:
        fake.fail(500, key="sk-bad")
        ... point a channel at fake.url ...
        assert fake.requests[-1].json["model"] == "gpt-4o-mini"

Standalone (for the benchmark): ``python -m tests.fakes.upstream --port 9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import itertools
import signal
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Literal, Self

import orjson
from aiohttp import web

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_REPLY",
    "Failure",
    "FailureMode",
    "FakeUpstream",
    "RecordedRequest",
    "Scenario",
    "ToolCall",
    "Usage",
    "count_tokens",
]

DEFAULT_REPLY = "Hello! This is a deterministic reply from the fake upstream."
DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "text-embedding-3-small",
    "claude-sonnet-4-5",
    "gemini-2.5-flash",
)

Protocol = Literal["openai", "anthropic", "gemini"]
FailureMode = Literal[
    "status", "disconnect", "stall", "midstream", "stall_midstream", "error_midstream"
]


def count_tokens(text: str) -> int:
    """The fake's tokenizer: one token per four characters, rounded up."""
    return (len(text) + 3) // 4


@dataclass(frozen=True)
class Usage:
    """Token counts to report, in OpenAI's terms; each protocol maps them onto its own fields.

    ``prompt_tokens`` is the whole input *including* cached and cache-write tokens (as OpenAI
    and Gemini count it); Anthropic gets ``input_tokens = prompt - cached - cache_write``.
    ``completion_tokens`` includes ``reasoning_tokens`` (Gemini gets
    ``candidatesTokenCount = completion - reasoning`` plus ``thoughtsTokenCount``).
    """

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ToolCall:
    """A function call to answer with instead of text (ignored by legacy Completions)."""

    name: str = "get_weather"
    arguments: Mapping[str, Any] = field(default_factory=lambda: {"city": "Paris", "unit": "c"})
    id: str = "call_fake_0001"


@dataclass(frozen=True)
class Failure:
    """How a request should go wrong.

    mode:
      ``status``          reply ``status`` with the provider's error body (+ ``retry-after``).
      ``disconnect``      close the connection before sending any byte.
      ``stall``           send nothing until the client gives up (or the fake stops).
      ``midstream``       send the headers, preamble and ``after_chunks`` content chunks, then
                          cut the connection (non-stream: half the body, then cut).
      ``stall_midstream`` like ``midstream`` but then go silent instead of cutting.
      ``error_midstream`` like ``midstream`` but then send the provider's in-stream error event
                          and end the stream cleanly (non-stream requests get ``status``).
    times: fail the next ``times`` requests in this scope, then succeed; ``None`` means always.
    """

    status: int = 500
    mode: FailureMode = "status"
    times: int | None = None
    after_chunks: int = 1
    message: str | None = None
    error_type: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class Scenario:
    """What the fake answers. Immutable: change it through `FakeUpstream.configure`."""

    reply_text: str = DEFAULT_REPLY
    echo: bool = False  # reply with the last user message's text (canaries flow through)
    usage: Usage | None = None  # None: computed with count_tokens from the request and reply
    report_usage: bool = True  # False: omit usage everywhere, to exercise estimation
    latency: float = 0.0  # seconds before the first byte (errors included)
    chunk_delay: float = 0.0  # seconds between stream writes
    # Keep a finished stream's connection open (after [DONE] / message_stop...) until the
    # client leaves, like an upstream slow to close: the client has the whole answer.
    linger_after_end: bool = False
    stream_chunks: int = 4  # content chunks the reply (or tool arguments) is split into
    tool_call: ToolCall | None = None
    # With ``tool_call``: call the tool only in a conversation that offers a tool of that name
    # and carries no tool result yet, else answer ``reply_text``. An agent's turn then runs
    # tool call -> tool result -> text, and its side calls without that tool get text.
    tool_call_until_result: bool = False
    failure: Failure | None = None
    embedding_dimensions: int = 8  # unless the request asks for `dimensions`
    models: tuple[str, ...] = DEFAULT_MODELS


_SCENARIO_FIELDS = frozenset(f.name for f in dataclasses.fields(Scenario))


@dataclass
class RecordedRequest:
    """One request as the fake received it. ``headers`` names are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    key: str | None
    key_source: str | None  # x-api-key, api-key, x-goog-api-key, authorization or query
    protocol: Protocol
    endpoint: str
    model: str | None
    stream: bool
    # pending, ok, rejected (auth, bad JSON, unknown route), cancelled (client went away),
    # or the failure mode that was played.
    outcome: str = "pending"
    # The usage a generation reply reported, set once the reply went out whole (None: not
    # a generation, an error or cut reply, or a scenario that hides usage).
    usage: Usage | None = None
    # Whether the reply was the scenario's tool call rather than text.
    tool_called: bool = False


# --- wire helpers -------------------------------------------------------------------------

_JSON_HEADERS = {"Content-Type": "application/json"}
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_OPENAI_DONE = b"data: [DONE]\n\n"
_ANTHROPIC_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_ANTHROPIC_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_FINGERPRINT = "fp_fake"


def _sse_data(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _sse_event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _gemini_sse(payload: Any) -> bytes:
    # Gemini really separates its SSE events with CRLF pairs; parsers must cope.
    return b"data: " + orjson.dumps(payload) + b"\r\n\r\n"


_TEXT_KEYS = frozenset(
    {
        "text",
        "content",
        "parts",
        "input",
        "prompt",
        "system",
        "instructions",
        "messages",
        "contents",
        "systemInstruction",
        "system_instruction",
        "generateContentRequest",
        "requests",
    }
)


def _texts(value: Any) -> Iterator[str]:
    """Every piece of prompt text in a request body, whatever the protocol."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in _TEXT_KEYS:
                yield from _texts(item)


def _last_user_text(body: Mapping[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], str):
        return prompt[-1]
    for name in ("messages", "contents", "input"):
        value = body.get(name)
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            for item in reversed(value):
                if isinstance(item, dict) and item.get("role", "user") == "user":
                    text = "".join(_texts(item.get("content", item.get("parts"))))
                    if text:
                        return text
    return ""


def _turns(body: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The conversation's messages / input items / contents, whatever the protocol."""
    for name in ("messages", "input", "contents"):
        value = body.get(name)
        if isinstance(value, list):
            yield from (item for item in value if isinstance(item, dict))


_TOOL_RESULT_ITEMS = frozenset({"function_call_output", "custom_tool_call_output"})


def _has_tool_result(body: Mapping[str, Any]) -> bool:
    """Whether the conversation already carries a tool's result, in any protocol: a Chat
    ``tool`` message, a Responses ``function_call_output`` item, an Anthropic
    ``tool_result`` block or a Gemini ``functionResponse`` part."""
    for turn in _turns(body):
        if turn.get("role") == "tool" or turn.get("type") in _TOOL_RESULT_ITEMS:
            return True
        blocks = turn.get("content", turn.get("parts"))
        if isinstance(blocks, list) and any(
            isinstance(b, dict) and (b.get("type") == "tool_result" or "functionResponse" in b)
            for b in blocks
        ):
            return True
    return False


def _offered_tools(body: Mapping[str, Any]) -> set[str]:
    """Names of the function tools a request offers: Chat ``function.name``, Responses and
    Anthropic ``name`` (inside namespaces too), Gemini ``functionDeclarations[].name``."""
    names: set[str] = set()

    def visit(tools: Any) -> None:
        if not isinstance(tools, list):
            return
        for tool in tools:
            if not isinstance(tool, dict):
                continue
            function = tool.get("function")
            name = function.get("name") if isinstance(function, dict) else tool.get("name")
            if isinstance(name, str):
                names.add(name)
            visit(tool.get("functionDeclarations"))
            visit(tool.get("tools"))

    visit(body.get("tools"))
    return names


def _split(text: str, pieces: int) -> list[str]:
    """Cut ``text`` into at most ``pieces`` non-empty parts that join back to it."""
    n = max(1, min(pieces, len(text)))
    size = len(text)
    return [text[i * size // n : (i + 1) * size // n] for i in range(n)]


def _vector(item: Any, dimensions: int) -> list[float]:
    # Values k/128 - 1 are exact in float32, so float and base64 answers compare equal.
    digest = hashlib.shake_256(orjson.dumps(item)).digest(dimensions)
    return [b / 128 - 1 for b in digest]


# --- error bodies -------------------------------------------------------------------------

_OPENAI_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_GEMINI_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _error_payload(
    protocol: Protocol, status: int, message: str | None, error_type: str | None
) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    text = message or f"Fake upstream error: {status} {phrase}"
    if protocol == "anthropic":
        kind = error_type or _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        return {
            "type": "error",
            "error": {"type": kind, "message": text},
            "request_id": "req_fake",
        }
    if protocol == "gemini":
        default = "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"
        return {
            "error": {
                "code": status,
                "message": text,
                "status": error_type or _GEMINI_STATUSES.get(status, default),
            }
        }
    kind, code = _OPENAI_ERROR_TYPES.get(status, ("server_error", None))
    return {"error": {"message": text, "type": error_type or kind, "param": None, "code": code}}


def _error_response(
    protocol: Protocol,
    status: int,
    message: str | None = None,
    error_type: str | None = None,
    retry_after: float | None = None,
) -> web.Response:
    headers = dict(_JSON_HEADERS)
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    body = orjson.dumps(_error_payload(protocol, status, message, error_type))
    return web.Response(status=status, body=body, headers=headers)


def _unauthorized(protocol: Protocol, key: str | None) -> web.Response:
    if protocol == "anthropic":
        return _error_response(protocol, 401, "invalid x-api-key")
    if protocol == "gemini":
        payload = _error_payload(
            protocol, 401, "API key not valid. Please pass a valid API key.", None
        )
        payload["error"]["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        ]
        return web.Response(status=401, body=orjson.dumps(payload), headers=_JSON_HEADERS)
    if key is None:
        message = "You didn't provide an API key."
    else:
        masked = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "*" * len(key)
        message = f"Incorrect API key provided: {masked}."
    return _error_response(protocol, 401, message)


def _cut(request: web.Request) -> None:
    # close() flushes what was written, then drops the connection: the client sees a
    # response (or chunked body) that simply stops.
    if request.transport is not None:
        request.transport.close()


# --- one call -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Call:
    protocol: Protocol
    endpoint: str
    model: str
    body: dict[str, Any]
    query: Mapping[str, str]
    stream: bool
    scenario: Scenario
    failure: Failure | None
    record: RecordedRequest | None
    seq: int


@dataclass(slots=True)
class _Reply:
    text: str
    chunks: list[str]  # text or tool-argument pieces, one per content chunk
    tool: ToolCall | None
    tool_args: str
    usage: Usage | None  # None when the scenario hides usage
    prompt_tokens: int
    created: int


@dataclass(slots=True)
class _Plan:
    """A streamed reply: preamble events, one frame per content chunk, closing events."""

    head: list[bytes]
    body: list[bytes]
    tail: list[bytes]
    headers: Mapping[str, str] = field(default_factory=lambda: _SSE_HEADERS)


_TOOL_ENDPOINTS = frozenset({"chat", "responses", "messages", "generate", "stream_generate"})
# Endpoints whose replies report prompt and completion tokens.
_USAGE_ENDPOINTS = _TOOL_ENDPOINTS | {"completions"}


def _make_reply(call: _Call) -> _Reply:
    scenario = call.scenario
    text = scenario.reply_text
    if scenario.echo:
        text = _last_user_text(call.body) or text
    tool = scenario.tool_call if call.endpoint in _TOOL_ENDPOINTS else None
    if (
        tool
        and scenario.tool_call_until_result
        and (_has_tool_result(call.body) or tool.name not in _offered_tools(call.body))
    ):
        tool = None
    tool_args = orjson.dumps(dict(tool.arguments)).decode() if tool else ""
    usage = scenario.usage or Usage(
        prompt_tokens=count_tokens("\n".join(_texts(call.body))),
        completion_tokens=count_tokens(tool.name + tool_args if tool else text),
    )
    return _Reply(
        text=text,
        chunks=_split(tool_args if tool else text, scenario.stream_chunks),
        tool=tool,
        tool_args=tool_args,
        usage=usage if scenario.report_usage else None,
        prompt_tokens=usage.prompt_tokens,
        created=int(time.time()),
    )


# --- OpenAI -------------------------------------------------------------------------------


def _openai_usage(usage: Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": usage.cached_tokens, "audio_tokens": 0}
    if usage.cache_write_tokens:
        # OpenAI itself never reports cache writes; OpenAI-compatible gateways in front of
        # Anthropic models (OpenRouter and the like) do, under this name.
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _include_usage(call: _Call) -> bool:
    options = call.body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _chat_body(call: _Call, reply: _Reply) -> bytes:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text,
        "refusal": None,
        "annotations": [],
    }
    finish = "stop"
    if reply.tool:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": reply.tool.id,
                "type": "function",
                "function": {"name": reply.tool.name, "arguments": reply.tool_args},
            }
        ]
        finish = "tool_calls"
    out: dict[str, Any] = {
        "id": f"chatcmpl-fake{call.seq:08d}",
        "object": "chat.completion",
        "created": reply.created,
        "model": call.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }
    if reply.usage:
        out["usage"] = _openai_usage(reply.usage)
    return orjson.dumps(out)


def _chat_stream(call: _Call, reply: _Reply) -> _Plan:
    include_usage = _include_usage(call)
    base: dict[str, Any] = {
        "id": f"chatcmpl-fake{call.seq:08d}",
        "object": "chat.completion.chunk",
        "created": reply.created,
        "model": call.model,
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }
    if include_usage:
        base["usage"] = None  # OpenAI sends an explicit null on every chunk but the last

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse_data({**base, "choices": [choice]})

    if reply.tool:
        first_call = {
            "index": 0,
            "id": reply.tool.id,
            "type": "function",
            "function": {"name": reply.tool.name, "arguments": ""},
        }
        head = [chunk({"role": "assistant", "content": None, "tool_calls": [first_call]})]
        body = [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            for piece in reply.chunks
        ]
        finish = "tool_calls"
    else:
        head = [chunk({"role": "assistant", "content": "", "refusal": None})]
        body = [chunk({"content": piece}) for piece in reply.chunks]
        finish = "stop"
    tail = [chunk({}, finish)]
    if include_usage and reply.usage:
        tail.append(_sse_data({**base, "choices": [], "usage": _openai_usage(reply.usage)}))
    tail.append(_OPENAI_DONE)
    return _Plan(head, body, tail)


def _legacy_usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _completion_body(call: _Call, reply: _Reply) -> bytes:
    out: dict[str, Any] = {
        "id": f"cmpl-fake{call.seq:08d}",
        "object": "text_completion",
        "created": reply.created,
        "model": call.model,
        "choices": [{"text": reply.text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "system_fingerprint": _FINGERPRINT,
    }
    if reply.usage:
        out["usage"] = _legacy_usage(reply.usage)
    return orjson.dumps(out)


def _completion_stream(call: _Call, reply: _Reply) -> _Plan:
    include_usage = _include_usage(call)
    base: dict[str, Any] = {
        "id": f"cmpl-fake{call.seq:08d}",
        "object": "text_completion",
        "created": reply.created,
        "model": call.model,
        "system_fingerprint": _FINGERPRINT,
    }
    if include_usage:
        base["usage"] = None

    def chunk(text: str, finish: str | None = None) -> bytes:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        return _sse_data({**base, "choices": [choice]})

    tail = [chunk("", "stop")]
    if include_usage and reply.usage:
        tail.append(_sse_data({**base, "choices": [], "usage": _legacy_usage(reply.usage)}))
    tail.append(_OPENAI_DONE)
    return _Plan([], [chunk(piece) for piece in reply.chunks], tail)


def _embedding_inputs(value: Any) -> list[Any]:
    if isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], int)):
        return [value]  # one string, or one pre-tokenized input
    return list(value) if isinstance(value, list) else []


def _embeddings_body(call: _Call, reply: _Reply) -> bytes:
    dimensions = int(call.body.get("dimensions") or call.scenario.embedding_dimensions)
    as_base64 = call.body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(_embedding_inputs(call.body.get("input"))):
        vector = _vector(item, dimensions)
        embedding: Any = vector
        if as_base64:
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    out: dict[str, Any] = {"object": "list", "data": data, "model": call.model}
    if reply.usage:
        prompt = reply.usage.prompt_tokens
        out["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
    return orjson.dumps(out)


def _models_body(call: _Call, reply: _Reply) -> bytes:
    models = call.scenario.models
    if call.protocol == "anthropic":
        data = [
            {
                "type": "model",
                "id": model,
                "display_name": model,
                "created_at": "2025-01-01T00:00:00Z",
            }
            for model in models
        ]
        first, last = (models[0], models[-1]) if models else (None, None)
        return orjson.dumps({"data": data, "has_more": False, "first_id": first, "last_id": last})
    if call.protocol == "gemini":
        methods = ["generateContent", "countTokens", "embedContent"]
        return orjson.dumps(
            {
                "models": [
                    {
                        "name": f"models/{model}",
                        "version": "001",
                        "displayName": model,
                        "inputTokenLimit": 1048576,
                        "outputTokenLimit": 65536,
                        "supportedGenerationMethods": methods,
                    }
                    for model in models
                ]
            }
        )
    return orjson.dumps({"object": "list", "data": [_openai_model(model) for model in models]})


def _openai_model(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1700000000, "owned_by": "fake-upstream"}


def _model_body(call: _Call, reply: _Reply) -> bytes:
    return orjson.dumps(_openai_model(call.model))


# --- OpenAI Responses ---------------------------------------------------------------------


def _responses_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _response_object(
    call: _Call, reply: _Reply, status: str, output: list[dict[str, Any]], final: bool
) -> dict[str, Any]:
    body = call.body
    usage = _responses_usage(reply.usage) if final and reply.usage else None
    return {
        "id": f"resp_fake{call.seq:08d}",
        "object": "response",
        "created_at": reply.created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": call.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _responses_item(call: _Call, reply: _Reply, status: str, done: bool) -> dict[str, Any]:
    if reply.tool:
        return {
            "id": f"fc_fake{call.seq:08d}",
            "type": "function_call",
            "status": status,
            "arguments": reply.tool_args if done else "",
            "call_id": reply.tool.id,
            "name": reply.tool.name,
        }
    return {
        "id": f"msg_fake{call.seq:08d}",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [_output_text(reply.text)] if done else [],
    }


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _responses_body(call: _Call, reply: _Reply) -> bytes:
    item = _responses_item(call, reply, "completed", done=True)
    return orjson.dumps(_response_object(call, reply, "completed", [item], final=True))


def _responses_stream(call: _Call, reply: _Reply) -> _Plan:
    counter = itertools.count()

    def event(kind: str, **fields: Any) -> bytes:
        return _sse_event(kind, {"type": kind, **fields, "sequence_number": next(counter)})

    item_id = _responses_item(call, reply, "in_progress", done=False)["id"]
    pending = _response_object(call, reply, "in_progress", [], final=False)
    head = [
        event("response.created", response=pending),
        event("response.in_progress", response=pending),
        event(
            "response.output_item.added",
            output_index=0,
            item=_responses_item(call, reply, "in_progress", done=False),
        ),
    ]
    where = {"item_id": item_id, "output_index": 0}
    if reply.tool:
        body = [
            event("response.function_call_arguments.delta", **where, delta=piece)
            for piece in reply.chunks
        ]
        tail = [event("response.function_call_arguments.done", **where, arguments=reply.tool_args)]
    else:
        where["content_index"] = 0
        head.append(event("response.content_part.added", **where, part=_output_text("")))
        body = [
            event("response.output_text.delta", **where, delta=piece, logprobs=[])
            for piece in reply.chunks
        ]
        tail = [
            event("response.output_text.done", **where, text=reply.text, logprobs=[]),
            event("response.content_part.done", **where, part=_output_text(reply.text)),
        ]
    item = _responses_item(call, reply, "completed", done=True)
    tail.append(event("response.output_item.done", output_index=0, item=item))
    done = _response_object(call, reply, "completed", [item], final=True)
    tail.append(event("response.completed", response=done))
    return _Plan(head, body, tail)


# --- Anthropic ----------------------------------------------------------------------------


def _anthropic_usage(usage: Usage) -> dict[str, Any]:
    fresh = max(0, usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens)
    return {
        "input_tokens": fresh,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write_tokens,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": usage.completion_tokens,
        "service_tier": "standard",
    }


def _message_id(call: _Call) -> str:
    return f"msg_fake{call.seq:016d}"


def _messages_body(call: _Call, reply: _Reply) -> bytes:
    block: dict[str, Any]
    if reply.tool:
        block = {
            "type": "tool_use",
            "id": reply.tool.id,
            "name": reply.tool.name,
            "input": dict(reply.tool.arguments),
        }
    else:
        block = {"type": "text", "text": reply.text}
    out: dict[str, Any] = {
        "id": _message_id(call),
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": [block],
        "stop_reason": "tool_use" if reply.tool else "end_turn",
        "stop_sequence": None,
    }
    if reply.usage:
        out["usage"] = _anthropic_usage(reply.usage)
    return orjson.dumps(out)


def _messages_stream(call: _Call, reply: _Reply) -> _Plan:
    message: dict[str, Any] = {
        "id": _message_id(call),
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if reply.usage:
        # Like the real API: input side is final here, output_tokens is a placeholder that
        # message_delta replaces (summing the two double-counts).
        message["usage"] = {**_anthropic_usage(reply.usage), "output_tokens": 1}
    if reply.tool:
        block = {"type": "tool_use", "id": reply.tool.id, "name": reply.tool.name, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in reply.chunks]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in reply.chunks]
    head = [
        _sse_event("message_start", {"type": "message_start", "message": message}),
        _sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        ),
        _ANTHROPIC_PING,
    ]
    body = [
        _sse_event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d})
        for d in deltas
    ]
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use" if reply.tool else "end_turn", "stop_sequence": None},
    }
    if reply.usage:
        delta["usage"] = {"output_tokens": reply.usage.completion_tokens}
    tail = [
        _sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse_event("message_delta", delta),
        _ANTHROPIC_STOP,
    ]
    return _Plan(head, body, tail)


def _anthropic_count_body(call: _Call, reply: _Reply) -> bytes:
    return orjson.dumps({"input_tokens": reply.prompt_tokens})


# --- Gemini -------------------------------------------------------------------------------


def _gemini_prompt_usage(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "promptTokenCount": usage.prompt_tokens,
        "totalTokenCount": usage.prompt_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": usage.prompt_tokens}],
    }
    if usage.cached_tokens:
        out["cachedContentTokenCount"] = usage.cached_tokens
        out["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": usage.cached_tokens}]
    return out


def _gemini_usage(usage: Usage) -> dict[str, Any]:
    out = _gemini_prompt_usage(usage)
    out["candidatesTokenCount"] = usage.completion_tokens - usage.reasoning_tokens
    out["totalTokenCount"] = usage.total_tokens
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    return out


def _gemini_chunk(
    call: _Call, reply: _Reply, parts: list[dict[str, Any]], final: bool
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if final:
        candidate["finishReason"] = "STOP"
    out: dict[str, Any] = {"candidates": [candidate]}
    if reply.usage:
        # Real streams repeat the prompt-side counts on every chunk and complete them on the
        # last one: usage must be taken from the last chunk, not summed.
        out["usageMetadata"] = (
            _gemini_usage(reply.usage) if final else _gemini_prompt_usage(reply.usage)
        )
    out["modelVersion"] = call.model
    out["responseId"] = f"fake{call.seq:08d}"
    return out


def _gemini_tool_part(tool: ToolCall) -> dict[str, Any]:
    return {"functionCall": {"name": tool.name, "args": dict(tool.arguments)}}


def _generate_body(call: _Call, reply: _Reply) -> bytes:
    part = _gemini_tool_part(reply.tool) if reply.tool else {"text": reply.text}
    return orjson.dumps(_gemini_chunk(call, reply, [part], final=True))


def _generate_stream(call: _Call, reply: _Reply) -> _Plan:
    if reply.tool:  # Gemini delivers a function call whole, in one chunk
        chunks = [_gemini_chunk(call, reply, [_gemini_tool_part(reply.tool)], final=True)]
    else:
        last = len(reply.chunks) - 1
        chunks = [
            _gemini_chunk(call, reply, [{"text": piece}], final=i == last)
            for i, piece in enumerate(reply.chunks)
        ]
    if call.query.get("alt") == "sse":
        return _Plan([], [_gemini_sse(c) for c in chunks], [])
    # Without alt=sse Gemini streams one JSON array, element by element.
    body = [(b"[" if i == 0 else b",\r\n") + orjson.dumps(c) for i, c in enumerate(chunks)]
    return _Plan([], body, [b"]"], headers=_JSON_HEADERS)


def _gemini_count_body(call: _Call, reply: _Reply) -> bytes:
    prompt = reply.prompt_tokens
    details = [{"modality": "TEXT", "tokenCount": prompt}]
    return orjson.dumps({"totalTokens": prompt, "promptTokensDetails": details})


def _gemini_embedding(call: _Call, request: Mapping[str, Any]) -> dict[str, Any]:
    dimensions = int(request.get("outputDimensionality") or call.scenario.embedding_dimensions)
    return {"values": _vector(list(_texts(request.get("content"))), dimensions)}


def _embed_body(call: _Call, reply: _Reply) -> bytes:
    return orjson.dumps({"embedding": _gemini_embedding(call, call.body)})


def _batch_embed_body(call: _Call, reply: _Reply) -> bytes:
    requests = call.body.get("requests") or []
    embeddings = [_gemini_embedding(call, r) for r in requests if isinstance(r, dict)]
    return orjson.dumps({"embeddings": embeddings})


# --- routing tables -----------------------------------------------------------------------

_Builder = Callable[[_Call, _Reply], bytes]
_Streamer = Callable[[_Call, _Reply], _Plan]

_BUILDERS: dict[str, _Builder] = {
    "chat": _chat_body,
    "completions": _completion_body,
    "embeddings": _embeddings_body,
    "models": _models_body,
    "model": _model_body,
    "responses": _responses_body,
    "messages": _messages_body,
    "count_tokens": _anthropic_count_body,
    "generate": _generate_body,
    "stream_generate": _generate_body,
    "gemini_count_tokens": _gemini_count_body,
    "embed": _embed_body,
    "batch_embed": _batch_embed_body,
}
_STREAMERS: dict[str, _Streamer] = {
    "chat": _chat_stream,
    "completions": _completion_stream,
    "responses": _responses_stream,
    "messages": _messages_stream,
    "stream_generate": _generate_stream,
}
_GEMINI_METHODS = {
    "generateContent": "generate",
    "streamGenerateContent": "stream_generate",
    "countTokens": "gemini_count_tokens",
    "embedContent": "embed",
    "batchEmbedContents": "batch_embed",
}


def _stream_error_frame(call: _Call, failure: Failure, sequence: int) -> bytes:
    payload = _error_payload(call.protocol, failure.status, failure.message, failure.error_type)
    if call.protocol == "anthropic":
        return _sse_event("error", payload)
    if call.protocol == "gemini":
        return _gemini_sse(payload)
    if call.endpoint == "responses":
        error = payload["error"]
        return _sse_event(
            "error",
            {
                "type": "error",
                "code": error["code"] or error["type"],
                "message": error["message"],
                "param": None,
                "sequence_number": sequence,
            },
        )
    return _sse_data(payload)


def _api_key(request: web.Request) -> tuple[str | None, str | None]:
    headers = request.headers
    for name in ("x-api-key", "api-key", "x-goog-api-key"):
        value = headers.get(name)
        if value:
            return value, name
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), "authorization"
    key = request.query.get("key")
    if key:
        return key, "query"
    return None, None


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeUpstream:
    """A scriptable LLM provider on a loopback port, served from its own thread and loop.

    Thread-safe: tests script it and read ``requests`` from their own thread while the
    server runs. ``configure(key=...)`` scripts one API key, so a single fake can play a
    healthy channel and a broken one at once.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        scenario: Scenario | None = None,
        valid_keys: Sequence[str] | None = None,
        invalid_keys: Sequence[str] = (),
        require_key: bool = True,
        record: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self._initial = scenario or Scenario()
        self._initial_valid = frozenset(valid_keys) if valid_keys is not None else None
        self._initial_invalid = frozenset(invalid_keys)
        self._require_key = require_key
        self._record = record
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._requests: list[RecordedRequest] = []
        self._count = 0
        self._default = self._initial
        self._overrides: dict[str, dict[str, Any]] = {}
        self._failures_left: dict[str | None, int | None] = {}
        self._valid: set[str] | None = None
        self._invalid: set[str] = set()
        self.reset()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._url: str | None = None

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash); known once started."""
        if self._url is None:
            raise RuntimeError("FakeUpstream is not started")
        return self._url

    def start(self) -> Self:
        """Listen and serve from a background thread; returns once requests are accepted."""
        if self._thread is not None:
            raise RuntimeError("FakeUpstream is already started")
        sock = self._bind()
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._startup(sock))
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        thread = threading.Thread(target=run, name=f"fake-upstream:{self.port}", daemon=True)
        thread.start()
        ready.wait()
        if errors:
            thread.join()
            sock.close()
            raise errors[0]
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Stop serving: stalled requests are released and connections closed."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def serve_forever(self) -> None:
        """Serve on the running loop until SIGINT/SIGTERM (the standalone mode)."""
        await self._startup(self._bind())
        print(f"fake upstream listening on {self.url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await self._shutdown()

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        host = f"[{self.host}]" if family == socket.AF_INET6 else self.host
        self._url = f"http://{host}:{self.port}"
        return sock

    async def _startup(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(self._routes())
        # handler_cancellation: a client that hangs up cancels its handler, so stalled and
        # streaming requests end when the relay gives up on them (recorded as "cancelled").
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        await web.SockSite(runner, sock, backlog=1024).start()
        self._runner = runner

    async def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- scripting ------------------------------------------------------------------------

    @property
    def scenario(self) -> Scenario:
        """The default scenario (what keys without their own script get)."""
        with self._lock:
            return self._default

    @scenario.setter
    def scenario(self, value: Scenario) -> None:
        with self._lock:
            self._default = value
            self._failures_left[None] = value.failure.times if value.failure else None

    def configure(self, key: str | None = None, **changes: Any) -> None:
        """Change `Scenario` fields for every key (``key=None``) or for one API key.

        Per-key changes overlay the default scenario at request time, so later default
        changes still show through for fields the key did not set. Setting ``failure``
        restarts its ``times`` count.
        """
        unknown = set(changes) - _SCENARIO_FIELDS
        if unknown:
            raise TypeError(f"unknown Scenario fields: {sorted(unknown)}")
        with self._lock:
            if key is None:
                self._default = dataclasses.replace(self._default, **changes)
            else:
                self._overrides.setdefault(key, {}).update(changes)
            if "failure" in changes:
                failure: Failure | None = changes["failure"]
                self._failures_left[key] = failure.times if failure else None

    def fail(
        self,
        status: int = 500,
        *,
        key: str | None = None,
        mode: FailureMode = "status",
        times: int | None = None,
        after_chunks: int = 1,
        message: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Shorthand for ``configure(key, failure=Failure(...))``."""
        failure = Failure(
            status=status,
            mode=mode,
            times=times,
            after_chunks=after_chunks,
            message=message,
            error_type=error_type,
            retry_after=retry_after,
        )
        self.configure(key, failure=failure)

    def reject_key(self, *keys: str) -> None:
        """Answer these keys with the provider's 401 from now on."""
        with self._lock:
            self._invalid.update(keys)

    def scenario_for(self, key: str | None) -> Scenario:
        """The scenario a request with this key gets."""
        with self._lock:
            return self._effective(key)

    def reset(self) -> None:
        """Forget recorded requests and scripting; back to the constructor's settings."""
        with self._lock:
            self._requests.clear()
            self._count = 0
            self._default = self._initial
            self._overrides.clear()
            failure = self._initial.failure
            self._failures_left = {None: failure.times if failure else None}
            self._valid = set(self._initial_valid) if self._initial_valid is not None else None
            self._invalid = set(self._initial_invalid)

    # -- inspection -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """Requests received, counted even when recording is off."""
        with self._lock:
            return self._count

    def wait_until(
        self, predicate: Callable[[list[RecordedRequest]], bool], timeout: float = 5.0
    ) -> list[RecordedRequest]:
        """Block until ``predicate(requests)`` holds (re-checked on every request or outcome).

        For what happens after the client already has its answer, e.g. that the relay hung
        up on a stalled upstream: ``wait_until(lambda rs: rs[-1].outcome == "cancelled")``.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(list(self._requests)), timeout):
                raise TimeoutError(f"condition not met within {timeout}s")
            return list(self._requests)

    # -- serving --------------------------------------------------------------------------

    def _routes(self) -> list[web.AbstractRouteDef]:
        openai, anthropic = self._handler("openai"), self._handler("anthropic")
        return [
            web.post("/v1/chat/completions", openai("chat")),
            web.post("/v1/completions", openai("completions")),
            web.post("/v1/embeddings", openai("embeddings")),
            web.post("/v1/responses", openai("responses")),
            web.get("/v1/models", self._models),
            web.get("/v1/models/{model}", openai("model")),
            web.post("/v1/messages", anthropic("messages")),
            web.post("/v1/messages/count_tokens", anthropic("count_tokens")),
            web.get("/v1beta/models", self._models),
            web.post("/v1beta/models/{target}", self._gemini),
            web.post("/v1/models/{target}", self._gemini),
            web.post("/openai/deployments/{deployment}/chat/completions", self._azure("chat")),
            web.post("/openai/deployments/{deployment}/completions", self._azure("completions")),
            web.post("/openai/deployments/{deployment}/embeddings", self._azure("embeddings")),
            # Anything else is recorded too: a relay calling a wrong path shows up in tests.
            web.route("*", "/{tail:.*}", self._unknown),
        ]

    def _handler(self, protocol: Protocol) -> Callable[[str], _Handler]:
        def for_endpoint(endpoint: str) -> _Handler:
            async def handle(request: web.Request) -> web.StreamResponse:
                return await self._serve(request, protocol, endpoint)

            return handle

        return for_endpoint

    def _azure(self, endpoint: str) -> _Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            if "api-version" not in request.query:
                # What Azure answers when the api-version query parameter is missing.
                body = orjson.dumps({"error": {"code": "404", "message": "Resource not found"}})
                return self._reject(request, "openai", 404, body)
            deployment = request.match_info["deployment"]
            return await self._serve(request, "openai", endpoint, model=deployment)

        return handle

    async def _models(self, request: web.Request) -> web.StreamResponse:
        protocol: Protocol = "openai"
        if request.path.startswith("/v1beta/") or "x-goog-api-key" in request.headers:
            protocol = "gemini"
        elif "anthropic-version" in request.headers:
            protocol = "anthropic"
        return await self._serve(request, protocol, "models")

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["target"].rpartition(":")
        endpoint = _GEMINI_METHODS.get(method)
        if not model or endpoint is None:
            body = orjson.dumps(_error_payload("gemini", 404, f"Unknown method {method}", None))
            return self._reject(request, "gemini", 404, body)
        return await self._serve(request, "gemini", endpoint, model=model)

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        protocol: Protocol = "gemini" if request.path.startswith("/v1beta/") else "openai"
        message = f"Fake upstream has no route {request.method} {request.path}"
        body = orjson.dumps(_error_payload(protocol, 404, message, None))
        return self._reject(request, protocol, 404, body)

    def _reject(
        self, request: web.Request, protocol: Protocol, status: int, body: bytes
    ) -> web.Response:
        self._record_only(request, protocol, "unknown")
        return web.Response(status=status, body=body, headers=_JSON_HEADERS)

    def _record_only(self, request: web.Request, protocol: Protocol, endpoint: str) -> None:
        with self._changed:
            self._count += 1
            if self._record:
                key, source = _api_key(request)
                self._requests.append(
                    self._recorded(request, protocol, endpoint, None, None, False, key, source)
                )
                self._requests[-1].outcome = "rejected"
            self._changed.notify_all()

    def _recorded(
        self,
        request: web.Request,
        protocol: Protocol,
        endpoint: str,
        model: str | None,
        body: Any,
        stream: bool,
        key: str | None,
        source: str | None,
    ) -> RecordedRequest:
        return RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={name.lower(): value for name, value in request.headers.items()},
            json=body,
            key=key,
            key_source=source,
            protocol=protocol,
            endpoint=endpoint,
            model=model,
            stream=stream,
        )

    def _effective(self, key: str | None) -> Scenario:
        override = self._overrides.get(key) if key is not None else None
        return dataclasses.replace(self._default, **override) if override else self._default

    def _take_failure(self, key: str | None, scenario: Scenario) -> Failure | None:
        failure = scenario.failure
        if failure is None or failure.times is None:
            return failure
        # A count belongs to where the failure was scripted: one key, or everyone.
        scope = key if key is not None and "failure" in self._overrides.get(key, {}) else None
        left = self._failures_left.get(scope) or 0
        if left <= 0:
            return None
        self._failures_left[scope] = left - 1
        return failure

    async def _serve(
        self,
        request: web.Request,
        protocol: Protocol,
        endpoint: str,
        model: str | None = None,
    ) -> web.StreamResponse:
        raw = await request.read()
        body: Any
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = raw.decode(errors="replace")
        if model is None:
            model = body.get("model") if isinstance(body, dict) else None
            model = model or request.match_info.get("model")
        is_dict = isinstance(body, dict)
        stream = endpoint == "stream_generate" or (is_dict and body.get("stream") is True)
        key, source = _api_key(request)

        with self._changed:
            self._count += 1
            record = None
            if self._record:
                record = self._recorded(
                    request, protocol, endpoint, model, body, stream, key, source
                )
                self._requests.append(record)
            scenario = self._effective(key)
            authorized = not (
                (key is None and self._require_key)
                or (key is not None and key in self._invalid)
                or (key is not None and self._valid is not None and key not in self._valid)
            )
            failure = self._take_failure(key, scenario) if authorized and is_dict else None
            self._changed.notify_all()

        if not authorized or not is_dict:
            self._finish(record, "rejected")
            if not authorized:
                return _unauthorized(protocol, key)
            return _error_response(protocol, 400, "Request body is not a JSON object.")
        call = _Call(
            protocol=protocol,
            endpoint=endpoint,
            model=model or "",
            body=body,
            query=request.query,
            stream=stream,
            scenario=scenario,
            failure=failure,
            record=record,
            seq=next(self._ids),
        )
        try:
            return await self._execute(request, call)
        except asyncio.CancelledError:
            self._finish(record, "cancelled")
            raise

    def _finish(
        self, record: RecordedRequest | None, outcome: str, usage: Usage | None = None
    ) -> None:
        if record is None:
            return
        with self._changed:
            record.outcome = outcome
            record.usage = usage
            self._changed.notify_all()

    async def _stall(self, request: web.Request) -> None:
        if self._stopping is not None:
            await self._stopping.wait()
        _cut(request)

    async def _execute(self, request: web.Request, call: _Call) -> web.StreamResponse:
        scenario, failure = call.scenario, call.failure
        if scenario.latency > 0:
            await asyncio.sleep(scenario.latency)
        if failure is not None:
            if failure.mode == "disconnect":
                _cut(request)
                self._finish(call.record, "disconnect")
                return web.Response()
            if failure.mode == "stall":
                await self._stall(request)
                self._finish(call.record, "stall")
                return web.Response()
            if failure.mode == "status" or (failure.mode == "error_midstream" and not call.stream):
                self._finish(call.record, failure.mode)
                return _error_response(
                    call.protocol,
                    failure.status,
                    failure.message,
                    failure.error_type,
                    failure.retry_after,
                )
        reply = _make_reply(call)
        if call.record is not None:
            with self._lock:
                call.record.tool_called = reply.tool is not None
        # Recorded once the reply, usage included, went out whole.
        usage = reply.usage if call.endpoint in _USAGE_ENDPOINTS else None
        streamer = _STREAMERS.get(call.endpoint) if call.stream else None
        if streamer is not None:
            return await self._send_stream(request, call, streamer(call, reply), usage)
        body = _BUILDERS[call.endpoint](call, reply)
        if failure is None:
            self._finish(call.record, "ok", usage)
            return web.Response(body=body, headers=_JSON_HEADERS)
        return await self._send_truncated(request, call, failure, body)

    async def _send_stream(
        self, request: web.Request, call: _Call, plan: _Plan, usage: Usage | None = None
    ) -> web.StreamResponse:
        failure = call.failure
        body = plan.body if failure is None else plan.body[: failure.after_chunks]
        writes = [b"".join(plan.head), *body]
        if failure is None:
            writes.append(b"".join(plan.tail))
        # An empty write would be sent as the zero-length chunk that ends a chunked body.
        writes = [w for w in writes if w]
        delay = call.scenario.chunk_delay
        response = web.StreamResponse(headers=plan.headers)
        try:
            await response.prepare(request)
            if delay > 0:
                for index, data in enumerate(writes):
                    if index:
                        await asyncio.sleep(delay)
                    await response.write(data)
            else:
                await response.write(b"".join(writes))
            if failure is None:
                if call.scenario.linger_after_end:
                    await self._stall(request)
                await response.write_eof()
                self._finish(call.record, "ok", usage)
                return response
            if failure.mode == "error_midstream":
                sequence = len(plan.head) + len(body)
                await response.write(_stream_error_frame(call, failure, sequence))
                await response.write_eof()
            elif failure.mode == "stall_midstream":
                await self._stall(request)
            else:
                _cut(request)
            self._finish(call.record, failure.mode)
        except ConnectionResetError:  # the client left while we were writing
            self._finish(call.record, "cancelled")
        return response

    async def _send_truncated(
        self, request: web.Request, call: _Call, failure: Failure, body: bytes
    ) -> web.StreamResponse:
        # Announce the full length, deliver half: the non-stream version of a mid-reply cut.
        response = web.StreamResponse(headers=_JSON_HEADERS)
        response.content_length = len(body)
        try:
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            if failure.mode == "stall_midstream":
                await self._stall(request)
            else:
                _cut(request)
            self._finish(call.record, failure.mode)
        except ConnectionResetError:
            self._finish(call.record, "cancelled")
        return response


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake in the foreground (used by the benchmark)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--reply", default=DEFAULT_REPLY, help="reply text")
    parser.add_argument("--echo", action="store_true", help="echo the last user message")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before first byte")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--stream-chunks", type=int, default=4)
    parser.add_argument("--no-usage", action="store_true", help="do not report usage")
    parser.add_argument("--record", action="store_true", help="keep requests (grows memory)")
    args = parser.parse_args(argv)
    scenario = Scenario(
        reply_text=args.reply,
        echo=args.echo,
        report_usage=not args.no_usage,
        latency=args.latency,
        chunk_delay=args.chunk_delay,
        stream_chunks=args.stream_chunks,
    )
    fake = FakeUpstream(
        host=args.host,
        port=args.port,
        scenario=scenario,
        require_key=False,
        record=args.record,
    )
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):  # uvloop is an optional speed-up
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(fake.serve_forever())


if __name__ == "__main__":
    main()
