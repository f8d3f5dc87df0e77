"""Terms of Service and Privacy Policy: which versions are in force, who accepted what.

A version takes effect at its `effective_at`. A *material* version must be accepted again
(at the next sign-in, by the policy middleware) once it is in force; until then users see a
banner announcing it. Non-material versions (typo fixes) need no new acceptance.
"""

from __future__ import annotations

import datetime as dt
import re

import markdown
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from accounts.models import LegalAcceptance, LegalDocument, User

# Links and images may point at http(s), mail, or this site; anything else (javascript:,
# data:) is replaced by "#".
_UNSAFE_LINK = re.compile(r'\b(href|src)="(?!https?://|mailto:|/|#)[^"]*"', re.IGNORECASE)


def legal_document_current(*, kind: str, now: dt.datetime | None = None) -> LegalDocument | None:
    """The version of KIND in force now (latest effective_at not in the future)."""
    now = now or timezone.now()
    return (
        LegalDocument.objects.filter(kind=kind, effective_at__lte=now)
        .order_by("-effective_at", "-pk")
        .first()
    )


def legal_documents_current(*, now: dt.datetime | None = None) -> list[LegalDocument]:
    docs = [legal_document_current(kind=kind, now=now) for kind in LegalDocument.Kind.values]
    return [doc for doc in docs if doc is not None]


def legal_documents_upcoming(*, now: dt.datetime | None = None) -> list[LegalDocument]:
    """Material versions taking effect within LEGAL_NOTICE_DAYS: what the banner announces."""
    now = now or timezone.now()
    horizon = now + dt.timedelta(days=settings.LEGAL_NOTICE_DAYS)
    return list(
        LegalDocument.objects.filter(
            material=True, effective_at__gt=now, effective_at__lte=horizon
        ).order_by("effective_at")
    )


def _required_version(*, kind: str, now: dt.datetime) -> LegalDocument | None:
    """The latest material version in force: accepting it or anything newer satisfies KIND."""
    return (
        LegalDocument.objects.filter(kind=kind, effective_at__lte=now, material=True)
        .order_by("-effective_at", "-pk")
        .first()
    )


def legal_documents_to_accept(*, user: User, now: dt.datetime | None = None) -> list[LegalDocument]:
    """Current documents the user still has to accept (empty when nothing is published)."""
    now = now or timezone.now()
    pending = []
    for kind in LegalDocument.Kind.values:
        required = _required_version(kind=kind, now=now)
        if required is None:
            continue
        accepted = LegalAcceptance.objects.filter(
            user=user,
            document__kind=kind,
            document__effective_at__gte=required.effective_at,
        ).exists()
        if not accepted:
            pending.append(legal_document_current(kind=kind, now=now) or required)
    return pending


def legal_accept(*, user: User, documents: list[LegalDocument]) -> int:
    """Record that USER accepts DOCUMENTS now. Idempotent; returns how many were new."""
    created = 0
    with transaction.atomic():
        for document in documents:
            _, was_new = LegalAcceptance.objects.get_or_create(user=user, document=document)
            created += int(was_new)
    return created


def legal_body_html(*, document: LegalDocument, language: str) -> SafeString:
    """The document's Markdown as HTML, in LANGUAGE when translated.

    Raw HTML in the source is escaped before rendering (the Markdown library does not
    sanitise), so an admin's paste cannot inject script into a public page.
    """
    body = document.body_en
    if language.lower().startswith("zh") and document.body_zh_hans.strip():
        body = document.body_zh_hans
    return markdown_safe(body)


def markdown_safe(source: str) -> SafeString:
    """Markdown from an admin as HTML: raw HTML escaped, only http(s)/mailto/relative links."""
    escaped = source.replace("&", "&amp;").replace("<", "&lt;")
    rendered = markdown.markdown(escaped, extensions=["extra", "sane_lists"])
    rendered = _UNSAFE_LINK.sub(r'\1="#"', rendered)
    return mark_safe(rendered)  # noqa: S308 - source HTML escaped, link schemes checked


def legal_title(*, document: LegalDocument, language: str) -> str:
    if language.lower().startswith("zh") and document.title_zh_hans.strip():
        return document.title_zh_hans
    return document.title_en


def legal_announce(*, document: LegalDocument) -> int:
    """Email every active user with a verified address about DOCUMENT; mark it announced.

    Returns the number of emails sent. Runs in a Celery task (admin action)."""
    from django.core.mail import send_mass_mail
    from django.template.loader import render_to_string

    verified = Q(email_verified=True) | Q(emailaddress__verified=True, emailaddress__primary=True)
    recipients = list(
        User.objects.filter(verified, is_active=True).distinct().values_list("email", flat=True)
    )
    context = {
        "document": document,
        "site_url": settings.SITE_URL,
        "path": "/legal/terms/" if document.kind == LegalDocument.Kind.TERMS else "/legal/privacy/",
    }
    subject = render_to_string("legal/announce_subject.txt", context).strip()
    body = render_to_string("legal/announce_body.txt", context)
    sent = send_mass_mail(
        [(subject, body, settings.DEFAULT_FROM_EMAIL, [email]) for email in recipients]
    )
    document.announced_at = timezone.now()
    document.save(update_fields=["announced_at"])
    return sent
