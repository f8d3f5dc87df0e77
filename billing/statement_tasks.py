"""Celery tasks for the monthly statements (registered through billing/tasks.py)."""

from __future__ import annotations

from celery import shared_task

from billing.invoice_tasks import invoices_issue_for
from billing.statements import (
    previous_period,
    statement_email,
    statements_issue_month,
    statements_to_email,
)


@shared_task
def statements_issue_previous_month() -> int:
    """On the 1st: issue last month's statements, then queue one email each. Statements
    of the month not emailed yet (an earlier run cut short) are queued again."""
    period = previous_period()
    issued = statements_issue_month(period=period)
    for statement_id in statements_to_email(period=period):
        send_statement_email.delay(statement_id)
    invoices_issue_for(period)  # credit lines: what the statements show owed
    return len(issued)


@shared_task(autoretry_for=(OSError,), max_retries=5, retry_backoff=True)
def send_statement_email(statement_id: int) -> int:
    return statement_email(statement_id=statement_id)
