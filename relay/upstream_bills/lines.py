"""The normalized bill line every parser returns, and the exact money arithmetic they share:
amounts are read as Decimal (never float), summed per UTC day and model, and rounded to
micro-USD once per line."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from money import MAX_USD, MICROS_PER_USD, round_micros

# A row's token or request count beyond this is a broken file, not usage (and the sums of
# MAX_ROWS of them stay far inside a bigint).
MAX_COUNT = 10**12


class BillFormatError(ValueError):
    """The file is not a valid export of the chosen format; the message says where."""


@dataclass(frozen=True)
class BillLine:
    """What the provider billed for one UTC day and model (micro-USD). `model` is empty
    for charges not attributed to a model; counts are None when the format has none."""

    day: dt.date
    model: str
    cost: int
    input_tokens: int | None = None
    output_tokens: int | None = None
    requests: int | None = None


@dataclass(frozen=True)
class RawLine:
    """One row of a file before aggregation: its cost still exact, in USD."""

    day: dt.date
    model: str
    usd: Decimal
    input_tokens: int | None = None
    output_tokens: int | None = None
    requests: int | None = None


def decimal_read(value: object, where: str) -> Decimal:
    """An amount as an exact Decimal; numbers from JSON arrive as Decimal or int already."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise BillFormatError(f"{where}: expected a number, got {type(value).__name__}")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except (ArithmeticError, ValueError):  # InvalidOperation, Overflow
        raise BillFormatError(f"{where}: not a number: {str(value)[:40]!r}") from None
    if not amount.is_finite():
        raise BillFormatError(f"{where}: not a finite number: {str(value)[:40]!r}")
    if abs(amount) > MAX_USD * 100:  # cents for some formats, so USD x 100 at most
        raise BillFormatError(f"{where}: amount out of range: {str(value)[:40]!r}")
    return amount


def count_read(value: object, where: str) -> int | None:
    """A token or request count; empty is None. Exports write some counts as '10.0'."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise BillFormatError(f"{where}: expected a count, got {type(value).__name__}")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except (ArithmeticError, ValueError):
        raise BillFormatError(f"{where}: not a count: {str(value)[:40]!r}") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise BillFormatError(f"{where}: not a whole count: {str(value)[:40]!r}")
    if not 0 <= number <= MAX_COUNT:
        raise BillFormatError(f"{where}: count out of range: {str(value)[:40]!r}")
    return int(number)


def _add(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else a + b


def lines_aggregate(raw: Iterable[RawLine]) -> list[BillLine]:
    """Sum rows per (day, model) exactly, then round each sum to micro-USD once."""
    sums: dict[tuple[dt.date, str], RawLine] = {}
    for line in raw:
        key = (line.day, line.model)
        seen = sums.get(key)
        sums[key] = (
            line
            if seen is None
            else RawLine(
                day=line.day,
                model=line.model,
                usd=seen.usd + line.usd,
                input_tokens=_add(seen.input_tokens, line.input_tokens),
                output_tokens=_add(seen.output_tokens, line.output_tokens),
                requests=_add(seen.requests, line.requests),
            )
        )
    out = []
    for (day, model), s in sorted(sums.items()):
        if abs(s.usd) > MAX_USD:
            raise BillFormatError(f"{day} {model or '(no model)'}: total out of range")
        out.append(
            BillLine(
                day=day,
                model=model,
                cost=round_micros(s.usd * MICROS_PER_USD),
                input_tokens=s.input_tokens,
                output_tokens=s.output_tokens,
                requests=s.requests,
            )
        )
    return out
