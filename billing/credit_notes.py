"""Credit notes: the document a customer gets for each refund, numbered in one unbroken
sequence per operator (CN-000001, CN-000002, ...).

A credit note is issued in the transaction of the refund's ledger entry
(billing/topups.topup_refund_record), so there is never a refund without its note nor a
number without its refund. Only refunds get one: a lost dispute also takes credit back,
but the customer's bank reversed that payment, not the operator, so there is nothing the
operator credits the customer with; the ledger entry stays the record of it.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from accounts.models import Organization
from billing.documents import billed_to_details, issuer_details
from billing.models import CreditNote, DocumentSequence, LedgerEntry, TopUp

SEQUENCE = "credit_note"
MICROS_PER_CENT = 10_000


def credit_note_label(number: int) -> str:
    """A credit note's number as printed: CN-000042."""
    return f"CN-{number:06d}"


def tax_included(amount: int, rate: Decimal) -> int:
    """The tax part of AMOUNT (minor units, tax included) at RATE percent, in minor units:
    amount x rate / (100 + rate), computed exactly and rounded half up to the minor unit."""
    if rate <= 0:
        return 0
    part = Decimal(amount) * rate / (Decimal(100) + rate)
    return int(part.to_integral_value(rounding=ROUND_HALF_UP))


def document_number_next(name: str = SEQUENCE) -> int:
    """Take the next number of the document sequence NAME (credit notes; invoices share
    it). The sequence row stays locked until the caller's transaction ends, so concurrent
    refunds take consecutive numbers one after the other, and a rolled-back refund gives
    its number back."""
    # INSERT ... ON CONFLICT DO NOTHING: the first refund ever creates the row, a racing
    # one waits for it instead of failing.
    DocumentSequence.objects.bulk_create([DocumentSequence(name=name)], ignore_conflicts=True)
    sequence = DocumentSequence.objects.select_for_update().get(name=name)
    sequence.last += 1
    sequence.save(update_fields=["last"])
    return sequence.last


def credit_note_issue(
    *, entry: LedgerEntry, topup: TopUp | None, reason: str, amount: int | None = None
) -> CreditNote:
    """Issue the credit note of the refund ENTRY (of TOPUP, if it refunds one).

    AMOUNT is the money refunded in minor units of the top-up's currency; by default the
    part of the top-up's price that the credit taken back bought (without a top-up: the
    credit in US cents). Atomic, inside the caller's transaction; a second call for the
    same entry returns the note issued first and takes no number. Both parties' details
    and the tax rate are frozen into the note."""
    if entry.kind != LedgerEntry.Kind.REFUND or entry.amount >= 0:
        raise ValueError(f"ledger entry {entry.pk} is not a refund")
    credit = -entry.amount
    if amount is None:
        if topup is not None:
            amount = int(
                (Decimal(topup.pay_amount) * credit / topup.credit).to_integral_value(
                    rounding=ROUND_HALF_UP
                )
            )
        else:
            amount = int(
                (Decimal(credit) / MICROS_PER_CENT).to_integral_value(rounding=ROUND_HALF_UP)
            )
    with transaction.atomic():
        existing = CreditNote.objects.filter(ledger_entry=entry).first()
        if existing is not None:
            return existing
        organization = Organization.objects.get(wallet__pk=entry.wallet_id)
        return CreditNote.objects.create(
            number=document_number_next(),
            organization=organization,
            ledger_entry=entry,
            topup=topup,
            credit=credit,
            amount=amount,
            currency=(topup.currency if topup is not None else "usd").lower(),
            tax_rate=Decimal(settings.OPERATOR_TAX_RATE),
            reason=reason[:300],
            billed_to=billed_to_details(organization),
            issuer=issuer_details(),
            issued_at=entry.created_at,
        )


def credit_notes_for_organization(*, organization: Organization) -> QuerySet[CreditNote]:
    """The organization's credit notes, newest first."""
    return CreditNote.objects.filter(organization=organization).order_by("-number")
