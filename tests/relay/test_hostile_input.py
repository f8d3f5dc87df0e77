"""Whatever a client sends: an answer in its format, never a 500 or a hang, always a log row."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from logs.models import RequestLog
from tests.relay.conftest import Customer, wait_for


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/v1/keys"])
def test_a_body_that_never_arrives_is_answered_408_in_time(
    ready: Customer, settings, path: str
) -> None:
    settings.BODY_READ_TIMEOUT = 0.5
    with socket.create_connection(("127.0.0.1", ready.relay.port), timeout=10) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ready.secret}\r\n"
            'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"model":'.encode()
        )
        started = time.monotonic()
        answer = b""
        while chunk := conn.recv(4096):  # until the server closes
            answer += chunk
        waited = time.monotonic() - started

    assert answer.startswith(b"HTTP/1.1 408")
    assert b"request_timeout" in answer
    assert waited < 5


def test_a_model_name_with_a_nul_is_answered_and_logged(ready: Customer, fake) -> None:
    answer = httpx.post(
        ready.base_url + "/chat/completions",
        json={"model": "gpt\u0000x", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {ready.secret}"},
    )

    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "model_not_found"
    log = wait_for(lambda: RequestLog.objects.first())
    assert (log.model, log.status_code) == ("gptx", 404)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": None}, "messages"),
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": 5}, "messages"),
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": []}, "messages"),
        ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": 5}, "prompt"),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": {"a": 1}}, "input"),
        ("/v1/responses", {"model": "gpt-4o-mini", "input": None}, "input"),
    ],
)
def test_a_same_protocol_body_of_the_wrong_shape_is_refused_before_any_hold(
    ready: Customer, fake, path: str, body: dict[str, object], field: str
) -> None:
    answer = httpx.post(
        ready.relay.url + path, json=body, headers={"authorization": f"Bearer {ready.secret}"}
    )

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == field
    assert fake.requests == []
    assert ready.wallet().held == 0


def test_anthropic_and_gemini_callers_get_shape_errors_in_their_format(ready: Customer) -> None:
    anthropic = httpx.post(
        ready.relay.url + "/v1/messages",
        json={"model": "gpt-4o-mini", "max_tokens": 5, "messages": "hi"},
        headers={"x-api-key": ready.secret},
    )
    gemini = httpx.post(
        ready.relay.url + "/v1beta/models/gpt-4o-mini:generateContent",
        json={"contents": 5},
        headers={"x-goog-api-key": ready.secret},
    )

    assert anthropic.status_code == gemini.status_code == 400
    assert anthropic.json()["error"]["type"] == "invalid_request_error"
    assert "'messages'" in anthropic.json()["error"]["message"]
    assert gemini.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "'contents'" in gemini.json()["error"]["message"]


@pytest.mark.parametrize(
    "url",
    ["/v1/videos/%ff%00", "/v1/videos?after=%00", "/v1/models/gpt%00", "/v1beta/models?x=%00"],
)
def test_a_nul_in_the_url_is_a_400_in_the_callers_format(ready: Customer, url: str) -> None:
    answer = httpx.get(ready.relay.url + url, headers={"authorization": f"Bearer {ready.secret}"})

    assert answer.status_code == 400
    assert "NUL" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("url", "status", "gemini"),
    [
        ("/v1", 404, False),
        ("/v1beta/", 404, True),  # Gemini's root: Gemini's error format
        ("/dashboard/billing/subscription/", 200, False),  # a trailing slash is the same call
    ],
)
def test_the_api_roots_answer_in_an_api_format(
    ready: Customer, url: str, status: int, gemini: bool
) -> None:
    answer = httpx.get(ready.relay.url + url, headers={"authorization": f"Bearer {ready.secret}"})

    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/json")
    if gemini:
        assert answer.json()["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("get", "/dashboard/logs/?model=%00", None),
        ("get", "/dashboard/logs/?format=csv&model=%00", None),
        ("get", "/dashboard/media/video_%00/content", None),
        ("post", "/dashboard/org/rename", {"name": "a\u0000b"}),
    ],
)
def test_the_portal_answers_a_nul_with_a_400(
    ready: Customer, method: str, path: str, data: dict[str, str] | None
) -> None:
    from django.test import Client

    client = Client()
    client.force_login(ready.user)

    response = getattr(client, method)(path, data) if data else getattr(client, method)(path)

    assert response.status_code == 400


def test_an_absurd_alert_threshold_is_a_form_error(ready: Customer) -> None:
    from django.test import Client

    from billing.models import LowBalanceAlert

    client = Client()
    client.force_login(ready.user)

    response = client.post("/dashboard/billing/alert/", {"threshold_usd": "1e400"})

    assert response.status_code in (200, 302, 400)
    assert not LowBalanceAlert.objects.exists()
