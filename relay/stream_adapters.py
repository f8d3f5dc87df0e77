"""What happens to each upstream chunk on its way to the client, by relay mode.

- OpenAI to OpenAI: forwarded as is (minus the usage chunk TokenHub asked for), metered.
- Same protocol otherwise: forwarded byte for byte, metered by that protocol's parser; a
  protocol whose last usage event carries the call's cost is forwarded event by event,
  that one event re-written (`Stamping`).
- Different protocols: parsed into IR events and written in the client's protocol.

Every adapter collects the upstream's usage report and the output size for estimates.
With a `Quote`, the stream's last usage event carries what the call is billed, computed
from the adapter's own state when that event goes out: the same state settlement reads.
"""

from __future__ import annotations

from typing import Protocol

from billing.pricing import Usage
from relay.errors import RelayError
from relay.formats import cost, ir, openai
from relay.protocols import StreamParser, StreamWriter, WireProtocol

_SEP = b"\n\n"
# Events held back behind a cost carrier while waiting for the stream's end: beyond
# this, the carrier goes out without its cost rather than delay the stream.
_MAX_HELD = 8


class StreamAdapter(Protocol):
    @property
    def usage(self) -> Usage | None: ...
    @property
    def output_bytes(self) -> int: ...
    @property
    def complete(self) -> bool:
        """The client has been sent its protocol's last event (the answer is whole)."""
        ...

    def feed(self, chunk: bytes) -> bytes: ...
    def finish(self) -> bytes: ...
    def interrupted(self, err: RelayError) -> bytes: ...


class _EventMeter:
    """Usage and output size from IR events."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.output_bytes = 0
        self.complete = False

    def observe(self, events: list[ir.StreamEvent]) -> None:
        for event in events:
            if isinstance(event, ir.StreamFinish):
                self.complete = True
            if isinstance(event, ir.TextDelta | ir.ThinkingDelta):
                self.output_bytes += len(event.text.encode())
            elif isinstance(event, ir.ToolCallDelta):
                self.output_bytes += len(event.arguments.encode())
            elif isinstance(event, ir.StreamStart | ir.StreamFinish) and event.usage:
                # The finish's usage is the final word; a start's is the input side only.
                self.usage = event.usage


class OpenAIPassThrough:
    def __init__(self, strip_usage_chunk: bool, quote: cost.Quote | None = None) -> None:
        self._meter = openai.StreamMeter(strip_usage_chunk=strip_usage_chunk, quote=quote)

    @property
    def usage(self) -> Usage | None:
        return self._meter.usage

    @property
    def output_bytes(self) -> int:
        return self._meter.output_bytes

    @property
    def complete(self) -> bool:
        return self._meter.done

    def feed(self, chunk: bytes) -> bytes:
        return self._meter.feed(chunk)

    def finish(self) -> bytes:
        return self._meter.flush()

    def interrupted(self, err: RelayError) -> bytes:
        return self._meter.release() + openai.stream_error_event(err)


class PassThrough(_EventMeter):
    def __init__(self, protocol: WireProtocol) -> None:
        super().__init__()
        self._protocol = protocol
        self._parser: StreamParser = protocol.parser()

    def feed(self, chunk: bytes) -> bytes:
        self.observe(self._parser.feed(chunk))
        return chunk

    def finish(self) -> bytes:
        self.observe(self._parser.close())
        return b""

    def interrupted(self, err: RelayError) -> bytes:
        return self._protocol.error_event(err)


class Stamping(PassThrough):
    """Same protocol, forwarded event by event so that the event CARRIER names gets the
    call's cost (or loses an upstream's own cost when QUOTE is None).

    Anthropic's carrier (`message_delta`) comes before the event that ends the stream:
    it is held back until that end, with whatever follows it, so that its cost is quoted
    from the finished stream."""

    def __init__(
        self, protocol: WireProtocol, carrier: cost.StreamCarrier, quote: cost.Quote | None
    ) -> None:
        super().__init__(protocol)
        self._carrier = carrier
        self._quote = quote
        self._buf = b""
        self._held: list[bytes] = []  # a carrier and the events after it, unsent

    def feed(self, chunk: bytes) -> bytes:
        data = self._buf + chunk if self._buf else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(_SEP)
        if end < 0:
            self._buf = data
            return b""
        complete, self._buf = data[:end], data[end + 2 :]
        out: list[bytes] = []
        for event in complete.split(_SEP):
            self.observe(self._parser.feed(event + _SEP))
            out.extend(self._route(event))
        return b"".join(e + _SEP for e in out)

    def finish(self) -> bytes:
        rest, self._buf = self._buf, b""
        out: list[bytes] = []
        if rest.strip():
            self.observe(self._parser.feed(rest + _SEP))
            out.extend(self._route(rest))
        self.observe(self._parser.close())
        out.extend(self._release())
        return b"".join(e + _SEP for e in out)

    def interrupted(self, err: RelayError) -> bytes:
        held = b"".join(e + _SEP for e in self._release())  # what the client was due
        return held + super().interrupted(err)

    def _route(self, event: bytes) -> list[bytes]:
        """What to send now, EVENT having been metered."""
        if self._carrier.carries(event):
            out = self._release()  # a second carrier: the first was not the last
            if self._quote is None:
                return [*out, self._carrier.stamp(event, None)]
            self._held = [event]
        elif self._held:
            self._held.append(event)
            out = []
        else:
            return [event]
        if self.complete or len(self._held) > _MAX_HELD:
            out.extend(self._release())
        return out

    def _release(self) -> list[bytes]:
        """The held events, their carrier stamped: with the cost once the stream is
        complete, else only cleared of an upstream's cost."""
        if not self._held:
            return []
        held, self._held = self._held, []
        micros = None
        if self._quote is not None and self.complete:
            micros = self._quote(self.usage, self.output_bytes, self.complete)
        held[0] = self._carrier.stamp(held[0], micros)
        return held


class Translating(_EventMeter):
    def __init__(
        self, parser: StreamParser, writer: StreamWriter, quote: cost.Quote | None = None
    ) -> None:
        super().__init__()
        self._parser = parser
        self._writer = writer
        self._quote = quote

    def _write(self, events: list[ir.StreamEvent]) -> bytes:
        self.observe(events)
        if self._quote is not None:
            for event in events:
                if isinstance(event, ir.StreamFinish):
                    event.cost = self._quote(self.usage, self.output_bytes, self.complete)
        return b"".join(self._writer.write(event) for event in events)

    def feed(self, chunk: bytes) -> bytes:
        return self._write(self._parser.feed(chunk))

    def finish(self) -> bytes:
        return self._write(self._parser.close())

    def interrupted(self, err: RelayError) -> bytes:
        return self._writer.write(ir.StreamError(message=err.message, type=err.type))
