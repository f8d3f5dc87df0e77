"""Money invariants 1 and 3 under real concurrency: PostgreSQL row locks, many connections.

Each thread has its own database connection, so these tests commit for real
(transaction=True) and close their connections before the test ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection
from django.db.models import Sum

from accounts.models import Organization, User
from billing.models import LedgerEntry, Wallet
from billing.services import wallet_credit

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 16
CREDITS_PER_THREAD = 20


@pytest.fixture(autouse=True)
def _needs_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row-lock concurrency is only meaningful on PostgreSQL")


def _run_together(work: Callable[[int], None], threads: int) -> None:
    """Run work(0..threads-1) in threads released at the same instant; re-raise any error."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait()
            work(n)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors


def _amount(thread: int, i: int) -> int:
    return 1_000 * (thread + 1) + i  # distinct, so a lost or doubled credit shows in the sum


def _assert_ledger_explains_balance(org: Organization) -> None:
    wallet = Wallet.objects.get(organization=org)
    entries = list(LedgerEntry.objects.filter(wallet=wallet).order_by("id"))
    assert wallet.balance == sum(e.amount for e in entries)
    running = 0
    for entry in entries:
        running += entry.amount
        assert entry.balance_after == running, entry


def test_it_keeps_balance_equal_to_the_ledger_under_concurrent_credits(
    org: Organization,
) -> None:
    def work(thread: int) -> None:
        for i in range(CREDITS_PER_THREAD):
            wallet_credit(
                organization=org,
                amount=_amount(thread, i),
                kind=LedgerEntry.Kind.TOPUP,
                source_type="test",
                source_id=f"{thread}-{i}",
            )
            # Replay a credit that the next thread makes at about the same moment.
            other = (thread + 1) % THREADS
            wallet_credit(
                organization=org,
                amount=_amount(other, i),
                kind=LedgerEntry.Kind.TOPUP,
                source_type="test",
                source_id=f"{other}-{i}",
            )

    _run_together(work, THREADS)

    expected = sum(_amount(t, i) for t in range(THREADS) for i in range(CREDITS_PER_THREAD))
    assert LedgerEntry.objects.count() == THREADS * CREDITS_PER_THREAD
    assert Wallet.objects.get(organization=org).balance == expected
    _assert_ledger_explains_balance(org)


def test_it_credits_a_raced_source_exactly_once(org: Organization) -> None:
    created: list[bool] = []

    def work(thread: int) -> None:
        _, was_created = wallet_credit(
            organization=org,
            amount=5_000_000,
            kind=LedgerEntry.Kind.TOPUP,
            source_type="stripe",
            source_id="evt_1",
        )
        created.append(was_created)

    _run_together(work, THREADS)

    assert sorted(created) == [False] * (THREADS - 1) + [True]
    assert Wallet.objects.get(organization=org).balance == 5_000_000
    _assert_ledger_explains_balance(org)


def test_it_credits_a_source_raced_across_two_orgs_exactly_once(
    org: Organization, stranger: User
) -> None:
    other = Organization.objects.get(membership__user=stranger)
    orgs = [org, other]

    def work(thread: int) -> None:
        wallet_credit(
            organization=orgs[thread % 2],
            amount=5_000_000,
            kind=LedgerEntry.Kind.TOPUP,
            source_type="stripe",
            source_id="evt_1",
        )

    _run_together(work, THREADS)

    total = Wallet.objects.filter(organization__in=orgs).aggregate(total=Sum("balance"))["total"]
    assert total == 5_000_000
    assert LedgerEntry.objects.count() == 1
    for o in orgs:
        _assert_ledger_explains_balance(o)
