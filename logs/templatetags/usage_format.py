"""Template filters for usage pages: money in micro-USD, query strings that keep filters."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.http import QueryDict

register = template.Library()


@register.filter
def usd(micros: int | None) -> str:
    """Exact to the micro-dollar, at least cents: 10_000_000 -> "$10.00",
    9_999_973 -> "$9.999973", 250_000 -> "$0.25", -1_500 -> "-$0.0015"."""
    value = Decimal(micros or 0) / 1_000_000
    text = f"{abs(value):,.6f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{'-' if value < 0 else ''}${whole}.{fraction.ljust(2, '0')}"


@register.simple_tag
def with_params(params: QueryDict, **changes: object) -> str:
    """The current query string with CHANGES applied ("" removes a parameter)."""
    query = params.copy()
    for name, value in changes.items():
        if value in ("", None):
            query.pop(name, None)
        else:
            query[name] = str(value)
    return "?" + query.urlencode() if query else "?"
