"""The two parties printed on billing documents (statements, credit notes, receipts).

Documents snapshot these dicts when issued, so a later change of address or operator
name never rewrites a document already sent.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.utils.translation import gettext as _

from accounts.models import Organization


def issuer_details() -> dict[str, str]:
    """The operator's details from the settings (OPERATOR_*); tax_rate is a percent string."""
    return {
        "legal_name": settings.OPERATOR_LEGAL_NAME,
        "address": settings.OPERATOR_ADDRESS,
        "tax_id": settings.OPERATOR_TAX_ID,
        "email": settings.OPERATOR_EMAIL,
        "tax_rate": str(Decimal(settings.OPERATOR_TAX_RATE)),
    }


def billed_to_details(organization: Organization) -> dict[str, str]:
    """The organization's invoice details as they are now."""
    return {
        "name": organization.name,
        "legal_name": organization.legal_name,
        "address": organization.billing_address,
        "country": organization.billing_country,
        "tax_id": organization.tax_id,
    }


def party_lines(details: dict[str, str]) -> list[str]:
    """A party's details as printable lines: the legal name (or the name), the address
    lines, the country and the tax id; empty fields left out."""
    name = details.get("legal_name") or details.get("name") or ""
    lines = [name] if name else []
    lines += [line.strip() for line in details.get("address", "").splitlines() if line.strip()]
    if details.get("country"):
        lines.append(details["country"])
    if details.get("tax_id"):
        lines.append(_("Tax ID: %(tax_id)s") % {"tax_id": details["tax_id"]})
    if details.get("email"):
        lines.append(details["email"])
    return lines
