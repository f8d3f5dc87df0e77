"""The full OAuth callback flow for GitHub and a generic OpenID Connect issuer, against a
loopback stub of the provider: sign-up, sign-in again, linking and unlinking."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from allauth.socialaccount.providers.github.views import GitHubOAuth2Adapter
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import AuditEvent, Membership, User
from accounts.oauth_providers import providers_from_env
from accounts.selectors import organization_personal, user_can_create_keys
from billing.models import Wallet
from tests.accounts.auth.provider_stub import CLIENT_ID, CLIENT_SECRET, Identity, ProviderStub

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


@pytest.fixture
def stub() -> Iterator[ProviderStub]:
    provider = ProviderStub(Identity(uid="4242", email="Octo@Example.com", name="Octo Cat")).start()
    yield provider
    provider.stop()


@pytest.fixture
def github(stub: ProviderStub, settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch):
    """GitHub configured from the environment, its endpoints pointed at the stub."""
    settings.SOCIALACCOUNT_PROVIDERS = providers_from_env(
        {"OAUTH_GITHUB_CLIENT_ID": CLIENT_ID, "OAUTH_GITHUB_SECRET": CLIENT_SECRET}
    )
    monkeypatch.setattr(GitHubOAuth2Adapter, "authorize_url", f"{stub.url}/login/oauth/authorize")
    monkeypatch.setattr(
        GitHubOAuth2Adapter, "access_token_url", f"{stub.url}/login/oauth/access_token"
    )
    monkeypatch.setattr(GitHubOAuth2Adapter, "profile_url", f"{stub.url}/api/v3/user")
    monkeypatch.setattr(GitHubOAuth2Adapter, "emails_url", f"{stub.url}/api/v3/user/emails")
    return stub


@pytest.fixture
def oidc(stub: ProviderStub, settings: SettingsWrapper):
    settings.SOCIALACCOUNT_PROVIDERS = providers_from_env(
        {
            "OAUTH_OIDC_CLIENT_ID": CLIENT_ID,
            "OAUTH_OIDC_SECRET": CLIENT_SECRET,
            "OAUTH_OIDC_SERVER_URL": stub.url,
            "OAUTH_OIDC_NAME": "Company SSO",
        }
    )
    return stub


def authorize(client: Client, login_path: str, stub: ProviderStub, **query: str) -> str:
    """Press the provider button; check where the browser is sent; return the state."""
    path = login_path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    response = client.post(path)
    assert response.status_code == 302, response.content.decode()[:1000]
    target = urlparse(response["Location"])
    assert f"{target.scheme}://{target.netloc}" == stub.url
    params = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"].endswith(login_path + "callback/")
    return params["state"]


def callback(client: Client, login_path: str, state: str, code: str):
    return client.get(f"{login_path}callback/", {"code": code, "state": state})


def test_github_sign_up_creates_a_verified_user_with_a_personal_org(client: Client, github):
    state = authorize(client, "/accounts/github/login/", github)
    response = callback(client, "/accounts/github/login/", state, github.code)
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    user = User.objects.get(email="octo@example.com")
    assert user.name == "Octo Cat"
    assert SocialAccount.objects.get(user=user).uid == "4242"
    assert user.email_verified and user_can_create_keys(user=user)
    org = organization_personal(user=user)
    assert Wallet.objects.filter(organization=org).exists()
    assert Membership.objects.get(user=user).role == Membership.Role.OWNER
    assert client.get("/dashboard/").status_code == 200
    # The token request carried our credentials and the code; the API call the token.
    assert ("GET", "/api/v3/user", {"auth": "token stub-access-token"}) in github.requests

    # Signing in again finds the same person, no second account.
    client.logout()
    state = authorize(client, "/accounts/github/login/", github)
    assert callback(client, "/accounts/github/login/", state, github.code).status_code == 302
    assert User.objects.filter(email="octo@example.com").count() == 1
    assert AuditEvent.objects.filter(user=user, kind="sign_in").count() == 2


def test_github_callback_refuses_a_forged_state_or_a_bad_code(client: Client, github):
    state = authorize(client, "/accounts/github/login/", github)
    forged = callback(client, "/accounts/github/login/", "not-the-state", github.code)
    assert forged.status_code == 401  # allauth's "login failure" page
    assert b"Third-Party Login Failure" in forged.content
    assert "_auth_user_id" not in client.session
    state = authorize(client, "/accounts/github/login/", github)
    bad_code = callback(client, "/accounts/github/login/", state, "stolen-code")
    assert ("POST", "/login/oauth/access_token") in [(m, p) for m, p, _ in github.requests]
    assert bad_code.status_code == 401
    assert b"Third-Party Login Failure" in bad_code.content
    assert not User.objects.filter(email="octo@example.com").exists()


def test_oidc_sign_up_through_discovery_token_and_userinfo(client: Client, oidc):
    state = authorize(client, "/accounts/oidc/oidc/login/", oidc)
    response = callback(client, "/accounts/oidc/oidc/login/", state, oidc.code)
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    user = User.objects.get(email="octo@example.com")
    account = SocialAccount.objects.get(user=user)
    assert (account.provider, account.uid) == ("oidc", "4242")
    assert user.email_verified
    assert organization_personal(user=user).is_personal
    paths = [(method, path) for method, path, _ in oidc.requests]
    assert ("GET", "/.well-known/openid-configuration") in paths
    assert ("POST", "/token") in paths
    assert ("GET", "/userinfo") in paths
    assert b"Company SSO" in Client().get("/accounts/login/").content


def test_an_unverified_provider_email_still_needs_verification(client: Client, oidc):
    oidc.identity.verified = False
    state = authorize(client, "/accounts/oidc/oidc/login/", oidc)
    response = callback(client, "/accounts/oidc/oidc/login/", state, oidc.code)
    assert response["Location"] == "/accounts/confirm-email/"
    user = User.objects.get(email="octo@example.com")
    assert not user_can_create_keys(user=user)


def test_a_signed_in_person_links_and_unlinks_github(client: Client, owner: User, github):
    # allauth only unlinks while a verified address and a password remain to sign in with.
    EmailAddress.objects.filter(user=owner).update(verified=True)
    client.force_login(owner)
    state = authorize(client, "/accounts/github/login/", github, process="connect")
    response = callback(client, "/accounts/github/login/", state, github.code)
    assert response.status_code == 302
    account = SocialAccount.objects.get(user=owner)
    assert account.provider == "github"
    assert AuditEvent.objects.filter(user=owner, kind="social_linked").exists()
    assert not User.objects.filter(email="octo@example.com").exists()

    settings_page = client.get("/dashboard/settings/")
    assert b"GitHub" in settings_page.content
    response = client.post("/accounts/3rdparty/", {"account": account.pk})
    assert response.status_code == 302
    assert not SocialAccount.objects.filter(user=owner).exists()
    assert AuditEvent.objects.filter(user=owner, kind="social_unlinked").exists()


def test_providers_without_credentials_are_not_offered():
    assert providers_from_env({"OAUTH_GITHUB_CLIENT_ID": "only-an-id"}) == {}
    assert providers_from_env({"OAUTH_OIDC_CLIENT_ID": "a", "OAUTH_OIDC_SECRET": "b"}) == {}
    both = providers_from_env(
        {
            "OAUTH_TELEGRAM_CLIENT_ID": "123",
            "OAUTH_TELEGRAM_SECRET": "123:bot-token",
            "OAUTH_WECHAT_CLIENT_ID": "wx",
            "OAUTH_WECHAT_SECRET": "s",
        }
    )
    assert both["telegram"]["APPS"][0]["secret"] == "123:bot-token"
    assert set(both) == {"telegram", "weixin"}


def test_a_provider_email_never_takes_over_an_existing_account(client: Client, github):
    victim = User.objects.create_user(email="octo@example.com", password="victim-pass-123")
    state = authorize(client, "/accounts/github/login/", github)
    response = callback(client, "/accounts/github/login/", state, github.code)
    # Not signed in as the existing account, not linked to it, no second account: allauth
    # answers as for any sign-up (no enumeration) and mails the address's owner instead.
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session
    assert not SocialAccount.objects.filter(user=victim).exists()
    assert list(User.objects.filter(email__iexact="octo@example.com")) == [victim]
