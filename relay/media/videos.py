"""The OpenAI Videos API on the relay: create, retrieve, download, list, delete.

POST /v1/videos holds the task's full price and records the task before any upstream is
called; the task then lives in relay.models.MediaTask until the poller (or a client's
read) sees it finish, which settles or releases the hold exactly once. The id we return
is TokenHub's own; only the organization that created a task can see it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
from typing import Any

from django.conf import settings
from django.utils import timezone

from billing.exceptions import InsufficientBalance
from billing.holds import KeyLimitExceeded
from relay import http1
from relay.affinity import pick_key
from relay.asgi_io import (
    Receive,
    Request,
    Send,
    end_stream,
    read_body,
    send_chunk,
    send_json,
    start_stream,
)
from relay.catalog import ChannelInfo, KeyInfo
from relay.channel_types import VIDEO_TYPES, is_seedance
from relay.db import in_db_thread
from relay.errors import RelayError, bad_request, insufficient_quota
from relay.media import charges, selectors, services
from relay.media.polling import UpstreamBusy, poll_task, record
from relay.media.upstream_calls import fetch_json, open_response
from relay.media.video_clients import seedance, video_adapter
from relay.media.video_clients.base import UpstreamVideo, VideoRequest, parse_request
from relay.models import MediaTask
from relay.pipeline import failover
from relay.pipeline.authorize import authorize_model, check_rate_limits
from relay.pipeline.call import Call
from relay.pipeline.forward import UpstreamFailure
from relay.pipeline.route import candidates
from relay.upstream import session

_UPSTREAM_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
_VARIANTS = frozenset({"video", "thumbnail", "spritesheet"})


def _epoch(value: dt.datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def video_object(task: MediaTask) -> dict[str, Any]:
    """The task as OpenAI's `video` object (a task still being submitted shows as queued)."""
    state = task.state if task.state != MediaTask.State.SUBMITTING else "queued"
    error = None
    if task.state == MediaTask.State.FAILED:
        error = {"code": task.error_code or "failed", "message": task.error_message or ""}
    return {
        "id": task.public_id,
        "object": "video",
        "model": task.model,
        "status": state,
        "progress": task.progress,
        "created_at": _epoch(task.created_at),
        "completed_at": _epoch(task.finished_at) if task.finished else None,
        "expires_at": _epoch(task.expires_at),
        "size": task.size,
        "seconds": str(task.actual_seconds or task.seconds),
        "quality": "standard",
        "remixed_from_video_id": None,
        "prompt": None,  # TokenHub stores no prompts
        "error": error,
    }


def not_found(public_id: str) -> RelayError:
    return RelayError(
        404, f"Video with id '{public_id[:80]}' not found.", code="video_not_found", param="id"
    )


async def _find(key: KeyInfo, public_id: str) -> MediaTask:
    task = await in_db_thread(selectors.media_task_for_org)(
        public_id=public_id, organization_id=key.organization_id
    )
    if task is None:
        raise not_found(public_id)
    return task


