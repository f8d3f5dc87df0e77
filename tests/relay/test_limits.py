"""Per-key and per-organization RPM/TPM limits, and key revocation, across processes."""

from __future__ import annotations

import time

import httpx

from accounts.models import ApiKey
from accounts.services import key_set_status
from logs.models import RequestLog
from tests.fakes.upstream import Usage
from tests.relay import processes
from tests.relay.conftest import Customer, wait_for

two_relays = processes.two_relays  # the fixture
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _post(base_url: str, secret: str) -> httpx.Response:
    return httpx.post(
        base_url + "/chat/completions",
        json=CHAT,
        headers={"authorization": f"Bearer {secret}"},
        timeout=30,
    )


def test_it_limits_requests_per_minute_per_key(ready: Customer) -> None:
    secret = ready.new_key(rpm_limit=2)
    assert [_post(ready.base_url, secret).status_code for _ in range(2)] == [200, 200]
    refused = _post(ready.base_url, secret)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert _post(ready.base_url, ready.secret).status_code == 200  # other keys unaffected


def test_it_limits_tokens_per_minute_per_key_with_the_metered_count(ready: Customer, fake) -> None:
    fake.configure(usage=Usage(prompt_tokens=10, completion_tokens=80))
    secret = ready.new_key(tpm_limit=150)
    assert _post(ready.base_url, secret).status_code == 200
    assert _post(ready.base_url, secret).status_code == 200
    wait_for(lambda: RequestLog.objects.count() == 2)
    # 180 metered tokens are counted (over the limit of 150): the next one is refused.
    assert _post(ready.base_url, secret).status_code == 429


def test_it_limits_requests_per_minute_per_organization(ready: Customer) -> None:
    ready.org.rpm_limit = 3
    ready.org.save()
    a, b = ready.new_key(), ready.new_key()
    statuses = [_post(ready.base_url, s).status_code for s in (a, b, a, b)]
    assert statuses == [200, 200, 200, 429]


def test_it_stops_a_revoked_key_within_a_second(ready: Customer) -> None:
    assert _post(ready.base_url, ready.secret).status_code == 200
    key_set_status(key=ApiKey.objects.get(pk=ready.key.pk), status=ApiKey.Status.REVOKED)
    revoked_at = time.monotonic()
    wait_for(lambda: _post(ready.base_url, ready.secret).status_code == 401, timeout=3)
    assert time.monotonic() - revoked_at < 1.0


def test_it_enforces_rpm_across_two_server_processes_sharing_redis(
    ready: Customer, two_relays: list[str]
) -> None:
    secret = ready.new_key(rpm_limit=3)
    first, second = two_relays
    statuses = [_post(url, secret).status_code for url in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]
    wait_for(lambda: RequestLog.objects.count() == 4, timeout=10)


def test_it_enforces_tpm_across_two_server_processes_sharing_redis(
    ready: Customer, fake, two_relays: list[str]
) -> None:
    fake.configure(usage=Usage(prompt_tokens=10, completion_tokens=90))
    secret = ready.new_key(tpm_limit=150)
    first, second = two_relays
    assert _post(first, secret).status_code == 200
    assert _post(second, secret).status_code == 200
    wait_for(lambda: RequestLog.objects.count() == 2, timeout=10)
    assert _post(first, secret).status_code == 429
    assert _post(second, secret).status_code == 429
