"""Fixtures for relay tests: the fake upstream, TokenHub served by a real uvicorn, a customer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from django.conf import settings

from accounts.models import ApiKey, Organization, User
from accounts.selectors import organization_personal
from accounts.services import key_create, user_create
from billing.models import Wallet
from billing.services import price_set, wallet_credit
from relay.catalog import catalog
from relay.cooldown import cooldowns
from relay.models import Channel
from relay.pipeline.settle import pending as settle_pending
from relay.ratelimit import limiter
from relay.services import channel_create
from tests.fakes.upstream import FakeUpstream


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll a condition the relay makes true after the client has its answer (settlement)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


class RelayServer:
    """tokenhub.asgi:application under uvicorn, in a thread with its own event loop."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            "tokenhub.asgi:application",
            lifespan="on",
            log_level="warning",
            loop="asyncio",
            proxy_headers=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=10)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def relay_server(django_db_setup: None) -> Iterator[RelayServer]:
    # After the test database exists and stopped before it is dropped (session fixtures
    # end in reverse): the server's own pool and lease must not outlive the database.
    server = RelayServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(require_key=False) as fake:
        yield fake


def _flush_redis() -> None:
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        client.flushdb()
        client.close()


@pytest.fixture
def fake(fake_upstream: FakeUpstream) -> FakeUpstream:
    fake_upstream.reset()
    return fake_upstream


@dataclass
class Customer:
    user: User
    org: Organization
    key: ApiKey
    secret: str
    relay: RelayServer
    clients: list[Any] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.relay.url + "/v1"

    def balance(self) -> int:
        return Wallet.objects.get(organization=self.org).balance

    def wallet(self) -> Wallet:
        return Wallet.objects.get(organization=self.org)

    def openai(self, secret: str | None = None, **kwargs: Any) -> Any:
        """An official SDK client (closed at teardown); the customer's key by default."""
        from openai import OpenAI

        client = OpenAI(
            base_url=self.base_url, api_key=secret or self.secret, max_retries=0, **kwargs
        )
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def new_key(self, **kwargs: Any) -> str:
        _, secret = key_create(organization=self.org, created_by=self.user, **kwargs)
        return secret


@pytest.fixture
def relay(
    transactional_db: None, relay_server: RelayServer, fake: FakeUpstream
) -> Iterator[RelayServer]:
    """A clean relay: empty caches, cooldowns and rate-limit windows."""
    catalog.clear()
    cooldowns.clear()
    limiter.clear()
    _flush_redis()
    yield relay_server
    # Settlement finishes after the client has its answer: let it land before the
    # database is flushed for the next test.
    wait_for(lambda: not settle_pending(), timeout=10)
    catalog.clear()


@pytest.fixture
def customer(relay: RelayServer) -> Iterator[Customer]:
    user = user_create(email="dev@example.com", password="pw-123456789", email_verified=True)
    org = organization_personal(user=user)
    wallet_credit(
        organization=org, amount=10_000_000, kind="adjust", source_type="test", source_id="seed"
    )
    key, secret = key_create(organization=org, created_by=user, name="test")
    customer = Customer(user=user, org=org, key=key, secret=secret, relay=relay)
    yield customer
    customer.close()


@pytest.fixture
def openai_channel(fake: FakeUpstream) -> Callable[..., Channel]:
    def make(models: tuple[str, ...] = ("gpt-4o-mini",), **kwargs: Any) -> Channel:
        kwargs.setdefault("api_keys", ["sk-upstream-good"])
        kwargs.setdefault("name", "fake-openai")
        return channel_create(
            type="openai", base_url=fake.url + "/v1", models=list(models), **kwargs
        )

    return make


@pytest.fixture
def priced() -> None:
    price_set(model="gpt-4o-mini", input_per_1m=150_000, output_per_1m=600_000)
    price_set(model="text-embedding-3-small", input_per_1m=20_000)


@pytest.fixture
def ready(customer: Customer, openai_channel: Callable[..., Channel], priced: None) -> Customer:
    """A funded customer, one healthy OpenAI channel for gpt-4o-mini and embeddings."""
    openai_channel(models=("gpt-4o-mini", "text-embedding-3-small", "gpt-3.5-turbo-instruct"))
    price_set(model="gpt-3.5-turbo-instruct", input_per_1m=1_500_000, output_per_1m=2_000_000)
    return customer


_DATABASE_FIXTURES = frozenset({"db", "transactional_db", "django_db_setup"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The embedded mode (SQLite, no Redis) relays through the ORM ledger and in-process
    # limits: every relay test that touches the database runs there too. Tests that don't
    # (the pure translation and parser tests) would only repeat themselves.
    here = Path(__file__).parent
    for item in items:
        if here not in Path(item.path).parents:
            continue
        uses_database = item.get_closest_marker("django_db") is not None or bool(
            _DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        )
        if uses_database:
            item.add_marker(pytest.mark.embedded)
