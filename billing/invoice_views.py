"""Invoices in the portal: a printable page and a PDF of each, and "Pay now", for the
members who may see the organization's billing (owners and billing members)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import cast

from django.contrib import messages
from django.forms import ChoiceField
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.access import Capability, capability_required
from accounts.http import PortalRequest
from billing.documents import party_lines
from billing.exceptions import InvalidTopUp
from billing.forms import TopUpForm
from billing.invoice_payments import invoice_pay_start, invoice_pay_usd
from billing.invoices import invoice_filename, invoice_label, invoice_pdf, invoice_suspends_at
from billing.models import Invoice
from billing.providers import ProviderError, ProviderUnavailable, providers_configured


@dataclass(frozen=True, slots=True)
class InvoiceFacts:
    """What an invoice says, formatted once for the page and the billing page's list."""

    invoice: Invoice
    label: str
    issued: str  # UTC dates
    due: str
    suspends: str
    pay_usd: str  # what "Pay now" charges before the pricing group's rate
    overdue: bool
    issuer_lines: list[str]
    billed_to_lines: list[str]


def invoice_facts(invoice: Invoice, *, now: dt.datetime | None = None) -> InvoiceFacts:
    now = now or dt.datetime.now(dt.UTC)
    return InvoiceFacts(
        invoice=invoice,
        label=invoice_label(invoice.number),
        issued=f"{invoice.issued_at.astimezone(dt.UTC):%Y-%m-%d}",
        due=f"{invoice.due_at.astimezone(dt.UTC):%Y-%m-%d}",
        suspends=f"{invoice_suspends_at(invoice).astimezone(dt.UTC):%Y-%m-%d}",
        pay_usd=f"{invoice_pay_usd(invoice)}",
        overdue=invoice.state == Invoice.State.OPEN and invoice.due_at <= now,
        issuer_lines=party_lines(invoice.issuer),
        billed_to_lines=party_lines(invoice.billed_to),
    )


def _invoice(request: PortalRequest, number: int) -> Invoice:
    organization = request.organization
    return get_object_or_404(
        Invoice.objects.select_related("statement", "organization"),
        number=number,
        organization=organization,
    )


@require_GET
@capability_required(Capability.BILLING)
def invoice_page(request: PortalRequest, number: int) -> HttpResponse:
    """A printable invoice of the active organization."""
    facts = invoice_facts(_invoice(request, number))
    choices = cast(ChoiceField, TopUpForm().fields["provider"]).choices
    return render(request, "billing/invoice.html", {"facts": facts, "pay_choices": choices})


@require_GET
@capability_required(Capability.BILLING)
def invoice_pdf_download(request: PortalRequest, number: int) -> HttpResponse:
    invoice = _invoice(request, number)
    response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{invoice_filename(invoice)}"'
    return response


@require_POST
@capability_required(Capability.BILLING)
def invoice_pay(request: PortalRequest, number: int) -> HttpResponse:
    """Pay now: a top-up of the invoice's amount at the chosen provider's checkout."""
    invoice = _invoice(request, number)
    provider = request.POST.get("provider", "")
    try:
        if provider not in providers_configured():
            raise ProviderUnavailable(_("This payment method is not available."))
        topup = invoice_pay_start(invoice=invoice, created_by=request.user, provider=provider)
    except (InvalidTopUp, ProviderUnavailable, ProviderError) as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(reverse("billing") + "#invoices")
    return HttpResponseRedirect(topup.redirect_url)
