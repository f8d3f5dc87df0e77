"""The wire protocols the relay speaks, each behind the same small interface.

A client protocol (how the caller talks to TokenHub) and a channel protocol (how
TokenHub talks to the upstream) are both one of these. When they are the same, the body
passes through; otherwise it is translated through relay/formats/ir.py. Which protocol a
channel speaks, and where, is in relay/channel_types.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import Protocol as TypingProtocol

from billing.pricing import Usage
from relay.errors import RelayError
from relay.formats import anthropic, fields, gemini, ir, openai, openai_chat, responses


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
    # IR response (+ model, + the client's request body) -> the client's response body
    response_from_ir: Callable[[ir.ChatResponse, str, dict[str, Any]], dict[str, Any]]
    usage_of_body: Callable[[dict[str, Any]], Usage | None]
    parser: Callable[[], StreamParser]
    # client's request body -> a writer for the client's stream
    writer: Callable[[str, dict[str, Any]], StreamWriter]
    error_body: Callable[[RelayError], dict[str, Any]]
    error_event: Callable[[RelayError], bytes]
    # What becomes of each request field when another protocol serves the call.
    field_table: fields.Table

    def request_ir(
        self, body: dict[str, Any], model: str, stream: bool, *, target: str, strict: bool
    ) -> tuple[ir.ChatRequest, tuple[str, ...]]:
        """The IR of a client's BODY for a TARGET protocol, and the advisory fields dropped;
        raises TranslationError for a field the target cannot honour."""
        screened = fields.screen(self.field_table, body, target=target, strict=strict)
        request = self.to_ir(screened.body, model, stream)
        if request.dropped and strict:
            raise ir.TranslationError(fields.strict_refusal(request.dropped[0]))
        return request, screened.dropped + tuple(request.dropped)


def _anthropic_error(err: RelayError) -> dict[str, Any]:
    return anthropic.error_body(err.status, err.message)


def _gemini_error(err: RelayError) -> dict[str, Any]:
    return gemini.error_body(err.status, err.message)


OPENAI = WireProtocol(
    name="openai",
    to_ir=lambda body, model, stream: openai_chat.request_to_ir(body),
    from_ir=lambda req, model: openai_chat.request_from_ir(req, upstream_model=model),
    response_to_ir=openai_chat.response_to_ir,
    response_from_ir=lambda resp, model, body: openai_chat.response_from_ir(resp, model=model),
    usage_of_body=lambda body: openai.usage_from(body.get("usage")),
    parser=openai_chat.StreamParser,
    writer=lambda model, body: openai_chat.StreamWriter(
        model, include_usage=openai_chat.stream_include_usage(body)
    ),
    error_body=openai.error_body,
    error_event=openai.stream_error_event,
    field_table=openai_chat.REQUEST_FIELDS,
)

ANTHROPIC = WireProtocol(
    name="anthropic",
    to_ir=lambda body, model, stream: anthropic.request_to_ir(body),
    from_ir=lambda req, model: anthropic.request_from_ir(req, upstream_model=model),
    response_to_ir=anthropic.response_to_ir,
    response_from_ir=lambda resp, model, body: anthropic.response_from_ir(resp, model=model),
    usage_of_body=lambda body: anthropic.usage_from(body.get("usage")),
    parser=anthropic.StreamParser,
    writer=lambda model, body: anthropic.StreamWriter(model),
    error_body=_anthropic_error,
    error_event=lambda err: anthropic.error_event(
        err.message, anthropic.error_type_for(err.status)
    ),
    field_table=anthropic.REQUEST_FIELDS,
)

GEMINI = WireProtocol(
    name="gemini",
    to_ir=lambda body, model, stream: gemini.request_to_ir(body, model=model, stream=stream),
    from_ir=lambda req, model: gemini.request_from_ir(req),
    response_to_ir=gemini.response_to_ir,
    response_from_ir=lambda resp, model, body: gemini.response_from_ir(resp, model=model),
    usage_of_body=lambda body: gemini.usage_from(body.get("usageMetadata")),
    parser=gemini.StreamParser,
    writer=lambda model, body: gemini.StreamWriter(model),
    error_body=_gemini_error,
    error_event=lambda err: gemini.StreamWriter("").error_event(err.message, err.status),
    field_table=gemini.REQUEST_FIELDS,
)

RESPONSES = WireProtocol(
    name="responses",
    to_ir=lambda body, model, stream: responses.request_to_ir(body),
    from_ir=lambda req, model: responses.request_from_ir(req, upstream_model=model),
    response_to_ir=responses.response_to_ir,
    response_from_ir=lambda resp, model, body: responses.response_from_ir(
        resp, model=model, namespaces=responses.namespaced_names(body)
    ),
    usage_of_body=lambda body: responses.usage_from(body.get("usage")),
    parser=responses.StreamParser,
    writer=lambda model, body: responses.StreamWriter(
        model, namespaces=responses.namespaced_names(body)
    ),
    error_body=openai.error_body,
    error_event=lambda err: responses.StreamWriter("").error_event(err.message, err.code),
    field_table=responses.REQUEST_FIELDS,
)
