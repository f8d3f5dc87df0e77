"""Credit lines outside the relay: who grants them, the reconcile's floor, the billing page.
(The relay's admission against the line: tests/relay/test_credit_lines.py.)"""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, Organization, User
from billing.models import LedgerEntry, Wallet
from billing.reconcile import reconcile_run
from billing.services import wallet_adjust, wallet_credit_limit_set

pytestmark = pytest.mark.embedded
USD = 1_000_000


@pytest.fixture(autouse=True)
def _verified(org: Organization) -> None:
    """Credit lines are granted to verified organizations only (docs/enterprise.md)."""
    org.verified_at = timezone.now()
    org.save(update_fields=["verified_at"])


@pytest.mark.django_db
@pytest.mark.books_tampered
def test_reconcile_flags_a_charge_below_the_floor_not_one_within_the_line(
    org: Organization,
) -> None:
    wallet_credit_limit_set(organization=org, limit=2 * USD, reason="net 30", set_by=None)
    wallet = Wallet.objects.get(organization=org)
    for n, amount in enumerate((USD, USD)):  # down to -2 USD: within the line
        balance = Wallet.objects.get(pk=wallet.pk).balance - amount
        LedgerEntry.objects.create(wallet=wallet, kind="charge", amount=-amount,
                                   balance_after=balance, source_type="request",
                                   source_id=f"r{n}")  # fmt: skip
        Wallet.objects.filter(pk=wallet.pk).update(balance=balance)
    assert not [d for d in reconcile_run() if d.check == "negative"]

    LedgerEntry.objects.create(wallet=wallet, kind="charge", amount=-1, balance_after=-2 * USD - 1,
                               source_type="request", source_id="past")  # fmt: skip
    Wallet.objects.filter(pk=wallet.pk).update(balance=-2 * USD - 1)

    (found,) = [d for d in reconcile_run() if d.check == "negative"]
    assert "below its floor of -2.000000 by request past" in found.detail


@pytest.mark.django_db
def test_only_superusers_grant_a_credit_line_with_a_reason_and_it_is_audited(
    org: Organization, admin_user: User, client: Client
) -> None:
    wallet = Wallet.objects.get(organization=org)
    url = reverse("admin:billing_wallet_credit_line", args=[wallet.pk])
    staff = User.objects.create_user(email="staff@example.com", password="pw-123456789")
    User.objects.filter(pk=staff.pk).update(is_staff=True)
    client.force_login(staff)
    client.post(url, {"limit": "500", "reason": "asked nicely"})
    assert Wallet.objects.get(pk=wallet.pk).credit_limit == 0

    client.force_login(admin_user)
    assert client.post(url, {"limit": "-1", "reason": "x"}).status_code == 200  # refused
    assert client.post(url, {"limit": "500", "reason": ""}).status_code == 200  # no reason
    response = client.post(url, {"limit": "500", "reason": "net 30, signed contract"})

    assert response.status_code == 302
    assert Wallet.objects.get(pk=wallet.pk).credit_limit == 500 * USD
    event = AuditEvent.objects.get(kind="org_settings_changed", organization=org)
    assert event.actor == admin_user and event.meta["credit_limit_micros"] == 500 * USD
    assert mail.outbox == []


@pytest.mark.django_db
def test_the_billing_page_shows_the_line_and_what_is_available(
    org: Organization, owner_client: Client
) -> None:
    wallet_adjust(organization=org, amount=-USD, reason="owed", created_by=None)
    wallet_credit_limit_set(organization=org, limit=5 * USD, reason="net 30", set_by=None)

    page = owner_client.get(reverse("billing")).content.decode()

    assert "With your credit line of $5.00: $4.00 available." in page
    assert "Your balance is negative" not in page
