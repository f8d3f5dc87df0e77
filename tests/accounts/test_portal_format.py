"""The portal's one money format and date format."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from accounts.templatetags.portal_format import money, money_exact, when, when_zone

pytestmark = pytest.mark.embedded


@pytest.mark.parametrize(
    ("micros", "shown", "exact"),
    [
        (0, "$0.00", "$0.000000"),
        (10_000_000, "$10.00", "$10.000000"),
        (4_999_906, "$5.00", "$4.999906"),  # a balance: cents
        (150_000, "$0.15", "$0.150000"),
        (153_456, "$0.1535", "$0.153456"),  # a cost: four significant digits
        (123, "$0.000123", "$0.000123"),  # never $0.00 for something that cost something
        (-1_500, "-$0.0015", "-$0.001500"),
        (1_234_567_890, "$1,234.57", "$1,234.567890"),
    ],
)
def test_money(micros: int, shown: str, exact: str) -> None:
    assert money(micros) == shown
    assert money_exact(micros) == exact


def test_when_is_in_the_viewers_time_zone() -> None:
    moment = dt.datetime(2026, 12, 3, 14, 5, 59, tzinfo=dt.UTC)
    assert when(moment) == "2026-12-03 14:05"
    with timezone.override(zoneinfo.ZoneInfo("Asia/Shanghai")):
        assert when(moment) == "2026-12-03 22:05"
        assert when_zone(moment) == "CST"
    assert when(None) == ""
