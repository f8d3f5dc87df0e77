"""A client that hangs up mid-stream is still billed for what was produced, exactly once."""

from __future__ import annotations

import socket

import orjson

from accounts.models import ApiKey
from billing.models import Hold, LedgerEntry
from logs.models import RequestLog
from tests.relay.conftest import Customer, wait_for


def _raw_stream_request(customer: Customer) -> bytes:
    body = orjson.dumps(
        {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": "tell me a long story"}],
        }
    )
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{customer.relay.port}\r\n"
        f"Authorization: Bearer {customer.secret}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def test_it_settles_and_logs_once_when_the_client_disconnects_mid_stream(
    ready: Customer, fake
) -> None:
    fake.configure(stream_chunks=50, chunk_delay=0.05, reply_text="word " * 200)
    with socket.create_connection(("127.0.0.1", ready.relay.port)) as sock:
        sock.sendall(_raw_stream_request(ready))
        received = b""
        while received.count(b"data:") < 3:  # a few content chunks have arrived
            received += sock.recv(65536)
    # The relay notices, hangs up on the upstream, and settles from the text produced.
    fake.wait_until(lambda rs: rs and rs[-1].outcome == "cancelled")
    log = wait_for(lambda: RequestLog.objects.first())
    assert log.status_code == 499 and log.error_code == "client_disconnected"
    assert log.usage_estimated
    assert 0 < log.completion_tokens < 250  # part of the 1,000-byte reply, not all of it
    assert log.cost > 0
    wait_for(lambda: not Hold.objects.exists())
    assert RequestLog.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="charge").count() == 1
    wallet = ready.wallet()
    assert wallet.held == 0
    total = sum(LedgerEntry.objects.filter(wallet=wallet).values_list("amount", flat=True))
    assert wallet.balance == total
    assert ApiKey.objects.get(pk=ready.key.pk).held == 0


def test_a_client_that_leaves_after_the_last_event_had_the_whole_answer(
    ready: Customer, fake
) -> None:
    # The upstream has sent [DONE] (and its usage) but keeps the connection open; the
    # client, done reading, hangs up first. That is a complete answer: 200, reported usage.
    fake.configure(linger_after_end=True)
    with socket.create_connection(("127.0.0.1", ready.relay.port)) as sock:
        sock.sendall(_raw_stream_request(ready))
        received = b""
        while b"data: [DONE]" not in received:
            received += sock.recv(65536)
    log = wait_for(lambda: RequestLog.objects.first())
    assert log.status_code == 200 and log.error_code == ""
    assert not log.usage_estimated and log.completion_tokens > 0
    wait_for(lambda: not Hold.objects.exists())
    assert LedgerEntry.objects.filter(kind="charge").count() == 1
