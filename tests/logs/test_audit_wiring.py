"""Key, member and balance changes leave audit events naming who was affected and who acted."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import AuditEvent, Membership, Organization, User
from accounts.services import (
    key_create,
    key_rotate,
    key_set_status,
    membership_remove,
    membership_set_role,
)
from billing.services import wallet_adjust

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def _events(kind: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(kind=kind).order_by("pk"))


def test_key_lifecycle_is_audited(org: Organization, owner: User, teammate: User) -> None:
    key, _ = key_create(organization=org, created_by=teammate, name="ci")
    key_rotate(key=key, actor=owner)
    key_set_status(key=key, status="revoked")

    [created] = _events("key_created")
    assert (created.user, created.organization, created.meta["key_id"]) == (teammate, org, key.pk)
    [rotated] = _events("key_rotated")
    assert (rotated.user, rotated.actor) == (teammate, owner)
    [revoked] = _events("key_revoked")
    assert revoked.meta["prefix"] == key.prefix


def test_deleting_a_key_through_the_api_names_the_actor(
    client: Client, org: Organization, owner: User, teammate: User
) -> None:
    key, _ = key_create(organization=org, created_by=teammate)
    client.force_login(owner)
    assert client.delete(f"/api/v1/keys/{key.pk}").status_code == 204
    [event] = _events("key_revoked")
    assert (event.user, event.actor, event.meta["deleted"]) == (teammate, owner, True)


def test_role_changes_and_removals_are_audited(
    org: Organization, owner: User, teammate: User
) -> None:
    actor = Membership.objects.get(user=owner, organization=org)
    member = Membership.objects.get(user=teammate, organization=org)

    membership_set_role(actor=actor, member=member, role=Membership.Role.ADMIN)
    membership_remove(actor=actor, member=member)

    [changed] = _events("role_changed")
    assert (changed.user, changed.actor, changed.meta) == (
        teammate, owner, {"role": "admin", "previous": "member"}
    )  # fmt: skip
    [removed] = _events("member_removed")
    assert (removed.user, removed.actor, removed.organization) == (teammate, owner, org)


def test_balance_adjustments_are_audited(org: Organization, admin_user: User) -> None:
    entry = wallet_adjust(organization=org, amount=-1500, reason="goodwill", created_by=admin_user)
    [event] = _events("balance_adjusted")
    assert (event.actor, event.organization) == (admin_user, org)
    assert event.meta == {"amount_micros": -1500, "ledger_entry": entry.pk}
