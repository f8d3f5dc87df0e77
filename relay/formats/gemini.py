"""Google Gemini generateContent wire format, to and from the internal representation.

Covers generateContent and streamGenerateContent (`?alt=sse`) bodies, usageMetadata and
Google's error shape. Pure functions: no I/O, nothing logged.
"""

from __future__ import annotations

import json
import mimetypes
from typing import Any

import orjson

from billing.pricing import Usage
from relay.formats import fields, ir, limits

# Gemini has no tool call ids (newer models may send `id`; we use it when present), so
# calls get positional ids. They are stable: replaying the same history yields the same ids.
_CALL_ID_PREFIX = "call_"
# Google's documented stand-in for a function call the model did not produce itself
# (history written by another provider). Gemini 3 answers 400 when the first functionCall
# of a step has no signature at all.
_FOREIGN_SIGNATURE = "skip_thought_signature_validator"

_FINISH_TO_IR: dict[str, ir.FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "OTHER": "error",
    "LANGUAGE": "error",
}
# Gemini has no "tool_calls" reason: a response with functionCall parts ends with STOP.
_FINISH_FROM_IR: dict[str, str] = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "content_filter": "SAFETY",
    "error": "OTHER",
}

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    # 402 (no balance left): Google uses FAILED_PRECONDITION for "billing is not enabled /
    # the account cannot be charged", a state the caller must fix before retrying. The
    # SDK treats RESOURCE_EXHAUSTED as a retryable rate limit, which would be wrong here.
    402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# OpenAI-style effort as a thinking budget; the same figures Google's own
# OpenAI-compatible endpoint uses for reasoning_effort.
_EFFORT_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
_LEVEL_EFFORTS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}

_A, _S, _T = fields.Kind.ADVISORY, fields.Kind.SEMANTIC, fields.Kind.TRANSLATED


def _text_modalities(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(m == "TEXT" for m in value))


# What becomes of each generateContent field when another protocol serves the call
# (relay/formats/fields.py; docs/protocols.md lists the tables).
GENERATION_FIELDS = fields.Table(
    {
        "maxOutputTokens": fields.translated(),
        "temperature": fields.translated(),
        "topP": fields.translated(),
        "topK": fields.translated(openai=_A, responses=_A),
        "stopSequences": fields.translated("Responses has no stop sequences", responses=_S),
        "responseMimeType": fields.translated(),
        "responseSchema": fields.translated(),
        "responseJsonSchema": fields.translated(),
        "thinkingConfig": fields.translated("as reasoning effort or thinking budget"),
        "candidateCount": fields.semantic("one candidate only", inert=lambda v: v in (None, 1)),
        "responseModalities": fields.semantic("text output only", inert=_text_modalities),
        "responseLogprobs": fields.semantic("no logprobs", inert=lambda v: v in (None, False)),
        "logprobs": fields.semantic("no logprobs", inert=lambda v: v in (None, 0)),
        "speechConfig": fields.semantic("text output only"),
        "imageConfig": fields.semantic("text output only"),
        "presencePenalty": fields.advisory("sampling"),
        "frequencyPenalty": fields.advisory("sampling"),
        "seed": fields.advisory("sampling"),
        "mediaResolution": fields.advisory("input detail hint"),
        "enableEnhancedCivicAnswers": fields.advisory("safety hint"),
    }
)
REQUEST_FIELDS = fields.Table(
    {
        "contents": fields.translated(),
        "systemInstruction": fields.translated(),
        "system_instruction": fields.translated(),
        "tools": fields.translated("function declarations"),
        "toolConfig": fields.translated(),
        "generationConfig": fields.translated(nested=GENERATION_FIELDS),
        "safetySettings": fields.advisory("the target applies its own filters"),
        "labels": fields.advisory("bookkeeping"),
        "model": fields.advisory("the URL names the model"),
        "cachedContent": fields.semantic("a Gemini-side cache"),
    }
)


# --- small validators ----------------------------------------------------------------


def _fail(message: str) -> ir.TranslationError:
    return ir.TranslationError(message)


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"'{where}' must be an object.")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(f"'{where}' must be an array.")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"'{where}' must be a string.")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"'{where}' must be a number.")
    return float(value)


def _integer(value: Any, where: str) -> int:
    # Protobuf JSON allows integral floats; the SDK sends top_k as a float. One past 2**63
    # is no int64, and would not fit the 64-bit integer written for another upstream.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"'{where}' must be an integer.")
    return int(value)


