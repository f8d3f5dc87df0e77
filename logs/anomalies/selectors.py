"""Reads for anomaly detection: spend per key and organization over a time range, owners
to alert, organizations' policies and review flags."""

from __future__ import annotations

import datetime as dt

from django.db.models import F, QuerySet, Sum

from accounts.models import Membership
from logs.models import AnomalyPolicy, RequestLog, ReviewFlag

# The baseline is an average hour of this period before the last hour, from RequestLog
# (LOG_RETENTION_DAYS is 90 by default; a shorter retention shortens the baseline).
BASELINE = dt.timedelta(days=7)
HOUR = dt.timedelta(hours=1)


def spend_by(
    field: str, *, since: dt.datetime, until: dt.datetime, ids: list[int] | None = None
) -> dict[int, int]:
    """{key or organization id: micro-USD spent (balance and plan) in [since, until)}.
    FIELD is "api_key_id" or "organization_id"."""
    logs = RequestLog.objects.filter(created_at__gte=since, created_at__lt=until)
    if ids is not None:
        logs = logs.filter(**{f"{field}__in": ids})
    rows = (
        logs.exclude(**{f"{field}__isnull": True})
        .values(field)
        .annotate(spend=Sum(F("cost") + F("plan_cost")))
        .order_by()
    )
    return {row[field]: int(row["spend"] or 0) for row in rows}


def owner_emails(organization_id: int) -> list[str]:
    return sorted(
        Membership.objects.filter(organization_id=organization_id, role=Membership.Role.OWNER)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )


def policy_of(organization_id: int) -> AnomalyPolicy:
    """The organization's policy; an unsaved default (everything off) when it chose none."""
    return AnomalyPolicy.objects.filter(organization_id=organization_id).first() or AnomalyPolicy(
        organization_id=organization_id
    )


def review_flags_open() -> QuerySet[ReviewFlag]:
    return ReviewFlag.objects.filter(cleared_at__isnull=True).select_related("organization")


def topups_frozen(organization_id: int) -> bool:
    return review_flags_open().filter(organization_id=organization_id).exists()
