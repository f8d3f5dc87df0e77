"""Celery job of anomaly detection (beat: `anomalies-scan`, every five minutes); imported
by logs/tasks.py so that autodiscovery registers it."""

from __future__ import annotations

from celery import shared_task

from logs.anomalies.services import anomalies_scan as _scan


@shared_task
def anomalies_scan() -> dict[str, int]:
    """Spend anomalies and new networks; returns what it found."""
    result = _scan()
    return {
        "spend_alerts": len(result.spend_alerts),
        "network_alerts": len(result.network_alerts),
    }
