"""A demo top-up in a real browser: a preset amount, the demo checkout, Pay, then the
balance and the receipt. Screenshots land in artifacts/screenshots/.

Every database read and write happens before the browser starts or after it closes
(Playwright runs an event loop in this thread while it is open)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper
from pytest_django.live_server_helper import LiveServer

from accounts.models import Organization, User
from billing.models import LedgerEntry, TopUp
from tests.billing.conftest import balance
from tests.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(django_settings.BASE_DIR) / "artifacts" / "screenshots"


def test_a_preset_amount_paid_with_the_demo_provider_credits_and_has_a_receipt(
    live_server: LiveServer, owner: User, org: Organization, settings: SettingsWrapper
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    settings.PAYMENTS_DEMO = True
    settings.SITE_URL = live_server.url
    client = Client()
    client.force_login(owner)
    session_id = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 900})
            cookie = {"name": django_settings.SESSION_COOKIE_NAME, "value": session_id}
            context.add_cookies([{**cookie, "url": live_server.url}])
            page = context.new_page()
            page.goto(f"{live_server.url}/dashboard/billing/")
            page.locator("#topup").get_by_text("$10", exact=True).click()
            page.select_option("#id_provider", "demo")
            sync_api.expect(page.locator("#demo-note")).to_be_visible()
            page.locator("#topup").screenshot(path=str(SCREENSHOTS / "billing-topup-presets.png"))
            page.get_by_role("button", name="Continue to payment").click()

            sync_api.expect(page).to_have_url(re.compile(r"/billing/demo/demo_\d+_\w+/$"))
            sync_api.expect(page.locator("#demo-label")).to_contain_text("no money moves")
            sync_api.expect(page.locator(".demo-checkout")).to_contain_text("10.00 USD")
            page.screenshot(path=str(SCREENSHOTS / "demo-checkout.png"))
            page.get_by_role("button", name="Pay").click()

            sync_api.expect(page.locator("h1")).to_have_text("Thank you")
            page.goto(f"{live_server.url}/dashboard/billing/")
            sync_api.expect(page.get_by_test_id("balance")).to_contain_text("10")
            page.locator("#topups").get_by_role("link", name="Receipt").click()
            sync_api.expect(page.locator(".receipt")).to_contain_text(re.compile(r"10\.00"))
            page.screenshot(path=str(SCREENSHOTS / "demo-receipt.png"))
        finally:
            browser.close()

    topup = TopUp.objects.get()
    assert (topup.provider, topup.state, topup.credit) == ("demo", "paid", 10_000_000)
    assert balance(org) == 10_000_000
    assert LedgerEntry.objects.filter(kind="topup").count() == 1
