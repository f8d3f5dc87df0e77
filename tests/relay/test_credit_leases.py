"""Credit leases (billing/credit_leases.py): requests admitted with no round trip, their
holds written behind them, and the money invariants kept: no wallet funds more than it
has, every request is charged once, and leased credit always goes back (idle, at
shutdown, and by the sweep when its server is killed). PostgreSQL only."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connection
from django.db.models import Sum

from accounts.models import ApiKey
from billing.models import CreditLease, Hold, LedgerEntry, UncollectedUsage, Wallet
from billing.services import price_set, wallet_credit
from logs.models import RequestLog
from tests.relay import test_crash_safety
from tests.relay.conftest import Customer, wait_for
from tests.relay.processes import free_port, relay_process, wait_up
from tests.relay.test_crash_safety import REPLY, RawStream, _events, _journal

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
BALANCE_HEADER = "x-tokenhub-balance"
SLICE = 1_000_000  # RELAY_CREDIT_LEASE_MICROS in these tests
# Fast lease renewal: idle slices go back and dead servers are swept within seconds.
FAST = {"LEASE_TTL_SECONDS": "2", "LEASE_RENEW_SECONDS": "0.5"}
processes = test_crash_safety.processes  # the fixture: server processes a test starts


@pytest.fixture(autouse=True)
def _postgres_and_leases(settings) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("credit leases belong to the fast ledger, on PostgreSQL")
    settings.RELAY_CREDIT_LEASE_MICROS = SLICE


def _serve(started: list[subprocess.Popen[bytes]], **env: str) -> str:
    port = free_port()
    started.append(relay_process(port, RELAY_CREDIT_LEASE_MICROS=str(SLICE), **env))
    url = f"http://127.0.0.1:{port}"
    wait_up(url)
    return url


def _post(base_url: str, customer: Customer) -> httpx.Response:
    return httpx.post(
        base_url + "/v1/chat/completions",
        json=CHAT,
        headers={"authorization": f"Bearer {customer.secret}"},
        timeout=30,
    )


def _keep_busy(url: str, customer: Customer, stop: threading.Event) -> None:
    fast = {**CHAT, "max_tokens": 1}
    while not stop.is_set():
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                url + "/v1/chat/completions",
                json=fast,
                headers={"authorization": f"Bearer {customer.secret}"},
                timeout=5,
            )


def _leased(customer: Customer) -> tuple[int, int]:
    """The wallet's leased credit, and the sum of its credit lease rows."""
    wallet = customer.wallet()
    rows = CreditLease.objects.filter(wallet=wallet).aggregate(total=Sum("amount"))["total"]
    return wallet.leased, rows or 0


def _books(customer: Customer) -> None:
    wallet = customer.wallet()
    ledger = LedgerEntry.objects.filter(wallet=wallet).aggregate(total=Sum("amount"))["total"]
    assert wallet.balance == ledger
    assert wallet.held == (
        Hold.objects.filter(wallet=wallet).aggregate(total=Sum("amount"))["total"] or 0
    )
    assert wallet.leased == _leased(customer)[1]
    assert wallet.balance + wallet.credit_limit >= wallet.held + wallet.leased


def test_a_busy_wallet_s_requests_are_admitted_from_its_lease(ready: Customer) -> None:
    client = ready.openai()
    first = client.chat.completions.with_raw_response.create(**CHAT)
    # Held the usual way: its balance is known.
    assert BALANCE_HEADER in first.headers
    # ...and it asked for a slice of the wallet (10 USD: an eighth would be 1.25).
    wait_for(lambda: _leased(ready) == (SLICE, SLICE))
    wait_for(lambda: RequestLog.objects.count() == 1)  # settled
    before = ready.balance()
    answers = [client.chat.completions.with_raw_response.create(**CHAT) for _ in range(20)]
    # Admitted in process: the balance after them is not known when they answer.
    assert all(BALANCE_HEADER not in a.headers for a in answers)
    wait_for(lambda: RequestLog.objects.count() == 21)
    costs = [int(float(a.headers["x-tokenhub-cost"]) * 1_000_000) for a in answers]
    charges = LedgerEntry.objects.filter(kind="charge").exclude(
        source_id=first.headers["x-request-id"]
    )
    assert sorted(-c for c in charges.values_list("amount", flat=True)) == sorted(costs)
    assert ready.balance() == before - sum(costs)
    wallet = ready.wallet()
    # The wallet's free credit funded each hold: the slice is whole, nothing is held.
    assert (wallet.held, wallet.leased) == (0, SLICE)
    assert ApiKey.objects.get(pk=ready.key.pk).held == 0
    assert not Hold.objects.exists()
    _books(ready)


