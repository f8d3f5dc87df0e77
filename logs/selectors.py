"""Reads of request metadata for the dashboard, scoped to what the caller may see."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import orjson
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.access import Capability, role_allows
from accounts.models import ApiKey, Membership
from logs.models import RequestLog

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


def visible_logs(*, membership: Membership) -> QuerySet[RequestLog]:
    """The organization's logs for roles that see all usage; else only the caller's keys'."""
    logs = RequestLog.objects.filter(organization_id=membership.organization_id)
    if role_allows(membership.role, Capability.VIEW_USAGE):
        return logs
    own = ApiKey.objects.filter(
        organization_id=membership.organization_id, created_by_id=membership.user_id
    ).values_list("pk", flat=True)
    return logs.filter(api_key_id__in=list(own))


def filtered_logs(*, membership: Membership, f: LogFilter) -> QuerySet[RequestLog]:
    from relay.models import Channel

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
        ids = Channel.objects.filter(type=f.channel_type).values_list("pk", flat=True)
        logs = logs.filter(channel_id__in=list(ids))
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
