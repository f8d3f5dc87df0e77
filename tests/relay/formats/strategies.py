"""Hypothesis strategies for the wire formats: arbitrary JSON, and bodies that look like each
protocol's requests, responses and stream events but where any field may be anything.

Everything generated is what `orjson.loads` can return (64-bit integers, finite floats, no
lone surrogates), since that is all the relay ever hands a parser.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import orjson
from hypothesis import strategies as st

# Keys and string values the parsers branch on, so random JSON reaches past the first check.
KEYS = (
    "type", "role", "content", "text", "parts", "name", "id", "input", "arguments",
    "function", "parameters", "properties", "items", "source", "data", "url", "image_url",
    "media_type", "mimeType", "inlineData", "fileData", "fileUri", "functionCall",
    "functionResponse", "tool_calls", "tool_use_id", "call_id", "output", "thinking",
    "signature", "thought", "cache_control", "schema", "format", "json_schema", "response",
    "args", "message", "error", "usage", "choices", "delta", "index", "finish_reason",
    "candidates", "stop_reason", "status", "summary", "refusal", "detail", "description",
)  # fmt: skip
WORDS = (
    "user", "assistant", "system", "developer", "tool", "model", "function", "text",
    "image", "image_url", "input_image", "input_text", "output_text", "tool_use",
    "tool_result", "thinking", "redacted_thinking", "document", "message", "function_call",
    "function_call_output", "reasoning", "refusal", "auto", "any", "none", "required",
    "object", "string", "json_schema", "json_object", "base64", "enabled", "adaptive",
    "disabled", "AUTO", "ANY", "NONE", "STOP", "MAX_TOKENS", "application/json",
    "image/png", "data:image/png;base64,AAAA", "https://example.com/a.png", "{}", "[]", "",
    "canary words 7f3a",
)  # fmt: skip
# Content the caller sent: an error message must never repeat it (see `texts`).
CANARY = "canary words 7f3a"


def examples(default: int) -> int:
    """DEFAULT examples per property, or TOKENHUB_PROPERTY_EXAMPLES for a longer hunt
    (5000 finds what 150 would find only now and then)."""
    return int(os.environ.get("TOKENHUB_PROPERTY_EXAMPLES", default))


_INT64 = (-(2**63), 2**64 - 1)  # what orjson reads as an int; beyond it, a float

texts = st.one_of(st.sampled_from(WORDS), st.text(st.characters(codec="utf-8"), max_size=12))
# Not `texts`: a key is a field name, which error messages may name.
keys = st.one_of(st.sampled_from(KEYS), st.text(st.characters(codec="utf-8"), max_size=8))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(*_INT64),
    st.integers(-3, 5000),  # small counts and limits, where the branches are
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(keys, json_values, max_size=6)


def loose(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """STRATEGY most of the time, otherwise any JSON value at all (a scalar as often as a
    list or an object, since `for x in value or ()` is where parsers break)."""
    return st.one_of(*[strategy] * 5, scalars, json_values)


def body(
    required: dict[str, Any] | None = None, /, **optional: Any
) -> st.SearchStrategy[dict[str, Any]]:
    """An object whose fields are each independently absent (unless REQUIRED), plausible or
    any JSON; now and then with extra keys of any kind."""
    base = st.fixed_dictionaries(
        {k: loose(v) for k, v in (required or {}).items()},
        optional={k: loose(v) for k, v in optional.items()},
    )
    extra = st.dictionaries(keys, json_values, max_size=2)
    return st.one_of(base, base, base, st.tuples(extra, base).map(lambda t: t[0] | t[1]))


def obj(required: dict[str, Any] | None = None, /, **optional: Any) -> st.SearchStrategy[Any]:
    """`body`, or now and then any JSON value in its place."""
    return loose(body(required, **optional))


def some(strategy: st.SearchStrategy[Any], max_size: int = 3) -> st.SearchStrategy[Any]:
    return loose(st.lists(strategy, max_size=max_size))


def words(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


counts = st.one_of(
    st.integers(-2, 200_000),
    st.integers(*_INT64),
    st.floats(-10, 1e6),
    words(40.0, 2.0**63, 2.0**64, 1e300),  # integral floats, some past any integer type
)
numbers = st.one_of(st.floats(-2, 3, allow_nan=False), st.integers(-2, 3))
urls = words("https://example.com/a.png", "data:image/png;base64,iVBORw0K", "data:,x", "data:")
json_texts = st.one_of(
    words("{}", '{"a": 1}', "[1]", "", " ", "null", "{", '{"type": {"type": 1}}'),
    json_values.map(lambda v: orjson.dumps(v).decode()),
)

# A JSON Schema, with property names that collide with keywords ("type", "items"...).
schemas: st.SearchStrategy[Any] = st.recursive(
    obj(type=words("string", "integer", "object", "array", "OBJECT", "STRING")),
    lambda children: obj(
        {"type": words("object", "OBJECT", "array")},
        properties=st.dictionaries(keys, children, max_size=3),
        items=children,
        required=st.lists(keys, max_size=2),
        anyOf=st.lists(children, max_size=2),
        nullable=st.booleans(),
        propertyOrdering=st.lists(keys, max_size=2),
        additionalProperties=st.one_of(st.booleans(), children),
    ),
    max_leaves=6,
)
schema_property_named_type = st.just({"type": "object", "properties": {"type": {"type": "string"}}})
any_schema = st.one_of(schemas, schema_property_named_type)

# --- OpenAI Chat Completions -------------------------------------------------------------

_chat_text_part = obj({"type": words("text")}, text=texts)
_chat_image_part = obj(
    {"type": words("image_url")},
    image_url=st.one_of(urls, obj(url=urls, detail=words("low", "high", "auto"))),
)
_chat_part = st.one_of(
    _chat_text_part, _chat_image_part, obj(type=words("input_audio", "file", "refusal"))
)
_chat_tool_call = obj(
    id=texts, type=words("function"), function=obj(name=texts, arguments=json_texts)
)
_chat_message = st.one_of(
    obj({"role": words("system", "developer")}, content=st.one_of(texts, some(_chat_text_part))),
    obj({"role": words("user")}, content=st.one_of(texts, some(_chat_part))),
    obj(
        {"role": words("assistant")},
        content=st.one_of(st.none(), texts, some(_chat_text_part)),
        tool_calls=some(_chat_tool_call),
        reasoning_content=texts,
        function_call=json_values,
    ),
    obj({"role": words("tool")}, tool_call_id=texts, content=st.one_of(texts, some(_chat_part))),
)
_chat_tool = obj(
    {"type": words("function")},
    function=obj(name=texts, description=texts, parameters=any_schema),
)
# A conversation of one to four turns, each as loose as the rest.
chat_messages = st.lists(_chat_message, min_size=1, max_size=4)
chat_requests = body(
    {"model": words("gpt-x"), "messages": loose(chat_messages)},
    tools=some(_chat_tool),
    tool_choice=st.one_of(
        words("auto", "none", "required"),
        obj(type=words("function"), function=obj(name=texts)),
    ),
    parallel_tool_calls=st.booleans(),
    response_format=obj(
        type=words("text", "json_object", "json_schema"),
        json_schema=obj(name=texts, schema=any_schema, strict=st.booleans()),
    ),
    max_tokens=counts,
    max_completion_tokens=counts,
    temperature=numbers,
    top_p=numbers,
    top_k=counts,
    stop=st.one_of(texts, st.lists(texts, max_size=2)),
    stream=st.booleans(),
    stream_options=obj(include_usage=st.booleans()),
    reasoning_effort=words("low", "medium", "high", "none", "minimal", "extreme"),
    user=texts,
    n=st.integers(0, 3),
    logprobs=st.booleans(),
    frequency_penalty=numbers,
    modalities=st.lists(words("text", "audio"), max_size=2),
    seed=counts,
)

# --- Anthropic Messages -------------------------------------------------------------------

_cache = obj(type=words("ephemeral"), ttl=words("5m", "1h"))
_anthropic_text = obj({"type": words("text")}, text=texts, cache_control=_cache)
_anthropic_image = obj(
    {"type": words("image")},
    source=st.one_of(
        obj(type=words("base64"), media_type=words("image/png", "x"), data=texts),
        obj(type=words("url", "file"), url=urls),
    ),
)
_anthropic_block = st.one_of(
    _anthropic_text,
    _anthropic_image,
    obj({"type": words("tool_use")}, id=texts, name=texts, input=json_objects),
    obj(
        {"type": words("tool_result")},
        tool_use_id=texts,
        content=st.one_of(texts, some(st.one_of(_anthropic_text, _anthropic_image))),
        is_error=st.booleans(),
    ),
    obj({"type": words("thinking")}, thinking=texts, signature=texts),
    obj({"type": words("redacted_thinking", "document", "server_tool_use")}, data=texts),
)
_anthropic_message = obj(
    {"role": words("user", "assistant"), "content": st.one_of(texts, some(_anthropic_block))}
)
anthropic_messages = st.lists(_anthropic_message, min_size=1, max_size=4)
anthropic_requests = body(
    {"model": words("claude-x"), "max_tokens": counts, "messages": loose(anthropic_messages)},
    system=st.one_of(texts, some(_anthropic_text)),
    tools=some(
        obj(
            name=texts,
            description=texts,
            input_schema=any_schema,
            type=words("custom", "web_search_20250305"),
        )
    ),
    tool_choice=obj(
        type=words("auto", "any", "tool", "none"),
        name=texts,
        disable_parallel_tool_use=st.booleans(),
    ),
    temperature=numbers,
    top_p=numbers,
    top_k=counts,
    stop_sequences=st.lists(texts, max_size=2),
    stream=st.booleans(),
    metadata=obj(user_id=texts),
    thinking=obj(type=words("enabled", "adaptive", "disabled"), budget_tokens=counts),
    output_config=obj(
        effort=words("low", "high"),
        format=obj(type=words("json_schema"), schema=any_schema),
    ),
    context_management=json_values,
    mcp_servers=json_values,
)

# --- Gemini generateContent ---------------------------------------------------------------

_gemini_part = st.one_of(
    obj(text=texts, thought=st.booleans(), thoughtSignature=texts),
    obj(inlineData=obj(mimeType=words("image/png", "audio/wav"), data=texts)),
    obj(fileData=obj(mimeType=words("image/png", "application/pdf"), fileUri=urls)),
    obj(functionCall=obj(name=texts, args=json_objects, id=texts), thoughtSignature=texts),
    obj(
        functionResponse=obj(
            name=texts,
            id=texts,
            response=st.one_of(json_objects, obj(output=texts), obj(error=texts)),
            parts=st.lists(json_values, max_size=1),
        )
    ),
    obj(executableCode=json_values),
)
_gemini_schema: st.SearchStrategy[Any] = st.recursive(
    obj(type=words("STRING", "INTEGER", "string"), nullable=st.booleans()),
    lambda children: obj(
        {"type": words("OBJECT", "ARRAY")},
        properties=st.dictionaries(keys, children, max_size=3),
        items=children,
        propertyOrdering=st.lists(keys, max_size=2),
    ),
    max_leaves=6,
)
gemini_contents = st.lists(
    obj(role=words("user", "model", "function"), parts=some(_gemini_part)), min_size=1, max_size=4
)
gemini_requests = body(
    {"contents": loose(gemini_contents)},
    systemInstruction=st.one_of(texts, obj(parts=some(obj(text=texts)))),
    tools=some(
        obj(
            functionDeclarations=some(
                obj(
                    name=texts,
                    description=texts,
                    parameters=st.one_of(_gemini_schema, any_schema),
                    parametersJsonSchema=any_schema,
                )
            ),
            googleSearch=json_objects,
        )
    ),
    toolConfig=obj(
        functionCallingConfig=obj(
            mode=words("AUTO", "ANY", "NONE", "VALIDATED"),
            allowedFunctionNames=st.lists(texts, max_size=2),
        )
    ),
    generationConfig=obj(
        maxOutputTokens=counts,
        temperature=numbers,
        topP=numbers,
        topK=st.one_of(counts, st.just(40.0)),
        stopSequences=st.lists(texts, max_size=2),
        candidateCount=st.integers(0, 2),
        responseModalities=st.lists(words("TEXT", "IMAGE"), max_size=2),
        responseMimeType=words("text/plain", "application/json", "text/x.enum"),
        responseSchema=st.one_of(_gemini_schema, any_schema),
        responseJsonSchema=any_schema,
        thinkingConfig=obj(
            thinkingBudget=st.one_of(counts, st.just(-1)),
            thinkingLevel=words("low", "high", "max"),
            includeThoughts=st.booleans(),
        ),
        seed=counts,
    ),
    safetySettings=json_values,
    cachedContent=texts,
)
gemini_models = st.one_of(words("gemini-x"), st.text(min_size=1, max_size=8))

# --- OpenAI Responses ---------------------------------------------------------------------

_responses_content = obj(
    type=words("input_text", "output_text", "text", "refusal", "input_image", "input_file"),
    text=texts,
    refusal=texts,
    image_url=urls,
    detail=words("auto", "low"),
    file_id=texts,
)
_responses_item = st.one_of(
    obj(
        type=words("message"),
        role=words("user", "assistant", "system", "developer"),
        content=st.one_of(texts, some(_responses_content)),
    ),
    obj(
        {"type": words("function_call")},
        call_id=texts,
        name=texts,
        arguments=json_texts,
    ),
    obj(
        {"type": words("function_call_output")},
        call_id=texts,
        output=st.one_of(texts, some(_responses_content)),
    ),
    obj({"type": words("reasoning", "item_reference", "web_search_call")}, id=texts),
)
responses_input = st.one_of(texts, st.lists(_responses_item, min_size=1, max_size=4))
responses_requests = body(
    {"model": words("gpt-x"), "input": loose(responses_input)},
    instructions=texts,
    tools=some(
        obj(
            type=words("function", "web_search", "namespace"),
            name=texts,
            description=texts,
            parameters=any_schema,
            strict=st.booleans(),
            tools=st.lists(json_objects, max_size=1),
        )
    ),
    tool_choice=st.one_of(
        words("auto", "none", "required"), obj(type=words("function"), name=texts)
    ),
    parallel_tool_calls=st.booleans(),
    text=obj(
        format=obj(
            type=words("text", "json_object", "json_schema"),
            schema=any_schema,
            name=texts,
            strict=st.booleans(),
        ),
        verbosity=words("low"),
    ),
    max_output_tokens=counts,
    temperature=numbers,
    top_p=numbers,
    stream=st.booleans(),
    reasoning=obj(effort=words("low", "high"), summary=words("auto")),
    user=texts,
    store=st.booleans(),
    previous_response_id=texts,
    background=st.booleans(),
    top_logprobs=counts,
    max_tool_calls=counts,
)

# --- upstream responses ------------------------------------------------------------------

_openai_usage = obj(
    prompt_tokens=counts,
    completion_tokens=counts,
    prompt_tokens_details=obj(cached_tokens=counts),
    completion_tokens_details=obj(reasoning_tokens=counts),
)
chat_responses = body(
    id=texts,
    model=texts,
    created=counts,
    choices=some(
        obj(
            index=st.integers(0, 1),
            message=obj(
                role=words("assistant"),
                content=st.one_of(st.none(), texts),
                refusal=texts,
                reasoning_content=texts,
                tool_calls=some(_chat_tool_call),
            ),
            finish_reason=words("stop", "length", "tool_calls", "function_call"),
        )
    ),
    usage=_openai_usage,
)
_anthropic_usage = obj(
    input_tokens=counts,
    output_tokens=counts,
    cache_read_input_tokens=counts,
    cache_creation_input_tokens=counts,
)
anthropic_responses = body(
    id=texts,
    type=words("message"),
    model=texts,
    content=some(
        st.one_of(
            obj(type=words("text"), text=texts),
            obj(type=words("thinking"), thinking=texts, signature=texts),
            obj(type=words("tool_use"), id=texts, name=texts, input=json_objects),
        )
    ),
    stop_reason=words("end_turn", "max_tokens", "tool_use", "refusal"),
    usage=_anthropic_usage,
)
_gemini_usage = obj(
    promptTokenCount=counts,
    candidatesTokenCount=counts,
    thoughtsTokenCount=counts,
    cachedContentTokenCount=counts,
)
gemini_responses = body(
    candidates=some(
        obj(
            content=obj(role=words("model"), parts=some(_gemini_part)),
            finishReason=words("STOP", "MAX_TOKENS", "SAFETY", "OTHER"),
        )
    ),
    usageMetadata=_gemini_usage,
    modelVersion=texts,
    responseId=texts,
)
_responses_usage = obj(
    input_tokens=counts,
    output_tokens=counts,
    input_tokens_details=obj(cached_tokens=counts),
    output_tokens_details=obj(reasoning_tokens=counts),
)
_responses_output = st.one_of(
    obj(type=words("message"), content=some(_responses_content)),
    obj(type=words("function_call"), call_id=texts, name=texts, arguments=json_texts),
    obj(type=words("reasoning"), summary=some(obj(text=texts)), content=some(obj(text=texts))),
)
responses_responses = body(
    id=texts,
    model=texts,
    created_at=counts,
    status=words("completed", "incomplete", "failed"),
    incomplete_details=obj(reason=words("max_output_tokens", "content_filter")),
    output=some(_responses_output),
    usage=_responses_usage,
)

# --- stream events (the JSON after `data:`) ----------------------------------------------

chat_chunks = obj(
    id=texts,
    model=texts,
    choices=some(
        obj(
            index=st.integers(0, 1),
            delta=obj(
                content=texts,
                reasoning_content=texts,
                tool_calls=some(
                    obj(
                        index=st.integers(0, 2),
                        id=texts,
                        function=obj(name=texts, arguments=texts),
                    )
                ),
            ),
            finish_reason=words("stop", "tool_calls", "length"),
        )
    ),
    usage=_openai_usage,
)
chat_chunks = st.one_of(chat_chunks, chat_chunks, obj(error=obj(message=texts, type=texts)))
_ANTHROPIC_EVENTS = (
    "message_start", "content_block_start", "content_block_delta", "content_block_stop",
    "message_delta", "message_stop", "error", "ping",
)  # fmt: skip
_RESPONSES_EVENTS = (
    "response.created", "response.in_progress", "response.output_item.added",
    "response.output_text.delta", "response.output_text.done", "response.refusal.delta",
    "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
    "response.reasoning_text.delta", "response.function_call_arguments.delta",
    "response.function_call_arguments.done", "response.output_item.done",
    "response.completed", "response.incomplete", "response.failed", "error",
)  # fmt: skip
anthropic_events = obj(
    {"type": words(*_ANTHROPIC_EVENTS)},
    message=obj(id=texts, model=texts, usage=_anthropic_usage),
    index=st.integers(-1, 3),
    content_block=obj(
        type=words("text", "thinking", "tool_use", "redacted_thinking"),
        text=texts,
        thinking=texts,
        signature=texts,
        id=texts,
        name=texts,
        input=json_objects,
    ),
    delta=obj(
        type=words("text_delta", "thinking_delta", "signature_delta", "input_json_delta"),
        text=texts,
        thinking=texts,
        signature=texts,
        partial_json=texts,
        stop_reason=words("end_turn", "tool_use"),
    ),
    usage=_anthropic_usage,
    error=obj(type=texts, message=texts),
)
gemini_chunks = gemini_responses
responses_events = obj(
    {"type": words(*_RESPONSES_EVENTS)},
    response=responses_responses,
    item=_responses_output,
    output_index=st.integers(-1, 3),
    content_index=st.integers(-1, 2),
    summary_index=st.integers(-1, 2),
    text=texts,
    delta=texts,
    arguments=texts,
    message=texts,
    code=texts,
)


# Valid JSON that orjson refuses (a lone surrogate escape): one parser reading it with the
# standard library would hand the writers a string orjson cannot write.
_LONE_SURROGATE = b'{"candidates":[{"content":{"parts":[{"text":"\\ud800"}]}}]}'


def sse(events: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """An SSE stream whose events carry EVENTS (or anything), cut into arbitrary chunks."""
    data = st.one_of(
        *[events.map(orjson.dumps)] * 4,
        st.binary(max_size=20),
        words(b"[DONE]", b"", b"{", b"null", b"[]", _LONE_SURROGATE),
    )
    frame = st.tuples(
        st.one_of(st.just(b""), texts.map(lambda t: b"event: " + t.encode() + b"\n")),
        data,
        words(b"\n\n", b"\n\n", b"\r\n\r\n", b"\n", b""),
    ).map(lambda t: t[0] + b"data: " + t[1] + t[2])
    noise = words(b": keep-alive\n\n", b"\n", b"\r", b"data:", b"event: ping\n")
    return st.lists(st.one_of(frame, frame, frame, noise), max_size=8).map(b"".join)


@st.composite
def chunked(draw: st.DrawFn, streams: st.SearchStrategy[bytes]) -> list[bytes]:
    """A byte stream from STREAMS, split at arbitrary points (UTF-8 and CRLF included)."""
    data = draw(streams)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]