def test_requests_are_held_the_usual_way_while_writes_are_backed_up(
    ready: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from billing import credit_leases

    client = ready.openai()
    client.chat.completions.create(**CHAT)
    wait_for(lambda: _leased(ready)[0] == SLICE)
    # As if 128 holds or settlements were waiting: admitting costs no round trip, so
    # this is what makes requests wait for the database again.
    monkeypatch.setattr(credit_leases, "BACKLOG", 0)
    held = client.chat.completions.with_raw_response.create(**CHAT)
    assert BALANCE_HEADER in held.headers
    monkeypatch.undo()
    admitted = client.chat.completions.with_raw_response.create(**CHAT)
    assert BALANCE_HEADER not in admitted.headers
    wait_for(lambda: RequestLog.objects.count() == 3 and not Hold.objects.exists())
    _books(ready)


def test_holds_written_behind_cover_the_requests_in_flight(ready: Customer, fake) -> None:
    ready.openai().chat.completions.create(**CHAT)
    wait_for(lambda: _leased(ready)[0] == SLICE)
    fake.configure(latency=1.0)
    with ThreadPoolExecutor(max_workers=4) as pool:
        calls = [pool.submit(_post, ready.relay.url, ready) for _ in range(4)]
        # Each request in flight has its hold, written within the settlement window.
        wait_for(lambda: Hold.objects.count() == 4)
        holds = list(Hold.objects.values_list("amount", flat=True))
        wallet = ready.wallet()
        assert wallet.held == sum(holds) > 0
        assert ApiKey.objects.get(pk=ready.key.pk).held == sum(holds)
        _books(ready)
        answers = [c.result() for c in calls]
    assert [a.status_code for a in answers] == [200] * 4
    assert all(BALANCE_HEADER not in a.headers for a in answers)
    wait_for(lambda: RequestLog.objects.count() == 5 and not Hold.objects.exists())
    assert ready.wallet().held == 0
    _books(ready)


def test_a_lease_never_funds_more_than_the_wallet_has(ready: Customer, fake) -> None:
    # 10,000 micro-USD a request, held in full: 1 USD covers exactly 100 requests. The
    # slice (an eighth of what is free) admits a dozen at a time with no round trip.
    price_set(model="gpt-4o-mini", input_per_1m=0, output_per_1m=0, per_request=10_000)
    Wallet.objects.filter(organization=ready.org).update(balance=0)
    LedgerEntry.objects.all().delete()
    wallet_credit(
        organization=ready.org, amount=1_000_000, kind="adjust", source_type="t", source_id="1"
    )
    fake.configure(latency=0.02)
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = [r.status_code for r in pool.map(lambda _: _post(ready.relay.url, ready),
                                                    range(150))]  # fmt: skip
    assert statuses.count(200) == 100
    assert statuses.count(402) == 50
    assert len(fake.requests) == 100  # no request the wallet could not fund went upstream
    wait_for(lambda: RequestLog.objects.count() == 150 and not Hold.objects.exists())
    wallet = ready.wallet()
    assert (wallet.balance, wallet.held, wallet.leased) == (0, 0, 0)
    assert LedgerEntry.objects.filter(kind="charge").count() == 100
    _books(ready)


def test_a_hold_whose_slice_was_taken_back_is_logged_and_not_charged(ready: Customer) -> None:
    client = ready.openai()
    client.chat.completions.create(**CHAT)
    wait_for(lambda: _leased(ready)[0] == SLICE and RequestLog.objects.exists())
    # The sweep gives the slice back (as it would for a server that stalled past its
    # lease), and the balance is spent elsewhere: the server still thinks it has it.
    from billing.leases import credit_leases_end

    lease_ids = list(CreditLease.objects.values_list("lease_id", flat=True))
    assert credit_leases_end(lease_ids=lease_ids) == SLICE
    spent = ready.balance()
    wallet_credit(
        organization=ready.org, amount=-spent, kind="adjust", source_type="t", source_id="spend"
    )
    admitted = client.chat.completions.with_raw_response.create(**CHAT)
    reference = admitted.headers["x-request-id"]
    wait_for(lambda: RequestLog.objects.filter(request_id=reference).exists())
    log = RequestLog.objects.get(request_id=reference)
    assert (log.status_code, log.cost) == (200, 0)  # served, but nothing held: not charged
    assert UncollectedUsage.objects.filter(reference=reference).exists()
    assert not LedgerEntry.objects.filter(kind="charge", source_id=reference).exists()
    wallet = ready.wallet()
    assert (wallet.balance, wallet.held, wallet.leased) == (0, 0, 0)
    # The slice is dropped: the next request is held the usual way, and refused.
    refused = _post(ready.relay.url, ready)
    assert refused.status_code == 402
    _books(ready)


def test_a_hold_whose_slice_was_taken_back_is_funded_by_free_credit(ready: Customer) -> None:
    client = ready.openai()
    client.chat.completions.create(**CHAT)
    wait_for(lambda: _leased(ready)[0] == SLICE and RequestLog.objects.exists())
    from billing.leases import credit_leases_end

    credit_leases_end(lease_ids=list(CreditLease.objects.values_list("lease_id", flat=True)))
    before = ready.balance()
    admitted = client.chat.completions.with_raw_response.create(**CHAT)
    assert BALANCE_HEADER not in admitted.headers  # admitted from the slice it still counts on
    reference = admitted.headers["x-request-id"]
    wait_for(lambda: RequestLog.objects.filter(request_id=reference).exists())
    charged = int(float(admitted.headers["x-tokenhub-cost"]) * 1_000_000)
    assert charged > 0
    assert ready.balance() == before - charged  # its hold came from the free credit
    assert not UncollectedUsage.objects.exists()
    # The slice is dropped: the next request is held the usual way (and asks for a new one).
    after = client.chat.completions.with_raw_response.create(**CHAT)
    assert BALANCE_HEADER in after.headers
    _books(ready)


def test_an_idle_slice_goes_back(ready: Customer, processes) -> None:
    url = _serve(processes, **FAST)
    assert _post(url, ready).status_code == 200
    wait_for(lambda: _leased(ready)[0] == SLICE)
    # Unused for a whole keeper tick (0.5 s here): given back.
    wait_for(lambda: _leased(ready) == (0, 0))
    assert not CreditLease.objects.exists()
    _books(ready)


def test_a_server_shut_down_gives_its_slices_back(ready: Customer, processes) -> None:
    url = _serve(processes, LEASE_RENEW_SECONDS="60")
    for _ in range(3):
        assert _post(url, ready).status_code == 200
    wait_for(lambda: _leased(ready)[0] == SLICE)
    assert _post(url, ready).headers.get(BALANCE_HEADER) is None  # admitted from it
    processes[0].send_signal(signal.SIGTERM)
    assert processes[0].wait(timeout=30) in (0, -signal.SIGTERM)
    assert _leased(ready) == (0, 0)
    assert RequestLog.objects.count() == 4 and not Hold.objects.exists()
    _books(ready)


def test_a_killed_server_s_streams_are_charged_and_its_slice_goes_back(
    ready: Customer, fake, processes
) -> None:
    url = _serve(processes, **FAST)
    assert _post(url, ready).status_code == 200
    wait_for(lambda: _leased(ready)[0] == SLICE)
    fake.configure(stream_chunks=200, chunk_delay=0.05, reply_text=REPLY)
    port = int(url.rsplit(":", 1)[1])
    body = {**CHAT, "stream": True}
    streams = [RawStream(port, "/v1/chat/completions", body, ready.secret) for _ in range(3)]
    # A busy server: other requests keep its slice in use until it is killed.
    killed = threading.Event()
    busy = threading.Thread(target=_keep_busy, args=(url, ready, killed))
    busy.start()
    for stream in streams:
        stream.read_until(_events(5))
    references = [s.request_id for s in streams]
    assert all(b"x-tokenhub-balance" not in s.received.lower() for s in streams)
    wait_for(lambda: all((_journal(r) or {"cost": 0})["cost"] > 0 for r in references))
    wait_for(lambda: Hold.objects.filter(reference__in=references).count() == 3)  # behind them

    processes[0].kill()  # SIGKILL: no drain, no settlement, no slice given back
    processes[0].wait()
    killed.set()
    busy.join()
    for stream in streams:
        stream.read_to_end()
        stream.close()
    assert _leased(ready)[0] > 0

    _serve(processes, **FAST)  # a successor sweeps
    wait_for(lambda: not Hold.objects.exists() and _leased(ready) == (0, 0), timeout=30)
    for reference in references:
        log = RequestLog.objects.get(request_id=reference)
        assert (log.status_code, log.error_code) == (500, "interrupted")
        assert log.cost > 0
        assert LedgerEntry.objects.get(kind="charge", source_id=reference).amount == -log.cost
    _books(ready)
