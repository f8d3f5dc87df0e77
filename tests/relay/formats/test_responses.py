"""OpenAI Responses format: requests, responses, usage and streams, checked against recorded
shapes and against the official `openai` SDK reading what the writer produces."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

from billing.pricing import Usage
from relay.formats import ir
from relay.formats import responses as fmt
from relay.protocols import RESPONSES
from tests.relay.formats.canned import CannedServer

# --- recorded-shape fixtures ----------------------------------------------------------------

RESPONSE_BODY: dict[str, Any] = {
    "id": "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41",
    "object": "response",
    "created_at": 1741476777,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "model": "o4-mini-2025-04-16",
    "output": [
        {
            "id": "rs_67ccd3acc8d48190a77525dc6de64b4104becb25c45c1d41",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "The user wants the weather."}],
        },
        {
            "id": "msg_67ccd3acc8d48190a77525dc6de64b4104becb25c45c1d41",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "Let me check. ", "annotations": []},
            ],
        },
        {
            "id": "fc_67ccd3acc8d48190a77525dc6de64b4104becb25c45c1d42",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_12345xyz",
            "name": "get_weather",
            "arguments": '{"location":"Paris, France"}',
        },
    ],
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "store": False,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
    "usage": {
        "input_tokens": 1200,
        "input_tokens_details": {"cached_tokens": 1024},
        "output_tokens": 300,
        "output_tokens_details": {"reasoning_tokens": 256},
        "total_tokens": 1500,
    },
    "user": None,
    "metadata": {},
}


def _sse(kind: str, seq: int, **payload: Any) -> bytes:
    data = {"type": kind, "sequence_number": seq, **payload}
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _recorded_stream() -> bytes:
    """A reasoning summary, text with non-ASCII, and two function calls, as OpenAI sends them."""
    rid, msg, rs = "resp_abc", "msg_abc", "rs_abc"
    base = {"id": rid, "object": "response", "created_at": 1741290958, "model": "o4-mini"}
    created = {**base, "status": "in_progress", "output": [], "usage": None}
    final = {
        **base,
        "status": "completed",
        "output": [
            {"id": rs, "type": "reasoning", "summary": []},
            {"id": msg, "type": "message", "role": "assistant", "status": "completed"},
            {"id": "fc_1", "type": "function_call", "call_id": "call_a", "name": "get_weather"},
            {"id": "fc_2", "type": "function_call", "call_id": "call_b", "name": "get_time"},
        ],
        "usage": RESPONSE_BODY["usage"],
    }
    call = {"type": "function_call", "arguments": "", "status": "in_progress"}
    events = [
        _sse("response.created", 0, response=created),
        _sse("response.in_progress", 1, response=created),
        _sse("response.output_item.added", 2, output_index=0, item={"id": rs, "type": "reasoning"}),
        _sse(
            "response.reasoning_summary_part.added",
            3,
            item_id=rs,
            output_index=0,
            summary_index=0,
            part={"type": "summary_text", "text": ""},
        ),
        _sse(
            "response.reasoning_summary_text.delta",
            4,
            item_id=rs,
            output_index=0,
            summary_index=0,
            delta="Thinking…",
        ),
        _sse("response.output_item.done", 5, output_index=0, item={"id": rs, "type": "reasoning"}),
        _sse(
            "response.output_item.added",
            6,
            output_index=1,
            item={"id": msg, "type": "message", "role": "assistant", "content": []},
        ),
        _sse(
            "response.content_part.added",
            7,
            item_id=msg,
            output_index=1,
            content_index=0,
            part={"type": "output_text", "text": "", "annotations": []},
        ),
        _sse(
            "response.output_text.delta",
            8,
            item_id=msg,
            output_index=1,
            content_index=0,
            delta="Grüße ",
        ),
        _sse(
            "response.output_text.delta",
            9,
            item_id=msg,
            output_index=1,
            content_index=0,
            delta="🌍",
        ),
        _sse(
            "response.output_text.done",
            10,
            item_id=msg,
            output_index=1,
            content_index=0,
            text="Grüße 🌍",
        ),
        _sse(
            "response.output_item.added",
            11,
            output_index=2,
            item={**call, "id": "fc_1", "call_id": "call_a", "name": "get_weather"},
        ),
        _sse(
            "response.function_call_arguments.delta",
            12,
            item_id="fc_1",
            output_index=2,
            delta='{"loc',
        ),
        _sse(
            "response.function_call_arguments.delta",
            13,
            item_id="fc_1",
            output_index=2,
            delta='ation":"Paris"}',
        ),
        _sse(
            "response.function_call_arguments.done",
            14,
            item_id="fc_1",
            output_index=2,
            arguments='{"location":"Paris"}',
        ),
        _sse(
            "response.output_item.added",
            15,
            output_index=3,
            item={**call, "id": "fc_2", "call_id": "call_b", "name": "get_time"},
        ),
        _sse(
            "response.function_call_arguments.delta",
            16,
            item_id="fc_2",
            output_index=3,
            delta='{"tz":',
        ),
        _sse(
            "response.function_call_arguments.delta",
            17,
            item_id="fc_2",
            output_index=3,
            delta='"CET"}',
        ),
        _sse("response.completed", 18, response=final),
    ]
    return b"".join(events)


RECORDED_EVENTS: list[ir.StreamEvent] = [
    ir.StreamStart("resp_abc", "o4-mini"),
    ir.ThinkingDelta("Thinking…"),
    ir.TextDelta("Grüße "),
    ir.TextDelta("🌍"),
    ir.ToolCallStart(2, "call_a", "get_weather"),
    ir.ToolCallDelta(2, '{"loc'),
    ir.ToolCallDelta(2, 'ation":"Paris"}'),
    ir.ToolCallStart(3, "call_b", "get_time"),
    ir.ToolCallDelta(3, '{"tz":'),
    ir.ToolCallDelta(3, '"CET"}'),
    ir.StreamFinish(
        "tool_calls",
        Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=1024, reasoning_tokens=256),
    ),
]


def _parse(data: bytes, *, step: int | None = None) -> list[ir.StreamEvent]:
    parser = fmt.StreamParser()
    events: list[ir.StreamEvent] = []
    if step is None:
        events += parser.feed(data)
    else:
        for i in range(0, len(data), step):
            events += parser.feed(data[i : i + step])
    return events + parser.close()


# --- requests -------------------------------------------------------------------------------


def test_it_reads_a_plain_string_input() -> None:
    req = fmt.request_to_ir({"model": "gpt-4.1", "input": "Hello", "store": True})
    assert req.model == "gpt-4.1"
    assert req.messages == [ir.Message("user", [ir.TextPart("Hello")])]
    assert not req.stream


def test_it_reads_a_full_conversation() -> None:
    req = fmt.request_to_ir(
        {
            "model": "gpt-4.1",
            "instructions": "Be brief.",
            "input": [
                {"role": "developer", "content": "Answer in French."},
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is in these?"},
                        {
                            "type": "input_image",
                            "image_url": "https://example.com/a.png",
                            "detail": "high",
                        },
                        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
                    ],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
                },
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
                {
                    "type": "function_call",
                    "call_id": "call_1",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                },
                {
                    "type": "function_call",
                    "call_id": "call_2",
                    "name": "get_time",
                    "arguments": "{}",
                },
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
                {"type": "function_call_output", "call_id": "call_2", "output": "noon"},
                {"role": "user", "content": "Thanks"},
            ],
            "tools": [
                {
                    "type": "function",
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                    "strict": True,
                }
            ],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "parallel_tool_calls": False,
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "answer",
                    "schema": {"type": "object"},
                    "strict": True,
                }
            },
            "max_output_tokens": 500,
            "temperature": 0.2,
            "top_p": 0.9,
            "reasoning": {"effort": "low", "summary": "auto"},
            "stream": True,
            "store": True,
            "user": "u-1",
        }
    )
    assert req.system == [ir.TextPart("Be brief."), ir.TextPart("Answer in French.")]
    assert req.messages == [
        ir.Message(
            "user",
            [
                ir.TextPart("What is in these?"),
                ir.ImagePart(url="https://example.com/a.png", detail="high"),
                ir.ImagePart(data="iVBORw0KGgo=", media_type="image/png"),
            ],
        ),
        ir.Message(
            "assistant",
            [
                ir.TextPart("Checking."),
                ir.ToolCallPart("call_1", "get_weather", '{"city":"Paris"}'),
                ir.ToolCallPart("call_2", "get_time", "{}"),
            ],
        ),
        ir.Message(
            "user",
            [
                ir.ToolResultPart("call_1", [ir.TextPart("18C")]),
                ir.ToolResultPart("call_2", [ir.TextPart("noon")]),
            ],
        ),
        ir.Message("user", [ir.TextPart("Thanks")]),
    ]
    assert req.tools == [
        ir.Tool(
            "get_weather",
            "Weather for a city",
            {"type": "object", "properties": {"city": {"type": "string"}}},
        )
    ]
    assert req.tool_choice == ir.ToolChoice(mode="tool", name="get_weather", parallel=False)
    assert req.response_format == ir.ResponseFormat(
        kind="json_schema", schema={"type": "object"}, name="answer", strict=True
    )
    assert (req.max_output_tokens, req.temperature, req.top_p) == (500, 0.2, 0.9)
    assert req.reasoning_effort == "low"
    assert req.stream
    assert req.user == "u-1"


def test_it_refuses_previous_response_id() -> None:
    body = {"model": "m", "input": "hi", "previous_response_id": "resp_1"}
    with pytest.raises(ir.TranslationError) as caught:
        RESPONSES.request_ir(body, "m", False, target="anthropic", strict=False)
    assert str(caught.value) == (
        "'previous_response_id' cannot be sent to this model's provider (TokenHub keeps no "
        "conversation state: send the earlier items themselves in input, with store: false)."
    )


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"input": "SECRET"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": [{"role": "user", "content": 5}]}, "input[0].content"),
        ({"model": "m", "input": [{"role": "tool", "content": "SECRET"}]}, "input[0].role"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "item_reference"),
        (
            {"model": "m", "input": [{"type": "computer_call_output", "output": "SECRET"}]},
            "computer_call_output",
        ),
        (
            {
                "model": "m",
                "input": [{"role": "user", "content": [{"type": "input_file", "file_data": "S"}]}],
            },
            "input_file",
        ),
        (
            {
                "model": "m",
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}
                ],
            },
            "file_id",
        ),
        (
            {"model": "m", "input": "SECRET", "tools": [{"type": "file_search"}]},
            "tools[0].type",
        ),
        ({"model": "m", "input": "SECRET", "tool_choice": {"type": "file_search"}}, "tool_choice"),
        ({"model": "m", "input": "SECRET", "conversation": "conv_1"}, "conversation"),
        ({"model": "m", "input": "SECRET", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": "SECRET", "text": {"format": {"type": "x"}}}, "text.format"),
    ],
)
def test_it_refuses_invalid_or_untranslatable_requests_without_quoting_content(
    body: dict[str, Any], names: str
) -> None:
    with pytest.raises(ir.TranslationError) as caught:
        RESPONSES.request_ir(body, "m", False, target="anthropic", strict=False)
    assert names in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_it_writes_an_upstream_request_that_never_asks_to_store() -> None:
    req = ir.ChatRequest(
        model="claude-client-model",
        system=[ir.TextPart("Be brief."), ir.TextPart("Use metric units.")],
        messages=[
            ir.Message(
                "user",
                [ir.TextPart("Look"), ir.ImagePart(data="AAAA", media_type="image/jpeg")],
            ),
            ir.Message(
                "assistant",
                [
                    ir.ThinkingPart("hidden", signature="sig"),
                    ir.TextPart("Checking."),
                    ir.ToolCallPart("toolu_1", "get_weather", '{"city":"Oslo"}'),
                ],
            ),
            ir.Message(
                "user",
                [ir.ToolResultPart("toolu_1", [ir.TextPart("-3C")]), ir.TextPart("And now?")],
            ),
        ],
        tools=[ir.Tool("get_weather", "Weather", {})],
        tool_choice=ir.ToolChoice(mode="required", parallel=True),
        response_format=ir.ResponseFormat(kind="json_object"),
        max_output_tokens=64,
        reasoning_budget=10000,
        stream=True,
    )
    body = fmt.request_from_ir(req, upstream_model="gpt-5")
    assert body == {
        "model": "gpt-5",
        "instructions": "Be brief.\n\nUse metric units.",
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Look"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/jpeg;base64,AAAA",
                        "detail": "auto",
                    },
                ],
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Checking."}],
            },
            {
                "type": "function_call",
                "call_id": "toolu_1",
                "name": "get_weather",
                "arguments": '{"city":"Oslo"}',
            },
            {"type": "function_call_output", "call_id": "toolu_1", "output": "-3C"},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "And now?"}],
            },
        ],
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Weather",
                "parameters": {"type": "object", "properties": {}},
                "strict": False,
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": True,
        "text": {"format": {"type": "json_object"}},
        "max_output_tokens": 64,
        "reasoning": {"effort": "medium"},
        "stream": True,
        "store": False,
    }


def test_it_round_trips_a_request_through_the_ir() -> None:
    original = {
        "model": "gpt-4.1",
        "instructions": "Be brief.",
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        ],
        "tools": [
            {
                "type": "function",
                "name": "f",
                "description": "F",
                "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
                "strict": False,
            }
        ],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}},
        "max_output_tokens": 100,
        "temperature": 0.5,
        "reasoning": {"effort": "high"},
        "stream": False,
        "store": False,
    }
    req = fmt.request_to_ir(original)
    assert fmt.request_from_ir(req, upstream_model="gpt-4.1") == original
    assert fmt.request_to_ir(fmt.request_from_ir(req, upstream_model="gpt-4.1")) == req


@pytest.mark.parametrize(
    ("change", "names"),
    [({"stop": ["END"]}, "stop"), ({"top_k": 5}, "top_k")],
)
def test_it_refuses_what_responses_upstreams_cannot_do(change: dict[str, Any], names: str) -> None:
    req = ir.ChatRequest(model="m", messages=[ir.Message("user", [ir.TextPart("hi")])])
    for key, value in change.items():
        setattr(req, key, value)
    with pytest.raises(ir.TranslationError, match=names):
        fmt.request_from_ir(req, upstream_model="gpt-4.1")


# --- responses and usage --------------------------------------------------------------------


def test_it_reads_a_response_with_reasoning_text_and_a_function_call() -> None:
    resp = fmt.response_to_ir(RESPONSE_BODY)
    assert resp.id == RESPONSE_BODY["id"]
    assert resp.model == "o4-mini-2025-04-16"
    assert resp.created == 1741476777
    assert resp.parts == [
        ir.ThinkingPart("The user wants the weather."),
        ir.TextPart("Let me check. "),
        ir.ToolCallPart("call_12345xyz", "get_weather", '{"location":"Paris, France"}'),
    ]
    assert resp.finish_reason == "tool_calls"
    assert resp.usage == Usage(
        input_tokens=1200, output_tokens=300, cache_read_tokens=1024, reasoning_tokens=256
    )


@pytest.mark.parametrize(
    ("status", "details", "output", "finish"),
    [
        ("completed", None, [], "stop"),
        ("incomplete", {"reason": "max_output_tokens"}, [], "length"),
        ("incomplete", {"reason": "content_filter"}, [], "content_filter"),
        ("failed", None, [], "error"),
        (
            "completed",
            None,
            [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}],
            "tool_calls",
        ),
    ],
)
def test_it_maps_status_to_finish_reason(
    status: str, details: dict[str, Any] | None, output: list[Any], finish: str
) -> None:
    body = {**RESPONSE_BODY, "status": status, "incomplete_details": details, "output": output}
    assert fmt.response_to_ir(body).finish_reason == finish


def test_it_round_trips_a_response_through_the_ir() -> None:
    resp = fmt.response_to_ir(RESPONSE_BODY)
    written = fmt.response_from_ir(resp, model="o4-mini")
    assert written["object"] == "response"
    assert written["status"] == "completed"
    assert written["incomplete_details"] is None
    assert [item["type"] for item in written["output"]] == ["reasoning", "message", "function_call"]
    assert written["usage"] == {
        "input_tokens": 1200,
        "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 0},
        "output_tokens": 300,
        "output_tokens_details": {"reasoning_tokens": 256},
        "total_tokens": 1500,
    }
    again = fmt.response_to_ir(written)
    assert (again.parts, again.finish_reason, again.usage) == (
        resp.parts,
        resp.finish_reason,
        resp.usage,
    )


def test_it_writes_incomplete_when_the_output_was_cut_at_max_tokens() -> None:
    resp = ir.ChatResponse(
        id="chatcmpl-1",
        model="m",
        parts=[ir.TextPart("Once upon"), ir.TextPart(" a time")],
        finish_reason="length",
        usage=Usage(input_tokens=5, output_tokens=3),
        created=1700000000,
    )
    written = fmt.response_from_ir(resp, model="gpt-4.1")
    assert written["id"] == "resp_chatcmpl-1"
    assert written["status"] == "incomplete"
    assert written["incomplete_details"] == {"reason": "max_output_tokens"}
    assert written["output"] == [
        {
            "id": "msg_chatcmpl-1_0",
            "type": "message",
            "role": "assistant",
            "status": "incomplete",
            "content": [{"type": "output_text", "text": "Once upon a time", "annotations": []}],
        }
    ]
    assert fmt.response_to_ir(written).finish_reason == "length"


def test_it_maps_usage_with_cache_and_reasoning_tokens() -> None:
    usage = fmt.usage_from(
        {
            "input_tokens": 2000,
            "input_tokens_details": {"cached_tokens": 1500, "cache_write_tokens": 300},
            "output_tokens": 700,
            "output_tokens_details": {"reasoning_tokens": 600},
            "total_tokens": 2700,
        }
    )
    assert usage == Usage(
        input_tokens=2000,
        output_tokens=700,
        cache_read_tokens=1500,
        cache_write_tokens=300,
        reasoning_tokens=600,
    )
    assert fmt.usage_from(None) is None
    assert fmt.usage_from({"input_tokens": 3, "output_tokens": 1}) == Usage(3, 1)


def test_it_renders_errors_in_the_openai_envelope() -> None:
    assert fmt.error_body(400, "Bad input.", "invalid_request_error", "bad") == {
        "error": {
            "message": "Bad input.",
            "type": "invalid_request_error",
            "param": None,
            "code": "bad",
        }
    }


# --- stream parsing -------------------------------------------------------------------------


def test_it_parses_a_recorded_stream() -> None:
    assert _parse(_recorded_stream()) == RECORDED_EVENTS


@pytest.mark.parametrize("crlf", [False, True])
def test_it_parses_the_same_events_when_fed_one_byte_at_a_time(crlf: bool) -> None:
    data = _recorded_stream()
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    assert _parse(data, step=1) == _parse(data) == RECORDED_EVENTS


def test_it_parses_incomplete_and_failed_streams() -> None:
    incomplete = {
        "id": "resp_1",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [],
        "usage": {"input_tokens": 9, "output_tokens": 16},
    }
    events = _parse(
        _sse("response.created", 0, response={"id": "resp_1", "model": "m"})
        + _sse("response.incomplete", 1, response=incomplete)
    )
    assert events == [
        ir.StreamStart("resp_1", "m"),
        ir.StreamFinish("length", Usage(input_tokens=9, output_tokens=16)),
    ]
    failed = {"id": "resp_1", "status": "failed", "error": {"code": "server_error", "message": "x"}}
    assert _parse(_sse("response.failed", 3, response=failed))[-1] == ir.StreamError(
        "x", "server_error"
    )
    assert _parse(_sse("error", 0, code="rate_limit_exceeded", message="slow", param=None)) == [
        ir.StreamError("slow", "rate_limit_exceeded")
    ]


def test_it_reports_a_stream_that_ends_before_the_response_does() -> None:
    data = _recorded_stream()
    cut = data[: data.index(b"event: response.completed")]
    events = _parse(cut)
    assert events[:-1] == RECORDED_EVENTS[:-1]
    assert isinstance(events[-1], ir.StreamError)


def test_it_takes_whole_arguments_when_a_server_sends_no_deltas() -> None:
    item = {"type": "function_call", "id": "fc", "call_id": "c", "name": "f", "arguments": ""}
    done = {**item, "arguments": '{"a":1}', "status": "completed"}
    events = _parse(
        _sse("response.output_item.added", 0, output_index=0, item=item)
        + _sse("response.function_call_arguments.done", 1, output_index=0, arguments='{"a":1}')
        + _sse("response.output_item.done", 2, output_index=0, item=done)
    )
    assert events[:2] == [ir.ToolCallStart(0, "c", "f"), ir.ToolCallDelta(0, '{"a":1}')]


# --- stream writing -------------------------------------------------------------------------

USAGE = Usage(input_tokens=40, output_tokens=25, cache_read_tokens=32, reasoning_tokens=10)

WRITER_EVENTS: list[ir.StreamEvent] = [
    ir.StreamStart("msg_01", "claude-sonnet"),
    ir.ThinkingDelta("Let me think"),
    ir.ThinkingDelta(" about it.", signature="sig"),
    ir.TextDelta("Grüße, "),
    ir.TextDelta("🌍!"),
    ir.ToolCallStart(0, "call_a", "get_weather"),
    ir.ToolCallDelta(0, '{"city":'),
    ir.ToolCallStart(1, "call_b", "get_time"),
    ir.ToolCallDelta(1, '{"tz":"CET"}'),
    ir.ToolCallDelta(0, '"Paris"}'),
    ir.StreamFinish("tool_calls", USAGE),
]


def _written(events: list[ir.StreamEvent]) -> bytes:
    writer = fmt.StreamWriter("gpt-4.1", created=1700000000)
    return b"".join(writer.write(e) for e in events)


def _wire_events(data: bytes) -> list[dict[str, Any]]:
    out = []
    for block in data.decode().split("\n\n")[:-1]:
        event_line, data_line = block.split("\n")
        payload = json.loads(data_line.removeprefix("data: "))
        assert event_line == f"event: {payload['type']}"
        out.append(payload)
    return out


def test_it_writes_a_well_ordered_event_sequence() -> None:
    events = _wire_events(_written(WRITER_EVENTS))
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    first_text = kinds.index("response.output_text.delta")
    assert kinds[first_text - 2 : first_text] == [
        "response.output_item.added",
        "response.content_part.added",
    ]
    added = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    done = [e["output_index"] for e in events if e["type"] == "response.output_item.done"]
    assert sorted(added) == sorted(done) == [0, 1, 2, 3]
    final = events[-1]["response"]
    assert final["id"] == "resp_msg_01"
    assert final["output"][1]["content"][0]["text"] == "Grüße, 🌍!"
    assert final["output"][2]["arguments"] == '{"city":"Paris"}'
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 32


def test_it_reads_back_what_it_writes() -> None:
    assert _parse(_written(WRITER_EVENTS), step=7) == [
        ir.StreamStart("resp_msg_01", "gpt-4.1"),
        ir.ThinkingDelta("Let me think"),
        ir.ThinkingDelta(" about it."),
        ir.TextDelta("Grüße, "),
        ir.TextDelta("🌍!"),
        ir.ToolCallStart(2, "call_a", "get_weather"),
        ir.ToolCallDelta(2, '{"city":'),
        ir.ToolCallStart(3, "call_b", "get_time"),
        ir.ToolCallDelta(3, '{"tz":"CET"}'),
        ir.ToolCallDelta(2, '"Paris"}'),
        ir.StreamFinish("tool_calls", USAGE),
    ]


def test_it_writes_incomplete_and_error_endings() -> None:
    cut = _written([ir.TextDelta("abc"), ir.StreamFinish("length", Usage(3, 9))])
    assert _parse(cut) == [
        ir.StreamStart(_wire_events(cut)[0]["response"]["id"], "gpt-4.1"),
        ir.TextDelta("abc"),
        ir.StreamFinish("length", Usage(3, 9)),
    ]
    failed = _wire_events(_written([ir.TextDelta("a"), ir.StreamError("Upstream timed out.")]))
    assert [e["type"] for e in failed][-2:] == ["error", "response.failed"]
    assert failed[-2]["message"] == "Upstream timed out."
    lone = _wire_events(fmt.StreamWriter("m").error_event("Upstream unreachable.", "bad_gateway"))
    assert lone == [
        {
            "type": "error",
            "sequence_number": 0,
            "code": "bad_gateway",
            "message": "Upstream unreachable.",
            "param": None,
        }
    ]


# --- the official SDK reads what TokenHub writes --------------------------------------------


@pytest.fixture
def client(upstream: CannedServer) -> Iterator[OpenAI]:
    upstream.accepts = lambda path: path == "/v1/responses"
    with OpenAI(base_url=upstream.url + "/v1", api_key="x", max_retries=0) as sdk:
        yield sdk


def test_it_streams_events_the_sdk_accepts(upstream: CannedServer, client: OpenAI) -> None:
    upstream.serve(_written(WRITER_EVENTS), "text/event-stream")
    events = list(client.responses.create(model="gpt-4.1", input="hi", stream=True))
    assert upstream.requests[0]["stream"] is True
    assert events[0].type == "response.created"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Grüße, 🌍!"
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == "Grüße, 🌍!"
    calls = [o for o in final.response.output if o.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_a", "get_weather", '{"city":"Paris"}'),
        ("call_b", "get_time", '{"tz":"CET"}'),
    ]
    usage = final.response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (40, 25, 65)
    assert usage.input_tokens_details.cached_tokens == 32
    assert usage.output_tokens_details.reasoning_tokens == 10


def test_it_streams_to_the_sdk_stream_helper(upstream: CannedServer, client: OpenAI) -> None:
    upstream.serve(_written(WRITER_EVENTS), "text/event-stream")
    with client.responses.stream(model="gpt-4.1", input="hi") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert final.output_text == "Grüße, 🌍!"
    assert [o.type for o in final.output] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert final.usage is not None and final.usage.total_tokens == 65


def test_it_streams_a_text_only_answer_to_the_sdk_stream_helper(
    upstream: CannedServer, client: OpenAI
) -> None:
    events: list[ir.StreamEvent] = [
        ir.StreamStart("chatcmpl-9", "gpt-4o"),
        *(ir.TextDelta(piece) for piece in ("The ", "answer ", "is 42.")),
        ir.StreamFinish("stop", Usage(input_tokens=12, output_tokens=5)),
    ]
    upstream.serve(_written(events), "text/event-stream")
    with client.responses.stream(model="gpt-4.1", input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["The ", "answer ", "is 42."]
    assert final.status == "completed"
    assert final.output_text == "The answer is 42."


def test_it_streams_an_error_the_sdk_surfaces(upstream: CannedServer, client: OpenAI) -> None:
    upstream.serve(
        _written([ir.TextDelta("par"), ir.StreamError("Upstream timed out.")]), "text/event-stream"
    )
    events = list(client.responses.create(model="gpt-4.1", input="hi", stream=True))
    errors = [e for e in events if e.type == "error"]
    assert [e.message for e in errors] == ["Upstream timed out."]
    assert events[-1].type == "response.failed"


def test_it_answers_non_streamed_calls_the_sdk_accepts(
    upstream: CannedServer, client: OpenAI
) -> None:
    resp = ir.ChatResponse(
        id="msg_01XYZ",
        model="claude-sonnet",
        parts=[
            ir.ThinkingPart("Weather needs a lookup."),
            ir.TextPart("Checking "),
            ir.TextPart("now."),
            ir.ToolCallPart("toolu_1", "get_weather", '{"city":"Paris"}'),
        ],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=100, output_tokens=20, cache_read_tokens=80, reasoning_tokens=7),
        created=1700000000,
    )
    upstream.serve(
        json.dumps(fmt.response_from_ir(resp, model="gpt-4.1")).encode(), "application/json"
    )
    answer = client.responses.create(model="gpt-4.1", input="hi")
    assert answer.id == "resp_msg_01XYZ"
    assert answer.status == "completed"
    assert answer.output_text == "Checking now."
    call = answer.output[-1]
    assert call.type == "function_call"
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        "toolu_1",
        "get_weather",
        {"city": "Paris"},
    )
    assert answer.usage is not None
    assert answer.usage.input_tokens == 100
    assert answer.usage.input_tokens_details.cached_tokens == 80
    assert answer.usage.output_tokens_details.reasoning_tokens == 7
    assert answer.usage.total_tokens == 120


def test_it_sends_requests_the_sdk_would_send_upstream(
    upstream: CannedServer, client: OpenAI
) -> None:
    """What `request_from_ir` builds is accepted by the SDK's own create() as keyword args."""
    upstream.serve(
        json.dumps(fmt.response_from_ir(fmt.response_to_ir(RESPONSE_BODY), model="m")).encode(),
        "application/json",
    )
    req = fmt.request_to_ir({"model": "gpt-4.1", "input": "Hi", "temperature": 0.3})
    body = fmt.request_from_ir(req, upstream_model="gpt-4.1-mini")
    client.responses.create(**body)
    assert upstream.requests == [body]