def _count(value: Any) -> int:
    return limits.token_count(value)


# --- usage and finish reasons --------------------------------------------------------


def usage_from(obj: Any) -> Usage | None:
    """IR usage from a Gemini `usageMetadata` object (None when there is none).

    Gemini counts thoughts apart from candidates; the IR's output includes them.
    Tool-use prompt tokens (e.g. search results fed back) are billed as input.
    """
    if not isinstance(obj, dict):
        return None
    prompt = _count(obj.get("promptTokenCount")) + _count(obj.get("toolUsePromptTokenCount"))
    thoughts = _count(obj.get("thoughtsTokenCount"))
    output = _count(obj.get("candidatesTokenCount")) + thoughts
    cached = min(_count(obj.get("cachedContentTokenCount")), prompt)
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        cache_read_tokens=cached,
        reasoning_tokens=thoughts,
    )


def _usage_metadata(usage: Usage) -> dict[str, Any]:
    reasoning = min(usage.reasoning_tokens, usage.output_tokens)
    meta: dict[str, Any] = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens - reasoning,
        "totalTokenCount": usage.input_tokens + usage.output_tokens,
    }
    if usage.cache_read_tokens:
        meta["cachedContentTokenCount"] = usage.cache_read_tokens
    if reasoning:
        meta["thoughtsTokenCount"] = reasoning
    return meta


def _finish_to_ir(reason: Any, *, has_calls: bool) -> ir.FinishReason:
    mapped = _FINISH_TO_IR.get(reason, "stop") if isinstance(reason, str) else "stop"
    if has_calls and mapped == "stop":
        return "tool_calls"
    return mapped


# --- schemas --------------------------------------------------------------------------


