"""Gemini generateContent translation: requests, responses, usage, streams, errors, and the
official google-genai SDK reading what TokenHub writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google import genai
from google.genai import types

from billing.pricing import Usage
from relay.formats import gemini, ir
from relay.protocols import GEMINI
from tests.relay.formats.canned import CannedServer

MODEL = "gemini-2.5-flash"
# A 1x1 PNG.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
    "AAAABJRU5ErkJggg=="
)
SECRET = "the launch code is 0000"


def _request_body() -> dict[str, Any]:
    """Shaped like the REST samples in Google's function calling and vision docs."""
    return {
        "systemInstruction": {"parts": [{"text": "You are a weather bot."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What's the weather in these two cities? And what is this?"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/cat.jpg"}},
                ],
            },
            {
                "role": "model",
                "parts": [
                    {"thought": True, "text": "Two lookups needed."},
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "c2lnbmF0dXJl",
                    },
                    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}},
                    {"functionResponse": {"name": "get_weather", "response": {"output": "cold"}}},
                ],
            },
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Current weather for a city.",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {
                                "city": {"type": "STRING", "description": "City name"},
                                "unit": {"type": "STRING", "enum": ["C", "F"], "nullable": True},
                            },
                            "required": ["city"],
                            "propertyOrdering": ["city", "unit"],
                        },
                    }
                ]
            }
        ],
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        },
        "generationConfig": {
            "maxOutputTokens": 800,
            "temperature": 0.4,
            "topP": 0.9,
            "topK": 40.0,
            "stopSequences": ["END"],
            "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
        },
        "safetySettings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
        ],
    }


def _text_response() -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "Considering the question.", "thought": True},
                        {"text": "The sky is blue because of Rayleigh scattering."},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 120,
            "candidatesTokenCount": 11,
            "cachedContentTokenCount": 100,
            "thoughtsTokenCount": 40,
            "totalTokenCount": 171,
        },
        "modelVersion": MODEL,
        "responseId": "mAitaJ3vCoWd",
    }


def _call_response() -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {
                            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                            "thoughtSignature": "CiQB0e2Kb1",
                        },
                        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 50,
            "candidatesTokenCount": 30,
            "totalTokenCount": 80,
        },
        "modelVersion": MODEL,
        "responseId": "resp-2",
    }


# A streamGenerateContent?alt=sse capture's shape: \r\n separators, usage on every chunk
# (prompt only at first, the totals on the last), a multi-byte character in the text.
STREAM = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "Thinking it over", '
    b'"thought": true}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": '
    b'9,"totalTokenCount": 9},"modelVersion": "gemini-2.5-flash","responseId": "abc"}\r\n\r\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": "Caf\xc3\xa9 "}],"role": "model"},'
    b'"index": 0}],"usageMetadata": {"promptTokenCount": 9,"candidatesTokenCount": 2,'
    b'"thoughtsTokenCount": 12,"totalTokenCount": 23},"modelVersion": "gemini-2.5-flash",'
    b'"responseId": "abc"}\r\n\r\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": "au lait."}],"role": "model"},'
    b'"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 9,'
    b'"candidatesTokenCount": 5,"cachedContentTokenCount": 4,"thoughtsTokenCount": 12,'
    b'"totalTokenCount": 26},"modelVersion": "gemini-2.5-flash","responseId": "abc"}\r\n\r\n'
)

CALL_STREAM = (
    b'data: {"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather",'
    b'"args": {"city": "Paris"}},"thoughtSignature": "CiQB"},{"functionCall": {"name": '
    b'"get_time","args": {}}}],"role": "model"},"index": 0}],"usageMetadata": '
    b'{"promptTokenCount": 40,"totalTokenCount": 40},"modelVersion": "gemini-2.5-flash",'
    b'"responseId": "r2"}\n\n'
    b'data: {"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather",'
    b'"args": {"city": "Oslo"}}}],"role": "model"},"finishReason": "STOP","index": 0}],'
    b'"usageMetadata": {"promptTokenCount": 40,"candidatesTokenCount": 20,'
    b'"totalTokenCount": 60},"modelVersion": "gemini-2.5-flash","responseId": "r2"}\n\n'
)


