from __future__ import annotations

from celery import shared_task

from logs.anomalies.tasks import anomalies_scan  # noqa: F401  (registered with Celery)
from logs.services import daily_usage_rollup_due, request_logs_purge


@shared_task
def purge_request_logs() -> int:
    """Roll finished days into DailyUsage, then purge what retention allows."""
    daily_usage_rollup_due()
    return request_logs_purge()