async def create(
    call: Call,
    key: KeyInfo,
    request: Request,
    receive: Receive,
    send: Send,
    headers: dict[str, str],
) -> None:
    raw = await read_body(receive, settings.RELAY_MAX_BODY_MB * 1024 * 1024)
    req = parse_request(raw, request.headers.get("content-type", ""))
    call.model = req.model
    authorize_model(key, req.model)
    all_routes = await candidates(req.model, key.group)
    route = [c for c in all_routes if c.type in VIDEO_TYPES]
    resolution, _ = seedance.resolution_and_ratio(req)
    price = charges.checked_price(
        req.model,
        await charges.tier_price(req.model, [req.size, resolution]),
        routed=bool(route),
        known=bool(all_routes),
        makes="videos",
    )
    await check_rate_limits(key, 0)
    seedance_route = any(is_seedance(c.type) for c in route)
    amount = charges.video_hold(
        price,
        key.multiplier,
        seconds=req.seconds,
        max_tokens=seedance.max_tokens(req) if seedance_route else 0,
    )
    try:
        task = await in_db_thread(services.media_task_open)(
            public_id="video_" + secrets.token_hex(16),
            organization_id=key.organization_id,
            wallet_id=key.wallet_id,
            api_key_id=key.id,
            model=req.model,
            seconds=req.seconds,
            size=req.size,
            resolution=resolution,
            amount=amount,
            price=price,
            multiplier=key.multiplier,
            client_ip=call.client_ip,
        )
    except KeyLimitExceeded:
        raise insufficient_quota(
            "This API key has reached its spend limit. Raise the limit or use another key."
        ) from None
    except InsufficientBalance:
        raise insufficient_quota(
            "Your balance is too low for this video. Top up your account to continue."
        ) from None

    async def exchange(channel: ChannelInfo) -> tuple[UpstreamVideo, str]:
        adapter = video_adapter(channel.type)
        if adapter is None:  # the route only holds video channel types
            raise UpstreamFailure("not a video channel", retryable=True)
        channel_key = pick_key(channel)
        target = adapter.submit(channel, channel_key, channel.upstream_model(req.model), req)
        video = adapter.read(await fetch_json(target))
        if not _UPSTREAM_ID.match(video.upstream_id):
            # Accepted but unreadable: resubmitting elsewhere could make two videos.
            raise UpstreamFailure("upstream task id missing or malformed", retryable=False)
        return video, channel_key

    try:
        channel, (video, channel_key) = await failover.first_success(call, route, exchange)
    except BaseException as exc:
        status = exc.status if isinstance(exc, RelayError) else 500
        await asyncio.shield(
            in_db_thread(services.media_task_fail)(
                task_id=task.pk,
                code="submit_failed",
                message="The upstream did not accept the task; nothing was charged.",
                status=status,
            )
        )
        raise
    await in_db_thread(services.media_task_accept)(
        task_id=task.pk,
        channel_id=channel.id,
        channel_type=channel.type,
        key_fingerprint=selectors.key_fingerprint(channel_key),
        upstream_model=channel.upstream_model(req.model),
        upstream_id=video.upstream_id,
        state=video.state,
        progress=video.progress,
    )
    if video.state in ("completed", "failed"):
        await record(task.pk, video)
    task = await _find(key, task.public_id)
    await send_json(send, 200, video_object(task), headers)


async def _refresh(task: MediaTask) -> MediaTask:
    """Poll the upstream now if nobody did in the last MEDIA_STATUS_REFRESH_SECONDS."""
    if task.finished or not task.upstream_id:
        return task
    claimed = await in_db_thread(services.media_task_claim_one)(
        task=task, now=timezone.now(), force=True
    )
    if not claimed:
        return task
    try:
        await poll_task(task, session())
    except UpstreamBusy as busy:
        await in_db_thread(services.media_task_defer)(task_id=task.pk, seconds=busy.retry_after)
    found = await in_db_thread(MediaTask.objects.select_related("channel").get)(pk=task.pk)
    return found


async def retrieve(key: KeyInfo, public_id: str, send: Send, headers: dict[str, str]) -> None:
    task = await _refresh(await _find(key, public_id))
    await send_json(send, 200, video_object(task), headers)


def _channel_and_key(task: MediaTask) -> tuple[ChannelInfo, str]:
    if task.channel is None:
        raise RelayError(
            404, "The channel that made this video was removed.", code="video_unavailable"
        )
    channel = selectors.channel_snapshot(task.channel)
    key = selectors.task_key(channel, task.key_fingerprint) or (
        channel.keys[0] if channel.keys else ""
    )
    return channel, key


