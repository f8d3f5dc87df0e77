"""Static files through the production ASGI app: complete, and without Django's
"must consume synchronous iterators" warning (an error under this suite's filterwarnings)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.relay.conftest import RelayServer

STATIC = Path(__file__).resolve().parents[2] / "static"


def test_it_serves_static_files_whole_under_asgi(relay_server: RelayServer) -> None:
    for name in ("css/tokenhub.css", "js/playground.js"):
        response = httpx.get(f"{relay_server.url}/static/{name}")
        assert response.status_code == 200
        assert response.content == (STATIC / name).read_bytes()