def _parse(data: bytes, *, step: int | None = None) -> list[ir.StreamEvent]:
    parser = gemini.StreamParser()
    events: list[ir.StreamEvent] = []
    if step is None:
        events += parser.feed(data)
    else:
        for i in range(0, len(data), step):
            events += parser.feed(data[i : i + step])
    return events + parser.close()


# --- requests: Gemini -> IR ------------------------------------------------------------


def test_it_reads_a_full_request() -> None:
    req = gemini.request_to_ir(_request_body(), model=MODEL, stream=True)

    assert req.model == MODEL
    assert req.stream is True
    assert req.system == [ir.TextPart("You are a weather bot.")]
    user, model, _ = req.messages
    assert user.role == "user"
    assert user.parts[1] == ir.ImagePart(data=PNG, media_type="image/png")
    assert user.parts[2] == ir.ImagePart(url="gs://bucket/cat.jpg", media_type="image/jpeg")
    assert model.role == "assistant"
    assert model.parts == [
        ir.ThinkingPart("Two lookups needed."),
        ir.ThinkingPart("", signature="c2lnbmF0dXJl"),
        ir.ToolCallPart(id="call_0", name="get_weather", arguments='{"city": "Paris"}'),
        ir.ToolCallPart(id="call_1", name="get_weather", arguments='{"city": "Oslo"}'),
    ]
    assert req.max_output_tokens == 800
    assert req.temperature == 0.4
    assert req.top_p == 0.9
    assert req.top_k == 40
    assert req.stop == ["END"]
    assert req.reasoning_budget == 1024
    assert req.tool_choice == ir.ToolChoice(mode="tool", name="get_weather")


def test_it_matches_function_responses_to_calls_by_name_in_order() -> None:
    req = gemini.request_to_ir(_request_body(), model=MODEL, stream=False)

    first, second = req.messages[2].parts
    assert first == ir.ToolResultPart(
        call_id="call_0", content=[ir.TextPart('{"temp_c": 18}')], name="get_weather"
    )
    # Google's {"output": ...} convention unwraps to the plain result text.
    assert second == ir.ToolResultPart(
        call_id="call_1", content=[ir.TextPart("cold")], name="get_weather"
    )


def test_it_gives_the_same_call_ids_every_time_the_history_is_replayed() -> None:
    first = gemini.request_to_ir(_request_body(), model=MODEL, stream=False)
    again = gemini.request_to_ir(_request_body(), model=MODEL, stream=False)

    assert first.messages == again.messages


def test_it_prefers_call_ids_the_client_sent() -> None:
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"functionCall": {"id": "x1", "name": "f", "args": {}}}]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "f", "response": {"error": "boom"}}}],
            },
        ]
    }

    req = gemini.request_to_ir(body, model=MODEL, stream=False)

    assert req.messages[1].parts == [ir.ToolCallPart(id="x1", name="f", arguments="{}")]
    assert req.messages[2].parts == [
        ir.ToolResultPart(call_id="x1", content=[ir.TextPart("boom")], is_error=True, name="f")
    ]


def test_it_keeps_signatures_the_client_sends_back_on_thoughts() -> None:
    # What response_from_ir wrote for an Anthropic upstream, returned by the client.
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "x"}]},
            {
                "role": "model",
                "parts": [{"text": "Hmm.", "thought": True, "thoughtSignature": "RXJBbg=="}],
            },
        ]
    }

    req = gemini.request_to_ir(body, model=MODEL, stream=False)

    assert req.messages[1].parts == [ir.ThinkingPart("Hmm.", signature="RXJBbg==")]


def test_it_turns_openapi_parameter_schemas_into_json_schema() -> None:
    req = gemini.request_to_ir(_request_body(), model=MODEL, stream=False)

    assert req.tools == [
        ir.Tool(
            name="get_weather",
            description="Current weather for a city.",
            parameters={
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "unit": {"type": ["string", "null"], "enum": ["C", "F"]},
                },
                "required": ["city"],
            },
        )
    ]


