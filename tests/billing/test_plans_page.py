"""The billing page's plans section without a browser: the empty state, what a customer
without online payment is told, a granted plan with paid plans on offer, Chinese."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client
from django.utils import translation
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import Organization, User
from billing.subscriptions import subscription_grant
from tests.billing.test_subscriptions import make_plan

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def _plans(client: Client) -> str:
    page = client.get("/dashboard/billing/").content.decode()
    return page.split('id="plans"', 1)[1].split("</section>", 1)[0]


def test_without_plans_the_section_leads_to_credit_and_codes(owner_client: Client) -> None:
    section = _plans(owner_client)

    assert "No plans are offered on this server yet" in section
    assert 'href="#topup"' in section and 'href="#redeem"' in section
    assert "Create a plan" not in section  # staff only


def test_staff_are_led_to_create_a_plan(admin_user: User) -> None:
    client = Client()
    client.force_login(admin_user)

    assert 'href="/admin/billing/plan/add/"' in _plans(client)


def test_without_a_payment_provider_plans_are_shown_without_a_button(
    owner_client: Client, settings: SettingsWrapper
) -> None:
    settings.PAYMENTS_DEMO = False
    make_plan()

    section = _plans(owner_client)

    assert "Coding Pro" in section and "$20.00" in section
    assert "Subscribe" not in section
    assert "redeem a code that grants a plan" in section


def test_a_granted_plan_ends_on_its_own_and_paid_plans_are_offered(
    owner_client: Client, org: Organization, settings: SettingsWrapper
) -> None:
    settings.PAYMENTS_DEMO = True
    subscription_grant(organization=org, plan=make_plan(), days=7, provider="code")
    make_plan("coding-max", price=10_000)

    section = _plans(owner_client)

    assert "it does not renew" in section
    assert "Cancel at period end" not in section and "Change plan" not in section
    assert "Keep going with a paid plan" in section and section.count("Subscribe to") == 2


@pytest.fixture
def english_after() -> Iterator[None]:
    """The request leaves Chinese active in this thread; later tests expect English."""
    yield
    translation.activate("en")


def test_the_section_speaks_chinese(
    owner_client: Client, settings: SettingsWrapper, english_after: None
) -> None:
    settings.PAYMENTS_DEMO = True
    make_plan()
    owner_client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})

    section = _plans(owner_client)

    assert "<h2>套餐</h2>" in section and "订阅" in section and "5 小时窗口" in section
