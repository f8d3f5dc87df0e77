"""The Django admin: no upstream key in clear, a read-only ledger, and balance changes only
through the adjust view, which writes a ledger entry with a reason."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib import admin
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey, Organization, User
from accounts.selectors import organization_personal
from accounts.services import key_create, user_create
from billing.models import LedgerEntry, Wallet
from billing.services import wallet_credit
from relay.models import Channel
from relay.services import channel_create

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

UPSTREAM_KEY = "sk-upstream-must-not-leak"


@pytest.fixture
def channel() -> Channel:
    return channel_create(
        name="main",
        type="openai",
        base_url="https://api.openai.com/v1",
        api_keys=[UPSTREAM_KEY],
        models=["gpt-4o"],
    )


@pytest.fixture
def wallet(org: Organization) -> Wallet:
    wallet_credit(organization=org, amount=10_000_000, kind="topup", source_type="t", source_id="1")
    return Wallet.objects.get(organization=org)


@pytest.fixture
def entry(wallet: Wallet) -> LedgerEntry:
    return LedgerEntry.objects.get(wallet=wallet)


def _adjust_url(wallet: Wallet) -> str:
    return reverse("admin:billing_wallet_adjust", args=[wallet.pk])


def _changelist(model: type[Model]) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m.__name__)
def test_it_lists_every_registered_model(
    admin_client: Client,
    channel: Channel,
    entry: LedgerEntry,
    owner: User,
    model: type[Model],
) -> None:
    key_create(organization=organization_personal(user=owner), created_by=owner)

    response = admin_client.get(_changelist(model))

    assert response.status_code == 200


def test_it_shows_api_keys_without_their_hash(admin_client: Client, owner: User) -> None:
    key, _ = key_create(organization=organization_personal(user=owner), created_by=owner)

    listing = admin_client.get(_changelist(ApiKey)).content.decode()
    page = admin_client.get(reverse("admin:accounts_apikey_change", args=[key.pk]))

    assert key.prefix in listing
    assert page.status_code == 200
    assert key.key_hash not in listing + page.content.decode()


def test_it_gives_users_added_in_the_admin_a_personal_org_and_wallet(
    admin_client: Client,
) -> None:
    form = {
        "email": "new@example.com",
        "password1": "Tr1cky-pass-w0rd",
        "password2": "Tr1cky-pass-w0rd",
    }

    response = admin_client.post(reverse("admin:accounts_user_add"), form)

    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert Wallet.objects.filter(organization=organization_personal(user=user)).exists()


def test_it_lists_channels_without_their_keys(admin_client: Client, channel: Channel) -> None:
    response = admin_client.get(reverse("admin:relay_channel_changelist"))

    assert response.status_code == 200
    assert "main" in response.content.decode()
    assert UPSTREAM_KEY not in response.content.decode()


def test_it_edits_a_channel_without_showing_its_keys(
    admin_client: Client, channel: Channel
) -> None:
    response = admin_client.get(reverse("admin:relay_channel_change", args=[channel.pk]))

    assert response.status_code == 200
    assert 'name="new_api_keys"' in response.content.decode()
    assert UPSTREAM_KEY not in response.content.decode()


def test_it_keeps_channel_keys_when_saved_without_new_ones(
    admin_client: Client, channel: Channel
) -> None:
    form = {
        "name": "renamed",
        "type": "openai",
        "base_url": "https://api.openai.com/v1",
        "model_names": '["gpt-4o"]',
        "model_map": "{}",
        "groups": "[]",
        "priority": "0",
        "weight": "1",
        "status": "enabled",
        "options": "{}",
        "new_api_keys": "",
        "cost_multiplier": "0.8",
        "margin_alert_below": "",
        # A price negotiated for this channel only, inline.
        "cost_prices-TOTAL_FORMS": "1",
        "cost_prices-INITIAL_FORMS": "0",
        "cost_prices-0-model": "gpt-4o-2024-08-06",
        "cost_prices-0-input_per_1m": "2000000",
        "cost_prices-0-output_per_1m": "8000000",
        "cost_prices-0-per_request": "0",
        "cost_prices-0-per_image": "0",
        "cost_prices-0-per_second": "0",
    }

    response = admin_client.post(reverse("admin:relay_channel_change", args=[channel.pk]), form)

    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.key_list()) == ("renamed", [UPSTREAM_KEY])
    assert channel.cost_multiplier == Decimal("0.8")
    (price,) = channel.cost_prices.all()
    assert (price.model, price.input_per_1m, price.channel_type) == (
        "gpt-4o-2024-08-06",
        2_000_000,
        "",
    )


def test_it_shows_ledger_entries(admin_client: Client, entry: LedgerEntry) -> None:
    response = admin_client.get(reverse("admin:billing_ledgerentry_change", args=[entry.pk]))

    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()


def test_it_cannot_add_ledger_entries(admin_client: Client, wallet: Wallet) -> None:
    response = admin_client.get(reverse("admin:billing_ledgerentry_add"))

    assert response.status_code == 403


def test_it_cannot_change_ledger_entries(admin_client: Client, entry: LedgerEntry) -> None:
    url = reverse("admin:billing_ledgerentry_change", args=[entry.pk])

    response = admin_client.post(url, {"amount": "1", "note": "edited"})

    assert response.status_code == 403
    entry.refresh_from_db()
    assert (entry.amount, entry.note) == (10_000_000, "")


def test_it_cannot_delete_ledger_entries(admin_client: Client, entry: LedgerEntry) -> None:
    url = reverse("admin:billing_ledgerentry_delete", args=[entry.pk])

    response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == 403
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()


def test_it_offers_no_bulk_delete_of_ledger_entries(
    admin_client: Client, entry: LedgerEntry
) -> None:
    response = admin_client.get(reverse("admin:billing_ledgerentry_changelist"))

    assert response.status_code == 200
    assert "delete_selected" not in response.content.decode()


def test_it_shows_the_adjust_form(admin_client: Client, wallet: Wallet) -> None:
    response = admin_client.get(_adjust_url(wallet))

    assert response.status_code == 200
    assert "10.000000" in response.content.decode()


def test_it_adjusts_a_wallet_through_the_ledger(
    admin_client: Client, admin_user: User, wallet: Wallet
) -> None:
    response = admin_client.post(
        _adjust_url(wallet), {"amount": "-2.5", "reason": "refund ticket 7"}
    )

    assert response.status_code == 302
    assert response["location"] == reverse("admin:billing_wallet_changelist")
    adjust = LedgerEntry.objects.get(kind="adjust")
    assert (adjust.amount, adjust.note, adjust.created_by) == (
        -2_500_000,
        "refund ticket 7",
        admin_user,
    )
    wallet.refresh_from_db()
    assert wallet.balance == adjust.balance_after == 7_500_000


def test_it_shows_the_new_balance_in_the_wallet_list(admin_client: Client, wallet: Wallet) -> None:
    admin_client.post(_adjust_url(wallet), {"amount": "1.25", "reason": "goodwill"})

    response = admin_client.get(reverse("admin:billing_wallet_changelist"))

    assert "11.250000" in response.content.decode()


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"amount": "5", "reason": ""}, "This field is required"),
        ({"amount": "0", "reason": "nothing"}, "zero changes nothing"),
        ({"amount": "0.0000001", "reason": "dust"}, "more precision"),
        ({"amount": "lots", "reason": "typo"}, "not a number"),
    ],
)
def test_it_rejects_an_invalid_adjustment(
    admin_client: Client, wallet: Wallet, form: dict[str, str], error: str
) -> None:
    response = admin_client.post(_adjust_url(wallet), form)

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not LedgerEntry.objects.filter(kind="adjust").exists()


def test_it_lets_only_superusers_adjust(client: Client, wallet: Wallet) -> None:
    staff = user_create(email="staff@example.com", password="staff-pass-123")
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    client.force_login(staff)

    response = client.post(_adjust_url(wallet), {"amount": "100", "reason": "for me"})

    assert response.status_code == 302
    assert not LedgerEntry.objects.filter(kind="adjust").exists()
    wallet.refresh_from_db()
    assert wallet.balance == 10_000_000


def test_it_sends_anonymous_visitors_to_the_login_page(client: Client, wallet: Wallet) -> None:
    response = client.post(_adjust_url(wallet), {"amount": "100", "reason": "for me"})

    assert response.status_code == 302
    assert "/admin/login/" in response["location"]
    assert not LedgerEntry.objects.filter(kind="adjust").exists()
