"""The /api/v1 management API: `manage`-scoped keys or a session, the caller's org only."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, Organization, User
from accounts.selectors import organization_personal
from accounts.services import key_create, key_set_status
from tests.conftest import MakeKey

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_it_answers_at_the_api_root(client: Client) -> None:
    response = client.get("/api/v1/")

    assert response.status_code == 200
    assert response.json()["version"] == "v1"
    assert response.json()["endpoints"]["keys"].endswith("/api/v1/keys")


def test_it_lists_only_the_callers_org_keys(
    client: Client, owner: User, stranger: User, make_key: MakeKey
) -> None:
    manage_key, secret = make_key(owner, name="admin", scopes=["manage"])
    relay_key, _ = make_key(owner, name="app")
    make_key(stranger, name="theirs")

    response = client.get("/api/v1/keys", headers={"authorization": f"Bearer {secret}"})

    assert response.status_code == 200
    assert {k["id"] for k in response.json()["data"]} == {manage_key.pk, relay_key.pk}


def test_it_never_returns_the_hash_or_secret(
    client: Client, owner: User, make_key: MakeKey
) -> None:
    key, secret = make_key(owner, scopes=["manage"])

    response = client.get("/api/v1/keys", headers={"authorization": f"Bearer {secret}"})

    body = response.content.decode()
    assert key.prefix in body
    assert key.key_hash not in body
    assert secret not in body
    assert "key_hash" not in body


def test_it_refuses_a_relay_only_key(client: Client, owner: User, make_key: MakeKey) -> None:
    _, secret = make_key(owner, scopes=["relay"])

    response = client.get("/api/v1/keys", headers={"authorization": f"Bearer {secret}"})

    assert response.status_code == 403


def test_it_refuses_a_revoked_key(client: Client, owner: User, make_key: MakeKey) -> None:
    key, secret = make_key(owner, scopes=["manage"])
    key_set_status(key=key, status=ApiKey.Status.REVOKED)

    response = client.get("/api/v1/keys", headers={"authorization": f"Bearer {secret}"})

    assert response.status_code == 401


@pytest.mark.parametrize(
    "secret", ["sk-th-" + "x" * 40, "sk-th-short", "not-a-key", "sk-th-" + "é" * 40]
)
def test_it_refuses_a_bogus_key(client: Client, owner: User, secret: str) -> None:
    response = client.get("/api/v1/keys", headers={"authorization": f"Bearer {secret}"})

    assert response.status_code == 401


def test_it_refuses_an_anonymous_caller(client: Client) -> None:
    response = client.get("/api/v1/keys")

    assert response.status_code == 401
    assert response["www-authenticate"].startswith("Bearer")


def test_it_accepts_a_session(client: Client, owner: User, make_key: MakeKey) -> None:
    key, _ = make_key(owner)
    client.force_login(owner)

    response = client.get("/api/v1/keys")

    assert response.status_code == 200
    assert [k["id"] for k in response.json()["data"]] == [key.pk]


def test_it_shows_a_session_user_only_their_own_keys(
    client: Client, owner: User, stranger: User, make_key: MakeKey
) -> None:
    make_key(owner)
    client.force_login(stranger)

    response = client.get("/api/v1/keys")

    assert response.status_code == 200
    assert response.json()["data"] == []


def test_it_refuses_an_expired_key(client: Client, owner: User, make_key: MakeKey) -> None:
    key, secret = make_key(owner, scopes=["manage"])
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    response = client.get("/api/v1/keys", headers={"authorization": f"Bearer {secret}"})

    assert response.status_code == 401


def test_it_lists_the_keys_of_the_org_a_team_key_belongs_to(
    client: Client, org: Organization, teammate: User
) -> None:
    team_key, secret = key_create(organization=org, created_by=teammate, scopes=["manage"])
    key_create(organization=organization_personal(user=teammate), created_by=teammate)

    response = client.get("/api/v1/keys", headers={"authorization": f"Bearer {secret}"})

    assert response.status_code == 200
    assert [k["id"] for k in response.json()["data"]] == [team_key.pk]


def test_it_refuses_a_key_used_outside_its_ip_allow_list(
    client: Client, owner: User, make_key: MakeKey
) -> None:
    _, secret = make_key(owner, scopes=["manage"], allowed_ips=["10.0.0.0/8"])

    response = client.get(
        "/api/v1/keys", headers={"authorization": f"Bearer {secret}"}, REMOTE_ADDR="192.0.2.1"
    )

    assert response.status_code == 403
