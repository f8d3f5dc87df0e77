"""OpenAI Responses wire format (`POST /v1/responses`) to and from the internal representation.

Used when a Responses client meets a channel of another protocol, or a client of another
protocol meets an `openai-responses` channel. TokenHub is stateless: it stores no responses,
so `previous_response_id` (and `conversation`, stored `prompt`s, item references) are refused
and the upstream is always asked not to store (`store: false`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from billing.pricing import Usage
from relay.errors import RelayError
from relay.formats import cost, fields, ir, limits
from relay.formats import openai as openai_format

_SEP = b"\n\n"
# The Responses function tool default is strict: true, which demands schemas other protocols
# never promised (every property required, additionalProperties false); ask for non-strict.
_TOOL_STRICT = False
# Reasoning budgets (Anthropic, Gemini) become Responses' coarse effort levels.
_EFFORT_BY_BUDGET = ((2048, "low"), (16384, "medium"))


# --- small readers ------------------------------------------------------------------------


def _int(value: Any) -> int:
    return limits.token_count(value)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ir.TranslationError(f"'{name}' must be a number.")
    return float(value)


# --- usage ------------------------------------------------------------------------------


def usage_from(obj: Any) -> Usage | None:
    """Usage from a Responses `usage` object; input_tokens already include cached tokens."""
    if not isinstance(obj, dict):
        return None
    inputs = _int(obj.get("input_tokens"))
    input_details = _dict(obj.get("input_tokens_details"))
    output_details = _dict(obj.get("output_tokens_details"))
    cache_read = min(_int(input_details.get("cached_tokens")), inputs)
    cache_write = min(_int(input_details.get("cache_write_tokens")), inputs - cache_read)
    return Usage(
        input_tokens=inputs,
        output_tokens=_int(obj.get("output_tokens")),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=_int(output_details.get("reasoning_tokens")),
    )


def _usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


# --- request: Responses -> IR -------------------------------------------------------------

_A, _T = fields.Kind.ADVISORY, fields.Kind.TRANSLATED
STATELESS = (
    "TokenHub keeps no conversation state: send the earlier items themselves in input, "
    "with store: false"
)

# What becomes of each Responses field when another protocol serves the call
# (relay/formats/fields.py; docs/protocols.md lists the tables). The upstream is always
# sent `store: false`: TokenHub keeps no content, and asks no upstream to keep it.
REQUEST_FIELDS = fields.Table(
    {
        "model": fields.translated(),
        "input": fields.translated(),
        "instructions": fields.translated(),
        "tools": fields.translated("function tools; namespaces are flattened"),
        "tool_choice": fields.translated(),
        "parallel_tool_calls": fields.translated(),
        "max_output_tokens": fields.translated(),
        "temperature": fields.translated(),
        "top_p": fields.translated(),
        "stream": fields.translated(),
        "user": fields.translated(),
        "text": fields.translated(
            nested=fields.Table(
                {"format": fields.translated(), "verbosity": fields.advisory("style hint")}
            )
        ),
        "reasoning": fields.translated(
            nested=fields.Table(
                {
                    "effort": fields.translated(),
                    "summary": fields.advisory("reasoning summaries"),
                    "generate_summary": fields.advisory("reasoning summaries"),
                }
            )
        ),
        "store": fields.advisory("bookkeeping", inert=lambda v: v is None or v is False),
        "metadata": fields.advisory("bookkeeping"),
        "include": fields.advisory("extra output items"),
        "service_tier": fields.advisory("bookkeeping"),
        "truncation": fields.advisory("context-management hint"),
        "prompt_cache_key": fields.advisory("cache hint"),
        "prompt_cache_retention": fields.advisory("cache hint"),
        "safety_identifier": fields.advisory("bookkeeping"),
        "stream_options": fields.advisory("stream hint"),
        "max_tool_calls": fields.advisory("limits built-in tools only"),
        "top_logprobs": fields.semantic("no logprobs", inert=lambda v: v is None or v == 0),
        "background": fields.semantic(
            "TokenHub stores no responses", inert=lambda v: v is None or v is False
        ),
        "previous_response_id": fields.semantic(STATELESS, inert=lambda v: not v),
        "conversation": fields.semantic(STATELESS, inert=lambda v: not v),
        "prompt": fields.semantic("stored prompts live upstream", inert=lambda v: not v),
    }
)


def request_to_ir(body: dict[str, Any]) -> ir.ChatRequest:
    """A Responses request as a `ChatRequest`; TranslationError names what cannot be carried."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ir.TranslationError("'model' must be a non-empty string.")

    req = ir.ChatRequest(model=model, messages=[])
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise ir.TranslationError("'instructions' must be a string.")
        if instructions:
            req.system.append(ir.TextPart(instructions))
    _read_input(body.get("input"), req)

    req.tools = _read_tools(body.get("tools"), req)
    req.tool_choice = _read_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    req.response_format = _read_text_format(body.get("text"))

    max_output = body.get("max_output_tokens")
    if max_output is not None:
        if isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < 1:
            raise ir.TranslationError("'max_output_tokens' must be a positive integer.")
        req.max_output_tokens = max_output
    req.temperature = _number(body, "temperature")
    req.top_p = _number(body, "top_p")
    req.stream = body.get("stream") is True

    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise ir.TranslationError("'reasoning' must be an object.")
        effort = reasoning.get("effort")
        if effort is not None and not isinstance(effort, str):
            raise ir.TranslationError("'reasoning.effort' must be a string.")
        req.reasoning_effort = effort
    user = body.get("user")
    if isinstance(user, str) and user:
        req.user = user
    return req


