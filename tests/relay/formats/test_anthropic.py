"""Anthropic Messages translation: requests, responses, streams, usage and errors.

Samples follow the shapes in Anthropic's API reference and streaming docs.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import orjson
import pytest
from anthropic.types import MessageParam

from billing.pricing import Usage
from relay.formats import anthropic as fmt
from relay.formats import ir
from relay.protocols import ANTHROPIC
from tests.relay.formats.canned import CannedServer

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"


def messages_request() -> dict[str, Any]:
    """A Messages request in the canonical form `request_from_ir` writes."""
    return {
        "model": "claude-test",
        "system": [
            {
                "type": "text",
                "text": "You are a weather bot.",
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "text", "text": "Answer briefly."},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is the weather here? 天気"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/sky.jpg"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Need the city.", "signature": "sig-1"},
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01A09q90qw90lq917835lq9",
                        "name": "get_weather",
                        "input": {"location": "San Francisco, CA", "unit": "celsius"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                        "content": [
                            {"type": "text", "text": "15 degrees"},
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": PNG_B64,
                                },
                            },
                        ],
                    },
                    {
                        "type": "text",
                        "text": "Thanks!",
                        "cache_control": {"type": "ephemeral", "ttl": "1h"},
                    },
                ],
            },
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "Get the current weather in a given location",
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "location": {"type": "string"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    },
                    "required": ["location"],
                },
            }
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "top_k": 40,
        "stop_sequences": ["\n\nHuman:"],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "max_tokens": 8192,
        "metadata": {"user_id": "user-123"},
        "stream": True,
    }


# --- requests ---------------------------------------------------------------------------


def test_it_reads_a_messages_request() -> None:
    req = fmt.request_to_ir(messages_request())

    assert req.model == "claude-test"
    assert req.system == [
        ir.TextPart("You are a weather bot.", {"type": "ephemeral"}),
        ir.TextPart("Answer briefly."),
    ]
    user, assistant, results = req.messages
    assert user.parts[1] == ir.ImagePart(data=PNG_B64, media_type="image/png")
    assert user.parts[2] == ir.ImagePart(url="https://example.com/sky.jpg")
    assert assistant.parts[0] == ir.ThinkingPart("Need the city.", "sig-1")
    call = assistant.parts[2]
    assert isinstance(call, ir.ToolCallPart)
    assert json.loads(call.arguments) == {"location": "San Francisco, CA", "unit": "celsius"}
    result = results.parts[0]
    assert isinstance(result, ir.ToolResultPart)
    assert result.name == "get_weather"  # looked up from the call, for Gemini
    assert result.content[0] == ir.TextPart("15 degrees")
    assert req.tools[0].parameters["required"] == ["location"]
    assert req.tool_choice == ir.ToolChoice(mode="auto", parallel=False)
    assert (req.max_output_tokens, req.top_k, req.stop) == (8192, 40, ["\n\nHuman:"])
    assert (req.reasoning_budget, req.user, req.stream) == (2048, "user-123", True)


def test_it_round_trips_a_request() -> None:
    body = messages_request()

    again = fmt.request_from_ir(fmt.request_to_ir(body), upstream_model="claude-test")

    assert again == body


def test_it_reads_string_content_and_tool_choices() -> None:
    req = fmt.request_to_ir(
        {
            "model": "claude-test",
            "max_tokens": 100,
            "system": "Be terse.",
            "messages": [{"role": "user", "content": "Hello"}],
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "t"},
            "temperature": 0.2,
            "top_p": 0.9,
        }
    )

    assert req.system == [ir.TextPart("Be terse.")]
    assert req.messages == [ir.Message("user", [ir.TextPart("Hello")])]
    assert req.tool_choice == ir.ToolChoice(mode="tool", name="t")
    assert (req.temperature, req.top_p) == (0.2, 0.9)
    for wire, mode in (("any", "required"), ("none", "none"), ("auto", "auto")):
        choice = fmt.request_to_ir(
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "tool_choice": {"type": wire},
            }
        ).tool_choice
        assert choice is not None
        assert choice.mode == mode


def test_it_reads_structured_output_and_adaptive_thinking() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    req = fmt.request_to_ir(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "x"}],
            "thinking": {"type": "adaptive"},
            "output_config": {"effort": "low", "format": {"type": "json_schema", "schema": schema}},
        }
    )

    assert req.response_format == ir.ResponseFormat(kind="json_schema", schema=schema)
    assert (req.reasoning_budget, req.reasoning_effort) == (None, "low")


SECRET = "TOP-SECRET-PROMPT"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [{"role": "user", "content": SECRET}]}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "system", "content": SECRET}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": SECRET}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "document", "source": {"type": "text", "data": SECRET}}
                        ],
                    }
                ],
            },
            "document",
        ),
        (
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "file", "file_id": SECRET}}
                        ],
                    }
                ],
            },
            "messages[0].content[0].source",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "tools[0]",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"},
            "max_tokens",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "thinking": {"type": "enabled"},
            },
            "thinking.budget_tokens",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "tool_choice": {"type": "sometimes"},
            },
            "tool_choice",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "mcp_servers": [{"url": SECRET}],
            },
            "mcp_servers",
        ),
    ],
)
def test_it_rejects_what_it_cannot_translate(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ir.TranslationError) as caught:
        ANTHROPIC.request_ir(body, "m", False, target="openai", strict=False)

    assert field in str(caught.value)
    assert SECRET not in str(caught.value)


def test_it_merges_turns_and_puts_tool_results_first() -> None:
    # The shape an OpenAI client produces: one tool message per call, then more user text.
    req = ir.ChatRequest(
        model="gpt-4o",
        messages=[
            ir.Message("user", [ir.TextPart("Weather in Paris and Rome?")]),
            ir.Message(
                "assistant",
                [
                    ir.ToolCallPart("call_1", "get_weather", '{"city":"Paris"}'),
                    ir.ToolCallPart("call.2", "get_weather", '{"city":"Rome"}'),
                ],
            ),
            ir.Message("user", [ir.ToolResultPart("call_1", [ir.TextPart("20C")])]),
            ir.Message("user", [ir.TextPart("and be quick")]),
            ir.Message("user", [ir.ToolResultPart("call.2", [ir.TextPart("oops")], is_error=True)]),
        ],
    )

    body = fmt.request_from_ir(req, upstream_model="claude-test")

    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    calls, results = body["messages"][1]["content"], body["messages"][2]["content"]
    assert [c["input"] for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    assert results == [
        {
            "type": "tool_result",
            "tool_use_id": "call_1",
            "content": [{"type": "text", "text": "20C"}],
        },
        {
            "type": "tool_result",
            "tool_use_id": "call_2",  # made safe, and still matching its call
            "content": [{"type": "text", "text": "oops"}],
            "is_error": True,
        },
        {"type": "text", "text": "and be quick"},
    ]
    assert calls[1]["id"] == "call_2"
    assert body["max_tokens"] == fmt.DEFAULT_MAX_TOKENS
    assert "tool_choice" not in body


def test_it_asks_for_json_in_an_appended_system_instruction() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    req = ir.ChatRequest(
        model="m",
        messages=[ir.Message("user", [ir.TextPart("count")])],
        system=[ir.TextPart("Be exact.", {"type": "ephemeral"})],
        response_format=ir.ResponseFormat(kind="json_schema", schema=schema, name="count"),
    )

    system = fmt.request_from_ir(req, upstream_model="claude-test")["system"]

    assert system[0] == {
        "type": "text",
        "text": "Be exact.",
        "cache_control": {"type": "ephemeral"},
    }
    assert json.dumps(schema, separators=(",", ":")) in system[1]["text"]
    assert "cache_control" not in system[1]


def test_it_maps_tool_choice_and_parallelism_to_the_upstream() -> None:
    def choice(tc: ir.ToolChoice) -> Any:
        req = ir.ChatRequest(
            model="m",
            messages=[ir.Message("user", [ir.TextPart("x")])],
            tools=[ir.Tool("t")],
            tool_choice=tc,
        )
        body = fmt.request_from_ir(req, upstream_model="claude-test")
        assert body["tools"] == [
            {"name": "t", "input_schema": {"type": "object", "properties": {}}}
        ]
        return body["tool_choice"]

    assert choice(ir.ToolChoice("required", parallel=False)) == {
        "type": "any",
        "disable_parallel_tool_use": True,
    }
    assert choice(ir.ToolChoice("tool", name="t")) == {"type": "tool", "name": "t"}
    assert choice(ir.ToolChoice("none", parallel=True)) == {"type": "none"}


def test_it_sizes_max_tokens_around_the_thinking_budget() -> None:
    def body(**kw: Any) -> dict[str, Any]:
        req = ir.ChatRequest(model="m", messages=[ir.Message("user", [ir.TextPart("x")])], **kw)
        return fmt.request_from_ir(req, upstream_model="claude-test")

    assert body(reasoning_effort="high")["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body(reasoning_effort="high")["max_tokens"] == 4096 + fmt.DEFAULT_MAX_TOKENS
    small = body(reasoning_budget=2000, max_output_tokens=500)
    assert small["thinking"]["budget_tokens"] == 2000
    assert small["max_tokens"] > 2000
    assert body(reasoning_budget=2000, max_output_tokens=9000)["max_tokens"] == 9000
    assert "thinking" not in body()


def test_it_sends_only_signed_thinking_and_data_urls_as_base64() -> None:
    req = ir.ChatRequest(
        model="m",
        messages=[
            ir.Message(
                "user",
                [ir.ImagePart(url=f"data:image/png;base64,{PNG_B64}", detail="high")],
            ),
            ir.Message(
                "assistant",
                [ir.ThinkingPart("from another model"), ir.TextPart(""), ir.TextPart("Hi")],
            ),
        ],
    )

    messages = fmt.request_from_ir(req, upstream_model="claude-test")["messages"]

    assert messages[0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}
    ]
    assert messages[1]["content"] == [{"type": "text", "text": "Hi"}]


@pytest.mark.parametrize(
    "req",
    [
        ir.ChatRequest(model="m", messages=[], temperature=1.5),
        ir.ChatRequest(
            model="m",
            messages=[ir.Message("assistant", [ir.ToolCallPart("c", "t", "{not json")])],
        ),
        ir.ChatRequest(model="m", messages=[ir.Message("user", [ir.ImagePart(data="AAAA")])]),
    ],
)
def test_it_refuses_requests_anthropic_would_not_understand(req: ir.ChatRequest) -> None:
    with pytest.raises(ir.TranslationError):
        fmt.request_from_ir(req, upstream_model="claude-test")


# --- responses, usage, errors -----------------------------------------------------------

UPSTREAM_MESSAGE: dict[str, Any] = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-test",
    "content": [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQBCgIYAhIM"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
        {"type": "text", "text": "I'll check the weather."},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 2095,
        "cache_creation_input_tokens": 400,
        "cache_read_input_tokens": 1500,
        "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 300},
        "output_tokens": 503,
        "service_tier": "standard",
    },
}


def test_it_reads_an_upstream_message() -> None:
    resp = fmt.response_to_ir(UPSTREAM_MESSAGE)

    assert resp.id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert resp.parts == [
        ir.ThinkingPart("The user wants weather.", "EqQBCgIYAhIM"),
        ir.TextPart("I'll check the weather."),
        ir.ToolCallPart(
            "toolu_01A09q90qw90lq917835lq9", "get_weather", '{"location":"San Francisco, CA"}'
        ),
    ]
    assert resp.finish_reason == "tool_calls"
    assert resp.usage == Usage(
        input_tokens=2095 + 400 + 1500,
        output_tokens=503,
        cache_read_tokens=1500,
        cache_write_tokens=400,
        cache_write_1h_tokens=300,
    )


def test_it_writes_a_message_for_a_client() -> None:
    resp = ir.ChatResponse(
        id="chatcmpl-abc123",
        model="gpt-4o",
        parts=[ir.TextPart("Hello"), ir.ToolCallPart("call_9", "lookup", '{"q": "x"}')],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=1000, output_tokens=50, cache_read_tokens=800),
    )

    body = fmt.response_from_ir(resp, model="claude-test")

    assert body == {
        "id": "msg_chatcmpl-abc123",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [
            {"type": "text", "text": "Hello"},
            {"type": "tool_use", "id": "call_9", "name": "lookup", "input": {"q": "x"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 200,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 800,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 50,
        },
    }


def test_it_round_trips_a_response() -> None:
    resp = fmt.response_to_ir(UPSTREAM_MESSAGE)

    body = fmt.response_from_ir(resp, model="claude-test")

    usage = dict(UPSTREAM_MESSAGE["usage"])
    del usage["service_tier"]
    assert body["usage"] == usage
    assert [b["type"] for b in body["content"]] == ["thinking", "text", "tool_use"]
    assert fmt.response_to_ir(body).parts == resp.parts


@pytest.mark.parametrize(
    ("wire", "reason", "back"),
    [
        ("end_turn", "stop", "end_turn"),
        ("stop_sequence", "stop", "end_turn"),
        ("max_tokens", "length", "max_tokens"),
        ("tool_use", "tool_calls", "tool_use"),
        ("refusal", "content_filter", "refusal"),
        (None, "stop", "end_turn"),
    ],
)
def test_it_maps_stop_reasons(wire: str | None, reason: str, back: str) -> None:
    assert fmt.finish_reason_to_ir(wire) == reason
    assert fmt.finish_reason_from_ir(fmt.finish_reason_to_ir(wire)) == back


def test_it_reads_usage_with_cache_and_thinking_tokens() -> None:
    usage = fmt.usage_from(
        {
            "input_tokens": 10,
            "cache_read_input_tokens": 300,
            "cache_creation_input_tokens": 20,
            "output_tokens": 90,
            "output_tokens_details": {"thinking_tokens": 60},
        }
    )

    assert usage == Usage(
        input_tokens=330,
        output_tokens=90,
        cache_read_tokens=300,
        cache_write_tokens=20,
        reasoning_tokens=60,
    )
    assert fmt.usage_from({"input_tokens": 5, "output_tokens": 1}) == Usage(5, 1)
    assert fmt.usage_from(None) is None


@pytest.mark.parametrize(
    ("status", "given", "expected"),
    [
        (400, "", "invalid_request_error"),
        (401, "", "authentication_error"),
        (402, "insufficient_quota", "billing_error"),
        (403, "", "permission_error"),
        (404, "", "not_found_error"),
        (413, "", "request_too_large"),
        (429, "", "rate_limit_error"),
        (500, "", "api_error"),
        (502, "upstream_error", "api_error"),
        (504, "", "timeout_error"),
        (529, "", "overloaded_error"),
        (422, "", "invalid_request_error"),
        (400, "overloaded_error", "overloaded_error"),
    ],
)
def test_it_renders_errors_the_anthropic_way(status: int, given: str, expected: str) -> None:
    assert fmt.error_body(status, "Nope.", given) == {
        "type": "error",
        "error": {"type": expected, "message": "Nope."},
    }


# --- streams ----------------------------------------------------------------------------


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )


def block_delta(index: int, **delta: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


UPSTREAM_STREAM = sse(
    {
        "type": "message_start",
        "message": {
            "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 472,
                "cache_creation_input_tokens": 100,
                "cache_read_input_tokens": 2000,
                "output_tokens": 2,
            },
        },
    },
    {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
    },
    {"type": "ping"},
    block_delta(0, type="thinking_delta", thinking="Two cities, "),
    block_delta(0, type="thinking_delta", thinking="two calls."),
    block_delta(0, type="signature_delta", signature="EqQBCgIYAhIM"),
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    block_delta(1, type="text_delta", text="Checking Zürich "),
    block_delta(1, type="text_delta", text="and 東京…"),
    {"type": "content_block_stop", "index": 1},
    {
        "type": "content_block_start",
        "index": 2,
        "content_block": {
            "type": "tool_use",
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "input": {},
        },
    },
    block_delta(2, type="input_json_delta", partial_json=""),
    block_delta(2, type="input_json_delta", partial_json='{"location":'),
    block_delta(2, type="input_json_delta", partial_json=' "Zür'),
    block_delta(2, type="input_json_delta", partial_json='ich"}'),
    {"type": "content_block_stop", "index": 2},
    {
        "type": "content_block_start",
        "index": 3,
        "content_block": {
            "type": "tool_use",
            "id": "toolu_02",
            "name": "get_weather",
            "input": {},
        },
    },
    block_delta(3, type="input_json_delta", partial_json='{"locat'),
    block_delta(3, type="input_json_delta", partial_json='ion": "東京", "unit": "c'),
    block_delta(3, type="input_json_delta", partial_json='elsius"}'),
    {"type": "content_block_stop", "index": 3},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 89},
    },
    {"type": "message_stop"},
)

FINAL_USAGE = Usage(
    input_tokens=472 + 100 + 2000, output_tokens=89, cache_read_tokens=2000, cache_write_tokens=100
)


def parse(*chunks: bytes) -> list[ir.StreamEvent]:
    parser = fmt.StreamParser()
    events = [e for chunk in chunks for e in parser.feed(chunk)]
    return events + parser.close()


def test_it_parses_an_upstream_stream() -> None:
    events = parse(UPSTREAM_STREAM)

    assert events[0] == ir.StreamStart(
        id="msg_014p7gG3wDgGV9EUtLvnow3U",
        model="claude-test",
        usage=Usage(
            input_tokens=2572, output_tokens=2, cache_read_tokens=2000, cache_write_tokens=100
        ),
    )
    assert events[1:6] == [
        ir.ThinkingDelta("Two cities, "),
        ir.ThinkingDelta("two calls."),
        ir.ThinkingDelta("", "EqQBCgIYAhIM"),
        ir.TextDelta("Checking Zürich "),
        ir.TextDelta("and 東京…"),
    ]
    assert events[6] == ir.ToolCallStart(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather")
    assert events[-1] == ir.StreamFinish(reason="tool_calls", usage=FINAL_USAGE)
    assert sum(isinstance(e, ir.StreamFinish) for e in events) == 1


def test_it_parses_the_same_events_however_the_bytes_are_split() -> None:
    whole = parse(UPSTREAM_STREAM)

    assert parse(*(UPSTREAM_STREAM[i : i + 1] for i in range(len(UPSTREAM_STREAM)))) == whole
    crlf = UPSTREAM_STREAM.replace(b"\n", b"\r\n")
    assert parse(*(crlf[i : i + 1] for i in range(len(crlf)))) == whole
    assert parse(crlf) == whole


def test_it_reassembles_parallel_tool_call_arguments() -> None:
    args: dict[int, str] = {}
    calls: dict[int, str] = {}
    for event in parse(*(UPSTREAM_STREAM[i : i + 7] for i in range(0, len(UPSTREAM_STREAM), 7))):
        if isinstance(event, ir.ToolCallStart):
            calls[event.index] = event.id
        elif isinstance(event, ir.ToolCallDelta):
            args[event.index] = args.get(event.index, "") + event.arguments

    assert calls == {0: "toolu_01T1x1fJ34qAmk2tNTrN7Up6", 1: "toolu_02"}
    assert json.loads(args[0]) == {"location": "Zürich"}
    assert json.loads(args[1]) == {"location": "東京", "unit": "celsius"}


def test_it_takes_cumulative_usage_from_message_delta() -> None:
    stream = sse(
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "model": "m",
                "usage": {"input_tokens": 10, "output_tokens": 1},
            },
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
            "usage": {
                "input_tokens": 12,
                "cache_read_input_tokens": 30,
                "cache_creation_input_tokens": None,
                "output_tokens": 7,
            },
        },
        {"type": "message_stop"},
    )

    assert parse(stream)[-1] == ir.StreamFinish(
        reason="length", usage=Usage(input_tokens=42, output_tokens=7, cache_read_tokens=30)
    )


def test_it_turns_an_error_event_into_a_stream_error() -> None:
    stream = UPSTREAM_STREAM[: UPSTREAM_STREAM.index(b"event: message_delta")] + sse(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )

    events = parse(stream)

    assert events[-1] == ir.StreamError(message="Overloaded", type="overloaded_error")
    assert not any(isinstance(e, ir.StreamFinish) for e in events)


def test_it_reports_a_stream_cut_short() -> None:
    cut = UPSTREAM_STREAM[: UPSTREAM_STREAM.index(b"event: message_delta")]
    assert isinstance(parse(cut)[-1], ir.StreamError)

    no_stop = UPSTREAM_STREAM[: UPSTREAM_STREAM.index(b"event: message_stop")]
    assert parse(no_stop)[-1] == ir.StreamFinish(reason="tool_calls", usage=FINAL_USAGE)


CLIENT_EVENTS: list[ir.StreamEvent] = [
    ir.StreamStart(id="chatcmpl-1", model="gpt-4o"),
    ir.ThinkingDelta("Let me think"),
    ir.ThinkingDelta("", "sig-9"),
    ir.TextDelta("Hello, "),
    ir.TextDelta("wörld"),
    ir.ToolCallStart(0, "call_a", "get_weather"),
    ir.ToolCallDelta(0, '{"city": '),
    ir.ToolCallDelta(0, '"Paris"}'),
    ir.ToolCallStart(1, "call_b", "get_time"),
    ir.ToolCallDelta(1, '{"tz": "CET"}'),
    ir.StreamFinish(
        reason="tool_calls",
        usage=Usage(input_tokens=120, output_tokens=33, cache_read_tokens=100),
    ),
]


def write(events: list[ir.StreamEvent]) -> bytes:
    writer = fmt.StreamWriter("claude-test")
    return b"".join(writer.write(e) for e in events)


def test_it_writes_blocks_with_running_indexes() -> None:
    out = write(CLIENT_EVENTS)

    frames = [json.loads(line[6:]) for line in out.split(b"\n") if line.startswith(b"data: ")]
    kinds = [(f["type"], f.get("index")) for f in frames if "index" in f and "delta" not in f]
    assert kinds == [
        ("content_block_start", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_stop", 2),
        ("content_block_start", 3),
        ("content_block_stop", 3),
    ]
    assert frames[0]["type"] == "message_start"
    assert frames[0]["message"]["id"] == "msg_chatcmpl-1"
    assert frames[-2]["delta"]["stop_reason"] == "tool_use"
    assert frames[-1] == {"type": "message_stop"}
    assert write([*CLIENT_EVENTS, ir.TextDelta("late")]) == out


def test_it_reads_back_what_it_writes() -> None:
    out = write(CLIENT_EVENTS)

    events = parse(*(out[i : i + 1] for i in range(len(out))))

    assert events[0] == ir.StreamStart(id="msg_chatcmpl-1", model="claude-test", usage=Usage())
    assert events[1:] == CLIENT_EVENTS[1:]


def test_it_writes_an_error_event() -> None:
    out = write([ir.StreamStart(id="msg_1", model="m"), ir.StreamError("Upstream failed.")])

    assert parse(out)[-1] == ir.StreamError("Upstream failed.", "api_error")
    assert fmt.error_event("Slow down.", "rate_limit_error").startswith(b"event: error\n")
    writer = fmt.StreamWriter("claude-test")
    assert parse(writer.error_event("Slow down.", "rate_limit_error")) == [
        ir.StreamError("Slow down.", "rate_limit_error")
    ]
    assert writer.write(ir.TextDelta("after")) == b""


# --- the official SDK reads what we write -----------------------------------------------


def client(base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="x", max_retries=0)


ASK: list[MessageParam] = [{"role": "user", "content": "Weather?"}]


def test_the_sdk_accumulates_our_stream(upstream: CannedServer) -> None:
    upstream.content_type = "text/event-stream"
    upstream.body = write(CLIENT_EVENTS)

    with (
        client(upstream.url) as sdk,
        sdk.messages.stream(model="claude-test", max_tokens=100, messages=ASK) as stream,
    ):
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "Hello, wörld"
    assert final.stop_reason == "tool_use"
    thinking, said, first, second = final.content
    assert thinking.type == "thinking"
    assert (thinking.thinking, thinking.signature) == ("Let me think", "sig-9")
    assert said.type == "text"
    assert said.text == "Hello, wörld"
    assert first.type == "tool_use"
    assert second.type == "tool_use"
    assert (first.id, first.name, first.input) == ("call_a", "get_weather", {"city": "Paris"})
    assert (second.name, second.input) == ("get_time", {"tz": "CET"})
    assert final.usage.input_tokens == 20
    assert final.usage.cache_read_input_tokens == 100
    assert final.usage.output_tokens == 33


def test_the_sdk_reads_our_raw_stream_events(upstream: CannedServer) -> None:
    upstream.content_type = "text/event-stream"
    upstream.body = write(
        [
            ir.TextDelta("Hi"),
            ir.StreamFinish(reason="length", usage=Usage(input_tokens=5, output_tokens=2)),
        ]
    )

    with client(upstream.url) as sdk:
        events = list(
            sdk.messages.create(model="claude-test", max_tokens=2, messages=ASK, stream=True)
        )

    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    delta = events[4]
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "max_tokens"
    assert (delta.usage.input_tokens, delta.usage.output_tokens) == (5, 2)


def test_the_sdk_reads_our_message(upstream: CannedServer) -> None:
    resp = fmt.response_to_ir(UPSTREAM_MESSAGE)
    upstream.content_type = "application/json"
    upstream.body = orjson.dumps(fmt.response_from_ir(resp, model="claude-test"))

    with client(upstream.url) as sdk:
        message = sdk.messages.create(model="claude-test", max_tokens=100, messages=ASK)

    assert message.stop_reason == "tool_use"
    tool = message.content[-1]
    assert tool.type == "tool_use"
    assert tool.input == {"location": "San Francisco, CA"}
    assert message.usage.cache_creation_input_tokens == 400
    assert message.usage.input_tokens == 2095


def test_the_sdk_reads_our_errors(upstream: CannedServer) -> None:
    upstream.status = 402
    upstream.body = orjson.dumps(fmt.error_body(402, "Top up your balance.", "insufficient_quota"))

    with client(upstream.url) as sdk, pytest.raises(anthropic.APIStatusError) as caught:
        sdk.messages.create(model="claude-test", max_tokens=100, messages=ASK)

    assert caught.value.status_code == 402
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "billing_error", "message": "Top up your balance."},
    }

    upstream.status = 200
    upstream.content_type = "text/event-stream"
    upstream.body = write([ir.TextDelta("par"), ir.StreamError("Overloaded", "overloaded_error")])
    with (
        client(upstream.url) as sdk,
        pytest.raises(anthropic.APIStatusError) as stream_caught,
        sdk.messages.stream(model="claude-test", max_tokens=100, messages=ASK) as stream,
    ):
        stream.get_final_message()
    assert "Overloaded" in str(stream_caught.value)


def test_it_keeps_interleaved_tool_arguments_with_their_call(upstream: CannedServer) -> None:
    upstream.content_type = "text/event-stream"
    upstream.body = write(
        [
            ir.ToolCallStart(0, "call_a", "one"),
            ir.ToolCallStart(1, "call_b", "two"),
            ir.ToolCallDelta(0, '{"a": '),
            ir.ToolCallDelta(1, '{"b": 2}'),
            ir.ToolCallDelta(0, "1}"),
            ir.StreamFinish(reason="tool_calls"),
        ]
    )

    with (
        client(upstream.url) as sdk,
        sdk.messages.stream(model="claude-test", max_tokens=100, messages=ASK) as stream,
    ):
        final = stream.get_final_message()

    inputs = [(b.name, b.input) for b in final.content if b.type == "tool_use"]
    assert inputs == [("one", {"a": 1}), ("two", {"b": 2})]


def test_it_sends_no_thinking_when_the_effort_is_none() -> None:
    req = ir.ChatRequest(
        model="claude-test",
        messages=[ir.Message(role="user", parts=[ir.TextPart(text="hi")])],
        reasoning_effort="none",
    )
    assert "thinking" not in fmt.request_from_ir(req, upstream_model="claude-test")
    req.reasoning_effort = "low"
    body = fmt.request_from_ir(req, upstream_model="claude-test")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
