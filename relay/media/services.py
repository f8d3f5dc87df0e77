"""Writes for video tasks: open (hold + row), accept, progress, complete, fail, claim.

Every way out of an unfinished state is a compare-and-set UPDATE inside the same
transaction as the hold's settlement, so a task is charged or refunded exactly once
however many workers, pollers and clients race on it, and a process killed half-way
leaves either the old state with the hold or the new state with the ledger row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from billing.holds import Settlement, hold_place, hold_settle
from billing.pricing import PriceSheet
from logs.records import RequestRecord
from relay.catalog import channel_cost_sheet
from relay.channel_types import is_seedance
from relay.media import charges
from relay.models import MediaTask

UNFINISHED = MediaTask.UNFINISHED
# How long a task may sit in `submitting` (its process died mid-submit) before it fails.
SUBMIT_GRACE = dt.timedelta(minutes=10)


def media_task_open(
    *,
    public_id: str,
    organization_id: int,
    wallet_id: int,
    api_key_id: int | None,
    model: str,
    seconds: int,
    size: str,
    resolution: str,
    amount: int,
    price: PriceSheet,
    multiplier: Decimal,
    client_ip: str | None,
) -> MediaTask:
    """Hold AMOUNT and record the task in one transaction: no video hold without its task.

    The hold lives until MEDIA_TASK_TIMEOUT + MEDIA_HOLD_MARGIN_SECONDS, so the hold sweep
    never releases it while the poller may still settle the task. Raises
    InsufficientBalance / KeyLimitExceeded and then changes nothing.
    """
    with transaction.atomic():
        hold_place(
            reference=public_id,
            wallet_id=wallet_id,
            api_key_id=api_key_id,
            amount=amount,
            ttl_seconds=settings.MEDIA_TASK_TIMEOUT + settings.MEDIA_HOLD_MARGIN_SECONDS,
        )
        return MediaTask.objects.create(
            public_id=public_id,
            organization_id=organization_id,
            wallet_id=wallet_id,
            api_key_id=api_key_id,
            channel_type="",
            model=model,
            seconds=seconds,
            size=size,
            resolution=resolution,
            hold_amount=amount,
            multiplier=multiplier,
            price=dataclasses.asdict(price),
            client_ip=client_ip,
        )


def _first_poll(now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=settings.MEDIA_POLL_MIN_SECONDS)


def media_task_accept(
    *,
    task_id: int,
    channel_id: int,
    channel_type: str,
    key_fingerprint: str,
    upstream_model: str,
    upstream_id: str,
    state: str,
    progress: int,
) -> bool:
    """The upstream accepted the task: remember where it lives. Only from `submitting`."""
    now = timezone.now()
    return (
        MediaTask.objects.filter(pk=task_id, state=MediaTask.State.SUBMITTING).update(
            channel_id=channel_id,
            channel_type=channel_type,
            key_fingerprint=key_fingerprint,
            upstream_model=upstream_model[:200],
            upstream_id=upstream_id,
            state=state if state in UNFINISHED else MediaTask.State.QUEUED,
            progress=progress,
            next_poll_at=_first_poll(now),
            updated_at=now,
        )
        == 1
    )


def media_task_progress(*, task_id: int, state: str, progress: int) -> bool:
    """Record queued → in_progress and the progress figure; never leaves unfinished."""
    if state not in (MediaTask.State.QUEUED, MediaTask.State.IN_PROGRESS):
        raise ValueError(f"not an unfinished state: {state}")
    return (
        MediaTask.objects.filter(
            pk=task_id, state__in=(MediaTask.State.QUEUED, MediaTask.State.IN_PROGRESS)
        ).update(state=state, progress=progress, updated_at=timezone.now())
        == 1
    )


def _upstream_cost(task: MediaTask, price: PriceSheet, *, seconds: int, tokens: int | None) -> int:
    """What the task's upstream charges the operator for it: its channel's cost sheet for
    the upstream model, else the sale price at list, times the channel's multiplier."""
    sheet, multiplier = channel_cost_sheet(channel_id=task.channel_id, model=task.upstream_model)
    return charges.video_cost(sheet or price, multiplier, seconds=seconds, output_tokens=tokens)


def _settlement(
    task: MediaTask, *, cost: int, status: int, error_code: str, upstream_cost: int | None = None
) -> Settlement:
    now = timezone.now()
    record = RequestRecord(
        created_at=now,
        organization_id=task.organization_id,
        api_key_id=task.api_key_id,
        channel_id=task.channel_id,
        endpoint=f"{task.kind}s",
        model=task.model[:200],
        upstream_model=task.upstream_model[:200],
        status_code=status,
        error_code=error_code[:64],
        completion_tokens=min(task.output_tokens or 0, 2**31 - 1),
        upstream_cost=upstream_cost,
        latency_ms=min(int((now - task.created_at).total_seconds() * 1000), 2**31 - 1),
        client_ip=task.client_ip,
    )
    return Settlement(
        reference=task.public_id,
        wallet_id=task.wallet_id,
        api_key_id=task.api_key_id,
        cost=cost,
        record=record,
    )


