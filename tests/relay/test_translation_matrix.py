"""Every inbound protocol x every channel type, stream and not, with and without tools.

Each case goes through the official SDK of the caller's protocol, against the fake
upstream speaking the channel's real wire format, and checks what the caller sees and
what was billed (from the upstream's own usage report, whatever protocol carried it).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from billing.services import price_set
from logs.models import RequestLog
from relay.services import channel_create
from tests.fakes.upstream import DEFAULT_REPLY, ToolCall, Usage
from tests.relay.conftest import Customer, wait_for

MODEL = "matrix-test"
USAGE = Usage(prompt_tokens=50, completion_tokens=20, cached_tokens=10)
# (50 - 10 uncached) x 1.0 + 10 cached x 0.1 + 20 out x 2.0, USD per 1M tokens, in micro-USD
EXPECTED_COST = 81
WEATHER = ToolCall(name="get_weather", arguments={"city": "Paris"})
PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

INBOUND = ["openai", "anthropic", "gemini", "responses"]
CHANNELS = ["openai", "azure-openai", "openai-responses", "anthropic", "gemini"]


def _base(kind: str, fake_url: str) -> str:
    return fake_url + "/v1" if kind in ("openai", "openai-responses") else fake_url


def _ask_openai(c: Customer, stream: bool, tools: bool) -> tuple[str, dict[str, Any] | None]:
    client = c.openai()
    kwargs: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    if tools:
        kwargs["tools"] = [
            {"type": "function", "function": {"name": "get_weather", "parameters": PARAMS}}
        ]
    if not stream:
        message = client.chat.completions.create(**kwargs).choices[0].message
        if not message.tool_calls:
            return message.content or "", None
        fn = message.tool_calls[0].function
        return message.content or "", {"name": fn.name, "args": json.loads(fn.arguments)}
    text, name, args = "", None, ""
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for tc in delta.tool_calls or []:
            name = tc.function.name or name
            args += tc.function.arguments or ""
    return text, ({"name": name, "args": json.loads(args)} if name else None)


def _ask_anthropic(c: Customer, stream: bool, tools: bool) -> tuple[str, dict[str, Any] | None]:
    import anthropic

    client = anthropic.Anthropic(base_url=c.relay.url, api_key=c.secret, max_retries=0)
    c.clients.append(client)
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    if tools:
        kwargs["tools"] = [{"name": "get_weather", "input_schema": PARAMS}]
    if stream:
        with client.messages.stream(**kwargs) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(**kwargs)
    text = "".join(b.text for b in message.content if b.type == "text")
    uses = [b for b in message.content if b.type == "tool_use"]
    return text, ({"name": uses[0].name, "args": uses[0].input} if uses else None)


def _ask_gemini(c: Customer, stream: bool, tools: bool) -> tuple[str, dict[str, Any] | None]:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=c.secret, http_options=types.HttpOptions(base_url=c.relay.url))
    c.clients.append(client)
    config = None
    if tools:
        declaration = types.FunctionDeclaration(name="get_weather", parameters_json_schema=PARAMS)
        config = types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[declaration])],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
    if stream:
        chunks = list(
            client.models.generate_content_stream(model=MODEL, contents="hi", config=config)
        )
    else:
        chunks = [client.models.generate_content(model=MODEL, contents="hi", config=config)]
    text = "".join(
        p.text or ""
        for ch in chunks
        for cand in ch.candidates or []
        for p in (cand.content.parts if cand.content and cand.content.parts else [])
        if not p.function_call
    )
    calls = [fc for ch in chunks for fc in (ch.function_calls or [])]
    return text, ({"name": calls[0].name, "args": dict(calls[0].args or {})} if calls else None)


def _ask_responses(c: Customer, stream: bool, tools: bool) -> tuple[str, dict[str, Any] | None]:
    client = c.openai()
    kwargs: dict[str, Any] = {"model": MODEL, "input": "hi"}
    if tools:
        kwargs["tools"] = [{"type": "function", "name": "get_weather", "parameters": PARAMS}]
    if stream:
        events = list(client.responses.create(stream=True, **kwargs))
        completed = [e for e in events if e.type == "response.completed"]
        response = completed[0].response
    else:
        response = client.responses.create(**kwargs)
    calls = [item for item in response.output if item.type == "function_call"]
    call = {"name": calls[0].name, "args": json.loads(calls[0].arguments)} if calls else None
    return response.output_text, call


ASK = {
    "openai": _ask_openai,
    "anthropic": _ask_anthropic,
    "gemini": _ask_gemini,
    "responses": _ask_responses,
}


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tools"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("channel_type", CHANNELS)
@pytest.mark.parametrize("inbound", INBOUND)
def test_it_translates_and_bills_every_pair(
    customer: Customer, fake, inbound: str, channel_type: str, stream: bool, tools: bool
) -> None:
    channel_create(
        name=channel_type,
        type=channel_type,
        base_url=_base(channel_type, fake.url),
        api_keys=["sk-upstream"],
        models=[MODEL],
        options={"api_version": "2024-10-21"} if channel_type == "azure-openai" else None,
    )
    price_set(
        model=MODEL, input_per_1m=1_000_000, output_per_1m=2_000_000, cache_read_per_1m=100_000
    )
    fake.configure(usage=USAGE, tool_call=WEATHER if tools else None)

    text, call = ASK[inbound](customer, stream, tools)

    if tools:
        assert call == {"name": "get_weather", "args": {"city": "Paris"}}
    else:
        assert text == DEFAULT_REPLY and call is None
    assert len(fake.requests) == 1
    log = wait_for(lambda: RequestLog.objects.first())
    assert log.status_code == 200 and log.stream == stream
    assert (log.prompt_tokens, log.cache_read_tokens, log.completion_tokens) == (50, 10, 20)
    assert not log.usage_estimated
    assert log.cost == EXPECTED_COST
    assert customer.balance() == 10_000_000 - EXPECTED_COST
