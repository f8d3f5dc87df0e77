"""Writes for request metadata: the daily usage rollup, retention purges, an owner's deletion.

Security events (the audit trail) are recorded by accounts.audit."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Min, Q, Sum
from django.http import HttpRequest
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import AuditEvent, Organization
from logs.models import UNCOSTED, DailyUsage, RequestLog, RolledUpDay

PURGE_BATCH = 5000
# A day is rolled up only once it has been over this long: a stream that started just
# before midnight is logged (with its start time) when it ends.
ROLLUP_GRACE = dt.timedelta(hours=2)


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def daily_usage_rollup(*, day: dt.date) -> int:
    """Roll one UTC day of request logs into `DailyUsage`; returns the rows written.

    Atomic and exactly once: the day's `RolledUpDay` row is inserted in the same
    transaction, so a repeated or concurrent rollup of the same day writes nothing
    (the concurrent one fails on the primary key and rolls back whole).
    """
    start, end = _day_bounds(day)
    try:
        return _rollup(day, start, end)
    except IntegrityError:  # a concurrent rollup of this day committed first
        return 0


def _rollup(day: dt.date, start: dt.datetime, end: dt.datetime) -> int:
    with transaction.atomic():
        if RolledUpDay.objects.filter(day=day).exists():
            return 0
        groups = (
            RequestLog.objects.filter(created_at__gte=start, created_at__lt=end)
            .values("organization_id", "api_key_id", "channel_id", "model")
            .annotate(
                n=Count("id"),
                n_errors=Count("id", filter=Q(status_code__gte=400)),
                prompt=Sum("prompt_tokens"),
                completion=Sum("completion_tokens"),
                cache_read=Sum("cache_read_tokens"),
                cache_write=Sum("cache_write_tokens"),
                reasoning=Sum("reasoning_tokens"),
                total_cost=Sum("cost"),
                total_plan_cost=Sum("plan_cost"),
                total_upstream_cost=Sum("upstream_cost"),
                uncosted=Count("id", filter=UNCOSTED),
            )
            .order_by()
        )
        rows = [
            DailyUsage(
                day=day,
                organization_id=g["organization_id"],
                api_key_id=g["api_key_id"] or 0,
                channel_id=g["channel_id"] or 0,
                model=g["model"],
                requests=g["n"],
                errors=g["n_errors"],
                prompt_tokens=g["prompt"] or 0,
                completion_tokens=g["completion"] or 0,
                cache_read_tokens=g["cache_read"] or 0,
                cache_write_tokens=g["cache_write"] or 0,
                reasoning_tokens=g["reasoning"] or 0,
                cost=g["total_cost"] or 0,
                plan_cost=g["total_plan_cost"] or 0,
                upstream_cost=g["total_upstream_cost"] or 0,
                uncosted_requests=g["uncosted"],
            )
            for g in groups
        ]
        DailyUsage.objects.bulk_create(rows, batch_size=1000)
        RolledUpDay.objects.create(day=day, source_rows=sum(r.requests for r in rows))
    return len(rows)


def _oldest_log_day() -> dt.date | None:
    oldest = RequestLog.objects.aggregate(oldest=Min("created_at"))["oldest"]
    return None if oldest is None else oldest.astimezone(dt.UTC).date()


def daily_usage_rollup_due(*, now: dt.datetime | None = None) -> int:
    """Roll up every finished day (past its grace period) that is not rolled up yet."""
    now = now or timezone.now()
    first = _oldest_log_day()
    if first is None:
        return 0
    last = (now - ROLLUP_GRACE).astimezone(dt.UTC).date() - dt.timedelta(days=1)
    done = set(RolledUpDay.objects.filter(day__gte=first).values_list("day", flat=True))
    written = 0
    day = first
    while day <= last:
        if day not in done:
            written += daily_usage_rollup(day=day)
        day += dt.timedelta(days=1)
    return written


def _first_unrolled_day() -> dt.date | None:
    """The earliest day holding request logs that are not in `DailyUsage` yet."""
    day = _oldest_log_day()
    if day is None:
        return None
    done = set(RolledUpDay.objects.filter(day__gte=day).values_list("day", flat=True))
    while day in done:
        day += dt.timedelta(days=1)
    return day


def request_logs_purge(*, older_than_days: int | None = None) -> int:
    """Delete request logs past retention whose day is rolled up, in bounded batches.

    Each batch is its own short transaction on primary keys, so concurrent relay inserts
    never wait behind the purge and nothing is rewritten. Logs of a day that is not in
    `DailyUsage` yet are kept until it is.
    """
    days = settings.LOG_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - dt.timedelta(days=days)
    unrolled = _first_unrolled_day()
    if unrolled is not None:
        cutoff = min(cutoff, _day_bounds(unrolled)[0])
    total = 0
    while True:
        ids = list(
            RequestLog.objects.filter(created_at__lt=cutoff)
            .order_by("created_at")
            .values_list("pk", flat=True)[:PURGE_BATCH]
        )
        if not ids:
            return total
        total += RequestLog.objects.filter(pk__in=ids).delete()[0]


def request_logs_delete_for_organization(
    *, organization: Organization, request: HttpRequest | None = None
) -> int:
    """Delete every request log of ORGANIZATION (its owner's right). Usage rollups and the
    ledger are kept. Records an audit event; returns the number of rows deleted."""
    deleted = 0
    while True:
        ids = list(
            RequestLog.objects.filter(organization_id=organization.pk).values_list("pk", flat=True)[
                :PURGE_BATCH
            ]
        )
        if not ids:
            break
        deleted += RequestLog.objects.filter(pk__in=ids).delete()[0]
    audit_record(
        kind=AuditEvent.Kind.REQUEST_LOGS_DELETED,
        organization=organization,
        request=request,
        deleted=deleted,
    )
    return deleted
