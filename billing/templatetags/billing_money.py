"""`{{ micros|usd }}`: micro-USD as a fixed six-decimal USD string (no floats)."""

from __future__ import annotations

from django import template

from billing.money import micros_to_usd

register = template.Library()


@register.filter
def usd(micros: int) -> str:
    return micros_to_usd(int(micros))
