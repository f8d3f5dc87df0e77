"""Two-factor authentication with allauth MFA: TOTP with real codes, recovery codes, and the
organization policy that requires it."""

from __future__ import annotations

import re
import time

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, format_hotp_value, hotp_value
from django.core import mail
from django.test import Client

from accounts.access import ACTIVE_ORG_SESSION_KEY
from accounts.models import AuditEvent, Organization, User

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def totp_now(secret: str, offset: int = 0) -> str:
    return str(format_hotp_value(hotp_value(secret, int(time.time()) // 30 + offset)))


def sign_in(client: Client, user: User, password: str) -> str:
    """Password step; returns where allauth sends the browser next."""
    response = client.post("/accounts/login/", {"login": user.email, "password": password})
    assert response.status_code == 302, response.content.decode()[:1000]
    return str(response["Location"])


def reauthenticate(client: Client, password: str) -> None:
    """allauth asks for the password again before security changes."""
    response = client.post("/accounts/reauthenticate/", {"password": password})
    assert response.status_code == 302, response.content.decode()[:1000]


def enable_totp(client: Client, password: str) -> str:
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 302 and page["Location"].startswith("/accounts/reauthenticate/")
    reauthenticate(client, password)
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = client.session[SECRET_SESSION_KEY]
    assert secret in page.content.decode()  # shown for manual entry next to the QR code
    wrong = client.post("/accounts/2fa/totp/activate/", {"code": "000000"})
    assert wrong.status_code == 200 and b"Incorrect code" in wrong.content
    response = client.post("/accounts/2fa/totp/activate/", {"code": totp_now(secret)})
    assert response.status_code == 302
    return str(secret)


@pytest.fixture
def verified_owner(owner: User) -> User:
    EmailAddress.objects.filter(user=owner).update(verified=True)
    return owner


# Transactional: allauth announces a new authenticator (event, notification email) on commit.
@pytest.mark.django_db(transaction=True)
def test_it_enables_totp_and_then_asks_for_a_code_at_sign_in(client: Client, verified_owner):
    sign_in(client, verified_owner, "owner-pass-123")
    mail.outbox.clear()
    secret = enable_totp(client, "owner-pass-123")
    assert any("Authenticator" in m.subject for m in mail.outbox), [m.subject for m in mail.outbox]
    stored = Authenticator.objects.get(user=verified_owner, type=Authenticator.Type.TOTP)
    assert secret not in str(stored.data)  # encrypted at rest
    assert AuditEvent.objects.filter(user=verified_owner, kind="mfa_enabled").exists()
    client.logout()

    assert sign_in(client, verified_owner, "owner-pass-123") == "/accounts/2fa/authenticate/"
    assert client.get("/dashboard/").status_code == 302  # password alone is not enough
    bad = client.post("/accounts/2fa/authenticate/", {"code": "123456"})
    assert bad.status_code == 200
    assert "_auth_user_id" not in client.session
    failed = AuditEvent.objects.get(user=verified_owner, kind="sign_in_failed")
    assert failed.meta == {"step": "mfa", "method": "totp"}
    ok = client.post("/accounts/2fa/authenticate/", {"code": totp_now(secret)})
    assert ok.status_code == 302
    assert client.get("/dashboard/").status_code == 200


def test_it_accepts_a_recovery_code_once(client: Client, verified_owner):
    sign_in(client, verified_owner, "owner-pass-123")
    enable_totp(client, "owner-pass-123")
    codes = RecoveryCodes(
        Authenticator.objects.get(user=verified_owner, type=Authenticator.Type.RECOVERY_CODES)
    ).get_unused_codes()
    assert len(codes) >= 8
    client.logout()

    sign_in(client, verified_owner, "owner-pass-123")
    assert client.post("/accounts/2fa/authenticate/", {"code": codes[0]}).status_code == 302
    assert client.get("/dashboard/").status_code == 200
    client.logout()

    sign_in(client, verified_owner, "owner-pass-123")
    again = client.post("/accounts/2fa/authenticate/", {"code": codes[0]})
    assert again.status_code == 200
    assert "_auth_user_id" not in client.session


def test_an_owner_requiring_mfa_sends_members_without_it_to_set_it_up(
    client: Client, verified_owner: User, teammate: User, org: Organization
):
    owner_client = Client()
    sign_in(owner_client, verified_owner, "owner-pass-123")
    response = owner_client.post("/dashboard/settings/org/require-mfa", {"require_mfa": "on"})
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.require_mfa
    assert AuditEvent.objects.filter(organization=org, kind="mfa_policy_changed").exists()

    EmailAddress.objects.filter(user=teammate).update(verified=True)
    sign_in(client, teammate, "teammate-pass-123")
    blocked = client.get("/dashboard/")
    assert (blocked.status_code, blocked["Location"]) == (302, "/accounts/2fa/")
    api = client.get("/api/v1/me/export")
    assert api.status_code == 403 and "two-factor" in api.json()["detail"]
    enable_totp(client, "teammate-pass-123")
    assert client.get("/dashboard/").status_code == 200
    assert client.get("/api/v1/me/export").status_code == 200


def test_a_member_cannot_change_the_mfa_policy(client: Client, teammate: User, org: Organization):
    EmailAddress.objects.filter(user=teammate).update(verified=True)
    client.post("/accounts/login/", {"login": teammate.email, "password": "teammate-pass-123"})
    session = client.session
    session["active_org_id"] = org.pk
    session.save()
    response = client.post("/dashboard/settings/org/require-mfa", {"require_mfa": "on"})
    assert response.status_code == 403
    org.refresh_from_db()
    assert not org.require_mfa


def test_it_offers_passkeys(client: Client, verified_owner: User):
    sign_in(client, verified_owner, "owner-pass-123")
    reauthenticate(client, "owner-pass-123")
    page = client.get("/accounts/2fa/webauthn/add/")
    assert page.status_code == 200
    assert b"credential" in page.content.lower() or b"passkey" in page.content.lower()
    login_page = Client().get("/accounts/login/").content.decode().lower()
    assert "passkey" in login_page  # passkey sign-in offered on the login form


def test_the_admin_login_form_cannot_skip_the_second_factor(admin_user: User):
    client = Client()
    client.post("/accounts/login/", {"login": admin_user.email, "password": "admin-pass-123"})
    secret = enable_totp(client, "admin-pass-123")
    client.logout()

    # Django's admin form checks only the password...
    client.post(
        "/admin/login/?next=/admin/", {"username": admin_user.email, "password": "admin-pass-123"}
    )
    response = client.get("/admin/")
    assert (response.status_code, response["Location"]) == (
        302,
        "/accounts/login/?next=%2Fadmin%2F",
    )
    assert "_auth_user_id" not in client.session  # ...so that session is ended

    assert sign_in(client, admin_user, "admin-pass-123") == "/accounts/2fa/authenticate/"
    client.post("/accounts/2fa/authenticate/", {"code": totp_now(secret)})
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_sign_up_verify_enable_totp_and_sign_in_with_it(client: Client):
    """The issue's path end to end over HTTP: sign up, verify, TOTP, sign in with it, a team,
    an invited teammate who accepts, and what each role may do."""
    password = "a-long-unusual-passphrase-42"
    client.post(
        "/accounts/signup/",
        {"email": "whole@example.com", "password1": password, "password2": password},
    )
    body = str(mail.outbox[-1].body)
    confirm = body[body.index("/accounts/confirm-email/") :].split()[0]
    client.post(confirm)  # verified and signed in (same browser session)
    assert client.get("/dashboard/").status_code == 200
    user = User.objects.get(email="whole@example.com")

    secret = enable_totp(client, password)
    client.post("/accounts/logout/")
    assert client.get("/dashboard/").status_code == 302

    assert sign_in(client, user, password) == "/accounts/2fa/authenticate/"
    # A fresh code (the next period's is also accepted) so as not to reuse the last one.
    assert (
        client.post("/accounts/2fa/authenticate/", {"code": totp_now(secret, 1)}).status_code == 302
    )
    assert client.get("/dashboard/").status_code == 200
    kinds = set(AuditEvent.objects.filter(user=user).values_list("kind", flat=True))
    assert {"sign_up", "email_verified", "mfa_enabled", "sign_out", "sign_in"} <= kinds

    # A team, a teammate invited by email who signs up, verifies and accepts, and what
    # each of them may then do there.
    team = client.post(
        "/api/v1/organizations", {"name": "Acme"}, content_type="application/json"
    ).json()["id"]
    invited = client.post(
        f"/api/v1/organizations/{team}/members",
        {"email": "mate@example.com", "role": "member"},
        content_type="application/json",
    )
    assert invited.status_code == 201
    token = re.search(r"/invitations/([A-Za-z0-9_-]+)/", str(mail.outbox[-1].body))
    assert token
    mate = Client()
    mate.post(
        "/accounts/signup/",
        {"email": "mate@example.com", "password1": password, "password2": password},
    )
    body = str(mail.outbox[-1].body)
    mate.post(body[body.index("/accounts/confirm-email/") :].split()[0])
    assert mate.post(f"/invitations/{token.group(1)}/").status_code == 302
    session = mate.session
    session[ACTIVE_ORG_SESSION_KEY] = team
    session.save()

    mates_key = mate.post("/api/v1/keys", {"name": "mine"}, content_type="application/json")
    assert mates_key.status_code == 201
    owners_key = client.post("/api/v1/keys", {"name": "boss"}, content_type="application/json")
    assert owners_key.status_code == 201  # the owner's personal organization: not the team
    session = client.session
    session[ACTIVE_ORG_SESSION_KEY] = team
    session.save()
    assert [k["name"] for k in client.get("/api/v1/keys").json()["data"]] == ["mine"]
    assert [k["name"] for k in mate.get("/api/v1/keys").json()["data"]] == ["mine"]
    members = f"/api/v1/organizations/{team}/members"
    assert (
        mate.post(
            members, {"email": "x@example.com", "role": "member"}, content_type="application/json"
        ).status_code
        == 403
    )  # a member may not invite
    assert mate.get("/dashboard/billing/").status_code == 403  # nor see the team's billing
    assert client.get("/dashboard/billing/").status_code == 200
    assert Client().get(members).status_code in (401, 403)
