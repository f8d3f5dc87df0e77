"""The operator's margins: what customers paid against what the upstreams cost, per UTC day,
model, channel or organization (the admin's /admin/margins/, the staff API /api/v1/margins,
their CSV), and per channel over the last day (the margin alert, relay/margin_alerts.py).

Definitions, per request:

- **revenue** = `cost` (charged to the balance) + `plan_cost` (usage drawn from a plan,
  valued at the sale price sheet);
- **upstream cost** = `RequestLog.upstream_cost`, what the channel charges the operator.
  NULL means not recorded: a billed request without it is counted as **uncosted**
  (`logs.models.UNCOSTED`; the nightly reconcile reports them too) and adds nothing to the
  upstream cost, so a group with uncosted requests shows them beside a margin that is an
  upper bound, never silently 0 cost. Requests no upstream served cost nothing;
- **margin** = revenue - upstream cost; **margin %** = margin / revenue (none without
  revenue);
- **uncollected** = `billing.UncollectedUsage.amount`: usage an upstream reported beyond
  the request's hold, which the operator paid and the customer was not charged for. It is
  already inside the upstream cost, so it is shown for information, never subtracted again.

Days already rolled up come from `logs.DailyUsage`, the others from `logs.RequestLog`, never
both for one day (as logs/usage.py does). Uncollected usage is dated by its settlement, not
by the request's start.

Channels are ids here (billing sits below relay); callers resolve their names.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import UncollectedUsage, Wallet
from logs.csv_export import spreadsheet_safe as _spreadsheet_safe
from logs.models import UNCOSTED, DailyUsage, RequestLog, RolledUpDay
from logs.selectors import MAX_CUSTOM_DAYS
from money import micros_to_usd

GROUPS = ("day", "model", "channel", "organization")
DEFAULT_DAYS = 30
MAX_DAYS = MAX_CUSTOM_DAYS
# Far enough from date.min and date.max that a range's bounds never overflow.
EARLIEST_DAY = dt.date(1970, 1, 1)
LATEST_DAY = dt.date(9998, 12, 31)

# A day, a model name, a channel or organization id; None: no channel.
GroupKey = dt.date | str | int | None

# Requests whose upstream cost is not known although it should be: charged, or served by
# a channel. A request refused before routing (no channel, nothing charged) has none.
_UNCOSTED = UNCOSTED
_LOG_SUMS: dict[str, Any] = {
    "n": Count("id"),
    "c": Sum("cost"),
    "p": Sum("plan_cost"),
    "u": Sum("upstream_cost"),
    "x": Count("id", filter=_UNCOSTED),
}
_ROLLED_SUMS: dict[str, Any] = {
    "n": Sum("requests"),
    "c": Sum("cost"),
    "p": Sum("plan_cost"),
    "u": Sum("upstream_cost"),
    "x": Sum("uncosted_requests"),
}
_COLUMN = {
    "day": "day",
    "model": "model",
    "channel": "channel_id",
    "organization": "organization_id",
}


class MarginQueryError(ValueError):
    """A parameter the caller must fix: FIELD names it, the message says how."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class MarginQuery:
    first: dt.date  # UTC days, both included
    last: dt.date
    group: str = "day"

    @property
    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=i) for i in range((self.last - self.first).days + 1)]


@dataclass
class MarginRow:
    """One group's figures, micro-USD; also the totals (key None)."""

    key: GroupKey = None
    requests: int = 0
    cost: int = 0  # charged to balances
    plan_cost: int = 0  # drawn from plans
    upstream_cost: int = 0  # recorded upstream cost only
    uncosted: int = 0  # requests without a recorded upstream cost
    uncollected: int = 0  # informational: already inside upstream_cost

    def add(self, other: MarginRow) -> None:
        self.requests += other.requests
        self.cost += other.cost
        self.plan_cost += other.plan_cost
        self.upstream_cost += other.upstream_cost
        self.uncosted += other.uncosted
        self.uncollected += other.uncollected

    @property
    def revenue(self) -> int:
        return self.cost + self.plan_cost

    @property
    def margin(self) -> int:
        return self.revenue - self.upstream_cost

    @property
    def margin_percent(self) -> Decimal | None:
        """Margin in percent of revenue, to one decimal; None without revenue."""
        if not self.revenue:
            return None
        exact = Decimal(self.margin) * 100 / Decimal(self.revenue)
        return exact.quantize(Decimal("0.1"), ROUND_HALF_UP)

    @property
    def negative(self) -> bool:
        return self.margin < 0


