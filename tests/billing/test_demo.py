"""Demo payments: the checkout page's signed events credit exactly once, a forged or
tampered event is refused, and production has no demo provider (refused at startup)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from django.http.response import HttpResponseBase
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import Organization, User
from billing.models import LedgerEntry, PaymentEvent, TopUp
from billing.providers import providers_configured
from tests.billing.conftest import balance
from tests.test_settings import _django_setup, _production_env, _run, _secrets

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def demo(settings: SettingsWrapper) -> None:
    settings.PAYMENTS_DEMO = True
    settings.SITE_URL = "http://testserver"


def _start(client: Client, amount: str = "10") -> TopUp:
    response = client.post("/dashboard/billing/topup/", {"amount_usd": amount, "provider": "demo"})
    assert response.status_code == 302, response.content
    topup = TopUp.objects.get()
    assert response["Location"] == f"http://testserver/billing/demo/{topup.provider_ref}/"
    return topup


def _signed_form(client: Client, topup: TopUp, button: str) -> dict[str, str]:
    """The hidden fields of the checkout page's Pay or Cancel form, as a browser posts them."""
    html = client.get(f"/billing/demo/{topup.provider_ref}/").content.decode()
    form = html.split(f'id="demo-{button}"')[0].rsplit("<form", 1)[1]
    return dict(re.findall(r'name="([a-z]+)" value="([^"]*)"', form))


def _post(client: Client, topup: TopUp, data: dict[str, str]) -> HttpResponseBase:
    return client.post(f"/billing/demo/{topup.provider_ref}/event", data)


def test_it_credits_a_paid_demo_topup_exactly_once(
    demo: None, owner_client: Client, org: Organization
) -> None:
    topup = _start(owner_client)
    pay = _signed_form(owner_client, topup, "pay")

    first = _post(owner_client, topup, pay)
    replay = _post(owner_client, topup, pay)

    assert first.status_code == replay.status_code == 302
    assert first["Location"] == f"/billing/return/?provider=demo&topup={topup.pk}"
    assert balance(org) == 10_000_000
    assert LedgerEntry.objects.filter(kind="topup").count() == 1
    assert PaymentEvent.objects.filter(provider="demo").count() == 1
    topup.refresh_from_db()
    assert topup.state == TopUp.State.PAID
    receipt = owner_client.get(f"/dashboard/billing/receipts/{topup.pk}/")
    assert receipt.status_code == 200 and b"10.000000" in receipt.content


def test_it_refuses_a_forged_signature(demo: None, owner_client: Client, org: Organization) -> None:
    topup = _start(owner_client)
    pay = _signed_form(owner_client, topup, "pay")

    forged = _post(owner_client, topup, pay | {"signature": "0" * 64})
    bigger = _post(owner_client, topup, pay | {"amount": str(topup.pay_amount * 10)})
    flipped = _post(
        owner_client, topup, _signed_form(owner_client, topup, "cancel") | {"outcome": "paid"}
    )

    assert forged.status_code == bigger.status_code == flipped.status_code == 400
    assert balance(org) == 0
    assert not PaymentEvent.objects.exists()


def test_cancel_closes_the_topup_without_credit(
    demo: None, owner_client: Client, org: Organization
) -> None:
    topup = _start(owner_client)

    response = _post(owner_client, topup, _signed_form(owner_client, topup, "cancel"))

    assert response["Location"].endswith("&canceled=1")
    topup.refresh_from_db()
    assert topup.state == TopUp.State.FAILED and balance(org) == 0


def test_another_organization_cannot_see_or_pay_the_checkout(
    demo: None, owner_client: Client, stranger: User
) -> None:
    topup = _start(owner_client)
    pay = _signed_form(owner_client, topup, "pay")
    other = Client()
    other.force_login(stranger)

    assert other.get(f"/billing/demo/{topup.provider_ref}/").status_code == 404
    assert _post(other, topup, pay).status_code == 404


def test_the_demo_provider_is_absent_when_off(
    settings: SettingsWrapper, owner_client: Client
) -> None:
    settings.PAYMENTS_DEMO = False

    assert "demo" not in providers_configured()
    page = owner_client.get("/dashboard/billing/").content.decode()
    assert "Demo payment" not in page
    response = owner_client.post(
        "/dashboard/billing/topup/", {"amount_usd": "5", "provider": "demo"}
    )
    assert response.status_code == 200 and not TopUp.objects.exists()


def test_the_billing_page_offers_preset_amounts_and_labels_the_demo(
    demo: None, owner_client: Client
) -> None:
    page = owner_client.get("/dashboard/billing/").content.decode()

    for amount in ("5", "10", "25", "50"):
        assert f'name="amount_usd" value="{amount}"' in page
    assert 'name="custom_amount_usd"' in page
    assert "Demo payment (no money moves)" in page and 'id="demo-note"' in page


def test_production_has_no_demo_provider_and_refuses_to_start_with_one(tmp_path: Path) -> None:
    env = _production_env(tmp_path) | _secrets()
    show = "import django; django.setup(); from django.conf import settings; "
    show += "print(settings.PAYMENTS_DEMO)"

    default = _run([sys.executable, "-c", show], **env)
    refused = _django_setup(tmp_path, **env, PAYMENTS_DEMO="1")
    allowed = _django_setup(tmp_path, **env, PAYMENTS_DEMO="1", PAYMENTS_DEMO_IN_PRODUCTION="1")

    assert default.returncode == 0 and default.stdout.strip() == "False", default.stderr
    assert refused.returncode != 0 and "PAYMENTS_DEMO" in refused.stderr
    assert allowed.returncode == 0, allowed.stderr
