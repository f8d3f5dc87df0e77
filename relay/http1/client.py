"""A lean HTTP/1.1 client for the relay's upstream calls, over asyncio protocols.

Why not aiohttp here: side by side against the fake upstream (`make bench-client`),
aiohttp's request and response objects cost ~150 µs of CPU a call and this client ~70 µs,
on a hot path whose whole budget was ~600 µs. It does only what the relay needs:
keep-alive pools per origin and event loop, TLS, Content-Length, chunked and
close-delimited bodies, read timeouts and back-pressure. No redirects, cookies, proxies or
decompression (the relay asks for `identity`, and passes through what it gets).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from functools import lru_cache
from importlib import metadata
from typing import Final
from urllib.parse import quote, urlsplit

from relay.http1.parser import Head, ProtocolError, ResponseParser

KEEPALIVE: Final = 30.0  # seconds an idle connection is kept for reuse
_MAX_IDLE: Final = 1_000  # idle connections kept per origin
_HIGH_WATER: Final = 262_144  # stop reading from a socket whose unread bytes pass this
_DROPPED: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_PATH_SAFE: Final = "/%:@!$&'()*+,;=-._~?[]"
# A reused connection that closes this soon after the request, with no byte of an answer,
# was most likely dropped by the upstream while idle. Only a request that may safely go
# twice is sent again: a POST is the upstream's to have acted on (an upstream that drops
# it unanswered looks the same), and failover decides what happens next.
_STALE_WINDOW: Final = 1.0
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def _version() -> str:
    try:
        return metadata.version("tokenhub")
    except metadata.PackageNotFoundError:
        return "dev"


_USER_AGENT: Final = f"user-agent: TokenHub/{_version()}"


class ClientError(Exception):
    """The exchange with the upstream failed; no response (or only part of one) arrived."""


class ConnectError(ClientError):
    """The connection could not be opened (refused, unreachable, DNS, TLS)."""


class Disconnected(ClientError):
    """The upstream closed or reset the connection before the response was complete."""


class BadResponse(ClientError):
    """The upstream's bytes are not an HTTP/1.1 response."""


class InvalidRequest(ClientError):
    """The URL or a header cannot be sent (a control character, an unknown scheme)."""


Origin = tuple[str, str, int]  # scheme, host, port


class _Target:
    __slots__ = ("host_header", "origin", "path")

    def __init__(self, origin: Origin, host_header: str, path: str) -> None:
        self.origin, self.host_header, self.path = origin, host_header, path


@lru_cache(maxsize=4_096)
def _target(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"bad url: {exc}") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host or parts.username is not None:
        raise InvalidRequest("url must be http(s)://host[:port]/path")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidRequest("bad host name") from None
    default = 443 if scheme == "https" else 80
    port = port or default
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    path = quote(path, safe=_PATH_SAFE)  # only what may not go on the wire is escaped
    return _Target((scheme, host, port), host_header, path)


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def _head_bytes(method: str, target: _Target, headers: Mapping[str, str], size: int) -> bytes:
    lines = [f"{method} {target.path} HTTP/1.1", f"host: {target.host_header}"]
    agent = False
    for name, value in headers.items():
        low = name.lower()
        if low not in _DROPPED:
            lines.append(f"{name}: {value}")
            agent = agent or low == "user-agent"
    if not agent:  # some upstreams' firewalls turn away requests without one
        lines.append(_USER_AGENT)
    if size >= 0:
        lines.append(f"content-length: {size}")
    text = "\r\n".join(lines)
    # One count each instead of a scan per header: a CR, LF or NUL inside any line would
    # let a value start a header (or a request) of its own.
    breaks = len(lines) - 1
    if text.count("\r") != breaks or text.count("\n") != breaks or "\x00" in text:
        raise InvalidRequest("a header contains a line break")
    if not method.isalpha():
        raise InvalidRequest("bad method")
    return (text + "\r\n\r\n").encode("utf-8")


