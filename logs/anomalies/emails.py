"""The alert emails of anomaly detection: to the organization's owners, and for spend
anomalies to the operator as well. They carry amounts, key names and prefixes, networks:
never request content."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string

from accounts.models import ApiKey, Organization
from accounts.selectors import operator_emails
from logs.anomalies.selectors import owner_emails
from logs.models import AnomalyAlert


def _send(template: str, context: dict[str, Any], recipients: list[str]) -> None:
    if not recipients:
        return
    subject = render_to_string(f"logs/email/{template}_subject.txt", context).strip()
    body = render_to_string(f"logs/email/{template}_body.txt", context)
    send_mail(subject, body, None, recipients)


def anomaly_spend_email_send(
    *, alert: AnomalyAlert, organization: Organization, key: ApiKey | None
) -> int:
    """Email the owners and, separately, the operator (neither sees the other's address);
    returns the number of recipients."""
    site = settings.SITE_URL.rstrip("/")
    context = {
        "alert": alert,
        "detail": alert.detail,
        "organization": organization,
        "key": key,
        "keys_url": f"{site}/dashboard/keys/",
        "ceiling": alert.detail.get("ceiling"),
    }
    owners = owner_emails(organization.pk)
    operators = [e for e in operator_emails() if e not in owners]
    _send("anomaly_spend", context, owners)
    _send("anomaly_spend", {**context, "operator": True}, operators)
    return len(owners) + len(operators)


def anomaly_network_email_send(
    *, alert: AnomalyAlert, key: ApiKey, network: str, first_seen: dt.datetime
) -> int:
    """Email the owners that KEY was used from NETWORK for the first time."""
    owners = owner_emails(key.organization_id)
    context = {
        "alert": alert,
        "organization": key.organization,
        "key": key,
        "network": network,
        "first_seen": first_seen,
        "keys_url": settings.SITE_URL.rstrip("/") + "/dashboard/keys/",
    }
    _send("anomaly_network", context, owners)
    return len(owners)
