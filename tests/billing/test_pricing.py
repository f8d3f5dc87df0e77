"""Cost arithmetic: every usage component at its own price, cache writes by lifetime."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.pricing import PriceSheet, Usage, cost_micros, micros_of, worst_case_micros
from money import round_micros
from relay.formats import anthropic

# Claude Sonnet list prices (micro-USD per 1M tokens): input 3, 5-minute writes 3.75,
# 1-hour writes 6, reads 0.30, output 15.
SONNET = PriceSheet(
    input_per_1m=3_000_000,
    output_per_1m=15_000_000,
    cache_read_per_1m=300_000,
    cache_write_per_1m=3_750_000,
    cache_write_1h_per_1m=6_000_000,
)


def test_it_prices_one_hour_cache_writes_at_their_own_price() -> None:
    usage = Usage(
        input_tokens=1_000_000 + 200_000 + 100_000 + 50_000,
        output_tokens=10_000,
        cache_read_tokens=200_000,
        cache_write_tokens=150_000,
        cache_write_1h_tokens=50_000,
    )

    cost = cost_micros(usage, SONNET, Decimal(1))

    # 1M uncached x 3 + 0.2M x 0.30 + 0.1M x 3.75 + 0.05M x 6 + 0.01M x 15, in USD.
    assert cost == 3_000_000 + 60_000 + 375_000 + 300_000 + 150_000


def test_one_hour_writes_cost_the_write_price_when_the_sheet_has_none() -> None:
    sheet = PriceSheet(input_per_1m=1_000_000, cache_write_per_1m=2_000_000)
    usage = Usage(input_tokens=1_000, cache_write_tokens=1_000, cache_write_1h_tokens=1_000)

    assert cost_micros(usage, sheet, Decimal(1)) == 2_000


def test_a_hold_prices_every_prompt_token_at_the_dearest_rate() -> None:
    hold = worst_case_micros(
        prompt_tokens=1_000, max_output_tokens=0, price=SONNET, multiplier=Decimal(1)
    )

    assert hold == 6_000


def test_it_reads_anthropics_split_of_cache_writes() -> None:
    usage = anthropic.usage_from(
        {
            "input_tokens": 10,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 30,
            "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
            "output_tokens": 5,
        }
    )

    assert usage is not None
    assert (usage.input_tokens, usage.cache_write_tokens, usage.cache_write_1h_tokens) == (
        140,
        30,
        20,
    )


def test_it_never_counts_more_long_writes_than_writes() -> None:
    usage = anthropic.usage_from(
        {"cache_creation_input_tokens": 5, "cache_creation": {"ephemeral_1h_input_tokens": 9}}
    )

    assert usage is not None
    assert usage.cache_write_1h_tokens == 5


@given(st.integers(min_value=0, max_value=10**24))  # past any real usage x price
def test_the_integer_path_rounds_exactly_as_the_decimal_one(numerator: int) -> None:
    assert micros_of(numerator, Decimal(1)) == round_micros(Decimal(numerator) / 1_000_000)
    assert micros_of(numerator, Decimal("1.0000")) == micros_of(numerator, Decimal(1))
