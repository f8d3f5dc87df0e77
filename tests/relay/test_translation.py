"""Any SDK, any upstream: calls are translated between protocols and billed exactly."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from billing.services import price_set
from logs.models import RequestLog
from relay.models import Channel
from relay.services import channel_create
from tests.fakes.upstream import DEFAULT_REPLY, ToolCall, Usage
from tests.relay.conftest import Customer, wait_for

MODEL = "omni-test"  # one customer-facing name, served by whichever channel a test adds


@pytest.fixture
def channel(fake) -> Callable[[str], Channel]:
    bases = {
        "openai": fake.url + "/v1",
        "openai-responses": fake.url + "/v1",
        "anthropic": fake.url,
        "gemini": fake.url,
    }

    def make(kind: str, **kwargs: Any) -> Channel:
        return channel_create(
            name=kind,
            type=kind,
            base_url=bases[kind],
            api_keys=[f"sk-{kind}"],
            models=[MODEL],
            **kwargs,
        )

    return make


@pytest.fixture
def funded(customer: Customer) -> Customer:
    price_set(
        model=MODEL,
        input_per_1m=1_000_000,
        output_per_1m=2_000_000,
        cache_read_per_1m=100_000,
        cache_write_per_1m=1_250_000,
    )
    return customer


def _anthropic(customer: Customer) -> Any:
    import anthropic

    client = anthropic.Anthropic(
        base_url=customer.relay.url, api_key=customer.secret, max_retries=0
    )
    customer.clients.append(client)  # closed at teardown
    return client


def _gemini(customer: Customer) -> Any:
    from google import genai
    from google.genai import types

    client = genai.Client(
        api_key=customer.secret,
        http_options=types.HttpOptions(base_url=customer.relay.url),
    )
    customer.clients.append(client)  # kept alive (it closes itself when collected)
    return client


def _log() -> RequestLog:
    log: RequestLog = wait_for(lambda: RequestLog.objects.filter(status_code=200).first())
    return log


def test_it_answers_the_anthropic_sdk_from_an_openai_channel(funded: Customer, channel, fake):
    channel("openai")
    fake.configure(usage=Usage(prompt_tokens=30, completion_tokens=12, cached_tokens=10))
    message = _anthropic(funded).messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hello"}]
    )
    assert message.content[0].text == DEFAULT_REPLY
    assert message.stop_reason == "end_turn"
    # Anthropic counts input without the cached part.
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (20, 10)
    assert fake.requests[-1].path == "/v1/chat/completions"
    log = _log()
    assert (log.prompt_tokens, log.cache_read_tokens, log.completion_tokens) == (30, 10, 12)
    assert log.cost == round((20 * 1_000_000 + 10 * 100_000 + 12 * 2_000_000) / 10**6)


def test_it_streams_to_the_anthropic_sdk_from_a_gemini_channel(funded: Customer, channel, fake):
    channel("gemini")
    fake.configure(usage=Usage(prompt_tokens=40, completion_tokens=25, reasoning_tokens=5))
    with _anthropic(funded).messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hello"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == DEFAULT_REPLY
    assert final.usage.output_tokens == 25
    assert "streamGenerateContent" in fake.requests[-1].path
    log = _log()
    assert (log.prompt_tokens, log.completion_tokens, log.reasoning_tokens) == (40, 25, 5)
    assert log.stream and not log.usage_estimated


def test_it_passes_anthropic_through_and_bills_cache_writes(funded: Customer, channel, fake):
    channel("anthropic")
    fake.configure(
        usage=Usage(
            prompt_tokens=1000, completion_tokens=50, cached_tokens=600, cache_write_tokens=300
        )
    )
    with _anthropic(funded).messages.stream(
        model=MODEL,
        max_tokens=100,
        system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        # Long enough for the 1,000 prompt tokens the fake reports: a charge never exceeds
        # its hold, which is sized from the body.
        messages=[{"role": "user", "content": "hello " * 600}],
    ) as stream:
        final = stream.get_final_message()
    sent = fake.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.json["system"][0]["cache_control"] == {"type": "ephemeral"}  # kept as is
    assert final.usage.cache_creation_input_tokens == 300
    log = _log()
    assert (log.cache_read_tokens, log.cache_write_tokens) == (600, 300)
    expected = (100 * 1_000_000 + 600 * 100_000 + 300 * 1_250_000 + 50 * 2_000_000) / 10**6
    assert log.cost == round(expected)


def test_it_answers_google_genai_from_an_anthropic_channel(funded: Customer, channel, fake):
    channel("anthropic")
    client = _gemini(funded)
    reply = client.models.generate_content(model=MODEL, contents="hello")
    assert reply.text == DEFAULT_REPLY
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hello"))
    assert "".join(c.text or "" for c in chunks) == DEFAULT_REPLY
    assert chunks[-1].usage_metadata.candidates_token_count > 0
    assert [r.path for r in fake.requests] == ["/v1/messages", "/v1/messages"]
    wait_for(lambda: RequestLog.objects.filter(status_code=200).count() == 2)


def test_it_passes_gemini_through(funded: Customer, channel, fake):
    channel("gemini")
    fake.configure(usage=Usage(prompt_tokens=12, completion_tokens=9, cached_tokens=4))
    reply = _gemini(funded).models.generate_content(model=MODEL, contents="hello")
    assert reply.text == DEFAULT_REPLY
    assert fake.requests[-1].path == f"/v1beta/models/{MODEL}:generateContent"
    log = _log()
    assert (log.prompt_tokens, log.cache_read_tokens, log.completion_tokens) == (12, 4, 9)


def test_it_answers_openai_chat_with_tool_calls_from_an_anthropic_channel(
    funded: Customer, channel, fake
):
    channel("anthropic")
    fake.configure(tool_call=ToolCall(name="get_weather", arguments={"city": "Paris"}))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    client = funded.openai()
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "weather?"}], tools=tools
    )
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    assert fake.requests[-1].json["tools"][0]["name"] == "get_weather"
    streamed = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "weather?"}], tools=tools, stream=True
    )
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in streamed
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(arguments) == {"city": "Paris"}


def test_it_answers_openai_responses_from_a_chat_channel(funded: Customer, channel, fake):
    channel("openai")
    client = funded.openai()
    response = client.responses.create(model=MODEL, input="hello")
    assert response.output_text == DEFAULT_REPLY
    events = list(client.responses.create(model=MODEL, input="hello", stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.usage.output_tokens > 0
    assert all(r.path == "/v1/chat/completions" for r in fake.requests)


def test_it_passes_responses_through_without_letting_the_upstream_store(
    funded: Customer, channel, fake
):
    channel("openai-responses")
    response = funded.openai().responses.create(model=MODEL, input="hello", store=True)
    assert response.output_text == DEFAULT_REPLY
    assert fake.requests[-1].path == "/v1/responses"
    assert fake.requests[-1].json["store"] is False


def test_it_refuses_previous_response_id_clearly(funded: Customer, channel, fake):
    import openai

    channel("openai-responses")
    with pytest.raises(openai.BadRequestError) as exc:
        funded.openai().responses.create(model=MODEL, input="hi", previous_response_id="resp_1")
    assert "send the earlier items themselves in input, with store: false" in str(exc.value)
    assert fake.requests == []


def test_it_fails_over_across_protocols(funded: Customer, channel, fake):
    fake.fail(500, key="sk-anthropic")
    channel("anthropic", priority=10)
    channel("gemini")
    message = _anthropic(funded).messages.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == DEFAULT_REPLY
    assert [r.key for r in fake.requests] == ["sk-anthropic", "sk-gemini"]


def test_it_answers_errors_in_the_callers_format(funded: Customer, channel):
    import anthropic

    channel("openai")
    bad = anthropic.Anthropic(base_url=funded.relay.url, api_key="sk-th-" + "x" * 40, max_retries=0)
    funded.clients.append(bad)
    with pytest.raises(anthropic.AuthenticationError) as exc:
        bad.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    body = exc.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    response = httpx.post(
        funded.relay.url + f"/v1beta/models/{MODEL}:generateContent",
        headers={"x-goog-api-key": "sk-th-" + "y" * 40},
        json={"contents": [{"parts": [{"text": "x"}]}]},
    )
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_it_lists_models_in_the_callers_shape(funded: Customer, channel):
    channel("openai")
    anthropic_list = _anthropic(funded).models.list()
    assert [m.id for m in anthropic_list.data] == [MODEL]
    gemini_names = [m.name for m in _gemini(funded).models.list()]
    assert gemini_names == [f"models/{MODEL}"]
    one = _gemini(funded).models.get(model=MODEL)
    assert (one.name, one.display_name) == (f"models/{MODEL}", MODEL)


def test_it_counts_tokens_for_anthropic_and_gemini_callers(funded: Customer, channel):
    channel("openai")
    count = _anthropic(funded).messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "x" * 400}]
    )
    assert count.input_tokens >= 100
    total = _gemini(funded).models.count_tokens(model=MODEL, contents="y" * 400).total_tokens
    assert total >= 100


@pytest.mark.parametrize("kind", ["openai", "gemini"])
def test_it_embeds_for_google_genai_through_any_embedding_channel(
    funded: Customer, channel, fake, kind: str
):
    channel(kind)
    result = _gemini(funded).models.embed_content(model=MODEL, contents=["one", "two"])
    assert len(result.embeddings) == 2 and len(result.embeddings[0].values) == 8
    sent = fake.requests[-1]
    assert sent.path.endswith("/v1/embeddings" if kind == "openai" else ":batchEmbedContents")
    log = _log()
    assert log.endpoint == "batchEmbedContents" and log.prompt_tokens > 0
    # OpenAI reports embedding usage; Gemini does not, so TokenHub estimates and says so.
    assert log.usage_estimated == (kind == "gemini")


def test_it_passes_through_what_it_could_not_translate(funded: Customer, channel, fake):
    """A same-protocol call is untouched; the same call to another protocol gets a 400."""
    document = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "a memo"},
    }
    body = {
        "model": MODEL,
        "max_tokens": 50,
        "messages": [{"role": "user", "content": [document, {"type": "text", "text": "sum up"}]}],
    }
    headers = {"x-api-key": funded.secret, "anthropic-version": "2023-06-01"}
    anthropic_channel = channel("anthropic")
    ok = httpx.post(funded.relay.url + "/v1/messages", json=body, headers=headers)
    assert ok.status_code == 200
    assert fake.requests[-1].json["messages"][0]["content"][0] == document

    anthropic_channel.delete()
    channel("openai")
    from relay.catalog import catalog

    catalog.clear()
    refused = httpx.post(funded.relay.url + "/v1/messages", json=body, headers=headers)
    assert refused.status_code == 400
    assert refused.json()["type"] == "error"
    assert "document" in refused.json()["error"]["message"]
    assert len(fake.requests) == 1  # nothing was sent upstream


def test_it_skips_a_channel_that_cannot_express_the_request(funded: Customer, channel, fake):
    """An OpenAI channel cannot take an Anthropic document block; a lower Anthropic one can."""
    channel("openai", priority=10)
    channel("anthropic", priority=0)
    body = {
        "model": MODEL,
        "max_tokens": 50,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "memo"},
                    },
                ],
            }
        ],
    }
    answer = httpx.post(
        funded.relay.url + "/v1/messages", json=body, headers={"x-api-key": funded.secret}
    )
    assert answer.status_code == 200
    assert [r.path for r in fake.requests] == ["/v1/messages"]
    log = _log()
    assert log.attempts == 1


def test_it_drops_advisory_fields_and_names_them_in_a_header_and_the_log(
    funded: Customer, channel, fake
):
    channel("openai")
    body = {
        "model": MODEL,
        "max_tokens": 50,
        "top_k": 5,
        "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {"x-api-key": funded.secret, "anthropic-version": "2023-06-01"}

    answer = httpx.post(funded.relay.url + "/v1/messages", json=body, headers=headers)

    assert answer.status_code == 200
    assert answer.headers["x-tokenhub-dropped-params"] == "top_k,context_management"
    sent = fake.requests[-1].json
    assert "top_k" not in sent and "context_management" not in sent
    assert _log().dropped_params == "top_k,context_management"


def test_a_strict_channel_refuses_what_it_would_drop(funded: Customer, channel, fake):
    channel("openai", strict_fields=True)
    body = {
        "model": MODEL,
        "max_tokens": 50,
        "top_k": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {"x-api-key": funded.secret, "anthropic-version": "2023-06-01"}

    refused = httpx.post(funded.relay.url + "/v1/messages", json=body, headers=headers)

    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "invalid_request_error"
    assert "'top_k'" in refused.json()["error"]["message"]
    assert fake.requests == []


def test_a_same_protocol_call_drops_nothing(funded: Customer, channel, fake):
    channel("anthropic")
    body = {
        "model": MODEL,
        "max_tokens": 50,
        "top_k": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {"x-api-key": funded.secret, "anthropic-version": "2023-06-01"}

    answer = httpx.post(funded.relay.url + "/v1/messages", json=body, headers=headers)

    assert answer.status_code == 200
    assert "x-tokenhub-dropped-params" not in answer.headers
    assert fake.requests[-1].json["top_k"] == 5
    assert _log().dropped_params == ""


@pytest.mark.parametrize("stream", [False, True])
def test_codex_style_namespace_tools_work_through_an_anthropic_channel(
    funded: Customer, channel, fake, stream: bool
):
    channel("anthropic")
    fake.configure(tool_call=ToolCall(name="multi_agent_v1__spawn_agent", arguments={"x": 1}))
    body = {
        "model": MODEL,
        "input": "hi",
        "stream": stream,
        "tools": [
            {
                "type": "namespace",
                "name": "multi_agent_v1",
                "description": "Agents",
                "tools": [{"type": "function", "name": "spawn_agent", "parameters": {}}],
            },
            {"type": "web_search", "external_web_access": False},
        ],
    }
    headers = {"authorization": f"Bearer {funded.secret}"}

    answer = httpx.post(funded.relay.url + "/v1/responses", json=body, headers=headers)

    assert answer.status_code == 200
    assert answer.headers["x-tokenhub-dropped-params"] == "tools.web_search"
    assert [t["name"] for t in fake.requests[-1].json["tools"]] == ["multi_agent_v1__spawn_agent"]
    if stream:
        done = [
            json.loads(line[6:])
            for line in answer.text.splitlines()
            if line.startswith("data: ") and "output_item.done" in line
        ]
        item = done[-1]["item"]
    else:
        item = answer.json()["output"][-1]
    assert (item["type"], item["namespace"], item["name"]) == (
        "function_call",
        "multi_agent_v1",
        "spawn_agent",
    )


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
def test_it_asks_a_same_protocol_upstream_to_count_tokens(funded: Customer, channel, fake, kind):
    channel(kind)
    fake.configure(usage=Usage(prompt_tokens=1234, completion_tokens=1))

    if kind == "anthropic":
        count = _anthropic(funded).messages.count_tokens(
            model=MODEL, messages=[{"role": "user", "content": "x" * 400}]
        )
        assert count.input_tokens == 1234
        assert fake.requests[-1].path == "/v1/messages/count_tokens"
    else:
        total = _gemini(funded).models.count_tokens(model=MODEL, contents="y" * 400)
        assert total.total_tokens == 1234
        assert fake.requests[-1].path.endswith(f"/models/{MODEL}:countTokens")
    assert not RequestLog.objects.exists()  # counting moves no money


def test_it_estimates_the_count_when_the_upstream_cannot_count(funded: Customer, channel, fake):
    channel("anthropic")
    fake.fail(500)

    count = _anthropic(funded).messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "x" * 400}]
    )

    assert 100 <= count.input_tokens < 1234
