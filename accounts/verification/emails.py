"""Verification notifications: the organization's owners hear of every step, the operator
of every submission. Emails name the organization and the step and link to the page; they
carry staff's reason or question (written for the customer), never the documents. Sent
after the commit; a mail server failure is logged (request id only) and undoes nothing.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import Organization, VerificationRequest
from accounts.selectors import operator_emails
from accounts.verification.selectors import owner_emails

log = logging.getLogger(__name__)


def _send(*, template: str, recipients: list[str], context: dict[str, object]) -> int:
    if not recipients:
        return 0
    try:
        send_mail(
            subject=render_to_string(
                f"accounts/email/verification_{template}_subject.txt", context
            ).strip(),
            message=render_to_string(f"accounts/email/verification_{template}_body.txt", context),
            from_email=None,
            recipient_list=recipients,
        )
    except OSError:
        log.warning("verification %s: notification email failed", context.get("request_id"))
        return 0
    return len(recipients)


def _site(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def notify_owners(
    *, organization: Organization, step: str, verification: VerificationRequest | None = None
) -> int:
    """STEP is one of services.STEPS; returns the number of recipients."""
    context = {
        "organization": organization,
        "step": step,
        "verification": verification,
        "request_id": verification.pk if verification else None,
        "link": _site(reverse("verification")),
    }
    return _send(
        template="owner", recipients=owner_emails(organization=organization), context=context
    )


def notify_operator(*, verification: VerificationRequest, step: str) -> int:
    """A new submission or a resubmission waits for review."""
    context = {
        "organization": verification.organization,
        "step": step,
        "verification": verification,
        "request_id": verification.pk,
        "link": _site(reverse("admin:accounts_verificationrequest_change", args=[verification.pk])),
    }
    return _send(template="operator", recipients=operator_emails(), context=context)
