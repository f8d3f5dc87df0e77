"""Reads for the billing portal and API, always scoped to one organization."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate

from accounts.models import Organization
from billing.models import LedgerEntry, LowBalanceAlert, TopUp, UncollectedUsage, Wallet
from billing.topups import SOURCE_TOPUP


def topups_for_organization(*, organization: Organization) -> QuerySet[TopUp]:
    return TopUp.objects.filter(organization=organization).order_by("-created_at")


def wallet_for_organization(*, organization: Organization) -> Wallet:
    return Wallet.objects.get(organization=organization)


def low_balance_threshold(*, organization: Organization) -> int | None:
    alert = LowBalanceAlert.objects.filter(wallet__organization=organization).first()
    return alert.threshold if alert is not None else None


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One line of the customer's statement: an entry, or a day's charges summed."""

    at: dt.datetime | dt.date
    kind: str
    amount: int
    note: str
    count: int = 1
    topup_id: int | None = None


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def month_after(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def month_before(month: dt.date) -> dt.date:
    return (month - dt.timedelta(days=1)).replace(day=1)


def ledger_first_month(*, organization: Organization) -> dt.date | None:
    """The (UTC) month of the organization's oldest ledger entry, if any."""
    first = (
        LedgerEntry.objects.filter(wallet__organization=organization)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return month_start(first.astimezone(dt.UTC).date()) if first else None


def ledger_statement(*, organization: Organization, month: dt.date) -> list[LedgerLine]:
    """One (UTC) month of the statement, newest first: every entry except request
    charges, which are summed into one line per day."""
    begin = dt.datetime.combine(month_start(month), dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(month_after(month), dt.time.min, tzinfo=dt.UTC)
    entries = LedgerEntry.objects.filter(
        wallet__organization=organization, created_at__gte=begin, created_at__lt=end
    )
    lines = [
        LedgerLine(
            at=e.created_at,
            kind=e.kind,
            amount=e.amount,
            note=e.note,
            topup_id=int(e.source_id)
            if e.source_type == SOURCE_TOPUP and e.source_id.isdigit()
            else None,
        )
        for e in entries.exclude(kind=LedgerEntry.Kind.CHARGE).order_by("-created_at")
    ]
    daily = (
        entries.filter(kind=LedgerEntry.Kind.CHARGE)
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("day")
        .annotate(total=Sum("amount"), n=Count("id"))
        .order_by("-day")
    )
    for row in daily:
        lines.append(
            LedgerLine(
                at=dt.datetime.combine(row["day"], dt.time.max, tzinfo=dt.UTC),
                kind=LedgerEntry.Kind.CHARGE,
                amount=row["total"],
                note="",
                count=row["n"],
            )
        )
    lines.sort(key=lambda line: line.at, reverse=True)
    return lines


def uncollected_recent(*, channel_ids: list[int], since: dt.datetime) -> dict[int, int]:
    """Micro-USD reported beyond the holds since SINCE, for each of CHANNEL_IDS that has any."""
    rows = (
        UncollectedUsage.objects.filter(channel_id__in=channel_ids, created_at__gte=since)
        .values("channel_id")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    return {row["channel_id"]: row["total"] or 0 for row in rows}


def uncollected_counts(
    *, since: dt.datetime, channel_ids: list[int] | None = None
) -> dict[int, int]:
    """Requests reported beyond their holds since SINCE, per channel that has any (all
    channels, or CHANNEL_IDS)."""
    rows = UncollectedUsage.objects.filter(created_at__gte=since, channel_id__isnull=False)
    if channel_ids is not None:
        rows = rows.filter(channel_id__in=channel_ids)
    counts = rows.values("channel_id").annotate(n=Count("id")).order_by()
    return {row["channel_id"]: row["n"] for row in counts}


def uncollected_by_channel() -> dict[int | None, int]:
    """Micro-USD reported beyond the requests' holds, per channel, since records began."""
    rows = UncollectedUsage.objects.values("channel_id").annotate(total=Sum("amount"))
    return {row["channel_id"]: row["total"] or 0 for row in rows.order_by()}
