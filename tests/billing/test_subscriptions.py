"""Subscriptions through their services: every transition once, whatever is repeated or
arrives late; one current subscription per organization; grants; the periodic expiry.

The helpers at the top (`make_plan`, `use_plan`, `NOW`) serve the other plan tests too."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import AuditEvent, Organization, User
from accounts.selectors import organization_personal
from accounts.services import user_create
from billing.holds import Admission, Settlement, hold_place, hold_settle
from billing.models import Plan, Subscription, Wallet
from billing.plans import plan_caps, subscription_current
from billing.subscriptions import (
    DEMO,
    SubscriptionConflict,
    SubscriptionError,
    period_end_after,
    subscription_cancel,
    subscription_change_plan,
    subscription_expire,
    subscription_fail,
    subscription_grant,
    subscription_plan_apply,
    subscription_renew,
    subscription_resume,
    subscription_start,
    subscriptions_demo_renew,
    subscriptions_expire_lapsed,
)
from logs.records import RequestRecord

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

NOW = dt.datetime(2026, 12, 10, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def make_plan(slug: str = "coding-pro", **fields: Any) -> Plan:
    """Coding Pro: $20 a month; $5 per 5 hours, $40 per week, $150 per month of usage."""
    defaults: dict[str, Any] = {
        "name": slug.replace("-", " ").title(),
        "price": 2000,
        "window_5h_limit": 5_000_000,
        "week_limit": 40_000_000,
        "month_limit": 150_000_000,
    }
    return Plan.objects.create(slug=slug, **(defaults | fields))


def use_plan(subscription: Subscription, cost: int, *, at: dt.datetime, settle: bool = True) -> str:
    """A request the plan pays for, through the real hold and settlement: its usage lands
    in the plan's windows at AT (or stays in flight when not SETTLE)."""
    wallet = Wallet.objects.get(organization_id=subscription.organization_id)
    reference = f"req-{subscription.pk}-{at.timestamp()}-{cost}"
    caps = plan_caps(subscription_id=subscription.pk, plan=subscription.plan)
    placed = hold_place(
        reference=reference,
        wallet_id=wallet.pk,
        api_key_id=None,
        amount=cost,
        ttl_seconds=600,
        admission=Admission(subscription_id=subscription.pk, plan_caps=caps, fallback=False),
        now=at,
    )
    assert placed.funding == "plan"
    if settle:
        record = RequestRecord(
            created_at=at,
            organization_id=subscription.organization_id,
            api_key_id=None,
            endpoint="chat/completions",
            model="claude-sonnet-4",
        )
        assert hold_settle(
            Settlement(
                reference=reference, wallet_id=wallet.pk, api_key_id=None, cost=cost, record=record
            ),
            now=at,
        )
    return reference


def actions(org: Organization) -> list[str]:
    return list(
        AuditEvent.objects.filter(kind="subscription_changed", organization=org)
        .order_by("pk")
        .values_list("meta__action", flat=True)
    )


@pytest.fixture
def plan(db: None) -> Plan:
    return make_plan()


def _stripe_sub(org: Organization, plan: Plan, ref: str = "sub_1") -> Subscription:
    return subscription_start(
        organization=org,
        plan=plan,
        provider="stripe",
        provider_ref=ref,
        period_start=NOW,
        period_end=NOW + 30 * DAY,
        now=NOW,
    )


def test_it_starts_once_per_provider_reference(org: Organization, plan: Plan) -> None:
    first = _stripe_sub(org, plan)
    again = _stripe_sub(org, plan)

    assert first.pk == again.pk and Subscription.objects.count() == 1
    assert subscription_current(organization_id=org.pk, now=NOW) == first
    assert actions(org) == ["started"]


