"""Plans and caps through the relay: who pays, what a refusal says, and caps that hold
across server processes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from django.utils import timezone

from accounts.models import ApiKey, Organization
from billing.models import Hold, Plan, Subscription, UsageBucket
from logs.models import RequestLog
from relay.catalog import catalog
from tests.fakes.upstream import FakeUpstream
from tests.relay import processes
from tests.relay.conftest import Customer, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
two_relays = processes.two_relays  # the fixture


def subscribe(org: Organization, *, models: list[str] | None = None, **quotas: Any) -> Subscription:
    plan = Plan.objects.create(
        name="Coding Pro", slug="coding-pro", price=2000, covered_models=models or [], **quotas
    )
    now = timezone.now()
    found = Subscription.objects.create(
        organization=org, plan=plan, provider="admin",
        current_period_start=now - dt.timedelta(days=1),
        current_period_end=now + dt.timedelta(days=30),
    )  # fmt: skip
    catalog.clear()
    return found


def row(request_id: str) -> RequestLog:
    found: RequestLog = wait_for(lambda: RequestLog.objects.filter(request_id=request_id).first())
    return found


def chat(ready: Customer, model: str = "gpt-4o-mini", **headers: str) -> httpx.Response:
    return httpx.post(
        ready.base_url + "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50},
        headers={"authorization": f"Bearer {ready.secret}", **headers},
    )


def test_a_covered_model_is_paid_by_the_plan_and_the_balance_is_untouched(
    ready: Customer,
) -> None:
    sub = subscribe(ready.org, models=["gpt-4o-*"], window_5h_limit=5_000_000)
    before = ready.balance()
    answer = chat(ready)
    assert answer.status_code == 200
    logged = row(answer.headers["x-request-id"])
    assert logged.subscription_id == sub.pk and logged.cost == 0 and logged.plan_cost > 0
    assert ready.balance() == before
    used = UsageBucket.objects.get(meter=f"s{sub.pk}", span="m")
    assert used.cost == logged.plan_cost and used.requests == 1


def test_a_model_the_plan_does_not_cover_is_paid_from_the_balance(
    ready: Customer, openai_channel: Callable[..., Any]
) -> None:
    subscribe(ready.org, models=["claude-*"], window_5h_limit=5_000_000)
    before = ready.balance()
    answer = chat(ready)
    logged = row(answer.headers["x-request-id"])
    assert logged.subscription_id is None and logged.cost > 0
    assert ready.balance() == before - logged.cost


def test_a_full_window_without_fallback_is_a_429_naming_it_with_retry_after(
    ready: Customer,
) -> None:
    sub = subscribe(ready.org, window_5h_limit=1_000)  # $0.001
    Organization.objects.filter(pk=ready.org.pk).update(plan_fallback=False)
    catalog.clear()
    UsageBucket.objects.create(
        meter=f"s{sub.pk}", span="m", start=timezone.now() - dt.timedelta(hours=1),
        cost=1_000, requests=1,
    )  # fmt: skip
    with pytest.raises(openai.RateLimitError) as refused:
        ready.openai().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
        )
    error = refused.value
    assert error.status_code == 429
    assert isinstance(error.body, dict)
    assert error.body["code"] == "plan_window_exhausted"
    assert "5-hour window" in error.body["message"]
    retry = int(error.response.headers["retry-after"])
    assert 3 * 3600 < retry <= 4 * 3600 + 600  # the bucket leaves the window in ~4 h
    # Anthropic's callers get it in Anthropic's shape.
    answer = httpx.post(
        ready.base_url + "/messages",
        json={"model": "gpt-4o-mini", "max_tokens": 5,
              "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": ready.secret, "anthropic-version": "2023-06-01"},
    )  # fmt: skip
    assert answer.status_code == 429 and answer.headers["retry-after"]
    assert answer.json()["error"]["type"] == "rate_limit_error"
    assert ready.balance() == 10_000_000


def test_a_request_that_could_never_fit_a_cap_is_a_400_not_a_retry_loop(
    ready: Customer,
) -> None:
    ApiKey.objects.filter(pk=ready.key.pk).update(spend_cap_day=10)  # $0.00001 a day
    catalog.clear()
    answer = chat(ready)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "request_exceeds_cap"
    assert "Spend per day for this key" in answer.json()["error"]["message"]


def test_requests_per_day_is_counted_and_named(ready: Customer) -> None:
    Organization.objects.filter(pk=ready.org.pk).update(requests_per_day=2)
    catalog.clear()
    assert chat(ready).status_code == 200
    assert chat(ready).status_code == 200
    wait_for(lambda: RequestLog.objects.count() == 2)
    refused = chat(ready)
    assert refused.status_code == 429
    body = refused.json()["error"]
    assert body["code"] == "request_cap_reached"
    assert body["message"].startswith("Requests per day for your organization is used up")
    tomorrow = (timezone.now() + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0)
    assert (
        abs(int(refused.headers["retry-after"]) - (tomorrow - timezone.now()).total_seconds()) < 5
    )


def test_a_concurrency_cap_holds_across_two_server_processes(
    ready: Customer, fake: FakeUpstream, two_relays: list[str]
) -> None:
    ApiKey.objects.filter(pk=ready.key.pk).update(max_concurrent=1)
    auth = {"authorization": f"Bearer {ready.secret}"}
    body = {"model": "gpt-4o-mini", "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    first, second = two_relays
    for url in two_relays:  # warm: each process has loaded the key and its caps
        assert httpx.post(url + "/chat/completions", json=body, headers=auth).status_code == 200
        wait_for(lambda: not Hold.objects.exists())
    fake.configure(latency=3)  # the first request stays in flight for 3 s
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.post, first + "/chat/completions", json=body, headers=auth,
                           timeout=30)  # fmt: skip
        wait_for(lambda: Hold.objects.count() == 1)  # in flight in the first process
        refused = httpx.post(second + "/chat/completions", json=body, headers=auth)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "concurrency_limit_reached"
        assert refused.headers["retry-after"] == "1"
        assert slow.result().status_code == 200
    # Once it settled, the other process admits again.
    wait_for(lambda: not Hold.objects.exists())
    fake.configure(latency=0)
    assert httpx.post(second + "/chat/completions", json=body, headers=auth).status_code == 200
