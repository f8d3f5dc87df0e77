"""Compare-and-set on PostgreSQL: however many settle and refund attempts race on one video
task, exactly one wins and the books balance."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection

from accounts.selectors import organization_personal
from accounts.services import user_create
from billing.models import Hold, LedgerEntry, Wallet
from billing.pricing import PriceSheet
from billing.services import wallet_credit
from logs.models import RequestLog
from relay.media import services
from relay.models import MediaTask
from relay.services import channel_create

pytestmark = pytest.mark.django_db(transaction=True)


def _open(org_id: int, wallet_id: int, channel_id: int, n: int) -> MediaTask:
    task = services.media_task_open(
        public_id=f"video_race{n}",
        organization_id=org_id,
        wallet_id=wallet_id,
        api_key_id=None,
        model="sora-2",
        seconds=8,
        size="1280x720",
        resolution="720p",
        amount=800,
        price=PriceSheet(per_second=100),
        multiplier=Decimal(1),
        client_ip=None,
    )
    services.media_task_accept(
        task_id=task.pk, channel_id=channel_id, channel_type="openai",
        key_fingerprint="", upstream_model="sora-2", upstream_id=f"up{n}", state="queued",
        progress=0,
    )  # fmt: skip
    return task


def _race(actions: list[Callable[[], bool]]) -> list[bool]:
    results: list[bool] = []
    barrier = threading.Barrier(len(actions))
    lock = threading.Lock()

    def run(action: Callable[[], bool]) -> None:
        barrier.wait()
        try:
            outcome = action()
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run, args=(a,)) for a in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_concurrent_settles_and_refunds_of_one_task_apply_exactly_once() -> None:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("row-lock races are a PostgreSQL matter")
    org = organization_personal(user=user_create(email="race@example.com"))
    wallet_credit(organization=org, amount=100_000, kind="adjust", source_type="t", source_id="r")
    wallet = Wallet.objects.get(organization=org)
    channel = channel_create(
        name="sora", type="openai", base_url="https://upstream.test/v1", api_keys=["sk-x"],
        models=["sora-2"],
    )  # fmt: skip
    for n in range(5):
        task = _open(org.pk, wallet.pk, channel.pk, n)
        complete = lambda t=task: services.media_task_complete(  # noqa: E731
            task_id=t.pk, seconds=8, output_tokens=None, result_url="", expires_at=None
        )
        fail = lambda t=task: services.media_task_fail(task_id=t.pk, code="x", message="")  # noqa: E731
        results = _race([complete, fail] * 4)
        assert results.count(True) == 1

    wallet.refresh_from_db()
    charged = LedgerEntry.objects.filter(kind="charge")
    assert all(e.amount == -800 for e in charged)
    completed = MediaTask.objects.filter(state="completed").count()
    assert charged.count() == completed
    assert MediaTask.objects.filter(state="failed").count() == 5 - completed
    assert wallet.balance == 100_000 - 800 * completed and wallet.held == 0
    assert RequestLog.objects.count() == 5 and not Hold.objects.exists()
