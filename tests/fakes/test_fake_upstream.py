"""The fake upstream must satisfy the official SDKs, or it proves nothing about the relay."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.fakes.upstream import (
    DEFAULT_REPLY,
    Failure,
    FakeUpstream,
    Scenario,
    ToolCall,
    Usage,
    count_tokens,
)

USAGE = Usage(
    prompt_tokens=120,
    completion_tokens=30,
    cached_tokens=50,
    cache_write_tokens=20,
    reasoning_tokens=10,
)


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def openai_client(
    fake: FakeUpstream, key: str = "sk-test", timeout: float | None = None
) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=fake.url + "/v1", api_key=key, max_retries=0, timeout=timeout or 30.0
    )


def anthropic_client(fake: FakeUpstream, key: str = "sk-ant-test") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.url, api_key=key, max_retries=0)


def gemini_client(
    fake: FakeUpstream, key: str = "AIza-test", api_version: str | None = None
) -> genai.Client:
    options = genai_types.HttpOptions(base_url=fake.url, api_version=api_version)
    return genai.Client(api_key=key, http_options=options)


CLAUDE = "claude-test-model"  # a name the SDK does not warn about
# Any: the same plain message list is valid for both SDKs' differently typed params.
HELLO: Any = [{"role": "user", "content": "Say hello"}]


# --- OpenAI ---------------------------------------------------------------------------


def test_it_answers_openai_chat_with_usage(fake: FakeUpstream) -> None:
    fake.configure(usage=USAGE)
    with openai_client(fake) as client:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o-mini"
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (120, 30, 150)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 50
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 10


def test_it_computes_default_usage_deterministically(fake: FakeUpstream) -> None:
    with openai_client(fake) as client:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_tokens("Say hello")
    assert completion.usage.completion_tokens == count_tokens(DEFAULT_REPLY)


def test_it_streams_openai_chat_with_a_final_usage_chunk(fake: FakeUpstream) -> None:
    fake.configure(usage=USAGE, stream_chunks=5)
    with openai_client(fake) as client:
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=HELLO,
                stream=True,
                stream_options={"include_usage": True},
            )
        )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 150
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 5


def test_it_streams_no_usage_unless_asked(fake: FakeUpstream) -> None:
    with openai_client(fake) as client:
        chunks = list(client.chat.completions.create(model="m", messages=HELLO, stream=True))

    assert all(c.usage is None and c.choices for c in chunks)


def test_it_hides_usage_when_scripted(fake: FakeUpstream) -> None:
    fake.configure(report_usage=False)
    with openai_client(fake) as client:
        completion = client.chat.completions.create(model="m", messages=HELLO)
        chunks = list(
            client.chat.completions.create(
                model="m",
                messages=HELLO,
                stream=True,
                stream_options={"include_usage": True},
            )
        )

    assert completion.usage is None
    assert all(c.usage is None for c in chunks)


def test_it_streams_openai_tool_call_arguments_in_pieces(fake: FakeUpstream) -> None:
    tool = ToolCall(name="lookup", arguments={"query": "weather in Paris"}, id="call_1")
    fake.configure(tool_call=tool, stream_chunks=3)
    with openai_client(fake) as client:
        chunks = list(client.chat.completions.create(model="m", messages=HELLO, stream=True))

    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id == "call_1"
    assert calls[0].function is not None
    assert calls[0].function.name == "lookup"
    pieces = [tc.function.arguments for tc in calls if tc.function and tc.function.arguments]
    assert len(pieces) == 3
    assert json.loads("".join(pieces)) == {"query": "weather in Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_it_echoes_the_last_user_message(fake: FakeUpstream) -> None:
    fake.configure(echo=True)
    messages: Any = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "canary-7f3a"}]},
    ]
    with openai_client(fake) as client:
        completion = client.chat.completions.create(model="m", messages=messages)

    assert completion.choices[0].message.content == "canary-7f3a"


def test_it_answers_legacy_completions(fake: FakeUpstream) -> None:
    with openai_client(fake) as client:
        completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hi")
        chunks = list(
            client.completions.create(
                model="gpt-3.5-turbo-instruct",
                prompt="Hi",
                stream=True,
                stream_options={"include_usage": True},
            )
        )

    assert completion.choices[0].text == DEFAULT_REPLY
    assert "".join(c.choices[0].text for c in chunks if c.choices) == DEFAULT_REPLY
    assert chunks[-1].usage is not None


def test_it_answers_embeddings_as_floats_and_base64(fake: FakeUpstream) -> None:
    with openai_client(fake) as client:
        floats = client.embeddings.create(
            model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
        )
        # The SDK asks for base64 by default and decodes it.
        decoded = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])

    assert fake.requests[-1].json["encoding_format"] == "base64"
    assert [e.embedding for e in decoded.data] == [e.embedding for e in floats.data]
    assert len(floats.data[0].embedding) == 8
    assert floats.data[0].embedding != floats.data[1].embedding
    assert floats.usage.prompt_tokens > 0


def test_it_lists_models(fake: FakeUpstream) -> None:
    fake.configure(models=("gpt-4o", "o3"))
    with openai_client(fake) as client:
        models = [m.id for m in client.models.list()]

    assert models == ["gpt-4o", "o3"]


def test_it_answers_responses_api(fake: FakeUpstream) -> None:
    fake.configure(usage=USAGE)
    with openai_client(fake) as client:
        response = client.responses.create(model="gpt-4o", input="Say hello")

    assert response.output_text == DEFAULT_REPLY
    assert response.usage is not None
    assert response.usage.input_tokens == 120
    assert response.usage.input_tokens_details.cached_tokens == 50
    assert response.usage.output_tokens_details.reasoning_tokens == 10


def test_it_streams_responses_api_events(fake: FakeUpstream) -> None:
    fake.configure(usage=USAGE)
    with openai_client(fake) as client:
        events = list(client.responses.create(model="gpt-4o", input="Say hello", stream=True))

    kinds = [e.type for e in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == DEFAULT_REPLY
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.usage is not None
    assert completed.response.usage.total_tokens == 150


def test_it_serves_azure_deployments(fake: FakeUpstream) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=fake.url, api_key="azure-key", api_version="2024-10-21", max_retries=0
    )
    with client:
        completion = client.chat.completions.create(model="my-deployment", messages=HELLO)

    assert completion.model == "my-deployment"
    request = fake.requests[-1]
    assert request.path == "/openai/deployments/my-deployment/chat/completions"
    assert request.query["api-version"] == "2024-10-21"
    assert (request.key, request.key_source) == ("azure-key", "api-key")


# --- Anthropic ------------------------------------------------------------------------


def test_it_answers_anthropic_messages_with_cache_usage(fake: FakeUpstream) -> None:
    fake.configure(usage=USAGE)
    with anthropic_client(fake) as client:
        message = client.messages.create(
            model=CLAUDE,
            max_tokens=100,
            messages=HELLO,
        )

    assert message.content[0].type == "text"
    assert message.content[0].text == DEFAULT_REPLY
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 120 - 50 - 20
    assert message.usage.cache_read_input_tokens == 50
    assert message.usage.cache_creation_input_tokens == 20
    assert message.usage.output_tokens == 30


def test_it_streams_anthropic_messages(fake: FakeUpstream) -> None:
    fake.configure(usage=USAGE)
    with (
        anthropic_client(fake) as client,
        client.messages.stream(model=CLAUDE, max_tokens=100, messages=HELLO) as stream,
    ):
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == DEFAULT_REPLY
    assert final.usage.output_tokens == 30
    assert final.usage.cache_read_input_tokens == 50
    assert fake.requests[-1].json["stream"] is True


def test_it_streams_anthropic_tool_use(fake: FakeUpstream) -> None:
    fake.configure(tool_call=ToolCall(name="lookup", arguments={"q": "x" * 20}, id="toolu_1"))
    with (
        anthropic_client(fake) as client,
        client.messages.stream(model=CLAUDE, max_tokens=100, messages=HELLO) as stream,
    ):
        events = list(stream)
        final = stream.get_final_message()

    assert sum(1 for e in events if e.type == "content_block_delta") == 4
    block = final.content[0]
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == ("toolu_1", "lookup", {"q": "x" * 20})
    assert final.stop_reason == "tool_use"


def test_it_counts_anthropic_tokens(fake: FakeUpstream) -> None:
    with anthropic_client(fake) as client:
        count = client.messages.count_tokens(model=CLAUDE, messages=HELLO)

    assert count.input_tokens == count_tokens("Say hello")


# --- Gemini ---------------------------------------------------------------------------


def test_it_answers_gemini_generate_content(fake: FakeUpstream) -> None:
    fake.configure(usage=USAGE)
    with gemini_client(fake) as client:
        response = client.models.generate_content(model="gemini-2.5-flash", contents="Say hello")

    assert response.text == DEFAULT_REPLY
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == 120
    assert usage.cached_content_token_count == 50
    assert usage.candidates_token_count == 20
    assert usage.thoughts_token_count == 10
    assert usage.total_token_count == 150
    request = fake.requests[-1]
    assert request.path.endswith("/models/gemini-2.5-flash:generateContent")
    assert (request.key, request.key_source) == ("AIza-test", "x-goog-api-key")


@pytest.mark.parametrize("api_version", ["v1", "v1beta"])
def test_it_streams_gemini_with_usage_on_the_last_chunk(
    fake: FakeUpstream, api_version: str
) -> None:
    fake.configure(usage=USAGE)
    with gemini_client(fake, api_version=api_version) as client:
        chunks = list(
            client.models.generate_content_stream(model="gemini-2.5-flash", contents="Say hello")
        )

    assert "".join(c.text or "" for c in chunks) == DEFAULT_REPLY
    assert len(chunks) == 4
    last = chunks[-1].usage_metadata
    assert last is not None
    assert last.total_token_count == 150
    assert fake.requests[-1].path.startswith(f"/{api_version}/models/")
    assert fake.requests[-1].query == {"alt": "sse"}


def test_it_answers_gemini_function_calls(fake: FakeUpstream) -> None:
    fake.configure(tool_call=ToolCall(name="lookup", arguments={"q": "paris"}))
    with gemini_client(fake) as client:
        response = client.models.generate_content(model="gemini-2.5-flash", contents="hi")

    assert response.function_calls is not None
    assert response.function_calls[0].name == "lookup"
    assert response.function_calls[0].args == {"q": "paris"}


def test_it_counts_and_embeds_for_gemini(fake: FakeUpstream) -> None:
    with gemini_client(fake) as client:
        count = client.models.count_tokens(model="gemini-2.5-flash", contents="Say hello")
        texts: list[genai_types.ContentUnion] = ["a", "b"]  # the SDK's list is invariant
        embedded = client.models.embed_content(model="gemini-embedding-001", contents=texts)

    assert count.total_tokens == count_tokens("Say hello")
    assert embedded.embeddings is not None
    assert [len(e.values or []) for e in embedded.embeddings] == [8, 8]


# --- failures, keys and recording ------------------------------------------------------


def test_it_plays_distinct_channels_by_api_key(fake: FakeUpstream) -> None:
    fake.fail(500, key="sk-bad")
    with openai_client(fake, "sk-bad") as bad, openai_client(fake, "sk-good") as good:
        with pytest.raises(openai.InternalServerError) as caught:
            bad.chat.completions.create(model="m", messages=HELLO)
        assert good.chat.completions.create(model="m", messages=HELLO).choices

    assert caught.value.status_code == 500
    assert caught.value.body is not None
    assert [r.outcome for r in fake.requests] == ["status", "ok"]


def test_it_fails_n_times_then_succeeds(fake: FakeUpstream) -> None:
    fake.configure(failure=Failure(status=429, times=2, retry_after=1))
    with openai_client(fake) as client:
        for _ in range(2):
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(model="m", messages=HELLO)
        assert client.chat.completions.create(model="m", messages=HELLO).choices


def test_it_fails_in_each_providers_error_format(fake: FakeUpstream) -> None:
    fake.fail(529)
    with anthropic_client(fake) as client, pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model=CLAUDE, max_tokens=10, messages=HELLO)
    assert caught.value.status_code == 529
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "overloaded_error"

    fake.fail(503)
    with gemini_client(fake) as gemini, pytest.raises(genai_errors.ServerError) as gemini_caught:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert gemini_caught.value.code == 503
    assert gemini_caught.value.status == "UNAVAILABLE"


def test_it_rejects_invalid_keys_with_401(fake: FakeUpstream) -> None:
    fake.reject_key("sk-revoked")
    with openai_client(fake, "sk-revoked") as client, pytest.raises(openai.AuthenticationError):
        client.models.list()
    with (
        anthropic_client(fake, "sk-revoked") as claude,
        pytest.raises(anthropic.AuthenticationError),
    ):
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=HELLO)
    with gemini_client(fake, "sk-revoked") as gemini, pytest.raises(genai_errors.ClientError) as c:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert c.value.code == 401
    assert [r.outcome for r in fake.requests] == ["rejected"] * 3


def test_it_drops_the_connection_before_any_byte(fake: FakeUpstream) -> None:
    fake.fail(mode="disconnect")
    with openai_client(fake) as client, pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=HELLO)


def test_it_cuts_a_stream_midway(fake: FakeUpstream) -> None:
    fake.fail(mode="midstream", after_chunks=2)
    received: list[str] = []
    with openai_client(fake) as client, pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(model="m", messages=HELLO, stream=True):
            received.append(chunk.choices[0].delta.content or "")

    assert "".join(received) == DEFAULT_REPLY[: len("".join(received))]
    assert 0 < len("".join(received)) < len(DEFAULT_REPLY)


def test_it_sends_an_in_stream_error(fake: FakeUpstream) -> None:
    fake.fail(529, mode="error_midstream", after_chunks=1)
    with (
        anthropic_client(fake) as client,
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(model=CLAUDE, max_tokens=10, messages=HELLO) as stream,
    ):
        for _ in stream:
            pass

    assert "overloaded_error" in str(caught.value.body)


def test_it_stalls_until_the_client_gives_up(fake: FakeUpstream) -> None:
    fake.fail(mode="stall")
    with openai_client(fake, timeout=0.3) as client, pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=HELLO)

    fake.wait_until(lambda requests: requests[-1].outcome == "cancelled")


def test_it_records_requests(fake: FakeUpstream) -> None:
    with openai_client(fake, "sk-record") as client:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        ).close()

    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-record"
    assert (request.key, request.key_source) == ("sk-record", "authorization")
    assert request.json["stream_options"] == {"include_usage": True}
    assert (request.protocol, request.endpoint, request.model) == ("openai", "chat", "gpt-4o-mini")
    assert request.stream is True

    fake.reset()
    assert fake.requests == []
    assert fake.scenario == Scenario()


def test_it_records_the_usage_it_reported(fake: FakeUpstream) -> None:
    fake.configure(usage=USAGE)
    with openai_client(fake) as client:
        client.chat.completions.create(model="m", messages=HELLO)
        client.models.list()
    fake.fail(500, times=1)
    with openai_client(fake) as client, pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=HELLO)

    assert [r.usage for r in fake.requests] == [USAGE, None, None]


# A conversation offering the tool, the same one carrying the tool's result, and a side call
# without tools, in each protocol: (path, stream path, offered, answered, side call).
_LOOKUP_RESULT = {"q": "x"}
TOOL_CONVERSATIONS: dict[str, tuple[str, str, Any, Any, Any]] = {
    "chat": (
        "/v1/chat/completions",
        "/v1/chat/completions",
        {
            "model": "m",
            "messages": HELLO,
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
        },
        {
            "model": "m",
            "messages": [
                *HELLO,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ],
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
        },
        {"model": "m", "messages": HELLO},
    ),
    "responses": (
        "/v1/responses",
        "/v1/responses",
        # Inside a namespace, as Codex offers some of its tools.
        {
            "model": "m",
            "input": "hi",
            "tools": [
                {
                    "type": "namespace",
                    "name": "ns",
                    "tools": [{"type": "function", "name": "lookup"}],
                }
            ],
        },
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "hi"},
                {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "42"},
            ],
            "tools": [{"type": "function", "name": "lookup"}],
        },
        {"model": "m", "input": "hi", "tools": [{"type": "function", "name": "other"}]},
    ),
    "messages": (
        "/v1/messages",
        "/v1/messages",
        {"model": "m", "max_tokens": 9, "messages": HELLO, "tools": [{"name": "lookup"}]},
        {
            "model": "m",
            "max_tokens": 9,
            "messages": [
                *HELLO,
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "c1", "name": "lookup", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "42"}],
                },
            ],
            "tools": [{"name": "lookup"}],
        },
        {"model": "m", "max_tokens": 9, "messages": HELLO},
    ),
    "gemini": (
        "/v1beta/models/m:generateContent",
        "/v1beta/models/m:streamGenerateContent?alt=sse",
        {
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "lookup"}]}],
        },
        {
            "contents": [
                {"role": "user", "parts": [{"text": "hi"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {}}}]},
                {
                    "role": "user",
                    "parts": [{"functionResponse": {"name": "lookup", "response": {"a": 42}}}],
                },
            ],
            "tools": [{"functionDeclarations": [{"name": "lookup"}]}],
        },
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    ),
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("protocol", list(TOOL_CONVERSATIONS))
def test_it_calls_the_tool_until_the_conversation_carries_its_result(
    fake: FakeUpstream, protocol: str, stream: bool
) -> None:
    fake.configure(
        tool_call=ToolCall(name="lookup", arguments=_LOOKUP_RESULT),
        tool_call_until_result=True,
        reply_text="all done",
        stream_chunks=1,
    )
    path, stream_path, offered, answered, side_call = TOOL_CONVERSATIONS[protocol]

    for body, tool_expected in ((offered, True), (answered, False), (side_call, False)):
        if stream and protocol != "gemini":
            body = {**body, "stream": True}
        response = httpx.post(
            fake.url + (stream_path if stream else path), json=body, headers={"x-api-key": "k"}
        )

        assert response.status_code == 200
        # The outcome (and usage) is recorded once the fake finished writing.
        [*_, record] = fake.wait_until(lambda requests: requests[-1].outcome != "pending")
        assert (record.stream, record.tool_called) == (stream, tool_expected)
        assert ("all done" in response.text) is not tool_expected
        if tool_expected:
            assert '"lookup"' in response.text
        assert record.usage is not None


def test_it_records_unknown_routes(fake: FakeUpstream) -> None:
    response = httpx.get(fake.url + "/v2/nowhere", headers={"Authorization": "Bearer k"})

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert fake.requests[-1].path == "/v2/nowhere"


def test_it_runs_standalone() -> None:
    command = [sys.executable, "-m", "tests.fakes.upstream", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split()[-1]
            with openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client:
                completion = client.chat.completions.create(model="m", messages=HELLO)
            assert completion.choices[0].message.content == DEFAULT_REPLY
        finally:
            process.terminate()
    assert process.returncode == 0
