"""Celery job of the margin alert (beat: `margin-alerts`, hourly); imported by
relay/tasks.py so that autodiscovery registers it."""

from __future__ import annotations

from celery import shared_task

from relay.margin_alerts import margin_alerts_check


@shared_task
def margin_alerts() -> int:
    """Email the operators about channels whose margin fell below their threshold."""
    return margin_alerts_check()
