"""Minimal ASGI request reading and response writing for the relay's hot path.

The relay bypasses Django's request/response machinery (see docs/architecture.md for
the measured reason); this module is all the HTTP plumbing it needs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from relay.errors import RelayError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ClientDisconnected(Exception):
    pass


class Request:
    __slots__ = ("_query", "body", "headers", "method", "path", "query_string", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query_string: bytes = scope.get("query_string", b"")
        # Header names arrive lower-cased per the ASGI spec; last one wins.
        self.headers: dict[str, str] = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
        }
        self.body = b""
        self._query: dict[str, str] | None = None

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            self._query = dict(parse_qsl(self.query_string.decode("latin-1")))
        return self._query

    @property
    def client_host(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None


async def read_body(receive: Receive, limit: int) -> bytes:
    """Read the whole request body, refusing more than LIMIT bytes with a 413."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RelayError(
                413,
                f"Request body exceeds the limit of {limit // (1024 * 1024)} MB.",
                code="request_too_large",
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _raw_headers(content_type: bytes, headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    raw = [(b"content-type", content_type)]
    raw.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
    return raw


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: dict[str, str],
    content_type: bytes = b"application/json",
) -> None:
    raw = _raw_headers(content_type, headers)
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, payload: Any, headers: dict[str, str]) -> None:
    await send_bytes(send, status, orjson.dumps(payload), headers)


async def start_stream(
    send: Send, status: int, headers: dict[str, str], content_type: bytes
) -> None:
    raw = _raw_headers(content_type, headers)
    raw.append((b"cache-control", b"no-cache"))
    raw.append((b"x-accel-buffering", b"no"))  # nginx: do not buffer the stream
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def send_chunk(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def end_stream(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"", "more_body": False})
