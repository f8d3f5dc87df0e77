"""Emails at 80 % and 100 % of a plan's monthly quota: once per level and month, to the
owners and billing members, from settled usage (not requests in flight); and the periodic
expiry. A fixed clock throughout; the Celery worker path at the end."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import Membership, Organization, User
from accounts.services import user_create
from billing.holds import hold_release
from billing.models import Plan, Subscription
from billing.subscriptions import plan_quota_check, send_plan_quota_email, subscription_grant
from billing.tasks import plan_quota_check as plan_quota_check_task
from billing.tasks import subscriptions_expire as subscriptions_expire_task
from tests.billing.test_subscriptions import NOW, make_plan, use_plan
from tests.test_celery_worker import _until, worker

__all__ = ["worker"]

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def run_emails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queued emails run in-process (the worker path is tested below)."""
    monkeypatch.setattr(
        send_plan_quota_email,
        "delay",
        lambda *args: send_plan_quota_email.apply(args=args),
    )


@pytest.fixture
def monthly(db: None) -> Plan:
    """Only a monthly quota ($100), so that the test can use it in large steps."""
    return make_plan("monthly", window_5h_limit=None, week_limit=None, month_limit=100_000_000)


@pytest.fixture
def subscribed(org: Organization, teammate: User, monthly: Plan) -> Subscription:
    accountant = user_create(email="books@example.com")
    Membership.objects.create(user=accountant, organization=org, role=Membership.Role.BILLING)
    return subscription_grant(
        organization=org, plan=monthly, days=60, provider="admin", now=NOW - 5 * 24 * HOUR
    )


def _check(captured: Any, now: dt.datetime) -> list[int]:
    with captured(execute=True):
        return [alert.level for alert in plan_quota_check(now=now)]


def test_it_emails_at_80_and_100_percent_once_each_per_month(
    subscribed: Subscription, run_emails: None, django_capture_on_commit_callbacks: Any
) -> None:
    use_plan(subscribed, 79_000_000, at=NOW - 3 * HOUR)
    assert _check(django_capture_on_commit_callbacks, NOW) == []
    in_flight = use_plan(subscribed, 10_000_000, at=NOW - 2 * HOUR, settle=False)
    assert _check(django_capture_on_commit_callbacks, NOW) == []  # 89 %, but 10 not settled
    assert hold_release(reference=in_flight)

    use_plan(subscribed, 1_000_000, at=NOW - HOUR)
    assert _check(django_capture_on_commit_callbacks, NOW) == [80]
    assert _check(django_capture_on_commit_callbacks, NOW + HOUR) == []

    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert sorted(email.to) == ["books@example.com", "owner@example.com"]  # not the member
    assert "reached 80%" in email.subject and "Monthly" in email.subject
    assert "$80.00 of its $100.00 monthly quota (80%)" in email.body
    assert "paid from the organization's balance" in email.body
    assert "2027-01-01 00:00 UTC" in email.body

    use_plan(subscribed, 10_000_000, at=NOW + HOUR)
    use_plan(subscribed, 10_000_000, at=NOW + 2 * HOUR)
    assert _check(django_capture_on_commit_callbacks, NOW + 3 * HOUR) == [100]
    assert _check(django_capture_on_commit_callbacks, NOW + 4 * HOUR) == []
    assert len(mail.outbox) == 2 and "used its monthly quota" in mail.outbox[1].subject


def test_a_new_month_starts_the_levels_again(
    subscribed: Subscription, run_emails: None, django_capture_on_commit_callbacks: Any
) -> None:
    use_plan(subscribed, 85_000_000, at=NOW)
    assert _check(django_capture_on_commit_callbacks, NOW + HOUR) == [80]

    january = dt.datetime(2027, 1, 3, 9, tzinfo=dt.UTC)
    assert _check(django_capture_on_commit_callbacks, january) == []  # the quota reset
    use_plan(subscribed, 100_000_000, at=january)
    assert _check(django_capture_on_commit_callbacks, january + HOUR) == [100]  # skips 80

    subscribed.refresh_from_db()
    assert subscribed.quota_alert == {"month": "2027-01", "level": 100}
    assert len(mail.outbox) == 2


def test_plans_without_a_monthly_quota_and_ended_plans_never_email(
    org: Organization, run_emails: None, django_capture_on_commit_callbacks: Any
) -> None:
    rolling = make_plan("rolling", month_limit=None)
    sub = subscription_grant(organization=org, plan=rolling, days=30, provider="admin", now=NOW)
    use_plan(sub, 5_000_000, at=NOW)

    assert _check(django_capture_on_commit_callbacks, NOW) == []
    assert _check(django_capture_on_commit_callbacks, NOW + 40 * 24 * HOUR) == []
    assert mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_the_periodic_jobs_run_on_a_real_worker(worker: None) -> None:
    owner = user_create(email="w@example.com")
    org = Membership.objects.get(user=owner).organization
    now = timezone.now()
    plan = make_plan("w", window_5h_limit=None, week_limit=None, month_limit=1_000_000)
    current = subscription_grant(organization=org, plan=plan, days=30, provider="admin")
    use_plan(current, 900_000, at=now)
    other = Membership.objects.get(user=user_create(email="x@example.com")).organization
    lapsed = subscription_grant(
        organization=other, plan=plan, days=1, provider="admin", now=now - dt.timedelta(days=9)
    )

    plan_quota_check_task.delay()
    subscriptions_expire_task.delay()

    _until(lambda: Subscription.objects.get(pk=current.pk).quota_alert.get("level") == 80)
    _until(lambda: Subscription.objects.get(pk=lapsed.pk).status == "expired")
