"""Every failure gets an OpenAI-shaped error with the right status, and no upstream call
when the request is refused before routing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import openai
import pytest
from django.utils import timezone

from billing.models import Hold
from logs.models import RequestLog
from tests.conftest import balance_set
from tests.relay.conftest import Customer, wait_for

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _post(customer: Customer, body: object = None, *, secret: str | None = None, **kw):
    headers = {"authorization": f"Bearer {secret or customer.secret}", **kw.pop("headers", {})}
    if body is not None and "content" not in kw:
        kw["json"] = body
    return httpx.post(customer.base_url + "/chat/completions", headers=headers, timeout=30, **kw)


def _error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_it_rejects_malformed_json_with_400(ready: Customer, fake) -> None:
    response = _post(ready, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "JSON" in _error(response)["message"]
    assert fake.requests == []


def test_it_rejects_a_missing_model_with_400(ready: Customer) -> None:
    response = _post(ready, {"messages": []})
    assert response.status_code == 400
    assert _error(response)["param"] == "model"


def test_it_rejects_an_unknown_model_with_404(ready: Customer) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        ready.openai().chat.completions.create(model="gpt-unknown", messages=[])
    body = exc.value.body
    assert isinstance(body, dict) and body["code"] == "model_not_found"


def test_it_rejects_a_bad_key_with_401(ready: Customer, fake) -> None:
    for secret in ("sk-th-" + "x" * 40, "nonsense"):
        with pytest.raises(openai.AuthenticationError):
            ready.openai(secret).chat.completions.create(**CHAT)
    response = httpx.post(ready.base_url + "/chat/completions", json=CHAT)
    assert response.status_code == 401
    assert _error(response)["code"] == "invalid_api_key"
    assert fake.requests == []


@pytest.mark.parametrize(
    "header",
    [
        lambda s: {"authorization": f"Bearer {s}"},
        lambda s: {"x-api-key": s},
        lambda s: {"x-goog-api-key": s},
    ],
)
def test_it_accepts_the_key_from_every_header_sdks_use(ready: Customer, header) -> None:
    response = httpx.post(
        ready.base_url + "/chat/completions", json=CHAT, headers=header(ready.secret)
    )
    assert response.status_code == 200


def test_it_accepts_the_key_from_the_query_string(ready: Customer) -> None:
    response = httpx.post(
        ready.base_url + "/chat/completions", json=CHAT, params={"key": ready.secret}
    )
    assert response.status_code == 200


def test_it_rejects_an_expired_key_with_401(ready: Customer) -> None:
    secret = ready.new_key(expires_at=timezone.now() + dt.timedelta(seconds=60))
    from accounts.models import ApiKey

    ApiKey.objects.filter(expires_at__isnull=False).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    response = _post(ready, CHAT, secret=secret)
    assert response.status_code == 401
    assert "expired" in _error(response)["message"]


def test_it_rejects_a_disallowed_ip_with_403_and_allows_a_listed_one(ready: Customer) -> None:
    denied = ready.new_key(allowed_ips=["10.0.0.0/8", "2001:db8::/32"])
    response = _post(ready, CHAT, secret=denied)
    assert response.status_code == 403
    assert _error(response)["code"] == "ip_not_allowed"
    allowed = ready.new_key(allowed_ips=["127.0.0.0/8"])
    assert _post(ready, CHAT, secret=allowed).status_code == 200


def test_it_trusts_x_forwarded_for_only_from_trusted_proxies(ready: Customer, settings) -> None:
    secret = ready.new_key(allowed_ips=["203.0.113.7/32"])
    spoofed = {"x-forwarded-for": "203.0.113.7"}
    assert _post(ready, CHAT, secret=secret, headers=spoofed).status_code == 403
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    assert _post(ready, CHAT, secret=secret, headers=spoofed).status_code == 200


def test_it_rejects_a_model_outside_the_key_scope_with_403(ready: Customer, fake) -> None:
    secret = ready.new_key(allowed_models=["text-embedding-*"])
    response = _post(ready, CHAT, secret=secret)
    assert response.status_code == 403
    assert _error(response)["code"] == "model_not_allowed"
    assert fake.requests == []


def test_it_refuses_with_402_when_the_balance_cannot_cover_the_hold(ready: Customer, fake) -> None:
    balance_set(ready.org, 1)
    with pytest.raises(openai.APIStatusError) as exc:
        ready.openai().chat.completions.create(**CHAT)
    assert exc.value.status_code == 402
    body = exc.value.body
    assert isinstance(body, dict) and body["code"] == "insufficient_quota"
    assert fake.requests == []
    assert not Hold.objects.exists()


def test_it_refuses_with_402_when_the_key_spend_limit_is_reached(ready: Customer, fake) -> None:
    secret = ready.new_key(spend_limit=1)
    response = _post(ready, CHAT, secret=secret)
    assert response.status_code == 402
    assert "spend limit" in _error(response)["message"]
    assert fake.requests == []


def test_it_rejects_a_body_over_the_size_limit_with_413(ready: Customer, settings) -> None:
    settings.RELAY_MAX_BODY_MB = 1
    big = {**CHAT, "messages": [{"role": "user", "content": "a" * (1024 * 1024 + 10)}]}
    response = _post(ready, big)
    assert response.status_code == 413


def test_it_answers_504_when_the_upstream_does_not_answer_in_time(
    ready: Customer, fake, settings
) -> None:
    settings.RELAY_FIRST_BYTE_TIMEOUT = 0.3
    fake.fail(mode="stall")
    response = _post(ready, CHAT)
    assert response.status_code == 504
    assert _error(response)["code"] == "upstream_timeout"
    fake.wait_until(lambda rs: rs[-1].outcome == "cancelled")  # the relay hung up
    log = wait_for(lambda: RequestLog.objects.first())
    assert log.status_code == 504 and log.cost == 0
    assert not Hold.objects.exists()


def test_it_ends_a_broken_stream_with_an_error_event(ready: Customer, fake) -> None:
    fake.configure(stream_chunks=6)
    fake.fail(mode="midstream", after_chunks=2)
    with httpx.stream(
        "POST",
        ready.base_url + "/chat/completions",
        json={**CHAT, "stream": True},
        headers={"authorization": f"Bearer {ready.secret}"},
    ) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data:")]
    assert '"error"' in events[-1] and "interrupted" in events[-1]
    log = wait_for(lambda: RequestLog.objects.first())
    assert log.status_code == 502 and log.usage_estimated and log.cost > 0


def test_it_echoes_the_client_request_id_or_makes_one(ready: Customer) -> None:
    mine = _post(ready, CHAT, headers={"x-request-id": "client-42"})
    assert mine.headers["x-request-id"] == "client-42"
    ours = _post(ready, CHAT)
    assert ours.headers["x-request-id"].startswith("req_")
    bad = _post(ready, {"messages": []}, headers={"x-request-id": "client-43"})
    assert bad.headers["x-request-id"] == "client-43"
    log = wait_for(lambda: RequestLog.objects.filter(client_request_id="client-42").first())
    assert log.request_id.startswith("req_")


def test_it_answers_unknown_paths_with_an_openai_404(ready: Customer) -> None:
    response = httpx.get(ready.base_url + "/nothing-here")
    assert response.status_code == 404
    assert _error(response)["code"] == "unknown_url"


def test_an_internal_error_is_logged_with_its_stack_but_never_its_message() -> None:
    from relay.errors import stack_of

    def parse(body: str) -> None:
        raise ValueError(f"cannot read {body}")

    try:
        parse("SECRET-PROMPT")
    except ValueError as exc:
        logged = stack_of(exc)

    assert logged.startswith("ValueError at relay/test_errors.py:")
    assert logged.endswith(" parse")
    assert "SECRET" not in logged
