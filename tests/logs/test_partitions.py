"""The request log partitioned by day on PostgreSQL: partitions ahead, the default
partition's rows moved into a new day, retention by dropping rolled-up days, reads across
partitions, and one log row and one charge per request whichever paths settle it."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import AsyncClient
from django.utils import timezone

from accounts.models import ApiKey, Organization, User
from accounts.selectors import organization_personal
from accounts.services import key_create, user_create
from billing import fastledger
from billing.holds import Settlement, hold_place, hold_settle, holds_sweep
from billing.journal import progress_snapshot
from billing.models import Hold, LedgerEntry, Wallet
from billing.services import wallet_credit
from logs.models import DailyUsage, RequestLog, RolledUpDay
from logs.partitions import (
    DEFAULT_PARTITION,
    partition_name,
    request_log_partitions,
    request_log_partitions_drop,
    request_log_partitions_ensure,
)
from logs.records import RequestRecord
from logs.services import daily_usage_rollup
from logs.tasks import purge_request_logs

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
URL = "/dashboard/logs/"
DAY = dt.date(2031, 5, 5)  # far from today: its partition is the test's own


@pytest.fixture(autouse=True)
def _postgres_only() -> Iterator[None]:
    if connection.vendor != "postgresql":
        pytest.skip("the request log is partitioned on PostgreSQL only")
    before = {p.name for p in request_log_partitions()}
    yield
    # Partitions are DDL, not rows: the flush between tests keeps them; drop the test's own.
    with connection.cursor() as cursor:
        for part in request_log_partitions():
            if part.name not in before:
                cursor.execute(f'DROP TABLE "{part.name}"')


def _at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def _log(request_id: str, created_at: dt.datetime, **fields: Any) -> RequestLog:
    values: dict[str, Any] = {
        "request_id": request_id,
        "organization_id": 1,
        "endpoint": "chat/completions",
        "model": "m",
        "status_code": 200,
        "created_at": created_at,
        **fields,
    }
    return RequestLog.objects.create(**values)


def _partition_of(request_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM logs_requestlog WHERE request_id = %s",
            [request_id],
        )
        return str(cursor.fetchone()[0])


def _days() -> set[dt.date]:
    return {p.day for p in request_log_partitions()}


def test_it_creates_the_partitions_of_today_and_the_days_ahead_once() -> None:
    created = request_log_partitions_ensure(today=DAY, ahead=3)

    assert created == [DAY + dt.timedelta(days=n) for n in range(4)]
    assert request_log_partitions_ensure(today=DAY, ahead=3) == []
    assert set(created) <= _days()
    today = timezone.now().astimezone(dt.UTC).date()
    assert today in _days()  # created when the table was partitioned (migration)


def test_it_moves_a_days_rows_from_the_default_partition_into_its_new_partition() -> None:
    _log("early", _at(DAY, 9))
    _log("next_day", _at(DAY + dt.timedelta(days=1), 9))
    assert _partition_of("early") == DEFAULT_PARTITION

    request_log_partitions_ensure(today=DAY, ahead=0)

    assert _partition_of("early") == partition_name(DAY)
    assert _partition_of("next_day") == DEFAULT_PARTITION
    assert RequestLog.objects.filter(request_id="early").count() == 1
    _log("late", _at(DAY, 23))  # later inserts of that day go to its partition
    assert _partition_of("late") == partition_name(DAY)


def _old_days() -> tuple[dt.date, dt.date, dt.datetime]:
    cutoff = timezone.now() - dt.timedelta(days=settings.LOG_RETENTION_DAYS)
    first = cutoff.astimezone(dt.UTC).date() - dt.timedelta(days=3)
    return first, first + dt.timedelta(days=1), cutoff


def test_retention_drops_rolled_up_days_and_keeps_their_usage_and_recent_rows() -> None:
    old, older_next, _ = _old_days()
    request_log_partitions_ensure(today=old, ahead=1)
    _log("old_a", _at(old), organization_id=7, cost=40)
    _log("old_b", _at(old, 13), organization_id=7, cost=2)
    _log("old_next", _at(older_next), organization_id=7, cost=5)
    _log("recent", timezone.now())

    purge_request_logs()

    assert old not in _days() and older_next not in _days()  # dropped whole
    assert list(RequestLog.objects.values_list("request_id", flat=True)) == ["recent"]
    usage = DailyUsage.objects.get(day=old, organization_id=7)
    assert (usage.requests, usage.cost) == (2, 42)  # rolled up before the drop
    assert DailyUsage.objects.get(day=older_next, organization_id=7).cost == 5
    assert timezone.now().astimezone(dt.UTC).date() in _days()


def test_a_day_is_not_dropped_before_it_is_rolled_up() -> None:
    old, _, _ = _old_days()
    request_log_partitions_ensure(today=old, ahead=0)
    _log("unsummed", _at(old), organization_id=8, cost=9)
    before = old + dt.timedelta(days=1)

    assert request_log_partitions_drop(before=before) == ([], 0)
    assert old in _days() and RequestLog.objects.filter(request_id="unsummed").exists()

    daily_usage_rollup(day=old)
    assert request_log_partitions_drop(before=before) == ([old], 1)
    assert old not in _days()
    assert DailyUsage.objects.get(day=old, organization_id=8).cost == 9
    assert RolledUpDay.objects.filter(day=old).exists()


def test_an_empty_old_partition_is_dropped_without_a_rollup() -> None:
    old, _, _ = _old_days()
    request_log_partitions_ensure(today=old, ahead=0)

    assert request_log_partitions_drop(before=old + dt.timedelta(days=1)) == ([old], 0)


def test_a_day_detached_but_not_dropped_is_dropped_by_the_next_run() -> None:
    old, _, _ = _old_days()
    request_log_partitions_ensure(today=old, ahead=0)
    _log("summed", _at(old), organization_id=9, cost=4)
    daily_usage_rollup(day=old)
    # An earlier run detached the day, then failed (or was killed) before its DROP.
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "{RequestLog._meta.db_table}" DETACH PARTITION'
                       f' "{partition_name(old)}"')  # fmt: skip
    assert old not in _days()

    assert request_log_partitions_drop(before=old + dt.timedelta(days=1)) == ([old], 1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [f'"{partition_name(old)}"'])
        assert cursor.fetchone() == (None,)
    assert DailyUsage.objects.get(day=old, organization_id=9).cost == 4
    # A day not yet past the cutoff is left alone, attached or not.
    assert request_log_partitions_drop(before=old) == ([], 0)


async def test_the_explorer_and_the_csv_read_across_partitions(
    async_client: AsyncClient, org: Organization, owner: User
) -> None:
    now = timezone.now()

    @sync_to_async
    def seed() -> set[str]:
        yesterday = now - dt.timedelta(days=1)
        request_log_partitions_ensure(today=yesterday.astimezone(dt.UTC).date(), ahead=1)
        for n, at in enumerate(
            (now - dt.timedelta(minutes=1), yesterday, now - dt.timedelta(days=3))
        ):
            _log(f"req_{n}", at, organization_id=org.pk)
        return {_partition_of(f"req_{n}") for n in range(3)}

    assert len(await seed()) >= 2
    await async_client.aforce_login(owner)
    since = (now - dt.timedelta(days=5)).strftime("%Y-%m-%dT%H:%M")

    page = (await async_client.get(URL, {"since": since})).content.decode()
    export = await async_client.get(URL, {"since": since, "format": "csv"})
    assert isinstance(export, StreamingHttpResponse)
    chunks = export.streaming_content
    assert isinstance(chunks, AsyncIterator)
    body = b"".join([chunk async for chunk in chunks]).decode()

    assert all(f"req_{n}" in page for n in range(3))
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["request_id"] for r in rows] == ["req_0", "req_1", "req_2"]
    await sync_to_async(lambda: connection.close())()  # the view thread's connection


# --- one log row and one charge per request, whichever paths settle it --------------------


@pytest.fixture
def funded() -> tuple[Wallet, ApiKey]:
    user = user_create(email="partitions@example.com")
    org = organization_personal(user=user)
    wallet_credit(organization=org, amount=1_000_000, kind="adjust", source_type="t", source_id="1")
    key, _ = key_create(organization=org, created_by=user)
    return Wallet.objects.get(organization=org), key


def _record(wallet: Wallet, key: ApiKey, at: dt.datetime) -> RequestRecord:
    return RequestRecord(at, wallet.organization_id, key.pk, "chat/completions", model="m")


def _place_orphan(wallet: Wallet, key: ApiKey, ref: str, snapshot_at: dt.datetime) -> None:
    """A hold whose process died after journaling a snapshot taken at SNAPSHOT_AT."""
    hold_place(
        reference=ref, wallet_id=wallet.pk, api_key_id=key.pk, amount=10_000,
        ttl_seconds=3600, lease="ls_dead",
        progress=progress_snapshot(cost=4_000, record=_record(wallet, key, snapshot_at)),
    )  # fmt: skip


def _batch_settle(wallet: Wallet, key: ApiKey, ref: str, at: dt.datetime) -> bool:
    settlement = Settlement(ref, wallet.pk, key.pk, 4_000, _record(wallet, key, at))

    async def go() -> bool:
        try:
            return await fastledger.ledger().settle(settlement)
        finally:
            await fastledger.close()

    return asyncio.run(go())


def _charged_once(wallet: Wallet, key: ApiKey, ref: str) -> None:
    assert RequestLog.objects.filter(request_id=ref).count() == 1
    charges = LedgerEntry.objects.filter(source_type="request", source_id=ref)
    assert list(charges.values_list("amount", flat=True)) == [-4_000]
    wallet.refresh_from_db()
    key.refresh_from_db()
    assert (wallet.balance, wallet.held, key.held, key.spent) == (996_000, 0, 0, 4_000)
    assert not Hold.objects.filter(reference=ref).exists()


def test_the_sweep_then_the_batch_settle_a_request_once(funded) -> None:
    wallet, key = funded
    started = timezone.now()
    _place_orphan(wallet, key, "req_twice", started)
    later = timezone.now() + dt.timedelta(seconds=settings.LEASE_TTL_SECONDS + 1)

    assert holds_sweep(now=later) == 1  # from the snapshot: created_at = started
    # The process was only stalled: its own settlement arrives, with a later created_at.
    assert _batch_settle(wallet, key, "req_twice", started + dt.timedelta(seconds=30)) is False

    _charged_once(wallet, key, "req_twice")
    assert RequestLog.objects.get(request_id="req_twice").created_at == started


def test_the_batch_then_the_orm_settle_a_request_once(funded) -> None:
    wallet, key = funded
    started = timezone.now()
    _place_orphan(wallet, key, "req_again", started)
    settled_at = started + dt.timedelta(seconds=30)

    assert _batch_settle(wallet, key, "req_again", settled_at) is True
    # The sweep's settlement from the older snapshot, a moment too late.
    late = Settlement("req_again", wallet.pk, key.pk, 4_000, _record(wallet, key, started))
    assert hold_settle(late) is False
    assert _batch_settle(wallet, key, "req_again", settled_at) is False  # a retried batch

    _charged_once(wallet, key, "req_again")
    assert RequestLog.objects.get(request_id="req_again").created_at == settled_at


def test_both_ledgers_let_a_stale_hold_go_when_its_request_is_logged(funded) -> None:
    """A hold whose request already has its log row is released, never charged: by the
    ORM (hold_settle) as by the batch statement."""
    wallet, key = funded
    started = timezone.now()
    for ref in ("req_stale_orm", "req_stale_batch"):
        RequestLog.objects.create(
            request_id=ref, created_at=started, organization_id=wallet.organization_id,
            endpoint="chat/completions", model="m", status_code=200, cost=4_000,
        )  # fmt: skip
        hold_place(reference=ref, wallet_id=wallet.pk, api_key_id=key.pk, amount=10_000,
                   ttl_seconds=60)  # fmt: skip
    stale = Settlement("req_stale_orm", wallet.pk, key.pk, 4_000, _record(wallet, key, started))
    assert hold_settle(stale) is False
    assert _batch_settle(wallet, key, "req_stale_batch", started) is False

    wallet.refresh_from_db()
    key.refresh_from_db()
    assert (wallet.balance, wallet.held, key.held, key.spent) == (1_000_000, 0, 0, 0)
    assert not Hold.objects.exists() and not LedgerEntry.objects.filter(kind="charge").exists()
    assert RequestLog.objects.filter(request_id__startswith="req_stale").count() == 2


def test_a_sweep_without_a_snapshot_time_logs_the_holds_time_not_now(funded) -> None:
    wallet, key = funded
    snapshot = progress_snapshot(cost=4_000, record=_record(wallet, key, timezone.now()))
    del snapshot["log"]["created_at"]
    hold_place(
        reference="req_undated", wallet_id=wallet.pk, api_key_id=key.pk, amount=10_000,
        ttl_seconds=3600, lease="ls_dead", progress=snapshot,
    )  # fmt: skip
    placed_at = Hold.objects.get(reference="req_undated").created_at

    holds_sweep(now=timezone.now() + dt.timedelta(seconds=settings.LEASE_TTL_SECONDS + 1))

    assert RequestLog.objects.get(request_id="req_undated").created_at == placed_at
