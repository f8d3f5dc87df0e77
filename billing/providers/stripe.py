"""Stripe: one-time Checkout Sessions, signed webhooks, session status, refunds, and the
calls plans make (Checkout in subscription mode, cancel/resume/change of a subscription).

Calls go through the official client pinned to STRIPE_API_VERSION; webhooks rendered in
another API version are refused (their payload shapes could differ from what we read).
What subscription and top-up events do is in billing/provider_events/.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

import stripe
from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext as _

from billing.exceptions import PaymentNotReady
from billing.models import TopUp
from billing.providers.base import (
    Checkout,
    InvalidCallback,
    PaymentStatus,
    ProviderError,
    StatusReport,
)

if TYPE_CHECKING:
    from stripe.params import SubscriptionUpdateParams, SubscriptionUpdateParamsItemPriceData
    from stripe.params.checkout import SessionCreateParams, SessionCreateParamsLineItemPriceData

    from accounts.models import Organization
    from billing.models import Plan

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
                payment_id=object_id(session.payment_intent),
                amount=session.amount_total,
                currency=session.currency or "",
            )
        if session.status == "expired":
            return StatusReport(status=PaymentStatus.EXPIRED)
        return StatusReport(status=PaymentStatus.PENDING)

    def plan_checkout(self, *, organization: Organization, plan: Plan, email: str) -> Checkout:
        return subscription_checkout_create(organization=organization, plan=plan, email=email)

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


def object_id(value: Any) -> str:
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


def topup_for_session(session: dict[str, Any]) -> TopUp | None:
    topup = TopUp.objects.filter(provider=NAME, provider_ref=session.get("id", "")).first()
    ref = session.get("client_reference_id") or ""
    if topup is None and ref.isdigit():
        # The session id is saved after the create call returns; a webhook can win that race.
        topup = TopUp.objects.filter(provider=NAME, pk=int(ref)).first()
    return topup


def topup_for_payment(payment_intent: Any, charge: Any = None) -> TopUp | None:
    """The top-up a refund or dispute is about; None when it is not a TokenHub payment.

    Raises PaymentNotReady while that cannot be told yet (Stripe unreachable)."""
    pi = object_id(payment_intent)
    try:
        if not pi and charge:
            # Older disputes carry only the charge; ask Stripe for its payment intent.
            pi = object_id(_client().v1.charges.retrieve(object_id(charge)).payment_intent)
        if not pi:
            return None
        topup = TopUp.objects.filter(provider=NAME, provider_payment_id=pi).first()
        if topup is not None:
            return topup
        # Not matched yet (the completion may not be processed): the payment intent
        # carries the top-up id in its metadata, set when the session was created.
        intent = _client().v1.payment_intents.retrieve(pi)
    except stripe.StripeError as exc:
        raise PaymentNotReady(f"cannot look up payment {pi or object_id(charge)}: {exc}") from None
    metadata = intent.metadata.to_dict() if intent.metadata else {}
    ref = str(metadata.get("topup_id", ""))
    return TopUp.objects.filter(provider=NAME, pk=int(ref)).first() if ref.isdigit() else None


# --- Plans: Checkout in subscription mode, and the subscription's later changes ----------

# Each plan is one Stripe product with this id (created on first use), so that the price
# of a subscription item names its plan even after a change Stripe applied on its own
# (a pending update paid later carries no metadata).
PLAN_PRODUCT_PREFIX = "tokenhub_plan_"


@dataclass(frozen=True, slots=True)
class StripeSubscription:
    """What TokenHub reads of a Stripe subscription."""

    id: str
    status: str  # Stripe's: active, trialing, past_due, unpaid, canceled, incomplete, ...
    organization_id: int | None  # from the metadata set at checkout
    plan_id: int | None  # from the item's product, else the metadata
    item_id: str
    period_start: dt.datetime | None
    period_end: dt.datetime | None
    cancel_at_period_end: bool


def plan_product_id(plan_id: int) -> str:
    return f"{PLAN_PRODUCT_PREFIX}{plan_id}"


def _int_or_none(value: Any) -> int | None:
    text = str(value or "")
    return int(text) if text.isdigit() else None


def _time(value: Any) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(value), dt.UTC) if value else None


def subscription_state(obj: Mapping[str, Any]) -> StripeSubscription:
    """A subscription object (a webhook's, or an API answer's as a dict) as we read it.

    Periods are on the items since API version 2025-03-31; the first item is the plan's
    (TokenHub subscriptions have one)."""
    items = (obj.get("items") or {}).get("data") or [{}]
    item = items[0]
    price = item.get("price") or {}
    product = object_id(price.get("product"))
    metadata = obj.get("metadata") or {}
    plan_id = (
        _int_or_none(product.removeprefix(PLAN_PRODUCT_PREFIX))
        if product.startswith(PLAN_PRODUCT_PREFIX)
        else _int_or_none(metadata.get("plan_id"))
    )
    return StripeSubscription(
        id=str(obj.get("id") or ""),
        status=str(obj.get("status") or ""),
        organization_id=_int_or_none(metadata.get("organization_id")),
        plan_id=plan_id,
        item_id=str(item.get("id") or ""),
        period_start=_time(item.get("current_period_start") or obj.get("current_period_start")),
        period_end=_time(item.get("current_period_end") or obj.get("current_period_end")),
        cancel_at_period_end=bool(obj.get("cancel_at_period_end") or obj.get("cancel_at")),
    )


def _refused(what: str, exc: stripe.StripeError) -> ProviderError:
    return ProviderError(
        _("Stripe refused %(what)s: %(reason)s") % {"what": what, "reason": exc.user_message or exc}
    )


def plan_product_ensure(plan: Plan) -> str:
    """The plan's Stripe product id, creating the product the first time."""
    product = plan_product_id(plan.pk)
    try:
        _client().v1.products.create(
            {"id": product, "name": plan.name, "metadata": {"plan_id": str(plan.pk)}}
        )
    except stripe.InvalidRequestError as exc:
        if exc.code != "resource_already_exists":
            raise _refused(_("the plan's product"), exc) from None
    except stripe.StripeError as exc:
        raise _refused(_("the plan's product"), exc) from None
    return product


