"""A tiny HTTP server on 127.0.0.1 answering every request with canned bytes, for SDK tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class CannedServer:
    """Answers POST and GET on any path with `status`, `content_type` and `body`.

    Paths `accepts` turns down get a 404 with the same body. Every request's path goes to
    `paths`, its JSON body (None when empty) to `requests`.
    """

    def __init__(self) -> None:
        self.status = 200
        self.content_type = "application/json"
        self.body = b""
        self.accepts: Callable[[str], bool] = lambda path: True
        self.paths: list[str] = []
        self.requests: list[Any] = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                canned.paths.append(self.path)
                canned.requests.append(json.loads(raw) if raw else None)
                self.send_response(canned.status if canned.accepts(self.path) else 404)
                self.send_header("Content-Type", canned.content_type)
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                self.wfile.write(canned.body)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def serve(self, body: bytes, content_type: str = "application/json", status: int = 200) -> None:
        self.body, self.content_type, self.status = body, content_type, status

    def __enter__(self) -> CannedServer:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
