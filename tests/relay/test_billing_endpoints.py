"""The billing endpoints OpenAI-compatible dashboards read (ChatGPT-Next-Web and the like)."""

from __future__ import annotations

import httpx
import pytest

from logs.models import RequestLog
from tests.relay.conftest import Customer, wait_for


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_it_reports_what_is_left_and_what_was_used(ready: Customer, prefix: str) -> None:
    ready.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    log = wait_for(lambda: RequestLog.objects.first())
    headers = {"authorization": f"Bearer {ready.secret}"}
    base = ready.relay.url + prefix + "/dashboard/billing"
    sub = httpx.get(base + "/subscription", headers=headers).json()
    usage = httpx.get(base + "/usage", headers=headers).json()
    used_usd = usage["total_usage"] / 100  # cents, as OpenAI answered
    assert used_usd == pytest.approx(log.cost / 1_000_000)
    left = sub["hard_limit_usd"] - used_usd
    assert left == pytest.approx(ready.balance() / 1_000_000)


def test_it_reports_a_key_spend_limit_as_the_hard_limit(ready: Customer) -> None:
    secret = ready.new_key(spend_limit=2_500_000)
    sub = httpx.get(
        ready.base_url + "/dashboard/billing/subscription",
        headers={"authorization": f"Bearer {secret}"},
    ).json()
    assert sub["hard_limit_usd"] == 2.5


def test_it_requires_a_key(ready: Customer) -> None:
    assert httpx.get(ready.base_url + "/dashboard/billing/usage").status_code == 401
