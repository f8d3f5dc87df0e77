"""The relay's upstream HTTP/1.1 client (relay/http1/client.py), against real servers on
loopback that misbehave on purpose: pooled connections, framing, a dropped idle
connection, bodies cut short, silence, a slow reader, TLS, bytes nobody asked for."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import hashlib
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from relay import http1
from relay.http1 import client
from tests.relay.formats.strategies import examples

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Upstream:
    """A loopback server running HANDLER per connection; counts the connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.base = ""

    async def start(self, tls: ssl.SSLContext | None = None) -> Upstream:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
        port = self.server.sockets[0].getsockname()[1]
        self.base = f"{'https' if tls else 'http'}://{'localhost' if tls else '127.0.0.1'}:{port}"
        return self

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One request, head and body; b"" when the client closed the connection."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return b""
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


@pytest.fixture
async def upstreams() -> AsyncIterator[Callable[..., Awaitable[Upstream]]]:
    started: list[Upstream] = []

    async def start(handler: Handler, tls: ssl.SSLContext | None = None) -> Upstream:
        started.append(await Upstream(handler).start(tls))
        return started[-1]

    yield start
    http1.close_pool()
    for upstream in started:
        assert upstream.server is not None
        upstream.server.close()


async def fetch(
    url: str, method: str = "POST", body: bytes | None = b"{}", **headers: str
) -> bytes:
    response = await http1.request(method, url, headers, body, connect_timeout=5, read_timeout=5)
    return await response.read()


async def until(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    """Wait for a condition the event loop makes true: the client's own socket state, which
    has no event to wait on."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.002)


async def start_answering(
    start: Any, *answers: bytes, tls: ssl.SSLContext | None = None
) -> Upstream:
    """An upstream answering each request on a connection with the next of ANSWERS."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            if not await up.read_request(reader):
                return
            writer.write(answer)
            await writer.drain()
        await reader.read()

    up: Upstream = await start(handler, tls)
    return up


async def test_one_connection_carries_requests_in_turn_and_each_request_is_well_formed(
    upstreams: Any,
) -> None:
    up = await start_answering(upstreams, OK, OK, OK)
    body = await fetch(
        f"{up.base}/v1/chat?x=a b", body=b'{"a":1}', authorization="Bearer k",
        Host="evil.example", **{"Content-Length": "999", "Transfer-Encoding": "chunked"},
    )  # fmt: skip
    assert body == b"ok"
    assert await fetch(f"{up.base}/v1/models", method="GET", body=None) == b"ok"
    assert up.connections == 1
    first, second = up.requests
    port = up.base.rsplit(":", 1)[1]
    agent = f"user-agent: {client._USER_AGENT.split(': ')[1]}\r\n".encode()
    assert agent.startswith(b"user-agent: TokenHub/")
    assert first == (
        b"POST /v1/chat?x=a%20b HTTP/1.1\r\n"
        + f"host: 127.0.0.1:{port}\r\n".encode()
        + b"authorization: Bearer k\r\n"
        + agent
        + b'content-length: 7\r\n\r\n{"a":1}'
    )
    assert second == f"GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n".encode() + (
        agent + b"\r\n"
    )
    # The caller's own user agent goes instead of TokenHub's.
    mine = await http1.request(
        "GET", up.base, {"User-Agent": "mine/1"}, None, connect_timeout=5, read_timeout=5
    )
    assert await mine.read() == b"ok"
    assert b"\r\nUser-Agent: mine/1\r\n" in up.requests[2]
    assert b"TokenHub" not in up.requests[2]


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/v1", {"x-header": "a\r\nx-injected: 1"}),
        ("/v1", {"x-header": "a\nb"}),
        ("/v1", {"x-header": "a\x00b"}),
        ("/v1", {"x-bad\r\nname": "1"}),
    ],
)
async def test_a_line_break_in_a_header_is_refused_before_anything_is_sent(
    upstreams: Any, url: str, headers: dict[str, str]
) -> None:
    up = await start_answering(upstreams, OK)
    with pytest.raises(http1.InvalidRequest):
        await http1.request("POST", up.base + url, headers, b"", connect_timeout=5, read_timeout=5)
    assert up.connections == 0


@pytest.mark.parametrize(
    "url", ["ftp://x/y", "http:///nohost", "http://u:p@host/", "http://h:99999/"]
)
async def test_a_url_that_cannot_be_sent_is_refused(url: str) -> None:
    with pytest.raises(http1.InvalidRequest):
        await http1.request("GET", url, {}, None, connect_timeout=5, read_timeout=5)
    http1.close_pool()


