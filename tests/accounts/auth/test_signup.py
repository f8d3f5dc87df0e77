"""Sign-up, email verification, sign-in and password reset through allauth's pages, over HTTP."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from accounts.models import AuditEvent, Membership, User
from accounts.selectors import organization_personal, user_can_create_keys
from billing.models import Wallet

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

PASSWORD = "a-long-unusual-passphrase-42"


def _link(pattern: str) -> str:
    assert mail.outbox, "no email was sent"
    match = re.search(rf"https?://[^/\s]+(/accounts/{pattern}/\S+)", str(mail.outbox[-1].body))
    assert match, mail.outbox[-1].body
    return match.group(1)


def sign_up(client: Client, email: str = "New.Person@Example.com") -> User:
    response = client.post(
        "/accounts/signup/",
        {"email": email, "password1": PASSWORD, "password2": PASSWORD, "name": "New Person"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == "/accounts/confirm-email/"
    return User.objects.get(email=email.lower())


def test_it_signs_up_with_a_personal_organization_and_wallet(client: Client):
    user = sign_up(client)
    assert user.name == "New Person"
    assert user.check_password(PASSWORD)
    assert user.password.startswith("md5$") or user.password.startswith("argon2")
    org = organization_personal(user=user)
    assert Membership.objects.get(user=user).role == Membership.Role.OWNER
    assert Wallet.objects.get(organization=org).balance == 0
    assert AuditEvent.objects.filter(user=user, kind="sign_up").exists()


def test_it_refuses_to_sign_in_or_create_keys_before_verification(client: Client):
    user = sign_up(client)
    assert not user_can_create_keys(user=user)
    client.logout()
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert client.get("/dashboard/").status_code == 302  # still signed out


def test_it_verifies_the_email_then_lets_the_person_in(client: Client):
    user = sign_up(client)
    confirm = _link("confirm-email")
    assert client.get(confirm).status_code == 200
    response = client.post(confirm)
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.email_verified
    assert EmailAddress.objects.get(user=user).verified
    assert user_can_create_keys(user=user)
    assert AuditEvent.objects.filter(user=user, kind="email_verified").exists()
    dashboard = client.get("/dashboard/")
    assert dashboard.status_code == 200
    assert b"Verify your email" not in dashboard.content
    client.get("/dashboard/settings/")
    # The privacy promise: session, CSRF, language and theme cookies, nothing else.
    assert set(client.cookies) <= {"sessionid", "csrftoken", "django_language", "theme"}


def test_it_remembers_the_session_only_when_asked(client: Client, owner: User):
    EmailAddress.objects.filter(user=owner).update(verified=True)
    client.post(
        "/accounts/login/", {"login": owner.email, "password": "owner-pass-123", "remember": ""}
    )
    assert client.session.get_expire_at_browser_close()
    client.logout()
    client.post(
        "/accounts/login/",
        {"login": owner.email, "password": "owner-pass-123", "remember": "on"},
    )
    assert not client.session.get_expire_at_browser_close()


def test_it_resets_a_forgotten_password(client: Client, owner: User):
    EmailAddress.objects.filter(user=owner).update(verified=True)
    response = client.post("/accounts/password/reset/", {"email": owner.email})
    assert response.status_code == 302
    reset = _link("password/reset/key")
    form_url = client.get(reset)["Location"]  # allauth hides the key behind a redirect
    new = "another-long-passphrase-77"
    response = client.post(form_url, {"password1": new, "password2": new})
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password(new)
    assert AuditEvent.objects.filter(user=owner, kind="password_reset").exists()


def test_it_audits_failures_successes_and_new_addresses(owner: User):
    EmailAddress.objects.filter(user=owner).update(verified=True)
    home = Client(REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT="Home/1")
    home.post("/accounts/login/", {"login": owner.email, "password": "wrong-password"})
    failed = AuditEvent.objects.get(kind="sign_in_failed")
    assert (failed.user, failed.ip, failed.meta) == (owner, "192.0.2.10", {})
    home.post("/accounts/login/", {"login": owner.email, "password": "owner-pass-123"})
    home.logout()
    home.post("/accounts/login/", {"login": owner.email, "password": "owner-pass-123"})
    assert not AuditEvent.objects.filter(kind="sign_in_new_ip").exists()
    travel = Client(REMOTE_ADDR="198.51.100.20", HTTP_USER_AGENT="Hotel/2")
    travel.post("/accounts/login/", {"login": owner.email, "password": "owner-pass-123"})
    new_ip = AuditEvent.objects.get(kind="sign_in_new_ip")
    assert (new_ip.user, new_ip.ip, new_ip.user_agent) == (owner, "198.51.100.20", "Hotel/2")
    notice = mail.outbox[-1]
    assert notice.to == [owner.email] and "New sign-in" in notice.subject
    assert "198.51.100.20" in str(notice.body)
    assert AuditEvent.objects.filter(user=owner, kind="sign_in").count() == 3


def test_it_rate_limits_failed_sign_ins_per_account(client: Client, owner: User):
    EmailAddress.objects.filter(user=owner).update(verified=True)
    for _ in range(5):
        client.post("/accounts/login/", {"login": owner.email, "password": "wrong"})
    response = client.post("/accounts/login/", {"login": owner.email, "password": "owner-pass-123"})
    assert response.status_code in (200, 429)
    assert b"Too many failed login attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_key_creation_needs_a_verified_active_account(db: None):
    from accounts.services import user_create

    cli_made = user_create(email="cli@example.com", email_verified=True)
    unverified = user_create(email="later@example.com")
    assert user_can_create_keys(user=cli_made)
    assert not user_can_create_keys(user=unverified)
    cli_made.is_active = False
    assert not user_can_create_keys(user=cli_made)


def test_a_failed_sign_in_for_an_unknown_address_stores_no_address(client: Client):
    client.post("/accounts/login/", {"login": "nobody@example.net", "password": "guess"})
    event = AuditEvent.objects.get(kind="sign_in_failed")
    assert event.user is None and event.meta == {}
    assert not AuditEvent.objects.filter(meta__icontains="nobody").exists()
