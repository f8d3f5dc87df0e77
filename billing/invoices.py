"""Invoices of credit lines: on the 1st, what an organization with a credit line owes (minus
its statement's closing balance) becomes an invoice due INVOICE_DUE_DAYS later; reminders
before and on the due day; past INVOICE_GRACE_DAYS every key of the organization is
refused until the invoice is paid.

An invoice is paid only by its own full payment: its "Pay now" top-up (billing/
invoice_payments.py; crediting that top-up pays it in the same transaction) or a transfer
staff mark received (which credits the wallet under ("invoice", <id>)). Any other top-up
just raises the balance. Locks are always taken wallet first, then invoice, as a top-up's
credit does.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import QuerySet, Sum
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import Organization, User
from accounts.revocations import key_change_publish
from accounts.templatetags.portal_format import money_exact
from billing.credit_notes import document_number_next
from billing.documents import issuer_details
from billing.models import Invoice, LedgerEntry, Statement, TopUp, Wallet
from billing.pdf import pdf_document
from billing.services import wallet_credit
from billing.subscriptions import billing_recipients

log = logging.getLogger(__name__)

SEQUENCE = "invoice"
SOURCE_INVOICE = "invoice"
REMINDER_BEFORE = "before"
REMINDER_DUE = "due"
_REMINDER_FIELDS = {REMINDER_BEFORE: "reminded_before_at", REMINDER_DUE: "reminded_due_at"}


def invoice_label(number: int) -> str:
    """An invoice's number as printed: INV-000042."""
    return f"INV-{number:06d}"


def _grace() -> dt.timedelta:
    return dt.timedelta(days=settings.INVOICE_GRACE_DAYS)


def invoice_suspends_at(invoice: Invoice) -> dt.datetime:
    """When the organization's keys stop working if the invoice is still open."""
    return invoice.due_at + _grace()


# --- Issuing ----------------------------------------------------------------------------


def invoice_issue(*, statement: Statement, now: dt.datetime | None = None) -> Invoice | None:
    """Invoice what STATEMENT's organization owes: minus its closing balance, less what its
    earlier invoices still open ask for, due INVOICE_DUE_DAYS after NOW. None when nothing
    more is owed or the organization has no credit line (a prepaid balance below zero
    after a refund is not invoiced).

    Atomic and idempotent: the statement row is locked, so concurrent runs issue one
    invoice per statement and take one number."""
    if statement.closing_balance >= 0:
        return None
    now = now or timezone.now()
    with transaction.atomic():
        locked = Statement.objects.select_for_update().select_related("organization")
        statement = locked.get(pk=statement.pk)
        existing = Invoice.objects.filter(statement=statement).first()
        if existing is not None:
            return existing
        wallet = Wallet.objects.get(organization_id=statement.organization_id)
        if wallet.credit_limit <= 0:
            return None
        # What earlier invoices still open already ask for is not asked for twice: the
        # closing balance carries every unpaid month.
        invoiced = (
            Invoice.objects.filter(
                organization_id=statement.organization_id,
                state=Invoice.State.OPEN,
                statement__period__lt=statement.period,
            ).aggregate(total=Sum("amount"))["total"]
            or 0
        )
        owed = -statement.closing_balance - invoiced
        if owed <= 0:
            return None
        invoice = Invoice.objects.create(
            number=document_number_next(SEQUENCE),
            organization=statement.organization,
            statement=statement,
            amount=owed,
            issued_at=now,
            due_at=now + dt.timedelta(days=settings.INVOICE_DUE_DAYS),
            # The parties as the statement froze them: the two documents agree.
            billed_to=statement.billed_to,
            issuer=statement.issuer or issuer_details(),
        )
    return invoice


def invoices_issue_month(*, period: dt.date, now: dt.datetime | None = None) -> list[int]:
    """Invoice every credit-line organization whose statement of PERIOD closed below zero;
    returns the ids of that month's invoices (new and issued before). Each organization is
    its own transaction: one that fails is logged and the others still get theirs."""
    owing = Statement.objects.filter(
        period=period, closing_balance__lt=0, organization__wallet__credit_limit__gt=0
    ).order_by("pk")
    issued: list[int] = []
    for statement in owing:
        try:
            invoice = invoice_issue(statement=statement, now=now)
        except Exception:
            log.exception("invoice of statement %s not issued", statement.pk)
            continue
        if invoice is not None:
            issued.append(invoice.pk)
    return issued