def _read_input(value: Any, req: ir.ChatRequest) -> None:
    if isinstance(value, str):
        req.messages.append(ir.Message("user", [ir.TextPart(value)]))
        return
    if not isinstance(value, list) or not value:
        raise ir.TranslationError("'input' must be a string or a non-empty array of items.")
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise ir.TranslationError(f"'{where}' must be an object.")
        kind = item.get("type", "message")
        if kind == "message":
            _read_message(item, where, req)
        elif kind == "function_call":
            call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
            if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name):
                raise ir.TranslationError(f"'{where}' needs a call_id and a name.")
            if not isinstance(arguments, str):
                raise ir.TranslationError(f"'{where}.arguments' must be a JSON string.")
            name = _flat_name(item.get("namespace"), name)
            part = ir.ToolCallPart(id=call_id, name=name, arguments=arguments)
            last = req.messages[-1] if req.messages else None
            if last is not None and last.role == "assistant":
                last.parts.append(part)
            else:
                req.messages.append(ir.Message("assistant", [part]))
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise ir.TranslationError(f"'{where}.call_id' must be a non-empty string.")
            result = ir.ToolResultPart(
                call_id=call_id, content=_read_tool_output(item.get("output"), where)
            )
            last = req.messages[-1] if req.messages else None
            if last is not None and all(isinstance(p, ir.ToolResultPart) for p in last.parts):
                last.parts.append(result)
            else:
                req.messages.append(ir.Message("user", [result]))
        elif kind == "reasoning":
            # Earlier turns' reasoning is OpenAI-encrypted and only OpenAI can read it; other
            # providers answer from the visible conversation (as OpenAI Chat does).
            continue
        elif kind == "item_reference":
            raise ir.TranslationError(f"'{where}': item_reference is not supported: {STATELESS}.")
        else:
            raise ir.TranslationError(f"'{where}.type' {_quote(kind)} is not supported here.")


def _read_message(item: dict[str, Any], where: str, req: ir.ChatRequest) -> None:
    role = item.get("role")
    content = item.get("content")
    if role in ("system", "developer"):
        req.system.extend(_read_system(content, where))
        return
    if role not in ("user", "assistant"):
        raise ir.TranslationError(f"'{where}.role' must be user, assistant, system or developer.")
    parts: list[ir.Part]
    if isinstance(content, str):
        parts = [ir.TextPart(content)]
    elif isinstance(content, list):
        parts = [_read_content(c, f"{where}.content[{j}]") for j, c in enumerate(content)]
    else:
        raise ir.TranslationError(f"'{where}.content' must be a string or an array.")
    if role == "assistant" and any(isinstance(p, ir.ImagePart) for p in parts):
        raise ir.TranslationError(f"'{where}': assistant messages cannot carry images.")
    req.messages.append(ir.Message(role, parts))


def _read_system(content: Any, where: str) -> list[ir.TextPart]:
    if isinstance(content, str):
        return [ir.TextPart(content)]
    if not isinstance(content, list):
        raise ir.TranslationError(f"'{where}.content' must be a string or an array.")
    parts: list[ir.TextPart] = []
    for j, c in enumerate(content):
        part = _read_content(c, f"{where}.content[{j}]")
        if not isinstance(part, ir.TextPart):
            raise ir.TranslationError(f"'{where}.content[{j}]': system messages take text only.")
        parts.append(part)
    return parts


def _read_content(c: Any, where: str) -> ir.TextPart | ir.ImagePart:
    if not isinstance(c, dict):
        raise ir.TranslationError(f"'{where}' must be an object.")
    kind = c.get("type")
    if kind in ("input_text", "output_text", "text"):
        text = c.get("text")
        if not isinstance(text, str):
            raise ir.TranslationError(f"'{where}.text' must be a string.")
        return ir.TextPart(text)
    if kind == "refusal":
        return ir.TextPart(_str(c.get("refusal")))
    if kind == "input_image":
        return _read_image(c, where)
    raise ir.TranslationError(f"'{where}.type' {_quote(kind)} is not supported here.")


