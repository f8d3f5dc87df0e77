"""Monthly statements: one per organization and UTC month, frozen when issued, from the
ledger (balance movements), plan payments and the usage logs; their PDF and their email.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Organization
from accounts.templatetags.portal_format import money_exact
from billing.documents import billed_to_details, issuer_details
from billing.models import LedgerEntry, PlanPayment, Statement
from billing.pdf import pdf_document
from billing.selectors import month_after, month_before
from billing.subscriptions import billing_recipients, price_from_minor
from logs.models import DailyUsage, RequestLog, RolledUpDay

log = logging.getLogger(__name__)

# The ledger kinds a statement sums, each into its own Statement field.
_KIND_FIELDS = {
    LedgerEntry.Kind.TOPUP: "topups",
    LedgerEntry.Kind.REDEEM: "redemptions",
    LedgerEntry.Kind.CHARGE: "usage",
    LedgerEntry.Kind.REFUND: "refunds",
    LedgerEntry.Kind.ADJUST: "adjustments",
}
_PERIOD = re.compile(r"(\d{4})-(\d{2})")


class StatementMismatch(Exception):
    """The ledger does not add up for a month: a bug to fix, never a statement to send."""


def period_parse(text: str) -> dt.date | None:
    """The first day of the month written YYYY-MM (as in URLs), or None."""
    match = _PERIOD.fullmatch(text)
    if match is None:
        return None
    year, month = int(match[1]), int(match[2])
    if not (1 <= year <= 9999 and 1 <= month <= 12):
        return None
    return dt.date(year, month, 1)


def period_bounds(period: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The month's first instant and the next month's, in UTC."""
    start = dt.datetime.combine(period, dt.time.min, tzinfo=dt.UTC)
    return start, dt.datetime.combine(month_after(period), dt.time.min, tzinfo=dt.UTC)


def previous_period(*, now: dt.datetime | None = None) -> dt.date:
    today = (now or timezone.now()).astimezone(dt.UTC).date()
    return month_before(today.replace(day=1))


# --- Issuing --------------------------------------------------------------------------


def _balance_at(entries: QuerySet[LedgerEntry], moment: dt.datetime) -> int:
    """The balance just before MOMENT: the sum of the entries before it (the ledger is
    the balance; `billing reconcile` proves it nightly). Not the last entry's
    balance_after: entries are stamped with their writer's clock (a settlement batch with
    its transaction's start), so the last by time need not be the last applied."""
    total = entries.filter(created_at__lt=moment).aggregate(total=Sum("amount"))["total"]
    return total or 0


def _ledger_figures(
    organization_id: int, start: dt.datetime, end: dt.datetime
) -> tuple[dict[str, int], int]:
    """The Statement's balance fields, and how many entries the month has."""
    entries = LedgerEntry.objects.filter(wallet__organization_id=organization_id)
    opening = _balance_at(entries, start)
    closing = _balance_at(entries, end)
    figures = {"opening_balance": opening, "closing_balance": closing}
    figures |= dict.fromkeys(_KIND_FIELDS.values(), 0)
    sums = (
        entries.filter(created_at__gte=start, created_at__lt=end)
        .values("kind")
        .annotate(total=Sum("amount"), n=Count("id"))
        .order_by()
    )
    count = 0
    for row in sums:
        count += row["n"]
        if row["kind"] not in _KIND_FIELDS:
            raise StatementMismatch(f"ledger entries of an unknown kind {row['kind']!r}")
        figures[_KIND_FIELDS[row["kind"]]] = row["total"]
    moved = sum(figures[name] for name in _KIND_FIELDS.values())
    if opening + moved != closing:
        raise StatementMismatch(
            f"opening {opening} + movements {moved} != closing {closing} micro-USD"
        )
    return figures, count


