"""Stripe events about top-ups: credit, close, refund and dispute them (events verified
by billing/providers/stripe.py; plans' events go to stripe_subscriptions.py)."""

from __future__ import annotations

from typing import Any

from billing.providers.stripe import (
    CLOSING_EVENTS,
    SESSION_EVENTS,
    object_id,
    topup_for_payment,
    topup_for_session,
)
from billing.topups import (
    topup_close,
    topup_confirm,
    topup_dispute_record,
    topup_refund_record,
)
from billing.velocity import dispute_flag_raise


def event_apply(event: dict[str, Any]) -> str:
    """Act on one verified event; returns what it did. Idempotent (see billing.topups)."""
    kind = event.get("type", "")
    obj: dict[str, Any] = event.get("data", {}).get("object", {})
    if kind in SESSION_EVENTS or kind in CLOSING_EVENTS:
        topup = topup_for_session(obj)
        if topup is None:
            return "ignored: not a TokenHub session"
        if kind in CLOSING_EVENTS:
            closed = topup_close(topup_id=topup.pk, state=CLOSING_EVENTS[kind])
            return "closed" if closed else "unchanged"
        if obj.get("payment_status") != "paid":
            return "waiting: payment not settled yet"  # delayed methods finish asynchronously
        credited = topup_confirm(
            topup_id=topup.pk,
            payment_id=object_id(obj.get("payment_intent")),
            amount=int(obj.get("amount_total") or 0),
            currency=str(obj.get("currency") or ""),
        )
        return "credited" if credited else "already credited"
    if kind == "charge.refunded":
        topup = topup_for_payment(obj.get("payment_intent"))
        if topup is None:
            return "ignored: not a TokenHub payment"
        entry = topup_refund_record(
            topup_id=topup.pk, refunded_total=int(obj.get("amount_refunded") or 0)
        )
        return "debited" if entry else "already debited"
    if kind == "charge.dispute.created":
        topup = topup_for_payment(obj.get("payment_intent"), obj.get("charge"))
        if topup is None:
            return "ignored: not a TokenHub payment"
        entry = topup_dispute_record(
            topup_id=topup.pk, dispute_id=str(obj.get("id")), amount=int(obj.get("amount") or 0)
        )
        dispute_flag_raise(organization_id=topup.organization_id, topup_id=topup.pk)
        return "debited" if entry else "already debited"
    return f"ignored: {kind}"
