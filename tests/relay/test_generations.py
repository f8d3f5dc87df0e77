"""`GET /v1/generations/{id}` and OpenRouter's `GET /v1/generation?id=`: a caller reads back
the metadata and cost of its own requests, and nobody else's."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from accounts.models import ApiKey
from accounts.selectors import organization_personal
from accounts.services import key_create, user_create
from logs.models import RequestLog
from money import micros_to_usd
from tests.relay.conftest import Customer, wait_for

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _chat(customer: Customer, **headers: str) -> httpx.Response:
    response = httpx.post(
        customer.base_url + "/chat/completions",
        json=CHAT,
        headers={"authorization": f"Bearer {customer.secret}", **headers},
    )
    assert response.status_code == 200
    return response


def _settled(request_id: str) -> RequestLog:
    log: RequestLog = wait_for(lambda: RequestLog.objects.filter(request_id=request_id).first())
    return log


def _get(customer: Customer, path: str, secret: str | None = None, **headers: str) -> Any:
    auth = {"authorization": f"Bearer {secret or customer.secret}"}
    return httpx.get(customer.relay.url + path, headers={**auth, **headers})


def test_it_returns_a_requests_metadata_and_cost(ready: Customer) -> None:
    answer = _chat(ready)
    request_id = answer.headers["x-request-id"]
    log = _settled(request_id)

    response = _get(ready, f"/v1/generations/{request_id}")

    assert response.status_code == 200
    data = response.json()["data"]
    assert data == {
        "id": request_id,
        "model": "gpt-4o-mini",
        "created_at": log.created_at.isoformat(),
        "endpoint": "chat/completions",
        "stream": False,
        "status_code": 200,
        "tokens_prompt": log.prompt_tokens,
        "tokens_completion": log.completion_tokens,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "total_cost": log.cost / 1_000_000,
        "billed_to": "balance",
        "latency_ms": log.latency_ms,
        "usage_estimated": False,
    }
    assert log.cost > 0 and answer.headers["x-tokenhub-cost"] == micros_to_usd(log.cost)


@pytest.mark.parametrize("path", ["/v1/generations/{id}", "/v1/generation?id={id}"])
def test_it_finds_a_request_by_the_callers_own_request_id(ready: Customer, path: str) -> None:
    answer = _chat(ready, **{"x-request-id": "trace:42.a-b_c"})
    assert answer.headers["x-request-id"] == "trace:42.a-b_c"
    log = wait_for(lambda: RequestLog.objects.filter(client_request_id="trace:42.a-b_c").first())

    response = _get(ready, path.format(id="trace:42.a-b_c"))

    assert response.status_code == 200
    assert response.json()["data"]["id"] == log.request_id
    by_ours = _get(ready, path.format(id=log.request_id))
    assert by_ours.json() == response.json()


def test_a_key_that_hides_costs_still_reads_them_here(ready: Customer) -> None:
    ApiKey.objects.filter(pk=ready.key.pk).update(show_cost=False)  # no key service sets it yet
    answer = _chat(ready)
    assert "x-tokenhub-cost" not in answer.headers
    log = _settled(answer.headers["x-request-id"])

    response = _get(ready, f"/v1/generations/{log.request_id}")

    assert response.json()["data"]["total_cost"] == log.cost / 1_000_000 > 0


def test_another_keys_requests_are_not_found(ready: Customer) -> None:
    _chat(ready, **{"x-request-id": "mine"})
    log = wait_for(lambda: RequestLog.objects.filter(client_request_id="mine").first())
    teammate_key = ready.new_key(name="second")
    stranger = user_create(email="stranger@example.com", password="pw-123456789")
    _, stranger_key = key_create(organization=organization_personal(user=stranger), created_by=None)

    for secret in (teammate_key, stranger_key):
        for ident in ("mine", log.request_id):
            response = _get(ready, f"/v1/generations/{ident}", secret=secret)
            assert response.status_code == 404
            error = response.json()["error"]
            assert error["code"] == "generation_not_found"
            assert "retry shortly" in error["message"]


def test_it_answers_in_the_callers_format(ready: Customer) -> None:
    missing = "/v1/generations/req_" + "0" * 32

    anthropic = _get(ready, missing, **{"anthropic-version": "2023-06-01"})
    gemini = httpx.get(ready.relay.url + missing, headers={"x-goog-api-key": ready.secret})

    assert anthropic.status_code == gemini.status_code == 404
    assert anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "not_found_error"
    assert gemini.json()["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "ident",
    [
        "%E2%98%83",  # unicode
        "x" * 5_000,
        "%ff%fe",  # not UTF-8
        "a%2Fb",
        "a/b/c",
        "'%3B%20drop%20table%20logs_requestlog%3B--",
        "%20",
        "..%2F..%2Fadmin",
        "req_" + "0" * 32,
    ],
)
def test_no_id_a_client_can_send_breaks_it(ready: Customer, ident: str) -> None:
    for path in (f"/v1/generations/{ident}", f"/v1/generation?id={ident}"):
        response = _get(ready, path)

        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "generation_not_found"


def test_a_nul_in_the_id_is_refused_before_anything(ready: Customer) -> None:
    for path in ("/v1/generations/a%00b", "/v1/generation?id=a%00b"):
        response = _get(ready, path)

        assert response.status_code == 400
        assert "NUL" in response.json()["error"]["message"]


def test_it_needs_an_id_and_a_key(ready: Customer) -> None:
    assert _get(ready, "/v1/generation").status_code == 400
    assert _get(ready, "/v1/generation?id=").status_code == 400
    assert httpx.get(ready.relay.url + "/v1/generations/req_x").status_code == 401
