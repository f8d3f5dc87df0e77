"""The language and theme switchers in a real browser: sign in through the allauth form,
switch to Simplified Chinese, then to the dark theme.

Headless Chromium (apt-installed) driven by Playwright's sync API against the live server.
The user is created before the browser starts (Playwright's event loop holds this thread
while the browser is open). Screenshots land in artifacts/screenshots/ for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from pytest_django.live_server_helper import LiveServer

from accounts.services import user_create
from tests.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
DARK_BACKGROUND = "rgb(11, 15, 25)"  # --th-bg of the dark palette in static/css/tokenhub.css


def test_it_switches_to_chinese_and_to_the_dark_theme(live_server: LiveServer) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    user_create(email="reader@example.com", password="reader-pass-123", email_verified=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="en-US")
            page.goto(f"{live_server.url}/accounts/login/")
            page.fill("input[name=login]", "reader@example.com")
            page.fill("input[name=password]", "reader-pass-123")
            page.click("main form button[type=submit]")
            expect(page).to_have_url(re.compile(r"/dashboard/$"))
            expect(page.locator("main h1")).to_have_text("Overview")
            expect(page.locator("html")).to_have_attribute("lang", "en")

            page.locator("#language-switcher button[value=zh-hans]").click()

            expect(page).to_have_url(re.compile(r"/dashboard/$"))
            expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
            expect(page.locator("main h1")).to_have_text("概览")
            expect(page.locator(".sidebar nav")).to_contain_text("API 密钥")
            expect(page.locator(".topnav")).to_contain_text("退出登录")
            page.screenshot(path=str(SCREENSHOTS / "dashboard-zh-hans.png"), full_page=True)

            page.goto(f"{live_server.url}/dashboard/billing/")
            expect(page.locator("main h1")).to_have_text("账单")
            page.locator("#theme-switcher button[value=dark]").click()

            expect(page).to_have_url(re.compile(r"/dashboard/billing/$"))
            expect(page.locator("html")).to_have_attribute("data-theme", "dark")
            expect(page.locator("#theme-switcher button[value=dark]")).to_have_attribute(
                "aria-pressed", "true"
            )
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == DARK_BACKGROUND
            expect(page.locator("main h1")).to_have_text("账单")  # the language stays
            page.screenshot(path=str(SCREENSHOTS / "billing-zh-hans-dark.png"), full_page=True)

            cookies = {c["name"]: c["value"] for c in page.context.cookies()}
            assert cookies[settings.LANGUAGE_COOKIE_NAME] == "zh-hans"
            assert cookies["theme"] == "dark"
        finally:
            browser.close()