def media_task_complete(
    *,
    task_id: int,
    seconds: int | None,
    output_tokens: int | None,
    result_url: str,
    expires_at: dt.datetime | None,
) -> bool:
    """Charge the finished task's actual cost and release its hold. Exactly once: returns
    False, changing nothing, when the task had already finished."""
    with transaction.atomic():
        task = MediaTask.objects.get(pk=task_id)
        if task.finished:
            return False
        actual = seconds if seconds and seconds > 0 else task.seconds
        price = PriceSheet(**task.price)
        tokens = output_tokens
        if tokens is None and price.output_per_1m and is_seedance(task.channel_type):
            width, _, height = task.size.partition("x")
            tokens = charges.seedance_tokens(int(width), int(height), actual)
        cost = charges.video_cost(price, task.multiplier, seconds=actual, output_tokens=tokens)
        now = timezone.now()
        claimed = MediaTask.objects.filter(pk=task_id, state__in=UNFINISHED).update(
            state=MediaTask.State.COMPLETED,
            progress=100,
            actual_seconds=actual,
            output_tokens=tokens,
            cost=cost,
            result_url=result_url[:2000],
            expires_at=expires_at,
            finished_at=now,
            updated_at=now,
        )
        if claimed != 1:
            return False
        task.output_tokens = tokens
        upstream = _upstream_cost(task, price, seconds=actual, tokens=tokens)
        hold_settle(_settlement(task, cost=cost, status=200, error_code="", upstream_cost=upstream))
    return True


def media_task_fail(*, task_id: int, code: str, message: str, status: int = 502) -> bool:
    """Fail the task and release its whole hold (nothing charged). Exactly once."""
    with transaction.atomic():
        task = MediaTask.objects.get(pk=task_id)
        if task.finished:
            return False
        now = timezone.now()
        claimed = MediaTask.objects.filter(pk=task_id, state__in=UNFINISHED).update(
            state=MediaTask.State.FAILED,
            error_code=code[:64],
            error_message=message[:300],
            cost=0,
            finished_at=now,
            updated_at=now,
        )
        if claimed != 1:
            return False
        hold_settle(_settlement(task, cost=0, status=status, error_code=code))
    return True


def media_tasks_expire(*, now: dt.datetime | None = None) -> int:
    """Fail tasks past MEDIA_TASK_TIMEOUT, and tasks whose submit never finished."""
    now = now or timezone.now()
    timeout = now - dt.timedelta(seconds=settings.MEDIA_TASK_TIMEOUT)
    stale = MediaTask.objects.filter(
        Q(state__in=UNFINISHED, created_at__lt=timeout)
        | Q(state=MediaTask.State.SUBMITTING, created_at__lt=now - SUBMIT_GRACE)
    ).values_list("pk", "state")
    failed = 0
    for pk, state in list(stale):
        if state == MediaTask.State.SUBMITTING:
            failed += media_task_fail(
                task_id=pk,
                code="submit_interrupted",
                message="TokenHub could not confirm the submission; nothing was charged.",
                status=502,
            )
        else:
            failed += media_task_fail(
                task_id=pk,
                code="timeout",
                message="The video did not finish in time; nothing was charged.",
                status=504,
            )
    return failed


def poll_delay(polls: int) -> dt.timedelta:
    """Fast at first, slower later: the minimum interval, doubled every 5 polls, capped."""
    seconds = settings.MEDIA_POLL_MIN_SECONDS * 2 ** min(polls // 5, 16)
    return dt.timedelta(seconds=min(seconds, settings.MEDIA_POLL_MAX_SECONDS))


def media_tasks_claim(*, limit: int, now: dt.datetime | None = None) -> list[MediaTask]:
    """Due tasks, each claimed by moving its next poll into the future (compare-and-set on
    next_poll_at), so concurrent pollers do not ask the upstream twice. A poller that dies
    after claiming simply leaves the task for the next due time."""
    now = now or timezone.now()
    due = list(
        MediaTask.objects.filter(
            state__in=(MediaTask.State.QUEUED, MediaTask.State.IN_PROGRESS),
            next_poll_at__lte=now,
        )
        .select_related("channel")
        .order_by("next_poll_at")[:limit]
    )
    claimed = []
    for task in due:
        if media_task_claim_one(task=task, now=now, force=False):
            claimed.append(task)
    return claimed


def media_task_claim_one(*, task: MediaTask, now: dt.datetime, force: bool) -> bool:
    """Claim TASK for one poll. `force` (a client asking) skips the schedule but is
    throttled to one poll per MEDIA_STATUS_REFRESH_SECONDS."""
    base = MediaTask.objects.filter(
        pk=task.pk, state__in=(MediaTask.State.QUEUED, MediaTask.State.IN_PROGRESS)
    )
    if force:
        recent = now - dt.timedelta(seconds=settings.MEDIA_STATUS_REFRESH_SECONDS)
        base = base.filter(Q(polled_at__isnull=True) | Q(polled_at__lt=recent))
    else:
        base = base.filter(next_poll_at=task.next_poll_at)
    return (
        base.update(
            next_poll_at=now + poll_delay(task.polls),
            polled_at=now,
            polls=F("polls") + 1,
        )
        == 1
    )


def media_task_defer(*, task_id: int, seconds: float) -> None:
    """Push a task's next poll back (the upstream asked us to slow down)."""
    MediaTask.objects.filter(pk=task_id, state__in=UNFINISHED).update(
        next_poll_at=timezone.now() + dt.timedelta(seconds=seconds)
    )