def _read_image(c: dict[str, Any], where: str) -> ir.ImagePart:
    detail = c.get("detail")
    detail = detail if isinstance(detail, str) and detail != "auto" else None
    url = c.get("image_url")
    if isinstance(url, str) and url:
        if url.startswith("data:"):
            header, sep, data = url[5:].partition(",")
            media_type, _, encoding = header.partition(";")
            if not sep or encoding != "base64" or not media_type:
                raise ir.TranslationError(f"'{where}.image_url' must be a base64 data URL.")
            return ir.ImagePart(data=data, media_type=media_type, detail=detail)
        return ir.ImagePart(url=url, detail=detail)
    if c.get("file_id"):
        raise ir.TranslationError(
            f"'{where}.file_id' is not supported for this model: send image_url instead."
        )
    raise ir.TranslationError(f"'{where}' needs an image_url.")


def _read_tool_output(output: Any, where: str) -> list[ir.TextPart | ir.ImagePart]:
    if isinstance(output, str):
        return [ir.TextPart(output)]
    if isinstance(output, list):
        return [_read_content(c, f"{where}.output[{j}]") for j, c in enumerate(output)]
    raise ir.TranslationError(f"'{where}.output' must be a string or an array.")


# A namespace's tools reach other providers as plain functions named NAMESPACE__NAME;
# calls to them are named back (`namespace` + `name`) in answers and streams.
NAMESPACE_SEPARATOR = "__"
# Built-in tools that only search: offered (not forced), the model answers without them,
# so they are dropped and named like advisory fields. Other built-in tools (code
# interpreter, file search, computer use, MCP...) do work the caller relies on: refused.
_ADVISORY_TOOLS = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26"})


def _read_tools(value: Any, req: ir.ChatRequest) -> list[ir.Tool]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ir.TranslationError("'tools' must be an array.")
    tools: list[ir.Tool] = []
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise ir.TranslationError(f"'{where}' must be an object.")
        kind = tool.get("type")
        if kind == "function":
            tools.append(_read_function(tool, where, ""))
        elif kind == "namespace":
            namespace = tool.get("name")
            if not isinstance(namespace, str) or not namespace:
                raise ir.TranslationError(f"'{where}.name' must be a non-empty string.")
            inner = tool.get("tools")
            if not isinstance(inner, list):
                raise ir.TranslationError(f"'{where}.tools' must be an array.")
            for j, member in enumerate(inner):
                member_where = f"{where}.tools[{j}]"
                if not isinstance(member, dict) or member.get("type") != "function":
                    raise ir.TranslationError(
                        f"'{member_where}': only function tools can be translated."
                    )
                tools.append(_read_function(member, member_where, namespace))
        elif isinstance(kind, str) and kind in _ADVISORY_TOOLS:
            req.dropped.append(f"tools.{kind}")
        else:
            raise ir.TranslationError(
                f"'{where}.type' {_quote(kind)} is not supported for this model: "
                "only function tools can be translated."
            )
    return tools


def _read_function(tool: dict[str, Any], where: str, namespace: str) -> ir.Tool:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise ir.TranslationError(f"'{where}.name' must be a non-empty string.")
    parameters = tool.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise ir.TranslationError(f"'{where}.parameters' must be an object.")
    return ir.Tool(
        name=_flat_name(namespace, name),
        description=_str(tool.get("description")),
        parameters=parameters or {},
    )


def _flat_name(namespace: Any, name: str) -> str:
    if isinstance(namespace, str) and namespace:
        return namespace + NAMESPACE_SEPARATOR + name
    return name


