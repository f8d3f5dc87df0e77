"""The billing page's plans in a real browser: a customer buys a coding plan with the demo
provider end to end (as in `make run`), cancels it at period end and resumes it; the
plan's windows in both themes, on a phone and in Chinese, checked with axe-core.
Screenshots land in artifacts/screenshots/.

Every database read and write happens before the browser starts or after it closes
(Playwright runs an event loop in this thread while it is open)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper
from pytest_django.live_server_helper import LiveServer

from accounts.models import Organization, User
from billing.models import PaymentEvent, Subscription
from billing.subscriptions import subscription_fail, subscription_start
from tests.billing.test_subscriptions import DAY, actions, make_plan, use_plan
from tests.browser import SCREENSHOTS, axe_violations, chromium

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

HOUR = DAY / 24


def _session(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


def _context(browser: Any, live_server: LiveServer, session: str, **options: Any) -> Any:
    theme, language = options.pop("theme", "light"), options.pop("language", "en")
    context = browser.new_context(
        viewport={"width": options.pop("width", 1366), "height": 900},
        color_scheme=theme,
        timezone_id="Europe/Berlin",
    )
    cookies = [
        {"name": django_settings.SESSION_COOKIE_NAME, "value": session},
        {"name": "theme", "value": theme},
        {"name": django_settings.LANGUAGE_COOKIE_NAME, "value": language},
    ]
    context.add_cookies([{**c, "url": live_server.url} for c in cookies])
    return context


def test_a_customer_buys_a_coding_plan_with_the_demo_provider(
    live_server: LiveServer, owner: User, org: Organization, settings: SettingsWrapper
) -> None:
    settings.PAYMENTS_DEMO = True
    settings.SITE_URL = live_server.url
    pro = make_plan("coding-pro", description="For coding agents.")
    bigger = make_plan("coding-max", price=10_000, window_5h_limit=25_000_000, month_limit=None)
    session = _session(owner)

    with chromium(axe=True) as browser:
        sync_api = pytest.importorskip("playwright.sync_api")
        page = _context(browser, live_server, session).new_page()
        page.goto(f"{live_server.url}/dashboard/billing/")
        offers = page.get_by_test_id("plan-offer")
        sync_api.expect(offers).to_have_count(2)
        sync_api.expect(offers.first).to_contain_text("5-hour window: $5.00 of usage")
        page.locator("#plans").screenshot(path=str(SCREENSHOTS / "plans-offers.png"))
        assert axe_violations(page) == []

        page.get_by_role("button", name="Subscribe to Coding Pro").click()
        sync_api.expect(page).to_have_url(re.compile(r"/billing/demo/plan/demoplan_\d+_\d+_\w+/$"))
        sync_api.expect(page.locator(".demo-checkout")).to_contain_text("$20.00 per month")
        page.screenshot(path=str(SCREENSHOTS / "plans-demo-checkout.png"))
        page.get_by_role("button", name="Pay").click()
        sync_api.expect(page.locator("h1")).to_have_text("Thank you")
        sync_api.expect(page.locator(".card")).to_contain_text("Your Coding Pro plan is active")

        page.get_by_role("link", name="Back to billing").click()
        current = page.get_by_test_id("current-plan")
        sync_api.expect(current).to_contain_text("Coding Pro")
        sync_api.expect(page.get_by_test_id("plan-window")).to_have_count(3)
        sync_api.expect(current).to_contain_text("Nothing used yet.")
        page.get_by_role("button", name="Cancel at period end").click()
        sync_api.expect(page.get_by_test_id("plan-status")).to_contain_text("does not renew")
        page.get_by_role("button", name="Resume the plan").click()
        sync_api.expect(page.get_by_test_id("plan-status")).to_contain_text("Renews on")
        page.get_by_label("Change to").select_option(str(bigger.pk))
        page.get_by_role("button", name="Change plan").click()
        sync_api.expect(page.locator(".messages")).to_contain_text("Your plan is now Coding Max")

    sub = Subscription.objects.get()
    assert (sub.organization, sub.provider, sub.status) == (org, "demo", "active")
    assert sub.plan.slug == "coding-max" and not sub.cancel_at_period_end
    assert PaymentEvent.objects.get().event_type == "plan paid"
    assert actions(org) == [
        "started",
        "cancel_at_period_end",
        "resumed",
        "plan_changed",
    ]
    assert pro.pk != sub.plan_id


@pytest.mark.parametrize(
    ("theme", "width", "language"),
    [("light", 1366, "en"), ("dark", 390, "en"), ("dark", 390, "zh-hans"), ("light", 390, "en")],
)
def test_the_windows_show_what_is_used_and_when_it_frees_up(
    live_server: LiveServer,
    owner: User,
    org: Organization,
    theme: str,
    width: int,
    language: str,
) -> None:
    now = timezone.now()
    sub = subscription_start(
        organization=org,
        plan=make_plan(),
        provider="stripe",
        provider_ref="sub_page",
        period_start=now - 3 * DAY,
        period_end=now + 27 * DAY,
    )
    make_plan("coding-max", price=10_000)
    for i in reversed(range(6)):  # $30 over two days ago, within the 5-hour window's $5 each time
        use_plan(sub, 5_000_000, at=now - 2 * DAY - i * 6 * HOUR)
    use_plan(sub, 3_200_000, at=now - 2 * HOUR)
    use_plan(sub, 900_000, at=now - HOUR, settle=False)  # in flight
    past_due = width == 390 and theme == "light"
    if past_due:
        subscription_fail(provider="stripe", provider_ref="sub_page", period_end=None)
    session = _session(owner)
    name = f"plans-{theme}-{width}-{language[:2]}{'-past-due' if past_due else ''}.png"

    with chromium(axe=True) as browser:
        sync_api = pytest.importorskip("playwright.sync_api")
        context = _context(
            browser, live_server, session, theme=theme, width=width, language=language
        )
        page = context.new_page()
        page.goto(f"{live_server.url}/dashboard/billing/")
        windows = page.get_by_test_id("plan-window")
        sync_api.expect(windows).to_have_count(3)
        if language == "en":
            sync_api.expect(windows.nth(0)).to_contain_text("$3.20 of $5.00")
            sync_api.expect(windows.nth(0)).to_contain_text("$0.90 held by requests in progress")
            sync_api.expect(windows.nth(0)).to_contain_text("Frees up at")
            sync_api.expect(windows.nth(1)).to_contain_text("$33.20 of $40.00")
            sync_api.expect(windows.nth(2)).to_contain_text("Resets at")
        else:
            sync_api.expect(page.locator("#plans h2")).to_have_text("套餐")
            sync_api.expect(windows.nth(0)).to_contain_text("5 小时窗口")
        bar = windows.nth(0).get_by_role("progressbar")
        assert bar.get_attribute("aria-valuenow") == str(64 + 18)
        if past_due:
            sync_api.expect(page.get_by_test_id("plan-status")).to_contain_text("payment")
        page.locator("#plans").screenshot(path=str(SCREENSHOTS / name))
        extra = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert extra <= 1, f"the page scrolls {extra} px sideways"
        assert axe_violations(page) == []
