"""Argument parsers shared by the operator's management commands (accounts, billing, relay)."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import CommandError
from django.utils.dateparse import parse_datetime

from accounts.models import User
from accounts.selectors import user_by_email
from money import InvalidAmount, usd_to_micros


def user_or_fail(email: str) -> User:
    try:
        return user_by_email(email=email)
    except User.DoesNotExist:
        raise CommandError(f"no user with email {email}") from None


def usd_arg(value: str, name: str) -> int:
    try:
        return usd_to_micros(value)
    except InvalidAmount as exc:
        raise CommandError(f"{name}: {exc}") from None


def csv_arg(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def datetime_arg(value: str, name: str) -> dt.datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise CommandError(f"{name}: not an ISO 8601 date-time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed
