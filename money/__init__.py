"""Money in integer micro-USD: conversions to and from human decimal amounts. No floats anywhere.

Pure (no Django), so every layer may use it: the bottom of the app layers."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICROS_PER_USD = 1_000_000


class InvalidAmount(ValueError):
    pass


# Far beyond any real amount, and far inside a bigint (and its sums) in micro-USD.
MAX_USD = 10**9


def usd_to_micros(value: str | Decimal | int) -> int:
    """Parse a USD amount exactly; more than six decimals is an error, not a rounding."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidAmount(f"not a number: {value!r}") from None
    if not amount.is_finite():
        raise InvalidAmount(f"not a finite amount: {value!r}")
    if abs(amount) > MAX_USD:
        raise InvalidAmount(f"more than {MAX_USD:,} USD: {str(value)[:40]!r}")
    micros = amount * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise InvalidAmount(f"more precision than 0.000001 USD: {value!r}")
    return int(micros)


def micros_to_usd(micros: int) -> str:
    """Format as a fixed six-decimal string, e.g. 12500000 -> '12.500000'."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_USD)
    return f"{sign}{whole}.{frac:06d}"


def round_micros(value: Decimal) -> int:
    """Round a fractional micro-USD amount once, half up (used once per request)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
