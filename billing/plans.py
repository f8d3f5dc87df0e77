"""Plans on the request path: which subscription covers a request, and its windows as caps.

Reads only; subscriptions are written by billing/subscriptions.py.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Collection
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from billing.caps import FIVE_HOURS, WEEK, Cap
from billing.models import Plan, Subscription

# Each window of a plan: (label, span, window seconds, limit field, unit field).
WINDOWS = (
    ("5-hour window", "m", FIVE_HOURS, "window_5h_limit", "window_5h_unit"),
    ("weekly window", "h", WEEK, "week_limit", "week_unit"),
    ("monthly quota", "M", 0, "month_limit", "month_unit"),
)


@dataclass(frozen=True, slots=True)
class PlanInfo:
    subscription_id: int
    plan_name: str
    covered_models: tuple[str, ...]  # shell-style patterns; empty: every model
    caps: tuple[Cap, ...]  # the plan's windows

    def covers(self, model: str) -> bool:
        return not self.covered_models or any(
            fnmatch.fnmatchcase(model, pattern) for pattern in self.covered_models
        )


def plan_caps(*, subscription_id: int, plan: Plan) -> tuple[Cap, ...]:
    caps = []
    for label, span, window, limit_field, unit_field in WINDOWS:
        limit = getattr(plan, limit_field)
        if limit is not None:
            caps.append(
                Cap(
                    f"s{subscription_id}",
                    span,
                    window,
                    limit,
                    getattr(plan, unit_field),
                    f"your plan's {label}",
                )
            )
    return tuple(caps)


# Subscriptions that renew themselves: their renewal is confirmed after the period ends
# (Stripe's invoice.paid can come an hour later; the demo renews every few minutes).
RENEWING = (Subscription.Provider.STRIPE, Subscription.Provider.DEMO)


def _renewal_allowance() -> dt.timedelta:
    # Until the renewal is confirmed they keep covering, at most as long as a failed
    # payment's grace; one set to cancel at the period's end stops there.
    return dt.timedelta(days=settings.SUBSCRIPTION_GRACE_DAYS)


def _covering(now: dt.datetime) -> Q:
    Status = Subscription.Status
    return (
        Q(status=Status.ACTIVE, current_period_end__gt=now)
        | Q(
            status=Status.ACTIVE,
            provider__in=RENEWING,
            cancel_at_period_end=False,
            current_period_end__gt=now - _renewal_allowance(),
        )
        | Q(status=Status.PAST_DUE, grace_until__gt=now)
    )


def covers(subscription: Subscription, now: dt.datetime) -> bool:
    """Whether SUBSCRIPTION funds requests at NOW: active within its period (a renewing
    one until its renewal is confirmed), or past due within its grace."""
    Status = Subscription.Status
    if subscription.status == Status.ACTIVE:
        if subscription.current_period_end > now:
            return True
        return (
            subscription.provider in RENEWING
            and not subscription.cancel_at_period_end
            and subscription.current_period_end > now - _renewal_allowance()
        )
    if subscription.status == Status.PAST_DUE:
        return subscription.grace_until is not None and subscription.grace_until > now
    return False


def subscription_current(
    *, organization_id: int, now: dt.datetime | None = None
) -> Subscription | None:
    """The organization's subscription that covers requests now (see `covers`)."""
    return subscriptions_current(organization_ids=[organization_id], now=now).get(organization_id)


def subscriptions_current(
    *, organization_ids: Collection[int], now: dt.datetime | None = None
) -> dict[int, Subscription]:
    """The covering subscription of each organization, in one query, by organization id;
    organizations without one are absent. With two (an operator's mistake), the oldest."""
    now = now or timezone.now()
    found: dict[int, Subscription] = {}
    rows = (
        Subscription.objects.select_related("plan", "plan__pricing_group")
        .filter(organization_id__in=organization_ids)
        .filter(_covering(now))
        .order_by("pk")  # `.first()` of an unordered queryset takes the lowest pk
    )
    for subscription in rows:
        found.setdefault(subscription.organization_id, subscription)
    return found


def plan_info(subscription: Subscription) -> PlanInfo:
    plan = subscription.plan
    return PlanInfo(
        subscription_id=subscription.pk,
        plan_name=plan.name,
        covered_models=tuple(plan.covered_models),
        caps=plan_caps(subscription_id=subscription.pk, plan=plan),
    )
