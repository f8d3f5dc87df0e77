"""Holds: credit reserved before a request reaches an upstream, settled or released after.

Guarantees (tested on PostgreSQL under concurrency):
- a hold is placed only if the wallet's available credit (balance - held) covers it and,
  for keys with a spend limit, the key's period spend + held covers it too;
- settling is exactly once per reference: the charge's ledger row is unique on
  ("request", reference), and the hold row is deleted in the same transaction;
- a charge never exceeds its hold: usage reported beyond it is recorded as
  `UncollectedUsage` (the operator's loss, flagged per channel), so relay traffic never
  drives a balance below zero nor a key past its spend limit;
- a hold whose request can no longer settle (its process died, so its lease lapsed; or it
  outlived its expiry) is settled by `holds_sweep` from its last progress snapshot
  (billing/journal.py), at most the hold, or released when it has none.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import ApiKey
from billing.exceptions import InsufficientBalance
from billing.journal import journal_read
from billing.models import Hold, Lease, LedgerEntry, UncollectedUsage, Wallet
from logs.models import RequestLog
from logs.records import RequestRecord

log = logging.getLogger(__name__)
SOURCE_REQUEST = "request"
SWEEP_BATCH = 500
# The log row of a request whose process died under it.
INTERRUPTED_STATUS = 500
INTERRUPTED_CODE = "interrupted"


class KeyLimitExceeded(InsufficientBalance):
    pass


@dataclass(slots=True)
class Settlement:
    reference: str
    wallet_id: int
    api_key_id: int | None
    cost: int
    record: RequestRecord  # the log row, but for the request id and the charge


def _month_start(today: dt.date) -> dt.date:
    return today.replace(day=1)


def hold_place(
    *,
    reference: str,
    wallet_id: int,
    api_key_id: int | None,
    amount: int,
    ttl_seconds: int,
    lease: str = "",
    progress: dict[str, Any] | None = None,
) -> None:
    """Reserve AMOUNT for a request; atomic; raises InsufficientBalance or KeyLimitExceeded.

    LEASE ties the hold to the placing process; PROGRESS is its first snapshot."""
    now = timezone.now()
    with transaction.atomic():
        # Lock order everywhere: wallet, then key. (The reverse deadlocks with settle.)
        available = Wallet.objects.filter(pk=wallet_id, balance__gte=F("held") + amount)
        if available.update(held=F("held") + amount) != 1:
            raise InsufficientBalance("insufficient balance")
        if api_key_id is not None:
            month = _month_start(now.date())
            # A monthly limit starts afresh with the month.
            ApiKey.objects.filter(
                pk=api_key_id, spend_limit_period=ApiKey.LimitPeriod.MONTH
            ).filter(Q(period_start__lt=month) | Q(period_start__isnull=True)).update(
                period_spent=0, period_start=month
            )
            covered = ApiKey.objects.filter(pk=api_key_id).filter(
                Q(spend_limit__isnull=True)
                | Q(spend_limit__gte=F("period_spent") + F("held") + amount)
            )
            if covered.update(held=F("held") + amount) != 1:
                raise KeyLimitExceeded("this API key has reached its spend limit")
        Hold.objects.create(
            reference=reference,
            wallet_id=wallet_id,
            api_key_id=api_key_id,
            amount=amount,
            expires_at=now + dt.timedelta(seconds=ttl_seconds),
            lease=lease,
            progress=progress or {},
        )


def hold_progress_set(*, reference: str, progress: dict[str, Any]) -> None:
    """Journal a request's progress on its hold (when there is no Redis); a no-op once
    the request settled."""
    Hold.objects.filter(reference=reference).update(progress=progress)


def hold_settle(settlement: Settlement) -> bool:
    """Charge the actual cost, at most the hold, release the hold and write the request
    log. Atomic. Cost beyond the hold is recorded as uncollected, never charged.

    Returns False (and changes nothing) when this reference was already settled.
    """
    ref = settlement.reference
    try:
        with transaction.atomic():
            hold = Hold.objects.select_for_update().filter(reference=ref).first()
            held = 0
            if hold is not None:
                held = hold.amount
                hold.delete()
            cost = min(settlement.cost, held)
            if settlement.cost > cost:
                UncollectedUsage.objects.create(
                    reference=ref,
                    wallet_id=settlement.wallet_id,
                    api_key_id=settlement.api_key_id,
                    channel_id=settlement.record.channel_id,
                    model=settlement.record.model[:200],
                    cost=settlement.cost,
                    amount=settlement.cost - cost,
                )
            if cost or held:
                wallet = (
                    Wallet.objects.select_for_update().only("balance").get(pk=settlement.wallet_id)
                )
                Wallet.objects.filter(pk=wallet.pk).update(
                    balance=F("balance") - cost, held=F("held") - held
                )
                if cost:
                    LedgerEntry.objects.create(
                        wallet_id=wallet.pk,
                        kind=LedgerEntry.Kind.CHARGE,
                        amount=-cost,
                        balance_after=wallet.balance - cost,
                        source_type=SOURCE_REQUEST,
                        source_id=ref,
                    )
            if settlement.api_key_id is not None:
                ApiKey.objects.filter(pk=settlement.api_key_id).update(
                    spent=F("spent") + cost,
                    period_spent=F("period_spent") + cost,
                    held=F("held") - (held if hold is not None and hold.api_key_id else 0),
                    last_used_at=timezone.now(),
                )
            RequestLog.objects.create(request_id=ref, cost=cost, **settlement.record.columns())
    except IntegrityError:
        # The charge row or the log row already exists: settled before. Nothing changed.
        return False
    return True


def hold_release(*, reference: str) -> bool:
    """Give a hold's credit back without charging (e.g. the request never started)."""
    with transaction.atomic():
        hold = Hold.objects.select_for_update().filter(reference=reference).first()
        if hold is None:
            return False
        Wallet.objects.filter(pk=hold.wallet_id).update(held=F("held") - hold.amount)
        if hold.api_key_id is not None:
            ApiKey.objects.filter(pk=hold.api_key_id).update(held=F("held") - hold.amount)
        hold.delete()
    return True


