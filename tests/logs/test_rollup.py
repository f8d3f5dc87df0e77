"""The daily usage rollup and the retention purge that depends on it."""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections import defaultdict
from typing import Any

import pytest
from django.db import connection

from logs.models import DailyUsage, RequestLog, RolledUpDay
from logs.services import (
    ROLLUP_GRACE,
    daily_usage_rollup,
    daily_usage_rollup_due,
    request_logs_purge,
)
from logs.tasks import purge_request_logs

pytestmark = pytest.mark.embedded
DAY = dt.date(2026, 3, 14)
NOON = dt.datetime(2026, 3, 14, 12, tzinfo=dt.UTC)


def _log(n: int, *, at: dt.datetime, **fields: object) -> RequestLog:
    values: dict[str, object] = {
        "request_id": f"req_{n}",
        "organization_id": 1,
        "endpoint": "chat",
        "status_code": 200,
        "created_at": at,
        **fields,
    }
    return RequestLog.objects.create(**values)


@pytest.mark.django_db
def test_it_rolls_up_one_day_by_org_key_channel_and_model() -> None:
    rng = random.Random(7)
    expected: dict[tuple[int, int, int, str], list[int]] = defaultdict(lambda: [0] * 8)
    for n in range(200):
        org, key, channel = rng.choice([1, 2]), rng.choice([None, 10, 11]), rng.choice([5, 6])
        model = rng.choice(["gpt-4o", "claude"])
        status = rng.choice([200, 200, 429, 502])
        prompt, completion, cost = rng.randrange(1000), rng.randrange(500), rng.randrange(9999)
        plan_cost = rng.choice([0, rng.randrange(9999)])
        upstream = rng.choice([None, rng.randrange(9999)])  # None: no upstream served it
        # Spread over the day, plus rows either side of it that must not count.
        at = NOON + dt.timedelta(minutes=rng.randrange(-719, 719))
        _log(
            n,
            at=at,
            organization_id=org,
            api_key_id=key,
            channel_id=channel,
            model=model,
            status_code=status,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=cost,
            plan_cost=plan_cost,
            upstream_cost=upstream,
        )
        totals = expected[(org, key or 0, channel, model)]
        uncosted = int(upstream is None and (cost > 0 or plan_cost > 0))
        row = (1, int(status >= 400), prompt, completion, cost, plan_cost, upstream or 0, uncosted)
        for i, v in enumerate(row):
            totals[i] += v
    _log(900, at=NOON - dt.timedelta(hours=13), cost=1_000_000)  # the day before
    _log(901, at=NOON + dt.timedelta(hours=12), cost=1_000_000)  # midnight: the day after

    written = daily_usage_rollup(day=DAY)

    assert written == len(expected)
    got = {
        (u.organization_id, u.api_key_id, u.channel_id, u.model): [
            u.requests, u.errors, u.prompt_tokens, u.completion_tokens, u.cost, u.plan_cost,
            u.upstream_cost, u.uncosted_requests,
        ]
        for u in DailyUsage.objects.filter(day=DAY)
    }  # fmt: skip
    assert got == dict(expected)
    assert RolledUpDay.objects.get(day=DAY).source_rows == 200


@pytest.mark.django_db
def test_it_rolls_up_a_day_only_once() -> None:
    _log(1, at=NOON, cost=70)
    assert daily_usage_rollup(day=DAY) == 1
    _log(2, at=NOON, cost=30)  # a straggler after the rollup is not double counted either
    assert daily_usage_rollup(day=DAY) == 0
    assert DailyUsage.objects.get(day=DAY).cost == 70


@pytest.mark.django_db
def test_it_waits_for_the_grace_period_before_rolling_up_a_day() -> None:
    _log(1, at=NOON)
    end_of_day = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)

    assert daily_usage_rollup_due(now=end_of_day + ROLLUP_GRACE - dt.timedelta(minutes=1)) == 0
    assert not RolledUpDay.objects.exists()
    assert daily_usage_rollup_due(now=end_of_day + ROLLUP_GRACE) == 1
    assert RolledUpDay.objects.filter(day=DAY).exists()


@pytest.mark.django_db
def test_it_marks_empty_days_between_logs_as_rolled_up() -> None:
    _log(1, at=NOON)
    _log(2, at=NOON + dt.timedelta(days=3))
    daily_usage_rollup_due(now=NOON + dt.timedelta(days=4))  # rolls up to the 17th
    days = sorted(RolledUpDay.objects.values_list("day", flat=True))
    assert days == [DAY + dt.timedelta(days=i) for i in range(4)]
    assert DailyUsage.objects.count() == 2


@pytest.mark.django_db
def test_it_keeps_expired_logs_until_their_day_is_rolled_up(settings: object) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    _log(1, at=old, cost=5)

    assert request_logs_purge(older_than_days=90) == 0  # not in DailyUsage yet: kept
    assert RequestLog.objects.count() == 1

    daily_usage_rollup_due()
    assert request_logs_purge(older_than_days=90) == 1
    assert not RequestLog.objects.exists()
    assert DailyUsage.objects.get().cost == 5


@pytest.mark.django_db
def test_it_purges_in_batches_and_keeps_rows_within_retention(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("logs.services.PURGE_BATCH", 7)
    now = dt.datetime.now(dt.UTC)
    for n in range(30):
        _log(n, at=now - dt.timedelta(days=100, minutes=n))
    for n in range(30, 35):
        _log(n, at=now - dt.timedelta(days=10))
    daily_usage_rollup_due()

    assert request_logs_purge(older_than_days=90) == 30
    assert RequestLog.objects.count() == 5


@pytest.mark.django_db
def test_the_hourly_purge_task_rolls_up_and_purges_on_either_database(settings: Any) -> None:
    """The beat task itself: partitions first (PostgreSQL; none to drop on SQLite), then
    rows. `make run` runs it hourly on SQLite."""
    now = dt.datetime.now(dt.UTC)
    _log(1, at=now - dt.timedelta(days=settings.LOG_RETENTION_DAYS + 3), cost=40)
    _log(2, at=now - dt.timedelta(days=settings.LOG_RETENTION_DAYS + 3), cost=2)
    _log(3, at=now - dt.timedelta(minutes=5))

    assert purge_request_logs() == 2
    assert list(RequestLog.objects.values_list("request_id", flat=True)) == ["req_3"]
    assert DailyUsage.objects.get().cost == 42


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_rollups_of_one_day_count_it_once() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locking differs on SQLite")
    for n in range(50):
        _log(n, at=NOON, cost=2, model=f"m{n % 5}")
    barrier = threading.Barrier(4)
    results: list[int] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(daily_usage_rollup(day=DAY))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 0, 0, 5]
    assert sum(u.cost for u in DailyUsage.objects.all()) == 100
