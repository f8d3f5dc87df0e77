"""/playground/: one short-lived key per person, reused across visits, hidden from key lists;
streaming in a browser."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.fakes.upstream import DEFAULT_REPLY, FakeUpstream
from tests.relay.conftest import Customer

pytestmark = pytest.mark.django_db(transaction=True)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def _verified(customer: Customer) -> Client:
    customer.user.email_verified = True
    customer.user.save(update_fields=["email_verified"])
    client = Client()
    client.force_login(customer.user)
    return client


def _page_key(html: str) -> str:
    return html.split('data-key="', 1)[1].split('"', 1)[0]


def _chat(customer: Customer, secret: str) -> int:
    return httpx.post(
        customer.base_url + "/chat/completions",
        headers={"authorization": f"Bearer {secret}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    ).status_code


def test_visits_reuse_one_short_lived_key(ready: Customer) -> None:
    client = _verified(ready)

    first = _page_key(client.get("/playground/").content.decode())
    response = client.get("/playground/")
    second = _page_key(response.content.decode())

    assert "no-store" in response["Cache-Control"]
    assert second == first and _chat(ready, first) == 200
    key = ApiKey.objects.get(is_playground=True)
    assert key.status == ApiKey.Status.ACTIVE and key.scopes == ["relay"]
    assert key.expires_at is not None and key.expires_at > timezone.now()
    listed = client.get("/api/v1/keys").json()["data"]
    assert key.pk not in [k["id"] for k in listed]
    logs_page = client.get("/dashboard/logs/").content.decode()
    assert logs_page.count(">Playground</option>") == 1


def test_another_session_gets_a_new_secret_for_the_same_key(ready: Customer) -> None:
    first = _page_key(_verified(ready).get("/playground/").content.decode())
    second = _page_key(_verified(ready).get("/playground/").content.decode())

    assert second != first
    assert _chat(ready, second) == 200
    assert _chat(ready, first) == 401  # at most one playground secret works at a time
    assert ApiKey.objects.filter(is_playground=True).count() == 1


def test_an_expired_key_is_refreshed_in_place(ready: Customer) -> None:
    client = _verified(ready)
    first = _page_key(client.get("/playground/").content.decode())
    key = ApiKey.objects.get(is_playground=True)
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    second = _page_key(client.get("/playground/").content.decode())

    assert second != first and _chat(ready, second) == 200
    refreshed = ApiKey.objects.get(is_playground=True)
    assert refreshed.pk == key.pk and refreshed.is_usable()


def test_a_revoked_key_is_replaced(ready: Customer) -> None:
    client = _verified(ready)
    first = _page_key(client.get("/playground/").content.decode())
    ApiKey.objects.filter(is_playground=True).update(status=ApiKey.Status.REVOKED)

    second = _page_key(client.get("/playground/").content.decode())

    assert second != first and _chat(ready, second) == 200
    assert ApiKey.objects.filter(is_playground=True, status=ApiKey.Status.ACTIVE).count() == 1


def test_an_unverified_person_gets_no_key(ready: Customer) -> None:
    EmailAddress.objects.filter(user=ready.user).update(verified=False)
    ready.user.email_verified = False
    ready.user.save(update_fields=["email_verified"])
    client = Client()
    client.force_login(ready.user)
    text = client.get("/playground/").content.decode()
    assert 'data-key="' not in text and "Verify your email" in text
    assert not ApiKey.objects.filter(is_playground=True).exists()


def test_it_streams_an_answer_in_a_browser_and_keeps_history_there(
    ready: Customer, fake: FakeUpstream
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    session = _verified(ready).cookies[settings.SESSION_COOKIE_NAME].value
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": ready.relay.url}]
            )
            page = context.new_page()
            page.goto(f"{ready.relay.url}/playground/")
            sync_api.expect(page.locator("#pg-model option[value='gpt-4o-mini']")).to_have_count(1)
            page.select_option("#pg-model", "gpt-4o-mini")
            page.fill("#pg-input", "Say something")
            page.click("#pg-send")
            answer = page.locator(".pg-assistant").last
            sync_api.expect(answer).to_have_text(DEFAULT_REPLY)
            page.screenshot(path=str(SCREENSHOTS / "playground.png"), full_page=True)
            page.reload()  # the conversation comes back from local storage
            sync_api.expect(page.locator(".pg-msg")).to_have_count(2)
            sync_api.expect(page.locator(".pg-user")).to_have_text("Say something")
        finally:
            browser.close()

    [sent] = [r for r in fake.requests if r.endpoint == "chat"]
    assert sent.stream and sent.json["messages"] == [{"role": "user", "content": "Say something"}]