def test_a_renewal_moves_the_period_on_and_an_older_invoice_never_moves_it_back(
    org: Organization, plan: Plan
) -> None:
    sub = _stripe_sub(org, plan)
    second = (NOW + 30 * DAY, NOW + 60 * DAY)

    assert subscription_renew(
        provider="stripe",
        provider_ref="sub_1",
        period_start=second[0],
        period_end=second[1],
        now=NOW,
    )
    # The first period's invoice.paid, delivered late; the second's, delivered twice.
    for start, end in [(NOW, NOW + 30 * DAY), second]:
        assert not subscription_renew(
            provider="stripe", provider_ref="sub_1", period_start=start, period_end=end
        )

    sub.refresh_from_db()
    assert (sub.current_period_start, sub.current_period_end) == second
    assert actions(org) == ["started", "renewed"]


def test_a_failed_renewal_keeps_the_plan_for_the_grace_days_then_a_payment_restores_it(
    org: Organization, plan: Plan, settings: SettingsWrapper
) -> None:
    settings.SUBSCRIPTION_GRACE_DAYS = 3
    sub = _stripe_sub(org, plan)
    renewal_end = NOW + 60 * DAY
    failed_at = NOW + 30 * DAY

    assert subscription_fail(
        provider="stripe", provider_ref="sub_1", period_end=renewal_end, now=failed_at
    )
    # Stripe's second attempt fails too: the first failure's grace stands.
    assert not subscription_fail(
        provider="stripe", provider_ref="sub_1", period_end=renewal_end, now=failed_at + DAY
    )
    sub.refresh_from_db()
    assert sub.status == "past_due" and sub.grace_until == failed_at + 3 * DAY
    assert subscription_current(organization_id=org.pk, now=failed_at + 2 * DAY) == sub
    assert subscription_current(organization_id=org.pk, now=failed_at + 4 * DAY) is None

    assert subscription_renew(
        provider="stripe",
        provider_ref="sub_1",
        period_start=failed_at,
        period_end=renewal_end,
        now=failed_at + 2 * DAY,
    )
    sub.refresh_from_db()
    assert (sub.status, sub.current_period_end) == ("active", renewal_end)
    assert not sub.grace_until
    assert actions(org) == ["started", "payment_failed", "renewed"]


def test_a_late_failure_of_a_period_already_paid_changes_nothing(
    org: Organization, plan: Plan
) -> None:
    sub = _stripe_sub(org, plan)
    subscription_renew(
        provider="stripe",
        provider_ref="sub_1",
        period_start=NOW + 30 * DAY,
        period_end=NOW + 60 * DAY,
    )

    assert not subscription_fail(
        provider="stripe", provider_ref="sub_1", period_end=NOW + 60 * DAY, now=NOW + 30 * DAY
    )
    sub.refresh_from_db()
    assert sub.status == "active" and sub.grace_until is None


def test_the_grace_period_follows_the_setting(
    org: Organization, plan: Plan, settings: SettingsWrapper
) -> None:
    settings.SUBSCRIPTION_GRACE_DAYS = 7
    sub = _stripe_sub(org, plan)

    subscription_fail(provider="stripe", provider_ref="sub_1", period_end=None, now=NOW)

    sub.refresh_from_db()
    assert sub.grace_until == NOW + 7 * DAY


def test_an_ended_subscription_stays_ended(org: Organization, plan: Plan) -> None:
    sub = _stripe_sub(org, plan)
    other = make_plan("coding-max", price=10_000)

    assert subscription_expire(provider="stripe", provider_ref="sub_1")
    assert not subscription_expire(provider="stripe", provider_ref="sub_1")
    # Late events about it: a renewal Stripe did not confirm, a plan change, a restart.
    assert not subscription_renew(
        provider="stripe",
        provider_ref="sub_1",
        period_start=NOW + 30 * DAY,
        period_end=NOW + 60 * DAY,
    )
    assert not subscription_plan_apply(provider="stripe", provider_ref="sub_1", plan=other)
    assert _stripe_sub(org, plan).pk == sub.pk

    sub.refresh_from_db()
    assert (sub.status, sub.plan) == ("expired", plan)
    assert subscription_current(organization_id=org.pk, now=NOW) is None