async def download(
    key: KeyInfo, public_id: str, request: Request, send: Send, headers: dict[str, str]
) -> None:
    """Stream the file from the upstream with the channel's key; nothing is stored."""
    task = await _find(key, public_id)
    if task.state != MediaTask.State.COMPLETED:
        raise bad_request(
            f"Video '{public_id[:80]}' is not ready (status: {video_object(task)['status']}).",
            code="video_not_ready",
        )
    variant = request.query.get("variant", "video")
    if variant not in _VARIANTS:
        raise bad_request("'variant' must be video, thumbnail or spritesheet.", param="variant")
    adapter = video_adapter(task.channel_type)
    if adapter is None:
        raise not_found(public_id)
    channel, channel_key = await in_db_thread(_channel_and_key)(task)
    if is_seedance(task.channel_type) and (variant != "video" or not task.result_url):
        raise bad_request("This video has no such asset.", param="variant")
    target = adapter.content(channel, channel_key, task.upstream_id, task.result_url, variant)
    try:
        response = await open_response(target)
    except UpstreamFailure as failure:
        if failure.status in (403, 404, 410):
            raise RelayError(
                404, "The upstream no longer has this video's file.", code="video_expired"
            ) from None
        raise RelayError(
            502, "The upstream could not send the video.", type="upstream_error",
            code="upstream_error",
        ) from None  # fmt: skip
    out = dict(headers)
    length = response.headers.get("content-length")
    if length and length.isdigit():
        out["content-length"] = length
    ctype = response.headers.get("content-type", "video/mp4")
    try:
        await start_stream(send, 200, out, ctype.encode("latin-1"))
        try:
            async for chunk in response:
                await send_chunk(send, chunk)
        except (http1.ClientError, TimeoutError):
            response.close()  # a cut download: the client sees a short body
        await end_stream(send)
    finally:
        response.release()


async def list_videos(key: KeyInfo, request: Request, send: Send, headers: dict[str, str]) -> None:
    query = request.query
    try:
        limit = max(1, min(100, int(query.get("limit", "20"))))
    except ValueError:
        raise bad_request("'limit' must be a number.", param="limit") from None
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request("'order' must be asc or desc.", param="order")
    after = query.get("after")

    def page() -> tuple[list[MediaTask], bool]:
        tasks = selectors.media_tasks_for_org(organization_id=key.organization_id)
        tasks = tasks.order_by("pk" if order == "asc" else "-pk")
        if after:
            anchor = tasks.filter(public_id=after).values_list("pk", flat=True).first()
            if anchor is None:
                raise bad_request("'after' is not one of your videos.", param="after")
            tasks = tasks.filter(pk__gt=anchor) if order == "asc" else tasks.filter(pk__lt=anchor)
        rows = list(tasks[: limit + 1])
        return rows[:limit], len(rows) > limit

    rows, more = await in_db_thread(page)()
    data = [video_object(t) for t in rows]
    body = {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }
    await send_json(send, 200, body, headers)


async def delete(key: KeyInfo, public_id: str, send: Send, headers: dict[str, str]) -> None:
    """Cancel an unfinished task (hold released) and ask the upstream to drop it."""
    task = await _find(key, public_id)
    adapter = video_adapter(task.channel_type)
    if adapter is not None and task.upstream_id and task.channel is not None:
        channel, channel_key = await in_db_thread(_channel_and_key)(task)
        try:
            response = await open_response(adapter.cancel(channel, channel_key, task.upstream_id))
            response.release()
        except UpstreamFailure:
            pass  # best effort: the task is ours to cancel either way
    if not task.finished:
        await in_db_thread(services.media_task_fail)(
            task_id=task.pk,
            code="cancelled",
            message="Cancelled by the client; nothing was charged.",
            status=499,
        )
    await send_json(
        send, 200, {"id": task.public_id, "object": "video.deleted", "deleted": True}, headers
    )


async def handle(
    call: Call, key: KeyInfo, request: Request, receive: Receive, send: Send, path: str,
    headers: dict[str, str],
) -> None:  # fmt: skip
    """Route one /v1/videos request (already authenticated and authorized)."""
    method = request.method
    rest = path[len("/v1/videos") :].strip("/")
    parts = rest.split("/") if rest else []
    if not parts:
        if method == "POST":
            await create(call, key, request, receive, send, headers)
            return
        if method == "GET":
            await list_videos(key, request, send, headers)
            return
    elif len(parts) == 1 and method == "GET":
        await retrieve(key, parts[0], send, headers)
        return
    elif len(parts) == 1 and method == "DELETE":
        await delete(key, parts[0], send, headers)
        return
    elif len(parts) == 2 and parts[1] == "content" and method == "GET":
        await download(key, parts[0], request, send, headers)
        return
    raise RelayError(404, f"Unknown request URL: {method} {path[:200]}.", code="unknown_url")


__all__ = ["VideoRequest", "handle", "video_object"]
