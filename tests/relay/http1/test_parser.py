"""The upstream response parser (relay/http1/parser.py).

Valid responses, fed in arbitrary pieces, must read exactly as h11 (an independent,
strict HTTP/1.1 implementation) reads them. Arbitrary bytes must end in a response or a
ProtocolError: never another exception, never a state that waits for bytes forever once
the connection has closed.
"""

from __future__ import annotations

from dataclasses import dataclass

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.http1.parser import MAX_HEAD, ProtocolError, ResponseParser
from tests.relay.formats.strategies import examples

PROPS = settings(max_examples=examples(300), deadline=None)

_TCHAR = "!#$%&'*+-.^_`|~abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
names = st.text(st.sampled_from(_TCHAR), min_size=1, max_size=12).filter(
    lambda n: n.lower() not in ("content-length", "transfer-encoding", "connection")
)
# Field values: visible ASCII with inner spaces (h11 and RFC 9110 strip the outer ones).
values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20).map(
    lambda v: v.replace("!", " ").strip()
)


@dataclass
class Read:
    status: int
    headers: dict[str, str]
    body: bytes


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


def ours(pieces: list[bytes], *, eof: bool) -> Read:
    parser = ResponseParser()
    head = None
    body = b""
    for piece in pieces:
        parser.feed(piece)
        if head is None:
            head = parser.next_head()
        if head is not None:
            body += parser.read_body()
    if eof:
        parser.feed_eof()
    assert head is not None and parser.complete
    assert not parser.buffer  # all of it, and not a byte more, was this response
    return Read(head.status, head.headers, body)


def theirs(data: bytes, *, eof: bool) -> Read:
    conn = h11.Connection(our_role=h11.CLIENT)
    conn.send(h11.Request(method="POST", target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    if eof:
        conn.receive_data(b"")
    status, headers, body = 0, dict[str, str](), b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
            for name, value in event.headers:
                key, text = name.decode(), value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return Read(status, headers, body)
        elif event is h11.NEED_DATA:
            raise AssertionError("h11 wants more data")


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A valid response and whether it ends only when the connection closes."""
    status = draw(st.sampled_from([200, 201, 400, 404, 429, 500, 503]))
    fields = draw(st.lists(st.tuples(names, values), max_size=6))
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    interim = draw(st.sampled_from([b"", b"HTTP/1.1 100 Continue\r\n\r\n"]))
    head = f"HTTP/1.1 {status} {draw(st.sampled_from(['OK', 'Whatever', '']))}\r\n"
    head += "".join(f"{n}: {v}\r\n" for n, v in fields)
    if framing == "length":
        head += f"Content-Length: {len(body)}\r\n"
        wire = body
    elif framing == "chunked":
        head += "Transfer-Encoding: chunked\r\n"
        cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(body))), max_size=5))))
        wire, last = b"", 0
        for point in [*cuts, len(body)]:
            part = body[last:point]
            last = point
            if part:
                ext = draw(st.sampled_from(["", ";name=value", ";x"]))
                wire += f"{len(part):x}{ext}\r\n".encode() + part + b"\r\n"
        trailer = draw(st.sampled_from([b"", b"X-Trailer: done\r\n"]))
        wire += b"0\r\n" + trailer + b"\r\n"
    else:
        wire = body
    return interim + head.encode() + b"\r\n" + wire, framing == "close"


@PROPS
@given(responses(), st.lists(st.integers(0, 2_000), max_size=8))
def test_valid_responses_read_as_h11_reads_them(
    response: tuple[bytes, bool], cuts: list[int]
) -> None:
    data, until_close = response
    assert ours(_pieces(data, cuts), eof=until_close) == theirs(data, eof=until_close)


@PROPS
@given(st.binary(max_size=600), st.lists(st.integers(0, 700), max_size=6))
def test_arbitrary_bytes_end_in_a_response_or_a_protocol_error(
    data: bytes, cuts: list[int]
) -> None:
    prefixed = b"HTTP/1.1 200 OK\r\n" + data  # gets past the status line more often
    for wire in (data, prefixed):
        parser = ResponseParser()
        head = None
        try:
            for piece in _pieces(wire, cuts):
                parser.feed(piece)
                if head is None:
                    head = parser.next_head()
                if head is not None:
                    parser.read_body()
            if head is not None:
                parser.feed_eof()
                assert parser.complete  # once closed, nothing is left waiting
        except ProtocolError:
            pass


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: line\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
    ],
)
def test_malformed_heads_and_framing_are_refused(wire: bytes) -> None:
    parser = ResponseParser()
    parser.feed(wire)
    with pytest.raises(ProtocolError):
        if parser.next_head() is not None:
            parser.read_body()


def test_a_head_without_an_end_is_refused_once_too_large() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n")
    filler = b"X-Filler: " + b"a" * 1_000 + b"\r\n"
    with pytest.raises(ProtocolError, match="too large"):
        for _ in range(MAX_HEAD // len(filler) + 2):
            parser.feed(filler)
            assert parser.next_head() is None


def test_an_endless_chunk_size_line_is_refused() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert parser.next_head() is not None
    parser.feed(b"1" * 5_000)
    with pytest.raises(ProtocolError):
        parser.read_body()


def test_a_response_cut_short_is_an_error_not_a_short_body() -> None:
    for wire in (
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Len",
    ):
        parser = ResponseParser()
        parser.feed(wire)
        with pytest.raises(ProtocolError, match="closed mid-response"):
            if parser.next_head() is not None:
                parser.read_body()
            parser.feed_eof()


def test_framing_decides_whether_the_connection_may_be_reused() -> None:
    def reusable(wire: bytes, *, no_body: bool = False) -> bool:
        parser = ResponseParser(no_body=no_body)
        parser.feed(wire)
        assert parser.next_head() is not None
        parser.read_body()
        if not parser.complete:
            parser.feed_eof()
        return parser.keep_alive

    assert reusable(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    assert reusable(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert reusable(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", no_body=True)
    assert not reusable(b"HTTP/1.1 200 OK\r\n\r\nuntil the close")
    assert not reusable(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    assert not reusable(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi")
    assert not reusable(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx")
    both = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert not reusable(both)


def test_bytes_after_a_response_stay_in_the_buffer() -> None:
    """What follows a complete answer is not part of it; the client sees it and does not
    reuse the connection (a smuggled second response must not answer the next request)."""
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\n")
    assert parser.next_head() is not None
    assert parser.read_body() == b"hi"
    assert parser.complete
    assert bytes(parser.buffer) == b"HTTP/1.1 200 OK\r\n"
