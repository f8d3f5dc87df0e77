"""Background jobs for privacy rights: building and expiring data-export archives."""

from __future__ import annotations

from celery import shared_task

from accounts.legal import legal_announce
from accounts.models import DataExport, LegalDocument
from accounts.privacy import data_export_build, data_exports_purge


@shared_task(bind=True, max_retries=3, default_retry_delay=30)
def build_data_export(self: object, export_id: int) -> None:
    export = DataExport.objects.filter(pk=export_id).select_related("user").first()
    if export is None:  # deleted (account erased, or expired) before the worker ran
        return
    try:
        data_export_build(export=export)
    except Exception as exc:
        if self.request.retries >= self.max_retries:  # type: ignore[attr-defined]
            DataExport.objects.filter(pk=export_id).update(state=DataExport.State.FAILED)
            raise
        raise self.retry(exc=exc) from exc  # type: ignore[attr-defined]


@shared_task
def purge_data_exports() -> int:
    return data_exports_purge()


@shared_task
def announce_legal_document(document_id: int) -> int:
    document = LegalDocument.objects.filter(pk=document_id).first()
    return legal_announce(document=document) if document else 0


@shared_task
def email_announcement(announcement_id: int) -> int:
    from accounts.announcements import announcement_email
    from accounts.models import Announcement

    announcement = Announcement.objects.filter(pk=announcement_id).first()
    return 0 if announcement is None else announcement_email(announcement=announcement)


@shared_task
def purge_expired_records() -> dict[str, int]:
    from accounts.housekeeping import expired_records_purge

    return expired_records_purge()
