"""Deleting what has expired: sessions, invitations, playground keys (an hourly job)."""

from __future__ import annotations

import datetime as dt
from importlib import import_module

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiKey, Invitation

# Accepted or withdrawn invitations are kept this long for the organization's owners to see.
INVITATION_KEEP = dt.timedelta(days=30)
PLAYGROUND_KEY_KEEP = dt.timedelta(days=1)


def expired_records_purge(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete expired sessions, old invitations and expired playground keys.

    Invitations carry an email address, so none outlives its use by more than
    INVITATION_KEEP. Playground keys are deleted a day after they expire (their request
    logs keep the plain key id, like any deleted key's).
    """
    now = now or timezone.now()
    engine = import_module(settings.SESSION_ENGINE)
    engine.SessionStore.clear_expired()
    invitations, _ = Invitation.objects.filter(
        Q(expires_at__lt=now - INVITATION_KEEP)
        | Q(accepted_at__lt=now - INVITATION_KEEP)
        | Q(revoked_at__lt=now - INVITATION_KEEP)
    ).delete()
    keys, _ = ApiKey.objects.filter(
        is_playground=True, expires_at__lt=now - PLAYGROUND_KEY_KEEP
    ).delete()
    return {"invitations": invitations, "playground_keys": keys}
