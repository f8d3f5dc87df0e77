"""Reconciliation: prove the books. Read-only; every discrepancy is reported, none fixed.

Checks, for every wallet: balance equals the sum of its ledger entries and held equals
the sum of its open holds (those it funds: a plan's holds reserve the plan's windows); no
hold outlived its expiry, or the server that placed it, by more than the sweep's grace;
every paid top-up has its credit row and every top-up credit row belongs to a paid
top-up; no provider event stayed unprocessed (its task gave up) for a day; no key spent past
its limit and no balance is negative without a refund, dispute or adjustment to explain it
(relay traffic never charges more than it held); no request of the last day was charged
more than its hold, and every billed one recorded its upstream cost; every refund has its
credit note; and, as findings for
the operators, the channels whose upstreams reported usage beyond the requests' holds in
the last day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import BigIntegerField, Count, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import ApiKey, AuditEvent
from billing.models import (
    CreditLease,
    Hold,
    Lease,
    LedgerEntry,
    PaymentEvent,
    TopUp,
    UncollectedUsage,
    Wallet,
)
from billing.topups import SOURCE_TOPUP
from logs.models import UNCOSTED, RequestLog
from money import micros_to_usd

# Holds are swept every minute; one this far past its expiry means the sweep is not running.
HOLD_GRACE = dt.timedelta(minutes=15)
# The event task retries for about 80 minutes (backing off) before it gives up.
EVENT_GRACE = dt.timedelta(days=1)
# Request logs are checked over the last run's window (it runs nightly), with overlap.
REQUEST_WINDOW = dt.timedelta(hours=26)
_MAX_ROWS = 1000


@dataclass(frozen=True, slots=True)
class Discrepancy:
    check: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.subject}: {self.detail}"


def _sum_of(
    rows: QuerySet[LedgerEntry] | QuerySet[Hold] | QuerySet[CreditLease],
) -> Coalesce:
    total = rows.order_by().values("wallet").annotate(total=Sum("amount")).values("total")
    return Coalesce(Subquery(total, output_field=BigIntegerField()), Value(0))


def _wallet_name(wallet: Wallet) -> str:
    return f"wallet {wallet.pk} (org {wallet.organization_id})"


def reconcile_run(*, now: dt.datetime | None = None) -> list[Discrepancy]:
    now = now or timezone.now()
    found: list[Discrepancy] = []
    # One statement, so balance, ledger and holds come from the same snapshot even while
    # requests settle (PostgreSQL's read committed snapshots per statement).
    wallets = Wallet.objects.annotate(
        ledger_sum=_sum_of(LedgerEntry.objects.filter(wallet=OuterRef("pk"))),
        # A plan's holds reserve its windows, not the wallet.
        hold_sum=_sum_of(Hold.objects.filter(wallet=OuterRef("pk"), subscription_id__isnull=True)),
        lease_sum=_sum_of(CreditLease.objects.filter(wallet=OuterRef("pk"))),
    ).order_by("pk")
    for wallet in wallets:
        name = _wallet_name(wallet)
        if wallet.balance != wallet.ledger_sum:
            found.append(
                Discrepancy(
                    "balance",
                    name,
                    f"balance {micros_to_usd(wallet.balance)} != ledger sum "
                    f"{micros_to_usd(wallet.ledger_sum)}",
                )
            )
        if wallet.leased != wallet.lease_sum:
            found.append(
                Discrepancy(
                    "held",
                    name,
                    f"leased {micros_to_usd(wallet.leased)} != credit leases "
                    f"{micros_to_usd(wallet.lease_sum)}",
                )
            )
        held = wallet.hold_sum
        if wallet.held != held:
            found.append(
                Discrepancy(
                    "held",
                    name,
                    f"held {micros_to_usd(wallet.held)} != open holds {micros_to_usd(held)}",
                )
            )
    for hold in Hold.objects.filter(expires_at__lt=now - HOLD_GRACE).order_by("pk"):
        found.append(
            Discrepancy(
                "hold", f"hold {hold.reference}", f"expired at {hold.expires_at.isoformat()}"
            )
        )
    # A dead process's holds are swept within a minute; these were not.
    unswept = now - HOLD_GRACE - dt.timedelta(seconds=settings.LEASE_TTL_SECONDS)
    live = Lease.objects.filter(expires_at__gte=now - HOLD_GRACE).values("id")
    dead = Hold.objects.filter(lease__gt="", created_at__lt=unswept).exclude(lease__in=live)
    for hold in dead.order_by("pk"):
        found.append(
            Discrepancy("hold", f"hold {hold.reference}", f"its server (lease {hold.lease}) died")
        )
    paid = TopUp.objects.filter(state=TopUp.State.PAID).values_list("pk", "credit")
    credited = dict(
        LedgerEntry.objects.filter(source_type=SOURCE_TOPUP).values_list("source_id", "amount")
    )
    for pk, credit in paid:
        amount = credited.pop(str(pk), None)
        if amount is None:
            found.append(Discrepancy("topup", f"top-up {pk}", "paid but never credited"))
        elif amount != credit:
            found.append(
                Discrepancy(
                    "topup",
                    f"top-up {pk}",
                    f"credited {micros_to_usd(amount)}, bought {micros_to_usd(credit)}",
                )
            )
    stuck = PaymentEvent.objects.filter(
        processed_at__isnull=True, received_at__lt=now - EVENT_GRACE
    ).order_by("pk")
    for event in stuck:
        found.append(
            Discrepancy(
                "event",
                f"{event.provider} event {event.event_id}",
                f"unprocessed after {event.attempts} attempts: {event.error or 'never run'}",
            )
        )
    for source_id in sorted(credited):
        found.append(Discrepancy("topup", f"top-up {source_id}", "credited but not marked paid"))
    found.extend(_limits_and_floors())
    found.extend(_uncollected(since=now - dt.timedelta(days=1)))
    found.extend(_requests(since=now - REQUEST_WINDOW))
    found.extend(_refunds_without_credit_notes())
    return found


def _refunds_without_credit_notes() -> list[Discrepancy]:
    """Every refund since credit notes exist has one (billing/credit_notes.py)."""
    since = _applied("billing", "0010_documents")
    if since is None:
        return []
    # Disputes are debited as refunds too, but the bank reversed those: no credit note.
    missing = LedgerEntry.objects.filter(
        kind=LedgerEntry.Kind.REFUND,
        source_id__contains=":refund:",
        created_at__gte=since,
        credit_note__isnull=True,
    )
    return [
        Discrepancy("credit_note", f"ledger entry {entry.pk}", "a refund without a credit note")
        for entry in missing.order_by("pk")[:_MAX_ROWS]
    ]


def _applied(app: str, migration: str) -> dt.datetime | None:
    """When MIGRATION was applied: rows from before a check's data existed are not
    discrepancies."""
    return (
        MigrationRecorder.Migration.objects.filter(app=app, name=migration)
        .values_list("applied", flat=True)
        .first()
    )


def _requests(*, since: dt.datetime) -> list[Discrepancy]:
    """Request logs since SINCE (the last run's window): none was charged more than its
    hold, and every billed one carries what its upstream cost the operator."""
    # Holds and upstream costs are recorded on request logs since this migration.
    recording = _applied("logs", "0009_requestlog_hold")
    if recording is None:
        return []
    rows = RequestLog.objects.filter(created_at__gte=max(since, recording))
    found = [
        Discrepancy(
            "request",
            f"request {row['request_id']}",
            f"charged {micros_to_usd(row['cost'] + row['plan_cost'])}, "
            f"more than its hold of {micros_to_usd(row['hold'] or 0)}",
        )
        for row in rows.filter(hold__isnull=False, cost__gt=F("hold") - F("plan_cost"))
        .values("request_id", "cost", "plan_cost", "hold")
        .order_by("pk")[:_MAX_ROWS]
    ]
    uncosted = rows.filter(UNCOSTED)
    for row in uncosted.values("channel_id").annotate(n=Count("id")).order_by("channel_id"):
        found.append(
            Discrepancy(
                "upstream_cost",
                f"channel {row['channel_id']}",
                f"{row['n']} billed requests without an upstream cost recorded",
            )
        )
    return found


def _limits_and_floors() -> list[Discrepancy]:
    found: list[Discrepancy] = []
    over = ApiKey.objects.filter(spend_limit__isnull=False).filter(
        Q(spend_limit_period=ApiKey.LimitPeriod.TOTAL, spent__gt=F("spend_limit"))
        | Q(spend_limit_period=ApiKey.LimitPeriod.MONTH, period_spent__gt=F("spend_limit"))
    )
    for key in over.order_by("pk"):
        spent = (
            key.spent if key.spend_limit_period == ApiKey.LimitPeriod.TOTAL else key.period_spent
        )
        found.append(
            Discrepancy(
                "key",
                f"key {key.pk} ({key.prefix})",
                f"spent {micros_to_usd(spent)}, past its limit of "
                f"{micros_to_usd(key.spend_limit or 0)}",
            )
        )
    # A balance below its floor (zero, or minus the widest credit line it had) is explained
    # by what took it there: a refund, a dispute or an adjustment may; a request charge
    # never may (it is capped by its hold, placed above the floor).
    for wallet in Wallet.objects.filter(balance__lt=-F("credit_limit")).order_by("pk"):
        floor = -_widest_credit_line(wallet)
        crossing = (
            LedgerEntry.objects.filter(wallet=wallet, balance_after__lt=floor)
            .filter(balance_after__gte=F("amount") + floor)  # the balance before was >= floor
            .order_by("-created_at", "-pk")
            .first()
        )
        if crossing is not None and crossing.kind == LedgerEntry.Kind.CHARGE:
            found.append(
                Discrepancy(
                    "negative",
                    _wallet_name(wallet),
                    f"balance {micros_to_usd(wallet.balance)}, taken below its floor of "
                    f"{micros_to_usd(floor)} by {crossing.source_type} {crossing.source_id}",
                )
            )
    return found


def _widest_credit_line(wallet: Wallet) -> int:
    """The widest credit line WALLET ever had: a charge may have spent a line since
    lowered or withdrawn (billing.services.wallet_credit_limit_set audits each change)."""
    granted = AuditEvent.objects.filter(
        kind=AuditEvent.Kind.ORG_SETTINGS_CHANGED, organization_id=wallet.organization_id
    ).values_list("meta", flat=True)
    lines = [m["credit_limit_micros"] for m in granted if "credit_limit_micros" in m]
    return max([wallet.credit_limit, *(v for v in lines if isinstance(v, int))])


def _uncollected(*, since: dt.datetime) -> list[Discrepancy]:
    """Channels whose upstream reported more than the requests could have used."""
    rows = (
        UncollectedUsage.objects.filter(created_at__gte=since)
        .values("channel_id")
        .annotate(requests=Count("id"), amount=Sum("amount"))
        .order_by("-amount")
    )
    return [
        Discrepancy(
            "uncollected",
            f"channel {row['channel_id']}",
            f"{row['requests']} requests reported beyond their hold in the last day; "
            f"{micros_to_usd(row['amount'] or 0)} USD paid upstream, not charged",
        )
        for row in rows
    ]


def reconcile_alert_admins(*, discrepancies: list[Discrepancy]) -> int:
    """Email ADMINS and every active staff user; returns the number of recipients."""
    from django.conf import settings
    from django.core.mail import send_mail

    from accounts.models import User

    recipients = {email for _, email in settings.ADMINS}
    recipients |= set(
        User.objects.filter(is_staff=True, is_active=True).values_list("email", flat=True)
    )
    if not recipients:
        return 0
    lines = "\n".join(str(d) for d in discrepancies[:500])
    more = len(discrepancies) - 500
    body = (
        f"Reconciliation found {len(discrepancies)} discrepancies:\n\n{lines}"
        + (f"\n... and {more} more" if more > 0 else "")
        + "\n\nRun `manage.py billing reconcile` for the full list."
    )
    send_mail("TokenHub: billing reconciliation failed", body, None, sorted(recipients))
    return len(recipients)
