"""EPay payment events, verified by billing/providers/epay.py: credit the top-up a
callback reports paid."""

from __future__ import annotations

from collections.abc import Mapping

from billing.exceptions import PaymentMismatch
from billing.models import TopUp
from billing.providers import InvalidCallback
from billing.providers.epay import NAME, TRADE_SUCCESS, money_to_minor
from billing.topups import topup_confirm


def callback_apply(data: Mapping[str, str]) -> str:
    """Credit the top-up a verified callback reports paid. Idempotent; raises
    PaymentMismatch when the amount differs from the top-up's."""
    topup = TopUp.objects.filter(provider=NAME, provider_ref=data["out_trade_no"]).first()
    if topup is None:
        raise PaymentMismatch(f"no EPay top-up {data['out_trade_no']!r}")
    if data["trade_status"] != TRADE_SUCCESS:
        return f"ignored: {data['trade_status']}"
    try:
        amount = money_to_minor(data["money"])
    except InvalidCallback as exc:
        raise PaymentMismatch(str(exc)) from None
    credited = topup_confirm(
        topup_id=topup.pk,
        payment_id=data["trade_no"],
        amount=amount,
        currency=topup.currency,
    )
    return "credited" if credited else "already credited"
