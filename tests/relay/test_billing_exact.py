"""Every request is charged exactly from the usage the upstream reports."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from accounts.models import ApiKey
from billing.models import Hold, LedgerEntry, PricingGroup
from billing.services import price_set
from logs.models import RequestLog
from tests.fakes.upstream import Usage
from tests.relay.conftest import Customer, wait_for


def _chat(customer: Customer, **kwargs: object) -> Any:  # the SDK client is untyped here
    return customer.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "price me"}], **kwargs
    )


def test_it_charges_each_token_kind_at_its_price_times_the_group_multiplier(
    ready: Customer, fake
) -> None:
    group = PricingGroup.objects.create(name="vip", multiplier=Decimal("1.5"))
    ready.org.pricing_group = group
    ready.org.save()
    price_set(
        model="gpt-4o-mini",
        input_per_1m=2_500_000,
        output_per_1m=10_000_000,
        cache_read_per_1m=1_250_000,
        cache_write_per_1m=3_125_000,
        per_request=1_000,
    )
    fake.configure(
        usage=Usage(
            prompt_tokens=1000,
            completion_tokens=500,
            cached_tokens=200,
            cache_write_tokens=100,
            reasoning_tokens=50,
        )
    )
    before = ready.balance()
    _chat(ready)
    log = wait_for(lambda: RequestLog.objects.filter(status_code=200).first())
    # (700 uncached x 2.5 + 200 x 1.25 + 100 x 3.125 + 500 x 10) per 1M + 0.001 per request,
    # times 1.5, in micro-USD, rounded once.
    expected = round(
        (700 * 2_500_000 + 200 * 1_250_000 + 100 * 3_125_000 + 500 * 10_000_000 + 1_000 * 10**6)
        * 1.5
        / 10**6
    )
    assert expected == 12_469
    assert log.cost == expected
    assert (log.prompt_tokens, log.completion_tokens) == (1000, 500)
    assert (log.cache_read_tokens, log.cache_write_tokens, log.reasoning_tokens) == (200, 100, 50)
    assert ready.balance() == before - expected
    entry = LedgerEntry.objects.get(source_type="request", source_id=log.request_id)
    assert entry.amount == -expected and entry.kind == "charge"
    assert entry.balance_after == ready.balance()
    key = ApiKey.objects.get(pk=ready.key.pk)
    assert key.spent == expected and key.held == 0
    assert not Hold.objects.exists()
    assert ready.wallet().held == 0


def test_it_charges_streams_from_the_final_usage_event(ready: Customer, fake) -> None:
    fake.configure(usage=Usage(prompt_tokens=40, completion_tokens=2_000))
    before = ready.balance()
    list(_chat(ready, stream=True))
    log = wait_for(lambda: RequestLog.objects.filter(status_code=200).first())
    assert (log.prompt_tokens, log.completion_tokens, log.usage_estimated) == (40, 2000, False)
    assert log.cost == round((40 * 150_000 + 2000 * 600_000) / 10**6)
    assert ready.balance() == before - log.cost


def test_it_estimates_and_marks_usage_when_the_upstream_reports_none(ready: Customer, fake) -> None:
    fake.configure(report_usage=False, reply_text="x" * 400)
    _chat(ready)
    log = wait_for(lambda: RequestLog.objects.filter(status_code=200).first())
    assert log.usage_estimated
    assert log.completion_tokens == 100  # 400 bytes at 4 bytes a token
    assert log.prompt_tokens > 0 and log.cost > 0


def test_it_estimates_stream_usage_from_the_text_produced(ready: Customer, fake) -> None:
    fake.configure(report_usage=False, reply_text="y" * 800)
    list(_chat(ready, stream=True))
    log = wait_for(lambda: RequestLog.objects.filter(status_code=200).first())
    assert log.usage_estimated and log.completion_tokens == 200


def test_it_keeps_the_balance_equal_to_the_ledger_after_many_requests(ready: Customer) -> None:
    for _ in range(5):
        _chat(ready)
    wait_for(lambda: RequestLog.objects.count() == 5)
    total = sum(
        LedgerEntry.objects.filter(wallet__organization=ready.org).values_list("amount", flat=True)
    )
    assert ready.balance() == total