class _Connection(asyncio.Protocol):
    __slots__ = (
        "eof",
        "idle_since",
        "loop",
        "origin",
        "parser",
        "paused",
        "received",
        "transport",
        "waiter",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: Origin) -> None:
        self.loop = loop
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser: ResponseParser | None = None  # None while idle in the pool
        self.waiter: asyncio.Future[None] | None = None
        self.eof = False  # closed, by either side: never to be used again
        self.paused = False
        self.received = False  # any byte of the current response
        self.idle_since = 0.0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a TCP connection's

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:  # bytes nobody asked for: this connection cannot be trusted
            self.close()
            return
        self.received = True
        parser.feed(data)
        if len(parser.buffer) > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # the exchange

    def close(self) -> None:
        # Abort, not close: nothing unsent matters, and a TLS close keeps the socket until
        # the upstream answers its close_notify (up to 30 s) instead of freeing it now.
        self.eof = True
        if self.transport is not None:
            self.transport.abort()

    def reusable(self, cutoff: float) -> bool:
        """Open, idle since after CUTOFF, and not being closed: fit to carry a request."""
        transport = self.transport
        return (
            not self.eof
            and self.idle_since > cutoff
            and transport is not None
            and not transport.is_closing()
        )

    def consumed(self) -> None:
        """The reader took the buffered bytes: read from the socket again."""
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    async def wait(self, timeout: float) -> None:
        """Until more bytes, the end of the stream, or TIMEOUT seconds of silence."""
        waiter = self.loop.create_future()
        self.waiter = waiter
        timer = self.loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Response:
    """The status and headers of an answer; its body is read with `read()` or by iterating."""

    __slots__ = ("_conn", "_parser", "_pool", "_read_timeout", "headers", "status")

    def __init__(
        self, head: Head, conn: _Connection, parser: ResponseParser, pool: _Pool, timeout: float
    ) -> None:
        self.status = head.status
        self.headers = head.headers
        self._conn: _Connection | None = conn
        self._parser = parser
        self._pool = pool
        self._read_timeout = timeout

    async def read(self) -> bytes:
        parts = []
        async for chunk in self:
            parts.append(chunk)
        return b"".join(parts)

    def __aiter__(self) -> Response:
        return self

    async def __anext__(self) -> bytes:
        """The next body bytes, as they arrive (chunk framing removed)."""
        parser = self._parser
        conn = self._conn
        while True:
            if parser.complete:
                self.release()
                raise StopAsyncIteration
            if conn is None:
                raise Disconnected("response already released")
            try:
                data = parser.read_body()
                if not data and not parser.complete and conn.eof:
                    parser.feed_eof()
            except ProtocolError as exc:
                self.close()
                raise BadResponse(str(exc)) from None
            conn.consumed()
            if data:
                return data
            if not parser.complete:
                try:
                    await conn.wait(self._read_timeout)
                except BaseException:
                    self.close()
                    raise

    def release(self) -> None:
        """Done with the response: its connection goes back to the pool if it can."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        parser = self._parser
        if parser.complete and parser.keep_alive and not parser.buffer and not conn.eof:
            self._pool.put(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Drop the connection (a body not read to its end tells the upstream to stop)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __del__(self) -> None:
        # A response dropped unreleased (an exception between the answer and its reading)
        # must not keep its socket open, or its upstream generating, for ever.
        conn = self._conn
        if conn is not None and not conn.loop.is_closed():
            conn.close()


class _Pool:
    """The idle keep-alive connections of one event loop, per origin."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.idle: dict[Origin, list[_Connection]] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def take(self, origin: Origin) -> _Connection | None:
        stack = self.idle.get(origin)
        if not stack:
            return None
        cutoff = self.loop.time() - KEEPALIVE
        while stack:
            conn = stack.pop()  # the most recently used: the least likely to be stale
            if conn.reusable(cutoff):
                return conn
            conn.close()
        return None

    def put(self, conn: _Connection) -> None:
        conn.parser = None
        conn.idle_since = self.loop.time()
        stack = self.idle.setdefault(conn.origin, [])
        if len(stack) >= _MAX_IDLE:
            conn.close()
            return
        stack.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(KEEPALIVE, self._sweep)

    def _sweep(self) -> None:
        """Close connections idle past KEEPALIVE, so an idle relay holds no sockets."""
        self._sweeper = None
        cutoff = self.loop.time() - KEEPALIVE
        left = 0
        for stack in self.idle.values():
            keep = []
            for conn in stack:
                if conn.reusable(cutoff):
                    keep.append(conn)
                else:
                    conn.close()
            stack[:] = keep
            left += len(keep)
        if left:
            self._sweeper = self.loop.call_later(KEEPALIVE, self._sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for stack in self.idle.values():
            for conn in stack:
                conn.close()
        self.idle.clear()

    async def connect(self, origin: Origin, timeout: float) -> _Connection:
        scheme, host, port = origin
        conn = _Connection(self.loop, origin)
        try:
            async with asyncio.timeout(timeout):
                if scheme == "https":
                    await self.loop.create_connection(
                        lambda: conn, host, port, ssl=_tls(), server_hostname=host
                    )
                else:
                    await self.loop.create_connection(lambda: conn, host, port)
        except TimeoutError:
            conn.close()
            raise ConnectError("connect timed out") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is one)
            conn.close()
            raise ConnectError(type(exc).__name__) from None
        return conn


