"""Redemption codes that grant a plan: single-use, start or extend the plan, and leave the
code unused when the plan cannot be granted."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Organization, User
from billing.codes import redemption_batch_create, redemption_batch_download
from billing.models import Plan, RedemptionBatch, RedemptionCode, Subscription
from tests.billing.conftest import balance
from tests.billing.test_subscriptions import actions, make_plan

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _clean_rate_limits() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def pro(db: None) -> Plan:
    return make_plan("coding-pro")


def _code(plan: Plan, *, days: int = 30, amount: int = 0) -> str:
    batch = redemption_batch_create(name="plans", count=1, amount=amount, plan=plan, plan_days=days)
    return batch.codes[0]


def _redeem(client: Client, code: str) -> tuple[int, dict[str, str]]:
    response = client.post(
        "/api/v1/redemptions", data=json.dumps({"code": code}), content_type="application/json"
    )
    return response.status_code, response.json()


def test_a_plan_code_starts_the_plan_for_its_days_and_credits_nothing(
    owner_client: Client, org: Organization, pro: Plan
) -> None:
    before = timezone.now()

    status, body = _redeem(owner_client, _code(pro, days=30))

    assert status == 200 and body == {"amount_usd": "0.000000", "balance_usd": "0.000000"}
    sub = Subscription.objects.get()
    assert (sub.organization, sub.plan, sub.provider, sub.status) == (org, pro, "code", "active")
    assert before + dt.timedelta(days=30) <= sub.current_period_end
    assert sub.current_period_end <= timezone.now() + dt.timedelta(days=30)
    assert balance(org) == 0


def test_a_code_is_single_use(owner_client: Client, pro: Plan) -> None:
    code = _code(pro)

    assert _redeem(owner_client, code)[0] == 200
    status, body = _redeem(owner_client, code)

    assert status == 400 and "already been redeemed" in body["detail"]
    assert Subscription.objects.get().current_period_end < timezone.now() + dt.timedelta(days=31)


def test_a_code_for_the_current_plan_extends_it(
    owner_client: Client, org: Organization, pro: Plan
) -> None:
    _redeem(owner_client, _code(pro, days=30))
    end = Subscription.objects.get().current_period_end

    assert _redeem(owner_client, _code(pro, days=7))[0] == 200

    sub = Subscription.objects.get()
    assert sub.current_period_end == end + dt.timedelta(days=7)
    assert actions(org) == ["started", "extended"]


def test_a_code_for_another_plan_is_refused_and_stays_unused(
    owner_client: Client, pro: Plan
) -> None:
    _redeem(owner_client, _code(pro))
    other = _code(make_plan("coding-max"))

    status, body = _redeem(owner_client, other)

    assert status == 400 and "Coding Pro plan until" in body["detail"]
    assert RedemptionCode.objects.filter(redeemed_at__isnull=True).count() == 1
    assert Subscription.objects.get().plan == pro


def test_a_code_with_credit_and_a_plan_gives_both_on_the_billing_page(
    owner_client: Client, org: Organization, pro: Plan
) -> None:
    code = _code(pro, days=14, amount=3_000_000)

    page = owner_client.post(reverse("billing-redeem"), {"code": code}, follow=True)

    text = page.content.decode()
    assert "The Coding Pro plan is yours until" in text and "3.000000 USD added" in text
    assert balance(org) == 3_000_000
    assert Subscription.objects.get().provider == "code"


@pytest.mark.parametrize(
    "options",
    [
        {"amount": 0},  # neither credit nor a plan
        {"amount": 0, "plan_days": 5},  # days without a plan
        {"amount": 1, "plan_days": 0, "with_plan": True},
        {"amount": -1, "plan_days": 5, "with_plan": True},
    ],
)
def test_a_batch_grants_something(pro: Plan, options: dict[str, int]) -> None:
    plan = pro if options.pop("with_plan", False) else None
    with pytest.raises(ValueError):
        redemption_batch_create(
            name="x",
            count=1,
            amount=options["amount"],
            plan=plan,
            plan_days=options.get("plan_days"),
        )
    assert not RedemptionBatch.objects.exists()


def test_the_admin_generates_plan_codes_and_the_csv_names_the_plan(
    admin_user: User, pro: Plan
) -> None:
    client = Client()
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:billing_redemptionbatch_generate"),
        {"name": "launch", "count": "2", "amount": "0", "plan": pro.pk, "plan_days": "30"},
    )

    assert response.status_code == 302
    batch = RedemptionBatch.objects.get()
    assert (batch.amount, batch.plan, batch.plan_days) == (0, pro, 30)
    rows = list(csv.DictReader(io.StringIO(redemption_batch_download(batch_id=batch.pk))))
    assert [(r["plan"], r["plan_days"]) for r in rows] == [("coding-pro", "30")] * 2
    listing = client.get(reverse("admin:billing_redemptionbatch_changelist")).content.decode()
    assert "Coding Pro for 30 days" in listing


def test_the_admin_refuses_a_free_code_without_a_plan(admin_user: User) -> None:
    client = Client()
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:billing_redemptionbatch_generate"),
        {"name": "nothing", "count": "1", "amount": "0"},
    )

    assert response.status_code == 200 and b"must be positive" in response.content
    assert not RedemptionBatch.objects.exists()
