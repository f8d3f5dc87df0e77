"""Low-balance alerts: one email when a wallet falls below its threshold, re-armed when
the balance is back at or above it.

Checked by a periodic job, not on the relay's settle path: the hot path does no extra
work, and a wallet crossing the line sends one email however many requests crossed it.
"""

from __future__ import annotations

import logging
from functools import partial

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Membership, Organization
from billing.models import LowBalanceAlert, Wallet
from money import micros_to_usd

log = logging.getLogger(__name__)


def low_balance_set(*, organization: Organization, threshold: int | None) -> None:
    """Set (micro-USD) or clear (None) the organization's low-balance threshold."""
    wallet = Wallet.objects.get(organization=organization)
    if threshold is None:
        LowBalanceAlert.objects.filter(wallet=wallet).delete()
        return
    if threshold <= 0:
        raise ValueError("a low-balance threshold must be positive")
    # A new threshold re-arms the alert: the next check judges the balance afresh.
    LowBalanceAlert.objects.update_or_create(
        wallet=wallet, defaults={"threshold": threshold, "alerted_at": None}
    )


def low_balance_check() -> list[int]:
    """Re-arm alerts whose balance recovered; claim the newly crossed ones and queue one
    email each (on commit). Returns the ids of the alerts that will email."""
    LowBalanceAlert.objects.filter(
        alerted_at__isnull=False, wallet__balance__gte=F("threshold")
    ).update(alerted_at=None)
    claimed: list[int] = []
    crossed = LowBalanceAlert.objects.filter(
        alerted_at__isnull=True, wallet__balance__lt=F("threshold")
    ).values_list("pk", flat=True)
    for pk in crossed:
        with transaction.atomic():
            # The conditional update is the claim: two overlapping runs email once.
            if LowBalanceAlert.objects.filter(pk=pk, alerted_at__isnull=True).update(
                alerted_at=timezone.now()
            ):
                claimed.append(pk)
                transaction.on_commit(partial(send_low_balance_email.delay, pk))
    return claimed


# Defined beside the code that enqueues it (billing/tasks.py imports it for Celery's
# autodiscovery); the name stays the one queued messages and the beat schedule carry.
@shared_task(
    autoretry_for=(OSError,),
    max_retries=5,
    retry_backoff=True,
    name="billing.tasks.send_low_balance_email",
)
def send_low_balance_email(alert_id: int) -> int:
    return low_balance_email_send(alert_id=alert_id)


def low_balance_email_send(*, alert_id: int) -> int:
    """Email the organization's owners and billing members; returns recipients count."""
    alert = LowBalanceAlert.objects.select_related("wallet__organization").get(pk=alert_id)
    org = alert.wallet.organization
    recipients = sorted(
        Membership.objects.filter(
            organization=org, role__in=[Membership.Role.OWNER, Membership.Role.BILLING]
        ).values_list("user__email", flat=True)
    )
    if not recipients:
        return 0
    subject = _("TokenHub: low balance for %(org)s") % {"org": org.name}
    body = _(
        "The balance of %(org)s is %(balance)s USD, below your alert threshold of "
        "%(threshold)s USD. Requests stop when no credit is left; top up at %(url)s."
    ) % {
        "org": org.name,
        "balance": micros_to_usd(alert.wallet.balance),
        "threshold": micros_to_usd(alert.threshold),
        "url": settings.SITE_URL.rstrip("/") + "/dashboard/billing/",
    }
    send_mail(subject, body, None, recipients)
    return len(recipients)
