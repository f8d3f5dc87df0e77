"""Holds: credit reserved before a request reaches an upstream, settled or released after.

Guarantees (tested on PostgreSQL under concurrency):
- a hold is placed only if the wallet's available credit (balance + credit line - held)
  covers it and, for keys with a spend limit, the key's period spend + held covers it too;
- settling is exactly once per reference: the charge's ledger row is unique on
  ("request", reference), and the hold row is deleted in the same transaction;
- a charge never exceeds its hold: usage reported beyond it is recorded as
  `UncollectedUsage` (the operator's loss, flagged per channel), so relay traffic never
  drives a balance below its floor (zero, or minus its credit line) nor a key past its
  spend limit;
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
from django.utils.dateparse import parse_datetime

from accounts.models import ApiKey
from billing import caps as caps_clock
from billing.caps import CONCURRENT, USD, Cap, bucket_start
from billing.exceptions import CapReached, InsufficientBalance
from billing.journal import journal_read
from billing.leases import credit_leases_end
from billing.models import (
    CreditLease,
    Hold,
    Lease,
    LedgerEntry,
    UncollectedUsage,
    UsageBucket,
    Wallet,
)
from billing.windows import cap_use
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


@dataclass(frozen=True, slots=True)
class Admission:
    """What a hold is checked against besides the balance and the key's spend limit: the
    plan that may fund it (its windows) and the key's and organization's caps."""

    subscription_id: int | None = None
    plan_caps: tuple[Cap, ...] = ()
    fallback: bool = True  # when a window is full, fund from the balance instead
    caps: tuple[Cap, ...] = ()

    def meters(self, *, plan: bool) -> list[str]:
        """The usage buckets the settlement adds to ("s12:m"...); the plan's only when
        the plan funds the request."""
        caps = (*self.plan_caps, *self.caps) if plan else self.caps
        return sorted({f"{c.meter}:{c.span}" for c in caps if c.unit != CONCURRENT})


NO_ADMISSION = Admission()


@dataclass(frozen=True, slots=True)
class Placed:
    funding: str  # "plan" or "balance"
    available: int  # the wallet's available credit after the hold


@dataclass
class HoldAsked:
    """A hold as the relay's batch functions take it (th_hold_place_many for the fast
    ledger, th_hold_carve_many for holds written behind a credit lease)."""

    reference: str
    wallet_id: int
    api_key_id: int | None
    amount: int
    ttl: float
    lease: str
    progress: dict[str, Any]

    def batch_json(self, ord_: int) -> dict[str, Any]:
        return {
            "ord": ord_,
            "ref": self.reference,
            "wallet": self.wallet_id,
            "key": self.api_key_id,
            "amount": self.amount,
            "ttl": self.ttl,
            "lease": self.lease,
            "progress": self.progress,
        }


def _month_start(today: dt.date) -> dt.date:
    return today.replace(day=1)


def _caps_refused(caps: tuple[Cap, ...], *, amount: int, now: dt.datetime, plan: bool) -> int:
    """th_caps_refused on the ORM: the index of the first cap that cannot take the
    request, or -1. Counts as the portal reads (billing/windows.cap_use). Run under the
    wallet's lock."""
    for index, cap in enumerate(caps):
        if cap.unit == USD and cap.meter[0] != "s" and plan:
            continue  # a request the plan pays for spends no money
        use = cap_use(cap, now=now)
        if use.used + use.in_flight + (amount if cap.unit == USD else 1) > cap.limit:
            return index
    return -1


def hold_place(
    *,
    reference: str,
    wallet_id: int,
    api_key_id: int | None,
    amount: int,
    ttl_seconds: int,
    lease: str = "",
    progress: dict[str, Any] | None = None,
    admission: Admission = NO_ADMISSION,
    now: dt.datetime | None = None,
) -> Placed:
    """Reserve AMOUNT for a request; atomic. Funded by the plan when ADMISSION names one
    whose windows have room, else by the wallet (if the plan allows falling back).
    Raises InsufficientBalance, KeyLimitExceeded or CapReached, changing nothing.

    LEASE ties the hold to the placing process; PROGRESS is its first snapshot."""
    clock = now or caps_clock.clock()  # windows and caps count at this time
    now = timezone.now()
    with transaction.atomic():
        # Lock order everywhere: wallet, then key. (The reverse deadlocks with settle.)
        # The wallet's lock serialises the organization's admissions: caps are exact.
        wallet = Wallet.objects.select_for_update().filter(pk=wallet_id).first()
        if wallet is None:
            raise InsufficientBalance("no wallet")
        available = wallet.available  # a credit line lowers the floor below zero
        plan = False
        if admission.subscription_id is not None:
            failed = _caps_refused(admission.plan_caps, amount=amount, now=clock, plan=True)
            if failed < 0:
                plan = True
            elif not admission.fallback:
                raise CapReached(failed, window=True)
        failed = _caps_refused(admission.caps, amount=amount, now=clock, plan=plan)
        if failed >= 0:
            raise CapReached(failed, window=False)
        if not plan:
            if wallet.free < amount:  # leased credit is not free for this hold
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
            Wallet.objects.filter(pk=wallet_id).update(held=F("held") + amount)
            available -= amount
        Hold.objects.create(
            reference=reference,
            wallet_id=wallet_id,
            api_key_id=api_key_id,
            amount=amount,
            expires_at=now + dt.timedelta(seconds=ttl_seconds),
            lease=lease,
            progress=progress or {},
            subscription_id=admission.subscription_id if plan else None,
            meters=admission.meters(plan=plan),
        )
    return Placed(funding="plan" if plan else "balance", available=available)


def hold_progress_set(*, reference: str, progress: dict[str, Any]) -> None:
    """Journal a request's progress on its hold (when there is no Redis); a no-op once
    the request settled."""
    Hold.objects.filter(reference=reference).update(progress=progress)


