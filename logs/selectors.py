"""Reads for security events, filtered by who may see them."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import Organization, User
from logs.models import AuditEvent


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
