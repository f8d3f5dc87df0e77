"""Cost of a request from its metered usage: integer micro-USD, rounded once."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from money import round_micros

_PER_MILLION = 1_000_000
_ONE = Decimal(1)


@dataclass(slots=True)
class Usage:
    """What one request consumed. input_tokens counts every prompt token, cached or not."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0  # all cache writes, whatever their lifetime
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens kept for an hour
    reasoning_tokens: int = 0
    images: int = 0
    seconds: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class PriceSheet:
    """A model's prices: micro-USD per 1M tokens, or per request / image / second."""

    input_per_1m: int = 0
    output_per_1m: int = 0
    cache_read_per_1m: int | None = None
    cache_write_per_1m: int | None = None  # 5-minute (or only) cache writes
    cache_write_1h_per_1m: int | None = None  # 1-hour cache writes (Anthropic)
    per_request: int = 0
    per_image: int = 0
    per_second: int = 0
    max_output_tokens: int | None = None

    @property
    def dearest_input_per_1m(self) -> int:
        """The highest price any prompt token can cost (sizes holds)."""
        return max(
            self.input_per_1m,
            self.cache_read_per_1m or 0,
            self.cache_write_per_1m or 0,
            self.cache_write_1h_per_1m or 0,
        )


def cost_micros(usage: Usage, price: PriceSheet, multiplier: Decimal) -> int:
    """Exact cost: every component at its own price, times the group multiplier.

    Cache reads and writes default to the input price when no own price is set; 1-hour
    writes default to the (5-minute) write price.
    """
    cache_read_price = (
        price.input_per_1m if price.cache_read_per_1m is None else price.cache_read_per_1m
    )
    cache_write_price = (
        price.input_per_1m if price.cache_write_per_1m is None else price.cache_write_per_1m
    )
    cache_write_1h_price = (
        cache_write_price if price.cache_write_1h_per_1m is None else price.cache_write_1h_per_1m
    )
    uncached = max(0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens)
    long_writes = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
    numerator = (
        uncached * price.input_per_1m
        + usage.cache_read_tokens * cache_read_price
        + (usage.cache_write_tokens - long_writes) * cache_write_price
        + long_writes * cache_write_1h_price
        + usage.output_tokens * price.output_per_1m
        + (price.per_request + usage.images * price.per_image + usage.seconds * price.per_second)
        * _PER_MILLION
    )
    return micros_of(numerator, multiplier)


def micros_of(numerator: int, multiplier: Decimal) -> int:
    """NUMERATOR (micro-USD x 1M) times MULTIPLIER, rounded once, half up."""
    if multiplier == _ONE and numerator >= 0:
        # The same rounding in integers: no Decimal on the common path (about 6x faster).
        return (numerator + _PER_MILLION // 2) // _PER_MILLION
    return round_micros(Decimal(numerator) * multiplier / _PER_MILLION)


def worst_case_micros(
    *, prompt_tokens: int, max_output_tokens: int, price: PriceSheet, multiplier: Decimal
) -> int:
    """The hold for a request: every prompt token at the dearest input rate, all output used."""
    sheet = PriceSheet(
        input_per_1m=price.dearest_input_per_1m,
        output_per_1m=price.output_per_1m,
        per_request=price.per_request,
    )
    usage = Usage(input_tokens=prompt_tokens, output_tokens=max_output_tokens)
    return cost_micros(usage, sheet, multiplier)