def _plan_charges(organization_id: int, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    rows = (
        PlanPayment.objects.filter(
            organization_id=organization_id, paid_at__gte=start, paid_at__lt=end
        )
        .values("currency")
        .annotate(total=Sum("amount"))
        .order_by("currency")
    )
    return {row["currency"].lower(): row["total"] for row in rows}


def _usage_by_model(organization_id: int, period: dt.date) -> list[dict[str, Any]]:
    """Requests and costs per model: rolled-up days from DailyUsage, the others (not
    rolled up yet) from the request logs; never both for one day."""
    start, end = period_bounds(period)
    last_day = month_after(period) - dt.timedelta(days=1)
    rolled = set(
        RolledUpDay.objects.filter(day__gte=period, day__lte=last_day).values_list("day", flat=True)
    )
    days = [period + dt.timedelta(days=n) for n in range((last_day - period).days + 1)]
    live_days = [day for day in days if day not in rolled]
    totals: dict[str, dict[str, int]] = defaultdict(
        lambda: {"requests": 0, "cost": 0, "plan_cost": 0}
    )
    sums = {"n": Sum("requests"), "c": Sum("cost"), "p": Sum("plan_cost")}
    for row in (
        DailyUsage.objects.filter(organization_id=organization_id, day__in=sorted(rolled))
        .values("model")
        .annotate(**sums)
        .order_by()
    ):
        _add(totals[row["model"]], row)
    if live_days:
        live = (
            RequestLog.objects.filter(
                organization_id=organization_id, created_at__gte=start, created_at__lt=end
            )
            .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
            .filter(day__in=live_days)
            .values("model")
            .annotate(n=Count("id"), c=Sum("cost"), p=Sum("plan_cost"))
            .order_by()
        )
        for row in live:
            _add(totals[row["model"]], row)
    return [
        {"model": model, **numbers}
        for model, numbers in sorted(totals.items(), key=lambda item: (-item[1]["cost"], item[0]))
        if numbers["requests"] or numbers["cost"] or numbers["plan_cost"]
    ]


def _add(into: dict[str, int], row: dict[str, Any]) -> None:
    into["requests"] += row["n"] or 0
    into["cost"] += row["c"] or 0
    into["plan_cost"] += row["p"] or 0


def statement_issue(
    *, organization_id: int, period: dt.date, now: dt.datetime | None = None
) -> Statement | None:
    """Issue the organization's statement of the month starting PERIOD (UTC), once.

    Idempotent: a statement already issued for the month is returned unchanged (the
    unique (organization, period) constraint settles a race). None for an idle
    organization: no ledger entry, plan payment or usage in the month and a zero balance.
    Raises ValueError for a month not over yet and StatementMismatch when the ledger does
    not add up (opening + movements must equal closing, and match the entries' recorded
    balances).
    """
    if period.day != 1:
        raise ValueError(f"a statement period starts on the 1st, not {period}")
    start, end = period_bounds(period)
    if end > (now or timezone.now()):
        raise ValueError(f"the month of {period:%Y-%m} is not over")
    existing = Statement.objects.filter(organization_id=organization_id, period=period).first()
    if existing is not None:
        return existing
    organization = Organization.objects.get(pk=organization_id)
    figures, entries = _ledger_figures(organization_id, start, end)
    plan_charges = _plan_charges(organization_id, start, end)
    usage_by_model = _usage_by_model(organization_id, period)
    if not (entries or plan_charges or usage_by_model or figures["closing_balance"]):
        return None
    try:
        with transaction.atomic():
            return Statement.objects.create(
                organization=organization,
                period=period,
                plan_charges=plan_charges,
                usage_by_model=usage_by_model,
                billed_to=billed_to_details(organization),
                issuer=issuer_details(),
                **figures,
            )
    except IntegrityError:  # issued concurrently
        return Statement.objects.get(organization_id=organization_id, period=period)


def _candidates(period: dt.date) -> list[int]:
    """Organizations that may have something to state: a ledger entry before the month's
    end (so possibly a balance), a plan payment or request logs or usage in the month."""
    start, end = period_bounds(period)
    ids = set(
        LedgerEntry.objects.filter(created_at__lt=end)
        .values_list("wallet__organization_id", flat=True)
        .distinct()
    )
    ids |= set(
        PlanPayment.objects.filter(paid_at__gte=start, paid_at__lt=end)
        .values_list("organization_id", flat=True)
        .distinct()
    )
    ids |= set(
        DailyUsage.objects.filter(day__gte=period, day__lt=month_after(period))
        .values_list("organization_id", flat=True)
        .distinct()
    )
    ids |= set(
        RequestLog.objects.filter(created_at__gte=start, created_at__lt=end)
        .values_list("organization_id", flat=True)
        .distinct()
    )
    return sorted(ids)


def statements_issue_month(*, period: dt.date, now: dt.datetime | None = None) -> list[int]:
    """Issue every organization's statement of PERIOD; returns the statements' ids (new
    and already issued). Each organization is its own transaction: one that fails is
    logged by id and the others still get theirs."""
    issued: list[int] = []
    for organization_id in _candidates(period):
        try:
            statement = statement_issue(organization_id=organization_id, period=period, now=now)
        except Exception:
            log.exception("statement of org %s for %s not issued", organization_id, period)
            continue
        if statement is not None:
            issued.append(statement.pk)
    return issued


def statements_to_email(*, period: dt.date) -> list[int]:
    return list(
        Statement.objects.filter(period=period, emailed_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


# --- Reading ----------------------------------------------------------------------------


def statements_for_organization(*, organization: Organization) -> QuerySet[Statement]:
    """The organization's statements, newest month first."""
    return Statement.objects.filter(organization=organization).order_by("-period")


def statement_for_period(*, organization: Organization, period: dt.date) -> Statement | None:
    return Statement.objects.filter(organization=organization, period=period).first()


def statement_for_month(*, organization: Organization, month: str) -> Statement | None:
    """The organization's statement of MONTH as URLs write it (YYYY-MM); None for a month
    without one or a string that is not a month."""
    period = period_parse(month)
    return (
        None if period is None else statement_for_period(organization=organization, period=period)
    )


def statement_summary(statement: Statement) -> list[tuple[str, int]]:
    """The statement's balance lines in order: opening, each movement, closing."""
    return [
        (_("Opening balance"), statement.opening_balance),
        (_("Top-ups"), statement.topups),
        (_("Redeemed codes"), statement.redemptions),
        (_("Usage"), statement.usage),
        (_("Refunds"), statement.refunds),
        (_("Adjustments"), statement.adjustments),
        (_("Closing balance"), statement.closing_balance),
    ]


def plan_charge_lines(statement: Statement) -> list[tuple[str, str]]:
    """Plan payments of the month per currency: ("USD", "20.00")."""
    return [
        (currency.upper(), f"{price_from_minor(int(amount), currency):,}")
        for currency, amount in sorted(statement.plan_charges.items())
    ]


def statement_filename(statement: Statement) -> str:
    return f"statement-{statement.period:%Y-%m}.pdf"


def statement_pdf(statement: Statement) -> bytes:
    """The statement as a PDF, from its frozen figures and parties."""
    usage_rows = [
        [
            row["model"] or "-",
            f"{row['requests']:,}",
            money_exact(row["cost"]),
            money_exact(row["plan_cost"]),
        ]
        for row in statement.usage_by_model
    ]
    tables: list[tuple[str, list[str], list[list[str]]]] = [
        (
            _("Balance"),
            [_("Item"), _("Amount (USD)")],
            [[label, money_exact(amount)] for label, amount in statement_summary(statement)],
        )
    ]
    if statement.plan_charges:
        tables.append(
            (
                _("Plan charges"),
                [_("Currency"), _("Paid")],
                [list(line) for line in plan_charge_lines(statement)],
            )
        )
    if usage_rows:
        tables.append(
            (
                _("Usage by model"),
                [_("Model"), _("Requests"), _("Charged"), _("Covered by plan")],
                usage_rows,
            )
        )
    return pdf_document(
        title=_("Statement %(month)s") % {"month": f"{statement.period:%Y-%m}"},
        issuer=statement.issuer,
        billed_to=statement.billed_to,
        meta=[
            (_("Period"), _period_text(statement)),
            (_("Issued"), f"{statement.issued_at.astimezone(dt.UTC):%Y-%m-%d}"),
            (_("Statement"), f"{statement.organization_id}-{statement.period:%Y%m}"),
        ],
        tables=tables,
        notes=_notes(),
    )


def _period_text(statement: Statement) -> str:
    last = month_after(statement.period) - dt.timedelta(days=1)
    return _("%(first)s to %(last)s (UTC)") % {
        "first": f"{statement.period:%Y-%m-%d}",
        "last": f"{last:%Y-%m-%d}",
    }


def _notes() -> list[str]:
    return [
        _(
            "Amounts are prepaid credit in USD, exact to 0.000001 USD. Usage, refunds and "
            "negative adjustments reduce the balance."
        ),
        _(
            "Plan charges were paid separately, not from the balance. Usage by model counts "
            "every request of the month, including those covered by a plan."
        ),
    ]


# --- Email ------------------------------------------------------------------------------


def statement_email(*, statement_id: int, now: dt.datetime | None = None) -> int:
    """Email the statement (PDF attached) to the organization's owners and billing
    members, once: the first caller claims it by setting emailed_at with a conditional
    update; a send that fails gives the claim back so a retry can send. Returns the
    number of recipients (0 when already sent)."""
    claimed = Statement.objects.filter(pk=statement_id, emailed_at__isnull=True).update(
        emailed_at=now or timezone.now()
    )
    if not claimed:
        return 0
    statement = Statement.objects.select_related("organization").get(pk=statement_id)
    recipients = billing_recipients(statement.organization_id)
    if not recipients:
        return 0
    context = {
        "statement": statement,
        "organization": statement.organization,
        "summary": statement_summary(statement),
        "plan_charges": plan_charge_lines(statement),
        "url": statement_url(statement),
    }
    message = EmailMessage(
        subject=render_to_string("billing/email/statement_subject.txt", context).strip(),
        body=render_to_string("billing/email/statement_body.txt", context),
        to=recipients,
    )
    message.attach(statement_filename(statement), statement_pdf(statement), "application/pdf")
    try:
        message.send()
    except Exception:
        Statement.objects.filter(pk=statement_id).update(emailed_at=None)
        raise
    return len(recipients)


def statement_url(statement: Statement) -> str:
    """The statement's page on the portal, as an absolute URL for emails."""
    path = reverse("billing-statement", args=[f"{statement.period:%Y-%m}"])
    return settings.SITE_URL.rstrip("/") + path
