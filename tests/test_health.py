"""/healthz says the process is up; /readyz says its database (and Redis, if any) answer."""

from __future__ import annotations

import socket

import pytest
from django.conf import settings
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

pytestmark = [pytest.mark.embedded]


def _dead_port() -> int:
    # A port that was free a moment ago and that nothing listens on.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_it_says_the_process_is_up(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["content-type"] == "application/json"
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_it_is_ready_when_its_backends_answer(client: Client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    expected = {"database": True, **({"redis": True} if settings.REDIS_URL else {})}
    assert response.json()["checks"] == expected


@pytest.mark.django_db
def test_it_is_not_ready_when_redis_is_down(client: Client, settings: SettingsWrapper) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{_dead_port()}/0"

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": True, "redis": False},
    }
