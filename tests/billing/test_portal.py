"""The billing page of the portal: access by role, balance, top-up form, the ledger with daily
usage lines, printable receipts, redemption and the low-balance threshold."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Membership, Organization, User
from billing.codes import redemption_batch_create
from billing.holds import Settlement, hold_place, hold_settle
from billing.models import LedgerEntry, LowBalanceAlert, TopUp, Wallet
from billing.services import wallet_adjust
from logs.records import RequestRecord
from tests.billing.conftest import create_topup, post_stripe, process_pending
from tests.fakes.stripe_api import FakeStripe

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def _charge(org: Organization, ref: str, cost: int, when: dt.datetime | None = None) -> None:
    wallet = Wallet.objects.get(organization=org)
    hold_place(reference=ref, wallet_id=wallet.pk, api_key_id=None, amount=cost, ttl_seconds=60)
    record = RequestRecord(timezone.now(), org.pk, None, "chat")
    hold_settle(Settlement(ref, wallet.pk, None, cost, record))
    if when is not None:
        LedgerEntry.objects.filter(source_id=ref).update(created_at=when)


def test_members_without_billing_rights_cannot_see_the_page(
    teammate: User, org: Organization, client: Client
) -> None:
    client.force_login(teammate)
    session = client.session
    session["active_org_id"] = org.pk
    session.save()

    assert client.get("/dashboard/billing/").status_code == 403


def test_a_billing_member_sees_the_page(org: Organization, client: Client) -> None:
    from accounts.services import user_create

    accountant = user_create(email="books@example.com")
    Membership.objects.create(user=accountant, organization=org, role=Membership.Role.BILLING)
    client.force_login(accountant)
    session = client.session
    session["active_org_id"] = org.pk
    session.save()

    page = client.get("/dashboard/billing/")

    assert page.status_code == 200 and org.name in page.content.decode()


def test_the_page_shows_balance_and_every_entry_with_charges_per_day(
    owner_client: Client, org: Organization, admin_user: User
) -> None:
    wallet_adjust(
        organization=org, amount=20_000_000, reason="welcome credit", created_by=admin_user
    )
    now = timezone.now()
    # Another day of this month (the page shows one month at a time).
    other_day = now + dt.timedelta(days=-1 if now.day > 1 else 1)
    for n in range(3):
        _charge(org, f"old{n}", 100_000, when=other_day)
    for n in range(2):
        _charge(org, f"new{n}", 250_000)

    page = owner_client.get("/dashboard/billing/").content.decode()

    assert '<strong data-testid="balance" title="$19.200000">$19.20</strong>' in page  # 20-.3-.5
    assert "welcome credit" in page
    assert page.count('class="ledger-line kind-charge"') == 2  # one line per day, not per request
    assert "-$0.300000" in page and "3 requests" in page  # the ledger is exact
    assert "-$0.500000" in page and "2 requests" in page


def test_it_starts_a_topup_from_the_form_and_redirects_to_the_provider(
    owner_client: Client, fake_stripe: FakeStripe
) -> None:
    page = owner_client.get("/dashboard/billing/").content.decode()
    assert 'value="25"' in page and "Card (Stripe)" in page

    # The browser sends the chosen preset and the (empty) custom field.
    response = owner_client.post(
        "/dashboard/billing/topup/",
        {"amount_usd": "25", "custom_amount_usd": "", "provider": "stripe"},
    )
    custom = owner_client.post(
        "/dashboard/billing/topup/",
        {"amount_usd": "25", "custom_amount_usd": "12.34", "provider": "stripe"},
    )
    nothing = owner_client.post("/dashboard/billing/topup/", {"provider": "stripe"})

    first, second = TopUp.objects.order_by("pk")
    assert response.status_code == 302 and response["Location"] == first.redirect_url
    assert first.credit == 25_000_000
    assert custom.status_code == 302 and second.credit == 12_340_000
    assert "Choose or enter an amount." in nothing.content.decode()


def test_it_shows_why_a_topup_amount_is_refused(
    owner_client: Client, fake_stripe: FakeStripe
) -> None:
    response = owner_client.post(
        "/dashboard/billing/topup/", {"custom_amount_usd": "100000", "provider": "stripe"}
    )

    assert response.status_code == 200
    assert "A top-up is between 1 and 10000 USD." in response.content.decode()
    assert not TopUp.objects.exists()


def test_a_paid_topup_has_a_printable_receipt_visible_only_to_its_organization(
    owner_client: Client, org: Organization, fake_stripe: FakeStripe, stranger: User
) -> None:
    topup = create_topup(owner_client, "25")
    unpaid = create_topup(owner_client, "10")
    post_stripe(
        owner_client,
        fake_stripe.event("checkout.session.completed", fake_stripe.pay(topup.provider_ref)),
    )
    process_pending()

    page = owner_client.get("/dashboard/billing/").content.decode()
    receipt = owner_client.get(f"/dashboard/billing/receipts/{topup.pk}/")
    other = Client()
    other.force_login(stranger)

    assert f"/dashboard/billing/receipts/{topup.pk}/" in page
    assert page.count('class="topup state-paid"') == 1
    assert page.count('class="topup state-pending"') == 1
    assert receipt.status_code == 200
    text = receipt.content.decode()
    assert "25.00 USD" in text and "$25.000000" in text and org.name in text
    assert owner_client.get(f"/dashboard/billing/receipts/{unpaid.pk}/").status_code == 404
    assert other.get(f"/dashboard/billing/receipts/{topup.pk}/").status_code == 404


def test_it_redeems_a_code_from_the_page(owner_client: Client, org: Organization) -> None:
    code = redemption_batch_create(name="p", count=1, amount=3_000_000).codes[0]

    page = owner_client.post("/dashboard/billing/redeem/", {"code": code}, follow=True)
    again = owner_client.post("/dashboard/billing/redeem/", {"code": code}, follow=True)

    assert "3.000000 USD added to your balance." in page.content.decode()
    assert "already been redeemed" in again.content.decode()
    assert Wallet.objects.get(organization=org).balance == 3_000_000


def test_it_saves_and_clears_the_low_balance_threshold(
    owner_client: Client, org: Organization
) -> None:
    owner_client.post("/dashboard/billing/alert/", {"threshold_usd": "5"})
    assert LowBalanceAlert.objects.get(wallet__organization=org).threshold == 5_000_000
    assert 'value="5.000000"' in owner_client.get("/dashboard/billing/").content.decode()

    bad = owner_client.post("/dashboard/billing/alert/", {"threshold_usd": "-1"})
    assert "must be positive" in bad.content.decode()

    owner_client.post("/dashboard/billing/alert/", {"threshold_usd": ""})
    assert not LowBalanceAlert.objects.exists()


def test_the_return_page_shows_the_state_of_ones_own_topup(
    owner_client: Client, fake_stripe: FakeStripe
) -> None:
    topup = create_topup(owner_client, "25")

    pending = owner_client.get(f"/billing/return/?provider=stripe&topup={topup.pk}")
    canceled = owner_client.get(f"/billing/return/?provider=stripe&topup={topup.pk}&canceled=1")

    assert "Confirming your payment" in pending.content.decode()
    assert "Payment canceled" in canceled.content.decode()


def test_the_ledger_is_browsed_by_month_and_keeps_every_entry(
    owner_client: Client, org: Organization, admin_user: User
) -> None:
    old = wallet_adjust(
        organization=org, amount=7_000_000, reason="long ago", created_by=admin_user
    )
    LedgerEntry.objects.filter(pk=old.pk).update(
        created_at=dt.datetime(2025, 3, 15, 12, tzinfo=dt.UTC)
    )
    wallet_adjust(organization=org, amount=1_000_000, reason="this month", created_by=admin_user)

    now = owner_client.get("/dashboard/billing/").content.decode()
    march = owner_client.get("/dashboard/billing/?month=2025-03").content.decode()
    before = owner_client.get("/dashboard/billing/?month=2025-02").content.decode()

    assert "this month" in now and "long ago" not in now
    assert 'href="?month=' in now and 'rel="prev"' in now and 'rel="next"' not in now
    assert "long ago" in march and "this month" not in march and "?month=2025-04" in march
    assert 'rel="prev"' not in march  # nothing older
    assert "No entries this month." in before
    assert owner_client.get("/dashboard/billing/?month=nonsense").status_code == 200
