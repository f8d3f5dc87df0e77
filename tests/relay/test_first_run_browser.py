"""A newcomer's first run in a real browser, in the embedded configuration: sign up, confirm
with the link from the operator's mailbox, follow the overview's first steps to add credit
with the demo payment provider, ask a model in the playground (answered by the fake
upstream), and find the call in the logs.

TokenHub is served by uvicorn (the relay streams); every database read and write happens
before the browser starts or after it closes. Screenshots land in artifacts/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import User
from logs.models import RequestLog
from relay.models import Channel
from tests.accounts.auth.test_mailbox_browser import sign_up_through_the_mailbox
from tests.browser import SCREENSHOTS, chromium
from tests.fakes.upstream import DEFAULT_REPLY, FakeUpstream
from tests.relay.conftest import RelayServer, wait_for

EMAIL = "first.run@example.com"


def test_sign_up_to_a_first_playground_call_in_the_logs(
    relay: RelayServer,
    fake: FakeUpstream,
    openai_channel: Callable[..., Channel],
    priced: None,
    admin_user: User,
    settings: SettingsWrapper,
    tmp_path: Path,
) -> None:
    openai_channel(models=("gpt-4o-mini",))
    settings.EMAIL_BACKEND = "accounts.mailbox.MailboxBackend"
    settings.MAILBOX_DIR = tmp_path / "mailbox"
    settings.PAYMENTS_DEMO = True
    settings.SITE_URL = relay.url

    with chromium() as browser:
        from playwright.sync_api import expect

        page = sign_up_through_the_mailbox(browser, relay.url, EMAIL)
        steps = page.locator(".first-steps")
        expect(steps.locator("li")).to_have_count(4)
        page.screenshot(path=str(SCREENSHOTS / "first-run-overview.png"), full_page=True)

        steps.get_by_role("link", name=re.compile("Add credit")).click()
        expect(page).to_have_url(re.compile(r"/dashboard/billing/$"))
        page.locator("#topup").get_by_text("$10", exact=True).click()
        page.select_option("#id_provider", "demo")
        page.get_by_role("button", name="Continue to payment").click()
        page.get_by_role("button", name="Pay").click()
        expect(page.locator("h1")).to_have_text("Thank you")

        page.goto(f"{relay.url}/dashboard/")
        expect(page.locator(".first-steps li.done")).to_have_count(1)  # credit, not a key yet
        page.locator(".first-steps").get_by_role("link", name=re.compile("playground")).click()
        expect(page).to_have_url(re.compile(r"/playground/$"))
        expect(page.locator("#pg-model option[value='gpt-4o-mini']")).to_have_count(1)
        page.select_option("#pg-model", "gpt-4o-mini")
        page.fill("#pg-input", "Hello from my first run")
        page.click("#pg-send")
        expect(page.locator(".pg-assistant").last).to_have_text(DEFAULT_REPLY)
        page.screenshot(path=str(SCREENSHOTS / "first-run-playground.png"), full_page=True)

        # Settlement lands just after the answer: reload until the row is there.
        row = page.locator("table.logs tr.log-row")
        for _ in range(50):
            page.goto(f"{relay.url}/dashboard/logs/")
            if row.count():
                break
            page.wait_for_timeout(100)
        expect(row).to_have_count(1)
        expect(row).to_contain_text("gpt-4o-mini")
        expect(row).to_contain_text("200")
        page.screenshot(path=str(SCREENSHOTS / "first-run-logs.png"), full_page=True)

    [call] = [r for r in fake.requests if r.endpoint == "chat"]
    assert call.json["messages"] == [{"role": "user", "content": "Hello from my first run"}]
    log = wait_for(lambda: RequestLog.objects.get())
    assert (log.model, log.status_code) == ("gpt-4o-mini", 200) and log.cost > 0
    assert User.objects.get(email=EMAIL).email_verified
