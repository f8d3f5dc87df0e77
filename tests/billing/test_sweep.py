"""The hold sweep: what a dead process left is settled from its journal or released, once;
what a live process holds is left alone."""

from __future__ import annotations

import datetime as dt
import threading

import orjson
import pytest
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from accounts.models import ApiKey
from accounts.selectors import organization_personal
from accounts.services import key_create, user_create
from billing.holds import hold_place, holds_sweep
from billing.journal import journal_key, progress_snapshot
from billing.leases import lease_end, lease_renew
from billing.models import Hold, Lease, LedgerEntry, UncollectedUsage, Wallet
from billing.services import wallet_credit
from logs.models import RequestLog
from logs.records import RequestRecord

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]
TTL = settings.LEASE_TTL_SECONDS


@pytest.fixture
def funded() -> tuple[Wallet, ApiKey]:
    user = user_create(email="sweep@example.com")
    org = organization_personal(user=user)
    wallet_credit(organization=org, amount=1_000_000, kind="adjust", source_type="t", source_id="1")
    key, _ = key_create(organization=org, created_by=user)
    return Wallet.objects.get(organization=org), key


def _snapshot(wallet: Wallet, key: ApiKey, cost: int, completion: int = 0) -> dict[str, object]:
    record = RequestRecord(
        timezone.now(), wallet.organization_id, key.pk, "chat/completions",
        model="gpt-4o-mini", stream=True, completion_tokens=completion,
    )  # fmt: skip
    return progress_snapshot(cost=cost, record=record)


def _place(
    wallet: Wallet, key: ApiKey, ref: str, *, lease: str, progress: dict[str, object] | None = None
) -> None:
    hold_place(reference=ref, wallet_id=wallet.pk, api_key_id=key.pk, amount=10_000,
               ttl_seconds=3600, lease=lease, progress=progress)  # fmt: skip


def _later(seconds: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(seconds=seconds)


def _books_balanced(wallet: Wallet, key: ApiKey) -> None:
    wallet.refresh_from_db()
    key.refresh_from_db()
    ledger = sum(LedgerEntry.objects.filter(wallet=wallet).values_list("amount", flat=True))
    assert wallet.balance == ledger
    assert wallet.held == sum(Hold.objects.filter(wallet=wallet).values_list("amount", flat=True))
    assert key.held == sum(Hold.objects.filter(api_key=key).values_list("amount", flat=True))


def test_it_leaves_the_holds_of_a_live_lease_alone(funded) -> None:
    wallet, key = funded
    lease_renew(lease_id="ls_live", ttl_seconds=TTL)
    _place(wallet, key, "req_live", lease="ls_live", progress=_snapshot(wallet, key, 500))
    Hold.objects.update(created_at=timezone.now() - dt.timedelta(seconds=TTL * 10))
    assert holds_sweep() == 0
    assert Hold.objects.filter(reference="req_live").exists()


def test_it_settles_the_holds_of_a_lapsed_lease_from_their_snapshot(funded) -> None:
    wallet, key = funded
    lease_renew(lease_id="ls_dead", ttl_seconds=TTL)
    _place(wallet, key, "req_cut", lease="ls_dead", progress=_snapshot(wallet, key, 700, 42))
    _place(wallet, key, "req_new", lease="ls_dead")  # no snapshot: released, not charged

    assert holds_sweep(now=_later(TTL / 2)) == 0  # the lease still runs
    assert holds_sweep(now=_later(TTL * 2 + 1)) == 2

    log = RequestLog.objects.get(request_id="req_cut")
    assert (log.status_code, log.error_code) == (500, "interrupted")
    assert (log.cost, log.completion_tokens, log.model) == (700, 42, "gpt-4o-mini")
    charge = LedgerEntry.objects.get(kind="charge")
    assert (charge.amount, charge.source_id) == (-700, "req_cut")
    assert not RequestLog.objects.filter(request_id="req_new").exists()
    assert not Hold.objects.exists()
    wallet.refresh_from_db()
    assert wallet.balance == 1_000_000 - 700
    key.refresh_from_db()
    assert (key.spent, key.held) == (700, 0)
    _books_balanced(wallet, key)
    # Its holds all gone, the dead lease is removed.
    assert not Lease.objects.filter(id="ls_dead").exists()
    assert holds_sweep(now=_later(TTL * 2 + 1)) == 0  # once


def test_it_caps_a_snapshot_at_the_hold(funded) -> None:
    wallet, key = funded
    _place(wallet, key, "req_big", lease="ls_gone", progress=_snapshot(wallet, key, 50_000))
    assert holds_sweep(now=_later(TTL + 1)) == 1
    assert LedgerEntry.objects.get(kind="charge").amount == -10_000
    assert UncollectedUsage.objects.get(reference="req_big").amount == 40_000
    _books_balanced(wallet, key)


def test_a_missing_lease_is_given_its_time_to_be_renewed(funded) -> None:
    # A server recreates its lease row at the next renewal (say, after a database restore):
    # its young holds are not taken for a dead process's.
    wallet, key = funded
    _place(wallet, key, "req_young", lease="ls_unknown")
    assert holds_sweep() == 0
    assert holds_sweep(now=_later(TTL + 1)) == 1


def test_a_damaged_snapshot_is_released_rather_than_kept(funded) -> None:
    wallet, key = funded
    _place(wallet, key, "req_bad", lease="ls_gone", progress={"cost": 5, "log": {"model": None}})
    assert holds_sweep(now=_later(TTL + 1)) == 1
    assert not Hold.objects.exists()
    assert not LedgerEntry.objects.filter(kind="charge").exists()
    _books_balanced(wallet, key)


def test_media_holds_without_a_lease_only_expire(funded) -> None:
    wallet, key = funded
    _place(wallet, key, "vid_task", lease="")
    assert holds_sweep(now=_later(TTL * 100)) == 0
    assert holds_sweep(now=_later(3601)) == 1


def test_a_clean_shutdown_ends_its_lease(funded) -> None:
    lease_renew(lease_id="ls_bye", ttl_seconds=TTL)
    lease_renew(lease_id="ls_bye", ttl_seconds=TTL)  # renewing does not duplicate
    assert Lease.objects.filter(id="ls_bye").count() == 1
    lease_end(lease_id="ls_bye")
    # Only this lease: a live relay server of another test renews its own meanwhile.
    assert not Lease.objects.filter(id="ls_bye").exists()


def test_the_redis_journal_is_newer_than_the_hold_row(funded) -> None:
    if not settings.REDIS_URL:
        pytest.skip("the journal lives on the hold row without Redis")
    import redis

    wallet, key = funded
    _place(wallet, key, "req_j", lease="ls_gone", progress=_snapshot(wallet, key, 0))
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.set(journal_key("req_j"), orjson.dumps(_snapshot(wallet, key, 900, 77)))
    client.close()
    assert holds_sweep(now=_later(TTL + 1)) == 1
    log = RequestLog.objects.get(request_id="req_j")
    assert (log.cost, log.completion_tokens) == (900, 77)


def test_concurrent_sweeps_settle_each_hold_once(funded) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers: there is no race to lose")
    wallet, key = funded
    for n in range(20):
        _place(wallet, key, f"req_{n}", lease="ls_gone", progress=_snapshot(wallet, key, 100))
    later = _later(TTL + 1)
    results: list[int] = []
    start = threading.Barrier(4)

    def sweep() -> None:
        start.wait()
        try:
            results.append(holds_sweep(now=later))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 20
    assert LedgerEntry.objects.filter(kind="charge").count() == 20
    assert RequestLog.objects.count() == 20
    _books_balanced(wallet, key)
