"""An incremental HTTP/1.1 response parser with no I/O (relay/http1/client.py feeds it).

Strict where leniency would let a broken or hostile upstream smuggle a second response
into the first or mislead the framing: CRLF line ends only, no folded header lines, one
agreed Content-Length, a chunk size that is plain hex. Anything else is a ProtocolError,
never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEAD = 65_536  # status line and headers (and a chunked body's trailers)
_MAX_CHUNK_LINE = 4_096
_HEX = frozenset(b"0123456789abcdefABCDEF")
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

# Body framing of the current response.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, _DONE = range(8)


class ProtocolError(Exception):
    """The upstream's bytes are not an HTTP/1.1 response."""


@dataclass(frozen=True, slots=True)
class Head:
    status: int
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "


class ResponseParser:
    """One response at a time: `next_head()`, then `read_body()` until `complete`."""

    __slots__ = ("_remaining", "_state", "buffer", "complete", "keep_alive", "no_body")

    def __init__(self, *, no_body: bool = False) -> None:
        self.buffer = bytearray()
        self.no_body = no_body  # the request was HEAD: no response has a body
        self._state = _HEAD
        self._remaining = 0
        self.complete = False
        self.keep_alive = False

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next_head(self) -> Head | None:
        """The final response's head once it has arrived (interim 1xx ones are skipped)."""
        buf = self.buffer
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise ProtocolError("response head too large")
                return None
            if end > MAX_HEAD:
                raise ProtocolError("response head too large")
            block = bytes(buf[:end])
            del buf[: end + 4]
            head, version = _head(block)
            if 100 <= head.status < 200:
                if head.status == 101:
                    raise ProtocolError("unrequested protocol switch")
                continue
            self._frame(head, version)
            return head

    def _frame(self, head: Head, version: str) -> None:
        headers = head.headers
        connection = headers.get("connection", "").lower()
        self.keep_alive = version == "HTTP/1.1" and "close" not in connection
        if self.no_body or head.status in (204, 304):
            self._state, self.complete = _DONE, True
            return
        coding = headers.get("transfer-encoding")
        if coding is not None:
            if "content-length" in headers:  # a smuggling shape: never reuse what follows
                self.keep_alive = False
            if coding.rsplit(",", 1)[-1].strip().lower() == "chunked":
                self._state = _CHUNK_SIZE
            else:  # a response's non-chunked coding runs to the close (RFC 9112 §6.3)
                self._state, self.keep_alive = _UNTIL_CLOSE, False
            return
        length = headers.get("content-length")
        if length is None:
            self._state, self.keep_alive = _UNTIL_CLOSE, False
            return
        values = {v.strip() for v in length.split(",")}
        value = values.pop()
        if values or not value.isdigit() or not value.isascii() or len(value) > 18:
            raise ProtocolError("bad content-length")
        self._remaining = int(value)
        self._state = _LENGTH
        if self._remaining == 0:
            self._state, self.complete = _DONE, True

    def read_body(self) -> bytes:
        """The body bytes that have arrived, with chunk framing removed."""
        state = self._state
        buf = self.buffer
        if state == _LENGTH:
            n = self._remaining
            if len(buf) < n:
                out = bytes(buf)
                buf.clear()
                self._remaining = n - len(out)
                return out
            out = bytes(buf[:n])
            del buf[:n]
            self._state, self.complete = _DONE, True
            return out
        if state == _UNTIL_CLOSE:
            out = bytes(buf)
            buf.clear()
            return out
        if state == _HEAD:
            raise RuntimeError("read_body before next_head")
        if state == _DONE:
            return b""
        return self._read_chunked()

    def _read_chunked(self) -> bytes:
        buf = self.buffer
        parts: list[bytes] = []
        while True:
            state = self._state
            if state == _CHUNK_SIZE:
                end = buf.find(b"\r\n", 0, _MAX_CHUNK_LINE)
                if end < 0:
                    if len(buf) >= _MAX_CHUNK_LINE:
                        raise ProtocolError("chunk size line too long")
                    break
                size = bytes(buf[:end]).split(b";", 1)[0].rstrip(b" \t")
                if not size or len(size) > 15 or not _HEX.issuperset(size):
                    raise ProtocolError("bad chunk size")
                del buf[: end + 2]
                self._remaining = int(size, 16)
                self._state = _CHUNK_DATA if self._remaining else _TRAILERS
            elif state == _CHUNK_DATA:
                if not buf:
                    break
                n = self._remaining
                piece = bytes(buf[:n])
                del buf[: len(piece)]
                parts.append(piece)
                self._remaining = n - len(piece)
                if self._remaining:
                    break
                self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(buf) < 2:
                    break
                if buf[:2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                del buf[:2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                if buf[:2] == b"\r\n":
                    del buf[:2]
                    self._state, self.complete = _DONE, True
                    break
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise ProtocolError("trailers too large")
                    break
                del buf[: end + 4]  # trailers carry nothing the relay uses
                self._state, self.complete = _DONE, True
                break
            else:
                break
        return b"".join(parts)

    def feed_eof(self) -> None:
        """The upstream closed the connection: that ends a close-delimited body only."""
        if self._state == _UNTIL_CLOSE:
            self._state, self.complete = _DONE, True
        elif self._state != _DONE:
            raise ProtocolError("connection closed mid-response")


def _head(block: bytes) -> tuple[Head, str]:
    # Whole-block checks first, so the per-line loop stays small: every line break is a
    # CRLF, and there is no NUL.
    breaks = block.count(b"\r\n")
    if block.count(b"\r") != breaks or block.count(b"\n") != breaks or b"\x00" in block:
        raise ProtocolError("bad line break in the response head")
    lines = block.decode("latin-1").split("\r\n")
    status_line = lines[0]
    version = status_line[:8]
    code = status_line[9:12]
    if (
        version not in ("HTTP/1.1", "HTTP/1.0")
        or status_line[8:9] != " "
        or len(code) != 3
        or not code.isdigit()
        or not code.isascii()
        or status_line[12:13] not in ("", " ")
    ):
        raise ProtocolError("bad status line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or not _TOKEN.issuperset(name):
            raise ProtocolError("bad header line")
        key = name.lower()
        value = value.strip(" \t")
        found = headers.get(key)
        headers[key] = value if found is None else f"{found}, {value}"
    return Head(int(code), headers), version
