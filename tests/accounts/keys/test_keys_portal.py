"""/dashboard/keys/: create with the secret shown once (and a copy button), edit with the
same validation as the API, rotate, disable, delete."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.keysecrets import hash_secret
from accounts.models import ApiKey, User
from tests.conftest import MakeKey

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def portal(client: Client, owner: User) -> Client:
    owner.email_verified = True
    owner.save(update_fields=["email_verified"])
    client.force_login(owner)
    return client


def _secret(html: str) -> str:
    match = re.search(r'id="secret-value">(sk-th-[A-Za-z0-9]+)<', html)
    assert match, "no secret on the page"
    return match.group(1)


def test_it_creates_a_key_and_shows_its_secret_once_with_a_copy_button(portal: Client) -> None:
    response = portal.post(
        "/dashboard/keys/",
        {
            "name": "web",
            "scopes": ["relay"],
            "allowed_models": "gpt-4o*\nclaude-*",
            "allowed_ips": "10.0.0.0/8, 192.0.2.1",
            "spend_limit_usd": "2.50",
            "spend_limit_period": "month",
            "rpm_limit": "30",
        },
    )

    assert response.status_code == 200
    assert response["cache-control"] == "no-store"
    html = response.content.decode()
    secret = _secret(html)
    assert 'id="copy-secret"' in html
    key = ApiKey.objects.get()
    assert key.key_hash == hash_secret(secret)
    assert (key.name, key.spend_limit, key.spend_limit_period, key.rpm_limit) == (
        "web", 2_500_000, "month", 30,
    )  # fmt: skip
    assert key.allowed_models == ["gpt-4o*", "claude-*"]
    assert key.allowed_ips == ["10.0.0.0/8", "192.0.2.1/32"]
    again = portal.get("/dashboard/keys/").content.decode()
    assert secret not in again
    assert key.prefix in again


def test_it_shows_clear_errors_and_creates_nothing(portal: Client) -> None:
    response = portal.post(
        "/dashboard/keys/",
        {"allowed_ips": "10.0.0.300", "spend_limit_usd": "ten", "spend_limit_period": "total"},
    )

    assert response.status_code == 400
    html = response.content.decode()
    assert "not an IP address or CIDR network" in html
    assert "The spend limit must be an amount in USD" in html
    assert not ApiKey.objects.exists()


def test_it_asks_for_a_verified_email_before_creating(client: Client, owner: User) -> None:
    client.force_login(owner)

    page = client.get("/dashboard/keys/").content.decode()
    refused = client.post("/dashboard/keys/", {"name": "x"})

    assert "Verify your email address" in page
    assert 'id="create-key"' not in page
    assert refused.status_code == 403
    assert not ApiKey.objects.exists()


def test_it_edits_a_key(portal: Client, owner: User, make_key: MakeKey) -> None:
    key, _ = make_key(owner, name="old", rpm_limit=5)

    form = portal.get(f"/dashboard/keys/{key.pk}/").content.decode()
    saved = portal.post(
        f"/dashboard/keys/{key.pk}/",
        {"name": "new", "allowed_models": "gpt-4o-mini", "spend_limit_period": "total"},
    )

    assert 'value="old"' in form
    assert saved.status_code == 302
    key.refresh_from_db()
    assert (key.name, key.allowed_models, key.rpm_limit) == ("new", ["gpt-4o-mini"], None)


def test_it_rotates_disables_and_deletes(portal: Client, owner: User, make_key: MakeKey) -> None:
    key, old = make_key(owner)

    rotated = portal.post(f"/dashboard/keys/{key.pk}/rotate")
    new = _secret(rotated.content.decode())
    key.refresh_from_db()
    assert key.key_hash == hash_secret(new) != hash_secret(old)
    assert "The old secret no longer works" in rotated.content.decode()

    portal.post(f"/dashboard/keys/{key.pk}/status", {"status": "disabled"})
    key.refresh_from_db()
    assert key.status == "disabled"

    portal.post(f"/dashboard/keys/{key.pk}/delete")
    key.refresh_from_db()
    assert key.status == "revoked" and key.deleted_at is not None
    assert key.prefix not in portal.get("/dashboard/keys/").content.decode()


def test_get_is_not_allowed_on_write_endpoints(
    portal: Client, owner: User, make_key: MakeKey
) -> None:
    key, _ = make_key(owner)
    for path in ("rotate", "status", "delete"):
        assert portal.get(f"/dashboard/keys/{key.pk}/{path}").status_code == 405
    key.refresh_from_db()
    assert key.status == "active"
