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
    from billing.models import TopUp


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