async def test_a_chunked_stream_is_handed_on_piece_by_piece_as_it_arrives(upstreams: Any) -> None:
    pieces = [b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]
    taken = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await up.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in pieces:
            taken.clear()
            writer.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await taken.wait()  # the next piece only once the client had this one
        writer.write(b"0\r\nx-trailer: 1\r\n\r\n")
        await up.read_request(reader)
        writer.write(OK)
        await reader.read()

    up = await upstreams(handler)
    response = await http1.request("POST", up.base, {}, b"", connect_timeout=5, read_timeout=5)
    got = []
    async for chunk in response:
        got.append(chunk)
        taken.set()
    assert got == pieces
    assert await fetch(up.base) == b"ok"
    assert up.connections == 1  # the finished stream's connection was reused


async def test_answers_framed_by_the_close_or_marked_close_are_not_reused(upstreams: Any) -> None:
    answers = iter(
        [
            b"HTTP/1.1 200 OK\r\n\r\nread until the close",
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 6\r\n\r\nclosed",
            b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nolde",
        ]
    )

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await up.read_request(reader)
        writer.write(next(answers))
        await writer.drain()

    up = await upstreams(handler)
    assert await fetch(up.base) == b"read until the close"
    assert await fetch(up.base) == b"closed"
    assert await fetch(up.base) == b"olde"
    assert up.connections == 3


