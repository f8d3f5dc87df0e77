"""OpenAI Chat Completions to and from the internal representation (relay/formats/ir.py).

Used only when the client's protocol differs from the channel's; same-protocol calls pass
through relay/formats/openai.py untouched. Pure: no I/O, no logging of content.
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

import orjson

from billing.pricing import Usage
from relay.formats import cost, fields, ir
from relay.formats.openai import usage_from

_SEP = b"\n\n"
_DATA_URL = re.compile(r"data:(?P<type>[^;,]+)(?:;[^;,]*)*;base64,(?P<data>.*)", re.DOTALL)

_FINISH_TO_IR: dict[str, ir.FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}

MaxTokensField = Literal["max_completion_tokens", "max_tokens"]


def finish_to_ir(reason: Any) -> ir.FinishReason:
    """A Chat Completions finish_reason in the IR vocabulary (unknown values: stop)."""
    return _FINISH_TO_IR.get(reason, "stop") if isinstance(reason, str) else "stop"


def finish_from_ir(reason: ir.FinishReason) -> str:
    # Chat Completions has no "error" finish; the error itself travels separately
    # (StreamError, or the HTTP status), so the choice just ends.
    return "stop" if reason == "error" else reason


def stream_include_usage(body: dict[str, Any]) -> bool:
    """Whether the client asked for the usage-only chunk (the IR does not carry this)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


# --- request: client body -> IR -----------------------------------------------------


def _fail(message: str) -> ir.TranslationError:
    return ir.TranslationError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text_only(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(m == "text" for m in value))


_A, _S, _T = fields.Kind.ADVISORY, fields.Kind.SEMANTIC, fields.Kind.TRANSLATED

# What becomes of each Chat Completions field when another protocol serves the call
# (relay/formats/fields.py; docs/protocols.md lists the tables).
REQUEST_FIELDS = fields.Table(
    {
        "model": fields.translated(),
        "messages": fields.translated(),
        "stream": fields.translated(),
        "stream_options": fields.translated("include_usage is honoured by the stream writer"),
        "tools": fields.translated(),
        "tool_choice": fields.translated(),
        "parallel_tool_calls": fields.translated(),
        "response_format": fields.translated(),
        "max_completion_tokens": fields.translated(),
        "max_tokens": fields.translated(),
        "temperature": fields.translated(),
        "top_p": fields.translated(),
        "stop": fields.translated("Responses has no stop sequences", responses=_S),
        "reasoning_effort": fields.translated(),
        "user": fields.translated(),
        "seed": fields.advisory("sampling"),
        "frequency_penalty": fields.advisory("sampling"),
        "presence_penalty": fields.advisory("sampling"),
        "metadata": fields.advisory("bookkeeping"),
        "store": fields.advisory("bookkeeping"),
        "service_tier": fields.advisory("bookkeeping"),
        "prompt_cache_key": fields.advisory("cache hint"),
        "prompt_cache_retention": fields.advisory("cache hint"),
        "safety_identifier": fields.advisory("bookkeeping"),
        "verbosity": fields.advisory("style hint"),
        "prediction": fields.advisory("latency hint"),
        # Gateways' extension; the other protocols have it.
        "top_k": fields.advisory("sampling", anthropic=_T, gemini=_T),
        "n": fields.semantic("one choice only", inert=lambda v: v is None or v == 1),
        "logprobs": fields.semantic("no logprobs", inert=lambda v: v is None or v is False),
        "top_logprobs": fields.semantic("no logprobs", inert=lambda v: v is None or v == 0),
        "logit_bias": fields.semantic("token ids differ", inert=lambda v: v is None or v == {}),
        "audio": fields.semantic("text output only"),
        "modalities": fields.semantic("text output only", inert=_text_only),
        "functions": fields.semantic("send tools instead"),
        "function_call": fields.semantic("send tool_choice instead"),
        "web_search_options": fields.semantic("a server-side tool"),
    }
)


def _text_of(content: Any, where: str) -> list[ir.TextPart]:
    """Text content: a string, or a list of text parts."""
    if isinstance(content, str):
        return [ir.TextPart(content)]
    if not isinstance(content, list):
        raise _fail(f"'{where}' must be a string or a list of content parts.")
    parts: list[ir.TextPart] = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise _fail(f"'{where}[{i}]' must be a text part.")
        text = part.get("text")
        if not isinstance(text, str):
            raise _fail(f"'{where}[{i}].text' must be a string.")
        parts.append(ir.TextPart(text))
    return parts


