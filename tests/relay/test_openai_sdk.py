"""The official openai SDK, unchanged, works through TokenHub."""

from __future__ import annotations

import pytest

from logs.models import RequestLog
from tests.fakes.upstream import DEFAULT_REPLY
from tests.relay.conftest import Customer, wait_for


def test_it_relays_non_streaming_chat_and_bills_it(ready: Customer) -> None:
    before = ready.balance()
    reply = ready.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.choices[0].message.content == DEFAULT_REPLY
    log = wait_for(lambda: RequestLog.objects.filter(status_code=200).first())
    assert log.prompt_tokens == reply.usage.prompt_tokens
    assert log.completion_tokens == reply.usage.completion_tokens
    assert not log.usage_estimated
    assert ready.balance() == before - log.cost
    assert log.cost > 0


def test_it_relays_streaming_chat_without_the_usage_chunk_the_client_did_not_ask_for(
    ready: Customer,
) -> None:
    stream = ready.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_REPLY
    assert all(c.choices for c in chunks)  # no usage-only chunk leaked to the client
    log = wait_for(lambda: RequestLog.objects.filter(status_code=200).first())
    assert log.stream and not log.usage_estimated and log.completion_tokens > 0


def test_it_keeps_the_usage_chunk_when_the_client_asked(ready: Customer, fake) -> None:
    stream = ready.openai().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [c.usage for c in stream if c.usage]
    assert len(usage) == 1 and usage[0].completion_tokens > 0
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}


def test_it_asks_streaming_upstreams_for_usage(ready: Customer, fake) -> None:
    list(
        ready.openai().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
        )
    )
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}


def test_it_relays_legacy_completions(ready: Customer) -> None:
    reply = ready.openai().completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    assert reply.choices[0].text
    log = wait_for(lambda: RequestLog.objects.filter(endpoint="completions").first())
    assert log.prompt_tokens == reply.usage.prompt_tokens


def test_it_relays_streaming_legacy_completions(ready: Customer) -> None:
    stream = ready.openai().completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say hi", stream=True
    )
    assert "".join(c.choices[0].text for c in stream if c.choices)
    log = wait_for(lambda: RequestLog.objects.filter(endpoint="completions").first())
    assert log.completion_tokens > 0 and not log.usage_estimated


def test_it_relays_embeddings(ready: Customer) -> None:
    result = ready.openai().embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    assert len(result.data) == 2
    log = wait_for(lambda: RequestLog.objects.filter(endpoint="embeddings").first())
    assert log.prompt_tokens == result.usage.prompt_tokens


def test_it_lists_only_models_the_key_may_use(ready: Customer) -> None:
    ids = {m.id for m in ready.openai().models.list()}
    assert ids == {"gpt-4o-mini", "text-embedding-3-small", "gpt-3.5-turbo-instruct"}
    client = ready.openai(ready.new_key(allowed_models=["gpt-4o*"]))
    assert {m.id for m in client.models.list()} == {"gpt-4o-mini"}
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"


def test_it_answers_unknown_model_retrieval_with_404(ready: Customer) -> None:
    import openai

    with pytest.raises(openai.NotFoundError) as exc:
        ready.openai().models.retrieve("no-such-model")
    body = exc.value.body
    assert isinstance(body, dict) and body["code"] == "model_not_found"
