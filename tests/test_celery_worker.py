"""Periodic jobs go through a real Celery worker and broker, not the eager shortcut."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.selectors import organization_personal
from accounts.services import user_create
from billing.holds import hold_place
from billing.models import Hold, Wallet
from billing.services import wallet_credit
from billing.tasks import sweep_expired_holds
from logs.models import DailyUsage, RequestLog
from logs.tasks import purge_request_logs
from relay.models import Channel
from relay.services import channel_create
from relay.tasks import probe_channels
from tests.fakes.upstream import FakeUpstream
from tests.test_cli import _database_url

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parent.parent


def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the worker did not do it in time"
        time.sleep(0.05)


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[None]:
    if not settings.REDIS_URL:
        pytest.skip("the worker test uses the Redis broker of the PostgreSQL + Redis run")
    # Eager mode would run .delay() inline and prove nothing about the worker.
    assert not sweep_expired_holds.app.conf.task_always_eager
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "TOKENHUB_ENCRYPTION_KEYS": ",".join(settings.ENCRYPTION_KEYS),
        "TOKENHUB_VAR_DIR": str(tmp_path),
        "DEBUG": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tokenhub", "worker", "--pool", "solo",
         "-l", "WARNING", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=REPO,
        env=env,
    )  # fmt: skip
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_it_sweeps_expired_holds_through_the_worker(worker: None) -> None:
    org = organization_personal(user=user_create(email="w@example.com"))
    wallet_credit(organization=org, amount=1_000, kind="adjust", source_type="t", source_id="w")
    wallet = Wallet.objects.get(organization=org)
    hold_place(
        reference="req_dead", wallet_id=wallet.pk, api_key_id=None, amount=400, ttl_seconds=0
    )
    assert Wallet.objects.get(pk=wallet.pk).held == 400

    sweep_expired_holds.delay()  # queued on the broker; only the worker can run it

    _until(lambda: not Hold.objects.exists())
    assert Wallet.objects.get(pk=wallet.pk).held == 0


def test_it_purges_request_logs_past_retention_through_the_worker(worker: None) -> None:
    old = timezone.now() - dt.timedelta(days=settings.LOG_RETENTION_DAYS + 1)
    RequestLog.objects.create(
        request_id="old", organization_id=1, endpoint="e", status_code=200, created_at=old
    )
    RequestLog.objects.create(request_id="new", organization_id=1, endpoint="e", status_code=200)

    purge_request_logs.delay()

    _until(lambda: not RequestLog.objects.filter(request_id="old").exists())
    assert RequestLog.objects.filter(request_id="new").exists()


def test_it_rolls_up_before_purging_through_the_worker(worker: None) -> None:
    old = timezone.now() - dt.timedelta(days=settings.LOG_RETENTION_DAYS + 3)
    for n, cost in enumerate((40, 2)):
        RequestLog.objects.create(
            request_id=f"old{n}", organization_id=7, endpoint="e", status_code=200,
            created_at=old, model="m", cost=cost,
        )  # fmt: skip

    purge_request_logs.delay()

    _until(lambda: not RequestLog.objects.exists())
    usage = DailyUsage.objects.get(organization_id=7)
    assert (usage.requests, usage.cost) == (2, 42)


def test_it_probes_and_re_enables_channels_through_the_worker(worker: None) -> None:
    with FakeUpstream(require_key=False) as fake:
        channel = channel_create(
            type="openai", base_url=fake.url + "/v1", models=["gpt-4o-mini"],
            api_keys=["sk-upstream-good"], name="healed",
        )  # fmt: skip
        Channel.objects.filter(pk=channel.pk).update(
            status=Channel.Status.AUTO_DISABLED, disabled_reason="upstream answered 401"
        )

        probe_channels.delay()

        _until(lambda: Channel.objects.get(pk=channel.pk).status == Channel.Status.ENABLED)
        assert len(fake.requests) == 1
