"""`/v1/dashboard/billing/subscription` reflects the plan: its name and id, and the end of
what was paid for as `access_until`; the balance's limits as before. Served by the real
ASGI app under uvicorn, read over plain HTTP as OpenAI-compatible dashboards do."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from django.utils import timezone

from accounts.models import Organization, User
from accounts.services import key_create
from billing.services import wallet_credit
from billing.subscriptions import subscription_fail, subscription_grant, subscription_start
from relay.catalog import catalog
from tests.billing.test_subscriptions import DAY, make_plan
from tests.relay.conftest import RelayServer

pytestmark = [pytest.mark.embedded]


@pytest.fixture(scope="module")
def relay_server() -> Iterator[RelayServer]:
    server = RelayServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def secret(transactional_db: None, owner: User, org: Organization) -> str:
    catalog.clear()
    wallet_credit(organization=org, amount=7_500_000, kind="adjust", source_type="t", source_id="1")
    return key_create(organization=org, created_by=owner, name="dash")[1]


def _subscription(server: RelayServer, secret: str) -> dict[str, object]:
    response = httpx.get(
        server.url + "/v1/dashboard/billing/subscription",
        headers={"authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def test_without_a_plan_it_answers_pay_as_you_go(relay_server: RelayServer, secret: str) -> None:
    body = _subscription(relay_server, secret)

    assert body["plan"] == {"title": "Pay-as-you-go", "id": "payg"}
    assert body["hard_limit_usd"] == 7.5 and body["access_until"] == 0


def test_with_a_plan_it_names_it_and_when_it_runs_out(
    relay_server: RelayServer, secret: str, org: Organization
) -> None:
    sub = subscription_grant(organization=org, plan=make_plan(), days=30, provider="admin")

    body = _subscription(relay_server, secret)

    assert body["object"] == "billing_subscription"
    assert body["plan"] == {"title": "Coding Pro", "id": "coding-pro"}
    assert body["access_until"] == int(sub.current_period_end.timestamp())
    assert body["hard_limit_usd"] == 7.5  # the balance, as before


def test_a_past_due_plan_runs_until_its_grace_ends(
    relay_server: RelayServer, secret: str, org: Organization
) -> None:
    now = timezone.now()
    subscription_start(
        organization=org,
        plan=make_plan(),
        provider="stripe",
        provider_ref="sub_d",
        period_start=now - 30 * DAY,
        period_end=now + DAY,
    )
    subscription_fail(provider="stripe", provider_ref="sub_d", period_end=None, now=now)

    body = _subscription(relay_server, secret)

    assert body["access_until"] == int((now + 3 * DAY).timestamp())
