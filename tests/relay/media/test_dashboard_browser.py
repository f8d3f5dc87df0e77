"""The Media page in a real browser: a customer sees their videos and downloads one.

Headless Chromium driven by Playwright against the live server; all database work happens
before the browser starts or after it closes (Playwright runs an event loop in this thread).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from relay.models import MediaTask
from relay.tasks import poll_media_tasks
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.fakes.media import FakeMedia, video_bytes
from tests.relay.conftest import Customer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SCREENSHOT = Path("/tmp/media.png")  # noqa: S108 - a fixed place for a person to look at


def test_a_customer_downloads_a_finished_video_from_the_media_page(
    live_server: LiveServer, sora: Customer, media: FakeMedia, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    client = sora.openai()
    done = client.videos.create(model="sora-2", prompt="done", seconds="8").id
    for _ in range(3):
        MediaTask.objects.update(next_poll_at=timezone.now())
        poll_media_tasks()
    media.plan = ["queued"]
    waiting = client.videos.create(model="sora-2", prompt="waiting", seconds="4").id
    expected = video_bytes(MediaTask.objects.get(public_id=done).upstream_id)
    django_client = Client()
    django_client.force_login(sora.user)
    session = django_client.cookies["sessionid"].value
    saved = tmp_path / "video.mp4"

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
            page = context.new_page()
            page.goto(f"{live_server.url}/dashboard/media/")

            sync_api.expect(page.get_by_role("link", name="Media")).to_have_attribute(
                "aria-current", "page"
            )
            finished = page.locator(f"tr[data-video='{done}']")
            sync_api.expect(finished.locator(".status")).to_contain_text("Completed")
            sync_api.expect(finished).to_contain_text("$0.80")
            pending = page.locator(f"tr[data-video='{waiting}']")
            sync_api.expect(pending.locator(".status")).to_contain_text("Queued")
            sync_api.expect(pending).to_contain_text("$0.40 held")
            sync_api.expect(pending.get_by_role("link", name="Download")).to_have_count(0)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            with page.expect_download() as download:
                finished.get_by_role("link", name="Download").click()
            download.value.save_as(saved)
        finally:
            browser.close()

    assert saved.read_bytes() == expected
