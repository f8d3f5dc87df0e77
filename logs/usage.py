"""Usage totals for the dashboard overview's figures (today, this month, the last 30 days):
rolled-up days from `DailyUsage`, days not rolled up yet from `RequestLog`, never both for
one day. Scoped like the logs explorer. The charts are `logs/selectors.usage_chart`'s."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Membership
from logs.models import RolledUpDay
from logs.selectors import visible_daily_usage, visible_logs


@dataclass
class Totals:
    requests: int = 0
    errors: int = 0
    tokens: int = 0
    cost: int = 0

    def add(self, requests: int, errors: int, tokens: int, cost: int) -> None:
        self.requests += requests
        self.errors += errors
        self.tokens += tokens
        self.cost += cost

    @property
    def error_percent(self) -> str:
        return f"{100 * self.errors / self.requests:.1f}%" if self.requests else "-"


@dataclass
class Overview:
    today: Totals = field(default_factory=Totals)
    month: Totals = field(default_factory=Totals)
    period: Totals = field(default_factory=Totals)


_SUMS: dict[str, Any] = {
    "n": Count("id"),
    "n_errors": Count("id", filter=Q(status_code__gte=400)),
    "p": Sum("prompt_tokens"),
    "c": Sum("completion_tokens"),
    "cost_sum": Sum("cost"),
}
_ROLLED_SUMS: dict[str, Any] = {
    "n": Sum("requests"),
    "n_errors": Sum("errors"),
    "p": Sum("prompt_tokens"),
    "c": Sum("completion_tokens"),
    "cost_sum": Sum("cost"),
}


def _values(row: dict[str, Any]) -> tuple[int, int, int, int]:
    return (row["n"] or 0, row["n_errors"] or 0, (row["p"] or 0) + (row["c"] or 0),
            row["cost_sum"] or 0)  # fmt: skip


def usage_overview(
    *, membership: Membership, days: int = 30, now: dt.datetime | None = None
) -> Overview:
    """Today's, this month's and the last DAYS days' totals for the caller's scope."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    first = today - dt.timedelta(days=days - 1)
    month_start = today.replace(day=1)
    start_day = min(first, month_start)
    logs = visible_logs(membership=membership)
    rolled = visible_daily_usage(membership=membership)
    rolled_days = set(RolledUpDay.objects.filter(day__gte=start_day).values_list("day", flat=True))
    unrolled = [
        start_day + dt.timedelta(days=i)
        for i in range((today - start_day).days + 1)
        if start_day + dt.timedelta(days=i) not in rolled_days
    ]
    live_since = dt.datetime.combine(min(unrolled), dt.time.min, tzinfo=dt.UTC) if unrolled else now
    live = logs.filter(created_at__gte=live_since)
    unrolled_set = set(unrolled)

    per_day: dict[dt.date, Totals] = defaultdict(Totals)
    for row in rolled.filter(day__gte=start_day).values("day").annotate(**_ROLLED_SUMS).order_by():
        per_day[row["day"]].add(*_values(row))
    for row in (
        live.annotate(d=TruncDate("created_at", tzinfo=dt.UTC))
        .values("d")
        .annotate(**_SUMS)
        .order_by()
    ):
        if row["d"] in unrolled_set:
            per_day[row["d"]].add(*_values(row))

    overview = Overview()
    overview.today = per_day[today]
    for day, totals in per_day.items():
        if day >= month_start:
            overview.month.add(totals.requests, totals.errors, totals.tokens, totals.cost)
        if day >= first:
            overview.period.add(totals.requests, totals.errors, totals.tokens, totals.cost)
    return overview
