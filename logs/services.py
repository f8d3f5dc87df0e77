"""Writes for request metadata: retention purges."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from logs.models import RequestLog

PURGE_BATCH = 5000


def request_logs_purge(*, older_than_days: int | None = None) -> int:
    """Delete request logs past retention in small batches (no long table lock)."""
    days = settings.LOG_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - dt.timedelta(days=days)
    total = 0
    while True:
        ids = list(
            RequestLog.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[
                :PURGE_BATCH
            ]
        )
        if not ids:
            return total
        total += RequestLog.objects.filter(pk__in=ids).delete()[0]
