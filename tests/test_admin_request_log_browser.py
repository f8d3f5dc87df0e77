"""The admin's request-log list at 1366 px: every column, the last one included, is on
screen without scrolling sideways, even with long organization and model names.

Every database write happens before the browser starts. The screenshot lands in
artifacts/screenshots/admin-request-log-1366.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from pytest_django.live_server_helper import LiveServer

from accounts.models import Organization, User
from logs.models import RequestLog
from tests.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path(settings.BASE_DIR) / "artifacts" / "screenshots" / "admin-request-log-1366.png"


def test_the_request_log_list_fits_1366_px(
    live_server: LiveServer, admin_user: User, org: Organization
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    org.name = "Northwind Traders International Research Laboratories"
    org.save(update_fields=["name"])
    for i in range(12):
        RequestLog.objects.create(
            request_id=f"req_{'x' * 40}_{i}",
            organization_id=org.pk,
            endpoint="chat",
            model="anthropic/claude-sonnet-4-5-20250929-thinking-extended",
            status_code=200 if i % 4 else 429,
            prompt_tokens=123_456,
            completion_tokens=65_432,
            cost=12_345_678,
            latency_ms=123_456,
        )
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 800})
            page.goto(f"{live_server.url}/admin/")
            page.fill("#id_username", "admin@example.com")
            page.fill("#id_password", "admin-pass-123")
            page.click("input[type=submit]")
            sync_api.expect(page.locator("#site-name")).to_have_text("TokenHub administration")
            page.screenshot(path=str(SCREENSHOT.with_name("admin-index-1366.png")), full_page=True)
            page.goto(f"{live_server.url}/admin/logs/requestlog/")
            last = page.locator("#result_list thead th").last
            sync_api.expect(last).to_contain_text("Latency")
            sync_api.expect(page.locator("#result_list tbody tr").first).to_contain_text(
                "Northwind Traders"
            )
            page.screenshot(path=str(SCREENSHOT))

            box = last.bounding_box()
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            cell = page.locator("#result_list tbody tr").first.locator("td").last.bounding_box()
        finally:
            browser.close()

    assert box is not None and cell is not None
    assert box["x"] + box["width"] <= 1366 and cell["x"] + cell["width"] <= 1366
    assert overflow <= 0
