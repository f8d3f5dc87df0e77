"""Streams cut short are charged for what they delivered, exactly once: when the client
leaves, when the server shuts down, and when the server process is killed."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from django.conf import settings

from accounts.models import ApiKey
from billing.journal import journal_key
from billing.models import Hold, Lease, LedgerEntry, UncollectedUsage
from billing.services import price_set
from logs.models import RequestLog
from relay.models import Channel
from relay.services import channel_create
from relay.tokens import text_tokens
from tests.relay.conftest import Customer, wait_for
from tests.relay.processes import free_port, needs_shared_servers, relay_process, wait_up

REPLY = "word " * 400  # 2,000 bytes
CHAT = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "go"}]}
# Short leases so that a test sees a dead process's holds swept in seconds, not a minute.
# uvicorn exits by re-raising the signal it stopped for, once it has shut down cleanly.
STOPPED = (0, -signal.SIGTERM)
FAST_LEASES = {"LEASE_TTL_SECONDS": "2", "LEASE_RENEW_SECONDS": "0.5"}


class RawStream:
    """A streaming call on a plain socket: read part of it, then leave or keep reading."""

    def __init__(self, port: int, path: str, body: dict[str, Any], secret: str) -> None:
        raw = orjson.dumps(body)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(raw)}\r\n\r\n"
        )
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(head.encode() + raw)
        self.received = b""

    def read_until(self, done: Callable[[bytes], bool]) -> bytes:
        while not done(self.received):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.received += chunk
        return self.received

    def read_to_end(self) -> bytes:
        return self.read_until(lambda _: False)

    @property
    def request_id(self) -> str:
        found = re.search(rb"x-request-id: (req_[0-9a-f]+)", self.received, re.IGNORECASE)
        assert found, "no request id in the response head"
        return found.group(1).decode()

    def close(self) -> None:
        self.sock.close()


def _events(count: int) -> Callable[[bytes], bool]:
    return lambda received: received.count(b"data:") >= count


def _books_balanced(customer: Customer) -> None:
    wallet = customer.wallet()
    ledger = sum(LedgerEntry.objects.filter(wallet=wallet).values_list("amount", flat=True))
    assert wallet.balance == ledger
    assert wallet.held == sum(Hold.objects.filter(wallet=wallet).values_list("amount", flat=True))
    assert ApiKey.objects.get(pk=customer.key.pk).held == 0


@pytest.fixture
def anthropic_channel(fake) -> Channel:
    price_set(model="claude-sonnet-4-5", input_per_1m=3_000_000, output_per_1m=15_000_000)
    return channel_create(
        name="fake-anthropic", type="anthropic", base_url=fake.url,
        api_keys=["sk-ant-upstream"], models=["claude-sonnet-4-5"],
    )  # fmt: skip


def test_a_cut_anthropic_stream_is_charged_for_the_output_it_delivered(
    customer: Customer, anthropic_channel: Channel, fake
) -> None:
    # Anthropic reports output tokens at the end (message_start says 1): a stream cut
    # before then is charged at least what the client was sent, not one token.
    fake.configure(stream_chunks=100, chunk_delay=0.03, reply_text=REPLY)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1000, "stream": True,
            "messages": [{"role": "user", "content": "go"}]}  # fmt: skip
    stream = RawStream(customer.relay.port, "/v1/messages", body, customer.secret)
    stream.read_until(lambda r: r.count(b"event: content_block_delta") >= 20)
    stream.close()
    log = wait_for(lambda: RequestLog.objects.first())
    assert log.status_code == 499
    assert log.prompt_tokens > 0  # from message_start: the upstream's own count
    assert 20 * text_tokens(len(REPLY) // 100) <= log.completion_tokens < text_tokens(len(REPLY))
    assert log.usage_estimated
    wait_for(lambda: not Hold.objects.exists())
    _books_balanced(customer)


def _journal(reference: str) -> dict[str, Any] | None:
    """The stream's newest snapshot: in Redis, else on its hold row."""
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        try:
            raw = client.get(journal_key(reference))
        finally:
            client.close()
        return orjson.loads(raw) if raw else None
    hold = Hold.objects.filter(reference=reference).first()
    return hold.progress if hold is not None else None


