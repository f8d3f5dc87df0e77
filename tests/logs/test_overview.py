"""/dashboard/: balance, spend, charts and top lists from rolled-up and live usage."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from django.test import Client

from accounts.access import ACTIVE_ORG_SESSION_KEY
from accounts.models import Organization, User
from accounts.services import key_create
from billing.models import LowBalanceAlert, Wallet
from billing.services import wallet_credit
from logs.models import RequestLog
from logs.services import daily_usage_rollup

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]
URL = "/dashboard/"


def _log(org: Organization, n: int, at: dt.datetime, **fields: Any) -> None:
    values: dict[str, Any] = {"model": "gpt-4o-mini", "status_code": 200, **fields}
    RequestLog.objects.create(
        request_id=f"r{n}", organization_id=org.pk, endpoint="chat/completions", created_at=at,
        **values,
    )  # fmt: skip


def _stat(text: str, name: str) -> str:
    match = re.search(rf'data-stat="{name}">([^<]*)<', text)
    assert match, name
    return match.group(1)


def _chart(client: Client, **params: str) -> dict[str, Any]:
    text = client.get(URL, params).content.decode()
    match = re.search(r'<script id="usage-data" type="application/json">(.*?)</script>', text, re.S)
    assert match, "no chart data in the page"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def test_it_adds_rolled_up_days_and_live_logs_without_double_counting(
    client: Client, org: Organization, owner: User
) -> None:
    now = dt.datetime.now(dt.UTC)
    three_days_ago = now - dt.timedelta(days=3)
    _log(org, 1, three_days_ago, cost=1_000_000, prompt_tokens=10, completion_tokens=5)
    _log(org, 2, three_days_ago, cost=500_000, status_code=500, model="o3")
    daily_usage_rollup(day=three_days_ago.date())  # the logs stay too, until purged
    _log(org, 3, now, cost=250_000, prompt_tokens=1, completion_tokens=2)
    wallet_credit(organization=org, amount=7_000_000, kind="topup", source_type="t", source_id="1")
    client.force_login(owner)

    text = client.get(URL).content.decode()

    assert _stat(text, "balance") == "$7.00"
    assert _stat(text, "today") == "$0.25"
    assert _stat(text, "errors") == "33.3%"
    cost_by_day = _chart(client)["total"]["cost"]
    assert len(cost_by_day) == 30 and sum(cost_by_day) == 1_750_000
    assert cost_by_day[-1] == 250_000 and cost_by_day[-4] == 1_500_000
    assert sum(_chart(client)["total"]["tokens"]) == 18
    assert sum(_chart(client, range="24h")["total"]["requests"]) == 1
    top = text.split('class="usage-groups"', 1)[1]
    assert top.index("gpt-4o-mini") < top.index("o3")  # by cost: 1.25 USD before 0.50


def test_members_see_only_their_own_keys_usage(
    client: Client, org: Organization, owner: User, teammate: User
) -> None:
    mine = key_create(organization=org, created_by=teammate, name="mine")[0]
    theirs = key_create(organization=org, created_by=owner, name="theirs")[0]
    now = dt.datetime.now(dt.UTC)
    _log(org, 1, now, api_key_id=mine.pk, cost=100)
    _log(org, 2, now, api_key_id=theirs.pk, cost=9_000)
    client.force_login(teammate)
    session = client.session
    session[ACTIVE_ORG_SESSION_KEY] = org.pk
    session.save()

    assert sum(_chart(client)["total"]["cost"]) == 100
    assert [g["name"] for g in _chart(client, split="key")["groups"]] == ["mine"]


def test_it_warns_when_credit_runs_low(client: Client, owner: User) -> None:
    client.force_login(owner)
    assert "Your available credit is low" in client.get(URL).content.decode()


def test_the_banner_follows_the_organizations_own_threshold(
    client: Client, org: Organization, owner: User
) -> None:
    wallet_credit(organization=org, amount=5_000_000, kind="topup", source_type="t", source_id="1")
    client.force_login(owner)
    assert "Your available credit is low" not in client.get(URL).content.decode()  # default $1
    LowBalanceAlert.objects.create(wallet=Wallet.objects.get(organization=org), threshold=6_000_000)
    assert "Your available credit is low" in client.get(URL).content.decode()
