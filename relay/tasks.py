from __future__ import annotations

from celery import shared_task

from relay.channel_health import channels_probe, last_channel_alert


@shared_task
def probe_channels() -> int:
    """Probe auto-disabled and cooling channels; returns how many answered."""
    return sum(result.ok for result in channels_probe().values())


@shared_task
def alert_last_channel(channel_id: int) -> list[str]:
    return last_channel_alert(channel_id=channel_id)
