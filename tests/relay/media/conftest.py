"""Fixtures for media tests: the fake media provider, Sora/Seedance/image channels, prices."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db.models import Sum

from billing.models import Hold, LedgerEntry, Wallet
from billing.services import price_set
from relay.models import Channel
from relay.services import channel_create
from tests.fakes.media import FakeMedia
from tests.relay.conftest import Customer

SORA_PER_SECOND = 100_000  # 0.10 USD a second
SEEDANCE_PER_1M = 10_000_000  # 10 USD per 1M tokens
IMAGE_PRICE = 40_000  # 0.04 USD an image


@pytest.fixture(scope="session")
def media_server() -> Iterator[FakeMedia]:
    with FakeMedia() as fake:
        yield fake


@pytest.fixture
def media(media_server: FakeMedia) -> FakeMedia:
    media_server.reset()
    return media_server


@pytest.fixture
def make_channel(media: FakeMedia) -> Callable[..., Channel]:
    def make(kind: str, models: tuple[str, ...], **kwargs: Any) -> Channel:
        base = {"openai": media.url + "/v1", "doubao": media.ark_url, "gemini": media.url}[kind]
        kwargs.setdefault("api_keys", [f"sk-{kind}-upstream"])
        kwargs.setdefault("name", f"fake-{kind}")
        return channel_create(type=kind, base_url=base, models=list(models), **kwargs)

    return make


@pytest.fixture
def sora(customer: Customer, make_channel: Callable[..., Channel]) -> Customer:
    """A funded customer, a Sora channel and its price."""
    make_channel("openai", ("sora-2",))
    price_set(model="sora-2", per_second=SORA_PER_SECOND)
    return customer


@pytest.fixture
def seedance(customer: Customer, make_channel: Callable[..., Channel]) -> Customer:
    make_channel(
        "doubao",
        ("seedance-1-pro",),
        model_map={"seedance-1-pro": "doubao-seedance-1-0-pro-250528"},
    )
    price_set(model="seedance-1-pro", output_per_1m=SEEDANCE_PER_1M)
    return customer


def assert_books_balance(customer: Customer) -> None:
    """balance = sum of the ledger, and nothing is left held."""
    wallet = Wallet.objects.get(organization=customer.org)
    total = LedgerEntry.objects.filter(wallet=wallet).aggregate(s=Sum("amount"))["s"] or 0
    assert wallet.balance == total
    assert wallet.held == 0
    assert not Hold.objects.filter(wallet=wallet).exists()


def charges_for(reference: str) -> list[int]:
    return list(LedgerEntry.objects.filter(source_id=reference).values_list("amount", flat=True))
