"""/dashboard/connect/: base URLs in each client's form, key prefixes (never secrets) and
snippets that work as pasted."""

from __future__ import annotations

import contextlib
import html
import io
import json
import re
import tomllib
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import ApiKey, Organization, User
from accounts.services import key_create, key_set_status, playground_key_issue
from relay.connect import connect_snippets
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.relay.conftest import Customer

pytestmark = pytest.mark.django_db
PUBLIC = "https://api.example.com"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def _snippets(text: str) -> dict[str, str]:
    found = re.findall(r'<code class="language-\w+" id="snippet-([\w-]+)">(.*?)</code>', text, re.S)
    return {slug: html.unescape(code) for slug, code in found}


def _page(client: Client, **query: str) -> str:
    response = client.get("/dashboard/connect/", query)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def owner_client(owner: User, settings: SettingsWrapper) -> Client:
    settings.SITE_URL = PUBLIC
    client = Client()
    client.force_login(owner)
    return client


def test_it_gives_each_client_the_base_url_in_its_own_form(owner_client: Client) -> None:
    code = _snippets(_page(owner_client))

    assert f"curl {PUBLIC}/v1/chat/completions" in code["curl"]
    # OpenAI's SDKs and Codex take the /v1 URL; Anthropic's and Google's the bare origin.
    assert (
        f'OpenAI(base_url="{PUBLIC}/v1", api_key=os.environ["TOKENHUB_API_KEY"])'
        in (code["openai-python"])
    )
    assert f'baseURL: "{PUBLIC}/v1"' in code["openai-js"]
    assert f'Anthropic(base_url="{PUBLIC}", api_key=' in code["anthropic-python"]
    assert f'baseURL: "{PUBLIC}",' in code["anthropic-js"]
    assert f'types.HttpOptions(base_url="{PUBLIC}")' in code["google-python"]
    assert f'httpOptions: {{ baseUrl: "{PUBLIC}" }}' in code["google-js"]
    assert f'export ANTHROPIC_BASE_URL="{PUBLIC}"\n' in code["claude-code"]
    assert 'export ANTHROPIC_API_KEY="$TOKENHUB_API_KEY"' in code["claude-code"]
    codex = tomllib.loads(code["codex"])
    provider = codex["model_providers"][codex["model_provider"]]
    assert provider == {
        "name": "TokenHub",
        "base_url": f"{PUBLIC}/v1",
        "env_key": "TOKENHUB_API_KEY",
        "wire_api": "responses",
    }
    assert json.loads(code["gemini-cli-settings"]) == {
        "security": {"auth": {"selectedType": "gemini-api-key"}}
    }
    assert f'export GOOGLE_GEMINI_BASE_URL="{PUBLIC}"\n' in code["gemini-cli"]
    assert 'export GEMINI_API_KEY="$TOKENHUB_API_KEY"' in code["gemini-cli"]


def test_it_follows_the_browsers_address_when_site_url_is_the_loopback_default(
    owner_client: Client, settings: SettingsWrapper
) -> None:
    settings.SITE_URL = "http://127.0.0.1:8000"
    assert 'data-base="openai">http://testserver/v1<' in _page(owner_client)

    settings.SITE_URL = "http://testserver"
    assert 'data-base="anthropic">http://testserver<' in _page(owner_client)


def test_it_lists_usable_key_prefixes_and_never_a_secret(
    owner_client: Client, owner: User, org: Organization
) -> None:
    usable, secret = key_create(organization=org, created_by=owner, name="laptop")
    revoked, _ = key_create(organization=org, created_by=owner, name="old")
    key_set_status(key=revoked, status=ApiKey.Status.REVOKED)
    manage, _ = key_create(organization=org, created_by=owner, name="ci", scopes=["manage"])
    playground, _ = playground_key_issue(user=owner, organization=org)

    text = _page(owner_client)

    assert f"laptop ({usable.prefix}…)" in text and secret not in text
    for hidden in (revoked, manage, playground):
        assert hidden.prefix not in text
    assert 'export TOKENHUB_API_KEY="sk-th-…"' in html.unescape(text)


