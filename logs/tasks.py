from __future__ import annotations

from celery import shared_task

from logs.services import request_logs_purge


@shared_task
def purge_request_logs() -> int:
    return request_logs_purge()