def test_it_reads_json_output_settings() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}

    def fmt(config: dict[str, Any]) -> ir.ResponseFormat | None:
        body = {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": config}
        return gemini.request_to_ir(body, model=MODEL, stream=False).response_format

    assert fmt({"responseMimeType": "application/json"}) == ir.ResponseFormat(kind="json_object")
    assert fmt(
        {"responseMimeType": "application/json", "responseJsonSchema": schema}
    ) == ir.ResponseFormat(kind="json_schema", schema=schema)
    assert fmt(
        {"responseMimeType": "application/json", "responseSchema": {"type": "OBJECT"}}
    ) == ir.ResponseFormat(kind="json_schema", schema={"type": "object"})
    assert fmt({"temperature": 1}) is None


def test_it_reads_tool_modes_and_thinking_levels() -> None:
    def read(tool_config: dict[str, Any], thinking: dict[str, Any]) -> ir.ChatRequest:
        body = {
            "contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "toolConfig": {"functionCallingConfig": tool_config},
            "generationConfig": {"thinkingConfig": thinking},
        }
        return gemini.request_to_ir(body, model=MODEL, stream=False)

    auto = read({"mode": "AUTO"}, {"thinkingBudget": -1})
    assert auto.tool_choice == ir.ToolChoice(mode="auto")
    assert auto.reasoning_budget is None
    off = read({"mode": "NONE"}, {"thinkingBudget": 0})
    assert off.tool_choice == ir.ToolChoice(mode="none")
    assert off.reasoning_budget == 0
    anyone = read({"mode": "ANY"}, {"thinkingLevel": "HIGH"})
    assert anyone.tool_choice == ir.ToolChoice(mode="required")
    assert anyone.reasoning_effort == "high"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"contents": {"parts": []}}, "contents"),
        ({"contents": [{"role": "system", "parts": [{"text": SECRET}]}]}, "contents[0].role"),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "audio/wav", "data": "AA"}}]}]},
            "contents[0].parts[0].inlineData",
        ),
        ({"contents": [{"parts": [{"executableCode": {"code": SECRET}}]}]}, "executableCode"),
        ({"contents": [{"parts": [{"text": 5}]}]}, "contents[0].parts[0].text"),
        (
            {"contents": [{"parts": [{"text": SECRET}]}], "tools": [{"googleSearch": {}}]},
            "tools[0].googleSearch",
        ),
        ({"contents": [], "cachedContent": "cachedContents/abc"}, "cachedContent"),
        (
            {
                "contents": [],
                "toolConfig": {
                    "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["a", "b"]}
                },
            },
            "allowedFunctionNames",
        ),
        ({"contents": [], "generationConfig": {"candidateCount": 2}}, "candidateCount"),
        (
            {"contents": [], "generationConfig": {"responseModalities": ["IMAGE"]}},
            "responseModalities",
        ),
        (
            {"contents": [], "generationConfig": {"responseMimeType": "text/x.enum"}},
            "responseMimeType",
        ),
        (
            {
                "contents": [
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": [1]}}]}
                ]
            },
            "functionCall.args",
        ),
    ],
)
def test_it_rejects_what_it_cannot_translate_naming_the_field(
    body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ir.TranslationError) as caught:
        GEMINI.request_ir(body, MODEL, False, target="openai", strict=False)

    assert field in str(caught.value)
    assert SECRET not in str(caught.value)


# --- requests: IR -> Gemini ------------------------------------------------------------


