"""The internal representation every protocol translates to and from.

Same-protocol calls never come here (the body passes through untouched). A call whose
client protocol differs from its channel's goes: client body -> `ChatRequest` -> upstream
body, then upstream response -> `ChatResponse` (or stream events -> `StreamEvent`s) ->
client body. Each module in relay/formats/ converts one protocol to and from these types;
nothing else in the relay knows a protocol's field names.

Content is carried, never logged: these objects must not be put in log messages or
exception texts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from billing.pricing import Usage

Role = Literal["user", "assistant"]
# Why generation stopped, in the vocabulary every protocol maps onto.
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


@dataclass(slots=True)
class TextPart:
    text: str
    # Anthropic prompt caching marker, kept only when the upstream is Anthropic.
    cache_control: dict[str, Any] | None = None


@dataclass(slots=True)
class ImagePart:
    """An image by URL or inline base64 data (exactly one of the two)."""

    url: str | None = None
    data: str | None = None  # base64, no data: prefix
    media_type: str | None = None  # e.g. image/png (required with data)
    detail: str | None = None  # OpenAI's low/high/auto


@dataclass(slots=True)
class ToolCallPart:
    """The model asking for a tool: arguments as a JSON text (as OpenAI carries them)."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class ToolResultPart:
    """What the caller's tool returned for the call `call_id`."""

    call_id: str
    content: list[TextPart | ImagePart]
    is_error: bool = False
    name: str | None = None  # Gemini matches results by function name


@dataclass(slots=True)
class ThinkingPart:
    """Reasoning content, where both sides have it (Anthropic thinking, Gemini thoughts,
    OpenAI-compatible `reasoning_content`). `signature` round-trips Anthropic's."""

    text: str
    signature: str | None = None


Part = TextPart | ImagePart | ToolCallPart | ToolResultPart | ThinkingPart


@dataclass(slots=True)
class Message:
    role: Role
    parts: list[Part]


@dataclass(slots=True)
class Tool:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)  # JSON Schema


@dataclass(slots=True)
class ToolChoice:
    """auto: model decides; none: no tools; required: some tool; tool: the named one."""

    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None
    parallel: bool | None = None  # None: the protocol's default


@dataclass(slots=True)
class ResponseFormat:
    """Plain text, any JSON object, or JSON following `schema`."""

    kind: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[Message]
    system: list[TextPart] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    # Reasoning budget in tokens (Anthropic thinking, Gemini thinkingBudget) or effort
    # (OpenAI reasoning_effort: low/medium/high); None: the model's default.
    reasoning_budget: int | None = None
    reasoning_effort: str | None = None
    user: str | None = None
    # Names of parts of the request left out as advisory (e.g. an offered web search tool),
    # reported like the advisory fields of relay/formats/fields.py.
    dropped: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    parts: list[Part]  # assistant output: text, thinking and tool calls, in order
    finish_reason: FinishReason
    usage: Usage | None
    created: int = 0  # unix seconds


# --- stream events ------------------------------------------------------------------
# A stream in any protocol is parsed into these events, and any protocol's stream can be
# written from them. Tool call arguments arrive in pieces; `index` tells parallel calls
# apart.


@dataclass(slots=True)
class StreamStart:
    id: str
    model: str
    usage: Usage | None = None  # Anthropic reports the input side up front


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ThinkingDelta:
    text: str
    signature: str | None = None


@dataclass(slots=True)
class ToolCallStart:
    index: int
    id: str
    name: str


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    arguments: str  # a piece of the JSON text


@dataclass(slots=True)
class StreamFinish:
    reason: FinishReason
    usage: Usage | None = None
    # Micro-USD the call is billed, set by the relay (never by a parser) when the key
    # shows costs; writers put it where their protocol's SDK reads it.
    cost: int | None = None


@dataclass(slots=True)
class StreamError:
    message: str
    type: str = "upstream_error"


StreamEvent = (
    StreamStart | TextDelta | ThinkingDelta | ToolCallStart | ToolCallDelta | StreamFinish
    | StreamError
)  # fmt: skip


class TranslationError(ValueError):
    """The request cannot be expressed in the target protocol (rendered as a 400)."""
