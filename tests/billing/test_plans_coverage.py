"""Which subscription covers a request, around the end of its period."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import Organization
from billing.models import Plan, Subscription
from billing.plans import covers, subscription_current

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.mark.parametrize(
    ("provider", "status", "ended_ago", "cancelling", "covered"),
    [
        ("admin", "active", -1, False, True),  # within its period
        ("admin", "active", 1, False, False),  # a grant ends with its period
        ("code", "active", 1, False, False),
        ("stripe", "active", 1, False, True),  # its renewal is not confirmed yet
        ("demo", "active", 1, False, True),
        ("stripe", "active", 1, True, False),  # set to cancel: ends with its period
        ("stripe", "active", 24 * 4, False, False),  # no renewal within the grace
        ("stripe", "past_due", 1, False, True),  # grace_until is a day ahead
        ("stripe", "canceled", -1, False, False),
    ],
)
def test_coverage_around_the_end_of_the_period(
    org: Organization, provider: str, status: str, ended_ago: int, cancelling: bool, covered: bool
) -> None:
    now = timezone.now()
    plan = Plan.objects.create(name="P", slug="p", price=100)
    sub = Subscription.objects.create(
        organization=org, plan=plan, provider=provider, status=status,
        provider_ref="sub_1" if provider == "stripe" else "",
        current_period_start=now - dt.timedelta(days=30),
        current_period_end=now - dt.timedelta(hours=ended_ago),
        cancel_at_period_end=cancelling, grace_until=now + dt.timedelta(days=1),
    )  # fmt: skip
    assert covers(sub, now) is covered
    assert (subscription_current(organization_id=org.pk, now=now) == sub) is covered
