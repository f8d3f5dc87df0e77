"""Reads for video tasks, always scoped to the organization asking."""

from __future__ import annotations

import hashlib

from django.db.models import QuerySet

from relay.catalog import ChannelInfo, channel_info
from relay.models import Channel, MediaTask


def media_tasks_for_org(*, organization_id: int) -> QuerySet[MediaTask]:
    return MediaTask.objects.filter(organization_id=organization_id).order_by("-created_at", "-pk")


def media_task_for_org(*, public_id: str, organization_id: int) -> MediaTask | None:
    """The task, only if ORGANIZATION_ID created it (anyone else gets None, i.e. a 404)."""
    return (
        MediaTask.objects.select_related("channel")
        .filter(public_id=public_id, organization_id=organization_id)
        .first()
    )


def key_fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def channel_snapshot(channel: Channel) -> ChannelInfo:
    """The channel as the relay sees it, whatever its status: a task submitted before a
    channel was disabled is still polled and downloaded through it."""
    return channel_info(channel)


def task_key(channel: ChannelInfo, fingerprint: str) -> str | None:
    """The channel key that created the upstream task (it alone can see it)."""
    for key in channel.keys:
        if key_fingerprint(key) == fingerprint:
            return key
    return None


def media_tasks_visible(
    *, organization_id: int, user_id: int, everyone: bool
) -> QuerySet[MediaTask]:
    """The organization's tasks; only those made with the user's own keys unless EVERYONE."""
    tasks = media_tasks_for_org(organization_id=organization_id).select_related("api_key")
    return tasks if everyone else tasks.filter(api_key__created_by_id=user_id)
