"""Payment velocity: repeated failed payments, many small top-ups or a dispute flag an
organization for review, and an open flag freezes its top-ups until staff clear it.

Billing's part of abuse detection (the flags themselves are logs.models.ReviewFlag, shown
with the anomaly alerts); its periodic scan is billing.tasks.payment_velocity_scan.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import AuditEvent, Organization, User
from billing.exceptions import InvalidTopUp
from billing.models import TopUp
from logs.models import ReviewFlag
from money import usd_to_micros


def review_flag_raise(
    *, organization_id: int, reason: str, now: dt.datetime | None = None, **detail: Any
) -> ReviewFlag | None:
    """Open a review flag for REASON unless one is open already (then None). Safe against
    concurrent callers: the partial unique constraint keeps one open flag per reason."""
    try:
        with transaction.atomic():
            return ReviewFlag.objects.create(
                organization_id=organization_id,
                reason=reason,
                detail=detail,
                created_at=now or timezone.now(),
            )
    except IntegrityError:
        return None


def _since(organization_id: int, now: dt.datetime) -> dt.datetime:
    """The start of the velocity window, or the last clearing if later: what staff cleared
    does not count again."""
    since = now - dt.timedelta(hours=settings.PAYMENT_VELOCITY_WINDOW_HOURS)
    cleared = ReviewFlag.objects.filter(organization_id=organization_id).aggregate(
        last=Max("cleared_at")
    )["last"]
    return max(since, cleared) if cleared is not None else since


def payment_velocity_check(*, organization_id: int, now: dt.datetime | None = None) -> list[str]:
    """Apply the failed-payment and small-top-up rules; opens a flag for each that trips.
    Returns the reasons of the flags opened now."""
    now = now or timezone.now()
    topups = TopUp.objects.filter(
        organization_id=organization_id, created_at__gte=_since(organization_id, now)
    )
    failed = topups.filter(state=TopUp.State.FAILED).count()
    small_below = usd_to_micros(settings.PAYMENT_VELOCITY_SMALL_USD)
    # The credit bought, before any bonus, is what the customer asked for.
    small = topups.annotate(bought=F("credit") - F("bonus")).filter(bought__lt=small_below).count()
    opened = []
    if failed >= settings.PAYMENT_VELOCITY_MAX_FAILED and review_flag_raise(
        organization_id=organization_id,
        reason=ReviewFlag.Reason.FAILED_PAYMENTS,
        now=now,
        failed=failed,
    ):
        opened.append(ReviewFlag.Reason.FAILED_PAYMENTS.value)
    if small >= settings.PAYMENT_VELOCITY_MAX_SMALL and review_flag_raise(
        organization_id=organization_id,
        reason=ReviewFlag.Reason.SMALL_TOPUPS,
        now=now,
        small=small,
    ):
        opened.append(ReviewFlag.Reason.SMALL_TOPUPS.value)
    return opened


def payment_velocity_scan(*, now: dt.datetime | None = None) -> int:
    """The velocity rules of every organization that tried to top up within the window, so
    a flag shows in the admin even if the organization does not try again. Returns the
    number of flags opened."""
    now = now or timezone.now()
    window = dt.timedelta(hours=settings.PAYMENT_VELOCITY_WINDOW_HOURS)
    recent = (
        TopUp.objects.filter(created_at__gte=now - window)
        .values_list("organization_id", flat=True)
        .distinct()
        .order_by()
    )
    return sum(
        len(payment_velocity_check(organization_id=organization_id, now=now))
        for organization_id in recent
    )


def topup_velocity_check(*, organization: Organization, now: dt.datetime | None = None) -> None:
    """Raise InvalidTopUp when the organization's top-ups are frozen: an open review flag,
    opened now if the velocity rules trip. Redemption codes do not pass here."""
    payment_velocity_check(organization_id=organization.pk, now=now)
    if ReviewFlag.objects.filter(organization=organization, cleared_at__isnull=True).exists():
        raise InvalidTopUp(
            _(
                "Top-ups for this organization are paused while our team reviews recent "
                "payment activity. Please contact support; redemption codes still work."
            )
        )


def review_flag_clear(*, flag: ReviewFlag, actor: User, note: str) -> ReviewFlag:
    """Clear an open flag with staff's NOTE (top-ups resume once no flag is open). Audited
    as an organization settings change; clearing a cleared flag changes nothing."""
    now = timezone.now()
    with transaction.atomic():
        if not ReviewFlag.objects.filter(pk=flag.pk, cleared_at__isnull=True).update(
            cleared_at=now, cleared_by=actor, clear_note=note
        ):
            flag.refresh_from_db()
            return flag
        audit_record(
            kind=AuditEvent.Kind.ORG_SETTINGS_CHANGED,
            organization=flag.organization,
            actor=actor,
            review_flag_cleared=flag.pk,
            reason=flag.reason,
            note=note[:500],
        )
    flag.refresh_from_db()
    return flag


def dispute_flag_raise(*, organization_id: int, topup_id: int) -> ReviewFlag | None:
    """A dispute (Stripe charge.dispute.created) flags the organization at once."""
    return review_flag_raise(
        organization_id=organization_id, reason=ReviewFlag.Reason.DISPUTE, topup=topup_id
    )
