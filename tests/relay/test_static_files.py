"""Static files through the production ASGI app: complete, and without Django's
"must consume synchronous iterators" warning (an error under this suite's filterwarnings)."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.signals import request_finished
from whitenoise.middleware import WhiteNoiseMiddleware

from tests.relay.conftest import RelayServer

STATIC = Path(__file__).resolve().parents[2] / "static"


def test_it_serves_static_files_whole_under_asgi(relay_server: RelayServer) -> None:
    for name in ("css/tokenhub.css", "js/playground.js"):
        response = httpx.get(f"{relay_server.url}/static/{name}")
        assert response.status_code == 200
        assert response.content == (STATIC / name).read_bytes()


def test_a_static_file_whose_client_left_while_it_opened_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client leaves while WhiteNoise (a sync middleware, in a thread) opens the file.
    The thread cannot be stopped; the response it returns is closed, not dropped with
    its file open (a ResourceWarning when the garbage collector finds it)."""
    from tokenhub import asgi

    started, proceed = threading.Event(), threading.Event()
    serve = WhiteNoiseMiddleware.serve

    def held_serve(static_file: Any, request: Any) -> Any:
        started.set()  # the thread runs: a cancellation can no longer stop it
        assert proceed.wait(10)  # set as Django gives up on the request, not by a timeout
        return serve(static_file, request)

    monkeypatch.setattr(WhiteNoiseMiddleware, "serve", staticmethod(held_serve))
    path = "/static/css/tokenhub.css"
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def left() -> None:
        messages = iter([{"type": "http.request", "body": b"", "more_body": False}])

        async def receive() -> dict[str, Any]:
            message = next(messages, None)
            if message is None:  # the client leaves once WhiteNoise is at work
                await asyncio.to_thread(started.wait, 10)
                message = {"type": "http.disconnect"}
            return message

        async def send(message: Mapping[str, Any]) -> None:
            sent.append(dict(message))

        ours = threading.get_ident()

        async def finished(**kwargs: Any) -> None:
            # Django has given up on the request: let WhiteNoise return its response. The
            # signal is global: another request of the test process (a live server's
            # thread) ending must not let WhiteNoise go before the client has left.
            if threading.get_ident() == ours:
                proceed.set()

        request_finished.connect(finished)
        try:
            await asgi.django_application(scope, receive, send)
        finally:
            request_finished.disconnect(finished)
        # Django's sync work runs on one thread: this runs after the view has returned.
        await sync_to_async(lambda: None, thread_sensitive=True)()
        await asyncio.sleep(0)
        await asyncio.gather(*asgi._closing)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(left())
        gc.collect()
    assert started.is_set() and sent == []  # WhiteNoise ran; the client left before any answer
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaked, leaked
