"""Stripe's subscription events, applied through billing/subscriptions.py.

- `checkout.session.completed` (mode subscription): start, from the subscription as
  Stripe has it now;
- `invoice.paid`: renew to the invoice's period (started first if not known yet);
- `invoice.payment_failed`: past due, with a grace period;
- `customer.subscription.updated`: plan, cancel at period end, ending statuses, read from
  the subscription as Stripe has it now, not from the event's copy, which may be older
  than one applied before;
- `customer.subscription.deleted`: expire.

Each is idempotent and safe out of order (see the services). Stripe unreachable while an
event needs it raises PaymentNotReady, so the event is retried.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from accounts.models import Organization
from billing.exceptions import PaymentMismatch, PaymentNotReady
from billing.models import Plan, Subscription
from billing.plan_payments import plan_payment_from_stripe_invoice
from billing.providers import ProviderError
from billing.providers import stripe as stripe_api
from billing.providers.stripe import StripeSubscription
from billing.subscriptions import (
    SubscriptionConflict,
    SubscriptionError,
    subscription_cancel_flag_apply,
    subscription_expire,
    subscription_fail,
    subscription_plan_apply,
    subscription_renew,
    subscription_start,
)

STRIPE = Subscription.Provider.STRIPE
INVOICE_EVENTS = frozenset({"invoice.paid", "invoice.payment_failed"})
SUBSCRIPTION_EVENTS = frozenset({"customer.subscription.updated", "customer.subscription.deleted"})
# Stripe statuses under which a subscription is (still) paid for or being collected.
LIVE = frozenset({"active", "trialing", "past_due"})
# Stripe statuses after which it will not be collected any more.
ENDED = frozenset({"canceled", "incomplete_expired", "unpaid"})


def handles(event: dict[str, Any]) -> bool:
    """Whether EVENT is about a subscription (the rest is billing/providers/stripe.py's)."""
    kind = str(event.get("type", ""))
    if kind in INVOICE_EVENTS or kind in SUBSCRIPTION_EVENTS:
        return True
    obj = event.get("data", {}).get("object", {})
    return kind.startswith("checkout.session.") and obj.get("mode") == "subscription"


def _retrieve(subscription_id: str) -> StripeSubscription:
    try:
        return stripe_api.subscription_retrieve(subscription_id)
    except ProviderError as exc:
        raise PaymentNotReady(str(exc)) from None


def _start(state: StripeSubscription) -> Subscription | None:
    """Our subscription for a Stripe one we have not recorded yet; None when it is not
    TokenHub's or not paid for."""
    if state.status not in LIVE or state.period_start is None or state.period_end is None:
        return None
    organization = Organization.objects.filter(pk=state.organization_id or 0).first()
    plan = Plan.objects.filter(pk=state.plan_id or 0).first()
    if organization is None or plan is None:
        return None
    try:
        subscription = subscription_start(
            organization=organization,
            plan=plan,
            provider=STRIPE,
            provider_ref=state.id,
            period_start=state.period_start,
            period_end=state.period_end,
        )
    except SubscriptionConflict as exc:
        raise PaymentMismatch(str(exc)) from None
    except SubscriptionError as exc:  # cannot happen for a paid one; refuse loudly if it does
        raise PaymentMismatch(str(exc)) from None
    if state.status == "past_due":
        subscription_fail(provider=STRIPE, provider_ref=state.id, period_end=None)
    return subscription


def _ensure(subscription_id: str) -> tuple[Subscription | None, bool]:
    """(our subscription for SUBSCRIPTION_ID, whether this call started it)."""
    known = Subscription.objects.filter(provider=STRIPE, provider_ref=subscription_id).first()
    if known is not None or not subscription_id:
        return known, False
    started = _start(_retrieve(subscription_id))
    return started, started is not None


def _invoice_subscription(invoice: dict[str, Any]) -> str:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return stripe_api.object_id(details.get("subscription") or invoice.get("subscription"))


def _invoice_period(invoice: dict[str, Any]) -> tuple[dt.datetime, dt.datetime] | None:
    """The service period an invoice pays for: its lines' latest (a proration line of a
    plan change ends with the current period, so it does not look newer)."""
    periods = [
        (int(line["period"]["start"]), int(line["period"]["end"]))
        for line in (invoice.get("lines") or {}).get("data") or []
        if (line.get("period") or {}).get("end")
    ]
    if not periods:
        return None
    start, end = max(periods, key=lambda p: p[1])
    return dt.datetime.fromtimestamp(start, dt.UTC), dt.datetime.fromtimestamp(end, dt.UTC)


def _checkout_completed(session: dict[str, Any]) -> str:
    if session.get("payment_status") not in ("paid", "no_payment_required"):
        return "waiting: payment not settled yet"
    subscription, started = _ensure(stripe_api.object_id(session.get("subscription")))
    if subscription is None:
        return "ignored: not a TokenHub subscription, or not paid for"
    return "started" if started else "already started"


def _invoice_paid(invoice: dict[str, Any]) -> str:
    ref = _invoice_subscription(invoice)
    subscription, started = _ensure(ref)
    if subscription is None:
        return "ignored: not a TokenHub subscription"
    period = _invoice_period(invoice)
    # Every paid invoice is a plan payment (first period, renewal, proration), recorded in
    # this event's transaction, once per invoice id however often it is delivered.
    plan_payment_from_stripe_invoice(subscription=subscription, invoice=invoice, period=period)
    if period is None:
        return "started" if started else "ignored: the invoice names no period"
    if subscription_renew(
        provider=STRIPE, provider_ref=ref, period_start=period[0], period_end=period[1]
    ):
        return "renewed"
    subscription.refresh_from_db()
    if (
        subscription.status == Subscription.Status.EXPIRED
        and period[1] > subscription.current_period_end
        # Paid after we gave up on it: only Stripe can say whether it still runs.
        and _retrieve(ref).status in LIVE - {"past_due"}
    ):
        try:
            renewed = subscription_renew(
                provider=STRIPE,
                provider_ref=ref,
                period_start=period[0],
                period_end=period[1],
                reactivate=True,
            )
        except SubscriptionConflict as exc:
            raise PaymentMismatch(str(exc)) from None
        if renewed:
            return "reactivated"
    return "started" if started else "unchanged"


def _invoice_failed(invoice: dict[str, Any]) -> str:
    period = _invoice_period(invoice)
    failed = subscription_fail(
        provider=STRIPE,
        provider_ref=_invoice_subscription(invoice),
        period_end=period[1] if period else None,
    )
    return "past due" if failed else "unchanged"


def _subscription_updated(obj: dict[str, Any]) -> str:
    ref = str(obj.get("id") or "")
    state = _retrieve(ref)
    subscription = Subscription.objects.filter(provider=STRIPE, provider_ref=ref).first()
    if subscription is None:
        return "started" if _start(state) is not None else "ignored: not a TokenHub subscription"
    if state.status in ENDED:
        return "expired" if subscription_expire(provider=STRIPE, provider_ref=ref) else "unchanged"
    done = []
    plan = Plan.objects.filter(pk=state.plan_id or 0).first()
    if plan is not None and subscription_plan_apply(provider=STRIPE, provider_ref=ref, plan=plan):
        done.append("plan changed")
    if subscription_cancel_flag_apply(
        provider=STRIPE, provider_ref=ref, cancel=state.cancel_at_period_end
    ):
        done.append("cancels at period end" if state.cancel_at_period_end else "resumed")
    if state.status == "past_due" and subscription_fail(
        provider=STRIPE, provider_ref=ref, period_end=None
    ):
        done.append("past due")
    return ", ".join(done) or "unchanged"


def event_apply(event: dict[str, Any]) -> str:
    """Act on one verified subscription event; returns what it did. Idempotent."""
    kind = str(event.get("type", ""))
    obj: dict[str, Any] = event.get("data", {}).get("object", {})
    if kind == "checkout.session.completed":
        return _checkout_completed(obj)
    if kind.startswith("checkout.session."):
        return f"ignored: {kind}"  # nothing is pending on our side for a plan's checkout
    if kind == "invoice.paid":
        return _invoice_paid(obj)
    if kind == "invoice.payment_failed":
        return _invoice_failed(obj)
    if kind == "customer.subscription.updated":
        return _subscription_updated(obj)
    if kind == "customer.subscription.deleted":
        expired = subscription_expire(provider=STRIPE, provider_ref=str(obj.get("id") or ""))
        return "expired" if expired else "unchanged"
    return f"ignored: {kind}"


def checkout_return(*, session_id: str, organization_ids: list[int]) -> Subscription | None:
    """The customer is back from Stripe's checkout: apply the session now rather than wait
    for its webhook (same idempotent path). Only a session of one of ORGANIZATION_IDS."""
    try:
        session = stripe_api.checkout_session_retrieve(session_id)
    except ProviderError:
        return None
    org = str((session.get("metadata") or {}).get("organization_id", ""))
    if session.get("mode") != "subscription" or not org.isdigit():
        return None
    if int(org) not in organization_ids or session.get("status") != "complete":
        return None
    try:
        _checkout_completed(session)
    except (PaymentNotReady, PaymentMismatch):
        return None
    ref = stripe_api.object_id(session.get("subscription"))
    return Subscription.objects.filter(provider=STRIPE, provider_ref=ref).first()
