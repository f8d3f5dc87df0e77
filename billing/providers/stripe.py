"""Stripe: one-time Checkout Sessions, signed webhooks, session status, refunds.

Calls go through the official client pinned to STRIPE_API_VERSION; webhooks rendered in
another API version are refused (their payload shapes could differ from what we read).
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import stripe
from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext as _

from billing.exceptions import PaymentNotReady
from billing.models import TopUp
from billing.providers import (
    Checkout,
    InvalidCallback,
    PaymentStatus,
    ProviderError,
    StatusReport,
)

NAME = "stripe"
SESSION_EVENTS = frozenset(
    {"checkout.session.completed", "checkout.session.async_payment_succeeded"}
)
CLOSING_EVENTS = {
    "checkout.session.async_payment_failed": "failed",
    "checkout.session.expired": "expired",
}


def _client() -> stripe.StripeClient:
    base = settings.STRIPE_API_BASE
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        stripe_version=settings.STRIPE_API_VERSION,
        base_addresses={"api": base} if base else None,
        max_network_retries=2,
    )


class StripeProvider:
    name = NAME
    currency = "USD"

    def configured(self) -> bool:
        return bool(settings.STRIPE_SECRET_KEY)

    def minor_amount(self, usd: Decimal) -> int:
        return int((usd * 100).to_integral_value(rounding=ROUND_HALF_UP))

    def create_payment(self, topup: TopUp) -> Checkout:
        back = settings.SITE_URL.rstrip("/") + reverse("billing-return")
        metadata = {"topup_id": str(topup.pk)}
        try:
            session = _client().v1.checkout.sessions.create(
                {
                    "mode": "payment",
                    "client_reference_id": str(topup.pk),
                    "metadata": metadata,
                    "payment_intent_data": {"metadata": metadata},
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": topup.currency.lower(),
                                "unit_amount": topup.pay_amount,
                                "product_data": {"name": "TokenHub credit"},
                            },
                        }
                    ],
                    "success_url": f"{back}?provider=stripe&topup={topup.pk}",
                    "cancel_url": f"{back}?provider=stripe&topup={topup.pk}&canceled=1",
                },
                # One top-up, one session: a retried create returns the same session.
                {"idempotency_key": f"tokenhub-topup-{topup.pk}"},
            )
        except stripe.StripeError as exc:
            raise ProviderError(
                _("Stripe refused the checkout: %(reason)s") % {"reason": exc.user_message or exc}
            ) from None
        if not session.url:
            raise ProviderError(_("Stripe returned a checkout session without a URL"))
        return Checkout(ref=session.id, url=session.url)

    def query_status(self, topup: TopUp) -> StatusReport:
        try:
            session = _client().v1.checkout.sessions.retrieve(topup.provider_ref)
        except stripe.StripeError as exc:
            raise ProviderError(f"Stripe status query failed: {exc}") from None
        if session.payment_status == "paid":
            return StatusReport(
                status=PaymentStatus.PAID,
                payment_id=_id(session.payment_intent),
                amount=session.amount_total,
                currency=session.currency or "",
            )
        if session.status == "expired":
            return StatusReport(status=PaymentStatus.EXPIRED)
        return StatusReport(status=PaymentStatus.PENDING)

    def refund(self, topup: TopUp, amount: int) -> str:
        if not topup.provider_payment_id:
            raise ProviderError("this top-up has no Stripe payment to refund")
        try:
            refund = _client().v1.refunds.create(
                {"payment_intent": topup.provider_payment_id, "amount": amount},
                {"idempotency_key": f"tokenhub-refund-{topup.pk}-{topup.refunded_amount}"},
            )
        except stripe.StripeError as exc:
            raise ProviderError(f"Stripe refused the refund: {exc.user_message or exc}") from None
        return refund.id


def _id(value: Any) -> str:
    """An expandable field: an id string, or an object carrying one."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value["id"])


