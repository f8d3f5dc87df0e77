"""Reads for the billing portal and API, always scoped to one organization."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate

from accounts.models import Organization
from billing.models import LedgerEntry, LowBalanceAlert, TopUp, Wallet


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


def ledger_statement(*, organization: Organization, limit: int = 200) -> list[LedgerLine]:
    """Every non-charge entry, plus charges as one line per (UTC) day, newest first."""
    entries = LedgerEntry.objects.filter(wallet__organization=organization)
    lines = [
        LedgerLine(
            at=e.created_at,
            kind=e.kind,
            amount=e.amount,
            note=e.note,
            topup_id=int(e.source_id) if e.source_type == "topup" else None,
        )
        for e in entries.exclude(kind=LedgerEntry.Kind.CHARGE).order_by("-created_at")[:limit]
    ]
    daily = (
        entries.filter(kind=LedgerEntry.Kind.CHARGE)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(total=Sum("amount"), n=Count("id"))
        .order_by("-day")[:limit]
    )
    for row in daily:
        day = row["day"]
        lines.append(
            LedgerLine(
                at=dt.datetime.combine(day, dt.time.max, tzinfo=dt.UTC),
                kind=LedgerEntry.Kind.CHARGE,
                amount=row["total"],
                note="",
                count=row["n"],
            )
        )
    lines.sort(key=lambda line: line.at, reverse=True)
    return lines[:limit]