def subscription_checkout_create(
    *, organization: Organization, plan: Plan, email: str = ""
) -> Checkout:
    """A Checkout Session in subscription mode for PLAN; the subscription's metadata carry
    the organization and the plan, so that every later event can be matched."""
    product = plan_product_ensure(plan)
    back = settings.SITE_URL.rstrip("/") + reverse("billing-return")
    metadata = {"organization_id": str(organization.pk), "plan_id": str(plan.pk)}
    # The price is written out at each call: every Stripe endpoint has its own typed shape.
    price: SessionCreateParamsLineItemPriceData = {
        "currency": plan.currency.lower(),
        "unit_amount": plan.price,
        "recurring": {"interval": plan.interval},
        "product": product,
    }
    params: SessionCreateParams = {
        "mode": "subscription",
        "client_reference_id": f"plan-{organization.pk}-{plan.pk}",
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
        "line_items": [{"quantity": 1, "price_data": price}],
        # Stripe fills in the session id.
        "success_url": f"{back}?provider=stripe&plan_session={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{back}?provider=stripe&plan_session=none&canceled=1",
    }
    if email:
        params["customer_email"] = email
    try:
        session = _client().v1.checkout.sessions.create(params)
    except stripe.StripeError as exc:
        raise _refused(_("the checkout"), exc) from None
    if not session.url:
        raise ProviderError(_("Stripe returned a checkout session without a URL"))
    return Checkout(ref=session.id, url=session.url)


def checkout_session_retrieve(session_id: str) -> dict[str, Any]:
    try:
        return _client().v1.checkout.sessions.retrieve(session_id).to_dict()
    except stripe.StripeError as exc:
        raise ProviderError(f"Stripe session query failed: {exc}") from None


def subscription_retrieve(subscription_id: str) -> StripeSubscription:
    try:
        sub = _client().v1.subscriptions.retrieve(subscription_id)
    except stripe.StripeError as exc:
        raise ProviderError(f"Stripe subscription query failed: {exc}") from None
    return subscription_state(sub.to_dict())


def subscription_cancel_at_period_end(subscription_id: str, *, cancel: bool) -> StripeSubscription:
    """Cancel at the end of the period (CANCEL) or take that back."""
    try:
        sub = _client().v1.subscriptions.update(subscription_id, {"cancel_at_period_end": cancel})
    except stripe.StripeError as exc:
        raise _refused(_("the change"), exc) from None
    return subscription_state(sub.to_dict())


def subscription_plan_change(subscription_id: str, *, plan: Plan) -> StripeSubscription:
    """Move the subscription's item to PLAN's price, prorated by Stripe and invoiced at
    once. The update waits for that invoice's payment (`pending_if_incomplete`): the
    plan changes only when paid, and `customer.subscription.updated` says so."""
    product = plan_product_ensure(plan)
    current = subscription_retrieve(subscription_id)
    if not current.item_id:
        raise ProviderError("the Stripe subscription has no item to change")
    price: SubscriptionUpdateParamsItemPriceData = {
        "currency": plan.currency.lower(),
        "unit_amount": plan.price,
        "recurring": {"interval": plan.interval},
        "product": product,
    }
    params: SubscriptionUpdateParams = {
        "items": [{"id": current.item_id, "price_data": price}],
        "proration_behavior": "always_invoice",
        "payment_behavior": "pending_if_incomplete",
    }
    try:
        sub = _client().v1.subscriptions.update(subscription_id, params)
    except stripe.StripeError as exc:
        raise _refused(_("the change"), exc) from None
    return subscription_state(sub.to_dict())


def subscription_cancel_now(subscription_id: str) -> StripeSubscription:
    """End the subscription at once (no refund: Stripe's dashboard does those)."""
    try:
        sub = _client().v1.subscriptions.cancel(subscription_id)
    except stripe.StripeError as exc:
        raise _refused(_("the cancellation"), exc) from None
    return subscription_state(sub.to_dict())
