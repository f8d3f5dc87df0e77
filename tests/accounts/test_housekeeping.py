"""The hourly purge of expired sessions, invitations and playground keys."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from accounts.housekeeping import expired_records_purge
from accounts.models import ApiKey, Invitation, Organization, User
from accounts.services import key_create, playground_key_issue

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def _invitation(org: Organization, email: str, **fields: object) -> Invitation:
    values: dict[str, object] = {"expires_at": timezone.now() + dt.timedelta(days=7), **fields}
    return Invitation.objects.create(
        organization=org, email=email, token_hash=email.ljust(64, "0")[:64], **values
    )


def test_it_deletes_what_expired_and_keeps_what_is_live(org: Organization, owner: User) -> None:
    long_ago = timezone.now() - dt.timedelta(days=40)
    _invitation(org, "stale@example.com", expires_at=long_ago)
    _invitation(org, "joined@example.com", accepted_at=long_ago)
    pending = _invitation(org, "pending@example.com")
    old_key, _ = playground_key_issue(user=owner, organization=org)
    # Revoked: a live playground key would be refreshed in place instead of replaced.
    ApiKey.objects.filter(pk=old_key.pk).update(
        expires_at=timezone.now() - dt.timedelta(days=2), status=ApiKey.Status.REVOKED
    )
    live_key, _ = playground_key_issue(user=owner, organization=org)
    expired_normal_key, _ = key_create(organization=org, created_by=owner)
    ApiKey.objects.filter(pk=expired_normal_key.pk).update(expires_at=long_ago)
    client = Client()
    client.force_login(owner)
    Session.objects.update(expire_date=long_ago)

    counts = expired_records_purge()

    assert counts == {"invitations": 2, "playground_keys": 1}
    assert list(Invitation.objects.all()) == [pending]
    assert set(ApiKey.objects.values_list("pk", flat=True)) == {live_key.pk, expired_normal_key.pk}
    assert not Session.objects.exists()
