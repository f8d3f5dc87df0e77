"""Leases: each serving event loop renews one while it runs (relay/pipeline/lease.py).

A hold names the lease of the loop that placed it. When a process dies its lease lapses,
and `holds_sweep` (billing/holds.py) settles or releases its holds, run by every live
server and by the Celery beat: within LEASE_TTL_SECONDS + LEASE_RENEW_SECONDS of the
last renewal, not after HOLD_TTL_SECONDS.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

from django.utils import timezone

from billing.models import Lease


def lease_renew(*, lease_id: str, ttl_seconds: float) -> None:
    """Extend (or create: a lost row is recreated) the lease for another TTL_SECONDS."""
    expires_at = timezone.now() + dt.timedelta(seconds=ttl_seconds)
    Lease.objects.update_or_create(
        id=lease_id,
        defaults={"expires_at": expires_at},
        create_defaults={
            "expires_at": expires_at,
            "host": socket.gethostname()[:200],
            "pid": os.getpid(),
        },
    )


def lease_end(*, lease_id: str) -> None:
    """A clean shutdown, after its requests settled: nothing is left to sweep."""
    Lease.objects.filter(id=lease_id).delete()
