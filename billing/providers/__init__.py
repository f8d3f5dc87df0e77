"""Payment providers behind one small interface; one module per provider.

A provider turns a pending `TopUp` into a page the customer pays on, verifies the
provider's callbacks, answers what became of a payment, and refunds. Adding Waffo,
Creem or direct Alipay/WeChat Pay means one new module and one line in `_REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils.translation import gettext as _

from billing.providers.base import (
    Checkout,
    InvalidCallback,
    PaymentProvider,
    PaymentStatus,
    PlanSeller,
    ProviderError,
    ProviderUnavailable,
    StatusReport,
)
from billing.providers.demo import DemoProvider
from billing.providers.epay import EpayProvider
from billing.providers.stripe import StripeProvider

__all__ = [
    "Checkout",
    "InvalidCallback",
    "PaymentProvider",
    "PaymentStatus",
    "PlanSeller",
    "ProviderError",
    "ProviderUnavailable",
    "StatusReport",
    "plan_seller_get",
    "plan_sellers_configured",
    "provider_get",
    "provider_names",
    "providers_configured",
]


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


_REGISTRY: dict[str, Callable[[], PaymentProvider]] = {
    "stripe": StripeProvider,
    "epay": EpayProvider,
    "demo": DemoProvider,
}

# The providers that sell plans (EPay has no recurring payments).
_PLAN_SELLERS: dict[str, Callable[[], PlanSeller]] = {
    "stripe": StripeProvider,
    "demo": DemoProvider,
}


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
