"""OpenAI Chat Completions <-> IR: requests, responses and streams, checked against recorded
shapes and against the official openai SDK reading what the writer produces."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest
from openai import OpenAI

from billing.pricing import Usage
from relay.formats import ir
from relay.formats.openai_chat import (
    StreamParser,
    StreamWriter,
    finish_from_ir,
    finish_to_ir,
    request_from_ir,
    request_to_ir,
    response_from_ir,
    response_to_ir,
    stream_include_usage,
)
from relay.protocols import OPENAI
from tests.relay.formats.canned import CannedServer

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"
    "AAAABJRU5ErkJggg=="
)

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

# A multi-turn agent conversation in the canonical shape request_from_ir writes, so that
# a round trip must give it back unchanged.
CANONICAL: dict[str, Any] = {
    "model": "upstream-model",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these, and the weather in Paris and Oslo?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"},
                },
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "18C sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "4C snow"},
        {"role": "user", "content": "Thanks. Answer as JSON."},
    ],
    "tools": [WEATHER_TOOL],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": True,
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": {"type": "object", "properties": {"text": {"type": "string"}}},
            "strict": True,
        },
    },
    "max_completion_tokens": 512,
    "temperature": 0.2,
    "top_p": 0.9,
    "stop": ["END", "STOP"],
    "reasoning_effort": "low",
    "user": "user-42",
    "stream": True,
    "stream_options": {"include_usage": True},
}


def test_it_translates_a_realistic_request() -> None:
    body = copy.deepcopy(CANONICAL)
    body["messages"][0] = {"role": "developer", "content": [{"type": "text", "text": "Be terse."}]}
    req = request_to_ir(body)

    assert req.model == "upstream-model" and req.stream
    assert req.system == [ir.TextPart("Be terse.")]
    user, assistant, results, last = req.messages
    assert user.role == "user"
    assert user.parts[1] == ir.ImagePart(url="https://example.com/cat.jpg", detail="low")
    assert user.parts[2] == ir.ImagePart(data=PNG, media_type="image/png")
    assert assistant.parts == [
        ir.TextPart("Checking."),
        ir.ToolCallPart("call_a", "get_weather", '{"city":"Paris"}'),
        ir.ToolCallPart("call_b", "get_weather", '{"city":"Oslo"}'),
    ]
    # consecutive tool messages become one user turn, named after their calls
    assert results == ir.Message(
        "user",
        [
            ir.ToolResultPart("call_a", [ir.TextPart("18C sunny")], name="get_weather"),
            ir.ToolResultPart("call_b", [ir.TextPart("4C snow")], name="get_weather"),
        ],
    )
    assert last == ir.Message("user", [ir.TextPart("Thanks. Answer as JSON.")])
    assert req.tools == [
        ir.Tool(
            "get_weather", "Current weather for a city.", WEATHER_TOOL["function"]["parameters"]
        )
    ]
    assert req.tool_choice == ir.ToolChoice(mode="tool", name="get_weather", parallel=True)
    assert req.response_format == ir.ResponseFormat(
        kind="json_schema",
        schema={"type": "object", "properties": {"text": {"type": "string"}}},
        name="answer",
        strict=True,
    )
    assert (req.max_output_tokens, req.temperature, req.top_p) == (512, 0.2, 0.9)
    assert req.stop == ["END", "STOP"]
    assert (req.reasoning_effort, req.user) == ("low", "user-42")


def test_it_round_trips_a_request_unchanged() -> None:
    req = request_to_ir(copy.deepcopy(CANONICAL))
    assert request_from_ir(req, upstream_model="upstream-model") == CANONICAL


def test_it_puts_the_upstream_model_and_always_asks_streams_for_usage() -> None:
    body = {"model": "alias", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    out = request_from_ir(request_to_ir(body), upstream_model="gpt-4o-2024-08-06")
    assert out["model"] == "gpt-4o-2024-08-06"
    assert out["stream_options"] == {"include_usage": True}
    assert not stream_include_usage(body)
    assert stream_include_usage({**body, "stream_options": {"include_usage": True}})


def test_it_round_trips_json_object_and_plain_tool_choices() -> None:
    for choice in ("auto", "none", "required"):
        body = {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [WEATHER_TOOL],
            "tool_choice": choice,
            "response_format": {"type": "json_object"},
            "max_completion_tokens": 10,
        }
        assert request_from_ir(request_to_ir(body), upstream_model="m") == body


def test_it_reads_legacy_max_tokens_a_stop_string_and_can_write_max_tokens() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    req = request_to_ir({**body, "max_tokens": 100, "stop": "\n\n"})
    assert req.max_output_tokens == 100 and req.stop == ["\n\n"]
    assert (
        request_to_ir({**body, "max_tokens": 100, "max_completion_tokens": 50}).max_output_tokens
        == 50
    )
    out = request_from_ir(req, upstream_model="m", max_tokens_field="max_tokens")
    assert out["max_tokens"] == 100 and "max_completion_tokens" not in out


def test_it_reads_assistant_reasoning_content_and_drops_it_going_back_upstream() -> None:
    body = {
        "model": "deepseek-reasoner",
        "messages": [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4", "reasoning_content": "Add them."},
            {"role": "user", "content": "and 3+3?"},
        ],
    }
    req = request_to_ir(body)
    assert req.messages[1].parts == [ir.ThinkingPart("Add them."), ir.TextPart("4")]
    out = request_from_ir(req, upstream_model="deepseek-reasoner")
    assert out["messages"][1] == {"role": "assistant", "content": "4"}


def test_it_drops_cache_control_and_writes_a_text_only_assistant_turn_with_tool_calls() -> None:
    req = ir.ChatRequest(
        model="claude",
        system=[ir.TextPart("sys", cache_control={"type": "ephemeral"})],
        messages=[
            ir.Message("user", [ir.TextPart("hi", cache_control={"type": "ephemeral"})]),
            ir.Message(
                "assistant",
                [ir.ThinkingPart("hmm", signature="sig"), ir.ToolCallPart("t1", "f", "{}")],
            ),
            ir.Message("user", [ir.ToolResultPart("t1", [ir.TextPart("ok")], is_error=True)]),
        ],
    )
    out = request_from_ir(req, upstream_model="gpt-4o")
    assert out["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "ok"},
    ]


def test_it_sends_images_a_tool_returned_in_a_user_message_after_the_tool_messages() -> None:
    req = ir.ChatRequest(
        model="m",
        messages=[
            ir.Message("assistant", [ir.ToolCallPart("t1", "screenshot", "{}")]),
            ir.Message(
                "user",
                [
                    ir.ToolResultPart(
                        "t1", [ir.TextPart("taken"), ir.ImagePart(data=PNG, media_type="image/png")]
                    ),
                    ir.TextPart("what do you see?"),
                ],
            ),
        ],
    )
    messages = request_from_ir(req, upstream_model="m")["messages"]
    assert [m["role"] for m in messages] == ["assistant", "tool", "user", "user"]
    assert messages[1]["content"] == "taken"
    assert messages[2]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    ]
    assert messages[3]["content"] == "what do you see?"


def test_it_leaves_out_tool_choice_when_there_are_no_tools() -> None:
    req = ir.ChatRequest(
        model="m",
        messages=[ir.Message("user", [ir.TextPart("hi")])],
        tool_choice=ir.ToolChoice(mode="auto", parallel=False),
    )
    out = request_from_ir(req, upstream_model="m")
    assert "tool_choice" not in out and "parallel_tool_calls" not in out


def test_it_rejects_top_k_for_an_openai_upstream() -> None:
    req = ir.ChatRequest(model="m", messages=[ir.Message("user", [ir.TextPart("x")])], top_k=40)
    with pytest.raises(ir.TranslationError, match="top_k"):
        request_from_ir(req, upstream_model="m")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("modalities", ["text", "audio"]),
        ("functions", [{"name": "f"}]),
        ("logit_bias", {"50256": -100}),
        ("web_search_options", {"search_context_size": "low"}),
    ],
)
def test_it_rejects_fields_it_cannot_carry_naming_them(field: str, value: Any) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], field: value}
    with pytest.raises(ir.TranslationError, match=field):
        OPENAI.request_ir(body, "m", False, target="anthropic", strict=False)


def test_it_accepts_default_values_of_fields_it_cannot_carry() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "n": 1,
        "presence_penalty": 0,
        "frequency_penalty": 0.0,
        "logprobs": False,
        "modalities": ["text"],
        "seed": 7,
    }
    assert request_to_ir(body).messages == [ir.Message("user", [ir.TextPart("hi")])]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"messages": []}, "messages"),
        ({"model": ""}, "model"),
        ({"messages": [{"role": "wizard", "content": "SECRET"}]}, "role"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "input_audio",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png,SECRET"}}
                        ],
                    }
                ]
            },
            "image_url",
        ),
        ({"messages": [{"role": "tool", "content": "SECRET"}]}, "tool_call_id"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"stop": [1]}, "stop"),
    ],
)
def test_it_rejects_invalid_shapes_without_quoting_content(
    patch: dict[str, Any], field: str
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "SECRET"}], **patch}
    with pytest.raises(ir.TranslationError) as raised:
        request_to_ir(body)
    assert field in str(raised.value)
    assert "SECRET" not in str(raised.value)


# --- responses ---------------------------------------------------------------------------

DEEPSEEK_RESPONSE: dict[str, Any] = {
    "id": "930c60df-bf64-41c9-a88e-3ec75f81e00e",
    "object": "chat.completion",
    "created": 1737000000,
    "model": "deepseek-reasoner",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Let me look.",
                "reasoning_content": "The user wants weather.",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_0_8a4c",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 120,
        "completion_tokens": 48,
        "total_tokens": 168,
        "prompt_tokens_details": {"cached_tokens": 64},
        "completion_tokens_details": {"reasoning_tokens": 30},
        "prompt_cache_hit_tokens": 64,
        "prompt_cache_miss_tokens": 56,
    },
    "system_fingerprint": "fp_a1b2c3",
}


def test_it_reads_a_response_with_reasoning_tool_calls_and_cached_usage() -> None:
    resp = response_to_ir(DEEPSEEK_RESPONSE)
    assert resp.parts == [
        ir.ThinkingPart("The user wants weather."),
        ir.TextPart("Let me look."),
        ir.ToolCallPart("call_0_8a4c", "get_weather", '{"city": "Paris"}'),
    ]
    assert resp.finish_reason == "tool_calls"
    assert resp.usage == Usage(
        input_tokens=120, output_tokens=48, cache_read_tokens=64, reasoning_tokens=30
    )
    assert (resp.model, resp.created) == ("deepseek-reasoner", 1737000000)


def test_it_writes_a_response_that_reads_back_the_same() -> None:
    resp = response_to_ir(DEEPSEEK_RESPONSE)
    body = response_from_ir(resp, model="client-alias")
    assert body["id"] == "chatcmpl-930c60df-bf64-41c9-a88e-3ec75f81e00e"
    assert body["object"] == "chat.completion" and body["model"] == "client-alias"
    assert body["usage"] == {
        "prompt_tokens": 120,
        "completion_tokens": 48,
        "total_tokens": 168,
        "prompt_tokens_details": {"cached_tokens": 64},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }
    again = response_to_ir(body)
    assert again.parts == resp.parts and again.usage == resp.usage
    assert again.finish_reason == "tool_calls"


def test_it_rejects_a_response_without_choices() -> None:
    with pytest.raises(ir.TranslationError):
        response_to_ir({"id": "x", "choices": []})


@pytest.mark.parametrize(
    ("wire", "internal"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("content_filter", "content_filter"),
        (None, "stop"),
    ],
)
def test_it_maps_finish_reasons_in(wire: str | None, internal: str) -> None:
    assert finish_to_ir(wire) == internal


def test_it_maps_finish_reasons_out() -> None:
    for reason in ("stop", "length", "tool_calls", "content_filter"):
        assert finish_from_ir(reason) == reason
    assert finish_from_ir("error") == "stop"


# --- streams -----------------------------------------------------------------------------


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
    obj: dict[str, Any] = {
        "id": "chatcmpl-Bx1",
        "object": "chat.completion.chunk",
        "created": 1737000000,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_1",
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
        **extra,
    }
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


# OpenAI's shape: two parallel calls, arguments split mid-token, usage after the finish.
PARALLEL_STREAM = b"".join(
    [
        _chunk({"role": "assistant", "content": None, "refusal": None}),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_P",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Pa'}}]}),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_O",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"city": "Os'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ris"}'}}]}),
        _chunk({"tool_calls": [{"index": 1, "function": {"arguments": 'lo"}'}}]}),
        _chunk({}, "tool_calls"),
        _chunk(
            None,
            usage={
                "prompt_tokens": 82,
                "completion_tokens": 40,
                "total_tokens": 122,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
        ),
        b"data: [DONE]\n\n",
    ]
)


def _parse_whole(raw: bytes) -> list[ir.StreamEvent]:
    parser = StreamParser()
    return parser.feed(raw) + parser.close()


def _parse_bytewise(raw: bytes) -> list[ir.StreamEvent]:
    parser = StreamParser()
    events: list[ir.StreamEvent] = []
    for i in range(len(raw)):
        events += parser.feed(raw[i : i + 1])
    return events + parser.close()


def _arguments(events: list[ir.StreamEvent]) -> dict[int, str]:
    out: dict[int, str] = {}
    for event in events:
        if isinstance(event, ir.ToolCallDelta):
            out[event.index] = out.get(event.index, "") + event.arguments
    return out


def test_it_parses_parallel_tool_calls_the_same_whole_or_byte_by_byte() -> None:
    whole = _parse_whole(PARALLEL_STREAM)
    assert _parse_bytewise(PARALLEL_STREAM) == whole
    assert whole[0] == ir.StreamStart(id="chatcmpl-Bx1", model="gpt-4o-2024-08-06")
    starts = [e for e in whole if isinstance(e, ir.ToolCallStart)]
    assert starts == [
        ir.ToolCallStart(0, "call_P", "get_weather"),
        ir.ToolCallStart(1, "call_O", "get_weather"),
    ]
    arguments = _arguments(whole)
    assert json.loads(arguments[0]) == {"city": "Paris"}
    assert json.loads(arguments[1]) == {"city": "Oslo"}


def test_it_carries_the_usage_sent_after_the_finish_into_one_stream_finish() -> None:
    events = _parse_whole(PARALLEL_STREAM)
    finishes = [e for e in events if isinstance(e, ir.StreamFinish)]
    assert finishes == [ir.StreamFinish("tool_calls", Usage(input_tokens=82, output_tokens=40))]
    assert events[-1] == finishes[0]


def test_it_parses_crlf_streams_and_split_utf8_text() -> None:
    raw = b"".join(
        [
            _chunk({"role": "assistant", "content": ""}),
            _chunk({"content": "Grüße, "}),
            _chunk({"content": "世界 🌍"}),
            _chunk({}, "length"),
            b"data: [DONE]\n\n",
        ]
    ).replace(b"\n", b"\r\n")
    events = _parse_bytewise(raw)
    assert events == _parse_whole(raw)
    assert "".join(e.text for e in events if isinstance(e, ir.TextDelta)) == "Grüße, 世界 🌍"
    assert events[-1] == ir.StreamFinish("length", None)


def test_it_parses_deepseek_reasoning_content_deltas() -> None:
    raw = b"".join(
        [
            _chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
            _chunk({"content": None, "reasoning_content": "Think"}),
            _chunk({"content": None, "reasoning_content": "ing."}),
            _chunk({"content": "Answer", "reasoning_content": None}),
            _chunk(
                {"content": ""},
                "stop",
                usage={
                    "prompt_tokens": 10,
                    "completion_tokens": 20,
                    "total_tokens": 30,
                    "prompt_cache_hit_tokens": 8,
                    "completion_tokens_details": {"reasoning_tokens": 15},
                },
            ),
            b"data: [DONE]\n\n",
        ]
    )
    events = _parse_bytewise(raw)
    assert events[1:] == [
        ir.ThinkingDelta("Think"),
        ir.ThinkingDelta("ing."),
        ir.TextDelta("Answer"),
        ir.StreamFinish(
            "stop",
            Usage(input_tokens=10, output_tokens=20, cache_read_tokens=8, reasoning_tokens=15),
        ),
    ]


def test_it_turns_an_error_chunk_into_a_stream_error() -> None:
    raw = _chunk({"content": "par"}) + (
        b'data: {"error": {"message": "The server had an error", "type": "server_error"}}\n\n'
    )
    events = _parse_whole(raw)
    assert events[-1] == ir.StreamError("The server had an error", "server_error")
    assert not any(isinstance(e, ir.StreamFinish) for e in events)


def test_it_finishes_on_close_without_done_but_reports_a_cut_stream() -> None:
    finished = _chunk({"content": "hi"}) + _chunk({}, "stop")
    assert _parse_whole(finished)[-1] == ir.StreamFinish("stop", None)
    cut = _parse_whole(_chunk({"content": "hi"}))
    assert isinstance(cut[-1], ir.StreamError)


def test_it_ignores_keepalive_comments_and_reads_a_last_event_without_blank_line() -> None:
    raw = b": keep-alive\n\n" + _chunk({"content": "a"}) + _chunk({}, "stop")[:-2]
    events = _parse_whole(raw)
    assert [type(e) for e in events] == [ir.StreamStart, ir.TextDelta, ir.StreamFinish]


EVENTS: list[ir.StreamEvent] = [
    ir.StreamStart(id="msg_01", model="claude-sonnet-4"),
    ir.ThinkingDelta("Plan: call both.", signature=None),
    ir.TextDelta("Héllo "),
    ir.TextDelta("wörld"),
    # Anthropic-style block indexes: the writer renumbers them 0 and 1
    ir.ToolCallStart(2, "toolu_A", "get_weather"),
    ir.ToolCallDelta(2, '{"city":'),
    ir.ToolCallStart(3, "toolu_B", "get_weather"),
    ir.ToolCallDelta(3, '{"city": "Oslo"}'),
    ir.ToolCallDelta(2, ' "Paris"}'),
    ir.StreamFinish(
        "tool_calls",
        Usage(
            input_tokens=300,
            output_tokens=50,
            cache_read_tokens=200,
            cache_write_tokens=40,
            reasoning_tokens=10,
        ),
    ),
]


def _write(events: list[ir.StreamEvent], *, include_usage: bool) -> bytes:
    writer = StreamWriter("client-model", include_usage=include_usage, created=1737000000)
    return b"".join(writer.write(e) for e in events)


def test_it_reads_back_what_the_writer_wrote() -> None:
    raw = _write(EVENTS, include_usage=True)
    assert raw.endswith(b"data: [DONE]\n\n")
    events = _parse_bytewise(raw)
    assert events[0] == ir.StreamStart(id="chatcmpl-msg_01", model="client-model")
    assert events[1:4] == EVENTS[1:4]
    assert [e for e in events if isinstance(e, ir.ToolCallStart)] == [
        ir.ToolCallStart(0, "toolu_A", "get_weather"),
        ir.ToolCallStart(1, "toolu_B", "get_weather"),
    ]
    assert _arguments(events) == {0: '{"city": "Paris"}', 1: '{"city": "Oslo"}'}
    assert events[-1] == EVENTS[-1]


def test_it_writes_no_usage_chunk_unless_asked() -> None:
    raw = _write(EVENTS, include_usage=False)
    chunks = [orjson.loads(line[6:]) for line in raw.split(b"\n\n") if line.startswith(b"data: {")]
    assert all(c["choices"] and "usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_it_writes_an_error_event_and_nothing_after_it() -> None:
    writer = StreamWriter("m", include_usage=True)
    writer.write(ir.StreamStart(id="x", model="m"))
    raw = writer.write(ir.StreamError("Upstream overloaded", "overloaded_error"))
    assert orjson.loads(raw[6:]) == {
        "error": {
            "message": "Upstream overloaded",
            "type": "overloaded_error",
            "param": None,
            "code": None,
        }
    }
    assert writer.write(ir.StreamFinish("stop")) == b""


# --- the official SDK reads what we write -------------------------------------------------


def _client(upstream: CannedServer) -> OpenAI:
    upstream.accepts = lambda path: path == "/v1/chat/completions"
    return OpenAI(base_url=upstream.url + "/v1", api_key="x", max_retries=0)


def test_it_streams_what_the_openai_sdk_reassembles(upstream: CannedServer) -> None:
    upstream.body = _write(EVENTS, include_usage=True)
    upstream.content_type = "text/event-stream"
    with _client(upstream) as client:
        stream = client.chat.completions.create(
            model="client-model",
            messages=[{"role": "user", "content": "weather?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Héllo wörld"
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                assert call.function is not None
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
    assert calls[0]["id"] == "toolu_A" and calls[1]["id"] == "toolu_B"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert json.loads(calls[1]["arguments"]) == {"city": "Oslo"}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1 and not chunks[-1].choices
    assert (usage[0].prompt_tokens, usage[0].completion_tokens, usage[0].total_tokens) == (
        300,
        50,
        350,
    )
    assert usage[0].prompt_tokens_details is not None
    assert usage[0].prompt_tokens_details.cached_tokens == 200


def test_it_answers_non_stream_calls_the_openai_sdk_reads(upstream: CannedServer) -> None:
    resp = ir.ChatResponse(
        id="msg_01",
        model="claude-sonnet-4",
        parts=[
            ir.ThinkingPart("hm", signature="sig"),
            ir.TextPart("Checking the weather."),
            ir.ToolCallPart("toolu_A", "get_weather", '{"city": "Paris"}'),
        ],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=30, output_tokens=12, cache_read_tokens=20),
        created=1737000000,
    )
    upstream.body = orjson.dumps(response_from_ir(resp, model="client-model"))
    with _client(upstream) as client:
        reply = client.chat.completions.create(
            model="client-model", messages=[{"role": "user", "content": "weather?"}]
        )
    choice = reply.choices[0]
    assert choice.message.content == "Checking the weather."
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id == "toolu_A" and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (30, 12)
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 20
    assert reply.id == "chatcmpl-msg_01" and reply.model == "client-model"
