"""Public Terms and Privacy pages, and the re-acceptance page after a material update."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language

from accounts.audit import audit_record
from accounts.forms import LegalAcceptForm
from accounts.legal import (
    legal_accept,
    legal_body_html,
    legal_document_current,
    legal_documents_to_accept,
    legal_title,
)
from accounts.models import AuditEvent, LegalDocument, User


def _document_page(request: HttpRequest, kind: str) -> HttpResponse:
    version = request.GET.get("version")
    if version:
        document = LegalDocument.objects.filter(kind=kind, version=version).first()
    else:
        document = legal_document_current(kind=kind)
    if document is None:
        raise Http404("not published yet")
    language = get_language() or "en"
    context = {
        "document": document,
        "title": legal_title(document=document, language=language),
        "body": legal_body_html(document=document, language=language),
        "versions": LegalDocument.objects.filter(kind=kind).order_by("-effective_at"),
    }
    return render(request, "legal/document.html", context)


def terms(request: HttpRequest) -> HttpResponse:
    return _document_page(request, LegalDocument.Kind.TERMS)


def privacy(request: HttpRequest) -> HttpResponse:
    return _document_page(request, LegalDocument.Kind.PRIVACY)


@login_required
def accept(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)
    next_url = request.POST.get("next") or request.GET.get("next") or reverse("dashboard")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("dashboard")
    pending = legal_documents_to_accept(user=user)
    if not pending:
        return HttpResponseRedirect(next_url)
    form = LegalAcceptForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        legal_accept(user=user, documents=pending)
        audit_record(
            kind=AuditEvent.Kind.LEGAL_ACCEPTED,
            request=request,
            documents=[f"{d.kind}:{d.version}" for d in pending],
        )
        return HttpResponseRedirect(next_url)
    language = get_language() or "en"
    documents = [
        {"document": d, "title": legal_title(document=d, language=language)} for d in pending
    ]
    return render(
        request, "legal/accept.html", {"documents": documents, "form": form, "next": next_url}
    )
