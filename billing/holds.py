"""Holds: credit reserved before a request reaches an upstream, settled or released after.

Guarantees (tested on PostgreSQL under concurrency):
- a hold is placed only if the wallet's available credit (balance - held) covers it and,
  for keys with a spend limit, the key's period spend + held covers it too;
- settling is exactly once per reference: the charge's ledger row is unique on
  ("request", reference), and the hold row is deleted in the same transaction;
- a charge never exceeds its hold: usage reported beyond it is recorded as
  `UncollectedUsage` (the operator's loss, flagged per channel), so relay traffic never
  drives a balance below zero nor a key past its spend limit;
- a hold whose request never settled (process killed) is released by `holds_sweep`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import ApiKey
from billing.exceptions import InsufficientBalance
from billing.models import Hold, LedgerEntry, UncollectedUsage, Wallet
from logs.models import RequestLog

SOURCE_REQUEST = "request"


class KeyLimitExceeded(InsufficientBalance):
    pass


@dataclass(slots=True)
class Settlement:
    reference: str
    wallet_id: int
    api_key_id: int | None
    cost: int
    log: dict[str, Any]


def _month_start(today: dt.date) -> dt.date:
    return today.replace(day=1)


def hold_place(
    *,
    reference: str,
    wallet_id: int,
    api_key_id: int | None,
    amount: int,
    ttl_seconds: int,
) -> None:
    """Reserve AMOUNT for a request; atomic; raises InsufficientBalance or KeyLimitExceeded."""
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
        )


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
                    channel_id=settlement.log.get("channel_id"),
                    model=str(settlement.log.get("model", ""))[:200],
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
            RequestLog.objects.create(request_id=ref, cost=cost, **settlement.log)
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
    """Release holds past their expiry: their request died without settling."""
    now = now or timezone.now()
    released = 0
    for reference in Hold.objects.filter(expires_at__lt=now).values_list("reference", flat=True):
        released += hold_release(reference=reference)
    return released
