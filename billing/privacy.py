"""Billing's part of a person's data export and erasure (registered in BillingConfig.ready()).

The ledger is kept on deletion (amounts, dates, anonymous ids); only the payer's email,
which providers echo in their events, is scrubbed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from accounts.privacy_sections import ErasureSubject, ExportSubject
from billing.models import LedgerEntry, PaymentEvent


def ledger_export(subject: ExportSubject) -> list[Mapping[str, object]]:
    """The ledgers of the organizations whose billing the person may see."""
    return list(
        LedgerEntry.objects.filter(wallet__organization__in=subject.billing_organization_ids)
        .order_by("pk")
        .values(
            "id",
            "wallet__organization_id",
            "kind",
            "amount",
            "balance_after",
            "source_type",
            "note",
            "created_at",
        )
    )


def payment_events_erase(subject: ErasureSubject) -> None:
    """Providers echo the payer's email in their events (Stripe's customer_details)."""
    email = subject.email
    for event in PaymentEvent.objects.filter(payload__icontains=email):
        event.payload = re.sub(re.escape(email), "deleted@deleted.invalid", event.payload,
                               flags=re.IGNORECASE)  # fmt: skip
        event.save(update_fields=["payload"])
