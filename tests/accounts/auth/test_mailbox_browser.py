"""Embedded-mode email verification in a real browser: sign up, the operator finds the link
in the admin's mailbox, the person opens it and lands signed in on the dashboard.

Two browser contexts: the person signing up and the operator (a private window, as the
verification page advises). Every database read and write happens before the browser starts
or after it closes. Screenshots land in artifacts/screenshots/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from pytest_django.fixtures import Settings as SettingsWrapper
from pytest_django.live_server_helper import LiveServer

from accounts.models import User
from tests.test_admin_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(django_settings.BASE_DIR) / "artifacts" / "screenshots"


def test_sign_up_then_mailbox_then_confirm_signs_the_person_in(
    live_server: LiveServer, admin_user: User, settings: SettingsWrapper, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    settings.EMAIL_BACKEND = "accounts.mailbox.MailboxBackend"
    settings.MAILBOX_DIR = tmp_path / "mailbox"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = {"width": 1366, "height": 900}

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            person = browser.new_context(viewport=viewport).new_page()
            person.goto(f"{live_server.url}/accounts/signup/")
            person.fill("#id_email", "mailbox.browser@example.com")
            person.fill("#id_name", "Mailbox Person")
            person.fill("#id_password1", "a-browser-passphrase-31")
            person.fill("#id_password2", "a-browser-passphrase-31")
            person.locator("form button[type=submit]").last.click()
            sync_api.expect(person).to_have_url(re.compile(r"/accounts/confirm-email/$"))
            sync_api.expect(person.locator("#mailbox-notice")).to_contain_text(
                "operator's mailbox in the admin"
            )
            person.screenshot(path=str(SCREENSHOTS / "verification-sent-mailbox.png"))

            operator = browser.new_context(viewport=viewport).new_page()
            operator.goto(f"{live_server.url}/admin/")
            operator.fill("#id_username", "admin@example.com")
            operator.fill("#id_password", "admin-pass-123")
            operator.click("input[type=submit]")
            operator.get_by_role("link", name="Mailbox").first.click()
            sync_api.expect(operator).to_have_url(re.compile(r"/admin/mailbox/$"))
            message = operator.locator("details.mailbox-message").first
            sync_api.expect(message).to_contain_text("mailbox.browser@example.com")
            link = message.locator("a[href*='/accounts/confirm-email/']")
            sync_api.expect(link).to_have_count(1)
            operator.screenshot(path=str(SCREENSHOTS / "admin-mailbox.png"), full_page=True)
            href = link.get_attribute("href")
            assert href is not None

            person.goto(href)
            person.locator("form button[type=submit]").last.click()
            sync_api.expect(person).to_have_url(re.compile(r"/dashboard/$"))
            sync_api.expect(person.locator("main h1")).to_have_text("Overview")
            sync_api.expect(person.locator(".org-name")).to_contain_text(
                "mailbox.browser@example.com"
            )
            person.screenshot(path=str(SCREENSHOTS / "confirmed-dashboard.png"))
        finally:
            browser.close()

    assert User.objects.get(email="mailbox.browser@example.com").email_verified
