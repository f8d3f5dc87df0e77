"""Embedded-mode email verification in a real browser: sign up, the operator finds the link
in the admin's mailbox, the person opens it and lands signed in on the dashboard.

Two browser contexts: the person signing up and the operator (a private window, as the
verification page advises). Every database read and write happens before the browser starts
or after it closes. Screenshots land in artifacts/screenshots/. The first-run test
(tests/relay/test_first_run_browser.py) starts with the same steps.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper
from pytest_django.live_server_helper import LiveServer

from accounts.models import User
from tests.browser import SCREENSHOTS, chromium

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

VIEWPORT = {"width": 1366, "height": 900}


def sign_up_through_the_mailbox(browser: Any, base: str, email: str) -> Any:
    """Signs EMAIL up at BASE, has the operator (admin@example.com, the admin_user fixture)
    copy the confirmation link from the admin's mailbox, confirms it, and returns the
    person's page: signed in, on the dashboard. Needs the mailbox email backend."""
    from playwright.sync_api import expect

    person = browser.new_context(viewport=VIEWPORT).new_page()
    person.goto(f"{base}/accounts/signup/")
    person.fill("#id_email", email)
    person.fill("#id_name", "Mailbox Person")
    person.fill("#id_password1", "a-browser-passphrase-31")
    person.fill("#id_password2", "a-browser-passphrase-31")
    person.locator("form button[type=submit]").last.click()
    expect(person).to_have_url(re.compile(r"/accounts/confirm-email/$"))
    expect(person.locator("#mailbox-notice")).to_contain_text("operator's mailbox in the admin")
    person.screenshot(path=str(SCREENSHOTS / "verification-sent-mailbox.png"))

    operator = browser.new_context(viewport=VIEWPORT).new_page()
    operator.goto(f"{base}/admin/")
    operator.fill("#id_username", "admin@example.com")
    operator.fill("#id_password", "admin-pass-123")
    operator.click("input[type=submit]")
    operator.get_by_role("link", name="Mailbox").first.click()
    expect(operator).to_have_url(re.compile(r"/admin/mailbox/$"))
    message = operator.locator("details.mailbox-message").first
    expect(message).to_contain_text(email)
    link = message.locator("a[href*='/accounts/confirm-email/']")
    expect(link).to_have_count(1)
    operator.screenshot(path=str(SCREENSHOTS / "admin-mailbox.png"), full_page=True)
    href = link.get_attribute("href")
    assert href is not None
    operator.context.close()

    person.goto(href)
    person.locator("form button[type=submit]").last.click()
    expect(person).to_have_url(re.compile(r"/dashboard/$"))
    return person


def test_sign_up_then_mailbox_then_confirm_signs_the_person_in(
    live_server: LiveServer, admin_user: User, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.EMAIL_BACKEND = "accounts.mailbox.MailboxBackend"
    settings.MAILBOX_DIR = tmp_path / "mailbox"

    with chromium() as browser:
        from playwright.sync_api import expect

        person = sign_up_through_the_mailbox(
            browser, live_server.url, "mailbox.browser@example.com"
        )
        expect(person.locator("main h1")).to_have_text("Overview")
        expect(person.locator(".org-name")).to_contain_text("mailbox.browser@example.com")
        person.screenshot(path=str(SCREENSHOTS / "confirmed-dashboard.png"))

    assert User.objects.get(email="mailbox.browser@example.com").email_verified
