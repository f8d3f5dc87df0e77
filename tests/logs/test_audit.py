"""The audit trail: audit_record keeps who, what and where from; selectors scope who sees it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from accounts.audit import audit_events_for_organization, audit_events_for_user, audit_record
from accounts.models import AuditEvent, Organization, User

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_it_records_address_agent_and_actor(owner: User, teammate: User, org: Organization):
    request = RequestFactory().post("/x", REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Agent/1")
    request.user = owner
    event = audit_record(
        kind="role_changed", user=teammate, organization=org, request=request, role="admin"
    )
    event.refresh_from_db()
    assert (event.user, event.actor, event.organization) == (teammate, owner, org)
    assert (event.ip, event.user_agent, event.meta) == ("203.0.113.7", "Agent/1", {"role": "admin"})


def test_it_takes_the_signed_in_user_when_none_is_given(owner: User):
    request = RequestFactory().get("/x", REMOTE_ADDR="198.51.100.1")
    request.user = owner
    event = audit_record(kind="password_changed", request=request)
    assert (event.user, event.actor) == (owner, None)


def test_it_stringifies_odd_meta_and_refuses_unknown_kinds(owner: User):
    request = RequestFactory().get("/x")
    request.user = AnonymousUser()
    event = audit_record(kind="key_created", user=owner, request=request, key=object, ids=(1, 2))
    assert event.meta["ids"] == [1, 2]
    assert isinstance(event.meta["key"], str)
    with pytest.raises(ValueError, match="unknown audit event kind"):
        audit_record(kind="made_up")
    assert AuditEvent.objects.count() == 1


def test_it_shows_people_their_own_and_owners_their_orgs(
    owner: User, teammate: User, stranger: User, org: Organization
):
    mine = audit_record(kind="sign_in", user=teammate)
    team = audit_record(kind="key_created", user=owner, organization=org)
    other = audit_record(kind="sign_in", user=stranger)
    assert list(audit_events_for_user(user=teammate)) == [mine]
    assert list(audit_events_for_organization(organization=org)) == [team]
    assert other not in audit_events_for_organization(organization=org)