def _json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-subset Schema (the SDK sends `"type": "OBJECT"`) as JSON Schema."""
    if isinstance(schema, list):
        return [_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "propertyOrdering":  # Gemini-only ordering hint, unknown elsewhere
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _json_schema(sub) for name, sub in value.items()}
        elif key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key in ("items", "anyOf", "oneOf", "allOf", "not", "additionalProperties"):
            out[key] = _json_schema(value)
        else:
            out[key] = value
    if out.pop("nullable", False) is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


# --- request: Gemini -> IR ------------------------------------------------------------


def request_to_ir(body: dict[str, Any], *, model: str, stream: bool) -> ir.ChatRequest:
    """A generateContent body (model from the URL path) as an IR request.

    Raises TranslationError naming the field when something cannot be carried; messages
    never quote the caller's content.
    """
    contents = _list(body.get("contents"), "contents")
    messages = _contents_to_ir(contents)
    req = ir.ChatRequest(model=model, messages=messages, stream=stream)

    system = body.get("systemInstruction", body.get("system_instruction"))
    if isinstance(system, str):
        req.system = [ir.TextPart(system)]
    elif system is not None:
        for i, part in enumerate(
            _list(_dict(system, "systemInstruction").get("parts"), "systemInstruction.parts")
        ):
            part = _dict(part, f"systemInstruction.parts[{i}]")
            if "text" not in part:
                raise _fail(f"'systemInstruction.parts[{i}]' must be a text part.")
            req.system.append(ir.TextPart(_str(part["text"], "systemInstruction.parts.text")))

    if body.get("tools") is not None:
        req.tools = _tools_to_ir(_list(body["tools"], "tools"))
    if body.get("toolConfig") is not None:
        req.tool_choice = _tool_config_to_ir(_dict(body["toolConfig"], "toolConfig"))
    if body.get("generationConfig") is not None:
        _generation_to_ir(_dict(body["generationConfig"], "generationConfig"), req)
    # safetySettings are Gemini's own content filters; other providers apply theirs, so
    # they are accepted and not forwarded (rejecting would break most SDK callers).
    return req


def _contents_to_ir(contents: list[Any]) -> list[ir.Message]:
    messages: list[ir.Message] = []
    pending: dict[str, list[str]] = {}  # function name -> call ids awaiting a result
    calls = 0
    for i, raw in enumerate(contents):
        content = _dict(raw, f"contents[{i}]")
        role_name = content.get("role", "user")
        if role_name not in ("user", "model", "function"):
            raise _fail(f"'contents[{i}].role' must be 'user' or 'model'.")
        role: ir.Role = "assistant" if role_name == "model" else "user"
        parts: list[ir.Part] = []
        for j, raw_part in enumerate(_list(content.get("parts"), f"contents[{i}].parts")):
            where = f"contents[{i}].parts[{j}]"
            part = _dict(raw_part, where)
            # Signatures are kept: a Gemini client only holds what TokenHub wrote for it,
            # so they may be the serving provider's own (Anthropic's thinking signatures).
            signature = part.get("thoughtSignature")
            signature = signature if isinstance(signature, str) and signature else None
            if "text" in part:
                text = _str(part["text"], f"{where}.text")
                if part.get("thought"):
                    parts.append(ir.ThinkingPart(text, signature=signature))
                else:
                    parts.append(ir.TextPart(text))
            elif "inlineData" in part:
                data = _dict(part["inlineData"], f"{where}.inlineData")
                mime = _str(data.get("mimeType"), f"{where}.inlineData.mimeType")
                if not mime.startswith("image/"):
                    raise _fail(f"'{where}.inlineData' must be an image to be translated.")
                b64 = _str(data.get("data"), f"{where}.inlineData.data")
                parts.append(ir.ImagePart(data=b64, media_type=mime))
            elif "fileData" in part:
                data = _dict(part["fileData"], f"{where}.fileData")
                file_mime = data.get("mimeType")
                if file_mime is not None and not (
                    isinstance(file_mime, str) and file_mime.startswith("image/")
                ):
                    raise _fail(f"'{where}.fileData' must be an image to be translated.")
                url = _str(data.get("fileUri"), f"{where}.fileData.fileUri")
                parts.append(ir.ImagePart(url=url, media_type=file_mime))
            elif "functionCall" in part:
                call = _dict(part["functionCall"], f"{where}.functionCall")
                name = _str(call.get("name"), f"{where}.functionCall.name")
                args = call.get("args", {})
                _dict(args, f"{where}.functionCall.args")
                call_id = call.get("id")
                if not isinstance(call_id, str) or not call_id:
                    call_id = f"{_CALL_ID_PREFIX}{calls}"
                calls += 1
                pending.setdefault(name, []).append(call_id)
                if signature is not None:  # carried as in response_to_ir
                    parts.append(ir.ThinkingPart("", signature=signature))
                parts.append(ir.ToolCallPart(id=call_id, name=name, arguments=json.dumps(args)))
            elif "functionResponse" in part:
                parts.append(_function_response_to_ir(part["functionResponse"], where, pending))
            else:
                kind = next(iter(part), "empty")
                raise _fail(f"'{where}' ({kind}) cannot be translated.")
        messages.append(ir.Message(role=role, parts=parts))
    return messages


def _function_response_to_ir(
    raw: Any, where: str, pending: dict[str, list[str]]
) -> ir.ToolResultPart:
    fr = _dict(raw, f"{where}.functionResponse")
    name = _str(fr.get("name"), f"{where}.functionResponse.name")
    if fr.get("parts"):
        raise _fail(f"'{where}.functionResponse.parts' cannot be translated.")
    response = _dict(fr.get("response", {}), f"{where}.functionResponse.response")
    waiting = pending.get(name) or []
    call_id = fr.get("id")
    if isinstance(call_id, str) and call_id:
        if call_id in waiting:
            waiting.remove(call_id)
    elif waiting:
        call_id = waiting.pop(0)
    else:  # a result for a call outside this history: give it an id of its own
        call_id = f"{_CALL_ID_PREFIX}{name}"
    # Google's convention: {"output": ...} for results, {"error": ...} for failures.
    is_error = False
    if set(response) == {"output"} and isinstance(response["output"], str):
        text = response["output"]
    elif set(response) == {"error"} and isinstance(response["error"], str):
        text, is_error = response["error"], True
    else:
        text = json.dumps(response)
    return ir.ToolResultPart(
        call_id=call_id, content=[ir.TextPart(text)], is_error=is_error, name=name
    )


def _tools_to_ir(tools: list[Any]) -> list[ir.Tool]:
    out: list[ir.Tool] = []
    for i, raw in enumerate(tools):
        tool = _dict(raw, f"tools[{i}]")
        for key in tool:
            if key != "functionDeclarations":
                raise _fail(f"'tools[{i}].{key}' (a Gemini built-in tool) cannot be translated.")
        decls = _list(tool.get("functionDeclarations", []), f"tools[{i}].functionDeclarations")
        for j, raw_decl in enumerate(decls):
            where = f"tools[{i}].functionDeclarations[{j}]"
            decl = _dict(raw_decl, where)
            if "parametersJsonSchema" in decl:
                params = _dict(decl["parametersJsonSchema"], f"{where}.parametersJsonSchema")
            elif decl.get("parameters") is not None:
                params = _json_schema(_dict(decl["parameters"], f"{where}.parameters"))
            else:
                params = {"type": "object", "properties": {}}
            out.append(
                ir.Tool(
                    name=_str(decl.get("name"), f"{where}.name"),
                    description=_str(decl.get("description", ""), f"{where}.description"),
                    parameters=params,
                )
            )
    return out


def _tool_config_to_ir(config: dict[str, Any]) -> ir.ToolChoice | None:
    fcc = config.get("functionCallingConfig")
    if fcc is None:
        return None
    fcc = _dict(fcc, "toolConfig.functionCallingConfig")
    mode = fcc.get("mode", "AUTO")
    names = _list(fcc.get("allowedFunctionNames", []), "allowedFunctionNames")
    if mode in ("AUTO", "MODE_UNSPECIFIED"):
        return ir.ToolChoice(mode="auto")
    if mode == "NONE":
        return ir.ToolChoice(mode="none")
    if mode == "ANY":
        if not names:
            return ir.ToolChoice(mode="required")
        if len(names) == 1:
            return ir.ToolChoice(mode="tool", name=_str(names[0], "allowedFunctionNames"))
        raise _fail(
            "'toolConfig.functionCallingConfig.allowedFunctionNames' with more than one "
            "name cannot be translated."
        )
    raise _fail("'toolConfig.functionCallingConfig.mode' must be AUTO, ANY or NONE.")


def _generation_to_ir(config: dict[str, Any], req: ir.ChatRequest) -> None:
    where = "generationConfig"
    if config.get("maxOutputTokens") is not None:
        req.max_output_tokens = _integer(config["maxOutputTokens"], f"{where}.maxOutputTokens")
    if config.get("temperature") is not None:
        req.temperature = _number(config["temperature"], f"{where}.temperature")
    if config.get("topP") is not None:
        req.top_p = _number(config["topP"], f"{where}.topP")
    if config.get("topK") is not None:
        req.top_k = _integer(config["topK"], f"{where}.topK")
    if config.get("stopSequences") is not None:
        stops = _list(config["stopSequences"], f"{where}.stopSequences")
        req.stop = [_str(s, f"{where}.stopSequences") for s in stops]
    req.response_format = _response_format_to_ir(config)
    if config.get("thinkingConfig") is not None:
        thinking = _dict(config["thinkingConfig"], f"{where}.thinkingConfig")
        budget = thinking.get("thinkingBudget")
        # -1 asks for a dynamic budget, which is the IR's "model default".
        if budget is not None and budget != -1:
            req.reasoning_budget = _integer(budget, f"{where}.thinkingConfig.thinkingBudget")
        level = thinking.get("thinkingLevel")
        if level is not None:
            effort = _LEVEL_EFFORTS.get(str(level).lower())
            if effort is None:
                raise _fail(f"'{where}.thinkingConfig.thinkingLevel' is not a known level.")
            req.reasoning_effort = effort


def _response_format_to_ir(config: dict[str, Any]) -> ir.ResponseFormat | None:
    mime = config.get("responseMimeType")
    schema = config.get("responseJsonSchema", config.get("responseSchema"))
    if mime is None and schema is None:
        return None
    if mime in (None, "text/plain") and schema is None:
        return ir.ResponseFormat(kind="text")
    if mime not in (None, "application/json"):
        raise _fail("'generationConfig.responseMimeType' must be text/plain or application/json.")
    if schema is None:
        return ir.ResponseFormat(kind="json_object")
    if "responseJsonSchema" in config:
        return ir.ResponseFormat(kind="json_schema", schema=_dict(schema, "responseJsonSchema"))
    return ir.ResponseFormat(
        kind="json_schema", schema=_json_schema(_dict(schema, "responseSchema"))
    )


# --- request: IR -> Gemini ------------------------------------------------------------


def request_from_ir(req: ir.ChatRequest) -> dict[str, Any]:
    """A generateContent body for a Gemini upstream (the model goes in the URL)."""
    names: dict[str, str] = {}  # tool call id -> function name, for results
    contents: list[dict[str, Any]] = []
    for message in req.messages:
        role = "model" if message.role == "assistant" else "user"
        parts = _parts_from_ir(message.parts, names)
        if role == "model":
            _sign_foreign_calls(parts)  # per message: each assistant message is one step
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    body: dict[str, Any] = {"contents": contents}
    if req.system:
        body["systemInstruction"] = {"parts": [{"text": p.text} for p in req.system]}
    if req.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t) for t in req.tools]}]
    if req.tool_choice is not None:
        body["toolConfig"] = {"functionCallingConfig": _tool_choice_from_ir(req.tool_choice)}
    config = _generation_from_ir(req)
    if config:
        body["generationConfig"] = config
    return body


def _sign_foreign_calls(parts: list[dict[str, Any]]) -> None:
    """Give an unsigned first functionCall of a model step Google's stand-in signature."""
    first = next((p for p in parts if "functionCall" in p), None)
    if first is not None and "thoughtSignature" not in first:
        first["thoughtSignature"] = _FOREIGN_SIGNATURE


