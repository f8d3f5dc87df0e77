"""The keys page in a real browser: create a key, see its secret once, copy it.

Headless Chromium (apt-installed) driven by Playwright against the live server. The session
is made with Django's test client and handed to the browser as a cookie (sign-in pages are
another part's). Database work happens before the browser starts or after it closes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from pytest_django.live_server_helper import LiveServer

from accounts.keysecrets import hash_secret
from accounts.models import ApiKey, User
from tests.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path("/tmp/keys.png")  # noqa: S108 - a fixed place for a person to look at


def test_it_creates_a_key_shows_the_secret_once_and_copies_it(
    live_server: LiveServer, owner: User
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    owner.email_verified = True
    owner.save(update_fields=["email_verified"])
    client = Client()
    client.force_login(owner)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 900},
                permissions=["clipboard-read", "clipboard-write"],
            )
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
            )
            page = context.new_page()
            page.goto(f"{live_server.url}/dashboard/keys/")
            page.fill("input[name=name]", "browser key")
            page.fill("textarea[name=allowed_models]", "gpt-4o*")
            page.fill("input[name=spend_limit_usd]", "1.25")
            page.click("#create-key button[type=submit]")

            secret = page.locator("#secret-value").inner_text()
            page.click("#copy-secret")
            sync_api.expect(page.locator("#copy-secret")).to_have_text("Copied")
            copied = page.evaluate("navigator.clipboard.readText()")
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            page.goto(f"{live_server.url}/dashboard/keys/")
            sync_api.expect(page.locator("tbody")).to_contain_text("browser key")
            listed = page.content()
        finally:
            browser.close()

    assert copied == secret
    assert secret not in listed
    key = ApiKey.objects.get(name="browser key")
    assert key.key_hash == hash_secret(secret)
    assert (key.allowed_models, key.spend_limit) == (["gpt-4o*"], 1_250_000)