def namespaced_names(body: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Flattened tool name -> (namespace, name), for the namespace tools of a request BODY."""
    names: dict[str, tuple[str, str]] = {}
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict) or tool.get("type") != "namespace":
            continue
        namespace, inner = tool.get("name"), tool.get("tools")
        if not isinstance(namespace, str) or not isinstance(inner, list):
            continue
        for member in inner:
            name = member.get("name") if isinstance(member, dict) else None
            if isinstance(name, str):
                names[_flat_name(namespace, name)] = (namespace, name)
    return names


def _read_tool_choice(value: Any, parallel: Any) -> ir.ToolChoice | None:
    if parallel is not None and not isinstance(parallel, bool):
        raise ir.TranslationError("'parallel_tool_calls' must be a boolean.")
    if value is None:
        return None if parallel is None else ir.ToolChoice(parallel=parallel)
    if value in ("auto", "none", "required"):
        return ir.ToolChoice(mode=value, parallel=parallel)
    if isinstance(value, dict) and value.get("type") == "function":
        name = value.get("name")
        if not isinstance(name, str) or not name:
            raise ir.TranslationError("'tool_choice.name' must be a non-empty string.")
        return ir.ToolChoice(mode="tool", name=name, parallel=parallel)
    raise ir.TranslationError(
        "'tool_choice' must be auto, none, required or a function for this model."
    )


def _read_text_format(value: Any) -> ir.ResponseFormat | None:
    # text.verbosity has no counterpart elsewhere and is dropped: a style hint, not a format.
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ir.TranslationError("'text' must be an object.")
    fmt = value.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise ir.TranslationError("'text.format' must be an object.")
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return ir.ResponseFormat(kind=kind)
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise ir.TranslationError("'text.format.schema' must be an object.")
        strict = fmt.get("strict")
        return ir.ResponseFormat(
            kind="json_schema",
            schema=schema,
            name=fmt.get("name") if isinstance(fmt.get("name"), str) else None,
            strict=strict if isinstance(strict, bool) else None,
        )
    raise ir.TranslationError("'text.format.type' must be text, json_object or json_schema.")


def _quote(value: Any) -> str:
    """A type tag for an error message: short, and only if it looks like a tag."""
    if isinstance(value, str) and value.replace("_", "").isalnum() and len(value) <= 40:
        return f"'{value}'"
    return "(unrecognised)"


# --- request: IR -> Responses -------------------------------------------------------------


def request_from_ir(req: ir.ChatRequest, *, upstream_model: str) -> dict[str, Any]:
    """The body for an upstream reached through Responses; never asks it to store anything."""
    if req.top_k is not None:
        raise ir.TranslationError("top_k is not supported by this model's upstream.")
    if req.stop:
        raise ir.TranslationError("stop sequences are not supported by this model's upstream.")
    body: dict[str, Any] = {"model": upstream_model, "input": _write_input(req.messages)}
    if req.system:
        body["instructions"] = "\n\n".join(p.text for p in req.system)
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters or {"type": "object", "properties": {}},
                "strict": _TOOL_STRICT,
            }
            for t in req.tools
        ]
    if req.tool_choice is not None:
        choice = req.tool_choice
        if choice.mode == "tool":
            if not choice.name:
                raise ir.TranslationError("tool_choice names no tool.")
            body["tool_choice"] = {"type": "function", "name": choice.name}
        else:
            body["tool_choice"] = choice.mode
        if choice.parallel is not None:
            body["parallel_tool_calls"] = choice.parallel
    fmt = req.response_format
    if fmt is not None and fmt.kind != "text":
        if fmt.kind == "json_schema":
            schema_format: dict[str, Any] = {
                "type": "json_schema",
                "name": fmt.name or "response",
                "schema": fmt.schema or {},
            }
            if fmt.strict is not None:
                schema_format["strict"] = fmt.strict
            body["text"] = {"format": schema_format}
        else:
            body["text"] = {"format": {"type": "json_object"}}
    if req.max_output_tokens is not None:
        body["max_output_tokens"] = req.max_output_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    effort = req.reasoning_effort or _effort_for(req.reasoning_budget)
    if effort:
        body["reasoning"] = {"effort": effort}
    if req.user:
        body["user"] = req.user
    body["stream"] = req.stream
    body["store"] = False
    return body


def _effort_for(budget: int | None) -> str | None:
    if not budget:  # None: the model's default; 0 ("no thinking") has no portable effort.
        return None
    for ceiling, effort in _EFFORT_BY_BUDGET:
        if budget <= ceiling:
            return effort
    return "high"


def _write_input(messages: list[ir.Message]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        content: list[dict[str, Any]] = []  # the message item being gathered

        def flush(role: str, content: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if content:
                items.append({"type": "message", "role": role, "content": content})
            return []

        for part in message.parts:
            if isinstance(part, ir.TextPart):
                kind = "output_text" if message.role == "assistant" else "input_text"
                content.append({"type": kind, "text": part.text})
            elif isinstance(part, ir.ImagePart):
                content.append(_write_image(part))
            elif isinstance(part, ir.ToolCallPart):
                content = flush(message.role, content)
                items.append(
                    {
                        "type": "function_call",
                        "call_id": part.id,
                        "name": part.name,
                        "arguments": part.arguments,
                    }
                )
            elif isinstance(part, ir.ToolResultPart):
                content = flush(message.role, content)
                # Responses has no error flag on a tool result; the text says what failed.
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": part.call_id,
                        "output": _write_tool_output(part.content),
                    }
                )
            # ThinkingPart: another provider's reasoning cannot be replayed to OpenAI (it only
            # accepts its own encrypted reasoning items); the visible answer carries the turn.
        flush(message.role, content)
    return items


def _write_image(part: ir.ImagePart) -> dict[str, Any]:
    if part.url:
        url = part.url
    elif part.data and part.media_type:
        url = f"data:{part.media_type};base64,{part.data}"
    else:
        raise ir.TranslationError("an image needs a URL or base64 data with its media type.")
    return {"type": "input_image", "image_url": url, "detail": part.detail or "auto"}


def _write_tool_output(content: list[ir.TextPart | ir.ImagePart]) -> str | list[dict[str, Any]]:
    if all(isinstance(p, ir.TextPart) for p in content):
        return "".join(p.text for p in content if isinstance(p, ir.TextPart))
    return [
        {"type": "input_text", "text": p.text} if isinstance(p, ir.TextPart) else _write_image(p)
        for p in content
    ]


# --- response -----------------------------------------------------------------------------


def _finish_of(status: Any, incomplete_details: Any, has_calls: bool) -> ir.FinishReason:
    if status == "incomplete":
        reason = _dict(incomplete_details).get("reason")
        return "content_filter" if reason == "content_filter" else "length"
    if status == "failed":
        return "error"
    return "tool_calls" if has_calls else "stop"


def response_to_ir(body: dict[str, Any]) -> ir.ChatResponse:
    """A Responses response object (non-stream) as a `ChatResponse`."""
    output = body.get("output")
    if not isinstance(output, list):
        raise ir.TranslationError("the upstream response has no output array.")
    parts: list[ir.Part] = []
    for item in output:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for c in _list(item.get("content")):
                if not isinstance(c, dict):
                    continue
                if c.get("type") == "output_text":
                    parts.append(ir.TextPart(_str(c.get("text"))))
                elif c.get("type") == "refusal":
                    parts.append(ir.TextPart(_str(c.get("refusal"))))
        elif kind == "function_call":
            parts.append(
                ir.ToolCallPart(
                    id=_str(item.get("call_id")),
                    name=_str(item.get("name")),
                    arguments=_str(item.get("arguments")),
                )
            )
        elif kind == "reasoning":
            text = _reasoning_text(item)
            if text:
                parts.append(ir.ThinkingPart(text))
        # Built-in tool items cannot occur: only function tools are ever sent upstream.
    created = body.get("created_at")
    return ir.ChatResponse(
        id=_str(body.get("id")),
        model=_str(body.get("model")),
        parts=parts,
        finish_reason=_finish_of(
            body.get("status"),
            body.get("incomplete_details"),
            any(isinstance(p, ir.ToolCallPart) for p in parts),
        ),
        usage=usage_from(body.get("usage")),
        # Unix seconds; a float past 2**63 would not fit the 64-bit integer written back.
        created=int(created) if isinstance(created, int | float) and 0 < created < 2**63 else 0,
    )


def _reasoning_text(item: dict[str, Any]) -> str:
    pieces = [
        _str(s.get("text"))
        for key in ("summary", "content")
        for s in _list(item.get(key))
        if isinstance(s, dict)
    ]
    return "\n\n".join(p for p in pieces if p)


def _response_id(raw: str) -> str:
    if raw.startswith("resp_"):
        return raw
    return "resp_" + (raw or uuid.uuid4().hex)


def _item_id(prefix: str, response_id: str, index: int) -> str:
    return f"{prefix}_{response_id.removeprefix('resp_')}_{index}"


def _response_object(
    *,
    response_id: str,
    model: str,
    created: int,
    output: list[dict[str, Any]],
    finish: ir.FinishReason | None,
    usage: Usage | None,
    error_message: str | None = None,
) -> dict[str, Any]:
    status: str = "in_progress"
    incomplete: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    if finish in ("stop", "tool_calls"):
        status = "completed"
    elif finish == "length":
        status, incomplete = "incomplete", {"reason": "max_output_tokens"}
    elif finish == "content_filter":
        status, incomplete = "incomplete", {"reason": "content_filter"}
    elif finish == "error":
        status = "failed"
        error = {"code": "server_error", "message": error_message or "The upstream failed."}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "store": False,
        "usage": _usage_body(usage) if usage is not None else None,
    }


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}] if text else [],
    }


def _call_item(
    item_id: str,
    call_id: str,
    name: str,
    arguments: str,
    status: str,
    namespaces: dict[str, tuple[str, str]],
) -> dict[str, Any]:
    item = {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }
    if name in namespaces:
        item["namespace"], item["name"] = namespaces[name]
    return item


def response_from_ir(
    resp: ir.ChatResponse, *, model: str, namespaces: dict[str, tuple[str, str]] | None = None
) -> dict[str, Any]:
    """A `ChatResponse` as the Responses object a Responses client expects; NAMESPACES
    (from `namespaced_names`) names calls to namespace tools back."""
    response_id = _response_id(resp.id)
    item_status = (
        "incomplete" if resp.finish_reason in ("length", "content_filter") else "completed"
    )
    output: list[dict[str, Any]] = []
    for part in resp.parts:
        index = len(output)
        if isinstance(part, ir.TextPart):
            last = output[-1] if output else None
            if last is not None and last["type"] == "message":
                last["content"][0]["text"] += part.text
            else:
                output.append(
                    _message_item(_item_id("msg", response_id, index), part.text, item_status)
                )
        elif isinstance(part, ir.ThinkingPart):
            output.append(_reasoning_item(_item_id("rs", response_id, index), part.text))
        elif isinstance(part, ir.ToolCallPart):
            output.append(
                _call_item(
                    _item_id("fc", response_id, index),
                    part.id,
                    part.name,
                    part.arguments,
                    "completed",
                    namespaces or {},
                )
            )
    return _response_object(
        response_id=response_id,
        model=model,
        created=resp.created or int(time.time()),
        output=output,
        finish=resp.finish_reason,
        usage=resp.usage,
    )


def error_body(
    status: int,
    message: str,
    type: str = "invalid_request_error",  # noqa: A002 - OpenAI's field name
    code: str | None = None,
) -> dict[str, Any]:
    """Responses errors use the OpenAI error envelope."""
    return openai_format.error_body(RelayError(status, message, type=type, code=code))


# --- stream parsing -----------------------------------------------------------------------


class StreamParser:
    """Responses SSE bytes -> IR stream events; chunks may split anywhere, UTF-8 included."""

    def __init__(self) -> None:
        self._buf = b""
        self._started = False
        self._ended = False
        self._calls: set[int] = set()  # output indexes of function_call items
        self._args_seen: set[int] = set()  # ... that have had argument text
        self._text_seen: set[tuple[int, int]] = set()  # (output, content) with text deltas

    def feed(self, chunk: bytes) -> list[ir.StreamEvent]:
        data = self._buf + chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(_SEP)
        if end < 0:
            self._buf = data
            return []
        complete, self._buf = data[:end], data[end + 2 :]
        events: list[ir.StreamEvent] = []
        for raw in complete.split(_SEP):
            events.extend(self._event(raw))
        return events

    def close(self) -> list[ir.StreamEvent]:
        """Events from a final unterminated block, and an error if the stream was cut short."""
        rest, self._buf = self._buf, b""
        events = self._event(rest) if rest.strip() else []
        if not self._ended:
            self._ended = True
            events.append(ir.StreamError("The upstream stream ended before the response did."))
        return events

    def _event(self, raw: bytes) -> list[ir.StreamEvent]:
        data = b"\n".join(
            line[5:].removeprefix(b" ") for line in raw.split(b"\n") if line.startswith(b"data:")
        )
        if not data or data.strip() == b"[DONE]" or self._ended:
            return []
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(obj, dict):
            return []
        return self._handle(obj)

    def _handle(self, obj: dict[str, Any]) -> list[ir.StreamEvent]:
        kind = obj.get("type")
        out: list[ir.StreamEvent] = []
        if kind in ("response.created", "response.in_progress", "response.queued"):
            if not self._started:
                self._started = True
                response = _dict(obj.get("response"))
                out.append(ir.StreamStart(_str(response.get("id")), _str(response.get("model"))))
            return out
        index = obj.get("output_index")
        index = index if isinstance(index, int) else 0
        if kind == "response.output_text.delta" or kind == "response.refusal.delta":
            self._text_seen.add((index, _int(obj.get("content_index"))))
            delta = _str(obj.get("delta"))
            if delta:
                out.append(ir.TextDelta(delta))
        elif kind == "response.output_text.done":
            # Some compatible servers send only the finished text.
            key = (index, _int(obj.get("content_index")))
            if key not in self._text_seen and _str(obj.get("text")):
                self._text_seen.add(key)
                out.append(ir.TextDelta(_str(obj.get("text"))))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            delta = _str(obj.get("delta"))
            if delta:
                out.append(ir.ThinkingDelta(delta))
        elif kind == "response.reasoning_summary_part.added" and _int(obj.get("summary_index")):
            out.append(ir.ThinkingDelta("\n\n"))
        elif kind == "response.output_item.added":
            item = _dict(obj.get("item"))
            if item.get("type") == "function_call" and index not in self._calls:
                self._calls.add(index)
                out.append(
                    ir.ToolCallStart(index, _str(item.get("call_id")), _str(item.get("name")))
                )
                out.extend(self._arguments(index, _str(item.get("arguments")), whole=False))
        elif kind == "response.function_call_arguments.delta":
            out.extend(self._arguments(index, _str(obj.get("delta")), whole=False))
        elif kind == "response.function_call_arguments.done":
            out.extend(self._arguments(index, _str(obj.get("arguments")), whole=True))
        elif kind == "response.output_item.done":
            item = _dict(obj.get("item"))
            if item.get("type") == "function_call":
                if index not in self._calls:
                    self._calls.add(index)
                    out.append(
                        ir.ToolCallStart(index, _str(item.get("call_id")), _str(item.get("name")))
                    )
                out.extend(self._arguments(index, _str(item.get("arguments")), whole=True))
        elif kind in ("response.completed", "response.incomplete"):
            response = _dict(obj.get("response"))
            outputs = response.get("output") or ()
            has_calls = bool(self._calls) or any(
                isinstance(i, dict) and i.get("type") == "function_call" for i in outputs
            )
            status = response.get("status") or kind.removeprefix("response.")
            self._ended = True
            out.append(
                ir.StreamFinish(
                    _finish_of(status, response.get("incomplete_details"), has_calls),
                    usage_from(response.get("usage")),
                )
            )
        elif kind == "response.failed":
            error = _dict(_dict(obj.get("response")).get("error"))
            self._ended = True
            out.append(
                ir.StreamError(
                    _str(error.get("message")) or "The upstream failed.",
                    _str(error.get("code")) or "upstream_error",
                )
            )
        elif kind == "error":
            error = _dict(obj.get("error")) or obj  # both shapes are seen in the wild
            self._ended = True
            out.append(
                ir.StreamError(
                    _str(error.get("message")) or "The upstream failed.",
                    _str(error.get("code")) or "upstream_error",
                )
            )
        return out

    def _arguments(self, index: int, text: str, *, whole: bool) -> list[ir.StreamEvent]:
        """Argument text once: pieces as they come, the whole only if no piece came."""
        if not text or index not in self._calls:
            return []
        if whole and index in self._args_seen:
            return []
        self._args_seen.add(index)
        return [ir.ToolCallDelta(index, text)]


# --- stream writing -----------------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    """An output item being streamed."""

    kind: Literal["message", "reasoning", "function_call"]
    output_index: int
    item_id: str
    text: str = ""  # message text, reasoning summary, or call arguments
    call_id: str = ""
    name: str = ""
    done: bool = False


@dataclass(slots=True)
class _WriterState:
    blocks: list[_Block] = field(default_factory=list)
    open_text: _Block | None = None  # the message or reasoning item receiving deltas
    calls: dict[int, _Block] = field(default_factory=dict)  # IR index -> call item


class StreamWriter:
    """IR stream events -> the Responses SSE event sequence the OpenAI SDKs accept.

    Text and reasoning items close when another item starts; function call items stay open
    until the finish, so parallel calls whose argument pieces interleave stay correct.
    """

    def __init__(
        self,
        model: str,
        *,
        created: int | None = None,
        namespaces: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        self.model = model
        self._namespaces = namespaces or {}
        self._created = created if created is not None else int(time.time())
        self._seq = 0
        self._id = ""
        self._usage: Usage | None = None
        self._state = _WriterState()
        self._ended = False

    def write(self, event: ir.StreamEvent) -> bytes:
        if self._ended:
            return b""
        out: list[bytes] = []
        if not self._id:
            start_id = event.id if isinstance(event, ir.StreamStart) else ""
            self._start(_response_id(start_id), out)
        if isinstance(event, ir.StreamStart):
            self._usage = event.usage or self._usage
        elif isinstance(event, ir.TextDelta):
            if event.text:
                self._text("message", event.text, out)
        elif isinstance(event, ir.ThinkingDelta):
            if event.text:  # an Anthropic signature alone has no Responses counterpart
                self._text("reasoning", event.text, out)
        elif isinstance(event, ir.ToolCallStart):
            self._close_text(out, "completed")
            block = _Block(
                "function_call",
                len(self._state.blocks),
                _item_id("fc", self._id, len(self._state.blocks)),
                call_id=event.id,
                name=event.name,
            )
            self._state.blocks.append(block)
            self._state.calls[event.index] = block
            item = _call_item(
                block.item_id, block.call_id, block.name, "", "in_progress", self._namespaces
            )
            self._emit(
                out, "response.output_item.added", output_index=block.output_index, item=item
            )
        elif isinstance(event, ir.ToolCallDelta):
            call = self._state.calls.get(event.index)
            if call is not None and event.arguments:  # a delta for no started call is lost
                call.text += event.arguments
                self._emit(
                    out,
                    "response.function_call_arguments.delta",
                    item_id=call.item_id,
                    output_index=call.output_index,
                    delta=event.arguments,
                )
        elif isinstance(event, ir.StreamFinish):
            self._finish(event.reason, event.usage or self._usage, None, out, event.cost)
        elif isinstance(event, ir.StreamError):
            self._emit(out, "error", code=event.type, message=event.message, param=None)
            self._finish("error", self._usage, event.message, out)
        return b"".join(out)

    def error_event(self, message: str, code: str | None = None) -> bytes:
        """A standalone `error` event, for failures the IR stream did not report."""
        out: list[bytes] = []
        self._emit(out, "error", code=code, message=message, param=None)
        return b"".join(out)

    # -- internals

    def _emit(self, out: list[bytes], kind: str, **payload: Any) -> None:
        data = {"type": kind, "sequence_number": self._seq, **payload}
        self._seq += 1
        out.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + _SEP)

    def _snapshot(
        self, finish: ir.FinishReason | None, usage: Usage | None, error: str | None
    ) -> dict[str, Any]:
        status = "incomplete" if finish in ("length", "content_filter", "error") else "completed"
        output = [self._item(b, status) for b in self._state.blocks] if finish else []
        return _response_object(
            response_id=self._id,
            model=self.model,
            created=self._created,
            output=output,
            finish=finish,
            usage=usage if finish else None,
            error_message=error,
        )

    def _item(self, block: _Block, status: str) -> dict[str, Any]:
        if block.kind == "message":
            return _message_item(block.item_id, block.text, status)
        if block.kind == "reasoning":
            return _reasoning_item(block.item_id, block.text)
        return _call_item(
            block.item_id, block.call_id, block.name, block.text, "completed", self._namespaces
        )

    def _start(self, response_id: str, out: list[bytes]) -> None:
        self._id = response_id
        snapshot = self._snapshot(None, None, None)
        self._emit(out, "response.created", response=snapshot)
        self._emit(out, "response.in_progress", response=snapshot)

    def _text(self, kind: Literal["message", "reasoning"], text: str, out: list[bytes]) -> None:
        block = self._state.open_text
        if block is None or block.kind != kind:
            self._close_text(out, "completed")
            index = len(self._state.blocks)
            block = _Block(
                kind, index, _item_id("msg" if kind == "message" else "rs", self._id, index)
            )
            self._state.blocks.append(block)
            self._state.open_text = block
            if kind == "message":
                item = _message_item(block.item_id, "", "in_progress")
                item["content"] = []
                self._emit(out, "response.output_item.added", output_index=index, item=item)
                self._emit(
                    out,
                    "response.content_part.added",
                    item_id=block.item_id,
                    output_index=index,
                    content_index=0,
                    part={"type": "output_text", "text": "", "annotations": []},
                )
            else:
                item = _reasoning_item(block.item_id, "")
                self._emit(out, "response.output_item.added", output_index=index, item=item)
                self._emit(
                    out,
                    "response.reasoning_summary_part.added",
                    item_id=block.item_id,
                    output_index=index,
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
        block.text += text
        if kind == "message":
            self._emit(
                out,
                "response.output_text.delta",
                item_id=block.item_id,
                output_index=block.output_index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        else:
            self._emit(
                out,
                "response.reasoning_summary_text.delta",
                item_id=block.item_id,
                output_index=block.output_index,
                summary_index=0,
                delta=text,
            )

    def _close_text(self, out: list[bytes], status: str) -> None:
        block, self._state.open_text = self._state.open_text, None
        if block is None:
            return
        block.done = True
        ids = {"item_id": block.item_id, "output_index": block.output_index}
        if block.kind == "message":
            part = {"type": "output_text", "text": block.text, "annotations": []}
            done = {"content_index": 0, "text": block.text, "logprobs": []}
            self._emit(out, "response.output_text.done", **ids, **done)
            self._emit(out, "response.content_part.done", **ids, content_index=0, part=part)
        else:
            part = {"type": "summary_text", "text": block.text}
            done = {"summary_index": 0, "text": block.text}
            self._emit(out, "response.reasoning_summary_text.done", **ids, **done)
            self._emit(
                out, "response.reasoning_summary_part.done", **ids, summary_index=0, part=part
            )
        self._emit(
            out,
            "response.output_item.done",
            output_index=block.output_index,
            item=self._item(block, status),
        )

    def _finish(
        self,
        reason: ir.FinishReason,
        usage: Usage | None,
        error: str | None,
        out: list[bytes],
        micros: int | None = None,
    ) -> None:
        self._ended = True
        status = "incomplete" if reason in ("length", "content_filter") else "completed"
        # A failure leaves open items open, as OpenAI does: `response.failed` follows `error`.
        if reason != "error":
            self._close_text(out, status)
        for block in self._state.blocks:
            if block.kind != "function_call" or block.done or reason == "error":
                continue
            block.done = True
            ids = {"item_id": block.item_id, "output_index": block.output_index}
            self._emit(out, "response.function_call_arguments.done", **ids, arguments=block.text)
            self._emit(
                out,
                "response.output_item.done",
                output_index=block.output_index,
                item=self._item(block, status),
            )
        terminal = {
            "stop": "response.completed",
            "tool_calls": "response.completed",
            "length": "response.incomplete",
            "content_filter": "response.incomplete",
            "error": "response.failed",
        }[reason]
        snapshot = self._snapshot(reason, usage, error)
        if micros is not None:
            cost.stamp(snapshot, ("usage",), micros)
        self._emit(out, terminal, response=snapshot)


# Streams carry the call's cost in the final response's usage (`response.usage.cost`).
COST_CARRIER = cost.StreamCarrier(
    kinds=("response.completed", "response.incomplete"), path=("response", "usage")
)
