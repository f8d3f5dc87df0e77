"""The overview's charts and the logs page in headless Chromium: axes, a tooltip on hover,
both themes, 1366 and 390 px wide, and a request's details opening under its row without
squeezing the table. Screenshots go to artifacts/screenshots/ for a person to look at."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from pytest_django.live_server_helper import LiveServer

from accounts.models import User
from accounts.selectors import organization_personal
from accounts.services import key_create, user_create
from billing.services import wallet_credit
from logs.models import RequestLog
from tests.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
EMAIL, PASSWORD = "charts@example.com", "charts-pass-123"
MODELS = [("gpt-4o", 9_000), ("claude-sonnet-4", 14_000), ("gemini-2.5-flash", 900)]


@pytest.fixture
def customer(db: None) -> User:
    """A customer with two keys and a month of traffic on three models, some of it failed."""
    user = user_create(email=EMAIL, password=PASSWORD, email_verified=True)
    org = organization_personal(user=user)
    keys = [key_create(organization=org, created_by=user, name=n)[0] for n in ("web", "batch")]
    wallet_credit(organization=org, amount=25_000_000, kind="topup", source_type="t", source_id="1")
    now = dt.datetime.now(dt.UTC)
    rows = []
    for hour in range(0, 24 * 30, 5):
        for n, (model, cost) in enumerate(MODELS):
            if (hour + n) % 3 == 0:
                continue
            failed = (hour // 5 + n) % 11 == 0
            rows.append(RequestLog(
                request_id=f"b{hour}-{n}", organization_id=org.pk, endpoint="chat/completions",
                created_at=now - dt.timedelta(hours=hour, minutes=7 * n), model=model,
                api_key_id=keys[(hour + n) % 2].pk, status_code=502 if failed else 200,
                prompt_tokens=300 + 40 * n + hour % 50, completion_tokens=120 + hour % 70,
                cost=0 if failed else cost + 37 * (hour % 13), latency_ms=400 + 10 * (hour % 30),
                client_ip="203.0.113.7", user_agent="openai-python/1.99.0 (a long user agent)",
            ))  # fmt: skip
    RequestLog.objects.bulk_create(rows)
    return user


@contextmanager
def _browser(
    live_server: LiveServer, *, width: int, theme: str, language: str = "en", script: bool = True
) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": width, "height": 900},
                color_scheme="dark" if theme == "dark" else "light",
                locale="en-US",
                java_script_enabled=script,
            )
            context.add_cookies([
                {"name": "theme", "value": theme, "url": live_server.url},
                {"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url},
            ])  # fmt: skip
            page = context.new_page()
            page.goto(f"{live_server.url}/accounts/login/")
            page.fill("input[name=login]", EMAIL)
            page.fill("input[name=password]", PASSWORD)
            page.click("main form button[type=submit]")
            sync_api.expect(page).to_have_url(re.compile(r"/dashboard/$"))
            yield page
        finally:
            browser.close()


_CHART = "canvas[data-chart=cost]"
DRAWN = "() => window.Chart && Chart.getChart(document.querySelector('canvas'))"


def _chart_state(page: Any, selector: str) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        """selector => {
            const chart = Chart.getChart(document.querySelector(selector));
            return {
                x: chart.scales.x.ticks.length, y: chart.scales.y.ticks.length,
                yTitle: chart.options.scales.y.title.text,
                tickColor: chart.options.scales.x.ticks.color,
                muted: getComputedStyle(document.documentElement)
                    .getPropertyValue("--th-muted").trim(),
                firstLabel: chart.data.labels[0],
            };
        }""",
        selector,
    )
    return state


def _hover_a_bar(page: Any, selector: str) -> dict[str, Any]:
    """Moves the mouse onto the tallest bar of the first series; the tooltip's state."""
    point = page.evaluate(
        """selector => {
            const chart = Chart.getChart(document.querySelector(selector));
            const values = chart.data.datasets[0].data;
            const i = values.indexOf(Math.max(...values));
            const bar = chart.getDatasetMeta(0).data[i];
            return {x: bar.x, y: (bar.y + bar.base) / 2};
        }""",
        selector,
    )
    page.locator(selector).scroll_into_view_if_needed()
    box = page.locator(selector).bounding_box()
    page.mouse.move(box["x"] + point["x"], box["y"] + point["y"])
    page.wait_for_function(
        "s => Chart.getChart(document.querySelector(s)).tooltip.opacity === 1", arg=selector
    )
    tip: dict[str, Any] = page.evaluate(
        """selector => {
            const tip = Chart.getChart(document.querySelector(selector)).tooltip;
            return {title: tip.title, body: tip.body.flatMap(b => b.lines), footer: tip.footer};
        }""",
        selector,
    )
    return tip


