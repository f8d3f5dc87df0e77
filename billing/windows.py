"""How much of a cap or plan window is used, and when it frees up (reads only).

Shared by the refusal message (relay/pipeline/reserve.py), the billing page's plan
windows and the key page's caps. The same counting as the hold's admission
(billing/caps.py): settled usage in the window's buckets plus the holds in flight.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from billing.caps import CONCURRENT, SPAN_SECONDS, USD, Cap, counted_since, next_start
from billing.models import Hold, Subscription, UsageBucket
from billing.plans import plan_caps


@dataclass(frozen=True, slots=True)
class CapUse:
    cap: Cap
    used: int  # settled usage counted now (micro-USD or requests)
    in_flight: int  # held by requests in flight (micro-USD, or a count)
    frees_at: dt.datetime | None  # when some counted usage next leaves the window
    # (bucket start, usage) of the counted buckets, oldest first (rolling windows only)
    buckets: tuple[tuple[dt.datetime, int], ...] = ()

    @property
    def limit(self) -> int:
        return self.cap.limit

    @property
    def percent(self) -> float:
        return min(100.0, 100.0 * (self.used + self.in_flight) / self.cap.limit)

    def retry_at(self, need: int, now: dt.datetime) -> dt.datetime | None:
        """The earliest time at which NEED more fits, if nothing else is used meanwhile;
        None when it never fits without the requests in flight finishing."""
        room = self.cap.limit - self.in_flight - need
        if room < 0:
            return None
        if self.cap.unit == CONCURRENT:
            return now
        if self.cap.span in SPAN_SECONDS:
            used = self.used
            size = dt.timedelta(seconds=SPAN_SECONDS[self.cap.span])
            window = dt.timedelta(seconds=self.cap.window)
            if used <= room:
                return now
            for start, amount in self.buckets:
                used -= amount
                if used <= room:
                    return max(now, start + size + window)
            return now
        if self.used <= room:
            return now
        return next_start(self.cap.span, counted_since(self.cap, now))


def _in_flight(cap: Cap) -> QuerySet[Hold]:
    kind, ident = cap.meter[0], int(cap.meter[1:])
    if kind == "s":
        return Hold.objects.filter(subscription_id=ident)
    holds = (
        Hold.objects.filter(api_key_id=ident)
        if kind == "k"
        else Hold.objects.filter(wallet__organization_id=ident)
    )
    if cap.unit == USD:
        # Spend caps count money: requests a plan pays for do not spend.
        holds = holds.filter(subscription_id__isnull=True)
    return holds


def cap_use(cap: Cap, *, now: dt.datetime | None = None) -> CapUse:
    now = now or timezone.now()
    holds = _in_flight(cap)
    if cap.unit == USD:
        in_flight = holds.aggregate(total=Sum("amount"))["total"] or 0
    else:
        in_flight = holds.aggregate(n=Count("id"))["n"]
    if cap.unit == CONCURRENT:
        return CapUse(cap=cap, used=0, in_flight=in_flight, frees_at=None)
    since = counted_since(cap, now)
    rows = (
        UsageBucket.objects.filter(meter=cap.meter, span=cap.span, start__gte=since)
        .order_by("start")
        .values_list("start", "cost" if cap.unit == USD else "requests")
    )
    buckets = tuple((start, amount) for start, amount in rows if amount)
    used = sum(amount for _, amount in buckets)
    if cap.span in SPAN_SECONDS:
        size = dt.timedelta(seconds=SPAN_SECONDS[cap.span])
        frees_at = buckets[0][0] + size + dt.timedelta(seconds=cap.window) if buckets else None
    else:
        frees_at = next_start(cap.span, since)
    return CapUse(cap=cap, used=used, in_flight=in_flight, frees_at=frees_at, buckets=buckets)


def plan_windows(*, subscription: Subscription, now: dt.datetime | None = None) -> list[CapUse]:
    """Each window of the subscription's plan, in the plan's order (5 hours, week, month)."""
    now = now or timezone.now()
    caps = plan_caps(subscription_id=subscription.pk, plan=subscription.plan)
    return [cap_use(cap, now=now) for cap in caps]
