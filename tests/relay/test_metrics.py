"""GET /metrics: Prometheus counters fed by the relay, and who may read them."""

from __future__ import annotations

import re

import httpx
import pytest
from django.test import override_settings

from relay.metrics import render
from tests.fakes.upstream import FakeUpstream
from tests.relay.conftest import Customer, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _scrape(customer: Customer, **headers: str) -> httpx.Response:
    return httpx.get(customer.relay.url + "/metrics", headers=headers)


def _value(text: str, series: str) -> float:
    """The sample for SERIES (name plus exact label set), 0 when absent."""
    match = re.search("^" + re.escape(series) + r" (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_it_counts_requests_tokens_cost_and_latency(ready: Customer, fake: FakeUpstream) -> None:
    ok = 'tokenhub_requests_total{endpoint="chat/completions",model="gpt-4o-mini",'
    before = _scrape(ready).text
    client = ready.openai()
    for _ in range(3):
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert reply.usage is not None

    def counted() -> str | None:
        text = _scrape(ready).text
        lines = [line for line in text.splitlines() if line.startswith(ok)]
        total = sum(float(line.rsplit(" ", 1)[1]) for line in lines)
        before_total = sum(
            float(line.rsplit(" ", 1)[1]) for line in before.splitlines() if line.startswith(ok)
        )
        return text if total - before_total == 3 else None

    text = wait_for(counted)
    tokens = 'tokenhub_tokens_total{model="gpt-4o-mini",kind="completion"}'
    assert _value(text, tokens) - _value(before, tokens) == 3 * reply.usage.completion_tokens
    cost = 'tokenhub_cost_usd_total{model="gpt-4o-mini"}'
    assert _value(text, cost) > _value(before, cost)
    count = 'tokenhub_request_duration_seconds_count{endpoint="chat/completions"}'
    assert _value(text, count) - _value(before, count) == 3
    inf = 'tokenhub_request_duration_seconds_bucket{endpoint="chat/completions",le="+Inf"}'
    assert _value(text, inf) == _value(text, count)


def test_it_counts_upstream_errors_by_channel(ready: Customer, fake: FakeUpstream) -> None:
    fake.fail(status=503, times=1)
    answer = httpx.post(
        ready.base_url + "/chat/completions",
        headers={"authorization": f"Bearer {ready.secret}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert answer.status_code == 503  # the only channel failed; nothing left to try

    def errors() -> float:
        text = _scrape(ready).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("tokenhub_upstream_errors_total{") and 'status="503"' in line
        )

    wait_for(lambda: errors() >= 1)


def test_it_refuses_scrapes_from_elsewhere_without_the_token(ready: Customer) -> None:
    with override_settings(METRICS_ALLOWED_IPS=["10.0.0.0/8"], METRICS_TOKEN="s3cret-token"):
        assert _scrape(ready).status_code == 403
        assert _scrape(ready, authorization="Bearer wrong").status_code == 403
        allowed = _scrape(ready, authorization="Bearer s3cret-token")
        assert allowed.status_code == 200
        assert allowed.headers["content-type"].startswith("text/plain; version=0.0.4")


def test_it_escapes_label_values() -> None:
    text = render({'cost\x1fmodel"with\\odd\nname': 1_500_000})
    assert 'tokenhub_cost_usd_total{model="model\\"with\\\\odd\\nname"} 1.500000' in text