@dataclass
class MarginReport:
    query: MarginQuery
    rows: list[MarginRow]
    totals: MarginRow
    rolled_days: list[dt.date] = field(default_factory=list)  # from DailyUsage: no uncosted


# --- Parameters ------------------------------------------------------------------------


def _day(params: Mapping[str, str], name: str) -> dt.date | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise MarginQueryError(
            name, _("%(name)s is not a date (YYYY-MM-DD).") % {"name": name}
        ) from None
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise MarginQueryError(
            name,
            _("%(name)s must be a day from %(earliest)s to %(latest)s.")
            % {"name": name, "earliest": EARLIEST_DAY, "latest": LATEST_DAY},
        )
    return day


def margin_query_from(params: Mapping[str, str], *, today: dt.date | None = None) -> MarginQuery:
    """Parse `from`, `to` (UTC days, both included; default: the last 30 days up to today)
    and `group` (day, model, channel or organization); raises MarginQueryError."""
    today = today or timezone.now().astimezone(dt.UTC).date()
    group = params.get("group", "").strip() or "day"
    if group not in GROUPS:
        raise MarginQueryError("group", _("Group by day, model, channel or organization."))
    first, last = _day(params, "from"), _day(params, "to")
    span = dt.timedelta(days=DEFAULT_DAYS - 1)
    if last is None:
        last = max(today, first) if first else today
    if first is None:
        first = max(last - span, EARLIEST_DAY)
    if first > last:
        raise MarginQueryError("from", _("The first day must not be after the last day."))
    if (last - first).days + 1 > MAX_DAYS:
        raise MarginQueryError(
            "from", _("A custom range covers at most %(days)d days.") % {"days": MAX_DAYS}
        )
    return MarginQuery(first=first, last=last, group=group)


# --- Reading ---------------------------------------------------------------------------


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _spans(days: list[dt.date]) -> Q:
    """created_at within DAYS (not empty), one range per run of consecutive days: each
    range uses the index on created_at."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in sorted(days):
        if runs and day == runs[-1][1] + dt.timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    q = Q()
    for first, last in runs:
        q |= Q(
            created_at__gte=_midnight(first), created_at__lt=_midnight(last + dt.timedelta(days=1))
        )
    return q


def _key(group: str, value: GroupKey) -> GroupKey:
    if group == "channel":
        return value or None  # the rollup's 0 and the log's NULL: no channel
    if group == "model":
        return value or ""
    return value


def _collect(query: MarginQuery) -> tuple[dict[GroupKey, MarginRow], list[dt.date]]:
    group = query.group
    days = query.days
    rolled = sorted(
        RolledUpDay.objects.filter(day__gte=query.first, day__lte=query.last).values_list(
            "day", flat=True
        )
    )
    found: dict[GroupKey, MarginRow] = {}

    def row(value: Any) -> MarginRow:
        key = _key(group, value)
        return found.setdefault(key, MarginRow(key=key))

    column = _COLUMN[group]
    if rolled:
        sums = (
            DailyUsage.objects.filter(day__in=rolled)
            .values(column)
            .annotate(**_ROLLED_SUMS)
            .order_by()
        )
        for r in sums:
            row(r[column]).add(
                MarginRow(requests=r["n"] or 0, cost=r["c"] or 0, plan_cost=r["p"] or 0,
                          upstream_cost=r["u"] or 0, uncosted=r["x"] or 0)
            )  # fmt: skip
    live_days = sorted(set(days) - set(rolled))
    if live_days:
        logs: QuerySet[RequestLog] = RequestLog.objects.filter(_spans(live_days))
        if group == "day":
            logs = logs.annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        for r in logs.values(column).annotate(**_LOG_SUMS).order_by():
            row(r[column]).add(
                MarginRow(requests=r["n"], cost=r["c"] or 0, plan_cost=r["p"] or 0,
                          upstream_cost=r["u"] or 0, uncosted=r["x"])
            )  # fmt: skip
    for key, amount in _uncollected(query).items():
        found.setdefault(key, MarginRow(key=key)).uncollected += amount
    return found, rolled


def _uncollected(query: MarginQuery) -> dict[GroupKey, int]:
    entries = UncollectedUsage.objects.filter(
        created_at__gte=_midnight(query.first),
        created_at__lt=_midnight(query.last) + dt.timedelta(days=1),
    )
    out: dict[GroupKey, int] = {}
    if query.group == "organization":
        by_wallet = dict(entries.values("wallet_id").annotate(a=Sum("amount")).order_by()
                         .values_list("wallet_id", "a"))  # fmt: skip
        owners = dict(
            Wallet.objects.filter(pk__in=list(by_wallet)).values_list("pk", "organization_id")
        )
        for wallet_id, amount in by_wallet.items():
            org_id = owners.get(wallet_id)
            out[org_id] = out.get(org_id, 0) + (amount or 0)
        return out
    column = _COLUMN[query.group]
    if query.group == "day":
        entries = entries.annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
    for r in entries.values(column).annotate(a=Sum("amount")).order_by():
        key = _key(query.group, r[column])
        out[key] = out.get(key, 0) + (r["a"] or 0)
    return out


def _order(row: MarginRow) -> tuple[int, int, str]:
    return (-row.revenue, -row.upstream_cost, str(row.key))


def margin_report(*, query: MarginQuery) -> MarginReport:
    """Revenue, upstream cost and margin of QUERY's days, one row per group: every day of
    the range in order (zeros included), or models, channels and organizations by revenue,
    largest first. The totals are the rows' sum."""
    found, rolled = _collect(query)
    if query.group == "day":
        rows = [found.get(day) or MarginRow(key=day) for day in query.days]
    else:
        rows = sorted(found.values(), key=_order)
    totals = MarginRow()
    for row in rows:
        totals.add(row)
    return MarginReport(query=query, rows=rows, totals=totals, rolled_days=rolled)


