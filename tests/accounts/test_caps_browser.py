"""The key edit page's caps in a real browser, 1366 and 390 px wide: type a cap in USD,
save, and find it on the key list with its use; the page fits a phone and has no serious
axe-core violation. Screenshots go to artifacts/screenshots/caps/.

Database work happens before the browser starts or after it closes (tests/browser.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from pytest_django.live_server_helper import LiveServer

from accounts.models import ApiKey, User
from accounts.selectors import organization_personal
from accounts.services import key_create
from billing.caps import bucket_start
from billing.models import UsageBucket
from tests.browser import SCREENSHOTS, axe_violations, chromium

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

OUT = SCREENSHOTS / "caps"


def _overflow(page: Any) -> int:
    extra: int = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    return extra


@pytest.mark.parametrize(("width", "field", "typed", "micros", "shown"), [
    (1366, "spend_cap_day", "2.5", 2_500_000, "$0.00 of $2.50 today"),
    (390, "spend_cap_week", "12.75", 12_750_000, "$0.00 of $12.75 this week"),
])  # fmt: skip
def test_the_key_edit_form_sets_a_cap_and_the_list_shows_its_use(
    live_server: LiveServer,
    owner: User,
    width: int,
    field: str,
    typed: str,
    micros: int,
    shown: str,
) -> None:
    owner.email_verified = True
    owner.save(update_fields=["email_verified"])
    key, _ = key_create(
        organization=organization_personal(user=owner),
        created_by=owner,
        name="ci",
        requests_per_day=100,
    )
    today = bucket_start("d", dt.datetime.now(dt.UTC))
    UsageBucket.objects.create(meter=f"k{key.pk}", span="d", start=today, requests=12, cost=0)
    client = Client()
    client.force_login(owner)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    OUT.mkdir(parents=True, exist_ok=True)

    with chromium(axe=True) as browser:
        context = browser.new_context(viewport={"width": width, "height": 900})
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
        )
        page = context.new_page()
        page.goto(f"{live_server.url}/dashboard/keys/{key.pk}/")
        shown_use = page.locator("#cap-use").inner_text()
        overflow = _overflow(page)
        violations = axe_violations(page)
        page.fill(f"input[name={field}]", typed)
        page.uncheck("input[name=show_cost]")
        page.screenshot(path=str(OUT / f"key-edit-{width}.png"), full_page=True)
        page.click("form.card button[type=submit]")
        page.wait_for_url(f"{live_server.url}/dashboard/keys/")
        listed = page.locator(f"tr[data-key-id='{key.pk}'] .key-caps").inner_text()
        page.screenshot(path=str(OUT / f"keys-{width}.png"), full_page=True)
        context.close()

    assert "12 of 100 today" in shown_use
    assert overflow <= 1, f"the edit page scrolls {overflow} px sideways at {width} px"
    assert not violations, "\n".join(violations)
    key.refresh_from_db()
    assert (getattr(key, field), key.requests_per_day, key.show_cost) == (micros, 100, False)
    assert "12 of 100 today" in listed
    assert shown in listed
    assert ApiKey.objects.count() == 1


@pytest.mark.parametrize("width", [1366, 390])
def test_an_owner_sets_the_organization_caps_in_the_browser(
    live_server: LiveServer, owner: User, width: int
) -> None:
    org = organization_personal(user=owner)
    org.requests_per_day = 1000
    org.save(update_fields=["requests_per_day"])
    today = bucket_start("d", dt.datetime.now(dt.UTC))
    UsageBucket.objects.create(meter=f"o{org.pk}", span="d", start=today, requests=250, cost=0)
    client = Client()
    client.force_login(owner)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    OUT.mkdir(parents=True, exist_ok=True)

    with chromium(axe=True) as browser:
        context = browser.new_context(viewport={"width": width, "height": 900})
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
        )
        page = context.new_page()
        page.goto(f"{live_server.url}/dashboard/org/")
        page.fill("#org-caps-form input[name=spend_cap_month]", "250")
        page.uncheck("#org-caps-form input[name=plan_fallback]")
        page.click("#org-caps-form button[type=submit]")
        page.wait_for_url(f"{live_server.url}/dashboard/org/")
        # Checked on a fresh load: the "saved" flash message is base.html's, not this page's.
        page.goto(f"{live_server.url}/dashboard/org/")
        shown = page.locator("#org-caps").inner_text()
        overflow = _overflow(page)
        violations = axe_violations(page)
        page.screenshot(path=str(OUT / f"org-{width}.png"), full_page=True)
        context.close()

    assert "250 of 1,000 today" in shown
    assert "$0.00 of $250.00 this month" in shown
    assert overflow <= 1, f"the organization page scrolls {overflow} px sideways at {width} px"
    assert not violations, "\n".join(violations)
    org.refresh_from_db()
    assert (org.spend_cap_month, org.plan_fallback) == (250_000_000, False)
