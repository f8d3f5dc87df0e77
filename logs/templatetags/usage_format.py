"""Template filters for usage pages: money in micro-USD, query strings that keep filters."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.http import QueryDict

register = template.Library()


@register.filter
def usd(micros: int | None) -> str:
    """1234567 -> "$1.2346"; small amounts keep enough digits to be seen."""
    if not micros:
        return "$0"
    value = Decimal(micros) / 1_000_000
    places = 4 if abs(value) >= Decimal("0.01") else 6
    return f"${value:,.{places}f}"


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