def test_the_key_picker_works_without_javascript(
    owner_client: Client, owner: User, org: Organization
) -> None:
    key_create(organization=org, created_by=owner, name="first")
    second, _ = key_create(organization=org, created_by=owner, name="second")

    text = _page(owner_client, key=str(second.pk))

    assert f'<option value="{second.pk}" selected>' in text
    assert f"starting <code>{second.prefix}</code>" in text


def test_without_a_key_it_leads_to_creating_one(owner_client: Client) -> None:
    text = _page(owner_client)

    assert 'data-testid="no-keys"' in text and 'href="/dashboard/keys/">Create a key' in text


def test_the_sidebar_links_to_it(owner_client: Client) -> None:
    text = _page(owner_client)

    assert '<a href="/dashboard/connect/" aria-current="page">Connect</a>' in text


def test_it_asks_strangers_to_sign_in(client: Client) -> None:
    response = client.get("/dashboard/connect/")

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.django_db(transaction=True)
def test_the_python_snippets_run_against_the_relay_as_pasted(
    ready: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page is fetched from the live server, so the snippets carry its address."""
    browser = Client()
    browser.force_login(ready.user)
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value
    text = httpx.get(
        f"{ready.relay.url}/dashboard/connect/",
        cookies={settings.SESSION_COOKIE_NAME: session},
    ).text
    code = _snippets(text)
    monkeypatch.setenv("TOKENHUB_API_KEY", ready.secret)

    for slug in ("openai-python", "anthropic-python", "google-python"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code[slug], slug, "exec"), {})  # noqa: S102 - our own page's snippet
        assert out.getvalue().strip(), slug  # the fake upstream's answer, printed


def test_snippets_pick_a_served_chat_model_of_their_family() -> None:
    served = ["claude-haiku-4-5", "claude-sonnet-4-5", "gpt-3.5-turbo-instruct", "gpt-4o"]

    code = {s.slug: s.code for g in connect_snippets(base_url=PUBLIC, models=served)
            for s in g.snippets}  # fmt: skip

    assert '"model": "gpt-4o"' in code["curl"]  # not the completions-only instruct model
    assert 'model="claude-sonnet-4-5"' in code["anthropic-python"]
    assert 'ANTHROPIC_DEFAULT_HAIKU_MODEL="claude-haiku-4-5"' in code["claude-code"]
    assert 'model="claude-haiku-4-5"' in code["google-python"]  # no Gemini: a chat model


@pytest.mark.django_db(transaction=True)
def test_it_copies_a_snippet_in_a_browser(ready: Customer) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    browser_client = Client()
    browser_client.force_login(ready.user)
    session = browser_client.cookies[settings.SESSION_COOKIE_NAME].value
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width, theme in ((1366, "light"), (390, "dark")):
                context = browser.new_context(viewport={"width": width, "height": 900})
                context.grant_permissions(["clipboard-read", "clipboard-write"])
                cookies = {settings.SESSION_COOKIE_NAME: session, "theme": theme}
                context.add_cookies(
                    [{"name": k, "value": v, "url": ready.relay.url} for k, v in cookies.items()]
                )
                page = context.new_page()
                page.goto(f"{ready.relay.url}/dashboard/connect/")
                card = page.locator("[data-snippet=curl]")
                card.get_by_role("button", name="Copy").click()
                sync_api.expect(page.locator("#copy-status")).to_have_text("Copied")
                copied = page.evaluate("navigator.clipboard.readText()")
                assert copied.startswith(f"curl {ready.relay.url}/v1/chat/completions")
                for slug in ("openai-python", "codex"):
                    page.locator(f"[data-snippet={slug}] summary").click()
                page.screenshot(path=str(SCREENSHOTS / f"connect-{width}-{theme}.png"),
                                full_page=True)  # fmt: skip
                context.close()
        finally:
            browser.close()


def test_it_renders_in_chinese(owner_client: Client) -> None:
    owner_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"

    text = _page(owner_client)

    assert "<h1>接入</h1>" in text and "基础 URL" in text and "编程智能体" in text
