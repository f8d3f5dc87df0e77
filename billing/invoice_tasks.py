"""Celery tasks for invoices of credit lines (registered through billing/tasks.py)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from billing.invoices import (
    invoice_email,
    invoice_reminder_send,
    invoices_issue_month,
    invoices_reminders_due,
    invoices_suspend_overdue,
    invoices_to_email,
)


def invoices_issue_for(period: dt.date) -> int:
    """After the statements of PERIOD: invoice what credit-line organizations owe, then
    queue one email each (again for any an earlier run left unsent)."""
    issued = invoices_issue_month(period=period)
    for invoice_id in invoices_to_email(period=period):
        send_invoice_email.delay(invoice_id)
    return len(issued)


@shared_task(autoretry_for=(OSError,), max_retries=5, retry_backoff=True)
def send_invoice_email(invoice_id: int) -> int:
    return invoice_email(invoice_id=invoice_id)


@shared_task
def invoices_overdue() -> int:
    """Hourly: queue the reminders due, then suspend organizations past the grace."""
    now = timezone.now()
    for invoice_id, kind in invoices_reminders_due(now=now):
        send_invoice_reminder.delay(invoice_id, kind)
    return len(invoices_suspend_overdue(now=now))


@shared_task(autoretry_for=(OSError,), max_retries=5, retry_backoff=True)
def send_invoice_reminder(invoice_id: int, kind: str) -> int:
    return invoice_reminder_send(invoice_id=invoice_id, kind=kind)
