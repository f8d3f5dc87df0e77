"""Property-based tests: whatever JSON a caller or an upstream sends, every parser in
relay/formats and the token estimator either succeeds or raises the error the relay turns
into a 4xx (requests) or a 502 (upstream answers); nothing else escapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from billing.pricing import Usage
from relay import tokens
from relay.errors import RelayError
from relay.formats import anthropic, gemini, ir, limits, openai, openai_chat, responses
from tests.relay.formats import strategies as s

FORMATS = settings(
    max_examples=s.examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

ToIR = Callable[[dict[str, Any]], ir.ChatRequest]
FromIR = Callable[[ir.ChatRequest], dict[str, Any]]

PARSERS: dict[str, tuple[ToIR, st.SearchStrategy[dict[str, Any]]]] = {
    "openai": (openai_chat.request_to_ir, s.chat_requests),
    "anthropic": (anthropic.request_to_ir, s.anthropic_requests),
    "gemini": (
        lambda body: gemini.request_to_ir(body, model="gemini-x", stream=False),
        s.gemini_requests,
    ),
    "responses": (responses.request_to_ir, s.responses_requests),
}
TARGETS: dict[str, FromIR] = {
    "openai": lambda req: openai_chat.request_from_ir(req, upstream_model="up"),
    "openai-max-tokens": lambda req: openai_chat.request_from_ir(
        req, upstream_model="up", max_tokens_field="max_tokens"
    ),
    "anthropic": lambda req: anthropic.request_from_ir(req, upstream_model="up"),
    "gemini": gemini.request_from_ir,
    "responses": lambda req: responses.request_from_ir(req, upstream_model="up"),
}
RESPONSE_PARSERS: dict[str, tuple[Callable[[dict[str, Any]], ir.ChatResponse], Any]] = {
    "openai": (openai_chat.response_to_ir, s.chat_responses),
    "anthropic": (anthropic.response_to_ir, s.anthropic_responses),
    "gemini": (gemini.response_to_ir, s.gemini_responses),
    "responses": (responses.response_to_ir, s.responses_responses),
}
RESPONSE_WRITERS: dict[str, Callable[[ir.ChatResponse], dict[str, Any]]] = {
    "openai": lambda resp: openai_chat.response_from_ir(resp, model="m"),
    "anthropic": lambda resp: anthropic.response_from_ir(resp, model="m"),
    "gemini": lambda resp: gemini.response_from_ir(resp, model="m"),
    "responses": lambda resp: responses.response_from_ir(resp, model="m"),
}
STREAM_PARSERS: dict[str, tuple[Callable[[], Any], st.SearchStrategy[Any]]] = {
    "openai": (openai_chat.StreamParser, s.chat_chunks),
    "anthropic": (anthropic.StreamParser, s.anthropic_events),
    "gemini": (gemini.StreamParser, s.gemini_chunks),
    "responses": (responses.StreamParser, s.responses_events),
}
STREAM_WRITERS: dict[str, Callable[[], Any]] = {
    "openai": lambda: openai_chat.StreamWriter("m", include_usage=True),
    "anthropic": lambda: anthropic.StreamWriter("m"),
    "gemini": lambda: gemini.StreamWriter("m"),
    "responses": lambda: responses.StreamWriter("m"),
}


def _names_fields_only(error: Exception) -> None:
    # Error texts reach logs and callers: they may name fields, never repeat content.
    assert s.CANARY not in str(error)


def _translates(to_ir: ToIR, body: dict[str, Any]) -> None:
    """TO_IR gives an IR or a TranslationError; every target then gives a body orjson can
    write, or a TranslationError."""
    try:
        req = to_ir(body)
    except ir.TranslationError as exc:
        _names_fields_only(exc)
        return
    assert isinstance(req, ir.ChatRequest)
    for from_ir in TARGETS.values():
        try:
            out = from_ir(req)
        except ir.TranslationError as exc:
            _names_fields_only(exc)
            continue
        assert isinstance(out, dict)
        orjson.dumps(out)


def _reads(to_ir: Callable[[dict[str, Any]], ir.ChatResponse], body: dict[str, Any]) -> None:
    """TO_IR reads an upstream's BODY or raises TranslationError (the relay answers 502);
    what it read, every client protocol can write (relay/proxy.py does not guard that)."""
    try:
        resp = to_ir(body)
    except ir.TranslationError:
        return
    assert isinstance(resp, ir.ChatResponse)
    for write in RESPONSE_WRITERS.values():
        orjson.dumps(write(resp))


def _streams(make: Callable[[], Any], chunks: list[bytes]) -> None:
    """A parser from MAKE takes CHUNKS without raising, and every client protocol's writer
    takes the events it gives."""
    parser = make()
    writers = [writer() for writer in STREAM_WRITERS.values()]
    seen: list[ir.StreamEvent] = []
    for chunk in chunks:
        seen.extend(parser.feed(chunk))
    seen.extend(parser.close())
    for event in seen:
        assert isinstance(event, ir.StreamEvent)
        for writer in writers:
            assert isinstance(writer.write(event), bytes)


# --- the token estimator ----------------------------------------------------------------


def _estimates(payload: dict[str, Any]) -> None:
    for bytes_per_token in (tokens.HOLD_BYTES_PER_TOKEN, tokens.ESTIMATE_BYTES_PER_TOKEN):
        count = tokens.prompt_tokens(payload, bytes_per_token=bytes_per_token)
        assert isinstance(count, int)
        assert count >= 0


def test_it_estimates_a_tool_schema_with_a_property_named_type() -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "description": "Looks the weather up.",
                    "parameters": {"type": "object", "properties": {"type": {"type": "string"}}},
                },
            }
        ],
    }
    plain = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    estimate = tokens.prompt_tokens(body, bytes_per_token=tokens.ESTIMATE_BYTES_PER_TOKEN)
    assert estimate > tokens.prompt_tokens(plain, bytes_per_token=tokens.ESTIMATE_BYTES_PER_TOKEN)


def test_it_estimates_json_nested_as_deep_as_orjson_reads() -> None:
    # orjson reads up to 1024 levels; the estimator must not run out of stack before it.
    raw = b'{"messages":' + b'[{"content":' * 511 + b'"deep"' + b"}]" * 511 + b"}"
    payload = orjson.loads(raw)
    # One message (4 tokens of overhead) holding four bytes of text.
    assert tokens.prompt_tokens(payload, bytes_per_token=4) == 5


@FORMATS
@given(st.one_of(s.json_objects, s.chat_requests, s.anthropic_requests, s.gemini_requests,
                 s.responses_requests))  # fmt: skip
def test_the_estimator_takes_any_json_object(payload: dict[str, Any]) -> None:
    _estimates(payload)


@FORMATS
@given(
    field=st.sampled_from(("messages", "tools", "input", "contents", "system")),
    depth=st.integers(1, 1020),
    wrap=st.sampled_from((b'[{"type":', b'{"type":', b"[", b'{"content":')),
)
def test_the_estimator_takes_any_nesting(field: str, depth: int, wrap: bytes) -> None:
    close = b"}" if wrap.startswith(b"{") else b"]"
    if wrap.startswith(b"[{"):
        close, depth = b"}]", depth // 2
    raw = b'{"' + field.encode() + b'":' + wrap * depth + b'"x"' + close * depth + b"}"
    _estimates(orjson.loads(raw))


# --- requests: client body -> IR -> every upstream's body ------------------------------


@pytest.mark.parametrize("protocol", PARSERS)
@FORMATS
@given(data=st.data())
def test_a_request_translates_or_is_refused(protocol: str, data: st.DataObject) -> None:
    to_ir, bodies = PARSERS[protocol]
    _translates(to_ir, data.draw(st.one_of(bodies, bodies, s.json_objects)))


# A request with every place JSON can nest deeply filled (%s: a deep object; %r: a JSON
# string holding a deep object, as tool arguments and results are carried).
DEEP_REQUESTS: dict[str, bytes] = {
    "openai": b'{"model":"m","messages":[{"role":"user","content":"hi"},'
    b'{"role":"assistant","tool_calls":[{"id":"c","type":"function",'
    b'"function":{"name":"f","arguments":%r}}]},'
    b'{"role":"tool","tool_call_id":"c","content":%r}],'
    b'"tools":[{"type":"function","function":{"name":"f","parameters":%s}}],'
    b'"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":%s}}}',
    "anthropic": b'{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"},'
    b'{"role":"assistant","content":[{"type":"tool_use","id":"c","name":"f","input":%s}]},'
    b'{"role":"user","content":[{"type":"tool_result","tool_use_id":"c","content":%r}]}],'
    b'"tools":[{"name":"f","input_schema":%s}],'
    b'"output_config":{"format":{"type":"json_schema","schema":%s}}}',
    "gemini": b'{"contents":[{"role":"user","parts":[{"text":"hi"}]},'
    b'{"role":"model","parts":[{"functionCall":{"name":"f","args":%s}}]},'
    b'{"role":"user","parts":[{"functionResponse":{"name":"f","response":%s}}]}],'
    b'"tools":[{"functionDeclarations":[{"name":"f","parameters":%s}]}],'
    b'"generationConfig":{"responseMimeType":"application/json","responseSchema":%s}}',
    "responses": b'{"model":"m","input":[{"role":"user","content":"hi"},'
    b'{"type":"function_call","call_id":"c","name":"f","arguments":%r},'
    b'{"type":"function_call_output","call_id":"c","output":%r}],'
    b'"tools":[{"type":"function","name":"f","parameters":%s}],'
    b'"text":{"format":{"type":"json_schema","name":"r","schema":%s}}}',
}


def _deep(depth: int) -> bytes:
    return b'{"type":' * depth + b'"string"' + b"}" * depth


def _fill(template: bytes, objects: int, texts: int) -> bytes:
    """TEMPLATE with its %s slots holding objects OBJECTS deep and its %r slots JSON
    strings whose text is an object TEXTS deep."""
    text = orjson.dumps(_deep(texts).decode())
    return template.replace(b"%r", text).replace(b"%s", _deep(objects))


@pytest.mark.parametrize("protocol", PARSERS)
@settings(FORMATS, max_examples=s.examples(25))
@given(objects=st.integers(1, 260), texts=st.integers(1, 1100))
def test_a_deeply_nested_request_translates_or_is_refused(
    protocol: str, objects: int, texts: int
) -> None:
    # orjson reads 1024 levels but writes 254: nothing read may fail to be written.
    raw = _fill(DEEP_REQUESTS[protocol], objects, texts)
    try:
        body = openai.parse_body(raw)
    except RelayError as err:
        assert err.status == 400
        return
    _estimates(body)
    _translates(PARSERS[protocol][0], body)


@pytest.mark.parametrize("protocol", PARSERS)
def test_a_request_nested_past_the_limit_is_refused_with_400(protocol: str) -> None:
    shallow = openai.parse_body(_fill(DEEP_REQUESTS[protocol], 100, 1000))
    assert shallow["model" if protocol != "gemini" else "contents"]
    with pytest.raises(RelayError) as refused:
        openai.parse_body(_fill(DEEP_REQUESTS[protocol], limits.MAX_NESTING, 1))
    assert refused.value.status == 400
    assert "nests" in refused.value.message


@FORMATS
@given(
    body=st.one_of(s.gemini_requests, s.json_objects),
    model=s.gemini_models,
    stream=st.booleans(),
)
def test_a_gemini_request_translates_whatever_the_url_says(
    body: dict[str, Any], model: str, stream: bool
) -> None:
    _translates(lambda b: gemini.request_to_ir(b, model=model, stream=stream), body)


# --- upstream answers -> IR -> every client's body ----------------------------------------


@pytest.mark.parametrize("protocol", RESPONSE_PARSERS)
@FORMATS
@given(data=st.data())
def test_an_upstream_answer_is_read_or_refused(protocol: str, data: st.DataObject) -> None:
    to_ir, bodies = RESPONSE_PARSERS[protocol]
    _reads(to_ir, data.draw(st.one_of(bodies, bodies, s.json_objects)))


DEEP_RESPONSES: dict[str, bytes] = {
    "openai": b'{"choices":[{"message":{"role":"assistant","tool_calls":[{"id":"c",'
    b'"type":"function","function":{"name":"f","arguments":%r}}]}}]}',
    "anthropic": b'{"content":[{"type":"tool_use","id":"c","name":"f","input":%s}]}',
    "gemini": b'{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":%s}}]}}]}',
    "responses": b'{"output":[{"type":"function_call","call_id":"c","name":"f","arguments":%r}]}',
}


@pytest.mark.parametrize("protocol", RESPONSE_PARSERS)
@settings(FORMATS, max_examples=s.examples(25))
@given(depth=st.integers(1, 1100))
def test_a_deeply_nested_upstream_answer_is_read_or_refused(protocol: str, depth: int) -> None:
    raw = _fill(DEEP_RESPONSES[protocol], depth, depth)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:  # past orjson's 1024 levels: the relay answers 502
        return
    _reads(RESPONSE_PARSERS[protocol][0], body)
    events = b"data: " + raw + b"\n\n"
    if protocol == "anthropic":
        events = b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        events += b'"content_block":' + raw[len(b'{"content":[') : -len(b"]}")] + b"}\n\n"
    _streams(STREAM_PARSERS[protocol][0], [events])


# --- upstream streams -----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", STREAM_PARSERS)
@FORMATS
@given(data=st.data())
def test_an_upstream_stream_never_breaks_the_parser(protocol: str, data: st.DataObject) -> None:
    make, events = STREAM_PARSERS[protocol]
    stream = st.one_of(s.sse(events), s.sse(events), st.binary(max_size=64))
    _streams(make, data.draw(s.chunked(stream)))


# --- the OpenAI body helpers and Gemini embeddings ---------------------------------------


@FORMATS
@given(st.one_of(st.binary(max_size=40), s.json_values.map(orjson.dumps)))
def test_any_bytes_parse_to_an_object_or_a_400(raw: bytes) -> None:
    try:
        payload = openai.parse_body(raw)
    except RelayError as err:
        assert err.status == 400
        return
    assert isinstance(payload, dict)


@FORMATS
@given(
    payload=st.one_of(s.json_objects, s.chat_requests, s.responses_requests),
    model=st.sampled_from(("gpt-x", "up")),
    stream=st.booleans(),
)
def test_the_openai_body_helpers_answer_or_refuse_with_400(
    payload: dict[str, Any], model: str, stream: bool
) -> None:
    for read in (openai.requested_model, openai.requested_max_output):
        try:
            read(payload)
        except RelayError as err:
            assert err.status == 400
            _names_fields_only(err)
    raw = orjson.dumps(payload)
    body, _ = openai.upstream_body(raw, payload, model, stream)
    sent = orjson.loads(body)
    assert sent["model"] == model
    if stream:
        assert sent["stream_options"]["include_usage"]


@FORMATS
@given(
    st.one_of(
        s.chat_responses.map(orjson.dumps),
        s.json_values.map(orjson.dumps),
        st.binary(max_size=40),
    )
)
def test_any_upstream_body_is_metered(raw: bytes) -> None:
    usage, output_bytes = openai.meter_body(raw)
    assert usage is None or isinstance(usage, Usage)
    assert output_bytes >= 0


@FORMATS
@given(st.one_of(s.json_values, s.chat_responses.map(lambda b: b.get("usage"))))
def test_any_usage_object_is_read(value: Any) -> None:
    for usage_from in (
        openai.usage_from,
        anthropic.usage_from,
        gemini.usage_from,
        responses.usage_from,
    ):
        usage = usage_from(value)
        assert usage is None or min(usage.input_tokens, usage.output_tokens) >= 0


@FORMATS
@given(data=st.data())
def test_an_openai_stream_is_metered_whatever_it_carries(data: st.DataObject) -> None:
    chunks = data.draw(s.chunked(st.one_of(s.sse(s.chat_chunks), st.binary(max_size=64))))
    meter = openai.StreamMeter(strip_usage_chunk=data.draw(st.booleans()))
    forwarded = b"".join(meter.feed(chunk) for chunk in chunks) + meter.flush()
    assert len(forwarded) <= sum(map(len, chunks))


_embed_content = s.obj(parts=s.some(s.obj(text=s.texts)))


@FORMATS
@given(
    body=st.one_of(
        s.body(content=_embed_content, outputDimensionality=s.counts),
        s.body(requests=s.some(s.obj(content=_embed_content, outputDimensionality=s.counts))),
        s.json_objects,
    ),
    batch=st.booleans(),
)
@example(body={"requests": [{"content": {"parts": [{"text": "a"}]}}]}, batch=True)
def test_an_embedding_request_is_read_or_refused(body: dict[str, Any], batch: bool) -> None:
    try:
        texts, dimensions = gemini.embed_request(body, batch=batch)
    except ir.TranslationError as exc:
        _names_fields_only(exc)
        return
    assert texts
    assert all(isinstance(t, str) for t in texts)
    assert dimensions is None or isinstance(dimensions, int)


# --- the crashes these properties found, one plain test each ----------------------------


def test_it_refuses_a_content_block_whose_type_is_not_a_string() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": []}]}]}
    with pytest.raises(ir.TranslationError, match=r"messages\[0\]\.content\[0\]"):
        anthropic.request_to_ir(body)


@pytest.mark.parametrize(
    ("to_ir", "body"),
    [
        (anthropic.response_to_ir, {"content": True}),
        (openai_chat.response_to_ir, {"choices": [{"message": {"tool_calls": True}}]}),
        (responses.response_to_ir, {"output": [{"type": "message", "content": 5}]}),
        (responses.response_to_ir, {"output": [{"type": "reasoning", "summary": 5}]}),
    ],
)
def test_it_reads_an_upstream_answer_whose_lists_are_not_lists(to_ir, body) -> None:
    assert to_ir(body).parts == []


@pytest.mark.parametrize(
    "chunk",
    [b'data: {"choices": true}\n\n', b'data: {"choices": [{"delta": {"tool_calls": 5}}]}\n\n'],
)
def test_an_openai_stream_takes_lists_that_are_not_lists(chunk: bytes) -> None:
    events = openai_chat.StreamParser().feed(chunk)
    assert [type(e) for e in events] == [ir.StreamStart]


def test_it_meters_an_answer_whose_tool_calls_are_not_a_list() -> None:
    raw = b'{"choices":[{"message":{"content":"hi","tool_calls":true}}],"usage":null}'
    assert openai.meter_body(raw) == (None, 2)
    meter = openai.StreamMeter(strip_usage_chunk=False)
    assert meter.feed(b'data: {"choices":[{"delta":{"tool_calls":1}}]}\n\n')


@pytest.mark.parametrize("arguments", ["[1]", '{"city": "Par', ""])
def test_it_shows_an_anthropic_client_a_call_whose_arguments_are_no_object(arguments) -> None:
    call = ir.ToolCallPart(id="call_1", name="get_weather", arguments=arguments)
    resp = ir.ChatResponse(id="x", model="m", parts=[call], finish_reason="length", usage=None)
    [block] = anthropic.response_from_ir(resp, model="m")["content"]
    assert (block["name"], block["input"]) == ("get_weather", {})


HUGE = 2**64 - 1


@pytest.mark.parametrize(
    ("usage_from", "report"),
    [
        (openai.usage_from, {"prompt_tokens": 10, "completion_tokens": HUGE}),
        (anthropic.usage_from, {"input_tokens": 10, "cache_creation_input_tokens": HUGE}),
        (gemini.usage_from, {"promptTokenCount": 10, "thoughtsTokenCount": HUGE}),
        (responses.usage_from, {"input_tokens": 10, "output_tokens": HUGE}),
    ],
)
def test_it_ignores_a_token_count_no_call_could_use(usage_from, report) -> None:
    # The sums written back (and billed) would not fit 64 bits.
    usage = usage_from(report)
    assert (usage.input_tokens, usage.output_tokens) == (10, 0)


def test_it_reads_an_upstream_timestamp_past_64_bits_as_none() -> None:
    resp = responses.response_to_ir({"output": [], "created_at": 2.0**64})
    assert resp.created == 0
    orjson.dumps(responses.response_from_ir(resp, model="m"))


def test_a_gemini_stream_skips_an_event_orjson_cannot_read() -> None:
    # A lone surrogate escape is valid JSON to the standard library, not to orjson, and
    # the string it makes cannot be written to the client.
    parser = gemini.StreamParser()
    events = parser.feed(b'data: {"candidates":[{"content":{"parts":[{"text":"\\ud800"}]}}]}\n\n')
    assert events == []
    writer = openai_chat.StreamWriter("m", include_usage=False)
    assert all(writer.write(event) for event in parser.close())


@pytest.mark.parametrize("value", [2.0**64, 1e300])
def test_it_refuses_a_gemini_integer_too_large_for_any_integer_type(value: float) -> None:
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"topK": value}}
    with pytest.raises(ir.TranslationError, match=r"generationConfig\.topK"):
        gemini.request_to_ir(body, model="g", stream=False)


def test_it_refuses_a_thinking_budget_no_model_has_for_anthropic() -> None:
    body = {
        "contents": [{"parts": [{"text": "hi"}]}],
        "generationConfig": {"thinkingConfig": {"thinkingBudget": HUGE}},
    }
    req = gemini.request_to_ir(body, model="g", stream=False)
    with pytest.raises(ir.TranslationError, match="reasoning budget"):
        anthropic.request_from_ir(req, upstream_model="claude")


def _call(arguments: str) -> ir.ChatRequest:
    return openai_chat.request_to_ir(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": arguments},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c", "content": arguments},
            ],
        }
    )


def test_it_sends_gemini_tool_json_holding_an_integer_past_64_bits() -> None:
    body = gemini.request_from_ir(_call('{"n": 123456789012345678901234567890}'))
    orjson.dumps(body)
    call, result = body["contents"][1]["parts"][0], body["contents"][2]["parts"][0]
    assert call["functionCall"]["args"]["n"] == pytest.approx(1.2345678901234568e29)
    assert result["functionResponse"]["response"]["n"] == pytest.approx(1.2345678901234568e29)


@pytest.mark.parametrize("target", ["anthropic", "gemini"])
@pytest.mark.parametrize("arguments", ['{"s": "\\ud800"}', _deep(limits.MAX_NESTING + 1).decode()])
def test_it_refuses_tool_arguments_the_upstream_body_could_not_hold(target, arguments) -> None:
    with pytest.raises(ir.TranslationError, match="Tool call arguments"):
        TARGETS[target](_call(arguments))


def test_it_shows_an_upstream_call_with_arguments_nested_too_deep_without_them() -> None:
    deep = orjson.loads(_deep(300))  # past the 254 levels orjson writes
    resp = anthropic.response_to_ir({"content": [{"type": "tool_use", "name": "f", "input": deep}]})
    assert [p.arguments for p in resp.parts if isinstance(p, ir.ToolCallPart)] == ["{}"]
    resp = gemini.response_to_ir(
        {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": deep}}]}}]}
    )
    assert [p.arguments for p in resp.parts if isinstance(p, ir.ToolCallPart)] == ["{}"]
