"""The security audit trail: recording an event and the reads of who may see which.

It lives in accounts, the bottom app, so every app above (billing, relay, logs) and the
pages can record events without importing each other. The model is accounts.models.AuditEvent.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest

from accounts.models import AuditEvent, Organization, User
from accounts.network import client_ip

_USER_AGENT_MAX = 300


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
    actor: User | None = None,
    **meta: Any,
) -> AuditEvent:
    """Append one security event. Never raises on odd `meta` values (they are stringified).

    With a request, its client address and user agent are kept, and the signed-in user
    becomes the event's `actor` when they are not the `user` the event is about; services
    that know who acted pass `actor` themselves. Callers pass identifiers in `meta` (key
    ids, roles), never secrets or content.
    """
    if kind not in AuditEvent.Kind.values:
        raise ValueError(f"unknown audit event kind {kind!r}")
    ip: str | None = None
    user_agent = ""
    if request is not None:
        ip = request_ip(request)
        user_agent = request.META.get("HTTP_USER_AGENT", "")[:_USER_AGENT_MAX]
        signed_in = getattr(request, "user", None)
        if isinstance(signed_in, User) and signed_in.is_authenticated:
            if user is None:
                user = signed_in
            elif signed_in.pk != user.pk and actor is None:
                actor = signed_in
    if actor is not None and user is not None and actor.pk == user.pk:
        actor = None  # they did it themselves
    return AuditEvent.objects.create(
        kind=kind,
        user=user,
        actor=actor,
        organization=organization,
        ip=ip,
        user_agent=user_agent,
        meta=_plain(meta),
    )


def audit_events_for_user(*, user: User) -> QuerySet[AuditEvent]:
    """Events about the user or done by them: what a person sees on their settings page."""
    return (
        AuditEvent.objects.filter(Q(user=user) | Q(actor=user))
        .select_related("organization")
        .order_by("-created_at", "-pk")
    )


def audit_events_for_organization(*, organization: Organization) -> QuerySet[AuditEvent]:
    """Every event recorded against the organization: what its owners see."""
    return (
        AuditEvent.objects.filter(organization=organization)
        .select_related("user", "actor")
        .order_by("-created_at", "-pk")
    )


def audit_ip_seen_before(*, user: User, ip: str | None, before_pk: int | None = None) -> bool:
    """Has the user signed in from this address before (the new-address alert's test)?"""
    events = AuditEvent.objects.filter(user=user, ip=ip, kind=AuditEvent.Kind.SIGN_IN)
    if before_pk is not None:
        events = events.filter(pk__lt=before_pk)
    return events.exists()
