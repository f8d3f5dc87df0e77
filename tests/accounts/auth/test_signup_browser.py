"""Sign-up in a real browser: the form, the verification email's link, the dashboard, and
the first API key.

Headless Chromium (apt-installed) driven by Playwright against the live server. The live
server runs in this process, so the verification email lands in django.core.mail.outbox.
Database writes happen before the browser starts and reads after it closes (Playwright runs
an event loop in this thread while it is open).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core import mail
from pytest_django.live_server_helper import LiveServer

from accounts.keysecrets import hash_secret
from accounts.models import ApiKey, LegalAcceptance, User
from accounts.selectors import organization_personal, user_can_create_keys
from tests.accounts.auth.test_legal import publish
from tests.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path("/tmp/signup.png")  # noqa: S108 - a fixed place for a person to look at


def test_it_signs_up_verifies_and_creates_a_key(live_server: LiveServer) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    publish("terms", "1")
    publish("privacy", "1")
    mail.outbox.clear()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{live_server.url}/accounts/signup/")
            page.fill("#id_email", "browser.person@example.com")
            page.fill("#id_name", "Browser Person")
            page.fill("#id_password1", "a-browser-passphrase-31")
            page.fill("#id_password2", "a-browser-passphrase-31")
            page.check("#id_accept_legal")
            page.locator("form button[type=submit]").last.click()
            sync_api.expect(page).to_have_url(re.compile(r"/accounts/confirm-email/$"))

            assert len(mail.outbox) == 1
            link = re.search(r"https?://\S+(/accounts/confirm-email/\S+)", str(mail.outbox[0].body))
            assert link, mail.outbox[0].body
            page.goto(f"{live_server.url}{link.group(1)}")
            page.locator("form button[type=submit]").last.click()

            sync_api.expect(page).to_have_url(re.compile(r"/dashboard/$"))
            sync_api.expect(page.locator("main h1")).to_have_text("Overview")
            sync_api.expect(page.locator(".org-name")).to_contain_text("browser.person@example.com")
            sync_api.expect(page.locator("body")).not_to_contain_text("Verify your email")
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            page.goto(f"{live_server.url}/dashboard/keys/")
            page.fill("input[name=name]", "first key")
            page.click("#create-key button[type=submit]")
            secret = page.locator("#secret-value").inner_text()
        finally:
            browser.close()

    user = User.objects.get(email="browser.person@example.com")
    assert user.name == "Browser Person"
    assert user_can_create_keys(user=user)
    assert organization_personal(user=user).is_personal
    assert LegalAcceptance.objects.filter(user=user).count() == 2
    key = ApiKey.objects.get(name="first key")
    assert key.created_by == user and key.key_hash == hash_secret(secret)
