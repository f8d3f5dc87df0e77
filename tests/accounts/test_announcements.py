"""Announcements: a dismissible banner while current, a public page, one email per user."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.announcements import announcement_email
from accounts.models import Announcement, User
from accounts.services import user_create

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def _announce(title: str = "Maintenance tonight", **fields: object) -> Announcement:
    values: dict[str, object] = {"body_en": "We upgrade **PostgreSQL**.", **fields}
    return Announcement.objects.create(title_en=title, **values)


def test_it_shows_the_newest_current_announcement_until_dismissed(client: Client) -> None:
    now = timezone.now()
    _announce("Old news", starts_at=now - dt.timedelta(days=2))
    current = _announce("New models", starts_at=now - dt.timedelta(hours=1))
    _announce("Not yet", starts_at=now + dt.timedelta(days=1))
    _announce("Over", starts_at=now - dt.timedelta(days=3), ends_at=now - dt.timedelta(days=1))

    page = client.get("/models/").content.decode()
    assert f'data-announcement="{current.pk}"' in page and "New models" in page

    response = client.post(f"/announcements/{current.pk}/dismiss", {"next": "/models/"})
    assert response.status_code == 302 and response["Location"] == "/models/"
    page = client.get("/models/").content.decode()
    assert "New models" not in page and "Old news" in page  # the next one comes forward
    assert "New models" in Client().get("/models/").content.decode()  # other visitors


def test_dismiss_refuses_to_redirect_elsewhere(client: Client) -> None:
    current = _announce()
    response = client.post(
        f"/announcements/{current.pk}/dismiss", {"next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


def test_the_page_renders_markdown_safely_and_in_chinese(client: Client) -> None:
    _announce(
        body_en="**Bold** <script>alert(1)</script> [x](javascript:alert(1))",
        title_zh_hans="维护通知",
        body_zh_hans="今晚**升级**。",
    )
    english = client.get("/announcements/").content.decode()
    assert "<strong>Bold</strong>" in english and "<script>alert" not in english
    assert "javascript:" not in english
    chinese = client.get("/announcements/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "维护通知" in chinese and "<strong>升级</strong>" in chinese


def test_it_emails_every_verified_user_once_in_batches(
    monkeypatch: pytest.MonkeyPatch, owner: User
) -> None:
    monkeypatch.setattr("accounts.announcements.EMAIL_BATCH", 2)
    for n in range(4):
        user_create(email=f"u{n}@example.com", email_verified=True)
    user_create(email="unverified@example.com", email_verified=False)
    User.objects.filter(email="u3@example.com").update(is_active=False)
    announcement = _announce()
    verified = set(
        User.objects.filter(is_active=True, email_verified=True).values_list("email", flat=True)
    )

    sent = announcement_email(announcement=announcement)

    assert sent == len(verified) == len(mail.outbox)
    assert {m.to[0] for m in mail.outbox} == verified
    assert "unverified@example.com" not in verified
    assert announcement_email(announcement=announcement) == 0  # never twice
    assert len(mail.outbox) == sent
