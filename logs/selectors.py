"""Reads of request metadata for the dashboard, each filtered by who may see it."""

from __future__ import annotations

import base64
import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate, TruncHour
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.access import Capability, role_allows
from accounts.models import ApiKey, Membership, WorkOrder
from logs.models import DailyUsage, RequestLog, RolledUpDay

PAGE_SIZE = 50
# Columns a page may be sorted by; time is the default and the only one backed by an index
# across all time, so the others need a time range (the last 24 hours unless given).
SORTS = {"time": "created_at", "cost": "cost", "latency": "latency_ms"}
DEFAULT_SPAN = dt.timedelta(days=1)


class FilterError(ValueError):
    """A filter the caller must fix; the message is shown to them."""


@dataclass
class LogFilter:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    model: str = ""
    key_id: int | None = None
    status: str = ""  # "", "ok", "error" or an exact code
    channel_type: str = ""
    # The channels of `channel_type`, resolved by the caller: logs sits below the relay.
    channel_ids: list[int] = field(default_factory=list)
    min_cost: int | None = None  # micro-USD
    sort: str = "time"
    descending: bool = True
    errors: list[str] = field(default_factory=list)


def _parse_time(value: str, name: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise FilterError(
            _("%(name)s is not a date and time (YYYY-MM-DDTHH:MM).") % {"name": name}
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def log_filter_from(params: dict[str, str]) -> LogFilter:
    """Parse query parameters into a LogFilter; raises FilterError with a clear message."""
    f = LogFilter(
        since=_parse_time(params.get("since", ""), "since"),
        until=_parse_time(params.get("until", ""), "until"),
        model=params.get("model", "").strip()[:200],
        status=params.get("status", "").strip(),
        channel_type=params.get("channel_type", "").strip()[:32],
    )
    if f.since and f.until and f.since >= f.until:
        raise FilterError(_("The start of the time range must be before its end."))
    if key := params.get("key", "").strip():
        if not key.isdigit():
            raise FilterError(_("Unknown key."))
        f.key_id = int(key)
    if (
        f.status
        and f.status not in ("ok", "error")
        and not (f.status.isdigit() and 100 <= int(f.status) <= 599)
    ):
        raise FilterError(_("Status must be ok, error or an HTTP status code."))
    if min_cost := params.get("min_cost", "").strip():
        try:
            usd = Decimal(min_cost)
        except InvalidOperation:
            raise FilterError(_("Minimum cost must be a number of US dollars.")) from None
        if usd < 0 or usd > 1_000_000:
            raise FilterError(_("Minimum cost must be between 0 and 1,000,000 USD."))
        f.min_cost = int(usd * 1_000_000)
    sort = params.get("sort", "-time")
    f.descending = sort.startswith("-")
    f.sort = sort.lstrip("-")
    if f.sort not in SORTS:
        raise FilterError(_("Logs can be sorted by time, cost or latency."))
    if f.sort != "time" and f.since is None:
        f.since = (f.until or timezone.now()) - DEFAULT_SPAN
    return f


def _own_keys(membership: Membership) -> list[int] | None:
    """None for roles that see all the organization's usage; else the caller's keys."""
    if role_allows(membership.role, Capability.VIEW_USAGE):
        return None
    return list(
        ApiKey.objects.filter(
            organization_id=membership.organization_id, created_by_id=membership.user_id
        ).values_list("pk", flat=True)
    )


def visible_logs(*, membership: Membership) -> QuerySet[RequestLog]:
    """The organization's logs for roles that see all usage; else only the caller's keys'."""
    logs = RequestLog.objects.filter(organization_id=membership.organization_id)
    own = _own_keys(membership)
    return logs if own is None else logs.filter(api_key_id__in=own)


def filtered_logs(*, membership: Membership, f: LogFilter) -> QuerySet[RequestLog]:
    logs = visible_logs(membership=membership)
    if f.since:
        logs = logs.filter(created_at__gte=f.since)
    if f.until:
        logs = logs.filter(created_at__lt=f.until)
    if f.model:
        logs = logs.filter(model=f.model)
    if f.key_id is not None:
        logs = logs.filter(api_key_id=f.key_id)
    if f.status == "ok":
        logs = logs.filter(status_code__lt=400)
    elif f.status == "error":
        logs = logs.filter(status_code__gte=400)
    elif f.status:
        logs = logs.filter(status_code=int(f.status))
    if f.channel_type:
        logs = logs.filter(channel_id__in=f.channel_ids)
    if f.min_cost is not None:
        logs = logs.filter(cost__gte=f.min_cost)
    return logs


def _cursor_encode(value: object, pk: int) -> str:
    raw = orjson.dumps([value.isoformat() if isinstance(value, dt.datetime) else value, pk])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str, sort: str) -> tuple[object, int]:
    try:
        value, pk = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if sort == "time":
            value = dt.datetime.fromisoformat(value)
        elif not isinstance(value, int):
            raise TypeError
        return value, int(pk)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise FilterError(
            _("This page link is no longer valid; start from the first page.")
        ) from None


@dataclass
class LogPage:
    rows: list[RequestLog]
    next_cursor: str | None


def log_page(*, logs: QuerySet[RequestLog], f: LogFilter, cursor: str = "") -> LogPage:
    """One page by keyset pagination on (sort column, id): as fast on page 10,000 as on 1."""
    column = SORTS[f.sort]
    if cursor:
        value, pk = _cursor_decode(cursor, f.sort)
        if f.descending:
            logs = logs.filter(Q(**{f"{column}__lt": value}) | Q(**{column: value, "pk__lt": pk}))
        else:
            logs = logs.filter(Q(**{f"{column}__gt": value}) | Q(**{column: value, "pk__gt": pk}))
    order = (f"-{column}", "-pk") if f.descending else (column, "pk")
    rows = list(logs.order_by(*order)[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = _cursor_encode(getattr(last, column), last.pk)
    return LogPage(rows=rows, next_cursor=next_cursor)


# --- Requests named in support work orders (accounts/support) ---------------------------

# What staff see of a request named in a work order: its metadata, as on the logs
# explorer, no content.
REQUEST_FIELDS = (
    "request_id",
    "created_at",
    "api_key_id",
    "endpoint",
    "model",
    "upstream_model",
    "channel_id",
    "stream",
    "status_code",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "latency_ms",
    "attempts",
)


def request_ids_unknown(*, membership: Membership, request_ids: list[str]) -> list[str]:
    """The ids among REQUEST_IDS that are not requests the member may see (their own
    keys', or the whole organization's for roles that see all usage)."""
    if not request_ids:
        return []
    known = set(
        visible_logs(membership=membership)
        .filter(request_id__in=request_ids)
        .values_list("request_id", flat=True)
    )
    return [rid for rid in request_ids if rid not in known]


def workorder_requests(*, work_order: WorkOrder) -> list[dict[str, Any]]:
    """Metadata of the requests the customer named, of the order's organization only, for
    staff; requests purged since are simply missing."""
    return list(
        RequestLog.objects.filter(
            organization_id=work_order.organization_id, request_id__in=work_order.request_ids
        )
        .order_by("created_at")
        .values(*REQUEST_FIELDS)
    )


# --- Usage over time, for the overview's charts ------------------------------------------------

# Preset ranges: name -> (step, number of buckets). Hours are the viewer's; days are UTC days,
# the unit `DailyUsage` is rolled up in.
USAGE_RANGES: dict[str, tuple[str, int]] = {
    "24h": ("hour", 24),
    "7d": ("day", 7),
    "30d": ("day", 30),
}
USAGE_SPLITS = ("model", "key")
MAX_CUSTOM_DAYS = 366
HOURLY_UP_TO_DAYS = 2  # a custom range this short is drawn by the hour
TOP_GROUPS = 5  # series drawn per split; the rest are summed into one


@dataclass(frozen=True)
class UsageRange:
    name: str  # "24h", "7d", "30d" or "custom"
    step: str  # "hour" or "day"
    starts: tuple[dt.datetime, ...]  # each bucket's start (UTC); a bucket ends at the next
    until: dt.datetime
    first_day: dt.date | None = None  # custom ranges: the dates asked for
    last_day: dt.date | None = None

    @property
    def since(self) -> dt.datetime:
        return self.starts[0]

    @property
    def days(self) -> tuple[dt.date, dt.date]:
        """The first and last day shown (UTC days unless asked for), to fill in a form."""
        if self.first_day and self.last_day:
            return self.first_day, self.last_day
        return self.since.date(), (self.until - dt.timedelta(microseconds=1)).date()


def _parse_day(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise FilterError(_("%(name)s is not a date (YYYY-MM-DD).") % {"name": name}) from None


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _hours(since: dt.datetime, until: dt.datetime) -> tuple[dt.datetime, ...]:
    # Stepped in UTC so a daylight-saving change gives a 23- or 25-hour day, not a gap.
    since, until = since.astimezone(dt.UTC), until.astimezone(dt.UTC)
    count = int((until - since) / dt.timedelta(hours=1))
    return tuple(since + dt.timedelta(hours=i) for i in range(count))


def _days(first: dt.date, last: dt.date) -> tuple[dt.datetime, ...]:
    count = (last - first).days + 1
    return tuple(_utc_midnight(first + dt.timedelta(days=i)) for i in range(count))


def usage_range_from(
    params: Mapping[str, str], *, zone: dt.tzinfo, now: dt.datetime | None = None
) -> UsageRange:
    """The buckets for `range` (24h, 7d, 30d or custom with `from` and `to` dates, both
    included); raises FilterError with a message for the viewer. Hours start on the hour in
    ZONE; days are UTC days."""
    now = now or timezone.now()
    name = params.get("range", "").strip() or "30d"
    if name in USAGE_RANGES:
        step, count = USAGE_RANGES[name]
        if step == "hour":
            top = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
            until = top.astimezone(dt.UTC) + dt.timedelta(hours=1)
            return UsageRange(name, step, _hours(until - dt.timedelta(hours=count), until), until)
        today = now.astimezone(dt.UTC).date()
        starts = _days(today - dt.timedelta(days=count - 1), today)
        return UsageRange(name, step, starts, starts[-1] + dt.timedelta(days=1))
    if name != "custom":
        raise FilterError(_("The range must be 24h, 7d, 30d or custom."))
    if not params.get("from", "").strip() or not params.get("to", "").strip():
        raise FilterError(_("A custom range needs a first and a last day."))
    first, last = _parse_day(params["from"], _("From")), _parse_day(params["to"], _("To"))
    if first > last:
        raise FilterError(_("The first day must not be after the last day."))
    if first > now.astimezone(zone).date():
        raise FilterError(_("The range starts in the future."))
    if (last - first).days + 1 > MAX_CUSTOM_DAYS:
        raise FilterError(
            _("A custom range covers at most %(days)d days.") % {"days": MAX_CUSTOM_DAYS}
        )
    if (last - first).days + 1 <= HOURLY_UP_TO_DAYS:
        since = dt.datetime.combine(first, dt.time.min, tzinfo=zone)
        until = dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
        starts = _hours(since, until)
        return UsageRange("custom", "hour", starts, until.astimezone(dt.UTC), first, last)
    starts = _days(first, last)
    return UsageRange("custom", "day", starts, starts[-1] + dt.timedelta(days=1), first, last)


@dataclass
class UsageSeries:
    """One group's numbers per bucket (a model, a key, everything else, or the total)."""

    name: str
    requests: list[int]
    errors: list[int]
    tokens: list[int]
    cost: list[int]  # micro-USD
    other: bool = False  # the sum of the groups past TOP_GROUPS

    @classmethod
    def empty(cls, name: str, size: int) -> UsageSeries:
        return cls(name, [0] * size, [0] * size, [0] * size, [0] * size)

    def add(self, i: int, requests: int, errors: int, tokens: int, cost: int) -> None:
        self.requests[i] += requests
        self.errors[i] += errors
        self.tokens[i] += tokens
        self.cost[i] += cost

    def merge(self, other: UsageSeries) -> None:
        for i in range(len(self.requests)):
            self.add(i, other.requests[i], other.errors[i], other.tokens[i], other.cost[i])

    @property
    def error_rate(self) -> list[float | None]:
        """Failed requests in percent per bucket; None where there were no requests."""
        return [
            round(100 * e / r, 1) if r else None
            for r, e in zip(self.requests, self.errors, strict=True)
        ]

    @property
    def sums(self) -> dict[str, int]:
        return {
            "requests": sum(self.requests),
            "errors": sum(self.errors),
            "tokens": sum(self.tokens),
            "cost": sum(self.cost),
        }


@dataclass
class UsageChart:
    range: UsageRange
    split: str  # "model" or "key"
    groups: list[UsageSeries]  # largest cost first; the `other` one last when there is one
    total: UsageSeries


def visible_daily_usage(*, membership: Membership) -> QuerySet[DailyUsage]:
    """Rolled-up usage scoped like `visible_logs`: all of it, or only the caller's keys'."""
    rolled = DailyUsage.objects.filter(organization_id=membership.organization_id)
    own = _own_keys(membership)
    return rolled if own is None else rolled.filter(api_key_id__in=own)


def usage_exists(*, membership: Membership) -> bool:
    """Has the caller's scope ever sent a request (kept as a log or in the rollup)?"""
    return (
        visible_logs(membership=membership).exists()
        or visible_daily_usage(membership=membership).exists()
    )


_LOG_SUMS: dict[str, Any] = {
    "n": Count("id"),
    "n_errors": Count("id", filter=Q(status_code__gte=400)),
    "p": Sum("prompt_tokens"),
    "c": Sum("completion_tokens"),
    "total_cost": Sum("cost"),
}
_ROLLED_SUMS: dict[str, Any] = {
    "n": Sum("requests"),
    "n_errors": Sum("errors"),
    "p": Sum("prompt_tokens"),
    "c": Sum("completion_tokens"),
    "total_cost": Sum("cost"),
}


def _numbers(row: dict[str, Any]) -> tuple[int, int, int, int]:
    tokens = (row["p"] or 0) + (row["c"] or 0)
    return row["n"] or 0, row["n_errors"] or 0, tokens, row["total_cost"] or 0


def _usage_rows(
    membership: Membership, span: UsageRange, zone: dt.tzinfo, dimension: str
) -> list[tuple[dt.datetime, Any, tuple[int, int, int, int]]]:
    """(bucket start, group, numbers) from the logs, and from the rollup for rolled-up days."""
    logs = visible_logs(membership=membership).filter(
        created_at__gte=span.since, created_at__lt=span.until
    )
    if span.step == "hour":
        hourly = (
            logs.annotate(bucket=TruncHour("created_at", tzinfo=zone))
            .values("bucket", dimension)
            .annotate(**_LOG_SUMS)
            .order_by()
        )
        return [(r["bucket"], r[dimension], _numbers(r)) for r in hourly]
    days = [start.date() for start in span.starts]
    rolled_days = set(
        RolledUpDay.objects.filter(day__gte=days[0], day__lte=days[-1]).values_list(
            "day", flat=True
        )
    )
    rolled = (
        visible_daily_usage(membership=membership)
        .filter(day__in=sorted(rolled_days))
        .values("day", dimension)
        .annotate(**_ROLLED_SUMS)
        .order_by()
    )
    out = [(_utc_midnight(r["day"]), r[dimension], _numbers(r)) for r in rolled]
    live_days = [day for day in days if day not in rolled_days]
    if live_days:
        live = (
            logs.filter(created_at__gte=_utc_midnight(live_days[0]))
            .annotate(bucket=TruncDate("created_at", tzinfo=dt.UTC))
            .filter(bucket__in=live_days)
            .values("bucket", dimension)
            .annotate(**_LOG_SUMS)
            .order_by()
        )
        out += [(_utc_midnight(r["bucket"]), r[dimension], _numbers(r)) for r in live]
    return out


def _key_labels(membership: Membership) -> dict[int, str]:
    keys = ApiKey.objects.filter(organization_id=membership.organization_id)
    return {pk: name or prefix for pk, name, prefix in keys.values_list("pk", "name", "prefix")}


def usage_chart(
    *, membership: Membership, span: UsageRange, split: str, zone: dt.tzinfo
) -> UsageChart:
    """Requests, errors, tokens and cost per bucket of SPAN, split by model or by key (the
    largest TOP_GROUPS by cost, the rest summed as one), within the caller's scope: an
    organization's members without the usage capability see only their own keys."""
    if split not in USAGE_SPLITS:
        raise FilterError(_("Usage can be split by model or by key."))
    dimension = "model" if split == "model" else "api_key_id"
    index = {start: i for i, start in enumerate(span.starts)}
    size = len(span.starts)
    by_group: dict[Any, UsageSeries] = defaultdict(lambda: UsageSeries.empty("", size))
    for start, group, numbers in _usage_rows(membership, span, zone, dimension):
        i = index.get(start.astimezone(dt.UTC))
        if i is not None:  # a row just past the range's last hour
            by_group[group or None].add(i, *numbers)

    labels = _key_labels(membership) if split == "key" else {}
    for group, series in by_group.items():
        if split == "model":
            series.name = group or _("(no model)")
        else:
            series.name = labels.get(group, f"#{group}") if group else _("(no key)")
    ranked = sorted(by_group.values(), key=lambda s: (-sum(s.cost), -sum(s.requests), s.name))
    groups = ranked[:TOP_GROUPS]
    if len(ranked) > TOP_GROUPS:
        name = _("Other models") if split == "model" else _("Other keys")
        other = UsageSeries.empty(name, size)
        other.other = True
        for series in ranked[TOP_GROUPS:]:
            other.merge(series)
        groups.append(other)
    total = UsageSeries.empty("total", size)
    for series in groups:
        total.merge(series)
    return UsageChart(range=span, split=split, groups=groups, total=total)