@pytest.mark.parametrize("width", [1366, 390])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_overview_draws_charts_with_axes_and_a_tooltip(
    customer: User, live_server: LiveServer, width: int, theme: str
) -> None:
    from playwright.sync_api import expect

    with _browser(live_server, width=width, theme=theme) as page:
        page.wait_for_function(DRAWN)
        expect(page.locator("table.usage-buckets")).to_be_hidden()  # folded: the charts show it
        for kind in ("cost", "tokens", "requests"):
            state = _chart_state(page, f"canvas[data-chart={kind}]")
            assert state["x"] > 2 and state["y"] > 2, kind  # axes with ticks
        cost = _chart_state(page, _CHART)
        assert cost["yTitle"] == "US dollars"
        assert cost["tickColor"] == cost["muted"]  # the theme's colours, not Chart.js's grey
        page.screenshot(path=str(SCREENSHOTS / f"overview-{theme}-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width

        tip = _hover_a_bar(page, _CHART)

        assert tip["title"] and tip["title"][0].endswith("(UTC)")
        assert any(line.startswith(MODELS[1][0] + ": $") for line in tip["body"]), tip
        assert tip["footer"][0].startswith("Total: $")
        page.screenshot(path=str(SCREENSHOTS / f"overview-{theme}-{width}-tooltip.png"))


def test_the_24_hour_chart_labels_hours_with_the_date_where_the_day_changes(
    customer: User, live_server: LiveServer
) -> None:
    with _browser(live_server, width=1366, theme="auto", language="zh-hans") as page:
        page.goto(f"{live_server.url}/dashboard/?range=24h&split=key")
        page.wait_for_function(DRAWN)
        labels = page.evaluate(
            "Chart.getChart(document.querySelector('canvas[data-chart=requests]')).data.labels"
        )
        assert len(labels) == 24
        assert isinstance(labels[0], list) and re.fullmatch(r"\d\d:00", labels[0][0])
        with_dates = [label for label in labels if isinstance(label, list)]
        assert 1 <= len(with_dates) <= 2  # the first hour, and midnight when it is in range
        tip = _hover_a_bar(page, "canvas[data-chart=requests]")
        assert re.search(r"\d\d:00\u2013\d\d:00 UTC$", tip["title"][0]), tip
        assert any("错误率" in line for line in tip["body"]), tip  # the error-rate series
        page.screenshot(path=str(SCREENSHOTS / "overview-24h-zh-hans.png"), full_page=True)

        page.emulate_media(color_scheme="dark")  # "auto" follows the system's setting

        page.wait_for_function(
            """() => Chart.getChart(document.querySelector('canvas')).options.scales.x.ticks.color
                === getComputedStyle(document.documentElement).getPropertyValue('--th-muted').trim()
                && getComputedStyle(document.body).backgroundColor === 'rgb(11, 15, 25)'"""
        )


@pytest.mark.parametrize("width", [1366, 390])
def test_log_details_open_under_the_row_without_squeezing_the_table(
    customer: User, live_server: LiveServer, width: int
) -> None:
    from playwright.sync_api import expect

    with _browser(live_server, width=width, theme="light") as page:
        page.goto(f"{live_server.url}/dashboard/logs/")
        first_cell = page.locator("table.logs tbody tr.log-row").first.locator("td").first
        before = first_cell.bounding_box()

        page.locator("a.log-open").first.click()

        detail = page.locator("tr.log-detail-row").first
        expect(detail).to_be_visible()
        expect(detail).to_contain_text("$0.0")
        after = first_cell.bounding_box()
        assert abs(after["width"] - before["width"]) < 2  # the column did not grow
        table = page.locator("table.logs").bounding_box()
        assert detail.bounding_box()["width"] >= table["width"] - 2  # the whole row's width
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        detail.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / f"logs-detail-{width}.png"))

        page.locator("tr.log-detail-row.open a[data-close]").click()
        expect(detail).to_be_hidden()
        expect(page.locator("a.log-open").first).to_have_attribute("aria-expanded", "false")


@pytest.mark.parametrize(("width", "theme"), [(1366, "light"), (390, "dark")])
def test_a_newcomer_sees_the_next_steps_instead_of_empty_charts(
    live_server: LiveServer, width: int, theme: str
) -> None:
    from playwright.sync_api import expect

    user_create(email=EMAIL, password=PASSWORD, email_verified=True)
    with _browser(live_server, width=width, theme=theme) as page:
        steps = page.locator("main .first-steps a")
        expect(steps).to_have_count(4)
        assert [steps.nth(i).get_attribute("href") for i in range(4)] == [
            "/dashboard/keys/", "/dashboard/billing/", "/playground/", "/dashboard/connect/",
        ]  # fmt: skip
        expect(page.locator("canvas")).to_have_count(0)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(
            path=str(SCREENSHOTS / f"overview-empty-{theme}-{width}.png"), full_page=True
        )

        page.goto(f"{live_server.url}/dashboard/logs/")
        expect(page.locator("main .first-steps a")).to_have_count(4)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(SCREENSHOTS / f"logs-empty-{theme}-{width}.png"), full_page=True)


def test_without_javascript_the_numbers_show_and_log_details_open(
    customer: User, live_server: LiveServer
) -> None:
    from playwright.sync_api import expect

    with _browser(live_server, width=1366, theme="light", script=False) as page:
        expect(page.locator(".chart-grid")).to_be_hidden()  # no empty chart boxes
        expect(page.locator("table.usage-buckets tbody tr")).to_have_count(30)
        expect(page.locator("table.usage-groups")).to_contain_text("claude-sonnet-4")
        page.screenshot(path=str(SCREENSHOTS / "overview-no-javascript.png"), full_page=True)

        page.goto(f"{live_server.url}/dashboard/logs/")
        detail = page.locator("tr.log-detail-row").nth(1)
        expect(detail).to_be_hidden()

        page.locator("a.log-open").nth(1).click()  # a plain link to the row's #id

        expect(detail).to_be_visible()
        expect(page.locator("tr.log-detail-row:visible")).to_have_count(1)
