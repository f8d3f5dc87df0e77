"""The portal in a real browser, on data from relayed requests: sign in, read the overview's
charts, filter the logs, export them as CSV, chat in the playground; and the admin's "test now".

Screenshots of each page go to artifacts/screenshots/ for people to look at.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from accounts.models import User
from logs.models import RequestLog
from relay.models import Channel
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.fakes.upstream import DEFAULT_REPLY, FakeUpstream
from tests.relay.conftest import Customer, RelayServer, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PASSWORD = "pw-123456789"  # the customer fixture's


@pytest.fixture
def browser() -> Callable[[], AbstractContextManager[Any]]:
    """Opens a page in Chromium. Playwright's sync API runs an event loop in this thread,
    so database work happens before the browser opens or after it closes."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    pytest.importorskip("playwright.sync_api")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return _page


@contextmanager
def _page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 900}, accept_downloads=True
            )
            yield context.new_page()
        finally:
            browser.close()


def _sign_in(
    page: Any, base: str, email: str, password: str, path: str = "/accounts/login/"
) -> None:
    page.goto(base + path)
    page.fill("#id_login" if path.startswith("/accounts") else "#id_username", email)
    page.fill("#id_password", password)
    page.locator("form [type=submit]").last.click()


def test_sign_in_overview_logs_csv_and_playground(
    ready: Customer, fake: FakeUpstream, browser: Callable[[], AbstractContextManager[Any]]
) -> None:

    client = ready.openai()
    for _ in range(3):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    fake.fail(500, times=1)
    with pytest.raises(Exception, match="500"):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    wait_for(lambda: RequestLog.objects.count() == 4)
    email, base = ready.user.email, ready.relay.url
    with browser() as page:
        _customer_flow(page, base, email)


def _customer_flow(page: Any, base: str, email: str) -> None:
    from playwright.sync_api import expect

    _sign_in(page, base, email, PASSWORD)
    expect(page).to_have_url(base + "/dashboard/")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.querySelector('canvas'))")
    values = page.evaluate(
        "Chart.getChart(document.querySelector('canvas[data-chart=requests]')).data.datasets"
        ".filter(d => d.yAxisID === 'y').flatMap(d => d.data)"
    )
    assert sum(values) == 4
    expect(page.locator('[data-stat="errors"]')).to_have_text("25.0%")
    page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

    page.goto(base + "/dashboard/logs/")
    expect(page.locator("table.logs tbody tr.log-row")).to_have_count(4)
    page.select_option("select[name=status]", "error")
    page.locator("form.filters button[type=submit]").click()
    expect(page.locator("table.logs tbody tr.log-row")).to_have_count(1)
    expect(page.locator("table.logs tbody tr.log-row td").nth(3)).to_have_text("500")
    page.screenshot(path=str(SCREENSHOTS / "logs.png"), full_page=True)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert [r["status_code"] for r in rows] == ["500"]
    assert rows[0]["model"] == "gpt-4o-mini"

    page.goto(base + "/playground/")
    expect(page.locator("#pg-model option[value='gpt-4o-mini']")).to_have_count(1)
    page.fill("#pg-input", "Hello there")
    page.click("#pg-send")
    expect(page.locator(".pg-assistant").last).to_have_text(DEFAULT_REPLY)
    page.screenshot(path=str(SCREENSHOTS / "playground.png"), full_page=True)


def test_admin_tests_a_channel_now(
    relay: RelayServer,
    fake: FakeUpstream,
    openai_channel: Any,
    admin_user: User,
    browser: Callable[[], AbstractContextManager[Any]],
) -> None:
    from playwright.sync_api import expect

    channel: Channel = openai_channel(name="primary")
    email = admin_user.email

    with browser() as page:
        _sign_in(page, relay.url, email, "admin-pass-123", path="/admin/login/")
        page.goto(f"{relay.url}/admin/relay/channel/")
        page.check(f"input[name=_selected_action][value='{channel.pk}']")
        page.select_option("select[name=action]", "test_now")
        page.locator("button[name=index]").click()
        expect(page.locator("ul.messagelist")).to_contain_text("Primary: ok in")
        page.screenshot(path=str(SCREENSHOTS / "admin-channels.png"), full_page=True)

    assert [r.endpoint for r in fake.requests] == ["chat"]
    assert Channel.objects.get(pk=channel.pk).probe_ok is True
