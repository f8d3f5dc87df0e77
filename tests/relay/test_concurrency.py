"""Money invariants under concurrent requests (PostgreSQL: real row locks)."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connection
from django.utils import timezone

from billing.holds import hold_place, holds_sweep
from billing.models import Hold, LedgerEntry, Wallet
from billing.services import price_set
from logs.models import RequestLog
from logs.records import RequestRecord
from tests.relay.conftest import Customer, wait_for

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _ledger_sum(customer: Customer) -> int:
    return sum(
        LedgerEntry.objects.filter(wallet__organization=customer.org).values_list(
            "amount", flat=True
        )
    )


def test_it_serves_at_most_what_the_balance_covers_under_concurrency(ready: Customer, fake) -> None:
    # Exactly 1 USD a request, held in full up front: a balance of 5 USD covers 5.
    price_set(model="gpt-4o-mini", input_per_1m=0, output_per_1m=0, per_request=1_000_000)
    Wallet.objects.filter(organization=ready.org).update(balance=0)
    LedgerEntry.objects.all().delete()
    from billing.services import wallet_credit

    wallet_credit(
        organization=ready.org, amount=5_000_000, kind="adjust", source_type="t", source_id="5"
    )
    fake.configure(latency=0.3)  # every request is in flight at once

    def call(_: int) -> int:
        return httpx.post(
            ready.base_url + "/chat/completions",
            json=CHAT,
            headers={"authorization": f"Bearer {ready.secret}"},
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(call, range(12)))
    assert statuses.count(200) == 5
    assert statuses.count(402) == 7
    wait_for(lambda: RequestLog.objects.count() == 12)
    wallet = ready.wallet()
    assert wallet.balance == 0 and wallet.held == 0
    assert wallet.balance == _ledger_sum(ready)
    assert LedgerEntry.objects.filter(kind="charge").count() == 5
    assert len(fake.requests) == 5


@pytest.mark.django_db(transaction=True)
def test_it_settles_a_request_exactly_once(ready: Customer) -> None:
    from billing.holds import Settlement, hold_settle

    hold_place(
        reference="req_x",
        wallet_id=ready.wallet().pk,
        api_key_id=ready.key.pk,
        amount=500,
        ttl_seconds=60,
    )
    record = RequestRecord(timezone.now(), ready.org.pk, ready.key.pk, "chat/completions")
    settlement = Settlement(
        reference="req_x", wallet_id=ready.wallet().pk, api_key_id=ready.key.pk, cost=300,
        record=record,
    )  # fmt: skip
    before = ready.balance()

    def settle(_: int) -> bool:
        try:
            return hold_settle(settlement)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(settle, range(6)))
    assert results.count(True) == 1
    assert ready.balance() == before - 300
    assert ready.wallet().held == 0
    assert RequestLog.objects.filter(request_id="req_x").count() == 1
    assert ready.balance() == _ledger_sum(ready)


def test_it_sweeps_holds_left_by_a_dead_process(ready: Customer) -> None:
    wallet = ready.wallet()
    hold_place(
        reference="req_dead",
        wallet_id=wallet.pk,
        api_key_id=ready.key.pk,
        amount=700,
        ttl_seconds=60,
    )
    assert ready.wallet().held == 700
    assert holds_sweep() == 0  # not expired yet
    assert holds_sweep(now=timezone.now() + dt.timedelta(seconds=61)) == 1
    assert ready.wallet().held == 0 and not Hold.objects.exists()
    from accounts.models import ApiKey

    assert ApiKey.objects.get(pk=ready.key.pk).held == 0
    assert ready.balance() == _ledger_sum(ready)


def test_it_settles_through_the_fast_ledger_on_postgresql(ready: Customer) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the fast ledger is PostgreSQL's")
    ready.openai().chat.completions.create(**CHAT)
    wait_for(lambda: RequestLog.objects.exists())
    with connection.cursor() as cursor:
        # The relay's own psycopg pool (not Django's ORM connections) ran th_settle last.
        cursor.execute(
            "SELECT query FROM pg_stat_activity WHERE application_name = 'tokenhub-relay'"
        )
        queries = [row[0] for row in cursor.fetchall()]
    assert any("th_settle" in q or "th_hold_place" in q for q in queries)
