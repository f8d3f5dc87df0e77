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
from collections.abc import Iterable

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.models import CreditLease, Lease, Wallet


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
    """A clean shutdown, after its requests settled: nothing is left to sweep. Its
    credit leases go back to their wallets."""
    credit_leases_end(lease_ids=[lease_id])
    Lease.objects.filter(id=lease_id).delete()


def credit_leases_end(*, lease_ids: Iterable[str]) -> int:
    """Give the credit of these leases' CreditLease rows back to their wallets; returns
    how much. Each row in its own transaction, wallet locked first (the lock order)."""
    back = 0
    for row_id, wallet_id in CreditLease.objects.filter(lease_id__in=list(lease_ids)).values_list(
        "pk", "wallet_id"
    ):
        with transaction.atomic():
            Wallet.objects.select_for_update().filter(pk=wallet_id).exists()
            row = CreditLease.objects.select_for_update().filter(pk=row_id).first()
            if row is None:  # given back meanwhile
                continue
            Wallet.objects.filter(pk=wallet_id).update(leased=F("leased") - row.amount)
            row.delete()
            back += row.amount
    return back