NAMESPACED_TOOLS = [
    {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
    {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Agents",
        "tools": [
            {
                "type": "function",
                "name": "spawn_agent",
                "description": "Start one",
                "parameters": {"type": "object", "properties": {"message": {"type": "string"}}},
            }
        ],
    },
    {"type": "web_search", "external_web_access": False},
]


def test_it_flattens_namespace_tools_and_drops_an_offered_web_search() -> None:
    body = {"model": "m", "input": "hi", "tools": NAMESPACED_TOOLS}

    req, dropped = RESPONSES.request_ir(body, "m", False, target="anthropic", strict=False)

    assert [t.name for t in req.tools] == ["exec_command", "multi_agent_v1__spawn_agent"]
    assert req.tools[1].description == "Start one"
    assert dropped == ("tools.web_search",)


def test_a_strict_channel_refuses_the_web_search_it_would_drop() -> None:
    body = {"model": "m", "input": "hi", "tools": NAMESPACED_TOOLS}

    with pytest.raises(ir.TranslationError, match=r"'tools\.web_search'"):
        RESPONSES.request_ir(body, "m", False, target="anthropic", strict=True)


def test_it_refuses_built_in_tools_that_do_work_for_the_caller() -> None:
    body = {"model": "m", "input": "hi", "tools": [{"type": "code_interpreter"}]}

    with pytest.raises(ir.TranslationError, match="code_interpreter"):
        RESPONSES.request_ir(body, "m", False, target="anthropic", strict=False)


def test_it_reads_earlier_namespaced_calls_under_their_flat_name() -> None:
    call = {
        "type": "function_call",
        "call_id": "c1",
        "namespace": "multi_agent_v1",
        "name": "spawn_agent",
        "arguments": "{}",
    }
    body = {
        "model": "m",
        "tools": NAMESPACED_TOOLS[:2],
        "input": [call, {"type": "function_call_output", "call_id": "c1", "output": "ok"}],
    }

    req = fmt.request_to_ir(body)

    part = req.messages[0].parts[0]
    assert isinstance(part, ir.ToolCallPart)
    assert part.name == "multi_agent_v1__spawn_agent"


def test_it_names_namespaced_calls_back_in_answers_and_streams() -> None:
    names = fmt.namespaced_names({"tools": NAMESPACED_TOOLS})
    call = ir.ToolCallPart(id="c1", name="multi_agent_v1__spawn_agent", arguments="{}")
    plain = ir.ToolCallPart(id="c2", name="exec_command", arguments="{}")
    resp = ir.ChatResponse(
        id="r", model="m", parts=[call, plain], finish_reason="tool_calls", usage=None
    )

    output = fmt.response_from_ir(resp, model="m", namespaces=names)["output"]

    assert [(o.get("namespace"), o["name"]) for o in output] == [
        ("multi_agent_v1", "spawn_agent"),
        (None, "exec_command"),
    ]
    writer = fmt.StreamWriter("m", namespaces=names)
    events = b"".join(
        writer.write(e)
        for e in (
            ir.StreamStart(id="r", model="m"),
            ir.ToolCallStart(index=0, id="c1", name="multi_agent_v1__spawn_agent"),
            ir.ToolCallDelta(index=0, arguments="{}"),
            ir.StreamFinish(reason="tool_calls"),
        )
    )
    done = [
        json.loads(line[6:])
        for line in events.split(b"\n")
        if line.startswith(b"data: ") and b"output_item.done" in line
    ]
    assert (done[0]["item"]["namespace"], done[0]["item"]["name"]) == (
        "multi_agent_v1",
        "spawn_agent",
    )
