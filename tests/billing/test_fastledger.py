"""The PostgreSQL fast ledger path keeps the same guarantees as billing.holds."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from django.db import connection
from django.utils import timezone

from accounts.selectors import organization_personal
from accounts.services import key_create, user_create
from billing import fastledger
from billing.exceptions import InsufficientBalance
from billing.holds import KeyLimitExceeded, Settlement
from billing.models import Hold, LedgerEntry, Wallet
from billing.pg_functions import SETTLE_BATCH
from billing.services import wallet_credit
from logs.models import RequestLog
from logs.records import RequestRecord

pytestmark = pytest.mark.django_db(transaction=True)
T = TypeVar("T")


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the fast ledger is PostgreSQL's")


@pytest.fixture
def funded():
    user = user_create(email="fast@example.com")
    org = organization_personal(user=user)
    wallet_credit(organization=org, amount=1_000, kind="adjust", source_type="t", source_id="1")
    key, _ = key_create(organization=org, created_by=user)
    return org, Wallet.objects.get(organization=org), key


def _log(org_id: int) -> RequestRecord:
    return RequestRecord(timezone.now(), org_id, None, "chat/completions", model="m")


async def _run(coro_factory: Callable[[fastledger.FastLedger], Awaitable[T]]) -> T:
    """Run against this loop's ledger, closing it (and its pool) afterwards."""
    try:
        return await coro_factory(fastledger.ledger())
    finally:
        await fastledger.close()


def test_it_places_at_most_what_the_balance_covers_concurrently(funded) -> None:
    _, wallet, key = funded

    async def go(ledger: fastledger.FastLedger) -> list[bool]:
        async def one(i: int) -> bool:
            try:
                await ledger.place(
                    reference=f"r{i}", wallet_id=wallet.pk, api_key_id=key.pk, amount=300, ttl=60
                )
                return True
            except InsufficientBalance:
                return False

        return list(await asyncio.gather(*(one(i) for i in range(10))))

    placed = asyncio.run(_run(go))
    assert placed.count(True) == 3
    wallet.refresh_from_db()
    assert wallet.held == 900 and Hold.objects.count() == 3
    key.refresh_from_db()
    assert key.held == 900


def test_it_refuses_a_hold_over_the_key_limit_without_touching_the_wallet(funded) -> None:
    org, wallet, _ = funded
    limited, _ = key_create(organization=org, created_by=None, spend_limit=100)

    async def go(ledger: fastledger.FastLedger) -> None:
        await ledger.place(
            reference="a", wallet_id=wallet.pk, api_key_id=limited.pk, amount=150, ttl=60
        )

    with pytest.raises(KeyLimitExceeded):
        asyncio.run(_run(go))
    wallet.refresh_from_db()
    assert wallet.held == 0 and not Hold.objects.exists()


def test_it_settles_each_request_once_in_batches(funded) -> None:
    org, wallet, key = funded

    async def go(ledger: fastledger.FastLedger) -> list[bool]:
        for i in range(5):
            await ledger.place(
                reference=f"s{i}", wallet_id=wallet.pk, api_key_id=key.pk, amount=100, ttl=60
            )
        # Every request settled three times, concurrently.
        settlements = [
            Settlement(
                reference=f"s{i % 5}",
                wallet_id=wallet.pk,
                api_key_id=key.pk,
                cost=40,
                record=_log(org.pk),
            )
            for i in range(15)
        ]
        return list(await asyncio.gather(*(ledger.settle(s) for s in settlements)))

    results = asyncio.run(_run(go))
    assert results.count(True) == 5
    wallet.refresh_from_db()
    assert wallet.balance == 1_000 - 5 * 40 and wallet.held == 0
    assert RequestLog.objects.count() == 5
    charges = LedgerEntry.objects.filter(kind="charge").order_by("pk")
    assert [e.amount for e in charges] == [-40] * 5
    assert [e.balance_after for e in charges] == [960, 920, 880, 840, 800]
    assert sum(LedgerEntry.objects.values_list("amount", flat=True)) == wallet.balance
    key.refresh_from_db()
    assert (key.spent, key.held) == (200, 0)
    assert not Hold.objects.exists()


def test_a_settlement_reads_no_partition_of_the_request_log(funded) -> None:
    """The batch statement names the log only as its INSERT's target. Reading it, its
    prepared plan locked and opened every daily partition on every execution, and as NOT
    EXISTS, PostgreSQL hashed a whole day's partition while its statistics lagged."""
    org, wallet, key = funded
    RequestLog.objects.bulk_create(
        RequestLog(
            request_id=f"old{n}",
            created_at=timezone.now(),
            organization_id=org.pk,
            endpoint="chat/completions",
            model="m",
            status_code=200,
        )
        for n in range(3_000)
    )  # never analyzed: the planner sees only the partition's size
    held = Settlement(
        reference="held", wallet_id=wallet.pk, api_key_id=key.pk, cost=40, record=_log(org.pk)
    )
    gone = Settlement(
        reference="gone", wallet_id=wallet.pk, api_key_id=key.pk, cost=40, record=_log(org.pk)
    )

    async def go(ledger: fastledger.FastLedger) -> str:
        await ledger.place(
            reference="held", wallet_id=wallet.pk, api_key_id=key.pk, amount=100, ttl=60
        )
        async with ledger.pool.connection() as conn:
            cur = await conn.execute(
                "EXPLAIN " + SETTLE_BATCH, fastledger.batch_parameters([held, gone])
            )
            return "\n".join(row[0] for row in await cur.fetchall())

    plan = asyncio.run(_run(go))
    assert "Insert on logs_requestlog" in plan
    assert "logs_requestlog_p" not in plan and "Scan on logs_requestlog" not in plan, plan


