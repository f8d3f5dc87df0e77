"""The logs' part of a person's data export and erasure (registered in LogsConfig.ready()):
the request metadata of their keys. Never content: the logs hold none."""

from __future__ import annotations

from collections.abc import Mapping

from accounts.privacy_sections import ErasureSubject, ExportSubject
from logs.models import RequestLog

EXPORT_REQUEST_LOG_LIMIT = 100_000


def request_logs_export(subject: ExportSubject) -> list[Mapping[str, object]]:
    """Their keys' request metadata, oldest first, at most EXPORT_REQUEST_LOG_LIMIT rows."""
    return list(
        RequestLog.objects.filter(api_key_id__in=subject.key_ids)
        .order_by("pk")
        .values(
            "request_id",
            "created_at",
            "api_key_id",
            "endpoint",
            "model",
            "status_code",
            "prompt_tokens",
            "completion_tokens",
            "cost",
            "latency_ms",
            "client_ip",
            "user_agent",
        )[:EXPORT_REQUEST_LOG_LIMIT]
    )


def request_logs_erase(subject: ErasureSubject) -> None:
    """Blank the addresses and user agents in the request logs of their revoked keys."""
    RequestLog.objects.filter(api_key_id__in=subject.key_ids).update(client_ip=None, user_agent="")
