"""The operator's mailbox: with no email server configured, emails are kept under var/ for a
short time and shown to superusers only in the admin; the sign-up page says where the link
went; the link from the mailbox signs the person in."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.mail import send_mail
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.mailbox import mailbox_messages, mailbox_purge
from accounts.models import User
from accounts.services import user_create
from tests.accounts.auth.test_signup import sign_up
from tests.test_settings import REPO, _production_env, _secrets

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

MAILBOX_BACKEND = "accounts.mailbox.MailboxBackend"


@pytest.fixture
def mailbox(settings: SettingsWrapper, tmp_path: Path) -> Path:
    settings.EMAIL_BACKEND = MAILBOX_BACKEND
    settings.MAILBOX_DIR = tmp_path / "mailbox"
    settings.MAILBOX_RETENTION_HOURS = 72
    return tmp_path / "mailbox"


@pytest.fixture
def staff_user(db: None) -> User:
    user = user_create(email="staff@example.com", password="staff-pass-123")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def _confirm_path(body: str) -> str:
    match = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s<\"]+)", body)
    assert match, body
    return match.group(1)


def test_a_sign_up_lands_in_the_mailbox(mailbox: Path, client: Client) -> None:
    sign_up(client, "mailbox.person@example.com")

    (message,) = mailbox_messages()
    assert message.recipients == "mailbox.person@example.com"
    assert "Confirm" in message.subject or "confirm" in message.subject.lower()
    assert _confirm_path(message.body)
    (path,) = mailbox.glob("*.eml")
    assert path.stat().st_mode & 0o077 == 0  # the link inside is a secret


def test_the_log_names_the_mail_but_never_its_link(
    mailbox: Path, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="accounts.mailbox"):
        sign_up(client, "quiet@example.com")

    (line,) = [r.getMessage() for r in caplog.records if r.name == "accounts.mailbox"]
    assert "quiet@example.com" in line and "/admin/mailbox/" in line
    assert "confirm-email" not in line


def test_a_superuser_reads_it_in_the_admin_with_a_clickable_link(
    mailbox: Path, client: Client, admin_user: User
) -> None:
    sign_up(client, "reader@example.com")
    admin = Client()
    admin.force_login(admin_user)

    index = admin.get("/admin/").content.decode()
    page = admin.get("/admin/mailbox/")

    assert 'href="/admin/mailbox/"' in index and 'href="/admin/status/"' in index
    assert page.status_code == 200
    html = page.content.decode()
    assert "reader@example.com" in html
    confirm = _confirm_path(mailbox_messages()[0].body)
    assert re.search(rf'<a href="https?://[^"]+{re.escape(confirm)}"', html), html


def test_a_staff_member_who_is_not_a_superuser_cannot(
    mailbox: Path, client: Client, staff_user: User
) -> None:
    sign_up(client, "private@example.com")
    staff = Client()
    staff.force_login(staff_user)

    assert staff.get("/admin/mailbox/").status_code == 403
    index = staff.get("/admin/").content.decode()
    assert "/admin/mailbox/" not in index and "private@example.com" not in index
    assert Client().get("/admin/mailbox/").status_code == 302  # signed out: to the login


def test_the_link_from_the_mailbox_signs_the_person_in(mailbox: Path, client: Client) -> None:
    user = sign_up(client, "straight.in@example.com")
    confirm = _confirm_path(mailbox_messages()[0].body)

    response = client.post(confirm)

    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    user.refresh_from_db()
    assert user.email_verified
    assert client.get("/dashboard/").status_code == 200  # signed in, no second sign-in


def test_the_verification_page_says_where_the_link_went(mailbox: Path, client: Client) -> None:
    sign_up(client)

    page = client.get("/accounts/confirm-email/").content.decode()

    assert "operator&#x27;s mailbox in the admin" in page or "operator's mailbox" in page
    assert "make run" in page
    assert "check your spam folder" not in page


def test_with_an_email_server_the_page_keeps_allauths_wording(
    settings: SettingsWrapper, client: Client
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    sign_up(client)

    page = client.get("/accounts/confirm-email/").content.decode()

    assert "check your spam folder" in page
    assert "mailbox" not in page


def test_messages_older_than_the_retention_are_purged(
    mailbox: Path, settings: SettingsWrapper
) -> None:
    send_mail("old", "old body", None, ["a@example.com"])
    send_mail("new", "new body", None, ["b@example.com"])
    (old, _new) = sorted(mailbox.glob("*.eml"))
    # The time a message was kept is in its name: age the first by renaming it.
    aged = dt.datetime.now(dt.UTC) - dt.timedelta(hours=73)
    old.rename(old.with_name(f"{aged:%Y%m%dT%H%M%S%f}Z-{'0' * 16}.eml"))

    assert [m.subject for m in mailbox_messages()] == ["new"]  # reading purges
    assert len(list(mailbox.glob("*.eml"))) == 1
    settings.MAILBOX_RETENTION_HOURS = 0
    time.sleep(0.01)
    assert mailbox_purge() == 1 and not list(mailbox.glob("*.eml"))


def _email_settings(**env: str) -> subprocess.CompletedProcess[str]:
    """EMAIL_BACKEND and MAILBOX_DIR as a fresh process sees them (no outer EMAIL_* set)."""
    show = "import django; django.setup(); from django.conf import settings; "
    show += "print(settings.EMAIL_BACKEND, settings.MAILBOX_DIR)"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "DATABASE_URL"))}
    return subprocess.run(
        [sys.executable, "-c", show],
        cwd=REPO,
        env={**base, "DJANGO_SETTINGS_MODULE": "tokenhub.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_embedded_default_is_the_mailbox_and_production_keeps_its_check(
    tmp_path: Path,
) -> None:
    var = {"TOKENHUB_VAR_DIR": str(tmp_path)}
    production = _production_env(tmp_path) | _secrets()
    del production["EMAIL_BACKEND"]

    embedded = _email_settings(**var)
    with_host = _email_settings(**var, EMAIL_HOST="smtp.example.test")
    refused = _email_settings(**production)

    assert embedded.stdout.split() == [MAILBOX_BACKEND, str(tmp_path / "mailbox")], embedded.stderr
    assert with_host.stdout.split()[0] == "django.core.mail.backends.console.EmailBackend"
    assert refused.returncode != 0 and "EMAIL_BACKEND is the console" in refused.stderr
