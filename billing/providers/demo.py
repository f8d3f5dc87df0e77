"""Demo payments: the whole top-up path (checkout, signed callback, credit, receipt) and a
plan's purchase with no money moving, so an embedded instance can be tried without a
Stripe account.

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

from accounts.models import Organization
from billing.models import Plan, TopUp
from billing.providers.base import (
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
# A plan's checkout: demoplan_<organization id>_<plan id>_<random>. The ref is signed with
# the amount, so neither the plan nor the organization can be swapped.
PLAN_PREFIX = "demoplan_"


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

    def plan_checkout(self, *, organization: Organization, plan: Plan, email: str) -> Checkout:
        return plan_checkout_create(organization_id=organization.pk, plan=plan)


def plan_checkout_create(*, organization_id: int, plan: Plan) -> Checkout:
    """A demo checkout page for PLAN; paying there starts the subscription (one period)."""
    ref = f"{PLAN_PREFIX}{organization_id}_{plan.pk}_{secrets.token_hex(6)}"
    site = settings.SITE_URL.rstrip("/")
    return Checkout(ref=ref, url=site + reverse("billing-demo-plan-checkout", args=[ref]))


def plan_ref_parse(ref: str) -> tuple[int, int] | None:
    """(organization id, plan id) of a plan checkout's REF; None for anything else."""
    if not ref.startswith(PLAN_PREFIX):
        return None
    parts = ref.removeprefix(PLAN_PREFIX).split("_")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1])


def plan_event_for(ref: str, plan: Plan, outcome: str) -> dict[str, str]:
    """The signed event the plan checkout page's OUTCOME button posts."""
    event = {
        "ref": ref,
        "outcome": outcome,
        "amount": str(plan.price),
        "currency": plan.currency.upper(),
    }
    return event | {"signature": event_sign(event)}


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
