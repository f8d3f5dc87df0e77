"""GET /api/v1/subscription: the plan and each window's use, for any member."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Organization
from billing.models import Hold, Plan, Subscription, UsageBucket

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_without_a_plan_it_says_so(owner_client: Client) -> None:
    response = owner_client.get("/api/v1/subscription")
    assert response.status_code == 200
    assert response.json() == {"subscription": None}


def test_it_shows_each_window_used_held_and_when_it_frees_up(
    owner_client: Client, org: Organization
) -> None:
    now = timezone.now()
    plan = Plan.objects.create(
        name="Coding Pro", slug="pro", price=2000, covered_models=["claude-*"],
        window_5h_limit=5_000_000, week_limit=400, week_unit=Plan.Unit.REQUESTS,
    )  # fmt: skip
    sub = Subscription.objects.create(
        organization=org, plan=plan, provider="admin",
        current_period_start=now - dt.timedelta(days=3),
        current_period_end=now + dt.timedelta(days=27),
    )  # fmt: skip
    an_hour_ago = now - dt.timedelta(hours=1)
    UsageBucket.objects.create(meter=f"s{sub.pk}", span="m", start=an_hour_ago, cost=1_250_000)
    UsageBucket.objects.create(meter=f"s{sub.pk}", span="h", start=an_hour_ago, requests=12)
    Hold.objects.create(
        wallet=org.wallet, reference="r1", amount=300_000, subscription_id=sub.pk,
        expires_at=now + dt.timedelta(minutes=10),
    )  # fmt: skip
    body = owner_client.get("/api/v1/subscription").json()["subscription"]
    assert body["plan"] == "Coding Pro" and body["status"] == "active"
    assert body["covered_models"] == ["claude-*"]
    five, week = body["windows"]
    assert five["name"] == "5-hour window" and five["unit"] == "usd"
    assert (five["limit"], five["used"], five["in_flight"]) == ("5.000000", "1.250000", "0.300000")
    frees = dt.datetime.fromisoformat(five["frees_at"])
    assert dt.timedelta(hours=4) <= frees - now <= dt.timedelta(hours=4, minutes=10)
    assert (week["unit"], week["limit"], week["used"], week["in_flight"]) == (
        "requests", "400", "12", "1",
    )  # fmt: skip
    Hold.objects.all().delete()  # it held nothing from the wallet
