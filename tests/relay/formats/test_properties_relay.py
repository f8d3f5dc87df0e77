"""Property-based tests through the real relay (uvicorn, the fake upstream): whatever body a
caller posts to a chat endpoint, with a valid key, the answer is never a 5xx, an error comes
in the caller's own format, and the books balance (the autouse check in tests/conftest.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.services import price_set
from relay.services import channel_create
from tests.relay.conftest import Customer
from tests.relay.formats import strategies as s

# A model per channel protocol: every inbound protocol meets each upstream protocol, once
# passed through and three times translated.
MODELS = {
    "openai": "prop-openai",
    "openai-responses": "prop-responses",
    "anthropic": "prop-anthropic",
    "gemini": "prop-gemini",
}
RELAY = settings(
    max_examples=s.examples(70),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@dataclass
class Endpoint:
    path: str  # {model} for Gemini's
    bodies: st.SearchStrategy[dict[str, Any]]
    # The conversation field and a strategy for a plausible, non-empty one: with a few
    # examples per endpoint, most should get past the first check.
    conversation: tuple[str, st.SearchStrategy[Any]]
    error_shape: str  # openai, anthropic or gemini

    @property
    def key_header(self) -> str:
        """Where this protocol's SDK sends the key (a Gemini header on an Anthropic path
        would make TokenHub answer errors in Gemini's format)."""
        return {"openai": "authorization", "anthropic": "x-api-key"}.get(
            self.error_shape, "x-goog-api-key"
        )


def _openai_error(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}


def _anthropic_error(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return (
        isinstance(body, dict)
        and body.get("type") == "error"
        and isinstance(error, dict)
        and isinstance(error.get("type"), str)
        and isinstance(error.get("message"), str)
    )


def _gemini_error(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return (
        isinstance(error, dict)
        and isinstance(error.get("code"), int)
        and isinstance(error.get("message"), str)
        and isinstance(error.get("status"), str)
    )


ERROR_SHAPES = {"openai": _openai_error, "anthropic": _anthropic_error, "gemini": _gemini_error}
ENDPOINTS = {
    "chat": Endpoint(
        "/v1/chat/completions", s.chat_requests, ("messages", s.chat_messages), "openai"
    ),
    "messages": Endpoint(
        "/v1/messages",
        s.anthropic_requests,
        ("messages", s.anthropic_messages),
        "anthropic",
    ),
    "responses": Endpoint(
        "/v1/responses", s.responses_requests, ("input", s.responses_input), "openai"
    ),
    "gemini": Endpoint(
        "/v1beta/models/{model}:generateContent",
        s.gemini_requests,
        ("contents", s.gemini_contents),
        "gemini",
    ),
    "gemini-stream": Endpoint(
        "/v1beta/models/{model}:streamGenerateContent?alt=sse",
        s.gemini_requests,
        ("contents", s.gemini_contents),
        "gemini",
    ),
    # The estimator's own endpoints: nothing between the body and relay/tokens.py.
    "count-tokens": Endpoint(
        "/v1/messages/count_tokens",
        s.anthropic_requests,
        ("messages", s.anthropic_messages),
        "anthropic",
    ),
    "gemini-count-tokens": Endpoint(
        "/v1beta/models/{model}:countTokens",
        s.gemini_requests,
        ("contents", s.gemini_contents),
        "gemini",
    ),
}
_MOSTLY = st.sampled_from([True] * 9 + [False])


@pytest.fixture
def served(customer: Customer, fake) -> Iterator[httpx.Client]:
    """One channel of each protocol, each serving its own priced model; a client for the
    customer."""
    bases = {"openai": "/v1", "openai-responses": "/v1", "anthropic": "", "gemini": ""}
    for kind, model in MODELS.items():
        channel_create(
            name=kind,
            type=kind,
            base_url=fake.url + bases[kind],
            api_keys=[f"sk-{kind}"],
            models=[model],
        )
        price_set(model=model, input_per_1m=1_000_000, output_per_1m=2_000_000)
    with httpx.Client(base_url=customer.relay.url, timeout=30) as client:
        yield client


@st.composite
def posts(draw: st.DrawFn, endpoint: Endpoint) -> tuple[str, bytes]:
    """(path, raw body): mostly a plausible body naming a served model, now and then any
    JSON, or bytes that are not JSON at all."""
    model = draw(st.sampled_from(sorted(MODELS.values())) if draw(_MOSTLY) else s.texts)
    body = draw(endpoint.bodies if draw(_MOSTLY) else s.json_objects)
    if "{model}" not in endpoint.path and draw(_MOSTLY):
        body["model"] = model
    field, conversation = endpoint.conversation
    if draw(_MOSTLY):
        body[field] = draw(conversation)
    if draw(_MOSTLY):
        raw = orjson.dumps(body)
    else:
        raw = draw(st.one_of(s.json_values.map(orjson.dumps), st.binary(max_size=16)))
    path = endpoint.path.replace("{model}", re.sub(r"[^\w.-]", "", model, flags=re.ASCII) or "m")
    return path, raw


@pytest.mark.parametrize("name", ENDPOINTS)
@RELAY
@given(data=st.data())
def test_no_body_gets_a_5xx_and_errors_come_in_the_callers_format(
    name: str, served: httpx.Client, customer: Customer, data: st.DataObject
) -> None:
    endpoint = ENDPOINTS[name]
    path, raw = data.draw(posts(endpoint))
    secret = customer.secret
    headers = {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        endpoint.key_header: f"Bearer {secret}" if endpoint.error_shape == "openai" else secret,
    }
    response = served.post(path, content=raw, headers=headers)
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert ERROR_SHAPES[endpoint.error_shape](response.json()), response.text[:300]
    elif "text/event-stream" not in response.headers.get("content-type", ""):
        assert isinstance(response.json(), dict)
