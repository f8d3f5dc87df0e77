from __future__ import annotations

from celery import shared_task

from billing.holds import holds_sweep


@shared_task
def sweep_expired_holds() -> int:
    """Release holds whose request died without settling (e.g. a killed process)."""
    return holds_sweep()
