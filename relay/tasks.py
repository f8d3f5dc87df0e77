"""Celery jobs of the relay: channel probes and alerts, over-reporting flags, polling
asynchronous media tasks."""

from __future__ import annotations

import asyncio

from celery import shared_task

from relay.channel_health import alert_last_channel, channels_probe  # noqa: F401
from relay.margin_tasks import margin_alerts  # noqa: F401  # registered for beat
from relay.media.polling import poll_due
from relay.response_store import purge_expired
from relay.services import channels_overreport_check


@shared_task
def probe_channels() -> int:
    """Probe auto-disabled and cooling channels; returns how many answered."""
    return sum(result.ok for result in channels_probe().values())


@shared_task
def flag_overreporting_channels() -> list[int]:
    """Flag channels that keep reporting usage beyond the holds; returns the ids flagged."""
    return channels_overreport_check()


@shared_task
def purge_stored_responses() -> int:
    """Delete opted-in Responses conversations past RESPONSES_STORE_SECONDS."""
    return purge_expired()


@shared_task
def poll_media_tasks() -> int:
    """Poll due video tasks once (beat runs it every MEDIA_POLL_EVERY seconds)."""
    return asyncio.run(poll_due())
