"""The official SDKs read the cost TokenHub adds to answers, and none breaks on it.

For each protocol, streaming and not, through a same-protocol channel (passed through) and
another protocol's (translated): the cost where the SDK exposes extra fields (pydantic
extras: `usage.cost`), else the `X-TokenHub-Cost` header, always equal to the log row's
charge. What each SDK does with the field is in docs/protocols.md, "Cost of every call".
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from billing.services import price_set
from logs.models import RequestLog
from money import micros_to_usd
from relay.models import Channel
from relay.services import channel_create
from tests.fakes.upstream import DEFAULT_REPLY, Usage
from tests.relay.conftest import Customer, wait_for

MODEL = "sdk-cost-test"
EMBEDDING = "text-embedding-3-small"
INSTRUCT = "gpt-3.5-turbo-instruct"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def channel(fake) -> Callable[[str], Channel]:
    def make(kind: str) -> Channel:
        base = fake.url if kind in ("anthropic", "gemini") else fake.url + "/v1"
        return channel_create(
            name=kind, type=kind, base_url=base, api_keys=[f"sk-{kind}"],
            models=[MODEL, EMBEDDING, INSTRUCT],
        )  # fmt: skip

    return make


@pytest.fixture
def funded(customer: Customer, fake) -> Customer:
    for model in (MODEL, EMBEDDING, INSTRUCT):
        price_set(
            model=model, input_per_1m=2_345_678, output_per_1m=8_765_432, cache_read_per_1m=87_654
        )
    fake.configure(usage=Usage(prompt_tokens=1_500, completion_tokens=432, cached_tokens=300))
    return customer


def _charged() -> int:
    """The charge of the one request the test made, once it is settled."""
    log: RequestLog = wait_for(lambda: RequestLog.objects.filter(status_code=200).first())
    assert log.cost > 0 and not log.usage_estimated
    return log.cost


def _cost(usage: Any) -> Any:
    """`usage.cost` as the SDK exposes a field it does not declare (a pydantic extra)."""
    assert usage is not None
    return (usage.model_extra or {}).get("cost")


def _anthropic(customer: Customer) -> Any:
    import anthropic

    client = anthropic.Anthropic(
        base_url=customer.relay.url, api_key=customer.secret, max_retries=0
    )
    customer.clients.append(client)
    return client


def _gemini(customer: Customer, base_url: str | None = None) -> Any:
    from google import genai
    from google.genai import types

    client = genai.Client(
        api_key=customer.secret,
        http_options=types.HttpOptions(base_url=base_url or customer.relay.url),
    )
    customer.clients.append(client)
    return client


CHANNELS = pytest.mark.parametrize("kind", ["same", "translated"])
SAME = {"openai": "openai", "responses": "openai-responses", "anthropic": "anthropic",
        "gemini": "gemini"}  # fmt: skip
OTHER = {"openai": "anthropic", "responses": "gemini", "anthropic": "openai", "gemini": "openai"}


def _channel(channel: Callable[[str], Channel], protocol: str, kind: str) -> None:
    channel(SAME[protocol] if kind == "same" else OTHER[protocol])


# --- openai: Chat Completions, Completions, Embeddings ------------------------------------


@CHANNELS
def test_openai_chat_reads_usage_cost(funded: Customer, channel: Any, kind: str) -> None:
    _channel(channel, "openai", kind)

    raw = funded.openai().chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)

    completion = raw.parse()
    charged = _charged()
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert _cost(completion.usage) == completion.usage.cost == charged / 1_000_000
    assert raw.headers["x-tokenhub-cost"] == micros_to_usd(charged)


@CHANNELS
def test_openai_chat_streams_read_usage_cost(funded: Customer, channel: Any, kind: str) -> None:
    _channel(channel, "openai", kind)

    chunks = list(
        funded.openai().chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_REPLY
    assert [_cost(c.usage) for c in chunks if c.usage] == [_charged() / 1_000_000]


def test_openai_chat_stream_helper_keeps_usage_cost(funded: Customer, channel: Any) -> None:
    _channel(channel, "openai", "same")

    with funded.openai().chat.completions.stream(
        model=MODEL, messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        final = stream.get_final_completion()

    assert final.choices[0].message.content == DEFAULT_REPLY
    assert _cost(final.usage) == _charged() / 1_000_000


def test_openai_completions_read_usage_cost(funded: Customer, channel: Any) -> None:
    _channel(channel, "openai", "same")

    completion = funded.openai().completions.create(model=INSTRUCT, prompt="hi")

    assert completion.choices[0].text
    assert _cost(completion.usage) == _charged() / 1_000_000


def test_openai_completion_streams_read_usage_cost(funded: Customer, channel: Any) -> None:
    _channel(channel, "openai", "same")

    chunks = list(
        funded.openai().completions.create(
            model=INSTRUCT, prompt="hi", stream=True, stream_options={"include_usage": True}
        )
    )

    assert [_cost(c.usage) for c in chunks if c.usage] == [_charged() / 1_000_000]


def test_openai_embeddings_read_usage_cost(funded: Customer, channel: Any) -> None:
    _channel(channel, "openai", "same")

    embedding = funded.openai().embeddings.create(model=EMBEDDING, input=["hi", "there"])

    assert len(embedding.data) == 2
    assert _cost(embedding.usage) == _charged() / 1_000_000


# --- openai: Responses ---------------------------------------------------------------------


@CHANNELS
def test_responses_read_usage_cost(funded: Customer, channel: Any, kind: str) -> None:
    _channel(channel, "responses", kind)

    response = funded.openai().responses.create(model=MODEL, input="hi")

    assert response.output_text == DEFAULT_REPLY
    assert _cost(response.usage) == _charged() / 1_000_000


@CHANNELS
def test_responses_streams_read_usage_cost(funded: Customer, channel: Any, kind: str) -> None:
    _channel(channel, "responses", kind)

    events = list(funded.openai().responses.create(model=MODEL, input="hi", stream=True))

    (completed,) = [e for e in events if e.type == "response.completed"]
    assert completed.response.output_text == DEFAULT_REPLY
    assert _cost(completed.response.usage) == _charged() / 1_000_000


@CHANNELS
def test_responses_stream_helper_keeps_usage_cost(
    funded: Customer, channel: Any, kind: str
) -> None:
    _channel(channel, "responses", kind)

    with funded.openai().responses.stream(model=MODEL, input="hi") as stream:
        final = stream.get_final_response()

    assert final.output_text == DEFAULT_REPLY
    assert _cost(final.usage) == _charged() / 1_000_000


# --- anthropic -----------------------------------------------------------------------------


@CHANNELS
def test_anthropic_reads_the_cost_header(funded: Customer, channel: Any, kind: str) -> None:
    _channel(channel, "anthropic", kind)

    raw = _anthropic(funded).messages.with_raw_response.create(
        model=MODEL, max_tokens=500, messages=MESSAGES
    )

    message = raw.parse()
    assert message.content[0].text == DEFAULT_REPLY
    assert raw.headers["x-tokenhub-cost"] == micros_to_usd(_charged())


@CHANNELS
def test_anthropic_streams_read_usage_cost_on_message_delta(
    funded: Customer, channel: Any, kind: str
) -> None:
    _channel(channel, "anthropic", kind)

    events = list(
        _anthropic(funded).messages.create(
            model=MODEL, max_tokens=500, messages=MESSAGES, stream=True
        )
    )

    (delta,) = [e for e in events if e.type == "message_delta"]
    assert events[-1].type == "message_stop"
    assert _cost(delta.usage) == _charged() / 1_000_000


@CHANNELS
def test_anthropic_stream_helper_passes_usage_cost_on(
    funded: Customer, channel: Any, kind: str
) -> None:
    _channel(channel, "anthropic", kind)

    with _anthropic(funded).messages.stream(
        model=MODEL, max_tokens=500, messages=MESSAGES
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    # The event keeps it; the accumulated message keeps only the fields the SDK declares.
    (delta,) = [e for e in events if e.type == "message_delta"]
    assert _cost(delta.usage) == _charged() / 1_000_000
    assert final.content[0].text == DEFAULT_REPLY and final.usage.output_tokens == 432


# --- gemini --------------------------------------------------------------------------------


@CHANNELS
def test_google_genai_reads_the_cost_header(funded: Customer, channel: Any, kind: str) -> None:
    _channel(channel, "gemini", kind)

    response = _gemini(funded).models.generate_content(model=MODEL, contents="hi")

    assert response.text == DEFAULT_REPLY
    assert response.sdk_http_response.headers["x-tokenhub-cost"] == micros_to_usd(_charged())


@CHANNELS
def test_google_genai_streams_carry_no_cost(funded: Customer, channel: Any, kind: str) -> None:
    _channel(channel, "gemini", kind)

    chunks = list(_gemini(funded).models.generate_content_stream(model=MODEL, contents="hi"))

    assert "".join(c.text or "" for c in chunks) == DEFAULT_REPLY
    assert chunks[-1].usage_metadata.candidates_token_count == 432
    assert _charged() > 0  # read it back: GET /v1/generations/{X-Request-Id}


class _GeminiWithCost(http.server.BaseHTTPRequestHandler):
    """A Gemini answer whose usageMetadata has a cost, as TokenHub would write it."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        body = orjson.dumps(
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": "hi"}]},
                        "finishReason": "STOP",
                    }
                ],
                "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 5, "cost": 0.001234},
            }
        )
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


@pytest.fixture
def gemini_with_cost() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GeminiWithCost)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_google_genai_drops_usage_metadata_cost(customer: Customer, gemini_with_cost: str) -> None:
    """Why Gemini answers carry no `usageMetadata.cost`: the SDK removes fields it does not
    declare before validating (the text still arrives). Should a release keep them, this
    fails, and Gemini answers can start carrying the cost."""
    response = _gemini(customer, gemini_with_cost).models.generate_content(
        model=MODEL, contents="hi"
    )

    assert response.text == "hi" and response.usage_metadata.prompt_token_count == 3
    assert "cost" not in response.usage_metadata.model_dump()
    assert not getattr(response.usage_metadata, "model_extra", None)
