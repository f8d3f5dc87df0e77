"""What every payment provider is: the interface, what it returns, and how it fails."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

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
