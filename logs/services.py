"""Writes for request metadata (retention purges) and security events (the audit trail)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Organization, User
from accounts.network import client_ip
from logs.models import AuditEvent, RequestLog

PURGE_BATCH = 5000
_USER_AGENT_MAX = 300


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


def request_ip(request: HttpRequest) -> str | None:
    """The caller's address as the relay sees it (X-Forwarded-For only from TRUSTED_PROXIES)."""
    return client_ip(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR", ""))


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def audit_record(
    *,
    kind: str,
    user: User | None = None,
    organization: Organization | None = None,
    request: HttpRequest | None = None,
    **meta: Any,
) -> AuditEvent:
    """Append one security event. Never raises on odd `meta` values (they are stringified).

    With a request, its client address and user agent are kept, and the signed-in user
    becomes the event's `actor` when they are not the `user` the event is about. Callers
    pass identifiers in `meta` (key ids, roles), never secrets or content.
    """
    if kind not in AuditEvent.Kind.values:
        raise ValueError(f"unknown audit event kind {kind!r}")
    actor: User | None = None
    ip: str | None = None
    user_agent = ""
    if request is not None:
        ip = request_ip(request)
        user_agent = request.META.get("HTTP_USER_AGENT", "")[:_USER_AGENT_MAX]
        signed_in = getattr(request, "user", None)
        if isinstance(signed_in, User) and signed_in.is_authenticated:
            if user is None:
                user = signed_in
            elif signed_in.pk != user.pk:
                actor = signed_in
    return AuditEvent.objects.create(
        kind=kind,
        user=user,
        actor=actor,
        organization=organization,
        ip=ip,
        user_agent=user_agent,
        meta=_plain(meta),
    )


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
