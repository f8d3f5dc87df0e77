"""Background jobs of accounts: data exports (built by accounts.privacy), emails, expiry."""

from __future__ import annotations

from celery import shared_task

from accounts.announcements import announcement_email
from accounts.housekeeping import expired_records_purge
from accounts.legal import legal_announce
from accounts.models import Announcement, LegalDocument
from accounts.privacy import (  # noqa: F401  (build_data_export: autodiscovery imports tasks.py)
    build_data_export,
    data_exports_purge,
)


@shared_task
def purge_data_exports() -> int:
    return data_exports_purge()


@shared_task
def announce_legal_document(document_id: int) -> int:
    document = LegalDocument.objects.filter(pk=document_id).first()
    return legal_announce(document=document) if document else 0


@shared_task
def email_announcement(announcement_id: int) -> int:
    announcement = Announcement.objects.filter(pk=announcement_id).first()
    return 0 if announcement is None else announcement_email(announcement=announcement)


@shared_task
def purge_expired_records() -> dict[str, int]:
    return expired_records_purge()
