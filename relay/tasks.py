"""Celery jobs of the relay: polling asynchronous media tasks."""

from __future__ import annotations

import asyncio

from celery import shared_task

from relay.media.polling import poll_due


@shared_task
def poll_media_tasks() -> int:
    """Poll due video tasks once (beat runs it every MEDIA_POLL_EVERY seconds)."""
    return asyncio.run(poll_due())