def holds_sweep(*, now: dt.datetime | None = None) -> int:
    """Settle or release the holds whose request can no longer settle itself: its process
    died (no live lease for LEASE_TTL_SECONDS) or it outlived its expiry. Each is settled
    from its newest progress snapshot (charged at most the hold, logged as interrupted),
    or released when it has none. Safe to run anywhere, any number of times at once."""
    now = now or timezone.now()
    lapsed = now - dt.timedelta(seconds=settings.LEASE_TTL_SECONDS)
    live = Lease.objects.filter(expires_at__gte=now).values("id")
    orphaned = list(
        Hold.objects.filter(
            Q(expires_at__lt=now)
            | (Q(lease__gt="") & Q(created_at__lt=lapsed) & ~Q(lease__in=live))
        ).values_list("reference", "wallet_id", "api_key_id", "progress")[:SWEEP_BATCH]
    )
    journal = journal_read([row[0] for row in orphaned])
    done = 0
    for reference, wallet_id, api_key_id, progress in orphaned:
        settlement = _interrupted(
            reference, wallet_id, api_key_id, journal.get(reference) or progress
        )
        if settlement is not None:
            try:
                if hold_settle(settlement):
                    done += 1
                    continue
            except Exception as exc:  # a damaged snapshot must not keep the credit locked
                log.error("sweep could not settle request %s: %s", reference, type(exc).__name__)
        done += hold_release(reference=reference)
    Lease.objects.filter(expires_at__lt=lapsed).exclude(
        id__in=Hold.objects.filter(lease__gt="").values("lease")
    ).delete()
    return done


def _interrupted(
    reference: str, wallet_id: int, api_key_id: int | None, snapshot: Any
) -> Settlement | None:
    """The settlement of a request cut off by its process's death, from its snapshot."""
    row = snapshot.get("log") if isinstance(snapshot, dict) else None
    if not isinstance(row, dict):
        return None
    try:
        record = RequestRecord.from_json(row)
    except (TypeError, ValueError):
        return None  # damaged: released rather than kept
    cost = snapshot.get("cost")
    return Settlement(
        reference=reference,
        wallet_id=wallet_id,
        api_key_id=api_key_id,
        cost=cost if isinstance(cost, int) and cost > 0 else 0,
        record=record.replace(status_code=INTERRUPTED_STATUS, error_code=INTERRUPTED_CODE),
    )
