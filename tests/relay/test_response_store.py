"""previous_response_id: refused with guidance by default; for organizations that opt in,
answered from a short-lived store encrypted with the calling key."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import httpx
import pytest
from django.utils import timezone

from accounts.services import key_create
from relay.models import Channel, StoredResponse
from relay.response_store import purge_expired
from relay.services import channel_create
from tests.relay.conftest import Customer
from tests.relay.test_privacy import _database_text

MODEL = "gpt-4o-mini"


@pytest.fixture
def opted_in(ready: Customer) -> Customer:
    ready.org.store_responses = True
    ready.org.save(update_fields=["store_responses"])
    return ready


def _respond(customer: Customer, secret: str | None = None, **body: Any) -> httpx.Response:
    return httpx.post(
        customer.base_url + "/responses",
        json={"model": MODEL, **body},
        headers={"authorization": f"Bearer {secret or customer.secret}"},
    )


def _first_id(answer: httpx.Response, stream: bool) -> str:
    if not stream:
        return str(answer.json()["id"])
    for line in answer.text.splitlines():
        if line.startswith("data: ") and '"response.completed"' in line:
            return str(json.loads(line[6:])["response"]["id"])
    raise AssertionError("no response.completed event")


def _texts(value: Any) -> str:
    return json.dumps(value)


@pytest.mark.parametrize("kind", ["openai-responses", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_it_continues_a_conversation_from_the_store(
    opted_in: Customer, fake, kind: str, stream: bool
) -> None:
    Channel.objects.all().delete()
    channel_create(
        name=kind,
        type=kind,
        base_url=fake.url + ("/v1" if kind == "openai-responses" else ""),
        api_keys=["sk-up"],
        models=[MODEL],
    )
    canary = f"CANARY-{uuid.uuid4().hex}"
    first = _respond(opted_in, input=f"first {canary}", stream=stream)
    assert first.status_code == 200
    response_id = _first_id(first, stream)

    second = _respond(opted_in, input="second", previous_response_id=response_id)

    assert second.status_code == 200, second.text
    sent = _texts(fake.requests[-1].json)
    assert canary in sent and "second" in sent  # the earlier turn, then the new one
    assert sent.index(canary) < sent.index("second")
    assert fake.requests[-1].json.get("previous_response_id") is None
    assert canary not in _database_text()  # kept only encrypted


def test_without_the_store_it_says_how_to_send_the_items(ready: Customer, fake) -> None:
    answer = _respond(ready, input="hi", previous_response_id="resp_1")

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "previous_response_id"
    assert "with store: false" in answer.json()["error"]["message"]
    assert fake.requests == []


def test_another_key_cannot_read_a_kept_conversation(opted_in: Customer, fake) -> None:
    first = _respond(opted_in, input="secret plans")
    _, other = key_create(organization=opted_in.org, created_by=opted_in.user, name="other")

    answer = _respond(opted_in, other, input="go on", previous_response_id=first.json()["id"])

    assert answer.status_code == 400
    assert "not found" in answer.json()["error"]["message"]


def test_nothing_is_kept_when_the_client_says_store_false(opted_in: Customer, fake) -> None:
    _respond(opted_in, input="hi", store=False)

    assert not StoredResponse.objects.exists()


def test_kept_conversations_expire(opted_in: Customer, fake) -> None:
    _respond(opted_in, input="hi")
    StoredResponse.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    assert purge_expired() == 1
    assert not StoredResponse.objects.exists()
