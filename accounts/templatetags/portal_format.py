"""The portal's one money format and one date format.

- `{{ micros|money }}`: a customer-facing amount. Whole cents from one dollar up
  ("$1,234.57"); below a dollar, four significant digits ("$0.1535", "$0.000123"), so a
  request's cost is never shown as $0.00. Rounded for display only.
- `{{ micros|money_exact }}`: to the micro-dollar ("$4.999906"), for detail views and
  exports; put it in a `title` next to `money` where both help.
- `{{ datetime|when }}`: "2026-12-03 14:05" in the viewer's time zone (the active one,
  set per request from the profile or the browser), with `{{ datetime|when_zone }}` naming
  that zone where a table shows many times.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django import template
from django.utils import timezone

register = template.Library()
_MICRO = Decimal("0.000001")


def _sign(value: Decimal) -> str:
    return "-" if value < 0 else ""


@register.filter
def money(micros: int | None) -> str:
    value = Decimal(int(micros or 0)) * _MICRO
    size = abs(value)
    if size >= 1 or size == 0:
        return f"{_sign(value)}${size.quantize(Decimal('0.01'), ROUND_HALF_UP):,}"
    # Four significant digits, at most six decimals (the ledger's precision).
    places = min(6, 3 - size.adjusted())
    shown = size.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    text = f"{shown:f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{_sign(value)}${whole}.{fraction.ljust(2, '0')}"


@register.filter
def money_exact(micros: int | None) -> str:
    value = Decimal(int(micros or 0)) * _MICRO
    return f"{_sign(value)}${abs(value):,.6f}"


@register.filter
def when(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")


@register.filter
def when_zone(value: dt.datetime | None) -> str:
    """The active zone's name at VALUE's instant ("UTC", "CET", "+08")."""
    moment = timezone.localtime(value or timezone.now())
    return moment.tzname() or "UTC"