def channel_margins(
    *, since: dt.datetime, until: dt.datetime, channel_ids: Iterable[int]
) -> dict[int, MarginRow]:
    """Each of CHANNEL_IDS' figures over [SINCE, UNTIL) from the request logs (kept for
    days, rolled up or not): the margin alert's reading. Channels without traffic are left
    out."""
    logs = RequestLog.objects.filter(
        created_at__gte=since, created_at__lt=until, channel_id__in=list(channel_ids)
    )
    out = {}
    for r in logs.values("channel_id").annotate(**_LOG_SUMS).order_by():
        out[r["channel_id"]] = MarginRow(
            key=r["channel_id"], requests=r["n"], cost=r["c"] or 0, plan_cost=r["p"] or 0,
            upstream_cost=r["u"] or 0, uncosted=r["x"],
        )  # fmt: skip
    uncollected = (
        UncollectedUsage.objects.filter(
            created_at__gte=since, created_at__lt=until, channel_id__in=list(out)
        )
        .values("channel_id")
        .annotate(a=Sum("amount"))
        .order_by()
    )
    for r in uncollected:
        out[r["channel_id"]].uncollected = r["a"] or 0
    return out


# --- CSV -------------------------------------------------------------------------------

CSV_MONEY = ("revenue", "cost", "plan_cost", "upstream_cost", "margin", "uncollected")
CSV_HEADER = [
    "requests", "revenue_usd", "charged_usd", "plan_usd", "upstream_cost_usd", "margin_usd",
    "margin_percent", "uncosted_requests", "uncollected_usd",
]  # fmt: skip


def _csv_figures(row: MarginRow) -> list[str | int]:
    percent = row.margin_percent
    money = [micros_to_usd(getattr(row, name)) for name in CSV_MONEY]
    return [row.requests, *money[:5], "" if percent is None else str(percent), row.uncosted,
            money[5]]  # fmt: skip


def margin_csv(report: MarginReport, *, labels: Mapping[GroupKey, str]) -> Iterator[bytes]:
    """The report's table as CSV: the group (its id and name for channels and
    organizations), the figures in USD to the micro-dollar, then a total line. Names are
    what clients and operators typed, so a cell a spreadsheet would run as a formula is
    prefixed with ' (logs/csv_export.py's rule)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    group = report.query.group
    with_id = group in ("channel", "organization")
    writer.writerow([f"{group}_id", group, *CSV_HEADER] if with_id else [group, *CSV_HEADER])
    for row in report.rows:
        label = _spreadsheet_safe(labels.get(row.key, str(row.key)))
        head: list[Any] = [row.key if row.key is not None else "", label] if with_id else [label]
        writer.writerow([*head, *_csv_figures(row)])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    writer.writerow([*([""] if with_id else []), "total", *_csv_figures(report.totals)])
    yield buffer.getvalue().encode()
