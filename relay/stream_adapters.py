"""What happens to each upstream chunk on its way to the client, by relay mode.

- OpenAI to OpenAI: forwarded as is (minus the usage chunk TokenHub asked for), metered.
- Same protocol otherwise: forwarded byte for byte, metered by that protocol's parser.
- Different protocols: parsed into IR events and written in the client's protocol.

Every adapter collects the upstream's usage report and the output size for estimates.
"""

from __future__ import annotations

from typing import Protocol

from billing.pricing import Usage
from relay.errors import RelayError
from relay.formats import ir, openai
from relay.protocols import StreamParser, StreamWriter, WireProtocol


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
    def __init__(self, strip_usage_chunk: bool) -> None:
        self._meter = openai.StreamMeter(strip_usage_chunk=strip_usage_chunk)

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
        return openai.stream_error_event(err)


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


class Translating(_EventMeter):
    def __init__(self, parser: StreamParser, writer: StreamWriter) -> None:
        super().__init__()
        self._parser = parser
        self._writer = writer

    def _write(self, events: list[ir.StreamEvent]) -> bytes:
        self.observe(events)
        return b"".join(self._writer.write(event) for event in events)

    def feed(self, chunk: bytes) -> bytes:
        return self._write(self._parser.feed(chunk))

    def finish(self) -> bytes:
        return self._write(self._parser.close())

    def interrupted(self, err: RelayError) -> bytes:
        return self._writer.write(ir.StreamError(message=err.message, type=err.type))
