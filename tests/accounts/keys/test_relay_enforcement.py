"""Keys made and changed through /api/v1/keys, used through the relay: every limit holds,
and rotation, revocation, disabling and edits take effect on the very next request."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import httpx
import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey
from logs.models import RequestLog
from tests.fakes.upstream import Usage
from tests.relay.conftest import Customer, wait_for

pytestmark = [pytest.mark.embedded]

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def api(ready: Customer) -> Client:
    client = Client()
    client.force_login(ready.user)
    return client


def _create(api: Client, **settings: Any) -> tuple[int, str]:
    response = api.post("/api/v1/keys", settings, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()["id"], response.json()["secret"]


def _patch(api: Client, key_id: int, **changes: Any) -> None:
    response = api.patch(f"/api/v1/keys/{key_id}", changes, content_type="application/json")
    assert response.status_code == 200, response.content


def _chat(ready: Customer, secret: str, model: str = "gpt-4o-mini") -> httpx.Response:
    return httpx.post(
        ready.base_url + "/chat/completions",
        json={**CHAT, "model": model},
        headers={"authorization": f"Bearer {secret}"},
        timeout=30,
    )


def _embed(ready: Customer, secret: str) -> httpx.Response:
    return httpx.post(
        ready.base_url + "/embeddings",
        json={"model": "text-embedding-3-small", "input": "hi"},
        headers={"authorization": f"Bearer {secret}"},
        timeout=30,
    )


def test_it_honours_a_wildcard_model_pattern(ready: Customer, api: Client) -> None:
    _, secret = _create(api, allowed_models=["gpt-4o*"])

    assert _chat(ready, secret).status_code == 200
    refused = _embed(ready, secret)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"


def test_it_honours_ip_networks_and_their_change_at_once(ready: Customer, api: Client) -> None:
    key_id, secret = _create(api, allowed_ips=["127.0.0.0/8"])
    assert _chat(ready, secret).status_code == 200

    _patch(api, key_id, allowed_ips=["10.0.0.0/8", "2001:db8::/32"])

    refused = _chat(ready, secret)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "ip_not_allowed"


def test_it_stops_a_key_at_its_total_spend_limit(ready: Customer, api: Client) -> None:
    key_id, secret = _create(api)
    assert _chat(ready, secret).status_code == 200
    wait_for(lambda: ApiKey.objects.get(pk=key_id).spent > 0)
    spent = ApiKey.objects.get(pk=key_id).spent

    _patch(api, key_id, spend_limit=spent)

    refused = _chat(ready, secret)
    assert refused.status_code == 402
    assert "spend limit" in refused.json()["error"]["message"]
    _patch(api, key_id, spend_limit=spent + 10_000_000)
    assert _chat(ready, secret).status_code == 200


def test_it_stops_a_key_at_its_monthly_limit_and_starts_over_next_month(
    ready: Customer, api: Client
) -> None:
    key_id, secret = _create(api, spend_limit=5_000, spend_limit_period="month")
    this_month = timezone.now().date().replace(day=1)
    ApiKey.objects.filter(pk=key_id).update(period_spent=5_000, period_start=this_month)
    # (DB edits above are seen once the key's cache entry is reloaded: it was never cached.)
    assert _chat(ready, secret).status_code == 402

    last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    ApiKey.objects.filter(pk=key_id).update(period_start=last_month)

    assert _chat(ready, secret).status_code == 200
    key = ApiKey.objects.get(pk=key_id)
    assert key.period_start == this_month


def test_it_limits_requests_per_minute(ready: Customer, api: Client) -> None:
    _, secret = _create(api, rpm_limit=2)

    statuses = [_chat(ready, secret).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]


def test_it_limits_tokens_per_minute(ready: Customer, api: Client, fake: Any) -> None:
    fake.configure(usage=Usage(prompt_tokens=10, completion_tokens=90))
    _, secret = _create(api, tpm_limit=150)

    assert _chat(ready, secret).status_code == 200
    assert _chat(ready, secret).status_code == 200
    wait_for(lambda: RequestLog.objects.count() == 2)
    refused = _chat(ready, secret)
    assert refused.status_code == 429
    assert "tokens per minute" in refused.json()["error"]["message"]


def test_it_refuses_an_expired_key(ready: Customer, api: Client) -> None:
    key_id, secret = _create(api, expires_at=(timezone.now() + dt.timedelta(hours=1)).isoformat())
    # Time passes (the API refuses a past expiry, so the clock is moved in the database).
    ApiKey.objects.filter(pk=key_id).update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    refused = _chat(ready, secret)

    assert refused.status_code == 401
    assert "expired" in refused.json()["error"]["message"]


def test_it_disables_and_enables_a_key_at_once(ready: Customer, api: Client) -> None:
    key_id, secret = _create(api)
    assert _chat(ready, secret).status_code == 200  # now cached by the relay

    _patch(api, key_id, status="disabled")
    assert _chat(ready, secret).status_code == 401

    _patch(api, key_id, status="active")
    assert _chat(ready, secret).status_code == 200


def test_a_rotated_keys_old_secret_stops_at_once(ready: Customer, api: Client) -> None:
    key_id, old = _create(api)
    assert _chat(ready, old).status_code == 200  # now cached by the relay

    rotated = api.post(f"/api/v1/keys/{key_id}/rotate")

    assert _chat(ready, old).status_code == 401
    assert _chat(ready, rotated.json()["secret"]).status_code == 200


def test_a_deleted_key_stops_at_once(ready: Customer, api: Client) -> None:
    key_id, secret = _create(api)
    assert _chat(ready, secret).status_code == 200

    assert api.delete(f"/api/v1/keys/{key_id}").status_code == 204

    assert _chat(ready, secret).status_code == 401


def _delete_under_traffic(api: Client, bases: list[str]) -> None:
    """20 clients loop on one key, spread over BASES, while it is deleted: the delete
    succeeds, every request started after its answer is refused, and the requests in
    flight settle."""
    key_id, secret = _create(api)
    done: list[tuple[float, int]] = []
    stop = threading.Event()

    def client(base: str) -> None:
        while not stop.is_set():
            started = time.monotonic()
            status = httpx.post(
                base + "/chat/completions",
                json=CHAT,
                headers={"authorization": f"Bearer {secret}"},
                timeout=30,
            ).status_code
            done.append((started, status))

    threads = [threading.Thread(target=client, args=(bases[n % len(bases)],)) for n in range(20)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: sum(status == 200 for _, status in done) >= 20, timeout=60)
        assert api.delete(f"/api/v1/keys/{key_id}").status_code == 204
        deleted = time.monotonic()
        wait_for(lambda: sum(started > deleted for started, _ in done) >= 40, timeout=60)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    after = {status for started, status in done if started > deleted}
    assert after == {401}
    assert {status for _, status in done} <= {200, 401}
    served = sum(status == 200 for _, status in done)
    wait_for(lambda: RequestLog.objects.filter(status_code=200).count() == served, timeout=30)


def test_deleting_a_key_under_traffic_answers_204_and_stops_the_key(
    ready: Customer, api: Client
) -> None:
    _delete_under_traffic(api, [ready.base_url])


def test_deleting_a_key_under_traffic_stops_it_in_every_server_process(
    ready: Customer, api: Client, two_relays: list[str]
) -> None:
    _delete_under_traffic(api, two_relays)


def test_a_rotation_reaches_every_server_process_at_once(
    ready: Customer, api: Client, two_relays: list[str]
) -> None:
    key_id, old = _create(api)

    def call(base: str, secret: str) -> int:
        return httpx.post(
            base + "/chat/completions",
            json=CHAT,
            headers={"authorization": f"Bearer {secret}"},
            timeout=30,
        ).status_code

    assert [call(url, old) for url in two_relays] == [200, 200]  # cached in both processes

    new = api.post(f"/api/v1/keys/{key_id}/rotate").json()["secret"]

    assert [call(url, old) for url in two_relays] == [401, 401]
    assert [call(url, new) for url in two_relays] == [200, 200]
    wait_for(lambda: RequestLog.objects.count() == 4, timeout=10)
