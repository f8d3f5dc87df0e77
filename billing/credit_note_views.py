"""Credit notes in the portal: a printable page and a PDF of each, for the members who may
see the organization's billing (owners and billing members), like receipts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from accounts.access import Capability, capability_required
from accounts.http import PortalRequest
from billing.credit_notes import credit_note_label, tax_included
from billing.documents import party_lines
from billing.models import CreditNote
from billing.pdf import pdf_document
from billing.subscriptions import price_from_minor
from money import micros_to_usd


def minor_text(amount: int, currency: str) -> str:
    """An amount in minor units as printed: "12.50 USD" (no decimals for JPY, KRW, ...)."""
    return f"{price_from_minor(amount, currency):,} {currency.upper()}"


def rate_text(rate: Decimal) -> str:
    """A tax rate without trailing zeros: 20.000 -> "20", 7.500 -> "7.5"."""
    return f"{rate.normalize():f}"


@dataclass(frozen=True, slots=True)
class CreditNoteFacts:
    """What a credit note says, formatted once for the page and the PDF."""

    note: CreditNote
    label: str
    issued: str  # UTC date
    amount: str  # the money refunded, tax included
    tax: str  # its tax part; empty without a tax rate
    tax_rate: str
    credit: str  # the credit taken back, USD
    issuer_lines: list[str]
    billed_to_lines: list[str]


def credit_note_facts(note: CreditNote) -> CreditNoteFacts:
    rate = Decimal(note.tax_rate)
    return CreditNoteFacts(
        note=note,
        label=credit_note_label(note.number),
        issued=note.issued_at.astimezone(dt.UTC).strftime("%Y-%m-%d"),
        amount=minor_text(note.amount, note.currency),
        tax=minor_text(tax_included(note.amount, rate), note.currency) if rate > 0 else "",
        tax_rate=rate_text(rate),
        credit=f"{micros_to_usd(note.credit)} USD",
        issuer_lines=party_lines(note.issuer),
        billed_to_lines=party_lines(note.billed_to),
    )


def _note(request: PortalRequest, number: int) -> CreditNote:
    organization = request.organization
    return get_object_or_404(
        CreditNote.objects.select_related("topup"), number=number, organization=organization
    )


@require_GET
@capability_required(Capability.BILLING)
def credit_note_page(request: PortalRequest, number: int) -> HttpResponse:
    """A printable credit note of the active organization."""
    return render(
        request, "billing/credit_note.html", {"facts": credit_note_facts(_note(request, number))}
    )


@require_GET
@capability_required(Capability.BILLING)
def credit_note_pdf(request: PortalRequest, number: int) -> HttpResponse:
    """The same credit note as a PDF download."""
    facts = credit_note_facts(_note(request, number))
    note = facts.note
    meta = [(_("Number"), facts.label), (_("Date issued"), f"{facts.issued} UTC")]
    if note.topup_id is not None:
        meta.append((_("Refund of"), _("Top-up #%(id)s") % {"id": note.topup_id}))
    if note.reason:
        meta.append((_("Reason"), note.reason))
    rows = [[_("Amount refunded (tax included)"), facts.amount]]
    if facts.tax:
        rows.append([_("of which tax (%(rate)s%%)") % {"rate": facts.tax_rate}, facts.tax])
    rows.append([_("Credit taken back from the balance"), facts.credit])
    body = pdf_document(
        title=_("Credit note %(number)s") % {"number": facts.label},
        issuer=note.issuer,
        billed_to=note.billed_to,
        meta=meta,
        tables=[(_("Amounts"), [_("Description"), _("Amount")], rows)],
        notes=[_("This credit note reverses the part of the payment named above.")],
    )
    response = HttpResponse(body, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{facts.label}.pdf"'
    return response