def _image_part(part: dict[str, Any], where: str) -> ir.ImagePart:
    image = part.get("image_url")
    if isinstance(image, str):  # some clients send the URL directly
        image = {"url": image}
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        raise _fail(f"'{where}.image_url.url' must be a string.")
    url: str = image["url"]
    detail = image.get("detail") if isinstance(image.get("detail"), str) else None
    if url.startswith("data:"):
        match = _DATA_URL.fullmatch(url)
        if match is None:
            raise _fail(f"'{where}.image_url.url' must be an http(s) or base64 data: URL.")
        return ir.ImagePart(data=match["data"], media_type=match["type"], detail=detail)
    return ir.ImagePart(url=url, detail=detail)


def _user_parts(content: Any, where: str) -> list[ir.Part]:
    if isinstance(content, str):
        return [ir.TextPart(content)]
    if not isinstance(content, list):
        raise _fail(f"'{where}' must be a string or a list of content parts.")
    parts: list[ir.Part] = []
    for i, part in enumerate(content):
        at = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(ir.TextPart(part["text"]))
        elif kind == "image_url":
            parts.append(_image_part(part, at))
        elif kind in ("input_audio", "file"):
            raise _fail(f"'{at}': content parts of type '{kind}' cannot be translated.")
        else:
            raise _fail(f"'{at}' is not a valid content part.")
    return parts


def _assistant_parts(msg: dict[str, Any], where: str) -> list[ir.Part]:
    parts: list[ir.Part] = []
    reasoning = msg.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        parts.append(ir.ThinkingPart(reasoning))
    content = msg.get("content")
    if isinstance(content, list):
        for i, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            key = "text" if kind == "text" else "refusal" if kind == "refusal" else None
            if key is None or not isinstance(part.get(key), str):
                raise _fail(f"'{where}.content[{i}]' must be a text or refusal part.")
            parts.append(ir.TextPart(part[key]))
    elif isinstance(content, str):
        if content:
            parts.append(ir.TextPart(content))
    elif content is not None:
        raise _fail(f"'{where}.content' must be a string, a list of parts or null.")
    calls = msg.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise _fail(f"'{where}.tool_calls' must be a list.")
    for i, call in enumerate(calls or ()):
        at = f"{where}.tool_calls[{i}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or call.get("type", "function") != "function":
            raise _fail(f"'{at}' must be a function tool call.")
        if not isinstance(call.get("id"), str) or not isinstance(fn.get("name"), str):
            raise _fail(f"'{at}' needs an id and a function name.")
        arguments = fn.get("arguments", "")
        if not isinstance(arguments, str):
            raise _fail(f"'{at}.function.arguments' must be a JSON string.")
        parts.append(ir.ToolCallPart(id=call["id"], name=fn["name"], arguments=arguments))
    if msg.get("function_call") is not None:
        raise _fail(f"'{where}.function_call' is deprecated and cannot be translated.")
    return parts


def _messages(raw: Any) -> tuple[list[ir.TextPart], list[ir.Message]]:
    if not isinstance(raw, list) or not raw:
        raise _fail("'messages' must be a non-empty list.")
    system: list[ir.TextPart] = []
    messages: list[ir.Message] = []
    call_names: dict[str, str] = {}  # call id -> function name, for ToolResultPart.name
    for i, msg in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _fail(f"'{where}' must be an object.")
        role = msg.get("role")
        if role in ("system", "developer"):
            # The IR has one system prompt; a system message later in the conversation is
            # hoisted to it, in order.
            system.extend(_text_of(msg.get("content"), f"{where}.content"))
        elif role == "user":
            messages.append(ir.Message("user", _user_parts(msg.get("content"), f"{where}.content")))
        elif role == "assistant":
            parts = _assistant_parts(msg, where)
            for part in parts:
                if isinstance(part, ir.ToolCallPart):
                    call_names[part.id] = part.name
            messages.append(ir.Message("assistant", parts))
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str):
                raise _fail(f"'{where}.tool_call_id' must be a string.")
            content: list[ir.TextPart | ir.ImagePart] = list(
                _text_of(msg.get("content"), f"{where}.content")
            )
            result = ir.ToolResultPart(call_id, content, name=call_names.get(call_id))
            last = messages[-1] if messages else None
            if (
                last
                and last.role == "user"
                and all(isinstance(p, ir.ToolResultPart) for p in last.parts)
            ):
                last.parts.append(result)  # consecutive tool messages: one user turn
            else:
                messages.append(ir.Message("user", [result]))
        else:
            raise _fail(f"'{where}.role' must be system, developer, user, assistant or tool.")
    return system, messages


