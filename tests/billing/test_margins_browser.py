"""The admin's margins page in a real browser: a superuser sees the revenue and upstream cost
chart drawn and a losing model's row highlighted and labelled (screenshot: margins.png).

Playwright runs an event loop in this thread while the browser is open, so every database
write happens before the browser starts.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from accounts.models import User
from logs.models import RequestLog
from tests.browser import SCREENSHOTS, axe_violations, chromium

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

SCREENSHOT = SCREENSHOTS / "margins.png"


def _traffic(today: dt.date) -> None:
    figures = {"gpt-4o": (2_400_000, 1_500_000), "claude-sonnet": (1_800_000, 1_100_000),
               "cheap-model": (300_000, 520_000)}  # fmt: skip
    n = 0
    for back in range(7):
        at = dt.datetime.combine(today - dt.timedelta(days=back), dt.time(9), tzinfo=dt.UTC)
        for model, (cost, upstream) in figures.items():
            n += 1
            RequestLog.objects.create(
                request_id=f"req_{n}", organization_id=1, channel_id=1, endpoint="chat",
                model=model, status_code=200, created_at=at, cost=cost * (back + 3) // 4,
                upstream_cost=upstream * (back + 3) // 4,
            )  # fmt: skip


def test_the_margins_page_draws_the_chart_and_flags_the_losing_model(
    live_server: LiveServer, admin_user: User
) -> None:
    today = timezone.now().astimezone(dt.UTC).date()
    _traffic(today)
    first = today - dt.timedelta(days=6)
    url = f"{live_server.url}/admin/margins/?from={first}&to={today}&group=model"

    with chromium(axe=True) as browser:
        from playwright.sync_api import expect

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", "admin@example.com")
        page.fill("#id_password", "admin-pass-123")
        page.click("input[type=submit]")
        page.get_by_role("link", name="Margins").first.click()
        expect(page.locator("h1")).to_have_text("Margins")

        page.goto(url)
        labels = page.wait_for_function(
            "() => { const c = document.getElementById('margins-chart');"
            " const chart = c && window.Chart && Chart.getChart(c);"
            " return chart && c.width > 0 ? chart.data.datasets.map(d => d.label) : null; }"
        ).json_value()
        losing = page.locator("#margins-table tbody tr.margin-negative")
        expect(losing).to_have_count(1)
        expect(losing.locator("th")).to_have_text("cheap-model")
        expect(losing.locator(".negative-label")).to_have_text("negative")
        expect(page.locator("#margins-table tbody tr:not(.margin-negative)")).to_have_count(2)
        background = losing.locator("td").first.evaluate(
            "td => getComputedStyle(td).backgroundColor"
        )
        violations = axe_violations(page)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    assert labels == ["Revenue", "Upstream cost"]
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")
    assert violations == []