_pools: dict[int, _Pool] = {}


def _pool() -> _Pool:
    loop = asyncio.get_running_loop()
    pool = _pools.get(id(loop))
    if pool is None or pool.loop is not loop:  # a new loop may reuse a dead one's id
        pool = _pools[id(loop)] = _Pool(loop)
    return pool


def close_pool() -> None:
    """Close this event loop's idle connections (server shutdown)."""
    pool = _pools.pop(id(asyncio.get_running_loop()), None)
    if pool is not None:
        pool.close()


class _NoAnswer(Exception):
    """The connection closed at once, before any byte of the answer (_STALE_WINDOW)."""


async def request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    connect_timeout: float,
    read_timeout: float,
) -> Response:
    """Send the request; returns once the final status line and headers have arrived."""
    target = _target(url)
    wire = _head_bytes(method, target, headers, -1 if body is None else len(body))
    if body:
        wire += body
    pool = _pool()
    conn = pool.take(target.origin)
    if conn is not None:
        try:
            return await _exchange(conn, pool, method, wire, read_timeout)
        except _NoAnswer:
            if method not in _IDEMPOTENT:
                raise Disconnected("connection closed before the response") from None
    conn = await pool.connect(target.origin, connect_timeout)
    try:
        return await _exchange(conn, pool, method, wire, read_timeout)
    except _NoAnswer:
        raise Disconnected("connection closed before the response") from None


async def _exchange(
    conn: _Connection, pool: _Pool, method: str, wire: bytes, read_timeout: float
) -> Response:
    parser = ResponseParser(no_body=method == "HEAD")
    conn.parser = parser
    conn.received = False
    transport = conn.transport
    try:
        if transport is None or transport.is_closing():
            raise _NoAnswer
        transport.write(wire)
        sent = conn.loop.time()
        while True:
            head = parser.next_head()
            if head is not None:
                return Response(head, conn, parser, pool, read_timeout)
            if conn.eof:
                if not conn.received and conn.loop.time() - sent < _STALE_WINDOW:
                    raise _NoAnswer
                raise Disconnected("connection closed before the response was complete")
            await conn.wait(read_timeout)
    except ProtocolError as exc:
        conn.close()
        raise BadResponse(str(exc)) from None
    except BaseException:  # a timeout, a cancellation: the connection's state is unknown
        conn.close()
        raise