def _ir_request() -> ir.ChatRequest:
    return ir.ChatRequest(
        model="any",
        system=[ir.TextPart("Be terse.", cache_control={"type": "ephemeral"})],
        messages=[
            ir.Message(
                "user",
                [
                    ir.TextPart("Weather and this picture?"),
                    ir.ImagePart(data=PNG, media_type="image/png"),
                    ir.ImagePart(url="https://example.com/cat.png?size=1", detail="high"),
                    ir.ImagePart(url=f"data:image/png;base64,{PNG}"),
                ],
            ),
            ir.Message(
                "assistant",
                [
                    ir.TextPart("Checking."),
                    ir.ToolCallPart(id="toolu_01", name="get_weather", arguments='{"city":"Rome"}'),
                    ir.ToolCallPart(id="toolu_02", name="get_time", arguments=""),
                ],
            ),
            ir.Message(
                "user",
                [
                    ir.ToolResultPart(call_id="toolu_01", content=[ir.TextPart('{"temp": 21}')]),
                    ir.ToolResultPart(
                        call_id="toolu_02", content=[ir.TextPart("clock broke")], is_error=True
                    ),
                ],
            ),
            ir.Message("user", [ir.TextPart("Thanks")]),
        ],
        tools=[ir.Tool(name="get_weather", parameters={"type": "object"}), ir.Tool("get_time")],
        tool_choice=ir.ToolChoice(mode="required", parallel=False),
        response_format=ir.ResponseFormat(kind="json_schema", schema={"type": "object"}),
        max_output_tokens=256,
        temperature=0.2,
        top_p=0.5,
        top_k=10,
        stop=["\n\n"],
        reasoning_effort="medium",
        user="u-1",
    )


def test_it_writes_a_full_request() -> None:
    body = gemini.request_from_ir(_ir_request())

    assert "model" not in body
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    user, model, results = body["contents"]
    assert user == {
        "role": "user",
        "parts": [
            {"text": "Weather and this picture?"},
            {"inlineData": {"mimeType": "image/png", "data": PNG}},
            {
                "fileData": {
                    "mimeType": "image/png",
                    "fileUri": "https://example.com/cat.png?size=1",
                }
            },
            {"inlineData": {"mimeType": "image/png", "data": PNG}},
        ],
    }
    assert model == {
        "role": "model",
        "parts": [
            {"text": "Checking."},
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Rome"}},
                "thoughtSignature": "skip_thought_signature_validator",
            },
            {"functionCall": {"name": "get_time", "args": {}}},
        ],
    }
    # Results go back by function name; consecutive user turns are merged.
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "get_time", "response": {"error": "clock broke"}}},
            {"text": "Thanks"},
        ],
    }
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "get_weather", "parametersJsonSchema": {"type": "object"}},
                {"name": "get_time"},
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert body["generationConfig"] == {
        "maxOutputTokens": 256,
        "temperature": 0.2,
        "topP": 0.5,
        "topK": 10,
        "stopSequences": ["\n\n"],
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
        "thinkingConfig": {"thinkingBudget": 8192, "includeThoughts": True},
    }


def test_it_writes_json_object_mode_and_a_forced_tool() -> None:
    req = ir.ChatRequest(
        model="m",
        messages=[ir.Message("user", [ir.TextPart("x")])],
        tool_choice=ir.ToolChoice(mode="tool", name="f"),
        response_format=ir.ResponseFormat(kind="json_object"),
        reasoning_budget=0,
    )

    body = gemini.request_from_ir(req)

    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}
    }
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "thinkingConfig": {"thinkingBudget": 0},
    }


def test_it_puts_a_gemini_signature_back_on_its_function_call() -> None:
    req = gemini.request_to_ir(_request_body(), model=MODEL, stream=False)
    upstream = gemini.response_to_ir(_call_response())
    req.messages.append(ir.Message("assistant", upstream.parts))

    body = gemini.request_from_ir(req)

    last = body["contents"][-1]["parts"]
    assert last[0]["thoughtSignature"] == "CiQB0e2Kb1"
    assert "thoughtSignature" not in last[1]


