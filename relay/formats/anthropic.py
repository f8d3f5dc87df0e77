"""Anthropic Messages wire format: requests, responses, SSE streams, usage and errors,
converted to and from the internal representation in `relay.formats.ir`.

Every function here is pure (no I/O). Error texts name fields, never content.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, TypeGuard

import orjson

from billing.pricing import Usage
from relay.formats import cost, fields, ir, limits

# Anthropic requires max_tokens; used when the client did not say.
DEFAULT_MAX_TOKENS = 4096

# Budgets for an effort-only reasoning request (OpenAI reasoning_effort); Anthropic thinking
# takes a token budget of at least 1024.
_EFFORT_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}

_TO_IR_FINISH: dict[str, ir.FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_FROM_IR_FINISH: dict[ir.FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}

# https://docs.claude.com/en/api/errors, plus the types the official SDK knows.
_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "billing_error",
        "permission_error",
        "not_found_error",
        "conflict_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "timeout_error",
        "overloaded_error",
    }
)
_STATUS_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Content blocks that exist in Anthropic but have no place in the IR: refused by name.
_UNSUPPORTED_BLOCKS = frozenset(
    {
        "document",
        "search_result",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
        "tool_reference",
    }
)
_A, _S, _T = fields.Kind.ADVISORY, fields.Kind.SEMANTIC, fields.Kind.TRANSLATED

# What becomes of each Messages field when another protocol serves the call
# (relay/formats/fields.py; docs/protocols.md lists the tables).
REQUEST_FIELDS = fields.Table(
    {
        "model": fields.translated(),
        "messages": fields.translated(),
        "system": fields.translated(),
        "max_tokens": fields.translated(),
        "stop_sequences": fields.translated("Responses has no stop sequences", responses=_S),
        "stream": fields.translated(),
        "temperature": fields.translated(),
        "top_p": fields.translated(),
        "top_k": fields.translated(openai=_A, responses=_A),
        "tools": fields.translated(),
        "tool_choice": fields.translated(),
        "thinking": fields.translated("as reasoning effort or thinking budget"),
        "output_config": fields.translated("effort and json_schema format"),
        "metadata": fields.translated("user_id as the end-user id"),
        "context_management": fields.advisory("context-management hint"),
        "cache_control": fields.advisory("cache hint"),
        "service_tier": fields.advisory("bookkeeping"),
        "inference_geo": fields.advisory("routing hint"),
        "container": fields.semantic("an Anthropic-side container"),
        "mcp_servers": fields.semantic("server-side tools"),
    }
)

_TOOL_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)


# --- finish reasons, usage, errors ---------------------------------------------------------


def finish_reason_to_ir(stop_reason: str | None) -> ir.FinishReason:
    return _TO_IR_FINISH.get(stop_reason or "", "stop")


def finish_reason_from_ir(reason: ir.FinishReason) -> str:
    return _FROM_IR_FINISH[reason]


def _count(value: Any) -> int:
    return limits.token_count(value)


def usage_from(obj: Any) -> Usage | None:
    """IR usage from an Anthropic `usage` object.

    Anthropic's `input_tokens` excludes cache reads and writes; the IR counts all three.
    """
    if not isinstance(obj, dict):
        return None
    cache_read = _count(obj.get("cache_read_input_tokens"))
    cache_write = _count(obj.get("cache_creation_input_tokens"))
    # The split of cache writes by lifetime; 1-hour writes cost more.
    creation = obj.get("cache_creation")
    long_writes = _count(creation.get("ephemeral_1h_input_tokens")) if _is_dict(creation) else 0
    details = obj.get("output_tokens_details")
    thinking = _count(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    return Usage(
        input_tokens=_count(obj.get("input_tokens")) + cache_read + cache_write,
        output_tokens=_count(obj.get("output_tokens")),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=min(long_writes, cache_write),
        reasoning_tokens=thinking,
    )


def _is_dict(value: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict)


def _usage_to_wire(usage: Usage | None) -> dict[str, Any]:
    if usage is None:
        usage = Usage()
    cache_read = max(0, usage.cache_read_tokens)
    cache_write = max(0, usage.cache_write_tokens)
    long_writes = min(max(0, usage.cache_write_1h_tokens), cache_write)
    return {
        "input_tokens": max(0, usage.input_tokens - cache_read - cache_write),
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache_write - long_writes,
            "ephemeral_1h_input_tokens": long_writes,
        },
        "output_tokens": max(0, usage.output_tokens),
    }


def error_type_for(status: int) -> str:
    if status in _STATUS_ERROR_TYPES:
        return _STATUS_ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(status: int, message: str, type: str = "") -> dict[str, Any]:  # noqa: A002
    """An Anthropic error body. `type` is kept when it is an Anthropic error type, else the
    type follows the HTTP status."""
    kind = type if type in _ERROR_TYPES else error_type_for(status)
    return {"type": "error", "error": {"type": kind, "message": message}}


def _sse(event: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def error_event(message: str, type: str = "api_error") -> bytes:  # noqa: A002
    """An SSE `error` event, for failures after the stream has started."""
    kind = type if type in _ERROR_TYPES else "api_error"
    return _sse("error", {"type": "error", "error": {"type": kind, "message": message}})


# --- client request -> IR ----------------------------------------------------------------


def _fail(message: str) -> ir.TranslationError:
    return ir.TranslationError(message)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cache_control(block: dict[str, Any], where: str) -> dict[str, Any] | None:
    value = block.get("cache_control")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(f"{where}.cache_control must be an object.")
    return value


def _text_part(block: dict[str, Any], where: str) -> ir.TextPart:
    text = block.get("text")
    if not isinstance(text, str):
        raise _fail(f"{where}.text must be a string.")
    return ir.TextPart(text=text, cache_control=_cache_control(block, where))


def _image_part(block: dict[str, Any], where: str) -> ir.ImagePart:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _fail(f"{where}.source must be an object.")
    kind = source.get("type")
    if kind == "base64":
        data, media_type = source.get("data"), source.get("media_type")
        if not isinstance(data, str) or not isinstance(media_type, str):
            raise _fail(f"{where}.source needs string 'data' and 'media_type'.")
        return ir.ImagePart(data=data, media_type=media_type)
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise _fail(f"{where}.source.url must be a string.")
        return ir.ImagePart(url=url)
    raise _fail(f"{where}.source: only base64 and url image sources can be translated.")


def _tool_result_part(
    block: dict[str, Any], where: str, tool_names: dict[str, str]
) -> ir.ToolResultPart:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _fail(f"{where}.tool_use_id must be a non-empty string.")
    raw = block.get("content")
    content: list[ir.TextPart | ir.ImagePart] = []
    if isinstance(raw, str):
        content.append(ir.TextPart(text=raw))
    elif isinstance(raw, list):
        for j, inner in enumerate(raw):
            inner_where = f"{where}.content[{j}]"
            if not isinstance(inner, dict):
                raise _fail(f"{inner_where} must be an object.")
            kind = inner.get("type")
            if kind == "text":
                content.append(_text_part(inner, inner_where))
            elif kind == "image":
                content.append(_image_part(inner, inner_where))
            else:
                raise _fail(f"{inner_where}: only text and image tool results can be translated.")
    elif raw is not None:
        raise _fail(f"{where}.content must be a string or a list of blocks.")
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise _fail(f"{where}.is_error must be a boolean.")
    return ir.ToolResultPart(
        call_id=call_id, content=content, is_error=bool(is_error), name=tool_names.get(call_id)
    )


def _tool_call_part(block: dict[str, Any], where: str) -> ir.ToolCallPart:
    call_id, name, args = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise _fail(f"{where} needs string 'id' and 'name'.")
    if not isinstance(args, dict):
        raise _fail(f"{where}.input must be an object.")
    return ir.ToolCallPart(id=call_id, name=name, arguments=orjson.dumps(args).decode())


def _message_parts(
    content: Any, role: ir.Role, where: str, tool_names: dict[str, str]
) -> list[ir.Part]:
    if isinstance(content, str):
        return [ir.TextPart(text=content)]
    if not isinstance(content, list):
        raise _fail(f"{where}.content must be a string or a list of blocks.")
    parts: list[ir.Part] = []
    for j, block in enumerate(content):
        block_where = f"{where}.content[{j}]"
        if not isinstance(block, dict):
            raise _fail(f"{block_where} must be an object.")
        kind = block.get("type")
        if kind == "text":
            parts.append(_text_part(block, block_where))
        elif kind == "image":
            parts.append(_image_part(block, block_where))
        elif kind == "tool_use" and role == "assistant":
            call = _tool_call_part(block, block_where)
            tool_names[call.id] = call.name
            parts.append(call)
        elif kind == "tool_result" and role == "user":
            parts.append(_tool_result_part(block, block_where, tool_names))
        elif kind == "thinking" and role == "assistant":
            text, signature = block.get("thinking"), block.get("signature")
            if not isinstance(text, str) or not (signature is None or isinstance(signature, str)):
                raise _fail(f"{block_where} needs a string 'thinking'.")
            parts.append(ir.ThinkingPart(text=text, signature=signature))
        elif kind == "redacted_thinking" and role == "assistant":
            # Encrypted reasoning only Anthropic can read; request_to_ir runs only when the
            # upstream is another provider, which could not use it.
            continue
        elif isinstance(kind, str) and kind in _UNSUPPORTED_BLOCKS:
            raise _fail(f"{block_where}: {kind} blocks cannot be sent to this model's provider.")
        else:
            raise _fail(f"{block_where}: unsupported content block type for the {role} role.")
    return parts


def _system(value: Any) -> list[ir.TextPart]:
    if value is None:
        return []
    if isinstance(value, str):
        return [ir.TextPart(text=value)] if value else []
    if not isinstance(value, list):
        raise _fail("system must be a string or a list of text blocks.")
    parts = []
    for i, block in enumerate(value):
        where = f"system[{i}]"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _fail(f"{where} must be a text block.")
        parts.append(_text_part(block, where))
    return parts


def _tools(value: Any) -> list[ir.Tool]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail("tools must be a list.")
    tools = []
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _fail(f"{where} must be an object.")
        if tool.get("type") not in (None, "custom"):
            raise _fail(f"{where}: Anthropic server tools cannot be sent to this model's provider.")
        name, description = tool.get("name"), tool.get("description", "")
        schema = tool.get("input_schema")
        if not isinstance(name, str) or not name:
            raise _fail(f"{where}.name must be a non-empty string.")
        if not isinstance(description, str):
            raise _fail(f"{where}.description must be a string.")
        if not isinstance(schema, dict):
            raise _fail(f"{where}.input_schema must be an object.")
        tools.append(ir.Tool(name=name, description=description, parameters=schema))
    return tools


def _tool_choice(value: Any) -> ir.ToolChoice | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail("tool_choice must be an object.")
    kind = value.get("type")
    disable = value.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise _fail("tool_choice.disable_parallel_tool_use must be a boolean.")
    parallel = None if disable is None else not disable
    if kind == "auto":
        return ir.ToolChoice(mode="auto", parallel=parallel)
    if kind == "any":
        return ir.ToolChoice(mode="required", parallel=parallel)
    if kind == "none":
        return ir.ToolChoice(mode="none")
    if kind == "tool":
        name = value.get("name")
        if not isinstance(name, str) or not name:
            raise _fail("tool_choice.name must be a non-empty string.")
        return ir.ToolChoice(mode="tool", name=name, parallel=parallel)
    raise _fail("tool_choice.type must be one of auto, any, tool, none.")


def request_to_ir(body: dict[str, Any]) -> ir.ChatRequest:
    """The IR of a client's Messages request; invalid shapes raise `ir.TranslationError`."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("model must be a non-empty string.")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise _fail("messages must be a non-empty list.")
    tool_names: dict[str, str] = {}
    messages = []
    for i, message in enumerate(raw_messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _fail(f"{where} must be an object.")
        role = message.get("role")
        if role != "user" and role != "assistant":
            raise _fail(f"{where}.role must be user or assistant.")
        parts = _message_parts(message.get("content"), role, where, tool_names)
        messages.append(ir.Message(role=role, parts=parts))

    req = ir.ChatRequest(
        model=model,
        messages=messages,
        system=_system(body.get("system")),
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
    )
    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        if not _is_int(max_tokens) or max_tokens < 1:
            raise _fail("max_tokens must be a positive integer.")
        req.max_output_tokens = max_tokens
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and not _is_number(value):
            raise _fail(f"{name} must be a number.")
    req.temperature = body.get("temperature")
    req.top_p = body.get("top_p")
    top_k = body.get("top_k")
    if top_k is not None and not _is_int(top_k):
        raise _fail("top_k must be an integer.")
    req.top_k = top_k
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _fail("stop_sequences must be a list of strings.")
        req.stop = list(stop)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _fail("stream must be a boolean.")
    req.stream = stream
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        req.user = metadata["user_id"]
    _thinking_to_ir(body, req)
    return req


def _thinking_to_ir(body: dict[str, Any], req: ir.ChatRequest) -> None:
    output_config = body.get("output_config")
    if output_config is not None and not isinstance(output_config, dict):
        raise _fail("output_config must be an object.")
    output_config = output_config or {}
    effort = output_config.get("effort")
    if effort is not None and not isinstance(effort, str):
        raise _fail("output_config.effort must be a string.")
    fmt = output_config.get("format")
    if fmt is not None:
        if not (
            isinstance(fmt, dict)
            and fmt.get("type") == "json_schema"
            and isinstance(fmt.get("schema"), dict)
        ):
            raise _fail("output_config.format must be a json_schema format with a schema.")
        req.response_format = ir.ResponseFormat(kind="json_schema", schema=fmt["schema"])

    thinking = body.get("thinking")
    if thinking is None:
        req.reasoning_effort = effort
        return
    if not isinstance(thinking, dict):
        raise _fail("thinking must be an object.")
    kind = thinking.get("type")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not _is_int(budget) or budget < 1:
            raise _fail("thinking.budget_tokens must be a positive integer.")
        req.reasoning_budget = budget
        req.reasoning_effort = effort
    elif kind == "adaptive":
        # The model decides how much to think; Anthropic's default effort is high.
        req.reasoning_effort = effort or "high"
    elif kind != "disabled":
        raise _fail("thinking.type must be enabled, adaptive or disabled.")


# --- IR -> upstream request --------------------------------------------------------------


def _tool_id(call_id: str) -> str:
    # Anthropic accepts only [a-zA-Z0-9_-] in tool_use ids; the mapping is deterministic
    # so a call and its result still match.
    return _TOOL_ID_UNSAFE.sub("_", call_id) or "toolu_empty"


def _tool_input(arguments: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    value = limits.json_object(arguments)
    if value is None:
        raise _fail(
            f"Tool call arguments must be a JSON object nested at most {limits.MAX_NESTING} deep."
        )
    return value


def _text_block(part: ir.TextPart) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": part.text}
    if part.cache_control is not None:
        block["cache_control"] = part.cache_control
    return block


def _image_block(part: ir.ImagePart) -> dict[str, Any]:
    if part.data is not None:
        if not part.media_type:
            raise _fail("An inline image needs its media type.")
        source = {"type": "base64", "media_type": part.media_type, "data": part.data}
    elif part.url is not None:
        match = _DATA_URL.fullmatch(part.url)
        if match:
            source = {"type": "base64", "media_type": match["type"], "data": match["data"]}
        else:
            source = {"type": "url", "url": part.url}
    else:
        raise _fail("An image needs a URL or inline data.")
    return {"type": "image", "source": source}


def _block(part: ir.Part) -> dict[str, Any] | None:
    if isinstance(part, ir.TextPart):
        # Anthropic rejects empty text blocks; an empty one says nothing anyway.
        return _text_block(part) if part.text else None
    if isinstance(part, ir.ImagePart):
        return _image_block(part)
    if isinstance(part, ir.ToolCallPart):
        return {
            "type": "tool_use",
            "id": _tool_id(part.id),
            "name": part.name,
            "input": _tool_input(part.arguments),
        }
    if isinstance(part, ir.ToolResultPart):
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": _tool_id(part.call_id)}
        content = [
            _text_block(p) if isinstance(p, ir.TextPart) else _image_block(p)
            for p in part.content
            if not (isinstance(p, ir.TextPart) and not p.text)
        ]
        if content:
            block["content"] = content
        if part.is_error:
            block["is_error"] = True
        return block
    # Anthropic verifies the signature of earlier thinking blocks; reasoning from another
    # provider has none and is left out (Anthropic drops earlier turns' thinking anyway).
    if part.signature is None:
        return None
    return {"type": "thinking", "thinking": part.text, "signature": part.signature}


def _messages_from_ir(messages: list[ir.Message]) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = []
    for message in messages:
        blocks = [b for b in map(_block, message.parts) if b is not None]
        if not blocks:
            continue
        # Anthropic requires alternating roles: consecutive same-role turns become one.
        if merged and merged[-1]["role"] == message.role:
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": message.role, "content": blocks})
    for turn in merged:
        if turn["role"] == "user":
            # tool_result blocks must come first in their user message.
            content = turn["content"]
            turn["content"] = [b for b in content if b["type"] == "tool_result"] + [
                b for b in content if b["type"] != "tool_result"
            ]
    return merged


def _json_instruction(fmt: ir.ResponseFormat) -> str | None:
    # Not output_config.format: Anthropic's native structured output exists only on some
    # models and Anthropic-compatible upstreams, so a system instruction, which every
    # model follows, is the portable way to ask for JSON. Appended after the caller's own
    # system blocks so their cache_control prefixes stay intact.
    if fmt.kind == "json_object":
        return "Respond only with a single valid JSON object, with no text before or after it."
    if fmt.kind == "json_schema":
        schema = orjson.dumps(fmt.schema or {}).decode()
        return (
            "Respond only with a single valid JSON value, with no text before or after it, "
            f"that conforms to this JSON Schema: {schema}"
        )
    return None


def _tool_choice_from_ir(choice: ir.ToolChoice | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    kinds = {"auto": "auto", "none": "none", "required": "any", "tool": "tool"}
    out: dict[str, Any] = {"type": kinds[choice.mode]}
    if choice.mode == "tool":
        if not choice.name:
            raise _fail("tool_choice names no tool.")
        out["name"] = choice.name
    if choice.parallel is not None and choice.mode != "none":
        out["disable_parallel_tool_use"] = not choice.parallel
    return out


def request_from_ir(req: ir.ChatRequest, *, upstream_model: str) -> dict[str, Any]:
    """A Messages request for an Anthropic upstream."""
    max_tokens = req.max_output_tokens or DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": upstream_model}
    system = [_text_block(p) for p in req.system if p.text]
    if req.response_format is not None:
        instruction = _json_instruction(req.response_format)
        if instruction:
            system.append({"type": "text", "text": instruction})
    if system:
        body["system"] = system
    body["messages"] = _messages_from_ir(req.messages)
    if req.tools:
        body["tools"] = [
            {
                "name": tool.name,
                **({"description": tool.description} if tool.description else {}),
                "input_schema": tool.parameters or {"type": "object", "properties": {}},
            }
            for tool in req.tools
        ]
        choice = _tool_choice_from_ir(req.tool_choice)
        if choice is not None:
            body["tool_choice"] = choice
    if req.temperature is not None:
        if not 0 <= req.temperature <= 1:
            raise _fail("temperature must be between 0 and 1 for this model.")
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.top_k is not None:
        body["top_k"] = req.top_k
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    budget = req.reasoning_budget
    if budget is None and req.reasoning_effort is not None:
        effort = req.reasoning_effort.lower()
        # "none" (OpenAI's way to switch reasoning off) means no thinking block at all.
        budget = 0 if effort == "none" else _EFFORT_BUDGETS.get(effort, _EFFORT_BUDGETS["high"])
    if budget is not None and budget > 0:
        if budget > limits.MAX_TOKENS:  # and max_tokens + budget must fit an int64
            raise _fail("The reasoning budget is larger than any model's.")
        budget = max(budget, 1024)
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        # Anthropic counts thinking inside max_tokens and requires budget < max_tokens;
        # the caller's limit is kept for the visible answer.
        if max_tokens <= budget:
            max_tokens += budget
    body["max_tokens"] = max_tokens
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if req.stream:
        body["stream"] = True
    return body


# --- responses --------------------------------------------------------------------------


def response_to_ir(body: dict[str, Any]) -> ir.ChatResponse:
    """The IR of an Anthropic (upstream) message."""
    parts: list[ir.Part] = []
    content = body.get("content")
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(ir.TextPart(text=block["text"]))
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            signature = block.get("signature")
            parts.append(
                ir.ThinkingPart(
                    text=block["thinking"],
                    signature=signature if isinstance(signature, str) else None,
                )
            )
        elif kind == "tool_use":
            args = block.get("input")
            parts.append(
                ir.ToolCallPart(
                    id=str(block.get("id") or ""),
                    name=str(block.get("name") or ""),
                    arguments=orjson.dumps(_upstream_input(args)).decode(),
                )
            )
        # redacted_thinking and server tool blocks have no IR form; the visible answer is
        # in the text blocks.
    stop_reason = body.get("stop_reason")
    return ir.ChatResponse(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        parts=parts,
        finish_reason=finish_reason_to_ir(stop_reason if isinstance(stop_reason, str) else None),
        usage=usage_from(body.get("usage")),
    )


def _upstream_input(args: Any) -> dict[str, Any]:
    """A tool_use block's input from an upstream; anything but an object orjson can write
    back (nested past limits.MAX_NESTING) is shown as no arguments."""
    return args if isinstance(args, dict) and not limits.nested_deeper_than(args) else {}


def _message_id(value: str) -> str:
    if value.startswith("msg_"):
        return value
    return "msg_" + (_TOOL_ID_UNSAFE.sub("", value) or uuid.uuid4().hex)


def response_from_ir(resp: ir.ChatResponse, *, model: str) -> dict[str, Any]:
    """An Anthropic-shaped message for a client."""
    content: list[dict[str, Any]] = []
    for part in resp.parts:
        if isinstance(part, ir.TextPart):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ir.ThinkingPart):
            content.append(
                {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
            )
        elif isinstance(part, ir.ToolCallPart):
            content.append(
                {
                    "type": "tool_use",
                    "id": _tool_id(part.id),
                    "name": part.name,
                    # A model's malformed arguments (cut short by max_tokens, say): the
                    # call is still shown, without them, as gemini.py does.
                    "input": limits.json_object(part.arguments) or {},
                }
            )
    return {
        "id": _message_id(resp.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": finish_reason_from_ir(resp.finish_reason),
        "stop_sequence": None,
        "usage": _usage_to_wire(resp.usage),
    }


# --- streams ----------------------------------------------------------------------------


class StreamParser:
    """Anthropic SSE bytes (from an upstream) -> IR stream events.

    Bytes may be split anywhere, lines may end in \\n or \\r\\n. Usage is the input side
    from `message_start` overlaid with the cumulative counts of `message_delta`.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._event = ""
        self._data: list[bytes] = []
        self._usage: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self._tool_of_block: dict[int, int] = {}
        self._ignored_blocks: set[int] = set()
        self._tools = 0
        self._seen_delta = False
        self._done = False

    def feed(self, chunk: bytes) -> list[ir.StreamEvent]:
        out: list[ir.StreamEvent] = []
        data = self._buf + chunk if self._buf else chunk
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            line = data[start:end]
            start = end + 1
            self._line(line[:-1] if line.endswith(b"\r") else line, out)
        self._buf = data[start:]
        return out

    def close(self) -> list[ir.StreamEvent]:
        out: list[ir.StreamEvent] = []
        if self._buf:
            line, self._buf = self._buf, b""
            self._line(line.rstrip(b"\r"), out)
        self._dispatch(out)
        if not self._done:
            self._done = True
            if self._seen_delta:
                out.append(self._finish())
            else:
                out.append(
                    ir.StreamError("The upstream stream ended before it finished.", "api_error")
                )
        return out

    def _line(self, line: bytes, out: list[ir.StreamEvent]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line.startswith(b":"):
            return
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"data":
            self._data.append(value)

    def _dispatch(self, out: list[ir.StreamEvent]) -> None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data or self._done:
            return
        try:
            payload = orjson.loads(b"\n".join(data))
        except orjson.JSONDecodeError:
            return  # Anthropic sends only JSON; anything else is noise.
        if not isinstance(payload, dict):
            return
        kind = payload.get("type") or event
        handler = getattr(self, "_on_" + kind, None) if isinstance(kind, str) else None
        if handler is not None:
            handler(payload, out)

    def _finish(self) -> ir.StreamFinish:
        return ir.StreamFinish(
            reason=finish_reason_to_ir(self._stop_reason), usage=usage_from(self._usage)
        )

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    def _on_message_start(self, payload: dict[str, Any], out: list[ir.StreamEvent]) -> None:
        message = payload.get("message")
        message = message if isinstance(message, dict) else {}
        self._merge_usage(message.get("usage"))
        out.append(
            ir.StreamStart(
                id=str(message.get("id") or ""),
                model=str(message.get("model") or ""),
                usage=usage_from(self._usage) if self._usage else None,
            )
        )

    def _on_content_block_start(self, payload: dict[str, Any], out: list[ir.StreamEvent]) -> None:
        index, block = payload.get("index"), payload.get("content_block")
        if not _is_int(index) or not isinstance(block, dict):
            return
        kind = block.get("type")
        if kind == "text":
            if block.get("text"):
                out.append(ir.TextDelta(str(block["text"])))
        elif kind == "thinking":
            if block.get("thinking") or block.get("signature"):
                out.append(
                    ir.ThinkingDelta(str(block.get("thinking") or ""), block.get("signature"))
                )
        elif kind == "tool_use":
            tool = self._tools
            self._tools += 1
            self._tool_of_block[index] = tool
            out.append(
                ir.ToolCallStart(tool, str(block.get("id") or ""), str(block.get("name") or ""))
            )
            args = _upstream_input(block.get("input"))
            if args:
                out.append(ir.ToolCallDelta(tool, orjson.dumps(args).decode()))
        else:
            # redacted thinking, server tools and their results: no IR form.
            self._ignored_blocks.add(index)

    def _on_content_block_delta(self, payload: dict[str, Any], out: list[ir.StreamEvent]) -> None:
        index, delta = payload.get("index"), payload.get("delta")
        if not isinstance(delta, dict) or not _is_int(index) or index in self._ignored_blocks:
            return
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            if delta["text"]:
                out.append(ir.TextDelta(delta["text"]))
        elif kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            if delta["thinking"]:
                out.append(ir.ThinkingDelta(delta["thinking"]))
        elif kind == "signature_delta" and isinstance(delta.get("signature"), str):
            out.append(ir.ThinkingDelta("", delta["signature"]))
        elif kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            tool = self._tool_of_block.get(index)
            if tool is not None and delta["partial_json"]:
                out.append(ir.ToolCallDelta(tool, delta["partial_json"]))

    def _on_message_delta(self, payload: dict[str, Any], out: list[ir.StreamEvent]) -> None:
        self._seen_delta = True
        delta = payload.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
            self._stop_reason = delta["stop_reason"]
        self._merge_usage(payload.get("usage"))

    def _on_message_stop(self, payload: dict[str, Any], out: list[ir.StreamEvent]) -> None:
        self._done = True
        out.append(self._finish())

    def _on_error(self, payload: dict[str, Any], out: list[ir.StreamEvent]) -> None:
        self._done = True
        error = payload.get("error")
        error = error if isinstance(error, dict) else {}
        out.append(
            ir.StreamError(
                message=str(error.get("message") or "The upstream reported an error."),
                type=str(error.get("type") or "api_error"),
            )
        )


class StreamWriter:
    """IR stream events -> an Anthropic SSE stream for a client.

    Blocks are opened lazily and closed when the kind of content changes, so indexes
    always run 0, 1, 2... as Anthropic's do.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self._started = False
        self._done = False
        self._next_index = 0
        self._open: int | None = None  # index of the open block
        self._open_kind = ""  # "text", "thinking" or "tool:<n>"
        self._tool_blocks: dict[int, int] = {}
        self._usage: Usage | None = None

    def write(self, event: ir.StreamEvent) -> bytes:
        if self._done:
            return b""
        if isinstance(event, ir.StreamError):
            self._done = True
            return error_event(event.message, event.type)
        out = bytearray()
        if not self._started:
            start = event if isinstance(event, ir.StreamStart) else ir.StreamStart(id="", model="")
            out += self._start(start)
        if isinstance(event, ir.TextDelta):
            if event.text:
                out += self._switch("text", {"type": "text", "text": ""})
                out += self._delta({"type": "text_delta", "text": event.text})
        elif isinstance(event, ir.ThinkingDelta):
            if event.text or event.signature:
                block = {"type": "thinking", "thinking": "", "signature": ""}
                out += self._switch("thinking", block)
            if event.text:
                out += self._delta({"type": "thinking_delta", "thinking": event.text})
            if event.signature:
                out += self._delta({"type": "signature_delta", "signature": event.signature})
        elif isinstance(event, ir.ToolCallStart):
            out += self._tool_start(event.index, event.id, event.name)
        elif isinstance(event, ir.ToolCallDelta):
            out += self._tool_delta(event)
        elif isinstance(event, ir.StreamFinish):
            out += self._close_block()
            usage = _usage_to_wire(event.usage or self._usage)
            if event.cost is not None:
                usage[cost.FIELD] = cost.usd(event.cost)  # what the SDK's event keeps
            payload = {
                "type": "message_delta",
                "delta": {
                    "stop_reason": finish_reason_from_ir(event.reason),
                    "stop_sequence": None,
                },
                "usage": usage,
            }
            out += _sse("message_delta", payload)
            out += _sse("message_stop", {"type": "message_stop"})
            self._done = True
        return bytes(out)

    def error_event(self, message: str, type: str = "api_error") -> bytes:  # noqa: A002
        """An `error` event ending the stream (nothing is written after it)."""
        return self.write(ir.StreamError(message, type))

    def _start(self, event: ir.StreamStart) -> bytes:
        self._started = True
        self._usage = event.usage
        message: dict[str, Any] = {
            "id": _message_id(event.id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage_to_wire(event.usage),
        }
        return _sse("message_start", {"type": "message_start", "message": message})

    def _close_block(self) -> bytes:
        if self._open is None:
            return b""
        index, self._open, self._open_kind = self._open, None, ""
        return _sse("content_block_stop", {"type": "content_block_stop", "index": index})

    def _switch(self, kind: str, block: dict[str, Any]) -> bytes:
        if self._open is not None and self._open_kind == kind:
            return b""
        out = self._close_block()
        self._open, self._open_kind = self._next_index, kind
        self._next_index += 1
        return out + _sse(
            "content_block_start",
            {"type": "content_block_start", "index": self._open, "content_block": block},
        )

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        payload = {
            "type": "content_block_delta",
            "index": self._open if index is None else index,
            "delta": delta,
        }
        return _sse("content_block_delta", payload)

    def _tool_start(self, tool: int, call_id: str, name: str) -> bytes:
        kind = f"tool:{tool}"
        block = {
            "type": "tool_use",
            "id": _tool_id(call_id) if call_id else "toolu_" + uuid.uuid4().hex[:24],
            "name": name,
            "input": {},
        }
        if tool in self._tool_blocks:
            return b""  # announced twice: the first block stands
        out = self._switch(kind, block)
        self._tool_blocks[tool] = self._next_index - 1
        return out

    def _tool_delta(self, event: ir.ToolCallDelta) -> bytes:
        out = b""
        if event.index not in self._tool_blocks:
            # Arguments with no announced call: open a block so they are not lost.
            out = self._tool_start(event.index, "", "")
        if not event.arguments:
            return out
        block = self._tool_blocks[event.index]
        # A delta for an earlier, already closed call (interleaved parallel calls) is sent
        # with that call's own index; clients accumulate by index.
        return out + self._delta(
            {"type": "input_json_delta", "partial_json": event.arguments}, block
        )


# Streams carry the call's cost in the usage of `message_delta`, which the SDK's event
# keeps (its accumulated final message does not; docs/protocols.md).
COST_CARRIER = cost.StreamCarrier(kinds=("message_delta",), path=("usage",))
