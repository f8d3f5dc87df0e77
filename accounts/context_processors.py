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


def announcement(request: HttpRequest) -> dict[str, object]:
    """`announcement`: the newest current one this visitor has not dismissed, if any."""
    from django.utils.translation import get_language

    from accounts.announcements import announcement_banner, announcement_in

    if request.path.startswith(("/admin/", "/static/")) or not hasattr(request, "session"):
        return {"announcement": None}
    current = announcement_banner(request)
    if current is None:
        return {"announcement": None}
    return {"announcement": announcement_in(current, get_language() or "en")}
