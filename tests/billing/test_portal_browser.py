"""The billing page in a real browser: a customer redeems a code, sees the ledger, and starts
a Stripe top-up that sends them to the (intercepted) checkout page.

Every database read and write happens before the browser starts or after it closes
(Playwright runs an event loop in this thread while it is open)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from pytest_django.live_server_helper import LiveServer

from accounts.models import Organization, User
from billing.codes import redemption_batch_create
from billing.models import TopUp
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.fakes.stripe_api import FakeStripe

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path("/tmp/billing.png")  # noqa: S108 - a fixed place for a person to look at


def test_a_customer_redeems_a_code_and_starts_a_topup(
    live_server: LiveServer, owner: User, org: Organization, fake_stripe: FakeStripe
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    code = redemption_batch_create(name="welcome", count=1, amount=4_000_000).codes[0]
    client = Client()
    client.force_login(owner)
    session_id = client.cookies[settings.SESSION_COOKIE_NAME].value

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            cookie = {"name": settings.SESSION_COOKIE_NAME, "value": session_id}
            context.add_cookies([{**cookie, "url": live_server.url}])
            # Stripe's hosted checkout is on the internet; answer for it here.
            context.route(
                "https://checkout.stripe.test/**",
                lambda route: route.fulfill(status=200, body="<h1>Stripe checkout</h1>"),
            )
            page = context.new_page()
            page.goto(f"{live_server.url}/dashboard/billing/")
            sync_api.expect(page.get_by_test_id("balance")).to_have_text("$0.00")

            page.fill("#id_code", code.lower())
            page.get_by_role("button", name="Redeem").click()
            sync_api.expect(page.locator(".messages")).to_contain_text("4.000000 USD added")
            sync_api.expect(page.get_by_test_id("balance")).to_have_text("$4.00")
            sync_api.expect(page.locator("#ledger")).to_contain_text("Code redeemed")
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            page.get_by_label("$25").check()
            page.get_by_role("button", name="Continue to payment").click()
            sync_api.expect(page.locator("h1")).to_have_text("Stripe checkout")
            checkout_url = page.url
        finally:
            browser.close()

    topup = TopUp.objects.get()
    assert (topup.organization, topup.credit, topup.state) == (org, 25_000_000, "pending")
    assert checkout_url == topup.redirect_url
