"""Plans and subscriptions in the admin: plans edited in USD and stored in micro-units,
subscriptions listed, granted for N days and canceled by staff."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Organization, User
from billing.models import Plan, PricingGroup, Subscription
from billing.subscriptions import subscription_grant
from tests.billing.test_subscriptions import actions, make_plan

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def staff(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def test_a_plan_is_entered_in_usd_and_stored_in_micro_units(staff: Client) -> None:
    group = PricingGroup.objects.create(name="coders")

    response = staff.post(
        reverse("admin:billing_plan_add"),
        {
            "name": "Coding Pro",
            "slug": "coding-pro",
            "description": "",
            "active": "on",
            "sort": "0",
            "price_amount": "19.90",
            "currency": "USD",
            "interval": "month",
            "pricing_group": group.pk,
            "covered": "claude-*\n gpt-5 \n\n",
            "window_5h": "5",
            "window_5h_unit": "usd",
            "week": "40.5",
            "week_unit": "usd",
            "month": "3000",
            "month_unit": "requests",
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    plan = Plan.objects.get()
    assert (plan.price, plan.currency, plan.pricing_group) == (1990, "usd", group)
    assert plan.covered_models == ["claude-*", "gpt-5"]
    assert (plan.window_5h_limit, plan.week_limit, plan.month_limit) == (
        5_000_000,
        40_500_000,
        3000,
    )

    form = staff.get(reverse("admin:billing_plan_change", args=[plan.pk])).content.decode()
    assert 'value="19.90"' in form and 'value="40.5"' in form and 'value="3000"' in form
    listing = staff.get(reverse("admin:billing_plan_changelist")).content.decode()
    assert "19.90 USD" in listing and "weekly window 40.5 USD" in listing


@pytest.mark.parametrize(
    ("field", "value"), [("week", "abc"), ("week", "-1"), ("month", "2.5"), ("price_amount", "")]
)
def test_a_bad_quota_or_price_is_refused(staff: Client, field: str, value: str) -> None:
    data = {
        "name": "P",
        "slug": "p",
        "sort": "0",
        "price_amount": "20",
        "currency": "usd",
        "interval": "month",
        "window_5h_unit": "usd",
        "week_unit": "usd",
        "month_unit": "requests",
        "week": "1",
        "month": "10",
    }

    response = staff.post(reverse("admin:billing_plan_add"), data | {field: value})

    assert response.status_code == 200
    assert not Plan.objects.exists()


def test_staff_grant_a_plan_for_n_days_and_cancel_it(
    staff: Client, org: Organization, admin_user: User
) -> None:
    plan = make_plan()

    response = staff.post(
        reverse("admin:billing_subscription_grant"),
        {"organization": org.pk, "plan": plan.pk, "days": "14"},
    )

    assert response.status_code == 302
    sub = Subscription.objects.get()
    assert (sub.organization, sub.plan, sub.provider) == (org, plan, "admin")
    assert (sub.current_period_end - sub.current_period_start).days == 14
    listing = staff.get(reverse("admin:billing_subscription_changelist")).content.decode()
    assert "Coding Pro" in listing and "Granted by staff" in listing

    staff.post(
        reverse("admin:billing_subscription_changelist"),
        {"action": "cancel_now", "_selected_action": [sub.pk]},
    )

    sub.refresh_from_db()
    assert sub.status == "canceled"
    assert actions(org) == ["started", "ended"]


def test_a_grant_over_another_current_plan_is_refused(staff: Client, org: Organization) -> None:
    plan = make_plan()
    subscription_grant(organization=org, plan=make_plan("other"), days=3, provider="code")

    response = staff.post(
        reverse("admin:billing_subscription_grant"),
        {"organization": org.pk, "plan": plan.pk, "days": "14"},
    )

    assert response.status_code == 200 and b"Other plan until" in response.content
    assert Subscription.objects.count() == 1


def test_other_staff_see_subscriptions_but_cannot_grant(org: Organization) -> None:
    from accounts.services import user_create

    clerk = user_create(email="clerk@example.com", password="clerk-pass-123")
    clerk.is_staff = True
    clerk.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(clerk)

    response = client.post(
        reverse("admin:billing_subscription_grant"),
        {"organization": org.pk, "plan": make_plan().pk, "days": "14"},
    )

    assert response.status_code == 302 and not Subscription.objects.exists()


def test_the_subscription_pages_open(staff: Client, org: Organization) -> None:
    sub = subscription_grant(organization=org, plan=make_plan(), days=3, provider="admin")

    detail = staff.get(reverse("admin:billing_subscription_change", args=[sub.pk]))
    grant = staff.get(reverse("admin:billing_subscription_grant"))

    assert detail.status_code == 200 and b"Coding Pro" in detail.content
    assert grant.status_code == 200 and b'class="vForeignKeyRawIdAdminField"' in grant.content
