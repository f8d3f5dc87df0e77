"""Terms and Privacy: public pages (safe Markdown, two languages), acceptance at sign-up, the
banner ahead of a material update, re-acceptance once it takes effect, the email notice."""

from __future__ import annotations

import datetime as dt

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import LegalAcceptance, LegalDocument, User
from accounts.tasks import announce_legal_document

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def publish(kind: str, version: str, *, days: float = -1, material: bool = True, **fields):
    defaults = {
        "title_en": f"{kind.title()} v{version}",
        "body_en": f"# {kind} {version}\n\nPlain **terms**.",
        "effective_at": timezone.now() + dt.timedelta(days=days),
        "material": material,
    }
    return LegalDocument.objects.create(kind=kind, version=version, **{**defaults, **fields})


@pytest.fixture
def documents() -> tuple[LegalDocument, LegalDocument]:
    return publish("terms", "1"), publish("privacy", "1")


def signed_in(user: User, password: str) -> Client:
    EmailAddress.objects.filter(user=user).update(verified=True)
    client = Client()
    response = client.post("/accounts/login/", {"login": user.email, "password": password})
    assert response.status_code == 302
    return client


def test_the_public_pages_render_markdown_safely_in_both_languages(client: Client):
    assert client.get("/legal/terms/").status_code == 404  # nothing published yet
    publish(
        "terms",
        "2026-12",
        body_en="## Use\n\n<script>alert(1)</script> [click](javascript:alert(2)) [ok](https://example.com/)",
        title_zh_hans="服务条款",
        body_zh_hans="## 使用\n\n中文正文",
    )
    page = client.get("/legal/terms/").content.decode()
    assert "<h2>Use</h2>" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page
    assert "javascript:" not in page
    assert 'href="https://example.com/"' in page
    chinese = client.get("/legal/terms/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "服务条款" in chinese and "中文正文" in chinese
    assert client.get("/legal/privacy/").status_code == 404


def test_sign_up_requires_and_records_acceptance(client: Client, documents):
    data = {
        "email": "new@example.com",
        "password1": "pw-long-enough-9",
        "password2": "pw-long-enough-9",
    }
    page = client.get("/accounts/signup/").content.decode()
    assert 'href="/legal/terms/"' in page and 'href="/legal/privacy/"' in page
    refused = client.post("/accounts/signup/", data)
    assert refused.status_code == 200
    assert not User.objects.filter(email="new@example.com").exists()
    client.post("/accounts/signup/", {**data, "accept_legal": "on"})
    user = User.objects.get(email="new@example.com")
    assert set(LegalAcceptance.objects.filter(user=user).values_list("document", flat=True)) == {
        d.pk for d in documents
    }


def test_a_material_update_is_announced_then_must_be_accepted(owner: User, documents):
    terms, privacy = documents
    from accounts.legal import legal_accept

    legal_accept(user=owner, documents=[terms, privacy])
    client = signed_in(owner, "owner-pass-123")
    assert client.get("/dashboard/").status_code == 200

    upcoming = publish("terms", "2", days=10)
    banner = client.get("/dashboard/").content.decode()
    assert "changes on" in banner and "version=2" in banner

    mail.outbox.clear()
    assert announce_legal_document.apply(args=(upcoming.pk,)).get() == 1  # the verified owner
    assert "Terms of Service" in mail.outbox[0].subject
    assert "/legal/terms/?version=2" in str(mail.outbox[0].body)

    # It takes effect: the next visit to the console asks for acceptance first.
    LegalDocument.objects.filter(pk=upcoming.pk).update(
        effective_at=timezone.now() - dt.timedelta(minutes=1)
    )
    response = client.get("/dashboard/")
    assert (response.status_code, response["Location"]) == (
        302,
        "/legal/accept/?next=%2Fdashboard%2F",
    )
    page = client.get("/legal/accept/?next=/dashboard/")
    assert b"Terms v2" in page.content and b"Privacy v1" not in page.content
    assert client.get("/dashboard/settings/").status_code == 200  # rights stay reachable
    response = client.post("/legal/accept/", {"accept": "on", "next": "https://evil.example/"})
    assert response["Location"] == "/dashboard/"  # no open redirect
    assert LegalAcceptance.objects.filter(user=owner, document=upcoming).exists()
    assert client.get("/dashboard/").status_code == 200


def test_a_non_material_update_needs_no_new_acceptance(owner: User, documents):
    from accounts.legal import legal_accept

    legal_accept(user=owner, documents=list(documents))
    publish("privacy", "1.1", material=False)
    client = signed_in(owner, "owner-pass-123")
    assert client.get("/dashboard/").status_code == 200
    assert b"changes on" not in client.get("/dashboard/").content