def test_a_stream_journals_what_it_delivered_and_forgets_it_once_settled(
    ready: Customer, fake
) -> None:
    fake.configure(stream_chunks=60, chunk_delay=0.05, reply_text=REPLY)
    stream = RawStream(ready.relay.port, "/v1/chat/completions", CHAT, ready.secret)
    stream.read_until(_events(3))
    reference = stream.request_id

    def delivered() -> dict[str, Any] | None:
        snapshot = _journal(reference)
        return snapshot if snapshot and snapshot["log"]["completion_tokens"] > 0 else None

    first = wait_for(delivered)
    assert first["cost"] > 0 and first["log"]["model"] == "gpt-4o-mini"
    # About a second later, a newer snapshot with more output.
    wait_for(lambda: (_journal(reference) or first)["cost"] > first["cost"], timeout=10)
    stream.read_to_end()
    stream.close()
    log = wait_for(lambda: RequestLog.objects.filter(request_id=reference).first())
    assert log.status_code == 200 and not log.usage_estimated
    wait_for(lambda: _journal(reference) is None)  # the Redis entry is deleted; no hold left


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Server processes a test starts; any still running at the end are killed."""
    needs_shared_servers()
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def _serve(started: list[subprocess.Popen[bytes]], *args: str) -> int:
    port = free_port()
    started.append(relay_process(port, *args, **FAST_LEASES))
    wait_up(f"http://127.0.0.1:{port}")
    return port


def test_a_killed_server_s_streams_are_charged_once_for_what_they_delivered(
    ready: Customer, fake, processes: list[subprocess.Popen[bytes]]
) -> None:
    fake.configure(stream_chunks=200, chunk_delay=0.05, reply_text=REPLY)
    port = _serve(processes)
    streams = [RawStream(port, "/v1/chat/completions", CHAT, ready.secret) for _ in range(3)]
    for stream in streams:
        stream.read_until(_events(5))
    references = [s.request_id for s in streams]
    # Each stream has journaled some of its output.
    wait_for(lambda: all((_journal(r) or {"cost": 0})["cost"] > 0 for r in references))
    journaled = {r: _journal(r) for r in references}

    processes[0].kill()  # SIGKILL: no drain, no settlement, no lease ended
    processes[0].wait()
    for stream in streams:
        stream.read_to_end()
        stream.close()
    assert Hold.objects.count() == 3 and ready.wallet().held > 0

    _serve(processes)  # a successor (any surviving server does the same)
    wait_for(lambda: not Hold.objects.exists(), timeout=30)

    for reference in references:
        log = RequestLog.objects.get(request_id=reference)
        assert (log.status_code, log.error_code) == (500, "interrupted")
        snapshot = journaled[reference]
        assert snapshot is not None
        # At least what was journaled before the kill, never more than the whole reply.
        assert snapshot["log"]["completion_tokens"] <= log.completion_tokens
        assert log.completion_tokens < text_tokens(len(REPLY))
        assert log.cost >= snapshot["cost"] > 0
        charge = LedgerEntry.objects.get(kind="charge", source_id=reference)
        assert charge.amount == -log.cost
    assert RequestLog.objects.count() == 3
    assert not UncollectedUsage.objects.exists()
    _books_balanced(ready)
    # Its holds settled, the dead process's lease is removed in turn.
    wait_for(lambda: not Lease.objects.filter(pid=processes[0].pid).exists(), timeout=30)


def test_sigterm_lets_a_stream_finish_within_the_drain(
    ready: Customer, fake, processes: list[subprocess.Popen[bytes]]
) -> None:
    fake.configure(stream_chunks=20, chunk_delay=0.05, reply_text=REPLY)
    port = _serve(processes, "--timeout-graceful-shutdown", "30")
    stream = RawStream(port, "/v1/chat/completions", CHAT, ready.secret)
    stream.read_until(_events(2))
    processes[0].send_signal(signal.SIGTERM)
    received = stream.read_to_end()
    stream.close()
    assert b"data: [DONE]" in received
    assert processes[0].wait(timeout=30) in STOPPED
    log = RequestLog.objects.get(request_id=stream.request_id)
    assert log.status_code == 200 and log.cost > 0
    assert not Hold.objects.exists()
    assert not Lease.objects.filter(pid=processes[0].pid).exists()  # ended, not left to lapse
    _books_balanced(ready)


def test_sigterm_cuts_a_longer_stream_at_the_drain_and_charges_what_it_delivered(
    ready: Customer, fake, processes: list[subprocess.Popen[bytes]]
) -> None:
    fake.configure(stream_chunks=200, chunk_delay=0.05, reply_text=REPLY)
    port = _serve(processes, "--timeout-graceful-shutdown", "1")
    stream = RawStream(port, "/v1/chat/completions", CHAT, ready.secret)
    stream.read_until(_events(3))
    processes[0].send_signal(signal.SIGTERM)
    received = stream.read_to_end()
    stream.close()
    assert b"data: [DONE]" not in received
    assert b'"code":"shutdown"' in received  # told why, in the stream's own format
    assert processes[0].wait(timeout=30) in STOPPED
    log = RequestLog.objects.get(request_id=stream.request_id)
    assert (log.status_code, log.error_code) == (503, "shutdown")
    assert 0 < log.completion_tokens < text_tokens(len(REPLY))
    assert log.cost > 0
    assert LedgerEntry.objects.get(kind="charge").amount == -log.cost
    assert not Hold.objects.exists()
    _books_balanced(ready)


def test_sigterm_answers_a_waiting_call_503_at_the_drain_and_charges_nothing(
    ready: Customer, fake, processes: list[subprocess.Popen[bytes]]
) -> None:
    fake.configure(latency=20)
    port = _serve(processes, "--timeout-graceful-shutdown", "1")
    body = {**CHAT, "stream": False}
    call = RawStream(port, "/v1/chat/completions", body, ready.secret)
    fake.wait_until(lambda rs: len(rs) == 1)  # the upstream has the request
    processes[0].send_signal(signal.SIGTERM)
    received = call.read_to_end()
    call.close()
    assert received.startswith(b"HTTP/1.1 503")
    assert b"retry-after: 1" in received.lower()
    assert orjson.loads(received.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "shutdown"
    assert processes[0].wait(timeout=30) in STOPPED
    log = RequestLog.objects.get()
    assert (log.status_code, log.error_code, log.cost) == (503, "shutdown", 0)
    assert not Hold.objects.exists()
    assert not LedgerEntry.objects.filter(kind="charge").exists()
    _books_balanced(ready)
