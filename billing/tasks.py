"""Celery tasks: thin wrappers that call billing services (enqueued with on_commit).

A task that billing code enqueues lives beside that code (a task here that imported
its caller would be an import cycle); it is imported here for Celery's autodiscovery.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from billing import alerts, reconcile, services, subscriptions, topups, velocity
from billing.alerts import send_low_balance_email  # noqa: F401  (autodiscovery)
from billing.events import process_payment_event  # noqa: F401  (autodiscovery)
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
from billing.subscriptions import send_plan_quota_email  # noqa: F401  (autodiscovery)


@shared_task
def sweep_expired_holds() -> int:
    """Release holds whose request died without settling (e.g. a killed process)."""
    return holds_sweep()


@shared_task
def topups_recover() -> dict[str, int]:
    """Ask providers about pending top-ups whose callback never arrived."""
    return topups.topups_recover(older_than_seconds=settings.TOPUP_RECOVER_AFTER_SECONDS)


@shared_task
def low_balance_check() -> int:
    """Find wallets that crossed their low-balance threshold; queue one email each."""
    return len(alerts.low_balance_check())


@shared_task
def billing_reconcile() -> int:
    """Nightly reconciliation; emails the admins when the books do not balance."""
    found = reconcile.reconcile_run()
    if found:
        reconcile.reconcile_alert_admins(discrepancies=found)
    return len(found)


@shared_task
def plan_quota_check() -> int:
    """Claim the monthly-quota emails (80 %, 100 %) due; each is sent by its own task."""
    return len(subscriptions.plan_quota_check())


@shared_task
def subscriptions_expire() -> int:
    """Renew demo subscriptions (free), then expire subscriptions whose period (and
    grace) ended without a renewal."""
    subscriptions.subscriptions_demo_renew()
    return subscriptions.subscriptions_expire_lapsed()


@shared_task
def usage_buckets_purge() -> int:
    """Drop the usage buckets no plan window or cap counts any more."""
    return services.usage_buckets_purge(now=timezone.now())


@shared_task
def payment_velocity_scan() -> int:
    """Flag organizations whose recent top-ups trip the velocity rules; returns the flags
    opened (beat: `payment-velocity-scan`, with the anomaly scan)."""
    return velocity.payment_velocity_scan()
