"""The portal's monthly statements: a printable page and the PDF, for members allowed to
see billing, of the active organization only."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.access import Capability, capability_required
from accounts.http import PortalRequest
from billing.documents import party_lines
from billing.models import Statement
from billing.statements import (
    plan_charge_lines,
    statement_filename,
    statement_for_month,
    statement_pdf,
    statement_summary,
)


def _statement(request: PortalRequest, month: str) -> Statement:
    """The active organization's statement of MONTH (YYYY-MM), else 404."""
    organization = request.organization
    found = statement_for_month(organization=organization, month=month)
    if found is None:
        raise Http404("no statement for that month")
    return found


@require_GET
@capability_required(Capability.BILLING)
def statement_page(request: PortalRequest, month: str) -> HttpResponse:
    statement = _statement(request, month)
    context = {
        "statement": statement,
        "issuer_lines": party_lines(statement.issuer),
        "billed_to_lines": party_lines(statement.billed_to),
        "summary": statement_summary(statement),
        "plan_charges": plan_charge_lines(statement),
    }
    return render(request, "billing/statement.html", context)


@require_GET
@capability_required(Capability.BILLING)
def statement_pdf_download(request: PortalRequest, month: str) -> HttpResponse:
    statement = _statement(request, month)
    response = HttpResponse(statement_pdf(statement), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{statement_filename(statement)}"'
    return response
