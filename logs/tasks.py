from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from logs.anomalies.tasks import anomalies_scan  # noqa: F401  (registered with Celery)
from logs.partitions import request_log_partitions_drop, request_log_partitions_ensure
from logs.services import daily_usage_rollup_due, request_logs_purge


@shared_task
def purge_request_logs() -> int:
    """Roll finished days into DailyUsage, then purge what retention allows: whole daily
    partitions first (PostgreSQL), then row by row what is left past the cutoff (the
    boundary day, the default partition; everything on SQLite)."""
    daily_usage_rollup_due()
    cutoff = timezone.now() - dt.timedelta(days=settings.LOG_RETENTION_DAYS)
    _, dropped = request_log_partitions_drop(before=cutoff.astimezone(dt.UTC).date())
    return dropped + request_logs_purge()


@shared_task
def ensure_request_log_partitions() -> int:
    """Create the request log's daily partitions of today and the days ahead."""
    return len(request_log_partitions_ensure())