def test_it_never_forwards_signatures_on_thoughts_with_text() -> None:
    # An Anthropic-style history: a signed thinking block before the tool call.
    req = ir.ChatRequest(
        model="m",
        messages=[
            ir.Message("user", [ir.TextPart("x")]),
            ir.Message(
                "assistant",
                [
                    ir.ThinkingPart("I should call f.", signature="RXJBbnRocm9waWM="),
                    ir.ToolCallPart(id="toolu_1", name="f", arguments="{}"),
                ],
            ),
        ],
    )

    body = gemini.request_from_ir(req)

    assert body["contents"][1]["parts"] == [
        {
            "functionCall": {"name": "f", "args": {}},
            "thoughtSignature": "skip_thought_signature_validator",
        }
    ]


def test_it_uses_the_result_name_when_the_call_is_not_in_the_history() -> None:
    named = ir.ToolResultPart(call_id="zz", content=[ir.TextPart("ok")], name="lookup")
    unnamed = ir.ToolResultPart(call_id="zz", content=[ir.TextPart("ok")])

    body = gemini.request_from_ir(ir.ChatRequest(model="m", messages=[ir.Message("user", [named])]))

    assert body["contents"][0]["parts"] == [
        {"functionResponse": {"name": "lookup", "response": {"output": "ok"}}}
    ]
    with pytest.raises(ir.TranslationError):
        gemini.request_from_ir(ir.ChatRequest(model="m", messages=[ir.Message("user", [unnamed])]))


@pytest.mark.parametrize(
    "part",
    [
        ir.ToolCallPart(id="a", name="f", arguments="[1, 2]"),
        ir.ToolCallPart(id="a", name="f", arguments="{not json"),
        ir.ImagePart(data=PNG),
        ir.ToolResultPart(call_id="a", name="f", content=[ir.ImagePart(data=PNG)]),
    ],
)
def test_it_refuses_parts_gemini_cannot_take(part: ir.Part) -> None:
    req = ir.ChatRequest(model="m", messages=[ir.Message("assistant", [part])])

    with pytest.raises(ir.TranslationError):
        gemini.request_from_ir(req)


def test_it_round_trips_a_request_through_the_ir() -> None:
    body = _request_body()
    del body["safetySettings"]  # not carried: other providers filter on their own

    again = gemini.request_from_ir(gemini.request_to_ir(body, model=MODEL, stream=False))

    assert again["contents"][0] == body["contents"][0]
    # Earlier thoughts are not sent on; function calls keep their signatures.
    assert again["contents"][1]["parts"] == body["contents"][1]["parts"][1:]
    assert again["contents"][2] == body["contents"][2]
    assert again["systemInstruction"] == body["systemInstruction"]
    assert again["toolConfig"] == body["toolConfig"]
    assert again["generationConfig"] == {
        "maxOutputTokens": 800,
        "temperature": 0.4,
        "topP": 0.9,
        "topK": 40,
        "stopSequences": ["END"],
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
    }


# --- responses -------------------------------------------------------------------------


def test_it_reads_a_text_response_with_thoughts_and_cached_tokens() -> None:
    resp = gemini.response_to_ir(_text_response())

    assert resp.id == "mAitaJ3vCoWd"
    assert resp.model == MODEL
    assert resp.parts == [
        ir.ThinkingPart("Considering the question."),
        ir.TextPart("The sky is blue because of Rayleigh scattering."),
    ]
    assert resp.finish_reason == "stop"
    assert resp.usage == Usage(
        input_tokens=120, output_tokens=51, cache_read_tokens=100, reasoning_tokens=40
    )


def test_it_reads_function_calls_as_tool_calls() -> None:
    resp = gemini.response_to_ir(_call_response())

    assert resp.finish_reason == "tool_calls"
    assert resp.parts == [
        ir.ThinkingPart("", signature="CiQB0e2Kb1"),
        ir.ToolCallPart(id="call_0", name="get_weather", arguments='{"city": "Paris"}'),
        ir.ToolCallPart(id="call_1", name="get_weather", arguments='{"city": "Oslo"}'),
    ]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "error"),
        ("OTHER", "error"),
    ],
)
def test_it_maps_finish_reasons(reason: str, expected: str) -> None:
    body = _text_response()
    body["candidates"][0]["finishReason"] = reason

    assert gemini.response_to_ir(body).finish_reason == expected


