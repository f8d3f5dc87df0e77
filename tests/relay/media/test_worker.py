"""Video tasks through a real Celery worker on Redis: settled once, refunded once, and a
worker killed mid-poll neither loses nor double-bills a task.

Needs the PostgreSQL + Redis run (the embedded run has no Redis broker: skipped there).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from billing.models import Hold
from logs.models import RequestLog
from relay.models import MediaTask
from relay.tasks import poll_media_tasks
from tests.fakes.media import FakeMedia
from tests.relay.conftest import Customer
from tests.relay.media.conftest import (
    SEEDANCE_PER_1M,
    SORA_PER_SECOND,
    assert_books_balance,
    charges_for,
)
from tests.test_cli import _database_url

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
REPO = Path(__file__).resolve().parents[3]


class Workers:
    """Celery worker processes on the test's broker and database."""

    def __init__(self, tmp_path: Path) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "SECRET_KEY": settings.SECRET_KEY,
            "TOKENHUB_ENCRYPTION_KEYS": ",".join(settings.ENCRYPTION_KEYS),
            "TOKENHUB_VAR_DIR": str(tmp_path),
            "DEBUG": "0",
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tokenhub", "worker", "--pool", "solo",
             "-l", "WARNING", "--without-heartbeat", "--without-mingle", "--without-gossip",
             "-n", f"media{len(self.procs)}@%h"],
            cwd=REPO,
            env=self.env,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=30)


@pytest.fixture
def workers(customer: Customer, tmp_path: Path) -> Iterator[Workers]:
    if not settings.REDIS_URL:
        pytest.skip("the worker tests use the Redis broker of the PostgreSQL + Redis run")
    assert not poll_media_tasks.app.conf.task_always_eager
    running = Workers(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def _until(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "the worker did not do it in time"
        time.sleep(0.05)
    return value


def _polled_since(task_id: int, polls: int) -> bool:
    task = MediaTask.objects.get(pk=task_id)
    return task.polls > polls or task.finished


def _poll_until_finished(task_id: int, timeout: float = 30.0) -> MediaTask:
    """Make the task due and queue a poll, until a worker has finished it."""
    deadline = time.monotonic() + timeout
    while True:
        task = MediaTask.objects.get(pk=task_id)
        if task.finished:
            return task
        assert time.monotonic() < deadline, f"task still {task.state}"
        polls = task.polls
        MediaTask.objects.filter(pk=task_id).update(next_poll_at=timezone.now())
        poll_media_tasks.delay()
        _until(functools.partial(_polled_since, task_id, polls))


def test_workers_racing_on_a_finished_video_settle_it_once(
    sora: Customer, media: FakeMedia, workers: Workers
) -> None:
    workers.start()
    workers.start()
    client = sora.openai()
    videos = [client.videos.create(model="sora-2", prompt=f"v{i}", seconds="4") for i in range(4)]
    tasks = MediaTask.objects.filter(public_id__in=[v.id for v in videos])

    # Many polls queued at once, two workers taking them: each task is claimed by one.
    deadline = time.monotonic() + 60
    while tasks.exclude(state="completed").exists():
        assert time.monotonic() < deadline
        tasks.update(next_poll_at=timezone.now())
        for _ in range(4):
            poll_media_tasks.delay()
        time.sleep(0.2)

    for video in videos:
        assert charges_for(video.id) == [-4 * SORA_PER_SECOND]
        assert RequestLog.objects.filter(request_id=video.id).count() == 1
    assert_books_balance(sora)


def test_the_worker_refunds_failed_and_timed_out_videos_once(
    sora: Customer, media: FakeMedia, workers: Workers
) -> None:
    workers.start()
    start = sora.balance()
    client = sora.openai()
    media.plan = ["queued", "failed"]
    failing = MediaTask.objects.get(
        public_id=client.videos.create(model="sora-2", prompt="no", seconds="8").id
    )
    media.plan = ["queued"]
    stuck = MediaTask.objects.get(
        public_id=client.videos.create(model="sora-2", prompt="slow", seconds="8").id
    )
    old = timezone.now() - dt.timedelta(seconds=settings.MEDIA_TASK_TIMEOUT + 5)
    MediaTask.objects.filter(pk=stuck.pk).update(created_at=old)

    assert _poll_until_finished(failing.pk).error_code == "moderation_blocked"
    assert _poll_until_finished(stuck.pk).error_code == "timeout"
    for _ in range(3):
        poll_media_tasks.delay()
    _until(
        lambda: (
            RequestLog.objects.filter(request_id__in=[failing.public_id, stuck.public_id]).count()
            == 2
        )
    )

    assert sora.balance() == start
    assert not Hold.objects.exists()
    assert RequestLog.objects.filter(request_id=failing.public_id, cost=0).count() == 1
    assert_books_balance(sora)


def test_a_worker_killed_mid_poll_neither_loses_nor_double_bills(
    sora: Customer, media: FakeMedia, workers: Workers
) -> None:
    first = workers.start()
    video = sora.openai().videos.create(model="sora-2", prompt="kill me", seconds="8")
    task = MediaTask.objects.get(public_id=video.id)
    media.block_status()
    MediaTask.objects.filter(pk=task.pk).update(next_poll_at=timezone.now())
    poll_media_tasks.delay()
    assert media.status_waiting.wait(30), "the worker never asked the upstream"

    os.kill(first.pid, signal.SIGKILL)  # mid-poll: the upstream has not answered yet
    first.wait(timeout=30)
    media.unblock_status()

    task.refresh_from_db()
    assert not task.finished and task.cost == 0
    assert Hold.objects.get(reference=video.id).amount == 8 * SORA_PER_SECOND
    workers.start()
    done = _poll_until_finished(task.pk)

    assert done.state == "completed"
    assert charges_for(video.id) == [-8 * SORA_PER_SECOND]
    assert_books_balance(sora)


def test_the_worker_settles_a_seedance_task_at_its_reported_tokens(
    seedance: Customer, media: FakeMedia, workers: Workers
) -> None:
    workers.start()
    media.plan = ["queued", "queued", "in_progress", "completed"]
    video = seedance.openai().videos.create(model="seedance-1-pro", prompt="sea", seconds="5")

    done = _poll_until_finished(MediaTask.objects.get(public_id=video.id).pk)

    assert (done.state, done.output_tokens) == ("completed", 108_900)
    assert charges_for(video.id) == [-108_900 * SEEDANCE_PER_1M // 1_000_000]
    assert_books_balance(seedance)
