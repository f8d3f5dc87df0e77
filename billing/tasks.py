"""Celery tasks: thin wrappers that call billing services (enqueued with on_commit)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from billing import services
from billing.holds import holds_sweep
from billing.invoice_tasks import (  # noqa: F401  (autodiscovery imports tasks.py only)
    invoices_overdue,
    send_invoice_email,
    send_invoice_reminder,
)
from billing.statement_tasks import (  # noqa: F401  (autodiscovery imports tasks.py only)
    send_statement_email,
    statements_issue_previous_month,
)

NOT_READY_RETRIES = 12


@shared_task
def sweep_expired_holds() -> int:
    """Release holds whose request died without settling (e.g. a killed process)."""
    return holds_sweep()


@shared_task(bind=True, max_retries=NOT_READY_RETRIES, autoretry_for=(OSError, OperationalError))
def process_payment_event(self: Any, event_pk: int) -> str:
    """Apply a stored provider event; retries (backing off) while its payment is unknown."""
    from billing.events import Outcome, payment_event_process

    outcome = payment_event_process(event_pk=event_pk)
    if outcome == Outcome.NOT_READY:
        raise self.retry(countdown=min(5 * 2**self.request.retries, 900))
    return str(outcome)


@shared_task
def topups_recover() -> dict[str, int]:
    """Ask providers about pending top-ups whose callback never arrived."""
    from billing.topups import topups_recover as recover

    return recover(older_than_seconds=settings.TOPUP_RECOVER_AFTER_SECONDS)


@shared_task
def low_balance_check() -> int:
    """Find wallets that crossed their low-balance threshold; queue one email each."""
    from billing.alerts import low_balance_check as check

    return len(check())


@shared_task(autoretry_for=(OSError,), max_retries=5, retry_backoff=True)
def send_low_balance_email(alert_id: int) -> int:
    from billing.alerts import low_balance_email_send

    return low_balance_email_send(alert_id=alert_id)


@shared_task
def billing_reconcile() -> int:
    """Nightly reconciliation; emails the admins when the books do not balance."""
    from billing.reconcile import reconcile_alert_admins, reconcile_run

    found = reconcile_run()
    if found:
        reconcile_alert_admins(discrepancies=found)
    return len(found)


@shared_task
def plan_quota_check() -> int:
    """Claim the monthly-quota emails (80 %, 100 %) due; each is sent by its own task."""
    from billing.subscriptions import plan_quota_check as check

    return len(check())


@shared_task(autoretry_for=(OSError,), max_retries=5, retry_backoff=True)
def send_plan_quota_email(subscription_id: int, level: int, month: str) -> int:
    from billing.subscriptions import plan_quota_email_send

    return plan_quota_email_send(subscription_id=subscription_id, level=level, month=month)


@shared_task
def subscriptions_expire() -> int:
    """Renew demo subscriptions (free), then expire subscriptions whose period (and
    grace) ended without a renewal."""
    from billing.subscriptions import subscriptions_demo_renew, subscriptions_expire_lapsed

    subscriptions_demo_renew()
    return subscriptions_expire_lapsed()


@shared_task
def usage_buckets_purge() -> int:
    """Drop the usage buckets no plan window or cap counts any more."""
    return services.usage_buckets_purge(now=timezone.now())