def test_it_reads_a_blocked_prompt_as_content_filter() -> None:
    body = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
        "modelVersion": MODEL,
    }

    resp = gemini.response_to_ir(body)

    assert resp.parts == []
    assert resp.finish_reason == "content_filter"
    assert resp.usage == Usage(input_tokens=7)


def test_it_writes_a_response_with_gemini_usage_fields() -> None:
    resp = ir.ChatResponse(
        id="chatcmpl-1",
        model="gpt-x",
        parts=[
            ir.ThinkingPart("hmm"),
            ir.TextPart("Hello"),
            ir.ToolCallPart(id="call_9", name="f", arguments='{"a": 1}'),
        ],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=100, output_tokens=30, cache_read_tokens=60, reasoning_tokens=12),
    )

    body = gemini.response_from_ir(resp, model=MODEL)

    assert body == {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "hmm", "thought": True},
                        {"text": "Hello"},
                        {"functionCall": {"id": "call_9", "name": "f", "args": {"a": 1}}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "modelVersion": MODEL,
        "usageMetadata": {
            "promptTokenCount": 100,
            "candidatesTokenCount": 18,
            "cachedContentTokenCount": 60,
            "thoughtsTokenCount": 12,
            "totalTokenCount": 130,
        },
        "responseId": "chatcmpl-1",
    }


@pytest.mark.parametrize("sample", [_text_response, _call_response])
def test_it_round_trips_a_response(sample: Any) -> None:
    resp = gemini.response_to_ir(sample())

    again = gemini.response_to_ir(gemini.response_from_ir(resp, model=MODEL))

    assert again == resp


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("stop", "STOP"), ("length", "MAX_TOKENS"), ("content_filter", "SAFETY"), ("error", "OTHER")],
)
def test_it_writes_finish_reasons(reason: ir.FinishReason, expected: str) -> None:
    resp = ir.ChatResponse(id="", model="m", parts=[], finish_reason=reason, usage=None)

    body = gemini.response_from_ir(resp, model=MODEL)

    assert body["candidates"][0]["finishReason"] == expected
    assert "usageMetadata" not in body


# --- usage -----------------------------------------------------------------------------


def test_it_reads_usage_metadata() -> None:
    assert gemini.usage_from(None) is None
    assert gemini.usage_from("nope") is None
    assert gemini.usage_from(
        {
            "promptTokenCount": 1000,
            "cachedContentTokenCount": 800,
            "candidatesTokenCount": 50,
            "thoughtsTokenCount": 200,
            "toolUsePromptTokenCount": 30,
            "totalTokenCount": 1280,
        }
    ) == Usage(input_tokens=1030, output_tokens=250, cache_read_tokens=800, reasoning_tokens=200)


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (402, "FAILED_PRECONDITION"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
        (418, "INVALID_ARGUMENT"),
        (599, "INTERNAL"),
    ],
)
def test_it_renders_errors_in_googles_shape(status: int, name: str) -> None:
    assert gemini.error_body(status, "Nope.") == {
        "error": {"code": status, "message": "Nope.", "status": name}
    }


# --- streams ---------------------------------------------------------------------------


def test_it_parses_a_stream_with_the_last_usage_winning() -> None:
    events = _parse(STREAM)

    assert events == [
        ir.StreamStart(id="abc", model=MODEL),
        ir.ThinkingDelta("Thinking it over"),
        ir.TextDelta("Café "),
        ir.TextDelta("au lait."),
        ir.StreamFinish(
            reason="stop",
            usage=Usage(input_tokens=9, output_tokens=17, cache_read_tokens=4, reasoning_tokens=12),
        ),
    ]


@pytest.mark.parametrize("data", [STREAM, CALL_STREAM, STREAM.replace(b"\r\n", b"\n")])
def test_it_parses_a_stream_fed_one_byte_at_a_time_like_a_whole_one(data: bytes) -> None:
    assert _parse(data, step=1) == _parse(data)
    assert _parse(data, step=7) == _parse(data)


