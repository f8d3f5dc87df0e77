"""Small things every portal page shares: the favicon, the sidebar's long names, the key
form's grouped limits, and the browser's time zone reaching the server."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client
from pytest_django.live_server_helper import LiveServer

from accounts.models import User
from accounts.selectors import organization_personal
from accounts.services import user_create
from tests.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.django_db
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
LONG_EMAIL = "someone.with.a.rather.long.address@subdomain.example.com"


def test_favicon_ico_leads_to_the_svg_icon_every_page_links(client: Client) -> None:
    response = client.get("/favicon.ico")

    assert response.status_code == 302 and response["Location"] == "/static/favicon.svg"
    assert finders.find("favicon.svg") is not None
    page = client.get("/accounts/login/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page


@pytest.fixture
def long_named(db: None) -> User:
    return user_create(email=LONG_EMAIL, password="long-pass-123456", email_verified=True)


def test_the_sidebar_keeps_the_full_organization_name_in_a_title(long_named: User) -> None:
    client = Client()
    client.force_login(long_named)
    name = organization_personal(user=long_named).name

    text = client.get("/dashboard/keys/").content.decode()

    assert f'<div class="org-name" title="Active organization: {name}">{name}</div>' in text


def test_the_key_form_groups_limits_with_their_units(long_named: User) -> None:
    client = Client()
    client.force_login(long_named)

    text = client.get("/dashboard/keys/").content.decode()

    rates = text.split("<legend>Rate limits", 1)[1].split("</fieldset>", 1)[0]
    assert "Requests per minute (RPM)" in rates and "Tokens per minute (TPM)" in rates
    spending = text.split("<legend>Spending</legend>", 1)[1].split("</fieldset>", 1)[0]
    assert "Spend limit (USD, empty for none)" in spending and 'name="spend_limit_period"' in (
        spending
    )
    assert "Expires at (UTC time, empty for never)" in text


@pytest.mark.django_db(transaction=True)
def test_in_a_browser_the_zone_reaches_the_server_and_long_names_end_in_an_ellipsis(
    live_server: LiveServer, long_named: User
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    url = live_server.url
    client = Client()
    client.force_login(long_named)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1366, "height": 900}, timezone_id="Asia/Tokyo"
            )
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": url}]
            )
            page = context.new_page()
            page.goto(f"{url}/dashboard/settings/")  # sets the cookie; this answer was UTC
            assert {"name": "tz", "value": "Asia/Tokyo"}.items() <= next(
                c for c in context.cookies() if c["name"] == "tz"
            ).items()
            page.reload()
            sync_api.expect(page.get_by_test_id("time-zone")).to_contain_text("Asia/Tokyo")

            page.goto(f"{url}/dashboard/keys/")
            name = page.locator(".sidebar .org-name")
            assert name.evaluate("e => e.scrollWidth > e.clientWidth")  # cut, not wrapped
            box = name.bounding_box()
            assert box is not None and box["height"] < 30  # one line
            page.screenshot(path=str(SCREENSHOTS / "keys-1366.png"), full_page=True)
            for name in ("settings", "billing"):
                page.goto(f"{url}/dashboard/{name}/")
                page.screenshot(path=str(SCREENSHOTS / f"{name}-1366.png"), full_page=True)
        finally:
            browser.close()