@pytest.mark.parametrize(("method", "sent"), [("GET", 3), ("POST", 2)])
async def test_a_get_whose_idle_connection_was_dropped_goes_once_more_on_a_new_one(
    upstreams: Any, method: str, sent: int
) -> None:
    """A POST is not sent twice: the upstream may have acted on it (a channel's upstream
    that drops requests unanswered looks the same), so the caller's failover decides."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await up.read_request(reader)
        if up.connections == 1:
            writer.write(OK)  # keep-alive, then drop the next request unanswered
            await writer.drain()
            await up.read_request(reader)
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
        await writer.drain()
        await reader.read()

    up = await upstreams(handler)
    assert await fetch(up.base) == b"ok"
    if method == "GET":
        assert await fetch(up.base, method="GET", body=None) == b"fresh"
    else:
        with pytest.raises(http1.Disconnected):
            await fetch(up.base)
    assert len(up.requests) == sent


async def test_a_new_connection_closed_without_an_answer_is_an_error_not_a_loop(
    upstreams: Any,
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await up.read_request(reader)

    up = await upstreams(handler)
    with pytest.raises(http1.Disconnected):
        await fetch(up.base)
    assert up.connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Le",
    ],
)
async def test_an_answer_cut_short_is_an_error_not_a_short_body(
    upstreams: Any, answer: bytes
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await up.read_request(reader)
        writer.write(answer)
        await writer.drain()

    up = await upstreams(handler)
    with pytest.raises(http1.ClientError):
        await fetch(up.base)


async def test_bytes_that_are_not_http_are_a_bad_response(upstreams: Any) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await up.read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await reader.read()

    up = await upstreams(handler)
    with pytest.raises(http1.BadResponse):
        await fetch(up.base)


async def test_interim_answers_are_skipped(upstreams: Any) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    up = await start_answering(upstreams, interim + OK)
    assert await fetch(up.base) == b"ok"


async def test_silence_times_out_and_the_connection_is_not_reused(upstreams: Any) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await up.read_request(reader)
        if up.connections == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        elif up.connections == 3:
            writer.write(OK)
        await reader.read()  # and then nothing

    up = await upstreams(handler)
    response = await http1.request("POST", up.base, {}, b"", connect_timeout=5, read_timeout=0.2)
    with pytest.raises(TimeoutError):
        await response.read()
    with pytest.raises(TimeoutError):  # not even a status line
        await http1.request("POST", up.base, {}, b"", connect_timeout=5, read_timeout=0.2)
    assert await fetch(up.base) == b"ok"
    assert up.connections == 3


async def test_a_request_cancelled_midway_drops_its_connection(upstreams: Any) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await up.read_request(reader)
        if up.connections == 2:
            writer.write(OK)
        await reader.read()

    up = await upstreams(handler)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await fetch(up.base)
    assert await fetch(up.base) == b"ok"  # a late answer on the first one could not be it
    assert up.connections == 2


async def test_a_slow_reader_pauses_the_socket_and_loses_nothing(upstreams: Any) -> None:
    payload = bytes(range(256)) * 16_384  # 4 MiB

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await up.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
        await writer.drain()
        await reader.read()

    up = await upstreams(handler)
    response = await http1.request("POST", up.base, {}, b"", connect_timeout=5, read_timeout=5)
    conn = response._conn
    assert conn is not None
    await until(lambda: conn.paused)
    # Paused at the high-water mark plus at most one read from the socket.
    assert len(response._parser.buffer) <= client._HIGH_WATER + 262_144
    digest = hashlib.sha256(await response.read()).digest()
    assert digest == hashlib.sha256(payload).digest()


async def test_bytes_arriving_on_an_idle_connection_retire_it(upstreams: Any) -> None:
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfalse"
    idle = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await up.read_request(reader)
        if up.connections == 1:
            writer.write(OK)
            await idle.wait()
            writer.write(smuggled)  # an answer to a request not yet sent
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal")
        await reader.read()

    up = await upstreams(handler)
    assert await fetch(up.base) == b"ok"
    (pooled,) = client._pool().idle[("http", "127.0.0.1", int(up.base.rsplit(":", 1)[1]))]
    idle.set()
    await until(lambda: pooled.eof)
    assert await fetch(up.base) == b"real"
    assert up.connections == 2


async def test_bytes_after_an_answer_keep_its_connection_out_of_the_pool(upstreams: Any) -> None:
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfalse"
    up = await start_answering(upstreams, OK + smuggled)  # on every connection
    assert await fetch(up.base) == b"ok"
    assert await fetch(up.base) == b"ok"  # a new connection's first answer, not "false"
    assert up.connections == 2


async def test_idle_connections_past_the_keepalive_are_closed(upstreams: Any) -> None:
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await up.read_request(reader)
        writer.write(OK)
        await reader.read()
        closed.set()  # the client closed its end

    up = await upstreams(handler)
    assert await fetch(up.base) == b"ok"
    pool = client._pool()
    (conn,) = next(iter(pool.idle.values()))
    conn.idle_since -= client.KEEPALIVE + 1
    pool._sweep()
    async with asyncio.timeout(5):
        await closed.wait()
    assert pool.take(conn.origin) is None


def _certificate(tmp: Path) -> tuple[ssl.SSLContext, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    return server, cert_path


async def test_https_verifies_the_upstreams_certificate(
    upstreams: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_tls, cert_path = _certificate(tmp_path)
    up = await start_answering(upstreams, OK, OK, tls=server_tls)
    client._tls.cache_clear()
    try:
        with pytest.raises(http1.ConnectError):  # a certificate nobody vouches for
            await fetch(up.base)
        client._tls.cache_clear()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
        assert await fetch(up.base) == b"ok"
        assert await fetch(up.base) == b"ok"
        assert up.connections == 1  # one kept-alive connection (the refused one never got in)
    finally:
        client._tls.cache_clear()


async def _answer_with(data: bytes, splits: list[int]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        last = 0
        for point in sorted({s % (len(data) + 1) for s in splits}) + [len(data)]:
            writer.write(data[last:point])
            await writer.drain()
            last = point
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(10):  # a hang fails the example
            try:
                response = await http1.request(
                    "GET", f"http://127.0.0.1:{port}/", {}, None, connect_timeout=5,
                    read_timeout=5,
                )  # fmt: skip
                await response.read()
                response.release()
            except http1.ClientError:
                pass
    finally:
        http1.close_pool()
        server.close()


@settings(max_examples=examples(100), deadline=None)
@given(
    st.one_of(
        st.binary(max_size=400),
        st.binary(max_size=300).map(lambda b: b"HTTP/1.1 200 OK\r\n" + b),
        st.binary(max_size=300).map(
            lambda b: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b
        ),
    ),
    st.lists(st.integers(0, 500), max_size=4),
)
def test_whatever_an_upstream_sends_ends_in_an_answer_or_a_client_error(
    data: bytes, splits: list[int]
) -> None:
    asyncio.run(_answer_with(data, splits))


async def test_a_stream_cut_short_over_tls_stops_the_upstream_at_once(
    upstreams: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dropping a stream is how the relay tells an upstream to stop generating."""
    server_tls, cert_path = _certificate(tmp_path)
    stopped = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await up.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while True:  # an endless stream, as long as anyone takes it
                writer.write(b"d\r\ndata: token\n\n\r\n")
                await writer.drain()
        except ConnectionError:
            stopped.set()

    up = await upstreams(handler, server_tls)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    client._tls.cache_clear()
    try:
        response = await http1.request("GET", up.base, {}, None, connect_timeout=5, read_timeout=5)
        assert await response.__anext__()
        response.close()
        async with asyncio.timeout(5):
            await stopped.wait()
    finally:
        client._tls.cache_clear()


async def test_a_response_dropped_unread_closes_its_connection(upstreams: Any) -> None:
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await up.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await reader.read()  # until the client hangs up
        closed.set()

    up = await upstreams(handler)
    response = await http1.request("POST", up.base, {}, b"", connect_timeout=5, read_timeout=5)
    assert response.status == 200
    del response  # never read, released or closed
    gc.collect()
    async with asyncio.timeout(5):
        await closed.wait()
