"""Fixtures for payment tests: the Stripe API stub, configured providers, signed-in clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import Organization, User
from billing.events import payment_event_process
from billing.models import PaymentEvent, TopUp, Wallet
from tests.fakes.stripe_api import API_KEY, WEBHOOK_SECRET, FakeStripe, signed

EPAY_KEY = "epay-merchant-key-123"
EPAY_PID = "1001"


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[FakeStripe]:
    with FakeStripe(api_version=django_settings.STRIPE_API_VERSION) as server:
        yield server


@pytest.fixture
def fake_stripe(stripe_server: FakeStripe, settings: SettingsWrapper) -> FakeStripe:
    stripe_server.reset()
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = stripe_server.url
    return stripe_server


@pytest.fixture
def epay(settings: SettingsWrapper) -> None:
    settings.EPAY_URL = "https://pay.example.test/"
    settings.EPAY_PID = EPAY_PID
    settings.EPAY_KEY = EPAY_KEY
    settings.EPAY_PRICE_PER_USD = "7.2"


@pytest.fixture
def owner_client(owner: User) -> Client:
    client = Client()
    client.force_login(owner)
    return client


def balance(org: Organization) -> int:
    return Wallet.objects.get(organization=org).balance


def post_stripe(client: Client, payload: str, signature: str | None = None) -> Any:
    return client.post(
        "/billing/webhooks/stripe/",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": signature if signature is not None else signed(payload)},
    )


def process_pending() -> list[str]:
    """What the Celery task does for every stored, unprocessed event (oldest first)."""
    return [
        str(payment_event_process(event_pk=pk))
        for pk in PaymentEvent.objects.filter(processed_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    ]


def create_topup(client: Client, amount: str = "25", provider: str = "stripe") -> TopUp:
    response = client.post(
        "/api/v1/topups",
        data=json.dumps({"amount_usd": amount, "provider": provider}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return TopUp.objects.get(pk=response.json()["id"])