def webhook_verify(*, body: bytes, signature: str | None) -> dict[str, Any]:
    """The event in a webhook body, after checking signature, age and API version.

    Raises InvalidCallback; nothing is stored or changed before this passed.
    """
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise InvalidCallback("Stripe webhooks are not configured on this server")
    try:
        stripe.WebhookSignature.verify_header(
            body.decode("utf-8"), signature, secret, settings.STRIPE_WEBHOOK_TOLERANCE
        )
    except stripe.SignatureVerificationError:
        raise InvalidCallback("invalid or stale Stripe signature") from None
    except UnicodeDecodeError:
        raise InvalidCallback("webhook body is not UTF-8") from None
    try:
        event = json.loads(body)
    except ValueError:
        raise InvalidCallback("webhook body is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise InvalidCallback("webhook body is not a Stripe event")
    if event.get("api_version") != settings.STRIPE_API_VERSION:
        raise InvalidCallback(
            f"event API version {event.get('api_version')!r} is not the pinned "
            f"{settings.STRIPE_API_VERSION!r}; set the webhook endpoint's version"
        )
    return event


def _topup_for_session(session: dict[str, Any]) -> TopUp | None:
    topup = TopUp.objects.filter(provider=NAME, provider_ref=session.get("id", "")).first()
    ref = session.get("client_reference_id") or ""
    if topup is None and ref.isdigit():
        # The session id is saved after the create call returns; a webhook can win that race.
        topup = TopUp.objects.filter(provider=NAME, pk=int(ref)).first()
    return topup


def _topup_for_payment(payment_intent: Any, charge: Any = None) -> TopUp | None:
    """The top-up a refund or dispute is about; None when it is not a TokenHub payment.

    Raises PaymentNotReady while that cannot be told yet (Stripe unreachable)."""
    pi = _id(payment_intent)
    try:
        if not pi and charge:
            # Older disputes carry only the charge; ask Stripe for its payment intent.
            pi = _id(_client().v1.charges.retrieve(_id(charge)).payment_intent)
        if not pi:
            return None
        topup = TopUp.objects.filter(provider=NAME, provider_payment_id=pi).first()
        if topup is not None:
            return topup
        # Not matched yet (the completion may not be processed): the payment intent
        # carries the top-up id in its metadata, set when the session was created.
        intent = _client().v1.payment_intents.retrieve(pi)
    except stripe.StripeError as exc:
        raise PaymentNotReady(f"cannot look up payment {pi or _id(charge)}: {exc}") from None
    metadata = intent.metadata.to_dict() if intent.metadata else {}
    ref = str(metadata.get("topup_id", ""))
    return TopUp.objects.filter(provider=NAME, pk=int(ref)).first() if ref.isdigit() else None


def event_apply(event: dict[str, Any]) -> str:
    """Act on one verified event; returns what it did. Idempotent (see billing.topups)."""
    from billing.topups import (
        topup_close,
        topup_confirm,
        topup_dispute_record,
        topup_refund_record,
    )

    kind = event.get("type", "")
    obj: dict[str, Any] = event.get("data", {}).get("object", {})
    if kind in SESSION_EVENTS or kind in CLOSING_EVENTS:
        topup = _topup_for_session(obj)
        if topup is None:
            return "ignored: not a TokenHub session"
        if kind in CLOSING_EVENTS:
            closed = topup_close(topup_id=topup.pk, state=CLOSING_EVENTS[kind])
            return "closed" if closed else "unchanged"
        if obj.get("payment_status") != "paid":
            return "waiting: payment not settled yet"  # delayed methods finish asynchronously
        credited = topup_confirm(
            topup_id=topup.pk,
            payment_id=_id(obj.get("payment_intent")),
            amount=int(obj.get("amount_total") or 0),
            currency=str(obj.get("currency") or ""),
        )
        return "credited" if credited else "already credited"
    if kind == "charge.refunded":
        topup = _topup_for_payment(obj.get("payment_intent"))
        if topup is None:
            return "ignored: not a TokenHub payment"
        entry = topup_refund_record(
            topup_id=topup.pk, refunded_total=int(obj.get("amount_refunded") or 0)
        )
        return "debited" if entry else "already debited"
    if kind == "charge.dispute.created":
        topup = _topup_for_payment(obj.get("payment_intent"), obj.get("charge"))
        if topup is None:
            return "ignored: not a TokenHub payment"
        entry = topup_dispute_record(
            topup_id=topup.pk, dispute_id=str(obj.get("id")), amount=int(obj.get("amount") or 0)
        )
        return "debited" if entry else "already debited"
    return f"ignored: {kind}"
