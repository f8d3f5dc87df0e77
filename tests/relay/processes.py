"""TokenHub served by separate uvicorn processes on the test database (PostgreSQL and
Redis only: SQLite is one file per process tree, the embedded limits live in memory)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.relay.conftest import Customer, wait_for

ROOT = Path(__file__).resolve().parents[2]


def needs_shared_servers() -> None:
    if not settings.REDIS_URL or "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("several server processes need PostgreSQL and Redis")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def relay_process(port: int, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """A production-mode server on PORT (extra uvicorn ARGS, extra environment ENV)."""
    db = settings.DATABASES["default"]
    environment = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "TOKENHUB_ENCRYPTION_KEYS": ",".join(settings.ENCRYPTION_KEYS),
        "DEBUG": "0",
        "HOLD_SWEEP_IN_SERVER": "1",
        **env,
    }
    return subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "tokenhub.asgi:application",
            "--port", str(port), "--lifespan", "on", "--no-proxy-headers",
            "--log-level", "warning", *args,
        ],
        cwd=ROOT,
        env=environment,
    )  # fmt: skip


def wait_up(url: str) -> None:
    def up() -> bool:
        try:
            return httpx.get(url + "/healthz").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, timeout=30)


@pytest.fixture
def two_relays(ready: Customer) -> Iterator[list[str]]:
    needs_shared_servers()
    ports = [free_port(), free_port()]
    procs = [relay_process(p) for p in ports]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for url in urls:
            wait_up(url)
        yield [u + "/v1" for u in urls]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
