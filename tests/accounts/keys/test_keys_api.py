"""/api/v1/keys: create (secret once), read, change, rotate, delete, and clear 400s."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.keysecrets import hash_secret
from accounts.models import ApiKey, User
from billing.models import PricingGroup
from tests.conftest import MakeKey

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def verified(owner: User) -> User:
    owner.email_verified = True
    owner.save(update_fields=["email_verified"])
    return owner


@pytest.fixture
def api(client: Client, verified: User) -> Client:
    client.force_login(verified)
    return client


def _post(client: Client, path: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(path, body or {}, content_type="application/json")


def _patch(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.patch(path, body, content_type="application/json")


def test_it_creates_a_key_and_shows_the_secret_once(api: Client) -> None:
    response = _post(
        api,
        "/api/v1/keys",
        {
            "name": "ci",
            "allowed_models": ["gpt-4o*", " claude-3-5-haiku "],
            "allowed_ips": ["10.1.2.3/8", "2001:db8::1"],
            "spend_limit": 5_000_000,
            "spend_limit_period": "month",
            "rpm_limit": 60,
            "tpm_limit": 10_000,
            "expires_at": (timezone.now() + dt.timedelta(days=3)).isoformat(),
        },
    )

    assert response.status_code == 201, response.content
    body = response.json()
    key = ApiKey.objects.get(pk=body["id"])
    assert key.key_hash == hash_secret(body["secret"])
    assert body["secret"].startswith(body["prefix"])
    assert key.allowed_models == ["gpt-4o*", "claude-3-5-haiku"]
    assert key.allowed_ips == ["10.0.0.0/8", "2001:db8::1/128"]
    assert (key.spend_limit, key.spend_limit_period) == (5_000_000, "month")
    assert (key.rpm_limit, key.tpm_limit, key.scopes) == (60, 10_000, ["relay"])
    assert body["created_by"] == "owner@example.com"
    # Never again: not in the list, not in the detail.
    listed = api.get("/api/v1/keys").content.decode()
    detail = api.get(f"/api/v1/keys/{key.pk}").content.decode()
    assert body["secret"] not in listed + detail
    assert "secret" not in api.get(f"/api/v1/keys/{key.pk}").json()


def test_it_requires_a_verified_email_to_create_a_key(client: Client, owner: User) -> None:
    client.force_login(owner)  # owner.email_verified is False

    response = _post(client, "/api/v1/keys", {"name": "x"})

    assert response.status_code == 403
    assert "verify your email" in response.json()["detail"]
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"allowed_models": ["gpt 4o"]}, "allowed_models"),
        ({"allowed_models": "gpt-4o"}, "allowed_models"),
        ({"allowed_ips": ["10.0.0.0/33"]}, "allowed_ips"),
        ({"allowed_ips": ["example.com"]}, "allowed_ips"),
        ({"spend_limit": -1}, "spend_limit"),
        ({"spend_limit": 1.5}, "spend_limit"),
        ({"spend_limit": "5.00"}, "spend_limit"),  # five micro-dollars? refused
        ({"rpm_limit": 0}, "rpm_limit"),
        ({"tpm_limit": -5}, "tpm_limit"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "detail"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"spend_limit_period": "week"}, "spend_limit_period"),
        ({"scopes": ["admin"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"pricing_group": "default"}, "pricing_group"),
    ],
)
def test_it_refuses_bad_settings_with_a_clear_400(
    api: Client, body: dict[str, Any], field: str
) -> None:
    response = _post(api, "/api/v1/keys", body)

    assert response.status_code == 400
    assert field in response.json()
    assert not ApiKey.objects.exists()


def test_it_lets_staff_set_a_pricing_group(client: Client, admin_user: User) -> None:
    group = PricingGroup.objects.create(name="vip", multiplier="0.8")
    client.force_login(admin_user)

    created = _post(client, "/api/v1/keys", {"pricing_group": "vip"})
    assert created.status_code == 201
    assert ApiKey.objects.get(pk=created.json()["id"]).pricing_group == group

    changed = _patch(client, f"/api/v1/keys/{created.json()['id']}", {"pricing_group": None})
    assert changed.status_code == 200
    assert changed.json()["pricing_group"] is None


def test_it_refuses_a_pricing_group_change_from_a_customer(
    api: Client, verified: User, make_key: MakeKey
) -> None:
    PricingGroup.objects.create(name="vip", multiplier="0.1")
    key, _ = make_key(verified)

    response = _patch(api, f"/api/v1/keys/{key.pk}", {"pricing_group": "vip"})

    assert response.status_code == 400
    assert "staff" in response.json()["pricing_group"][0]
    key.refresh_from_db()
    assert key.pricing_group is None


def test_it_changes_only_the_fields_sent(api: Client, verified: User, make_key: MakeKey) -> None:
    key, _ = make_key(verified, name="old", allowed_models=["gpt-4o"], rpm_limit=5)
    ApiKey.objects.filter(pk=key.pk).update(spent=123, period_spent=45)

    response = _patch(api, f"/api/v1/keys/{key.pk}", {"name": "new", "tpm_limit": 900})

    assert response.status_code == 200
    key.refresh_from_db()
    assert (key.name, key.tpm_limit, key.rpm_limit) == ("new", 900, 5)
    assert key.allowed_models == ["gpt-4o"]
    assert (key.spent, key.period_spent) == (123, 45)


def test_it_clears_limits_with_null(api: Client, verified: User, make_key: MakeKey) -> None:
    key, _ = make_key(verified, spend_limit=10, rpm_limit=5, allowed_ips=["10.0.0.0/8"])

    response = _patch(
        api,
        f"/api/v1/keys/{key.pk}",
        {"spend_limit": None, "rpm_limit": None, "allowed_ips": [], "expires_at": None},
    )

    assert response.status_code == 200
    key.refresh_from_db()
    assert (key.spend_limit, key.rpm_limit, key.allowed_ips) == (None, None, [])


def test_it_disables_and_enables_a_key(api: Client, verified: User, make_key: MakeKey) -> None:
    key, _ = make_key(verified)

    assert _patch(api, f"/api/v1/keys/{key.pk}", {"status": "disabled"}).json()["status"] == (
        "disabled"
    )
    assert _patch(api, f"/api/v1/keys/{key.pk}", {"status": "active"}).json()["status"] == "active"
    assert _patch(api, f"/api/v1/keys/{key.pk}", {"status": "revoked"}).status_code == 400


def test_it_refuses_to_change_scopes_after_creation(
    api: Client, verified: User, make_key: MakeKey
) -> None:
    key, _ = make_key(verified)

    response = _patch(api, f"/api/v1/keys/{key.pk}", {"scopes": ["relay", "manage"]})

    assert response.status_code == 400
    key.refresh_from_db()
    assert key.scopes == ["relay"]


def test_it_rebases_the_period_when_a_monthly_limit_becomes_total(
    api: Client, verified: User, make_key: MakeKey
) -> None:
    key, _ = make_key(verified, spend_limit=100, spend_limit_period="month")
    ApiKey.objects.filter(pk=key.pk).update(spent=90, period_spent=10)

    _patch(api, f"/api/v1/keys/{key.pk}", {"spend_limit_period": "total"})

    key.refresh_from_db()
    assert (key.spend_limit_period, key.period_spent) == ("total", 90)


def test_it_rotates_a_key_keeping_id_settings_and_spend(
    api: Client, verified: User, make_key: MakeKey
) -> None:
    key, old_secret = make_key(verified, name="app", allowed_models=["gpt-4o*"], rpm_limit=7)
    ApiKey.objects.filter(pk=key.pk).update(spent=500)

    response = _post(api, f"/api/v1/keys/{key.pk}/rotate")

    assert response.status_code == 200
    body = response.json()
    key.refresh_from_db()
    assert body["id"] == key.pk
    assert body["secret"] != old_secret
    assert key.key_hash == hash_secret(body["secret"])
    assert not ApiKey.objects.filter(key_hash=hash_secret(old_secret)).exists()
    assert (key.name, key.allowed_models, key.rpm_limit, key.spent) == ("app", ["gpt-4o*"], 7, 500)


def test_it_deletes_a_key(api: Client, verified: User, make_key: MakeKey) -> None:
    key, _ = make_key(verified)

    assert api.delete(f"/api/v1/keys/{key.pk}").status_code == 204
    # Revoked and hidden; the row stays for the ledger, the logs and holds in flight.
    key.refresh_from_db()
    assert key.status == ApiKey.Status.REVOKED and key.deleted_at is not None
    assert api.get(f"/api/v1/keys/{key.pk}").status_code == 404
    assert key.pk not in [k["id"] for k in api.get("/api/v1/keys").json()["data"]]


def test_it_refuses_to_change_or_rotate_a_revoked_key(
    api: Client, verified: User, make_key: MakeKey
) -> None:
    key, _ = make_key(verified)
    ApiKey.objects.filter(pk=key.pk).update(status="revoked")

    assert _patch(api, f"/api/v1/keys/{key.pk}", {"status": "active"}).status_code == 400
    assert _post(api, f"/api/v1/keys/{key.pk}/rotate").status_code == 400


def test_it_hides_other_organizations_keys(api: Client, stranger: User, make_key: MakeKey) -> None:
    theirs, _ = make_key(stranger)

    for response in (
        api.get(f"/api/v1/keys/{theirs.pk}"),
        _patch(api, f"/api/v1/keys/{theirs.pk}", {"name": "mine now"}),
        _post(api, f"/api/v1/keys/{theirs.pk}/rotate"),
        api.delete(f"/api/v1/keys/{theirs.pk}"),
    ):
        assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == ""


def test_a_management_key_manages_keys_of_its_organization(
    client: Client, verified: User, make_key: MakeKey
) -> None:
    _, manage = make_key(verified, scopes=["manage"])
    auth = {"authorization": f"Bearer {manage}"}

    created = client.post(
        "/api/v1/keys", {"name": "by-key"}, content_type="application/json", headers=auth
    )

    assert created.status_code == 201
    rotated = client.post(f"/api/v1/keys/{created.json()['id']}/rotate", headers=auth)
    assert rotated.status_code == 200


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "x", "rpm": 5}, "rpm", "unknown field"),
        ({"name": "x\u0000y"}, "name", "NUL"),
        ({"pricing_group": "vip\u0000"}, "pricing_group", "NUL"),
        ({"allowed_models": ["gpt\u0000"]}, "allowed_models", "NUL"),
        ({"spend_limit": 2**70}, "spend_limit", "less than or equal"),
    ],
)
def test_it_refuses_unknown_fields_nul_characters_and_huge_numbers(
    api: Client, verified: User, make_key: MakeKey, body: dict[str, Any], field: str, message: str
) -> None:
    key, _ = make_key(verified)

    created = _post(api, "/api/v1/keys", body)
    changed = _patch(api, f"/api/v1/keys/{key.pk}", body)

    for response in (created, changed):
        assert response.status_code == 400
        assert message in response.json()[field][0]
    assert ApiKey.objects.count() == 1