def invoices_to_email(*, period: dt.date) -> list[int]:
    return list(
        Invoice.objects.filter(statement__period=period, emailed_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


# --- Payment ----------------------------------------------------------------------------


def _overdue_flag_refresh(organization_id: int, now: dt.datetime) -> None:
    """Point the wallet's overdue flag at the oldest open invoice past its grace, or clear
    it; when it changes, every relay process forgets its cached keys at commit. Inside the
    caller's transaction."""
    wallet = Wallet.objects.select_for_update().get(organization_id=organization_id)
    oldest = (
        Invoice.objects.filter(
            organization_id=organization_id,
            state=Invoice.State.OPEN,
            due_at__lte=now - _grace(),
        )
        .order_by("due_at", "number")
        .first()
    )
    flag = invoice_label(oldest.number) if oldest is not None else ""
    if wallet.overdue_invoice == flag:
        return
    wallet.overdue_invoice = flag
    wallet.save(update_fields=["overdue_invoice", "updated_at"])
    if oldest is not None and oldest.suspended_at is None:
        Invoice.objects.filter(pk=oldest.pk).update(suspended_at=now)
    audit_record(
        kind="org_settings_changed", organization=Organization.objects.get(pk=organization_id),
        overdue_invoice=flag or "-",
    )  # fmt: skip
    key_change_publish()


def _close(
    invoice_id: int, *, state: str, reference: str, user: User | None, now: dt.datetime
) -> bool:
    """Close an open invoice (paid or void) and refresh the overdue flag. Inside the
    caller's transaction, with the wallet already locked; False if it was not open."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
    if invoice.state != Invoice.State.OPEN:
        return False
    invoice.state = state
    invoice.payment_reference = reference[:200]  # a void's reason
    invoice.paid_by = user  # or who voided it
    invoice.paid_at = now if state == Invoice.State.PAID else None
    invoice.save(update_fields=["state", "payment_reference", "paid_by", "paid_at"])
    _overdue_flag_refresh(invoice.organization_id, now)
    return True


def invoice_paid_by_topup(*, topup: TopUp, now: dt.datetime | None = None) -> bool:
    """Mark the invoice TOPUP was created to pay as paid. Called by topup_confirm inside
    its transaction, after the credit (so the wallet is locked first). Idempotent; a
    top-up for an invoice already paid or void just stays credit on the balance."""
    if topup.invoice_id is None:
        return False
    invoice = Invoice.objects.get(pk=topup.invoice_id)
    if topup.credit < invoice.amount:  # never a partial payment (see the module docstring)
        log.warning("top-up %s credits less than invoice %s", topup.pk, invoice.pk)
        return False
    with transaction.atomic():
        Wallet.objects.select_for_update().get(organization_id=invoice.organization_id)
        return _close(
            invoice.pk,
            state=Invoice.State.PAID,
            reference=f"top-up {topup.pk}",
            user=None,
            now=now or timezone.now(),
        )


def invoice_mark_received(
    *, invoice_id: int, reference: str, marked_by: User | None, now: dt.datetime | None = None
) -> bool:
    """Staff record a bank transfer paying the invoice in full: the wallet is credited the
    invoice's amount (ledger source ("invoice", <id>): once, whatever the clicks) and the
    invoice is paid, which lifts a suspension at once. Atomic. Returns False, crediting
    nothing, when the invoice is no longer open. A reference is mandatory."""
    reference = reference.strip()
    if not reference:
        raise ValueError("a received payment needs its reference")
    now = now or timezone.now()
    with transaction.atomic():
        invoice = Invoice.objects.select_related("organization").get(pk=invoice_id)
        Wallet.objects.select_for_update().get(organization_id=invoice.organization_id)
        if not Invoice.objects.filter(pk=invoice_id, state=Invoice.State.OPEN).exists():
            return False
        label = invoice_label(invoice.number)
        wallet_credit(
            organization=invoice.organization,
            amount=invoice.amount,
            kind=LedgerEntry.Kind.TOPUP,
            source_type=SOURCE_INVOICE,
            source_id=str(invoice.pk),
            note=f"Bank transfer for {label} ({reference})"[:500],
            created_by=marked_by,
        )
        return _close(
            invoice.pk, state=Invoice.State.PAID, reference=reference, user=marked_by, now=now
        )


def invoice_void(
    *, invoice_id: int, reason: str, voided_by: User | None, now: dt.datetime | None = None
) -> bool:
    """Cancel an open invoice (issued by mistake, settled otherwise): nothing is credited,
    a suspension it caused is lifted. Atomic; False if it was not open."""
    if not reason.strip():
        raise ValueError("voiding an invoice needs a reason")
    with transaction.atomic():
        invoice = Invoice.objects.get(pk=invoice_id)
        Wallet.objects.select_for_update().get(organization_id=invoice.organization_id)
        return _close(
            invoice.pk,
            state=Invoice.State.VOID,
            reference=reason.strip(),
            user=voided_by,
            now=now or timezone.now(),
        )


# --- Reminders and suspension -----------------------------------------------------------


def invoices_reminders_due(*, now: dt.datetime) -> list[tuple[int, str]]:
    """(invoice id, kind) of the reminders to send now: INVOICE_REMINDER_DAYS_BEFORE before
    the due date (skipped once the due date passed) and on the due day. Each is sent once:
    invoice_reminder_send claims it."""
    before = dt.timedelta(days=settings.INVOICE_REMINDER_DAYS_BEFORE)
    open_ = Invoice.objects.filter(state=Invoice.State.OPEN).order_by("pk")
    due: list[tuple[int, str]] = [
        (pk, REMINDER_BEFORE)
        for pk in open_.filter(
            reminded_before_at__isnull=True, due_at__gt=now, due_at__lte=now + before
        ).values_list("pk", flat=True)
    ]
    due += [
        (pk, REMINDER_DUE)
        for pk in open_.filter(reminded_due_at__isnull=True, due_at__lte=now).values_list(
            "pk", flat=True
        )
    ]
    return due


def invoices_suspend_overdue(*, now: dt.datetime) -> list[int]:
    """Flag the wallets of organizations with an open invoice past its due date and grace:
    the relay then refuses their requests (402 invoice_overdue). Returns the organizations
    newly flagged."""
    late = (
        Invoice.objects.filter(state=Invoice.State.OPEN, due_at__lte=now - _grace())
        .values_list("organization_id", flat=True)
        .distinct()
    )
    flagged: list[int] = []
    for organization_id in sorted(set(late)):
        with transaction.atomic():
            before = Wallet.objects.get(organization_id=organization_id).overdue_invoice
            _overdue_flag_refresh(organization_id, now)
        if not before:
            flagged.append(organization_id)
    return flagged


# --- Documents and emails ---------------------------------------------------------------


def invoice_filename(invoice: Invoice) -> str:
    return f"{invoice_label(invoice.number)}.pdf"


def _day(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d}"


def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice as a PDF, from its frozen parties."""
    label = invoice_label(invoice.number)
    meta = [
        (_("Number"), label),
        (_("Date issued"), f"{_day(invoice.issued_at)} UTC"),
        (_("Due date"), f"{_day(invoice.due_at)} UTC"),
    ]
    if invoice.statement is not None:
        meta.append((_("Statement"), f"{invoice.statement.period:%Y-%m}"))
    if invoice.state == Invoice.State.PAID and invoice.paid_at is not None:
        meta.append((_("Paid"), f"{_day(invoice.paid_at)} UTC"))
    rows = [[_("Credit line used (balance below zero at month end)"), money_exact(invoice.amount)]]
    return pdf_document(
        title=_("Invoice %(number)s") % {"number": label},
        issuer=invoice.issuer,
        billed_to=invoice.billed_to,
        meta=meta,
        tables=[(_("Amount due"), [_("Description"), _("Amount (USD)")], rows)],
        notes=[
            _(
                "Pay it on the billing page (Pay now) or by bank transfer quoting %(number)s. "
                "If it is still unpaid %(days)s days after the due date, API requests are "
                "refused until it is paid."
            )
            % {"number": label, "days": settings.INVOICE_GRACE_DAYS}
        ],
    )


def invoice_url(invoice: Invoice) -> str:
    """The invoice's page on the portal, as an absolute URL for emails and errors."""
    path = reverse("billing-invoice", args=[invoice.number])
    return settings.SITE_URL.rstrip("/") + path


def _send(invoice: Invoice, template: str, extra: dict[str, object]) -> int:
    recipients = billing_recipients(invoice.organization_id)
    if not recipients:
        return 0
    context = {
        "invoice": invoice,
        "label": invoice_label(invoice.number),
        "organization": invoice.organization,
        "due": _day(invoice.due_at),
        "suspends": _day(invoice_suspends_at(invoice)),
        "url": invoice_url(invoice),
        **extra,
    }
    message = EmailMessage(
        subject=render_to_string(f"billing/email/{template}_subject.txt", context).strip(),
        body=render_to_string(f"billing/email/{template}_body.txt", context),
        to=recipients,
    )
    message.attach(invoice_filename(invoice), invoice_pdf(invoice), "application/pdf")
    message.send()
    return len(recipients)


def _claimed_send(
    invoice_id: int, field: str, now: dt.datetime, template: str, extra: dict[str, object]
) -> int:
    """Send once: claim FIELD with a conditional update, give the claim back if the send
    fails so a retry can send."""
    claimed = Invoice.objects.filter(
        pk=invoice_id, state=Invoice.State.OPEN, **{f"{field}__isnull": True}
    ).update(**{field: now})
    if not claimed:
        return 0
    invoice = Invoice.objects.select_related("organization", "statement").get(pk=invoice_id)
    try:
        return _send(invoice, template, extra)
    except Exception:
        Invoice.objects.filter(pk=invoice_id).update(**{field: None})
        raise


def invoice_email(*, invoice_id: int, now: dt.datetime | None = None) -> int:
    """Email the new invoice (PDF attached) to the owners and billing members, once.
    Returns the number of recipients (0 when already sent or paid meanwhile)."""
    return _claimed_send(invoice_id, "emailed_at", now or timezone.now(), "invoice", {})


def invoice_reminder_send(*, invoice_id: int, kind: str, now: dt.datetime | None = None) -> int:
    """Send the KIND reminder ("before" or "due") of an open invoice, once."""
    field = _REMINDER_FIELDS[kind]
    extra: dict[str, object] = {"on_due_day": kind == REMINDER_DUE}
    return _claimed_send(invoice_id, field, now or timezone.now(), "invoice_reminder", extra)


# --- Reading ----------------------------------------------------------------------------


def invoices_for_organization(*, organization: Organization) -> QuerySet[Invoice]:
    """The organization's invoices, newest first."""
    return Invoice.objects.filter(organization=organization).order_by("-number")