def hold_settle(settlement: Settlement, *, now: dt.datetime | None = None) -> bool:
    """Charge the actual cost, at most the hold, release the hold and write the request
    log. Atomic. Cost beyond the hold is recorded as uncollected, never charged. A hold
    a plan funded charges nothing: its cost is drawn from the plan's windows. The usage
    goes to the buckets of the hold's meters (at NOW: windows and caps count from there).

    Returns False (and changes nothing) when this reference was already settled.
    """
    ref = settlement.reference
    try:
        with transaction.atomic():
            # Wallet first, like hold_place: an admission counting this request sees its
            # hold or its usage, never neither.
            wallet = (
                Wallet.objects.select_for_update()
                .only("balance")
                .filter(pk=settlement.wallet_id)
                .first()
            )
            hold = Hold.objects.select_for_update().filter(reference=ref).first()
            if RequestLog.objects.filter(request_id=ref).exists():
                # Settled before, perhaps by another path at another created_at: the
                # log's unique key includes it on PostgreSQL (logs/partitions.py). A
                # hold still there is stale: let go, not charged (as SETTLE_BATCH does).
                if hold is not None:
                    hold_release(reference=ref)
                return False
            held = 0
            if hold is not None:
                held = hold.amount
                hold.delete()
            capped = min(settlement.cost, held)
            plan = hold is not None and hold.subscription_id is not None
            cost = 0 if plan else capped
            if settlement.cost > capped:
                UncollectedUsage.objects.create(
                    reference=ref,
                    wallet_id=settlement.wallet_id,
                    api_key_id=settlement.api_key_id,
                    channel_id=settlement.record.channel_id,
                    model=settlement.record.model[:200],
                    cost=settlement.cost,
                    amount=settlement.cost - capped,
                )
            wallet_held = 0 if plan else held
            if wallet is not None and (cost or wallet_held):
                Wallet.objects.filter(pk=wallet.pk).update(
                    balance=F("balance") - cost, held=F("held") - wallet_held
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
                key_held = held if hold is not None and hold.api_key_id and not plan else 0
                ApiKey.objects.filter(pk=settlement.api_key_id).update(
                    spent=F("spent") + cost,
                    period_spent=F("period_spent") + cost,
                    held=F("held") - key_held,
                    last_used_at=timezone.now(),
                )
            RequestLog.objects.create(
                request_id=ref,
                cost=cost,
                plan_cost=capped if plan else 0,
                subscription_id=hold.subscription_id if hold is not None else None,
                hold=held,
                **settlement.record.columns(),
            )
            if hold is not None and hold.meters:
                counted = settlement.record.status_code < 400 or capped > 0
                _buckets_add(
                    hold.meters,
                    plan_cost=capped if plan else 0,
                    cost=cost,
                    counted=counted,
                    at=now or caps_clock.clock(),
                )
    except IntegrityError:
        # The charge row or the log row already exists: settled before. Nothing changed.
        return False
    return True


def _buckets_add(
    meters: list[str], *, plan_cost: int, cost: int, counted: bool, at: dt.datetime
) -> None:
    for name in sorted(meters):
        meter, _, span = name.partition(":")
        start = bucket_start(span, at)
        amount = plan_cost if meter.startswith("s") else cost
        bucket, created = UsageBucket.objects.get_or_create(
            meter=meter,
            span=span,
            start=start,
            defaults={"cost": amount, "requests": int(counted)},
        )
        if not created:
            UsageBucket.objects.filter(pk=bucket.pk).update(
                cost=F("cost") + amount, requests=F("requests") + int(counted)
            )


def hold_release(*, reference: str) -> bool:
    """Give a hold's credit back without charging (e.g. the request never started)."""
    with transaction.atomic():
        hold = Hold.objects.select_for_update().filter(reference=reference).first()
        if hold is None:
            return False
        if hold.subscription_id is None:  # a plan's hold took nothing from either
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
        ).values_list("reference", "wallet_id", "api_key_id", "progress", "created_at")[
            :SWEEP_BATCH
        ]
    )
    journal = journal_read([row[0] for row in orphaned])
    done = 0
    for reference, wallet_id, api_key_id, progress, placed_at in orphaned:
        settlement = _interrupted(
            reference, wallet_id, api_key_id, journal.get(reference) or progress, placed_at
        )
        if settlement is not None:
            try:
                if hold_settle(settlement):
                    done += 1
                    continue
            except Exception as exc:  # a damaged snapshot must not keep the credit locked
                log.error("sweep could not settle request %s: %s", reference, type(exc).__name__)
        done += hold_release(reference=reference)
    # The credit a dead process leased goes back (billing/leases.py).
    dead = CreditLease.objects.filter(updated_at__lt=lapsed).exclude(lease_id__in=live)
    credit_leases_end(lease_ids=set(dead.values_list("lease_id", flat=True)))
    Lease.objects.filter(expires_at__lt=lapsed).exclude(
        id__in=Hold.objects.filter(lease__gt="").values("lease")
    ).delete()
    return done


def _interrupted(
    reference: str, wallet_id: int, api_key_id: int | None, snapshot: Any, placed_at: dt.datetime
) -> Settlement | None:
    """The settlement of a request cut off by its process's death, from its snapshot."""
    row = snapshot.get("log") if isinstance(snapshot, dict) else None
    if not isinstance(row, dict):
        return None
    if not _parses(row.get("created_at")):
        # Never "now": a sweep run twice must log the same created_at (the log's key).
        row = {**row, "created_at": placed_at.isoformat()}
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


def _parses(value: Any) -> bool:
    try:
        return isinstance(value, str) and parse_datetime(value) is not None
    except ValueError:
        return False