def test_a_renewal_stripe_confirms_brings_back_what_the_expiry_job_ended(
    org: Organization, plan: Plan
) -> None:
    sub = _stripe_sub(org, plan)
    assert subscriptions_expire_lapsed(now=NOW + 40 * DAY) == 1

    assert subscription_renew(
        provider="stripe",
        provider_ref="sub_1",
        period_start=NOW + 30 * DAY,
        period_end=NOW + 60 * DAY,
        reactivate=True,
        now=NOW + 40 * DAY,
    )

    sub.refresh_from_db()
    assert sub.status == "active" and sub.current_period_end == NOW + 60 * DAY
    assert actions(org) == ["started", "ended", "reactivated"]


def test_a_canceled_subscription_is_never_reactivated(org: Organization, plan: Plan) -> None:
    sub = subscription_grant(organization=org, plan=plan, days=30, provider="admin", now=NOW)
    subscription_cancel(subscription=sub, at_period_end=False)

    sub.refresh_from_db()
    assert sub.status == "canceled"
    assert subscription_current(organization_id=org.pk) is None


def test_the_database_allows_one_current_subscription_per_organization(
    org: Organization, plan: Plan
) -> None:
    _stripe_sub(org, plan)

    with pytest.raises(IntegrityError), transaction.atomic():
        Subscription.objects.create(
            organization=org,
            plan=plan,
            provider="admin",
            current_period_start=NOW,
            current_period_end=NOW + DAY,
        )


def test_a_second_paid_subscription_is_refused_and_a_paid_one_replaces_a_grant(
    org: Organization, plan: Plan
) -> None:
    granted = subscription_grant(organization=org, plan=plan, days=10, provider="code", now=NOW)

    paid = _stripe_sub(org, plan)
    with pytest.raises(SubscriptionConflict):
        _stripe_sub(org, plan, ref="sub_2")

    granted.refresh_from_db()
    assert granted.status == "canceled"
    assert subscription_current(organization_id=org.pk, now=NOW) == paid


def test_a_grant_extends_the_same_plan_and_refuses_another_or_a_paid_one(
    org: Organization, plan: Plan
) -> None:
    first = subscription_grant(organization=org, plan=plan, days=10, provider="code", now=NOW)
    extended = subscription_grant(
        organization=org, plan=plan, days=5, provider="admin", now=NOW + DAY
    )

    assert extended.pk == first.pk and extended.current_period_end == NOW + 15 * DAY
    with pytest.raises(SubscriptionError, match="Coding Pro plan until"):
        subscription_grant(
            organization=org, plan=make_plan("coding-max"), days=5, provider="code", now=NOW
        )
    assert actions(org) == ["started", "extended"]


def test_a_grant_after_the_last_one_lapsed_starts_afresh(org: Organization, plan: Plan) -> None:
    old = subscription_grant(organization=org, plan=plan, days=10, provider="code", now=NOW)

    new = subscription_grant(
        organization=org, plan=plan, days=10, provider="code", now=NOW + 11 * DAY
    )

    old.refresh_from_db()
    assert new.pk != old.pk and old.status == "expired"
    assert new.current_period_end == NOW + 21 * DAY


def test_the_expiry_job_ends_lapsed_subscriptions_only(
    org: Organization, owner: User, plan: Plan, settings: SettingsWrapper
) -> None:
    settings.SUBSCRIPTION_GRACE_DAYS = 3
    other = organization_personal(user=user_create(email="b@example.com", password="pw-12345678"))
    third = organization_personal(user=user_create(email="c@example.com", password="pw-12345678"))
    active = _stripe_sub(org, plan)  # ends NOW + 30 days
    past_due = _stripe_sub(other, plan, ref="sub_2")
    subscription_fail(provider="stripe", provider_ref="sub_2", period_end=None, now=NOW)
    granted = subscription_grant(organization=third, plan=plan, days=31, provider="code", now=NOW)

    assert subscriptions_expire_lapsed(now=NOW + 2 * DAY) == 0  # within the grace
    assert subscriptions_expire_lapsed(now=NOW + 4 * DAY) == 1  # the past-due one
    assert subscriptions_expire_lapsed(now=NOW + 33 * DAY) == 0  # 30 days + 3 not passed
    assert subscriptions_expire_lapsed(now=NOW + 35 * DAY) == 2

    for sub in (active, past_due, granted):
        sub.refresh_from_db()
        assert sub.status == "expired"


