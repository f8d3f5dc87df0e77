"""Template context for every page: the banner announcing upcoming legal updates."""

from __future__ import annotations

from django.http import HttpRequest

from accounts.legal import legal_documents_upcoming
from accounts.models import LegalDocument


def legal_notice(request: HttpRequest) -> dict[str, list[LegalDocument]]:
    """`legal_upcoming`: material Terms/Privacy updates taking effect within the notice
    period (one small indexed query; the admin and static files skip it)."""
    if request.path.startswith(("/admin/", "/static/")):
        return {"legal_upcoming": []}
    return {"legal_upcoming": legal_documents_upcoming()}