def test_it_parses_streamed_function_calls() -> None:
    events = _parse(CALL_STREAM)

    assert events == [
        ir.StreamStart(id="r2", model=MODEL),
        ir.ThinkingDelta("", signature="CiQB"),
        ir.ToolCallStart(index=0, id="call_0", name="get_weather"),
        ir.ToolCallDelta(index=0, arguments='{"city": "Paris"}'),
        ir.ToolCallStart(index=1, id="call_1", name="get_time"),
        ir.ToolCallDelta(index=1, arguments="{}"),
        ir.ToolCallStart(index=2, id="call_2", name="get_weather"),
        ir.ToolCallDelta(index=2, arguments='{"city": "Oslo"}'),
        ir.StreamFinish(reason="tool_calls", usage=Usage(input_tokens=40, output_tokens=20)),
    ]


def test_it_keeps_usage_that_arrives_after_the_finish_reason() -> None:
    data = (
        b'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},'
        b'"finishReason":"MAX_TOKENS"}],"usageMetadata":{"promptTokenCount":3}}\r\n\r\n'
        b'data: {"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":8}}\r\n\r\n'
    )

    events = _parse(data)

    assert events[-1] == ir.StreamFinish(
        reason="length", usage=Usage(input_tokens=3, output_tokens=8)
    )
    assert sum(isinstance(e, ir.StreamFinish) for e in events) == 1


def test_it_finishes_a_stream_that_ended_without_a_trailing_separator() -> None:
    data = b'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}]},"finishReason":"STOP"}]}'

    events = _parse(data)

    assert events == [
        ir.StreamStart(id="", model=""),
        ir.TextDelta("Hi"),
        ir.StreamFinish(reason="stop", usage=None),
    ]


def test_it_turns_an_error_chunk_into_a_stream_error() -> None:
    data = (
        b'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}\r\n\r\n'
        b'data: {"error":{"code":503,"message":"The model is overloaded.",'
        b'"status":"UNAVAILABLE"}}\r\n\r\n'
    )

    events = _parse(data)

    assert events[-1] == ir.StreamError(message="The model is overloaded.", type="UNAVAILABLE")
    assert not any(isinstance(e, ir.StreamFinish) for e in events)


def _written(events: list[ir.StreamEvent], model: str = MODEL) -> bytes:
    writer = gemini.StreamWriter(model)
    return b"".join(writer.write(e) for e in events)


WRITER_EVENTS: list[ir.StreamEvent] = [
    ir.StreamStart(id="chatcmpl-7", model="upstream-model"),
    ir.ThinkingDelta("Let me see."),
    ir.TextDelta("Café "),
    ir.TextDelta("au lait"),
    ir.ToolCallStart(index=0, id="call_a", name="get_weather"),
    ir.ToolCallDelta(index=0, arguments='{"ci'),
    ir.ToolCallDelta(index=0, arguments='ty": "Paris"}'),
    ir.ToolCallStart(index=1, id="call_b", name="get_time"),
    ir.ToolCallDelta(index=1, arguments=""),
    ir.StreamFinish(
        reason="tool_calls",
        usage=Usage(input_tokens=30, output_tokens=20, cache_read_tokens=10, reasoning_tokens=5),
    ),
]


def test_it_writes_a_stream_its_own_parser_reads_back() -> None:
    data = _written(WRITER_EVENTS)

    assert data.count(b"\r\n\r\n") == 5
    assert _parse(data, step=1) == [
        ir.StreamStart(id="chatcmpl-7", model=MODEL),
        ir.ThinkingDelta("Let me see."),
        ir.TextDelta("Café "),
        ir.TextDelta("au lait"),
        ir.ToolCallStart(index=0, id="call_a", name="get_weather"),
        ir.ToolCallDelta(index=0, arguments='{"city": "Paris"}'),
        ir.ToolCallStart(index=1, id="call_b", name="get_time"),
        ir.ToolCallDelta(index=1, arguments="{}"),
        ir.StreamFinish(
            reason="tool_calls",
            usage=Usage(
                input_tokens=30, output_tokens=20, cache_read_tokens=10, reasoning_tokens=5
            ),
        ),
    ]


