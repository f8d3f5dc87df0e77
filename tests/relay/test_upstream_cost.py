"""Every served request records what its upstream charges the operator (`upstream_cost`),
next to its charge, in the same write as its log row: the channel's cost sheet for the
upstream model (its own row over its type's), else the sale price at list, times the
channel's cost multiplier, from the full usage the upstream reported."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import openai
import pytest

from billing.models import UncollectedUsage
from billing.services import price_set
from logs.models import RequestLog
from relay.models import Channel, CostPrice
from tests.fakes.upstream import Usage
from tests.relay.conftest import Customer, wait_for

MODEL = "gpt-4o-mini"


def _chat(customer: Customer, **kwargs: object) -> None:
    customer.openai().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], **kwargs
    )


def _log() -> RequestLog:
    wait_for(lambda: RequestLog.objects.exists())
    return RequestLog.objects.get()


def _cost_price(model: str, **fields: object) -> CostPrice:
    fields.setdefault("channel_type", "openai")
    return CostPrice.objects.create(model=model, **fields)


def test_cost_sheet_times_the_channel_multiplier(
    customer: Customer, fake, openai_channel: Callable[..., Channel]
) -> None:
    channel = openai_channel(model_map={MODEL: "gpt-4o-mini-2024-07-18"})
    Channel.objects.filter(pk=channel.pk).update(cost_multiplier=Decimal("0.8"))
    price_set(model=MODEL, input_per_1m=300_000, output_per_1m=1_200_000)
    # Keyed by the upstream's model name; a row for another name must not be used.
    _cost_price("gpt-4o-mini-2024-07-18", input_per_1m=150_000, output_per_1m=600_000)
    _cost_price(MODEL, input_per_1m=9_000_000, output_per_1m=9_000_000)
    fake.configure(usage=Usage(prompt_tokens=1_000, completion_tokens=2_000))

    _chat(customer)

    log = _log()
    # 1,000 x 0.15 + 2,000 x 0.6 = 1,350 micro-USD at list; 80% of it.
    assert log.upstream_cost == 1_080
    assert log.cost == 1_000 * 300_000 // 1_000_000 + 2_000 * 1_200_000 // 1_000_000


def test_a_channel_row_wins_over_its_types_row_and_cache_prices_apply(
    customer: Customer, fake, openai_channel: Callable[..., Channel]
) -> None:
    channel = openai_channel()
    price_set(model=MODEL, input_per_1m=300_000, output_per_1m=1_200_000)
    _cost_price(MODEL, input_per_1m=150_000, output_per_1m=600_000)
    _cost_price(
        MODEL,
        channel=channel,
        channel_type="",
        input_per_1m=100_000,
        output_per_1m=400_000,
        cache_read_per_1m=10_000,
    )
    fake.configure(usage=Usage(prompt_tokens=10_000, completion_tokens=1_000, cached_tokens=8_000))

    _chat(customer, stream=True, stream_options={"include_usage": True})

    log = _log()
    assert log.cache_read_tokens == 8_000
    # 2,000 uncached x 0.1 + 8,000 cached x 0.01 + 1,000 x 0.4
    assert log.upstream_cost == 200 + 80 + 400


def test_without_a_cost_sheet_the_sale_price_at_list_is_the_cost(ready: Customer, fake) -> None:
    Channel.objects.update(cost_multiplier=Decimal("0.5"))
    fake.configure(usage=Usage(prompt_tokens=1_000, completion_tokens=1_000))

    _chat(ready)

    log = _log()
    list_price = 1_000 * 150_000 // 1_000_000 + 1_000 * 600_000 // 1_000_000  # `priced`
    assert log.cost == list_price
    assert log.upstream_cost == list_price // 2


def test_usage_beyond_the_hold_is_the_operators_cost_in_full(ready: Customer, fake) -> None:
    price_set(model=MODEL, input_per_1m=1_000_000, output_per_1m=100_000_000)
    _cost_price(MODEL, input_per_1m=1_000_000, output_per_1m=50_000_000)
    fake.configure(usage=Usage(prompt_tokens=10, completion_tokens=500_000))

    _chat(ready, max_tokens=1)

    log = _log()
    assert log.cost == log.hold  # capped by the hold
    assert UncollectedUsage.objects.get(reference=log.request_id).amount > 0
    assert log.upstream_cost == 10 + 500_000 * 50  # the upstream bills what it reported


def test_the_channel_that_served_is_the_one_costed(
    customer: Customer, fake, openai_channel: Callable[..., Channel]
) -> None:
    broken = openai_channel(name="broken", api_keys=["sk-bad"], priority=10)
    working = openai_channel(name="working", api_keys=["sk-good"], priority=0)
    price_set(model=MODEL, input_per_1m=300_000, output_per_1m=1_200_000)
    for channel, price in ((broken, 1_000_000), (working, 100_000)):
        _cost_price(MODEL, channel=channel, channel_type="", input_per_1m=price)
    fake.fail(500, key="sk-bad")
    fake.configure(usage=Usage(prompt_tokens=1_000, completion_tokens=0))

    _chat(customer)

    log = _log()
    assert (log.channel_id, log.attempts) == (working.pk, 2)
    assert log.upstream_cost == 100


def test_a_request_no_upstream_served_costs_the_operator_nothing_recorded(
    ready: Customer, fake
) -> None:
    fake.fail(400)

    with pytest.raises(openai.BadRequestError):
        _chat(ready)

    log = _log()
    assert log.status_code == 400
    assert (log.cost, log.upstream_cost) == (0, None)
