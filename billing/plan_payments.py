"""Plan payments: one row per subscription period somebody paid for, which the monthly
statements list as plan charges.

Recorded by the paths that confirm a period was paid, in their transaction: Stripe's
`invoice.paid` (billing/provider_events/stripe_subscriptions.py; the invoice id is the
reference), the demo provider's checkout (billing/provider_events/demo.py) and its renewals
(billing/subscriptions.subscriptions_demo_renew). Plans granted by a redemption code or by
staff are not payments and get no row: nothing was paid, there is no provider reference
to keep them unique, and the subscription itself records the grant.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.models import PlanPayment, Subscription


def plan_payment_record(
    *,
    subscription: Subscription,
    provider: str,
    provider_ref: str,
    amount: int,
    currency: str,
    period_start: dt.datetime,
    period_end: dt.datetime,
    paid_at: dt.datetime | None = None,
) -> tuple[PlanPayment, bool]:
    """Record that SUBSCRIPTION's period was paid: AMOUNT minor units of CURRENCY.

    Idempotent per (PROVIDER, PROVIDER_REF): a replay returns the row recorded first,
    unchanged, and False. Atomic; call it inside the transaction that applies the payment
    so the two stand or fall together."""
    if not provider_ref:
        raise ValueError("a plan payment needs the provider's reference")
    if amount < 0:
        raise ValueError("a plan payment is not negative")
    with transaction.atomic():
        return PlanPayment.objects.get_or_create(
            provider=provider,
            provider_ref=provider_ref,
            defaults={
                "subscription": subscription,
                "organization_id": subscription.organization_id,
                "amount": amount,
                "currency": currency.lower(),
                "period_start": period_start,
                "period_end": period_end,
                "paid_at": paid_at or timezone.now(),
            },
        )


def stripe_invoice_paid_at(invoice: dict[str, Any]) -> dt.datetime:
    """When Stripe says the invoice was paid (status_transitions.paid_at), else now."""
    paid_at = (invoice.get("status_transitions") or {}).get("paid_at")
    if isinstance(paid_at, int) and not isinstance(paid_at, bool) and paid_at > 0:
        return dt.datetime.fromtimestamp(paid_at, dt.UTC)
    return timezone.now()


def plan_payment_from_stripe_invoice(
    *,
    subscription: Subscription,
    invoice: dict[str, Any],
    period: tuple[dt.datetime, dt.datetime] | None,
) -> PlanPayment | None:
    """Record a paid Stripe invoice of SUBSCRIPTION (first period, renewal, proration of a
    plan change); PERIOD is the service period it pays for (the subscription's current
    one when the invoice names none). None for an invoice without an id."""
    invoice_id = str(invoice.get("id") or "")
    if not invoice_id:
        return None
    start, end = period or (subscription.current_period_start, subscription.current_period_end)
    amount = invoice.get("amount_paid")
    payment, _ = plan_payment_record(
        subscription=subscription,
        provider=Subscription.Provider.STRIPE,
        provider_ref=invoice_id,
        amount=amount if isinstance(amount, int) and not isinstance(amount, bool) else 0,
        currency=str(invoice.get("currency") or subscription.plan.currency),
        period_start=start,
        period_end=end,
        paid_at=stripe_invoice_paid_at(invoice),
    )
    return payment
