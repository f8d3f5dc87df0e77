"""Reads for the operator's finance export: the money documents of every organization, each
kind in one stable order, (time, id), that a page can resume from after any row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from billing.models import CreditNote, LedgerEntry, PlanPayment, Statement, TopUp


@dataclass(frozen=True, slots=True)
class Position:
    """A row's place in its kind's order: its time, then its id."""

    at: dt.datetime
    id: int


@dataclass(frozen=True, slots=True)
class FinanceQuery:
    """Which rows a page or an export covers. Times are aware; `end` is exclusive."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    organization_id: int | None = None
    after: Position | None = None


@dataclass(frozen=True, slots=True)
class FinanceKind:
    """One kind of row the export lists: where its rows come from, which of its columns
    orders them in time, how it is filtered by organization, and its columns as
    (name in the export, ORM lookup)."""

    name: str
    rows: Callable[[], QuerySet[Any]]
    time: str
    organization: str
    columns: tuple[tuple[str, str], ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


def _refunds() -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REFUND)


def _paid_topups() -> QuerySet[TopUp]:
    # Only paid top-ups moved money; a paid one always has its paid_at.
    return TopUp.objects.filter(state=TopUp.State.PAID, paid_at__isnull=False)


def _columns(*names: str, **lookups: str) -> tuple[tuple[str, str], ...]:
    """NAMES as (name, lookup) pairs: the lookup is the name unless LOOKUPS says otherwise."""
    return tuple((name, lookups.get(name, name)) for name in names)


_LEDGER_FIELDS = (
    "id", "created_at", "organization", "kind", "amount", "balance_after", "source_type",
    "source_id", "note",
)  # fmt: skip

LEDGER = FinanceKind(
    name="ledger",
    rows=LedgerEntry.objects.all,
    time="created_at",
    organization="wallet__organization_id",
    columns=_columns(*_LEDGER_FIELDS, organization="wallet__organization_id"),
)
REFUNDS = FinanceKind(
    name="refunds",
    rows=_refunds,
    time="created_at",
    organization="wallet__organization_id",
    # The number of the credit note issued for the refund; a left join: null when none was.
    columns=_columns(
        *(f for f in _LEDGER_FIELDS if f != "kind"),
        "credit_note",
        organization="wallet__organization_id",
        credit_note="credit_note__number",
    ),
)
TOPUPS = FinanceKind(
    name="topups",
    rows=_paid_topups,
    time="paid_at",
    organization="organization_id",
    columns=_columns(
        "id", "organization", "provider", "state", "credit", "bonus", "pay_amount", "currency",
        "refunded_amount", "disputed_amount", "created_at", "paid_at", "provider_payment_id",
        organization="organization_id",
    ),
)  # fmt: skip
STATEMENTS = FinanceKind(
    name="statements",
    rows=Statement.objects.all,
    time="issued_at",
    organization="organization_id",
    columns=_columns(
        "id", "organization", "period", "opening_balance", "topups", "redemptions", "usage",
        "refunds", "adjustments", "closing_balance", "plan_charges", "usage_by_model",
        "billed_to", "issuer", "issued_at", "emailed_at",
        organization="organization_id",
    ),
)  # fmt: skip
CREDIT_NOTES = FinanceKind(
    name="credit-notes",
    rows=CreditNote.objects.all,
    time="issued_at",
    organization="organization_id",
    columns=_columns(
        "id", "number", "organization", "ledger_entry", "topup", "credit", "amount", "currency",
        "tax_rate", "reason", "billed_to", "issuer", "issued_at",
        organization="organization_id", ledger_entry="ledger_entry_id", topup="topup_id",
    ),
)  # fmt: skip
PLAN_PAYMENTS = FinanceKind(
    name="plan-payments",
    rows=PlanPayment.objects.all,
    time="paid_at",
    organization="organization_id",
    columns=_columns(
        "id", "organization", "subscription", "provider", "provider_ref", "amount", "currency",
        "period_start", "period_end", "paid_at",
        organization="organization_id", subscription="subscription_id",
    ),
)  # fmt: skip


def finance_rows(*, kind: FinanceKind, query: FinanceQuery, limit: int) -> list[dict[str, Any]]:
    """At most LIMIT rows of KIND that QUERY covers, oldest first (ties by id), each a dict
    of the kind's columns. Rows after `query.after` only: a page resumes where the last
    one ended, and rows added since with a later time are still ahead of it."""
    rows = kind.rows()
    if query.start is not None:
        rows = rows.filter(**{f"{kind.time}__gte": query.start})
    if query.end is not None:
        rows = rows.filter(**{f"{kind.time}__lt": query.end})
    if query.organization_id is not None:
        rows = rows.filter(**{kind.organization: query.organization_id})
    if query.after is not None:
        at, pk = query.after.at, query.after.id
        rows = rows.filter(Q(**{f"{kind.time}__gt": at}) | Q(**{kind.time: at, "pk__gt": pk}))
    names = kind.fields
    found = rows.order_by(kind.time, "pk").values_list(*(lookup for _, lookup in kind.columns))
    return [dict(zip(names, values, strict=True)) for values in found[:limit]]


def finance_position(*, kind: FinanceKind, row: dict[str, Any]) -> Position:
    """Where ROW (one of finance_rows') stands in its kind's order."""
    return Position(at=row[kind.time], id=row["id"])
