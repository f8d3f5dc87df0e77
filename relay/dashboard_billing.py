"""`/dashboard/billing/subscription` and `/usage`: what OpenAI-compatible clients read to
show a key's limit and spend, and the organization's plan. Not on the hot path (a few
database reads per call)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.plans import subscription_current
from relay.asgi_io import Send, send_json
from relay.catalog import KeyInfo
from relay.db import in_db_thread

# What OpenAI answered for accounts without a subscription.
PAY_AS_YOU_GO = {"title": "Pay-as-you-go", "id": "payg"}


@dataclass(frozen=True, slots=True)
class BillingFigures:
    available: int  # credit not held, micro-USD
    spent: int  # the key's spend, micro-USD
    limit: int | None  # the key's spend limit, micro-USD
    plan: dict[str, str] | None  # {"title", "id"} of the current plan
    plan_until: int  # when the plan's paid period (or a failed renewal's grace) ends, epoch


def _billing_figures(key_id: int) -> BillingFigures:
    from accounts.models import ApiKey

    key = ApiKey.objects.select_related("organization__wallet").get(pk=key_id)
    wallet = key.organization.wallet
    subscription = subscription_current(organization_id=key.organization_id)
    plan, until = None, 0
    if subscription is not None:
        plan = {"title": subscription.plan.name, "id": subscription.plan.slug}
        end = subscription.current_period_end
        if subscription.grace_until is not None:
            end = max(end, subscription.grace_until)
        until = int(end.timestamp())
    return BillingFigures(
        available=wallet.available,
        spent=key.spent,
        limit=key.spend_limit,
        plan=plan,
        plan_until=until,
    )


def _usd(micros: int) -> float:
    # OpenAI's billing endpoints answer in JSON numbers; converted only at this edge.
    return float(Decimal(micros) / 1_000_000)


async def billing_answer(key: KeyInfo, send: Send, kind: str, headers: dict[str, str]) -> None:
    figures = await in_db_thread(_billing_figures)(key.id)
    if kind == "usage":
        total = _usd(figures.spent) * 100
        await send_json(send, 200, {"object": "list", "total_usage": total}, headers)
        return
    # Clients show hard_limit_usd - total_usage as what is left of the balance.
    if figures.limit is not None:
        hard = _usd(figures.limit)
    else:
        hard = _usd(max(0, figures.available) + figures.spent)
    if figures.plan is not None:
        access_until = figures.plan_until
    else:
        access_until = int(key.expires_at.timestamp()) if key.expires_at else 0
    await send_json(
        send,
        200,
        {
            "object": "billing_subscription",
            "has_payment_method": True,
            "plan": figures.plan or PAY_AS_YOU_GO,
            "soft_limit_usd": hard,
            "hard_limit_usd": hard,
            "system_hard_limit_usd": hard,
            "access_until": access_until,
        },
        headers,
    )
