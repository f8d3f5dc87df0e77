"""billing.services: credits are idempotent per source, the ledger explains the balance."""

from __future__ import annotations

import pytest
from django.db.models import Sum

from accounts.models import Organization, User
from billing.models import LedgerEntry, Price, Wallet
from billing.services import price_set, wallet_adjust, wallet_credit

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def _credit(org: Organization, amount: int, source_id: str) -> tuple[LedgerEntry, bool]:
    return wallet_credit(
        organization=org,
        amount=amount,
        kind=LedgerEntry.Kind.TOPUP,
        source_type="test",
        source_id=source_id,
    )


def _balance(org: Organization) -> int:
    return Wallet.objects.get(organization=org).balance


def test_it_credits_the_wallet(org: Organization) -> None:
    entry, created = _credit(org, 12_500_000, "pay-1")

    assert created
    assert (entry.amount, entry.balance_after) == (12_500_000, 12_500_000)
    assert _balance(org) == 12_500_000


def test_it_credits_a_source_only_once(org: Organization) -> None:
    first, _ = _credit(org, 5_000_000, "pay-1")

    again, created = _credit(org, 5_000_000, "pay-1")

    assert not created
    assert again.pk == first.pk
    assert _balance(org) == 5_000_000
    assert LedgerEntry.objects.count() == 1


def test_it_ignores_the_amount_of_a_replay(org: Organization) -> None:
    _credit(org, 5_000_000, "pay-1")

    _, created = _credit(org, 9_000_000, "pay-1")

    assert not created
    assert _balance(org) == 5_000_000


def test_it_credits_the_same_id_from_another_source_type(org: Organization) -> None:
    _credit(org, 1_000_000, "42")

    _, created = wallet_credit(
        organization=org, amount=2_000_000, kind="redeem", source_type="code", source_id="42"
    )

    assert created
    assert _balance(org) == 3_000_000


def test_it_does_not_credit_a_source_already_recorded_for_another_org(
    org: Organization, stranger: User
) -> None:
    _credit(org, 1_000_000, "pay-1")
    other = Organization.objects.get(membership__user=stranger)

    entry, created = _credit(other, 1_000_000, "pay-1")

    assert not created
    assert entry.wallet.organization == org
    assert _balance(other) == 0


def test_it_records_the_running_balance_after_each_entry(org: Organization) -> None:
    for i, amount in enumerate([3_000_000, 250_000, -1_000_000, 7]):
        _credit(org, amount, f"s{i}")

    entries = LedgerEntry.objects.order_by("id")
    assert [e.balance_after for e in entries] == [3_000_000, 3_250_000, 2_250_000, 2_250_007]
    assert _balance(org) == entries.aggregate(total=Sum("amount"))["total"] == 2_250_007


def test_it_rejects_an_unknown_kind(org: Organization) -> None:
    with pytest.raises(ValueError, match="kind"):
        wallet_credit(organization=org, amount=1, kind="gift", source_type="t", source_id="1")
    assert _balance(org) == 0


def test_it_writes_an_adjust_entry_with_reason_and_author(
    org: Organization, admin_user: User
) -> None:
    _credit(org, 10_000_000, "pay-1")

    entry = wallet_adjust(
        organization=org, amount=-2_500_000, reason="  refund ticket 7 ", created_by=admin_user
    )

    assert (entry.kind, entry.amount, entry.note) == ("adjust", -2_500_000, "refund ticket 7")
    assert entry.created_by == admin_user
    assert entry.balance_after == _balance(org) == 7_500_000


def test_it_writes_a_new_entry_for_every_adjustment(org: Organization, admin_user: User) -> None:
    for _ in range(2):
        wallet_adjust(organization=org, amount=1_000_000, reason="goodwill", created_by=admin_user)

    assert _balance(org) == 2_000_000
    assert LedgerEntry.objects.filter(kind="adjust").count() == 2


@pytest.mark.parametrize("reason", ["", "   "])
def test_it_requires_a_reason_to_adjust(org: Organization, admin_user: User, reason: str) -> None:
    with pytest.raises(ValueError, match="reason"):
        wallet_adjust(organization=org, amount=1_000_000, reason=reason, created_by=admin_user)
    assert not LedgerEntry.objects.exists()


def test_it_refuses_an_adjustment_of_zero(org: Organization, admin_user: User) -> None:
    with pytest.raises(ValueError, match="zero"):
        wallet_adjust(organization=org, amount=0, reason="nothing", created_by=admin_user)
    assert not LedgerEntry.objects.exists()


def test_it_creates_a_price_with_the_given_fields() -> None:
    price = price_set(model="gpt-4o", input_per_1m=2_500_000, output_per_1m=10_000_000)

    price.refresh_from_db()
    assert (price.input_per_1m, price.output_per_1m, price.per_request) == (
        2_500_000,
        10_000_000,
        0,
    )
    assert price.cache_read_per_1m is None


def test_it_updates_only_the_given_price_fields() -> None:
    price_set(model="gpt-4o", input_per_1m=2_500_000, output_per_1m=10_000_000, per_request=1)

    price_set(model="gpt-4o", output_per_1m=8_000_000, cache_read_per_1m=1_250_000)

    price = Price.objects.get(model="gpt-4o")
    assert price.input_per_1m == 2_500_000
    assert price.output_per_1m == 8_000_000
    assert price.cache_read_per_1m == 1_250_000
    assert price.per_request == 1
    assert Price.objects.count() == 1


def test_it_rejects_a_negative_price() -> None:
    with pytest.raises(ValueError, match="negative"):
        price_set(model="gpt-4o", input_per_1m=-1)
    assert not Price.objects.exists()


def test_it_rejects_an_unknown_price_field() -> None:
    with pytest.raises(ValueError, match="unknown price fields"):
        price_set(model="gpt-4o", per_token=1)


def test_it_rejects_an_empty_model_name() -> None:
    with pytest.raises(ValueError, match="model name"):
        price_set(model="  ", input_per_1m=1)
