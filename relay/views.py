"""Portal pages of the relay: the Media page (video tasks, their state, cost and file)."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator, Iterator
from http.client import HTTPResponse

from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.access import Capability, capability_required, role_allows
from accounts.http import PortalRequest
from money import micros_to_usd
from relay.media import selectors
from relay.media.video_clients import video_adapter
from relay.models import MediaTask

_CHUNK = 64 * 1024
DOWNLOAD_TIMEOUT = 60


def _visible(request: PortalRequest) -> QuerySet[MediaTask]:
    organization = request.organization
    membership = request.membership
    return selectors.media_tasks_visible(
        organization_id=organization.pk,
        user_id=request.user.pk,
        everyone=role_allows(membership.role, Capability.VIEW_USAGE),
    )


def _downloadable(task: MediaTask) -> bool:
    if task.state != MediaTask.State.COMPLETED or task.channel_id is None:
        return False
    return task.expires_at is None or task.expires_at > timezone.now()


@require_GET
@capability_required(Capability.VIEW_ORG)
def media_list(request: PortalRequest) -> HttpResponse:
    page = Paginator(_visible(request), 50).get_page(request.GET.get("page"))
    rows = [
        {
            "task": task,
            "status": "queued" if task.state == MediaTask.State.SUBMITTING else task.state,
            "cost": micros_to_usd(task.cost),
            "held": micros_to_usd(task.hold_amount) if not task.finished else None,
            "downloadable": _downloadable(task),
        }
        for task in page.object_list
    ]
    return render(request, "relay/media.html", {"section": "media", "page": page, "rows": rows})


def _chunks(upstream: HTTPResponse) -> Iterator[bytes]:
    with upstream:
        while chunk := upstream.read(_CHUNK):
            yield chunk


async def _async_chunks(upstream: HTTPResponse) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(upstream.read, _CHUNK):
            yield chunk
    finally:
        upstream.close()


@require_GET
@capability_required(Capability.VIEW_ORG)
def media_content(request: PortalRequest, public_id: str) -> HttpResponseBase:
    """The finished video, streamed from the upstream with the channel's key; not stored."""
    task = _visible(request).select_related("channel").filter(public_id=public_id).first()
    adapter = video_adapter(task.channel_type) if task else None
    if task is None or adapter is None or task.channel is None or not _downloadable(task):
        raise Http404("no such video")
    channel = selectors.channel_snapshot(task.channel)
    key = selectors.task_key(channel, task.key_fingerprint) or (
        channel.keys[0] if channel.keys else ""
    )
    target = adapter.content(channel, key, task.upstream_id, task.result_url, "video")
    if not target.url.startswith(("http://", "https://")):
        raise Http404("no such video")
    upstream_request = urllib.request.Request(target.url, headers=target.headers)  # noqa: S310
    try:
        upstream = urllib.request.urlopen(upstream_request, timeout=DOWNLOAD_TIMEOUT)  # noqa: S310
    except OSError:
        raise Http404("the upstream no longer has this video") from None

    # Under ASGI Django would buffer a synchronous iterator whole: give it an async one.
    content = _async_chunks(upstream) if isinstance(request, ASGIRequest) else _chunks(upstream)
    response = StreamingHttpResponse(
        content, content_type=upstream.headers.get("content-type", "video/mp4")
    )
    length = upstream.headers.get("content-length")
    if length and length.isdigit():
        response["Content-Length"] = length
    disposition = "attachment" if request.GET.get("download") else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="{task.public_id}.mp4"'
    return response
