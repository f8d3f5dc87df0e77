"""Asking upstreams how their video tasks are doing, and recording the answer.

Used by the Celery beat job (relay.tasks.poll_media_tasks: due tasks in batches, one
channel at a time with a pause on 429) and on demand when a client reads a task.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict

import aiohttp
import orjson
from django.conf import settings
from django.utils import timezone

from relay.db import in_db_thread
from relay.media import services
from relay.media.selectors import channel_snapshot, task_key
from relay.media.video_clients import video_adapter
from relay.media.video_clients.base import UpstreamVideo
from relay.models import MediaTask

log = logging.getLogger(__name__)
POLL_TIMEOUT = 30.0


class UpstreamBusy(Exception):
    """The channel cannot answer now (429, 5xx, unreachable): leave it alone for a while."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("upstream rate limited")
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float:
    try:
        return max(1.0, min(float(value or ""), 3600.0))
    except ValueError:
        return float(settings.MEDIA_POLL_MAX_SECONDS)


def _expiry(epoch: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC) if epoch else None


async def record(task_id: int, video: UpstreamVideo) -> None:
    """Apply what the upstream said: progress, or the one final transition."""
    if video.state == "completed":
        await in_db_thread(services.media_task_complete)(
            task_id=task_id,
            seconds=video.seconds,
            output_tokens=video.output_tokens,
            result_url=video.result_url,
            expires_at=_expiry(video.expires_at),
        )
    elif video.state == "failed":
        await in_db_thread(services.media_task_fail)(
            task_id=task_id,
            code=video.error_code or "upstream_failed",
            message=video.error_message or "The upstream could not generate the video.",
        )
    else:
        await in_db_thread(services.media_task_progress)(
            task_id=task_id, state=video.state, progress=video.progress
        )


async def poll_task(task: MediaTask, http: aiohttp.ClientSession) -> None:
    """Ask once. 429, 5xx and network trouble raise UpstreamBusy (the task waits for its
    next turn); an upstream that no longer knows the task fails it (hold released)."""
    adapter = video_adapter(task.channel_type)
    if task.channel is None or adapter is None:
        await in_db_thread(services.media_task_fail)(
            task_id=task.pk, code="channel_removed", message="The upstream channel was removed."
        )
        return
    channel = await in_db_thread(channel_snapshot)(task.channel)
    key = task_key(channel, task.key_fingerprint) or (channel.keys[0] if channel.keys else "")
    target = adapter.status(channel, key, task.upstream_id)
    try:
        async with asyncio.timeout(POLL_TIMEOUT):
            async with http.request(
                target.method, target.url, headers=target.headers, allow_redirects=False
            ) as response:
                body = await response.read()
                status = response.status
                retry_after = response.headers.get("retry-after")
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("polling %s failed: %s", task.public_id, type(exc).__name__)
        raise UpstreamBusy(float(settings.MEDIA_POLL_MAX_SECONDS)) from None
    if status == 429:
        raise UpstreamBusy(_retry_after(retry_after))
    if status >= 500:
        log.warning("polling %s: upstream answered %s", task.public_id, status)
        raise UpstreamBusy(float(settings.MEDIA_POLL_MAX_SECONDS))
    if status == 404:
        await in_db_thread(services.media_task_fail)(
            task_id=task.pk,
            code="upstream_not_found",
            message="The upstream no longer knows this task; nothing was charged.",
        )
        return
    if status >= 400:
        log.warning("polling %s: upstream answered %s", task.public_id, status)
        return
    try:
        obj = orjson.loads(body)
        video = adapter.read(obj) if isinstance(obj, dict) else None
    except orjson.JSONDecodeError:
        video = None
    if video is None:
        log.warning("polling %s: unreadable upstream answer", task.public_id)
        return
    await record(task.pk, video)


async def _poll_channel(tasks: list[MediaTask], http: aiohttp.ClientSession) -> int:
    done = 0
    for index, task in enumerate(tasks):
        try:
            await poll_task(task, http)
            done += 1
        except UpstreamBusy as busy:
            # Leave this channel alone for a while: the rest of its batch waits too, so a
            # dead upstream costs one timeout per run, not one per task.
            for later in tasks[index:]:
                await in_db_thread(services.media_task_defer)(
                    task_id=later.pk, seconds=busy.retry_after
                )
            break
    return done


def client_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.RELAY_CONNECT_TIMEOUT),
    )


async def poll_due() -> int:
    """Expire overdue tasks, then poll a batch of due ones, channels side by side."""
    await in_db_thread(services.media_tasks_expire)()
    tasks = await in_db_thread(services.media_tasks_claim)(
        limit=settings.MEDIA_POLL_BATCH, now=timezone.now()
    )
    if not tasks:
        return 0
    by_channel: dict[int | None, list[MediaTask]] = defaultdict(list)
    for task in tasks:
        by_channel[task.channel_id].append(task)
    async with client_session() as http:
        counts = await asyncio.gather(*(_poll_channel(ts, http) for ts in by_channel.values()))
    return sum(counts)
