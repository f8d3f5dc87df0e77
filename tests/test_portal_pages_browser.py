"""Every page a customer sees, in headless Chromium: 1366 and 390 px wide, light and dark,
English and Chinese. Each is screenshotted to artifacts/screenshots/matrix/, must not scroll
sideways at 390 px, and must have no serious or critical axe-core violation.

One test per theme and language: one browser, one signed-in context per person (a customer
with data, one without, a visitor, an operator), both widths in each.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper
from pytest_django.live_server_helper import LiveServer

from accounts.models import Announcement, User
from accounts.selectors import organization_personal
from accounts.services import key_create, user_create
from billing.services import price_set, wallet_credit
from billing.topups import topup_confirm, topup_create
from logs.models import RequestLog
from tests.browser import SCREENSHOTS, axe_violations, chromium

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

WIDTHS = (1366, 390)
MODELS = [("gpt-4o", 9_000), ("claude-sonnet-4", 14_000), ("gemini-2.5-flash", 900)]


@dataclass(frozen=True)
class Portal:
    """Session cookies of the people in the matrix and the ids its pages need."""

    customer: str
    newcomer: str
    operator: str
    key_id: int
    receipt_id: int


def _session(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


@pytest.fixture
def portal(admin_user: User, settings: SettingsWrapper) -> Portal:
    """A customer with keys, a week of traffic, a paid top-up and an announcement to read;
    a newcomer with nothing yet; the operator."""
    settings.PAYMENTS_DEMO = True
    customer = user_create(email="matrix@example.com", password="matrix-pass-123", name="Mia")
    customer.email_verified = True
    customer.save(update_fields=["email_verified"])
    org = organization_personal(user=customer)
    keys = [key_create(organization=org, created_by=customer, name=n)[0] for n in ("web", "ci")]
    wallet_credit(
        organization=org, amount=20_000_000, kind="adjust", source_type="t", source_id="1"
    )
    topup = topup_create(organization=org, created_by=customer, amount_usd="10", provider="demo")
    topup_confirm(
        topup_id=topup.pk, payment_id="pay_1", amount=topup.pay_amount, currency=topup.currency
    )
    for model, _ in MODELS:
        price_set(model=model, input_per_1m=2_500_000, output_per_1m=10_000_000)
    Announcement.objects.create(
        title_en="New models", title_zh_hans="新模型", body_en="Gemini 2.5 Flash is available."
    )
    now = dt.datetime.now(dt.UTC)
    RequestLog.objects.bulk_create(
        RequestLog(
            request_id=f"m{hour}-{n}", organization_id=org.pk, endpoint="chat/completions",
            created_at=now - dt.timedelta(hours=hour, minutes=7 * n), model=model,
            api_key_id=keys[(hour + n) % 2].pk, status_code=502 if (hour + n) % 9 == 0 else 200,
            prompt_tokens=300 + 40 * n, completion_tokens=120 + hour % 70, cost=cost,
            latency_ms=400 + 10 * (hour % 30), client_ip="203.0.113.7",
            user_agent="openai-python/1.99.0",
        )
        for hour in range(0, 24 * 7, 3)
        for n, (model, cost) in enumerate(MODELS)
    )  # fmt: skip
    newcomer = user_create(email="newcomer@example.com", password="newcomer-pass-123")
    newcomer.email_verified = True
    newcomer.save(update_fields=["email_verified"])
    return Portal(
        customer=_session(customer),
        newcomer=_session(newcomer),
        operator=_session(admin_user),
        key_id=keys[0].pk,
        receipt_id=topup.pk,
    )


def _pages(portal: Portal) -> list[tuple[str, str, str]]:
    """(name, who, path) of every page in the matrix."""
    return [
        ("overview", "customer", "/dashboard/"),
        ("overview-empty", "newcomer", "/dashboard/"),
        ("connect", "customer", "/dashboard/connect/"),
        ("keys", "customer", "/dashboard/keys/"),
        ("key-edit", "customer", f"/dashboard/keys/{portal.key_id}/"),
        ("logs", "customer", "/dashboard/logs/"),
        ("media", "customer", "/dashboard/media/"),
        ("playground", "customer", "/playground/"),
        ("billing", "customer", "/dashboard/billing/"),
        ("receipt", "customer", f"/dashboard/billing/receipts/{portal.receipt_id}/"),
        ("org", "customer", "/dashboard/org/"),
        ("verification", "customer", "/dashboard/org/verification/"),
        ("support", "customer", "/dashboard/support/"),
        ("support-new", "customer", "/dashboard/support/new/"),
        ("settings", "customer", "/dashboard/settings/"),
        ("models", "customer", "/models/"),
        ("announcements", "customer", "/announcements/"),
        ("sign-in", "visitor", "/accounts/login/"),
        ("sign-up", "visitor", "/accounts/signup/"),
        ("admin", "operator", "/admin/"),
        ("admin-request-log", "operator", "/admin/logs/requestlog/"),
    ]


def _overflow(page: Any) -> int:
    """How many pixels the page scrolls sideways (0 when it fits)."""
    extra: int = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    return extra


@pytest.mark.parametrize("language", ["en", "zh-hans"])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_page_fits_390_px_and_has_no_serious_axe_violation(
    live_server: LiveServer, portal: Portal, theme: str, language: str
) -> None:
    sessions = {
        "customer": portal.customer,
        "newcomer": portal.newcomer,
        "operator": portal.operator,
        "visitor": None,
    }
    out = SCREENSHOTS / "matrix"
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []

    with chromium(axe=True) as browser:
        pages = {}
        for who, session in sessions.items():
            context = browser.new_context(
                viewport={"width": WIDTHS[0], "height": 900},
                color_scheme=theme,
                locale="zh-CN" if language == "zh-hans" else "en-US",
                timezone_id="Europe/Berlin",
            )
            cookies = [
                {"name": "theme", "value": theme},
                {"name": django_settings.LANGUAGE_COOKIE_NAME, "value": language},
            ]
            if session:
                cookies.append({"name": django_settings.SESSION_COOKIE_NAME, "value": session})
            context.add_cookies([{**c, "url": live_server.url} for c in cookies])
            pages[who] = context.new_page()

        for name, who, path in _pages(portal):
            page = pages[who]
            admin = name.startswith("admin")
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                response = page.goto(live_server.url + path)
                where = f"{name} {width}px {theme} {language}"
                assert response is not None and response.ok, f"{where}: {response}"
                page.screenshot(
                    path=str(out / f"{name}-{width}-{theme}-{language[:2]}.png"), full_page=True
                )
                if width == 390 and not admin and (extra := _overflow(page)) > 1:
                    problems.append(f"{where}: scrolls {extra} px sideways")
                # The admin is Django's own: checked once, in its default look.
                if admin and (width, theme, language) != (1366, "light", "en"):
                    continue
                problems += [f"{where}: {v}" for v in axe_violations(page)]

    assert not problems, "\n".join(problems)
