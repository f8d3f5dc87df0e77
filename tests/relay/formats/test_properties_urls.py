"""Property-based tests of every relay URL: any method, any path under the relay's prefixes
(NUL bytes, invalid UTF-8, dots, colons), any query string and the media and embedding
endpoints' bodies, with a valid key. Never a 5xx; errors in one of the providers' error
formats (the caller's, where its protocol shows); nothing held or charged for a refusal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Hold, LedgerEntry
from billing.services import price_set
from relay.services import channel_create
from tests.relay.conftest import Customer, wait_for
from tests.relay.formats import strategies as s
from tests.relay.formats.test_properties_relay import ERROR_SHAPES

URLS = settings(
    max_examples=s.examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# Where the relay's routes begin; the fuzzed rest of the path follows.
BASES = [
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages",
    "/v1/messages/count_tokens", "/v1/responses", "/v1/models", "/v1/models/",
    "/v1beta/models", "/v1beta/models/", "/v1/images/generations", "/v1/images/edits",
    "/v1/images/", "/v1/videos", "/v1/videos/", "/v1/", "/v1beta/",
    "/dashboard/billing/subscription", "/dashboard/billing/usage",
]  # fmt: skip


def _encoded(raw: bytes | str, safe: str = "") -> str:
    # Dots too: a client would resolve "." and ".." segments before sending.
    return quote(raw, safe=safe).replace(".", "%2E")


SEGMENTS = st.one_of(
    st.binary(max_size=16).map(_encoded),  # any bytes
    st.text(st.characters(codec="utf-8"), max_size=10).map(lambda t: _encoded(t, ":-_")),
    st.sampled_from(
        ["", "%2e%2e", "%00", "%ff", "gpt-4o-mini", "vid_1", "content",
         "gpt-4o-mini:generateContent", "m:streamGenerateContent", "m:countTokens",
         "m:embedContent", ":generateContent", "x" * 300]
    ),
)  # fmt: skip
BODY_MODELS = ["gpt-4o-mini", "text-embedding-3-small", "gpt-image-1", "sora-2"]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, str]]:
    method = draw(st.sampled_from(["GET", "POST", "DELETE", "PUT"]))
    path = draw(st.sampled_from(BASES))
    tail = draw(st.lists(SEGMENTS, max_size=3))
    if tail and path.startswith("/v1"):  # under /dashboard/ is the portal's
        path = path.rstrip("/") + "/" + "/".join(tail)
    pairs = draw(st.lists(st.tuples(SEGMENTS, SEGMENTS), max_size=3))
    query = "&".join(f"{k}={v}" for k, v in pairs)
    body: Any = draw(st.one_of(s.json_objects, s.json_values))
    if isinstance(body, dict) and draw(st.booleans()):
        body["model"] = draw(st.sampled_from(BODY_MODELS))
        body.setdefault("prompt", draw(s.texts))
        body.setdefault("input", draw(s.texts))
    raw = draw(
        st.one_of(
            st.just(orjson.dumps(body)),
            st.binary(max_size=32),
            # Deeper than any JSON parser here accepts.
            st.integers(500, 5000).map(lambda n: b"[" * n + b"]" * n),
        )
    )
    headers = {"content-type": draw(st.sampled_from(["application/json", "text/plain"]))}
    if draw(st.booleans()):
        headers["anthropic-version"] = "2023-06-01"
    return method, path + ("?" + query if query else ""), raw, headers


@pytest.fixture
def served(customer: Customer, fake) -> Iterator[httpx.Client]:
    channel_create(
        name="openai", type="openai", base_url=fake.url + "/v1", api_keys=["sk-openai"],
        models=["gpt-4o-mini", "text-embedding-3-small", "gpt-image-1", "sora-2"],
    )  # fmt: skip
    price_set(model="gpt-4o-mini", input_per_1m=150_000, output_per_1m=600_000)
    price_set(model="text-embedding-3-small", input_per_1m=20_000)
    price_set(model="gpt-image-1", per_image=40_000)
    price_set(model="sora-2", per_second=100_000)
    headers = {"authorization": f"Bearer {customer.secret}"}
    with httpx.Client(base_url=customer.relay.url, timeout=30, headers=headers) as client:
        yield client


def _any_error_format(body: Any) -> bool:
    return any(check(body) for check in ERROR_SHAPES.values())


@URLS
@given(request=requests())
def test_no_url_gets_a_5xx_and_a_refusal_holds_and_charges_nothing(
    served: httpx.Client, request: tuple[str, str, bytes, dict[str, str]]
) -> None:
    method, url, raw, headers = request
    content = raw if method in ("POST", "PUT") else None
    response = served.request(method, url, content=content, headers=headers)
    assert response.status_code < 500, (method, url, response.status_code, response.text[:300])
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        raise AssertionError((method, str(response.url), response.text[:300])) from None
    assert _any_error_format(body), (url, response.text[:300])
    if url.startswith("/v1beta/"):
        assert ERROR_SHAPES["gemini"](body), (url, response.text[:300])
    reference = response.headers.get("x-request-id", "")
    if reference.startswith("req_"):
        wait_for(lambda: not Hold.objects.filter(reference=reference).exists())
        assert not LedgerEntry.objects.filter(source_id=reference).exists()
