"""Demo payments: the whole top-up path (checkout, signed callback, credit, receipt) with no
money moving, so an embedded instance can be tried without a Stripe account.

On only with PAYMENTS_DEMO (embedded mode's default; production refuses it at startup
unless PAYMENTS_DEMO_IN_PRODUCTION). The checkout page's Pay and Cancel buttons post an
event signed with an HMAC keyed by SECRET_KEY: the amount or outcome cannot be forged,
and a replayed event credits nothing more (the event id is unique, crediting idempotent).
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.urls import reverse
from django.utils.crypto import salted_hmac

from billing.models import TopUp
from billing.providers import (
    Checkout,
    InvalidCallback,
    PaymentStatus,
    ProviderError,
    StatusReport,
)

NAME = "demo"
PAID = "paid"
CANCELED = "canceled"
_SALT = "billing.providers.demo.event"
_FIELDS = ("ref", "outcome", "amount", "currency")


def event_sign(event: Mapping[str, str]) -> str:
    """HMAC-SHA256 (keyed by SECRET_KEY) of the event's fields, in a fixed order."""
    message = json.dumps([str(event.get(field, "")) for field in _FIELDS])
    return salted_hmac(_SALT, message, algorithm="sha256").hexdigest()


def event_for(topup: TopUp, outcome: str) -> dict[str, str]:
    """The signed event the checkout page's OUTCOME button posts for TOPUP."""
    event = {
        "ref": topup.provider_ref,
        "outcome": outcome,
        "amount": str(topup.pay_amount),
        "currency": topup.currency,
    }
    return event | {"signature": event_sign(event)}


class DemoProvider:
    name = NAME

    @property
    def currency(self) -> str:
        return "USD"

    def configured(self) -> bool:
        return bool(settings.PAYMENTS_DEMO)

    def minor_amount(self, usd: Decimal) -> int:
        return int((usd * 100).to_integral_value(rounding=ROUND_HALF_UP))

    def create_payment(self, topup: TopUp) -> Checkout:
        ref = f"demo_{topup.pk}_{secrets.token_hex(6)}"
        site = settings.SITE_URL.rstrip("/")
        return Checkout(ref=ref, url=site + reverse("billing-demo-checkout", args=[ref]))

    def query_status(self, topup: TopUp) -> StatusReport:
        # Nothing to ask: the signed event from the checkout page is the only confirmation.
        return StatusReport(status=PaymentStatus.UNKNOWN)

    def refund(self, topup: TopUp, amount: int) -> str:
        raise ProviderError("demo payments moved no money; correct them with an adjustment")


def callback_verify(params: Mapping[str, str]) -> dict[str, str]:
    """The posted event after checking its signature (constant time); raises InvalidCallback."""
    if not DemoProvider().configured():
        raise InvalidCallback("demo payments are off on this server")
    data = {field: str(params.get(field, "")) for field in (*_FIELDS, "signature")}
    if data["outcome"] not in (PAID, CANCELED) or not data["ref"]:
        raise InvalidCallback("not a demo payment event")
    if not hmac.compare_digest(data["signature"], event_sign(data)):
        raise InvalidCallback("invalid demo payment signature")
    return data


def callback_apply(data: Mapping[str, str]) -> str:
    """Credit (exactly once) or close the top-up a verified event names."""
    from billing.exceptions import PaymentMismatch
    from billing.topups import topup_close, topup_confirm

    topup = TopUp.objects.filter(provider=NAME, provider_ref=data["ref"]).first()
    if topup is None:
        raise PaymentMismatch(f"no demo top-up {data['ref']!r}")
    if data["outcome"] == CANCELED:
        topup_close(topup_id=topup.pk, state=TopUp.State.FAILED)
        return "ignored: canceled"
    credited = topup_confirm(
        topup_id=topup.pk,
        payment_id=f"demo_pay_{topup.pk}",
        amount=int(data["amount"]),
        currency=data["currency"],
    )
    return "credited" if credited else "already credited"
