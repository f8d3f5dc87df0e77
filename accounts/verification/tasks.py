"""The daily purge of verification documents past their retention (beat, 03:43 UTC)."""

from __future__ import annotations

from celery import shared_task

from accounts.verification.services import verification_documents_purge as _purge


@shared_task(name="accounts.verification.tasks.verification_documents_purge")
def verification_documents_purge() -> int:
    return _purge()