def _tools(raw: Any) -> list[ir.Tool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _fail("'tools' must be a list.")
    tools: list[ir.Tool] = []
    for i, tool in enumerate(raw):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or tool.get("type") != "function":
            raise _fail(f"'tools[{i}]': only function tools can be translated.")
        name = fn.get("name")
        description = fn.get("description") or ""
        parameters = fn.get("parameters") or {}
        if not isinstance(name, str) or not name:
            raise _fail(f"'tools[{i}].function.name' must be a non-empty string.")
        if not isinstance(description, str) or not isinstance(parameters, dict):
            raise _fail(f"'tools[{i}].function' has an invalid description or parameters.")
        tools.append(ir.Tool(name=name, description=description, parameters=parameters))
    return tools


def _tool_choice(choice: Any, parallel: Any) -> ir.ToolChoice | None:
    if parallel is not None and not isinstance(parallel, bool):
        raise _fail("'parallel_tool_calls' must be a boolean.")
    if choice is None:
        return None if parallel is None else ir.ToolChoice(parallel=parallel)
    if choice in ("auto", "none", "required"):
        return ir.ToolChoice(mode=choice, parallel=parallel)
    if isinstance(choice, dict) and choice.get("type") == "function":
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return ir.ToolChoice(mode="tool", name=fn["name"], parallel=parallel)
    raise _fail("'tool_choice' must be auto, none, required or a named function.")


def _response_format(raw: Any) -> ir.ResponseFormat | None:
    if raw is None:
        return None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind in ("text", "json_object"):
        return ir.ResponseFormat(kind=kind)
    if kind == "json_schema":
        spec = raw.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise _fail("'response_format.json_schema' must be an object with a schema.")
        strict = spec.get("strict")
        name = spec.get("name")
        return ir.ResponseFormat(
            kind="json_schema",
            schema=spec.get("schema") or {},
            name=name if isinstance(name, str) else None,
            strict=strict if isinstance(strict, bool) else None,
        )
    raise _fail("'response_format.type' must be text, json_object or json_schema.")


def _max_output(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not _is_int(value) or value < 1:
            raise _fail(f"'{name}' must be a positive integer.")
        return int(value)
    return None


def _optional_number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_number(value):
        raise _fail(f"'{name}' must be a number.")
    return float(value)


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and not _is_int(value):
        raise _fail(f"'{name}' must be an integer.")
    return value


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise _fail(f"'{name}' must be a string.")
    return value


def _stop(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return list(raw)
    raise _fail("'stop' must be a string or a list of strings.")


def request_to_ir(body: dict[str, Any]) -> ir.ChatRequest:
    """A client's Chat Completions body as an IR request; TranslationError names the field
    that is invalid or cannot be expressed (never quoting content)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("'model' must be a non-empty string.")
    stream = body.get("stream", False)
    if not isinstance(stream, bool | None):
        raise _fail("'stream' must be a boolean.")
    system, messages = _messages(body.get("messages"))
    return ir.ChatRequest(
        model=model,
        messages=messages,
        system=system,
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls")),
        response_format=_response_format(body.get("response_format")),
        max_output_tokens=_max_output(body),
        temperature=_optional_number(body, "temperature"),
        top_p=_optional_number(body, "top_p"),
        top_k=_optional_int(body, "top_k"),
        stop=_stop(body.get("stop")),
        stream=bool(stream),
        reasoning_effort=_optional_str(body, "reasoning_effort"),
        user=_optional_str(body, "user"),
    )


# --- request: IR -> upstream body ---------------------------------------------------


def _image_out(part: ir.ImagePart) -> dict[str, Any]:
    if part.data is not None:
        url = f"data:{part.media_type or 'application/octet-stream'};base64,{part.data}"
    elif part.url is not None:
        url = part.url
    else:
        raise _fail("An image has neither a URL nor data.")
    image: dict[str, Any] = {"url": url}
    if part.detail:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _content_out(parts: list[ir.TextPart | ir.ImagePart]) -> str | list[dict[str, Any]]:
    """A plain string when the content is one text, else a list of parts."""
    if len(parts) == 1 and isinstance(parts[0], ir.TextPart):
        return parts[0].text
    return [
        {"type": "text", "text": p.text} if isinstance(p, ir.TextPart) else _image_out(p)
        for p in parts
    ]


def _user_out(message: ir.Message) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    # Tool messages carry text only: images a tool returned follow in one user message.
    tool_images: list[ir.TextPart | ir.ImagePart] = []
    content: list[ir.TextPart | ir.ImagePart] = []
    for part in message.parts:
        if isinstance(part, ir.ToolResultPart):
            texts = [p.text for p in part.content if isinstance(p, ir.TextPart)]
            tool_images.extend(p for p in part.content if isinstance(p, ir.ImagePart))
            # is_error has no Chat Completions field; the result text itself says so.
            out.append({"role": "tool", "tool_call_id": part.call_id, "content": "".join(texts)})
        elif isinstance(part, ir.TextPart | ir.ImagePart):
            content.append(part)
        else:
            raise _fail("A user message holds a part Chat Completions cannot take.")
    if tool_images:
        out.append({"role": "user", "content": _content_out(tool_images)})
    if content:
        out.append({"role": "user", "content": _content_out(content)})
    return out


def _assistant_out(message: ir.Message) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, ir.TextPart):
            texts.append(part.text)
        elif isinstance(part, ir.ToolCallPart):
            calls.append(
                {
                    "id": part.id,
                    "type": "function",
                    "function": {"name": part.name, "arguments": part.arguments or "{}"},
                }
            )
        elif isinstance(part, ir.ThinkingPart):
            # OpenAI does not take reasoning back in history (DeepSeek asks clients not to
            # send reasoning_content either), so earlier thinking is dropped here.
            continue
        else:
            raise _fail("An assistant message holds a part Chat Completions cannot take.")
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        out["tool_calls"] = calls
    return out


def request_from_ir(
    req: ir.ChatRequest,
    *,
    upstream_model: str,
    max_tokens_field: MaxTokensField = "max_completion_tokens",
) -> dict[str, Any]:
    """The body for an OpenAI-compatible upstream. cache_control markers are dropped.

    `max_tokens_field`: OpenAI's reasoning models take only max_completion_tokens; some
    older OpenAI-compatible servers know only max_tokens.
    """
    if req.top_k is not None:
        raise _fail("'top_k' is not supported by OpenAI Chat Completions.")
    messages: list[dict[str, Any]] = [{"role": "system", "content": p.text} for p in req.system]
    for message in req.messages:
        if message.role == "user":
            messages.extend(_user_out(message))
        else:
            messages.append(_assistant_out(message))
    body: dict[str, Any] = {"model": upstream_model, "messages": messages}
    if req.tools:
        tools = []
        for tool in req.tools:
            fn: dict[str, Any] = {"name": tool.name}
            if tool.description:
                fn["description"] = tool.description
            if tool.parameters:
                fn["parameters"] = tool.parameters
            tools.append({"type": "function", "function": fn})
        body["tools"] = tools
        # OpenAI rejects tool_choice and parallel_tool_calls without tools, hence inside.
        choice = req.tool_choice
        if choice is not None:
            if choice.mode == "tool":
                body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
            else:
                body["tool_choice"] = choice.mode
            if choice.parallel is not None:
                body["parallel_tool_calls"] = choice.parallel
    fmt = req.response_format
    if fmt is not None:
        if fmt.kind == "json_schema":
            spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema or {}}
            if fmt.strict is not None:
                spec["strict"] = fmt.strict
            body["response_format"] = {"type": "json_schema", "json_schema": spec}
        else:
            body["response_format"] = {"type": fmt.kind}
    if req.max_output_tokens is not None:
        body[max_tokens_field] = req.max_output_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.stop:
        body["stop"] = list(req.stop)
    # A token budget (Anthropic/Gemini) is not mapped to reasoning_effort: reasoning models
    # think without it, and models that cannot reason would reject the field.
    if req.reasoning_effort is not None:
        body["reasoning_effort"] = req.reasoning_effort
    if req.user is not None:
        body["user"] = req.user
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # the meter needs it
    return body


# --- response ------------------------------------------------------------------------


def _reasoning(obj: dict[str, Any]) -> str | None:
    # reasoning_content: DeepSeek, vLLM, Ark; reasoning: OpenRouter and newer vLLM.
    for key in ("reasoning_content", "reasoning"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def response_to_ir(body: dict[str, Any]) -> ir.ChatResponse:
    """An upstream's chat.completion body as an IR response."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _fail("The upstream response has no choices.")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise _fail("The upstream response has no message.")
    parts: list[ir.Part] = []
    reasoning = _reasoning(message)
    if reasoning is not None:
        parts.append(ir.ThinkingPart(reasoning))
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append(ir.TextPart(content))
    elif isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append(ir.TextPart(message["refusal"]))
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            arguments = fn.get("arguments")
            parts.append(
                ir.ToolCallPart(
                    id=str(call.get("id") or ""),
                    name=fn["name"],
                    arguments=arguments if isinstance(arguments, str) else "",
                )
            )
    created = body.get("created")
    return ir.ChatResponse(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        parts=parts,
        finish_reason=finish_to_ir(choice.get("finish_reason")),
        usage=usage_from(body.get("usage")),
        created=created if isinstance(created, int) and not isinstance(created, bool) else 0,
    )


def _completion_id(raw: str) -> str:
    return raw if raw.startswith("chatcmpl-") else f"chatcmpl-{raw}"


def usage_to_openai(usage: Usage) -> dict[str, Any]:
    """An OpenAI usage object; prompt_tokens counts cached tokens too, as OpenAI's does."""
    prompt_details: dict[str, int] = {"cached_tokens": usage.cache_read_tokens}
    if usage.cache_write_tokens:
        # Not an OpenAI field, but what OpenRouter sends and usage_from reads back.
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def response_from_ir(resp: ir.ChatResponse, *, model: str) -> dict[str, Any]:
    """A chat.completion body for the client."""
    texts = [p.text for p in resp.parts if isinstance(p, ir.TextPart)]
    thinking = [p.text for p in resp.parts if isinstance(p, ir.ThinkingPart)]
    calls = [
        {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments}}
        for p in resp.parts
        if isinstance(p, ir.ToolCallPart)
    ]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    body: dict[str, Any] = {
        "id": _completion_id(resp.id),
        "object": "chat.completion",
        "created": resp.created or int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_from_ir(resp.finish_reason),
            }
        ],
    }
    if resp.usage is not None:
        body["usage"] = usage_to_openai(resp.usage)
    return body


