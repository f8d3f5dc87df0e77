"""The admin in a real browser: an operator logs in and adjusts a customer's balance.

Headless Chromium (apt-installed) driven by Playwright's sync API against the live server.
Playwright runs an event loop in this thread while the browser is open, so every database
read and write happens before the browser starts or after it closes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pytest_django.live_server_helper import LiveServer

from accounts.models import Organization, User
from billing.models import LedgerEntry, Wallet
from billing.services import wallet_credit
from tests.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path("/tmp/admin.png")  # noqa: S108 - a fixed place for a person to look at


@pytest.fixture
def customer_org(owner: User) -> Organization:
    org = Organization.objects.get(membership__user=owner)
    wallet_credit(organization=org, amount=10_000_000, kind="topup", source_type="t", source_id="1")
    return org


def test_it_adjusts_a_balance_from_the_admin(
    live_server: LiveServer, admin_user: User, customer_org: Organization
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{live_server.url}/admin/")
            page.fill("#id_username", "admin@example.com")
            page.fill("#id_password", "admin-pass-123")
            page.click("input[type=submit]")
            sync_api.expect(page.locator("#user-tools")).to_contain_text("admin@example.com")

            page.goto(f"{live_server.url}/admin/billing/wallet/")
            row = page.locator("#result_list tbody tr", has_text=customer_org.name)
            sync_api.expect(row).to_contain_text("10.000000")
            row.get_by_role("link", name="Adjust balance").click()
            sync_api.expect(page.locator("body")).to_contain_text("Current balance: 10.000000")

            page.fill("#id_amount", "2.5")
            page.fill("#id_reason", "goodwill credit, ticket 42")
            page.click("input[type=submit][value='Adjust balance']")

            sync_api.expect(page).to_have_url(re.compile(r"/admin/billing/wallet/$"))
            sync_api.expect(page.locator(".messagelist")).to_contain_text("Adjusted by 2.500000")
            sync_api.expect(row).to_contain_text("12.500000")
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()

    entry = LedgerEntry.objects.get(kind="adjust")
    assert (entry.amount, entry.note, entry.created_by) == (
        2_500_000,
        "goodwill credit, ticket 42",
        admin_user,
    )
    assert Wallet.objects.get(organization=customer_org).balance == 12_500_000
