"""Operator announcements: which are current, what a visitor dismissed, emailing them."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mass_mail
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.safestring import SafeString

from accounts.legal import markdown_safe
from accounts.models import Announcement, User

DISMISSED_SESSION_KEY = "dismissed_announcements"
EMAIL_BATCH = 100


@dataclass(frozen=True)
class AnnouncementView:
    """An announcement in the reader's language."""

    id: int
    level: str
    title: str
    body: SafeString
    starts_at: object


def announcement_in(announcement: Announcement, language: str) -> AnnouncementView:
    chinese = language.lower().startswith("zh")
    title = announcement.title_zh_hans if chinese and announcement.title_zh_hans else None
    body = announcement.body_zh_hans if chinese and announcement.body_zh_hans.strip() else None
    return AnnouncementView(
        id=announcement.pk,
        level=announcement.level,
        title=title or announcement.title_en,
        body=markdown_safe(body or announcement.body_en),
        starts_at=announcement.starts_at,
    )


def announcements_current() -> QuerySet[Announcement]:
    now = timezone.now()
    return (
        Announcement.objects.filter(starts_at__lte=now)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .order_by("-starts_at", "-pk")
    )


def announcements_published() -> QuerySet[Announcement]:
    """Everything already started, newest first (the announcements page)."""
    return Announcement.objects.filter(starts_at__lte=timezone.now()).order_by("-starts_at")


def announcement_banner(request: HttpRequest) -> Announcement | None:
    """The newest current announcement this visitor has not dismissed."""
    dismissed = request.session.get(DISMISSED_SESSION_KEY, [])
    return announcements_current().exclude(pk__in=dismissed).first()


def announcement_dismiss(request: HttpRequest, *, announcement_id: int) -> None:
    """Remember in the session (no extra cookie) that the visitor closed this banner."""
    dismissed: list[int] = request.session.get(DISMISSED_SESSION_KEY, [])
    if announcement_id not in dismissed:
        # Keep the list short: only announcements that still exist matter.
        live = set(Announcement.objects.values_list("pk", flat=True))
        request.session[DISMISSED_SESSION_KEY] = [
            i for i in [*dismissed, announcement_id] if i in live
        ]


def announcement_email(*, announcement: Announcement) -> int:
    """Email ANNOUNCEMENT once to every active user with a verified address, in batches.

    Claimed by setting `emailed_at` first (compare-and-set), so a repeated or concurrent
    run sends nothing twice. Returns the number of emails sent.
    """
    claimed = Announcement.objects.filter(pk=announcement.pk, emailed_at__isnull=True).update(
        emailed_at=timezone.now()
    )
    if not claimed:
        return 0
    verified = Q(email_verified=True) | Q(emailaddress__verified=True, emailaddress__primary=True)
    emails = list(
        User.objects.filter(verified, is_active=True)
        .distinct()
        .order_by("pk")
        .values_list("email", flat=True)
    )
    subject = f"[TokenHub] {announcement.title_en}"
    body = f"{announcement.body_en}\n\n{settings.SITE_URL}/announcements/\n"
    sent = 0
    for start in range(0, len(emails), EMAIL_BATCH):
        batch = emails[start : start + EMAIL_BATCH]
        sent += send_mass_mail(
            [(subject, body, settings.DEFAULT_FROM_EMAIL, [email]) for email in batch]
        )
    return sent