# --- streams ---------------------------------------------------------------------------


class StreamParser:
    """An upstream's chat.completion.chunk SSE stream as IR events.

    Bytes may be split anywhere. StreamFinish comes once, at `[DONE]` or `close()`, so it
    carries both the finish_reason chunk's reason and the usage-only chunk after it.
    """

    __slots__ = ("_buf", "_done", "_finish", "_pending", "_started", "_tools", "_usage")

    def __init__(self) -> None:
        self._buf = b""
        self._started = False
        self._done = False
        self._finish: ir.FinishReason | None = None
        self._usage: Usage | None = None
        self._tools: set[int] = set()  # indexes whose ToolCallStart went out
        self._pending: dict[int, str] = {}  # arguments seen before the call's name

    def feed(self, chunk: bytes) -> list[ir.StreamEvent]:
        data = self._buf + chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")  # a lone trailing \r waits for its \n
        events: list[ir.StreamEvent] = []
        while (end := data.find(_SEP)) >= 0:
            events.extend(self._event(data[:end]))
            data = data[end + 2 :]
        self._buf = data
        return events

    def close(self) -> list[ir.StreamEvent]:
        rest, self._buf = self._buf, b""
        events = self._event(rest.rstrip(b"\r\n")) if rest.strip() else []
        if not self._done:
            events.extend(self._end())
        return events

    def _end(self) -> list[ir.StreamEvent]:
        self._done = True
        if self._finish is None:
            return [ir.StreamError("The upstream stream ended before the answer was complete.")]
        return [ir.StreamFinish(self._finish, self._usage)]

    def _event(self, raw: bytes) -> list[ir.StreamEvent]:
        if self._done:
            return []
        lines = [line[5:] for line in raw.split(b"\n") if line.startswith(b"data:")]
        if not lines:
            return []  # comments (": keep-alive") and event-only blocks
        data = b"\n".join(line[1:] if line.startswith(b" ") else line for line in lines)
        if data.strip() == b"[DONE]":
            if self._finish is None and self._started:
                self._finish = "stop"
            return self._end()
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._done = True
            return [ir.StreamError("The upstream sent an unreadable stream event.")]
        if not isinstance(obj, dict):
            return []
        if obj.get("error"):
            self._done = True
            return [_stream_error(obj["error"])]
        return self._chunk(obj)

    def _chunk(self, obj: dict[str, Any]) -> list[ir.StreamEvent]:
        events: list[ir.StreamEvent] = []
        if not self._started:
            self._started = True
            events.append(
                ir.StreamStart(id=str(obj.get("id") or ""), model=str(obj.get("model") or ""))
            )
        if obj.get("usage"):
            self._usage = usage_from(obj["usage"])
        choices = obj.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                events.extend(self._delta(delta))
            if choice.get("finish_reason"):
                self._finish = finish_to_ir(choice["finish_reason"])
        return events

    def _delta(self, delta: dict[str, Any]) -> list[ir.StreamEvent]:
        events: list[ir.StreamEvent] = []
        reasoning = _reasoning(delta)
        if reasoning is not None:
            events.append(ir.ThinkingDelta(reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            events.append(ir.TextDelta(content))
        calls = delta.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else ()):
            if not isinstance(call, dict):
                continue
            index = call["index"] if _is_int(call.get("index")) else position
            fn = call.get("function")
            if not isinstance(fn, dict):
                fn = {}
            raw_arguments = fn.get("arguments")
            arguments = raw_arguments if isinstance(raw_arguments, str) else ""
            if index not in self._tools:
                name = fn.get("name")
                if not isinstance(name, str) or not name:
                    self._pending[index] = self._pending.get(index, "") + arguments
                    continue
                self._tools.add(index)
                call_id = call.get("id") if isinstance(call.get("id"), str) else ""
                events.append(ir.ToolCallStart(index, call_id or f"call_{index}", name))
                arguments = self._pending.pop(index, "") + arguments
            if arguments:
                events.append(ir.ToolCallDelta(index, arguments))
        return events


def _stream_error(error: Any) -> ir.StreamError:
    if isinstance(error, dict):
        message = error.get("message")
        kind = error.get("type")
        return ir.StreamError(
            message if isinstance(message, str) and message else "The upstream failed.",
            kind if isinstance(kind, str) and kind else "upstream_error",
        )
    return ir.StreamError(error if isinstance(error, str) else "The upstream failed.")


class StreamWriter:
    """IR stream events as the chat.completion.chunk SSE a Chat Completions client expects.

    Tool calls are renumbered 0, 1, 2... in the order they start, whatever indexes the
    source protocol used. After StreamFinish (or StreamError) nothing more is written.
    """

    __slots__ = ("_created", "_done", "_id", "_include_usage", "_model", "_started", "_tools")

    def __init__(self, model: str, *, include_usage: bool, created: int | None = None) -> None:
        self._model = model
        self._include_usage = include_usage
        self._created = created if created is not None else int(time.time())
        self._id = "chatcmpl-"
        self._started = False
        self._done = False
        self._tools: dict[int, int] = {}  # IR index -> Chat Completions index

    def write(self, event: ir.StreamEvent) -> bytes:
        if self._done:
            return b""
        if isinstance(event, ir.StreamError):
            self._done = True
            error = {"message": event.message, "type": event.type, "param": None, "code": None}
            return _sse({"error": error})
        out = b""
        if not self._started:
            self._started = True
            if isinstance(event, ir.StreamStart):
                self._id = _completion_id(event.id)
            out = self._chunk({"role": "assistant", "content": ""})
        if isinstance(event, ir.StreamStart):
            return out
        if isinstance(event, ir.TextDelta):
            return out + self._chunk({"content": event.text})
        if isinstance(event, ir.ThinkingDelta):
            return out + self._chunk({"reasoning_content": event.text})
        if isinstance(event, ir.ToolCallStart):
            index = self._tools.setdefault(event.index, len(self._tools))
            call = {
                "index": index,
                "id": event.id,
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
            return out + self._chunk({"tool_calls": [call]})
        if isinstance(event, ir.ToolCallDelta):
            if event.index not in self._tools:
                return out  # arguments of a call that never started: nothing to attach to
            call = {"index": self._tools[event.index], "function": {"arguments": event.arguments}}
            return out + self._chunk({"tool_calls": [call]})
        self._done = True
        out += self._chunk({}, finish_from_ir(event.reason))
        if self._include_usage and event.usage is not None:
            usage = self._base()
            usage["choices"] = []
            usage["usage"] = usage_to_openai(event.usage)
            if event.cost is not None:
                usage["usage"][cost.FIELD] = cost.usd(event.cost)
            out += _sse(usage)
        return out + b"data: [DONE]" + _SEP

    def _base(self) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = self._base()
        chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if self._include_usage:
            chunk["usage"] = None
        return _sse(chunk)


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + _SEP
