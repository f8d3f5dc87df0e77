"""The wire protocols the relay speaks, each behind the same small interface.

A client protocol (how the caller talks to TokenHub) and a channel protocol (how
TokenHub talks to the upstream) are both one of these. When they are the same, the body
passes through; otherwise it is translated through relay/formats/ir.py. Adding a
provider means one module in relay/formats/ and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import Protocol as TypingProtocol

from billing.pricing import Usage
from relay.catalog import ChannelInfo
from relay.errors import RelayError
from relay.formats import anthropic, gemini, ir, openai, openai_chat, responses
from relay.pipeline.forward import openai_target, pick_key

ANTHROPIC_VERSION = "2023-06-01"


class StreamParser(TypingProtocol):
    def feed(self, chunk: bytes) -> list[ir.StreamEvent]: ...
    def close(self) -> list[ir.StreamEvent]: ...


class StreamWriter(TypingProtocol):
    def write(self, event: ir.StreamEvent) -> bytes: ...


@dataclass(frozen=True)
class WireProtocol:
    name: str
    # request body (+ model from the URL, + stream from the URL) -> IR
    to_ir: Callable[[dict[str, Any], str, bool], ir.ChatRequest]
    # IR -> upstream body for UPSTREAM_MODEL
    from_ir: Callable[[ir.ChatRequest, str], dict[str, Any]]
    response_to_ir: Callable[[dict[str, Any]], ir.ChatResponse]
    response_from_ir: Callable[[ir.ChatResponse, str], dict[str, Any]]
    usage_of_body: Callable[[dict[str, Any]], Usage | None]
    parser: Callable[[], StreamParser]
    # client's request body -> a writer for the client's stream
    writer: Callable[[str, dict[str, Any]], StreamWriter]
    error_body: Callable[[RelayError], dict[str, Any]]
    error_event: Callable[[RelayError], bytes]


def _anthropic_error(err: RelayError) -> dict[str, Any]:
    return anthropic.error_body(err.status, err.message)


def _gemini_error(err: RelayError) -> dict[str, Any]:
    return gemini.error_body(err.status, err.message)


OPENAI = WireProtocol(
    name="openai",
    to_ir=lambda body, model, stream: openai_chat.request_to_ir(body),
    from_ir=lambda req, model: openai_chat.request_from_ir(req, upstream_model=model),
    response_to_ir=openai_chat.response_to_ir,
    response_from_ir=lambda resp, model: openai_chat.response_from_ir(resp, model=model),
    usage_of_body=lambda body: openai.usage_from(body.get("usage")),
    parser=openai_chat.StreamParser,
    writer=lambda model, body: openai_chat.StreamWriter(
        model, include_usage=openai_chat.stream_include_usage(body)
    ),
    error_body=openai.error_body,
    error_event=openai.stream_error_event,
)

ANTHROPIC = WireProtocol(
    name="anthropic",
    to_ir=lambda body, model, stream: anthropic.request_to_ir(body),
    from_ir=lambda req, model: anthropic.request_from_ir(req, upstream_model=model),
    response_to_ir=anthropic.response_to_ir,
    response_from_ir=lambda resp, model: anthropic.response_from_ir(resp, model=model),
    usage_of_body=lambda body: anthropic.usage_from(body.get("usage")),
    parser=anthropic.StreamParser,
    writer=lambda model, body: anthropic.StreamWriter(model),
    error_body=_anthropic_error,
    error_event=lambda err: anthropic.error_event(
        err.message, anthropic.error_type_for(err.status)
    ),
)

GEMINI = WireProtocol(
    name="gemini",
    to_ir=lambda body, model, stream: gemini.request_to_ir(body, model=model, stream=stream),
    from_ir=lambda req, model: gemini.request_from_ir(req),
    response_to_ir=gemini.response_to_ir,
    response_from_ir=lambda resp, model: gemini.response_from_ir(resp, model=model),
    usage_of_body=lambda body: gemini.usage_from(body.get("usageMetadata")),
    parser=gemini.StreamParser,
    writer=lambda model, body: gemini.StreamWriter(model),
    error_body=_gemini_error,
    error_event=lambda err: gemini.StreamWriter("").error_event(err.message, err.status),
)

RESPONSES = WireProtocol(
    name="responses",
    to_ir=lambda body, model, stream: responses.request_to_ir(body),
    from_ir=lambda req, model: responses.request_from_ir(req, upstream_model=model),
    response_to_ir=responses.response_to_ir,
    response_from_ir=lambda resp, model: responses.response_from_ir(resp, model=model),
    usage_of_body=lambda body: responses.usage_from(body.get("usage")),
    parser=responses.StreamParser,
    writer=lambda model, body: responses.StreamWriter(model),
    error_body=openai.error_body,
    error_event=lambda err: responses.StreamWriter("").error_event(err.message, err.code),
)

# Channel type -> the protocol its upstream speaks.
CHANNEL_PROTOCOLS: dict[str, WireProtocol] = {
    "openai": OPENAI,
    "azure-openai": OPENAI,
    "doubao": OPENAI,
    "openai-responses": RESPONSES,
    "anthropic": ANTHROPIC,
    "gemini": GEMINI,
}


def chat_target(
    channel: ChannelInfo, upstream_model: str, stream: bool, client_headers: dict[str, str]
) -> tuple[str, dict[str, str]]:
    """URL and headers for a chat-type call to CHANNEL in its own protocol."""
    kind = channel.type
    if kind in ("openai", "azure-openai", "doubao"):
        return openai_target(channel, "/chat/completions", upstream_model)
    if kind == "openai-responses":
        url, headers = openai_target(channel, "/responses", upstream_model)
        return url, headers
    key = pick_key(channel)
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    if kind == "anthropic":
        headers["x-api-key"] = key
        headers["anthropic-version"] = client_headers.get("anthropic-version", ANTHROPIC_VERSION)
        beta = client_headers.get("anthropic-beta")
        if beta:
            headers["anthropic-beta"] = beta
        return channel.base_url + "/v1/messages", headers
    if kind == "gemini":
        headers["x-goog-api-key"] = key
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{channel.base_url}/v1beta/models/{upstream_model}:{action}", headers
    raise RelayError(503, f"Channel type {kind} cannot serve chat requests.", code="bad_channel")
