"""Payment providers behind one small interface; one module per provider.

A provider turns a pending `TopUp` into a page the customer pays on, verifies the
provider's callbacks, answers what became of a payment, and refunds. Adding Waffo,
Creem or direct Alipay/WeChat Pay means one new module and one line in `_REGISTRY`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from django.utils.translation import gettext as _

from billing.exceptions import BillingError

if TYPE_CHECKING:
    from accounts.models import Organization
    from billing.models import Plan, TopUp


class ProviderUnavailable(BillingError):
    """The provider is unknown or not configured on this server."""


class ProviderError(BillingError):
    """The provider refused or could not be reached; nothing was paid."""


class InvalidCallback(BillingError):
    """A callback whose signature, age, version or merchant does not check out."""


class PaymentStatus(enum.StrEnum):
    PAID = "paid"
    PENDING = "pending"
    FAILED = "failed"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Checkout:
    ref: str  # the provider's id for this checkout, unique per provider
    url: str  # where the customer pays


@dataclass(frozen=True, slots=True)
class StatusReport:
    status: PaymentStatus
    payment_id: str = ""
    amount: int | None = None  # minor units of `currency`, as the provider reports it
    currency: str = ""


class PaymentProvider(Protocol):
    name: str

    @property
    def currency(self) -> str:
        """ISO 4217, upper case."""
        ...

    def configured(self) -> bool: ...

    def minor_amount(self, usd: Decimal) -> int:
        """What the customer pays for USD worth of top-up, in the minor unit of currency."""
        ...

    def create_payment(self, topup: TopUp) -> Checkout: ...

    def query_status(self, topup: TopUp) -> StatusReport: ...

    def refund(self, topup: TopUp, amount: int) -> str:
        """Ask the provider to refund AMOUNT (minor units); returns its refund id. The
        ledger is debited when the provider confirms (Stripe: charge.refunded)."""
        ...


class PlanSeller(Protocol):
    """A provider that sells plans: a checkout whose payment starts a subscription (its
    confirmation reaches billing/subscriptions.py through the provider's events)."""

    def configured(self) -> bool: ...

    def plan_checkout(self, *, organization: Organization, plan: Plan, email: str) -> Checkout: ...


def provider_names() -> list[str]:
    return list(_REGISTRY)


def provider_get(name: str) -> PaymentProvider:
    """The configured provider called NAME; raises ProviderUnavailable otherwise."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ProviderUnavailable(_("unknown payment provider %(name)s") % {"name": repr(name)})
    provider = factory()
    if not provider.configured():
        raise ProviderUnavailable(
            _("payment provider %(name)s is not configured on this server") % {"name": repr(name)}
        )
    return provider


def providers_configured() -> list[str]:
    return [name for name, factory in _REGISTRY.items() if factory().configured()]


def _stripe() -> PaymentProvider:
    from billing.providers.stripe import StripeProvider

    return StripeProvider()


def _epay() -> PaymentProvider:
    from billing.providers.epay import EpayProvider

    return EpayProvider()


def _demo() -> PaymentProvider:
    from billing.providers.demo import DemoProvider

    return DemoProvider()


_REGISTRY = {"stripe": _stripe, "epay": _epay, "demo": _demo}


def _stripe_plans() -> PlanSeller:
    from billing.providers.stripe import StripeProvider

    return StripeProvider()


def _demo_plans() -> PlanSeller:
    from billing.providers.demo import DemoProvider

    return DemoProvider()


# The providers that sell plans (EPay has no recurring payments).
_PLAN_SELLERS = {"stripe": _stripe_plans, "demo": _demo_plans}


def plan_seller_get(name: str) -> PlanSeller:
    """The configured provider NAME that sells plans; raises ProviderUnavailable."""
    factory = _PLAN_SELLERS.get(name)
    provider = factory() if factory is not None else None
    if provider is None or not provider.configured():
        raise ProviderUnavailable(
            _("payment provider %(name)s cannot sell plans on this server") % {"name": repr(name)}
        )
    return provider


def plan_sellers_configured() -> list[str]:
    return [name for name, factory in _PLAN_SELLERS.items() if factory().configured()]
