"""Work-order notifications: customers hear of staff replies, staff of new orders and
customer replies. Internal notes send nothing.

Emails carry the order's number, subject and a link, never the message text: the thread
is read in the portal or the admin. Sent right after the transaction commits; a mail
server failure is logged (order number only) and does not undo the reply.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import User, WorkOrder

log = logging.getLogger(__name__)


def staff_recipients(*, work_order: WorkOrder) -> list[str]:
    """SUPPORT_EMAIL when set, else every active staff user; plus the assignee."""
    support = settings.SUPPORT_EMAIL or ""
    emails = (
        {support}
        if support
        else set(
            User.objects.filter(is_staff=True, is_active=True)
            .exclude(email="")
            .values_list("email", flat=True)
        )
    )
    assignee = work_order.assignee
    if assignee is not None and assignee.is_active and assignee.email:
        emails.add(assignee.email)
    return sorted(emails)


def _customer_recipients(work_order: WorkOrder) -> list[str]:
    opener = work_order.opened_by
    if opener is None or not opener.is_active or not opener.email:
        return []
    return [opener.email]


def _send(*, work_order: WorkOrder, template: str, recipients: list[str], link: str) -> int:
    if not recipients:
        return 0
    context = {"work_order": work_order, "link": link}
    try:
        send_mail(
            subject=render_to_string(f"support/email/{template}_subject.txt", context).strip(),
            message=render_to_string(f"support/email/{template}_body.txt", context),
            from_email=None,
            recipient_list=recipients,
        )
    except OSError:
        log.warning("work order %s: notification email failed", work_order.pk)
        return 0
    return len(recipients)


def _site(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def notify_staff(*, work_order: WorkOrder, new: bool) -> int:
    """A new order (NEW) or a customer's reply; returns the number of recipients."""
    return _send(
        work_order=work_order,
        template="staff_new" if new else "staff_reply",
        recipients=staff_recipients(work_order=work_order),
        link=_site(reverse("admin:accounts_workorder_change", args=[work_order.pk])),
    )


def notify_customer(*, work_order: WorkOrder) -> int:
    """A staff reply (not an internal note); returns the number of recipients."""
    return _send(
        work_order=work_order,
        template="customer_reply",
        recipients=_customer_recipients(work_order),
        link=_site(reverse("support-detail", args=[work_order.pk])),
    )
