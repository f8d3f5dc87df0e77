"""accounts.services: users come with an org and a wallet; key secrets never reach the DB."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.db import connection
from django.utils import timezone

from accounts.exceptions import EmailTaken, InvalidKeySettings
from accounts.models import ApiKey, Membership, Organization, User
from accounts.services import key_create, key_set_status, user_create
from billing.models import LedgerEntry, Wallet
from tests.conftest import MakeKey

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def _every_stored_value() -> list[str]:
    """Every column of every row of every table, as text."""
    values = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            values += [str(v) for row in cursor.fetchall() for v in row if v is not None]
    return values


def test_it_creates_a_personal_org_owned_by_the_user() -> None:
    user = user_create(email="ann@example.com")

    membership = Membership.objects.get(user=user)
    assert membership.role == Membership.Role.OWNER
    assert membership.organization.is_personal


def test_it_creates_an_empty_wallet_for_the_personal_org() -> None:
    user = user_create(email="ann@example.com")

    wallet = Wallet.objects.get(organization__membership__user=user)
    assert (wallet.balance, wallet.held) == (0, 0)
    assert not LedgerEntry.objects.filter(wallet=wallet).exists()


def test_it_normalises_the_email_to_lower_case() -> None:
    user = user_create(email="  Ann@Example.COM ")

    assert user.email == "ann@example.com"


def test_it_rejects_a_duplicate_email_in_any_case() -> None:
    user_create(email="ann@example.com")

    with pytest.raises(EmailTaken):
        user_create(email="ANN@example.com")
    assert User.objects.count() == 1
    assert Organization.objects.count() == 1


def test_it_rejects_an_address_without_at_sign() -> None:
    with pytest.raises(ValueError, match="valid email"):
        user_create(email="not-an-address")


def test_it_gives_admins_staff_superuser_and_a_verified_email() -> None:
    user = user_create(email="root@example.com", password="pw-123456789", is_admin=True)

    assert (user.is_staff, user.is_superuser, user.email_verified) == (True, True, True)
    assert user.check_password("pw-123456789")


def test_it_gives_users_created_without_password_an_unusable_one() -> None:
    user = user_create(email="ann@example.com")

    assert not user.has_usable_password()


def test_it_returns_a_secret_with_the_product_prefix(owner: User, make_key: MakeKey) -> None:
    key, secret = make_key(owner)

    assert secret.startswith("sk-th-")
    assert secret.startswith(key.prefix)
    assert key.prefix.startswith("sk-th-")
    assert len(key.prefix) < len(secret)


def test_it_stores_only_the_sha256_of_the_secret(owner: User, make_key: MakeKey) -> None:
    key, secret = make_key(owner, name="ci")

    key.refresh_from_db()
    assert key.key_hash == hashlib.sha256(secret.encode()).hexdigest()


def test_it_never_stores_the_secret_anywhere(owner: User, make_key: MakeKey) -> None:
    _, secret = make_key(owner, name="ci", allowed_models=["gpt-4o*"], allowed_ips=["10.0.0.0/8"])
    random_part = secret.removeprefix("sk-th-")

    stored = _every_stored_value()
    assert stored  # the search did look at rows
    assert not [v for v in stored if secret in v or random_part in v]


def test_it_makes_a_different_secret_every_time(owner: User, make_key: MakeKey) -> None:
    secrets = {make_key(owner)[1] for _ in range(5)}

    assert len(secrets) == 5


def test_it_normalises_ip_networks(owner: User, make_key: MakeKey) -> None:
    key, _ = make_key(owner, allowed_ips=["10.1.2.3/8", " ::1 "])

    assert key.allowed_ips == ["10.0.0.0/8", "::1/128"]


@pytest.mark.parametrize("network", ["10.0.0.300/8", "not-an-ip", "10.0.0.0/33"])
def test_it_rejects_invalid_ip_networks(owner: User, make_key: MakeKey, network: str) -> None:
    with pytest.raises(InvalidKeySettings, match="IP network"):
        make_key(owner, allowed_ips=["127.0.0.1", network])
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("scopes", [[], ["admin"], ["relay", "everything"]])
def test_it_rejects_unknown_or_missing_scopes(
    owner: User, make_key: MakeKey, scopes: list[str]
) -> None:
    with pytest.raises(InvalidKeySettings, match="scopes"):
        make_key(owner, scopes=scopes)


def test_it_rejects_an_expiry_in_the_past(owner: User, make_key: MakeKey) -> None:
    with pytest.raises(InvalidKeySettings, match="expiry"):
        make_key(owner, expires_at=timezone.now() - dt.timedelta(seconds=1))


def test_it_accepts_an_expiry_in_the_future(owner: User, make_key: MakeKey) -> None:
    expires = timezone.now() + dt.timedelta(days=30)

    key, _ = make_key(owner, expires_at=expires)

    assert key.expires_at == expires
    assert key.is_usable()


def test_it_rejects_a_negative_spend_limit(owner: User, make_key: MakeKey) -> None:
    with pytest.raises(InvalidKeySettings, match="spend limit"):
        make_key(owner, spend_limit=-1)


@pytest.mark.parametrize("limit", ["rpm_limit", "tpm_limit"])
def test_it_rejects_non_positive_rate_limits(owner: User, make_key: MakeKey, limit: str) -> None:
    with pytest.raises(InvalidKeySettings, match="rate limits"):
        make_key(owner, **{limit: 0})


def test_it_rejects_model_patterns_with_whitespace(owner: User, make_key: MakeKey) -> None:
    with pytest.raises(InvalidKeySettings, match="model pattern"):
        make_key(owner, allowed_models=["gpt 4o"])


def test_it_makes_a_revoked_key_unusable(owner: User, make_key: MakeKey) -> None:
    key, _ = make_key(owner)

    key_set_status(key=key, status=ApiKey.Status.REVOKED)

    key.refresh_from_db()
    assert key.status == ApiKey.Status.REVOKED
    assert not key.is_usable()


def test_it_rejects_an_unknown_key_status(owner: User, make_key: MakeKey) -> None:
    key, _ = make_key(owner)

    with pytest.raises(InvalidKeySettings):
        key_set_status(key=key, status="paused")


def test_it_creates_the_key_in_the_given_org(org: Organization, teammate: User) -> None:
    key, _ = key_create(organization=org, created_by=teammate, scopes=["relay", "manage"])

    assert key.organization == org
    assert key.created_by == teammate
    assert key.scopes == ["manage", "relay"]