def test_it_writes_stream_errors_in_googles_shape() -> None:
    writer = gemini.StreamWriter(MODEL)

    data = writer.error_event("Insufficient balance.", 402)

    assert data.startswith(b"data: ") and data.endswith(b"\r\n\r\n")
    assert json.loads(data[6:]) == {
        "error": {"code": 402, "message": "Insufficient balance.", "status": "FAILED_PRECONDITION"}
    }
    assert _parse(data) == [
        ir.StreamError(message="Insufficient balance.", type="FAILED_PRECONDITION")
    ]


# --- the official SDK ------------------------------------------------------------------


def _generate_content(path: str) -> bool:
    path = path.split("?")[0]
    return path.startswith(("/v1beta/models/", "/v1/models/")) and path.endswith(
        (":generateContent", ":streamGenerateContent")
    )


def _client(upstream: CannedServer, under: str = "") -> genai.Client:
    upstream.accepts = _generate_content
    url = upstream.url + under
    return genai.Client(api_key="x", http_options=types.HttpOptions(base_url=url))


def test_it_streams_what_the_sdk_reads(upstream: CannedServer) -> None:
    upstream.content_type = "text/event-stream"
    upstream.body = _written(WRITER_EVENTS)

    client = _client(upstream)  # kept alive: the SDK closes its HTTP client when collected
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Hi"))

    assert ":streamGenerateContent?alt=sse" in upstream.paths[0]
    assert "".join(c.text or "" for c in chunks if c.candidates and c.text) == "Café au lait"
    calls = [fc for c in chunks for fc in (c.function_calls or [])]
    assert [(fc.name, fc.args, fc.id) for fc in calls] == [
        ("get_weather", {"city": "Paris"}, "call_a"),
        ("get_time", {}, "call_b"),
    ]
    last = chunks[-1]
    assert last.candidates is not None
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert last.usage_metadata.prompt_token_count == 30
    assert last.usage_metadata.candidates_token_count == 15
    assert last.usage_metadata.thoughts_token_count == 5
    assert last.usage_metadata.cached_content_token_count == 10
    assert last.usage_metadata.total_token_count == 50


def test_it_answers_what_the_sdk_reads(upstream: CannedServer) -> None:
    resp = ir.ChatResponse(
        id="msg_1",
        model="claude-x",
        parts=[
            ir.TextPart("Let me check."),
            ir.ToolCallPart(id="toolu_1", name="get_weather", arguments='{"city": "Oslo"}'),
        ],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=12, output_tokens=9),
    )
    upstream.body = json.dumps(gemini.response_from_ir(resp, model=MODEL)).encode()

    client = _client(upstream)
    result = client.models.generate_content(model=MODEL, contents="Weather in Oslo?")

    assert ":generateContent" in upstream.paths[0]
    assert result.candidates is not None
    assert result.candidates[0].content is not None
    assert result.candidates[0].content.parts is not None
    assert result.candidates[0].content.parts[0].text == "Let me check."
    assert result.function_calls is not None
    assert [(fc.name, fc.args, fc.id) for fc in result.function_calls] == [
        ("get_weather", {"city": "Oslo"}, "toolu_1")
    ]
    assert result.usage_metadata is not None
    assert result.usage_metadata.prompt_token_count == 12
    assert result.usage_metadata.candidates_token_count == 9
    assert result.usage_metadata.total_token_count == 21
    assert result.model_version == MODEL
    assert result.response_id == "msg_1"


def test_it_answers_errors_the_sdk_raises(upstream: CannedServer) -> None:
    upstream.body = json.dumps(gemini.error_body(404, "No such model.")).encode()

    # The canned server answers 404 outside the generateContent paths.
    client = _client(upstream, "/nowhere")
    with pytest.raises(genai.errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents="x")

    assert caught.value.code == 404
    assert caught.value.status == "NOT_FOUND"
    assert caught.value.message == "No such model."
