"""Demo payment events, verified by billing/providers/demo.py: credit or close the top-up,
or start the subscription, that a signed demo event names."""

from __future__ import annotations

from collections.abc import Mapping

from django.utils import timezone

from accounts.models import Organization
from billing.exceptions import PaymentMismatch
from billing.models import Plan, Subscription, TopUp
from billing.plan_payments import plan_payment_record
from billing.providers.demo import CANCELED, NAME, plan_ref_parse
from billing.subscriptions import DEMO, SubscriptionError, period_end_after, subscription_start
from billing.topups import topup_close, topup_confirm


def callback_apply(data: Mapping[str, str]) -> str:
    """Credit (exactly once) or close the top-up a verified event names."""
    if plan_ref_parse(data["ref"]) is not None:
        return _plan_apply(data)
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


def _plan_apply(data: Mapping[str, str]) -> str:
    """Start the subscription a verified plan checkout event pays for (once per ref)."""
    ids = plan_ref_parse(data["ref"]) or (0, 0)
    organization = Organization.objects.filter(pk=ids[0]).first()
    plan = Plan.objects.filter(pk=ids[1]).first()
    if organization is None or plan is None:
        raise PaymentMismatch(f"no organization or plan for demo checkout {data['ref']!r}")
    if data["outcome"] == CANCELED:
        return "ignored: canceled"
    if int(data["amount"]) != plan.price or data["currency"].upper() != plan.currency.upper():
        raise PaymentMismatch(
            f"demo checkout {data['ref']}: paid {data['amount']} {data['currency']}, "
            f"the plan costs {plan.price} {plan.currency.upper()}"
        )
    now = timezone.now()
    known = Subscription.objects.filter(provider=DEMO, provider_ref=data["ref"]).exists()
    try:
        subscription = subscription_start(
            organization=organization,
            plan=plan,
            provider=DEMO,
            provider_ref=data["ref"],
            period_start=now,
            period_end=period_end_after(now, plan.interval),
            now=now,
        )
    except SubscriptionError as exc:
        raise PaymentMismatch(str(exc)) from None
    if not known:  # the first period, "paid" with the signed amount (no money moves)
        plan_payment_record(
            subscription=subscription,
            provider=NAME,
            provider_ref=data["ref"],
            amount=plan.price,
            currency=plan.currency,
            period_start=subscription.current_period_start,
            period_end=subscription.current_period_end,
            paid_at=now,
        )
    return "already started" if known else "started"