def test_customers_cancel_at_period_end_and_resume_a_demo_subscription(
    org: Organization, owner: User, plan: Plan
) -> None:
    sub = subscription_start(
        organization=org,
        plan=plan,
        provider=DEMO,
        provider_ref="demoplan_x",
        period_start=NOW,
        period_end=period_end_after(NOW, "month"),
    )

    subscription_cancel(subscription=sub, actor=owner)
    subscription_cancel(subscription=sub, actor=owner)
    sub.refresh_from_db()
    assert sub.cancel_at_period_end and sub.status == "active"
    subscription_resume(subscription=sub, actor=owner)

    sub.refresh_from_db()
    assert not sub.cancel_at_period_end
    assert sub.current_period_end == dt.datetime(2027, 1, 10, 12, tzinfo=dt.UTC)
    assert actions(org) == ["started", "cancel_at_period_end", "resumed"]


def test_a_demo_subscription_changes_plan_at_once(org: Organization, plan: Plan) -> None:
    sub = subscription_start(
        organization=org,
        plan=plan,
        provider=DEMO,
        provider_ref="demoplan_y",
        period_start=NOW,
        period_end=NOW + 30 * DAY,
    )
    bigger = make_plan("coding-max", price=10_000)

    assert subscription_change_plan(subscription=sub, plan=bigger)

    sub.refresh_from_db()
    assert sub.plan == bigger
    with pytest.raises(SubscriptionError, match="your plan already"):
        subscription_change_plan(subscription=sub, plan=bigger)


def test_granted_plans_cannot_be_canceled_or_changed_by_the_customer(
    org: Organization, plan: Plan
) -> None:
    sub = subscription_grant(organization=org, plan=plan, days=30, provider="code")

    with pytest.raises(SubscriptionError, match="granted for a fixed time"):
        subscription_cancel(subscription=sub)
    with pytest.raises(SubscriptionError):
        subscription_change_plan(subscription=sub, plan=make_plan("coding-max"))


@pytest.mark.parametrize(
    ("start", "interval", "end"),
    [
        ((2026, 1, 31), "month", (2026, 2, 28)),
        ((2026, 12, 15), "month", (2027, 1, 15)),
        ((2028, 2, 29), "year", (2029, 2, 28)),
    ],
)
def test_a_period_ends_on_the_same_day_of_the_next_month_or_year(
    start: tuple[int, int, int], interval: str, end: tuple[int, int, int]
) -> None:
    at = dt.datetime(*start, 9, tzinfo=dt.UTC)
    assert period_end_after(at, interval) == dt.datetime(*end, 9, tzinfo=dt.UTC)


def test_demo_subscriptions_renew_for_free_until_canceled(org: Organization, plan: Plan) -> None:
    sub = subscription_start(
        organization=org,
        plan=plan,
        provider=DEMO,
        provider_ref="demoplan_z",
        period_start=NOW,
        period_end=period_end_after(NOW, "month"),
    )
    later = dt.datetime(2027, 2, 20, tzinfo=dt.UTC)

    assert subscriptions_demo_renew(now=NOW + DAY) == 0
    assert subscriptions_demo_renew(now=later) == 1
    sub.refresh_from_db()
    assert (sub.current_period_start, sub.current_period_end) == (
        dt.datetime(2027, 2, 10, 12, tzinfo=dt.UTC),
        dt.datetime(2027, 3, 10, 12, tzinfo=dt.UTC),
    )

    subscription_cancel(subscription=sub)
    assert subscriptions_demo_renew(now=dt.datetime(2027, 3, 11, tzinfo=dt.UTC)) == 0
    assert subscriptions_expire_lapsed(now=dt.datetime(2027, 3, 20, tzinfo=dt.UTC)) == 1