def _parts_from_ir(parts: list[ir.Part], names: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    signature: str | None = None
    for part in parts:
        item: dict[str, Any]
        if isinstance(part, ir.ThinkingPart):
            # Earlier thoughts are not context Gemini reads back, and a signature on a
            # thought with text may be another provider's (Anthropic signs every thinking
            # block), which Gemini rejects with a 400. Only a bare signature, which is how
            # this module carries a Gemini functionCall's own, goes back onto that call.
            if not part.text and part.signature:
                signature = part.signature
            continue
        if isinstance(part, ir.TextPart):
            item = {"text": part.text}
        elif isinstance(part, ir.ImagePart):
            item = _image_from_ir(part)
        elif isinstance(part, ir.ToolCallPart):
            names[part.id] = part.name
            item = {"functionCall": {"name": part.name, "args": _args(part.arguments)}}
            if signature is not None:
                item["thoughtSignature"] = signature
        else:
            item = _tool_result_from_ir(part, names)
        signature = None
        out.append(item)
    return out


def _args(arguments: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    # Read as request bodies are (orjson, bounded nesting): the standard library would
    # accept integers and lone surrogates that the body sent upstream cannot hold.
    args = limits.json_object(arguments)
    if args is None:
        raise _fail(
            f"Tool call arguments must be a JSON object nested at most {limits.MAX_NESTING} deep."
        )
    return args


def _image_from_ir(part: ir.ImagePart) -> dict[str, Any]:
    if part.data is not None:
        if not part.media_type:
            raise _fail("An inline image needs its media type.")
        return {"inlineData": {"mimeType": part.media_type, "data": part.data}}
    url = part.url or ""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        mime = header[5:].split(";")[0]
        if ";base64" not in header or not mime:
            raise _fail("An image data URL must be base64 with a media type.")
        return {"inlineData": {"mimeType": mime, "data": data}}
    if not url:
        raise _fail("An image needs a URL or inline data.")
    # fileData is meant for Gemini's own file URIs (Files API, gs://). Recent models also
    # fetch public http(s) URLs given this way; older ones answer 400, which the caller
    # sees. Fetching the image here instead would make this module do I/O.
    mime = part.media_type or mimetypes.guess_type(url.split("?")[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _tool_result_from_ir(part: ir.ToolResultPart, names: dict[str, str]) -> dict[str, Any]:
    name = part.name or names.get(part.call_id)
    if name is None:
        raise _fail("A tool result must follow the tool call it answers.")
    texts: list[str] = []
    for item in part.content:
        if not isinstance(item, ir.TextPart):
            raise _fail("Images in tool results cannot be sent to Gemini.")
        texts.append(item.text)
    text = "".join(texts)
    response: dict[str, Any]
    parsed = limits.json_object(text)  # as in _args
    if parsed is not None and not part.is_error:
        response = parsed
    else:
        response = {"error" if part.is_error else "output": text}
    return {"functionResponse": {"name": name, "response": response}}


def _declaration(tool: ir.Tool) -> dict[str, Any]:
    decl: dict[str, Any] = {"name": tool.name}
    if tool.description:
        decl["description"] = tool.description
    if tool.parameters:
        # parametersJsonSchema takes full JSON Schema; `parameters` is an OpenAPI subset
        # that rejects common keywords (additionalProperties, $defs...).
        decl["parametersJsonSchema"] = tool.parameters
    return decl


def _tool_choice_from_ir(choice: ir.ToolChoice) -> dict[str, Any]:
    # Gemini has no switch for parallel calls; `parallel` is a hint it cannot honour.
    if choice.mode == "none":
        return {"mode": "NONE"}
    if choice.mode == "required":
        return {"mode": "ANY"}
    if choice.mode == "tool":
        if not choice.name:
            raise _fail("A forced tool choice needs the tool's name.")
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": "AUTO"}


def _generation_from_ir(req: ir.ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if req.max_output_tokens is not None:
        config["maxOutputTokens"] = req.max_output_tokens
    if req.temperature is not None:
        config["temperature"] = req.temperature
    if req.top_p is not None:
        config["topP"] = req.top_p
    if req.top_k is not None:
        config["topK"] = req.top_k
    if req.stop:
        config["stopSequences"] = list(req.stop)
    fmt = req.response_format
    if fmt is not None and fmt.kind != "text":
        config["responseMimeType"] = "application/json"
        if fmt.kind == "json_schema":
            if not fmt.schema:
                raise _fail("'response_format' json_schema needs a schema.")
            config["responseJsonSchema"] = fmt.schema
    budget = req.reasoning_budget
    if budget is None and req.reasoning_effort is not None:
        budget = _EFFORT_BUDGETS.get(req.reasoning_effort)
        if budget is None:
            raise _fail("'reasoning_effort' must be none, minimal, low, medium or high.")
    if budget is not None:
        thinking: dict[str, Any] = {"thinkingBudget": budget}
        if budget > 0:  # the caller asked for reasoning, so relay the thought summaries
            thinking["includeThoughts"] = True
        config["thinkingConfig"] = thinking
    return config


# --- response -------------------------------------------------------------------------


def _candidate_parts(parts: list[Any], first_call: int) -> tuple[list[ir.Part], int]:
    """IR parts of one candidate's parts; returns them and the number of calls seen.

    A signature on a functionCall travels as an empty ThinkingPart just before the call,
    so a client of another protocol can bring it back; signatures on plain text are
    optional to Gemini and dropped.
    """
    out: list[ir.Part] = []
    calls = 0
    for raw in parts:
        if not isinstance(raw, dict):
            continue
        signature = raw.get("thoughtSignature")
        signature = signature if isinstance(signature, str) and signature else None
        if raw.get("thought") and isinstance(raw.get("text"), str):
            out.append(ir.ThinkingPart(raw["text"], signature=signature))
        elif isinstance(raw.get("text"), str):
            if raw["text"]:
                out.append(ir.TextPart(raw["text"]))
        elif isinstance(raw.get("functionCall"), dict):
            call = raw["functionCall"]
            if signature is not None:
                out.append(ir.ThinkingPart("", signature=signature))
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                call_id = f"{_CALL_ID_PREFIX}{first_call + calls}"
            args = call.get("args")
            out.append(
                ir.ToolCallPart(
                    id=call_id,
                    name=str(call.get("name", "")),
                    # Too deep for a writer to write back: shown as no arguments.
                    arguments=json.dumps(
                        args
                        if isinstance(args, dict) and not limits.nested_deeper_than(args)
                        else {}
                    ),
                )
            )
            calls += 1
    return out, calls


def response_to_ir(body: dict[str, Any]) -> ir.ChatResponse:
    """A generateContent response as an IR response (first candidate only)."""
    candidates = body.get("candidates")
    candidate = candidates[0] if isinstance(candidates, list) and candidates else None
    parts: list[ir.Part] = []
    reason: ir.FinishReason
    if isinstance(candidate, dict):
        content = candidate.get("content")
        raw_parts = content.get("parts") if isinstance(content, dict) else None
        parts, calls = _candidate_parts(raw_parts if isinstance(raw_parts, list) else [], 0)
        reason = _finish_to_ir(candidate.get("finishReason"), has_calls=calls > 0)
    else:
        # No candidate: the prompt itself was blocked (promptFeedback.blockReason).
        reason = "content_filter"
    return ir.ChatResponse(
        id=str(body.get("responseId") or ""),
        model=str(body.get("modelVersion") or ""),
        parts=parts,
        finish_reason=reason,
        usage=usage_from(body.get("usageMetadata")),
    )


def _parts_to_gemini(parts: list[ir.Part]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    signature: str | None = None
    for part in parts:
        if isinstance(part, ir.ThinkingPart):
            if not part.text:
                signature = part.signature or signature
                continue
            item: dict[str, Any] = {"text": part.text, "thought": True}
            if part.signature:
                item["thoughtSignature"] = part.signature
            out.append(item)
        elif isinstance(part, ir.TextPart):
            out.append({"text": part.text})
        elif isinstance(part, ir.ToolCallPart):
            item = {"functionCall": _function_call(part.id, part.name, part.arguments)}
            if signature is not None:
                item["thoughtSignature"] = signature
                signature = None
            out.append(item)
    return out


def _function_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    # A model's malformed arguments: the call is still shown, without them.
    args = limits.json_object(arguments) or {}
    # The id lets a google-genai caller send it back on functionResponse, so results
    # match exactly even when a function is called twice.
    return {"id": call_id, "name": name, "args": args}


def response_from_ir(resp: ir.ChatResponse, *, model: str) -> dict[str, Any]:
    """A generateContent response body for a Gemini client."""
    body: dict[str, Any] = {
        "candidates": [
            {
                "content": {"role": "model", "parts": _parts_to_gemini(resp.parts)},
                "finishReason": _FINISH_FROM_IR[resp.finish_reason],
                "index": 0,
            }
        ],
        "modelVersion": model,
    }
    if resp.usage is not None:
        body["usageMetadata"] = _usage_metadata(resp.usage)
    if resp.id:
        body["responseId"] = resp.id
    return body


# --- errors ---------------------------------------------------------------------------


def error_body(status: int, message: str) -> dict[str, Any]:
    """Google's error shape: {"error": {"code", "message", "status"}}."""
    name = _STATUS_NAMES.get(status)
    if name is None:
        name = "INTERNAL" if status >= 500 else "INVALID_ARGUMENT" if status >= 400 else "UNKNOWN"
    return {"error": {"code": status, "message": message, "status": name}}


# --- streams --------------------------------------------------------------------------


class StreamParser:
    """Reads a streamGenerateContent `?alt=sse` stream into IR stream events.

    Every chunk may carry usageMetadata with running totals; the last one seen wins (never
    summed). The single StreamFinish is emitted by `close()`, so usage that arrives after
    the finishReason is not lost.
    """

    __slots__ = ("_buf", "_calls", "_finished", "_reason", "_started", "_usage")

    def __init__(self) -> None:
        self._buf = b""
        self._started = False
        self._finished = False
        self._calls = 0
        self._reason: ir.FinishReason | None = None
        self._usage: Usage | None = None

    def feed(self, chunk: bytes) -> list[ir.StreamEvent]:
        data = self._buf + chunk
        if b"\r\n" in data:
            data = data.replace(b"\r\n", b"\n")
        events: list[ir.StreamEvent] = []
        while (end := data.find(b"\n\n")) >= 0:
            events.extend(self._event(data[:end]))
            data = data[end + 2 :]
        self._buf = data
        return events

    def close(self) -> list[ir.StreamEvent]:
        """Events of any unterminated last chunk, then the one StreamFinish."""
        events = self._event(self._buf.replace(b"\r\n", b"\n")) if self._buf.strip() else []
        self._buf = b""
        if self._finished:
            return events
        self._finished = True
        if not self._started:
            events.insert(0, ir.StreamStart(id="", model=""))
            self._started = True
        reason: ir.FinishReason = self._reason or "stop"
        if reason == "stop" and self._calls:
            reason = "tool_calls"
        events.append(ir.StreamFinish(reason=reason, usage=self._usage))
        return events

    def _event(self, raw: bytes) -> list[ir.StreamEvent]:
        lines = [
            line[5:].removeprefix(b" ") for line in raw.split(b"\n") if line.startswith(b"data:")
        ]
        if not lines or self._finished:
            return []
        try:
            # orjson, as for every other upstream body: the standard library would pass on
            # lone surrogates and integers that the client's writer cannot write.
            obj = orjson.loads(b"\n".join(lines))
        except orjson.JSONDecodeError:
            return []
        if not isinstance(obj, dict):
            return []
        error = obj.get("error")
        if isinstance(error, dict):
            self._finished = True  # an error ends the stream: no StreamFinish after it
            status = error.get("status")
            return [
                ir.StreamError(
                    message=str(error.get("message") or "Upstream error."),
                    type=status if isinstance(status, str) and status else "upstream_error",
                )
            ]
        events: list[ir.StreamEvent] = []
        if not self._started:
            self._started = True
            events.append(
                ir.StreamStart(
                    id=str(obj.get("responseId") or ""), model=str(obj.get("modelVersion") or "")
                )
            )
        usage = usage_from(obj.get("usageMetadata"))
        if usage is not None:
            self._usage = usage
        candidates = obj.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        if not isinstance(candidate, dict):
            if isinstance(obj.get("promptFeedback"), dict) and obj["promptFeedback"].get(
                "blockReason"
            ):
                self._reason = "content_filter"
            return events
        content = candidate.get("content")
        raw_parts = content.get("parts") if isinstance(content, dict) else None
        base = self._calls
        parts, calls = _candidate_parts(raw_parts if isinstance(raw_parts, list) else [], base)
        self._calls += calls
        for part in parts:
            if isinstance(part, ir.ThinkingPart):
                events.append(ir.ThinkingDelta(part.text, signature=part.signature))
            elif isinstance(part, ir.TextPart):
                events.append(ir.TextDelta(part.text))
            elif isinstance(part, ir.ToolCallPart):
                events.append(ir.ToolCallStart(index=base, id=part.id, name=part.name))
                events.append(ir.ToolCallDelta(index=base, arguments=part.arguments))
                base += 1
        if candidate.get("finishReason"):
            self._reason = _finish_to_ir(candidate["finishReason"], has_calls=False)
        return events


class StreamWriter:
    """Writes IR stream events as a streamGenerateContent `?alt=sse` stream.

    Tool call arguments are buffered until the call is complete, since Gemini sends
    each functionCall whole; everything else is written as it comes.
    """

    __slots__ = ("_calls", "_id", "_model", "_signature")

    def __init__(self, model: str) -> None:
        self._model = model
        self._id = ""
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]
        self._signature: str | None = None

    def write(self, event: ir.StreamEvent) -> bytes:
        if isinstance(event, ir.StreamStart):
            self._id = event.id
            return b""
        if isinstance(event, ir.TextDelta):
            return self._flush_calls() + self._chunk([{"text": event.text}])
        if isinstance(event, ir.ThinkingDelta):
            if not event.text:  # a bare signature: it belongs on the next function call
                self._signature = event.signature or self._signature
                return b""
            part: dict[str, Any] = {"text": event.text, "thought": True}
            if event.signature:
                part["thoughtSignature"] = event.signature
            return self._flush_calls() + self._chunk([part])
        if isinstance(event, ir.ToolCallStart):
            self._calls[event.index] = [event.id, event.name, ""]
            return b""
        if isinstance(event, ir.ToolCallDelta):
            call = self._calls.get(event.index)
            if call is not None:
                call[2] += event.arguments
            return b""
        if isinstance(event, ir.StreamFinish):
            out = self._flush_calls()
            extra: dict[str, Any] = {}
            if event.usage is not None:
                extra["usageMetadata"] = _usage_metadata(event.usage)
            return out + self._chunk([], finish=_FINISH_FROM_IR[event.reason], **extra)
        return self.error_event(event.message, 500)

    def error_event(self, message: str, status: int) -> bytes:
        return _sse(error_body(status, message))

    def _flush_calls(self) -> bytes:
        if not self._calls:
            return b""
        parts: list[dict[str, Any]] = []
        for index in sorted(self._calls):
            call_id, name, arguments = self._calls[index]
            part: dict[str, Any] = {"functionCall": _function_call(call_id, name, arguments)}
            if self._signature is not None:
                part["thoughtSignature"] = self._signature
                self._signature = None
            parts.append(part)
        self._calls = {}
        return self._chunk(parts)

    def _chunk(self, parts: list[dict[str, Any]], finish: str | None = None, **extra: Any) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish is not None:
            candidate["finishReason"] = finish
        body: dict[str, Any] = {"candidates": [candidate], **extra, "modelVersion": self._model}
        if self._id:
            body["responseId"] = self._id
        return _sse(body)


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\r\n\r\n"


# --- embeddings -----------------------------------------------------------------------


def embed_request(body: dict[str, Any], *, batch: bool) -> tuple[list[str], int | None]:
    """(texts, outputDimensionality) of an embedContent or batchEmbedContents body."""
    requests = _list(body.get("requests"), "requests") if batch else [body]
    texts: list[str] = []
    dimensions: int | None = None
    for n, item in enumerate(requests):
        where = f"requests[{n}]" if batch else "content"
        request = _dict(item, where)
        content = _dict(request.get("content"), f"{where}.content")
        parts = _list(content.get("parts"), f"{where}.content.parts")
        texts.append("".join(_str(_dict(p, "part").get("text", ""), "part.text") for p in parts))
        if request.get("outputDimensionality") is not None:
            dimensions = _integer(request["outputDimensionality"], "outputDimensionality")
    if not texts:
        raise _fail("requests: at least one is required")
    return texts, dimensions


def embed_response(vectors: list[list[float]], *, batch: bool) -> dict[str, Any]:
    if batch:
        return {"embeddings": [{"values": v} for v in vectors]}
    return {"embedding": {"values": vectors[0]}}