def test_holds_asked_for_together_share_one_round_trip_each_with_its_own_outcome(funded) -> None:
    org, wallet, key = funded
    limited, _ = key_create(organization=org, created_by=None, spend_limit=100)
    other = organization_personal(user=user_create(email="other@example.com"))
    poor = Wallet.objects.get(organization=other)  # no credit at all
    asks = [  # (reference, wallet, key, amount), in the order the callers ask
        ("k-over", wallet.pk, limited.pk, 150),
        ("poor", poor.pk, None, 10),
        ("ok-1", wallet.pk, key.pk, 400),
        ("k-ok", wallet.pk, limited.pk, 100),
        ("ok-2", wallet.pk, key.pk, 400),
        ("low", wallet.pk, key.pk, 400),  # 1,000 - 400 - 100 - 400 = 100 left
    ]
    batches: list[int] = []

    async def go(ledger: fastledger.FastLedger) -> list[object]:
        real = ledger._place_many

        async def counted(batch):  # the real round trip, counted
            batches.append(len(batch))
            return await real(batch)

        ledger._place_many = counted  # type: ignore[method-assign]

        async def one(ref: str, wallet_id: int, key_id: int | None, amount: int) -> object:
            try:
                placed = await ledger.place(
                    reference=ref, wallet_id=wallet_id, api_key_id=key_id, amount=amount, ttl=60
                )
            except (InsufficientBalance, KeyLimitExceeded) as exc:
                return type(exc)
            return placed.available

        return list(await asyncio.gather(*(one(*ask) for ask in asks)))

    outcomes = asyncio.run(_run(go))
    assert batches == [len(asks)]  # one round trip for all six
    # Each caller gets its own hold's outcome, in the order the wallet's lock saw them
    # (sorted by wallet, then key): ok-1 and ok-2 (key), then k-ok (limited key).
    assert outcomes[0] is KeyLimitExceeded and outcomes[1] is InsufficientBalance
    assert outcomes[5] is InsufficientBalance
    assert sorted(outcomes[n] for n in (2, 3, 4)) == [100, 200, 600]  # type: ignore[type-var]
    wallet.refresh_from_db()
    assert wallet.held == 900
    assert set(Hold.objects.values_list("reference", flat=True)) == {"ok-1", "k-ok", "ok-2"}
    limited.refresh_from_db()
    assert limited.held == 100


def test_a_hold_that_fails_in_a_batch_fails_alone(funded) -> None:
    _, wallet, key = funded

    async def go(ledger: fastledger.FastLedger) -> list[object]:
        async def one(ref: str) -> object:
            try:
                return (
                    await ledger.place(
                        reference=ref, wallet_id=wallet.pk, api_key_id=key.pk, amount=100, ttl=60
                    )
                ).funding
            except Exception as exc:
                return type(exc).__name__

        return list(await asyncio.gather(*(one(ref) for ref in ("a", "dup", "dup", "b"))))

    outcomes = asyncio.run(_run(go))
    # The batch broke on the duplicate reference; placed one by one, only it failed.
    assert outcomes.count("balance") == 3 and outcomes.count("UniqueViolation") == 1
    wallet.refresh_from_db()
    assert wallet.held == 300 and Hold.objects.count() == 3


def test_a_request_logged_before_is_not_charged_again_and_its_stale_hold_is_let_go(
    funded,
) -> None:
    org, wallet, key = funded
    earlier = _log(org.pk)
    RequestLog.objects.create(
        request_id="twice",
        created_at=earlier.created_at,
        organization_id=org.pk,
        endpoint="chat/completions",
        model="m",
        status_code=200,
        cost=40,
    )
    later = earlier.replace(created_at=earlier.created_at + dt.timedelta(hours=1))

    async def go(ledger: fastledger.FastLedger) -> list[bool]:
        # A hold whose request is logged already (stale), and a settlement without a
        # hold for a request logged at another time (say, by the sweep).
        await ledger.place(
            reference="twice", wallet_id=wallet.pk, api_key_id=key.pk, amount=100, ttl=60
        )
        return [
            await ledger.settle(Settlement("twice", wallet.pk, key.pk, 40, record))
            for record in (earlier, later)
        ]

    assert asyncio.run(_run(go)) == [False, False]
    assert RequestLog.objects.filter(request_id="twice").count() == 1
    wallet.refresh_from_db()
    key.refresh_from_db()
    assert (wallet.balance, wallet.held) == (1_000, 0)  # released, not charged
    assert (key.spent, key.held) == (0, 0)
    assert not Hold.objects.exists()
    assert not LedgerEntry.objects.filter(kind="charge").exists()
