"""The settings page: sessions and signing out the others, security events by role, and an
owner's right to delete the organization's request logs."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.test import Client

from accounts.audit import audit_record
from accounts.models import AuditEvent, Organization, User
from accounts.selectors import organization_personal
from logs.models import RequestLog

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def signed_in(user: User, password: str, agent: str) -> Client:
    EmailAddress.objects.filter(user=user).update(verified=True)
    client = Client(HTTP_USER_AGENT=agent)
    response = client.post("/accounts/login/", {"login": user.email, "password": password})
    assert response.status_code == 302
    return client


def log_row(org: Organization, request_id: str) -> RequestLog:
    return RequestLog.objects.create(
        request_id=request_id, organization_id=org.pk, endpoint="chat", status_code=200
    )


def test_it_lists_sessions_and_signs_out_the_others(owner: User):
    laptop = signed_in(owner, "owner-pass-123", "Laptop/1")
    phone = signed_in(owner, "owner-pass-123", "Phone/2")
    page = laptop.get("/dashboard/settings/").content.decode()
    assert "Laptop/1" in page and "Phone/2" in page
    assert laptop.post("/dashboard/settings/sessions/end-others").status_code == 302
    assert phone.get("/dashboard/settings/").status_code == 302  # signed out
    assert laptop.get("/dashboard/settings/").status_code == 200
    assert AuditEvent.objects.filter(user=owner, kind="sessions_ended").exists()


def test_people_see_their_events_and_owners_their_organizations(
    owner: User, teammate: User, org: Organization
):
    audit_record(kind="key_revoked", user=owner, organization=org, key_id=7)
    audit_record(kind="password_changed", user=teammate)
    owner_page = signed_in(owner, "owner-pass-123", "A").get("/dashboard/settings/")
    assert b"API key revoked" in owner_page.content
    assert b"Password changed" not in owner_page.content  # the teammate's own event

    mate = signed_in(teammate, "teammate-pass-123", "B")
    session = mate.session
    session["active_org_id"] = org.pk
    session.save()
    mate_page = mate.get("/dashboard/settings/")
    assert b"Password changed" in mate_page.content
    assert b"API key revoked" not in mate_page.content  # members do not see the org's events


def test_an_owner_deletes_the_organizations_request_logs(
    owner: User, teammate: User, stranger: User, org: Organization
):
    log_row(org, "r1")
    log_row(org, "r2")
    theirs = log_row(organization_personal(user=stranger), "r3")

    mate = signed_in(teammate, "teammate-pass-123", "B")
    session = mate.session
    session["active_org_id"] = org.pk
    session.save()
    refused = mate.post("/dashboard/settings/org/delete-logs", {"confirm": org.name})
    assert refused.status_code == 403
    assert RequestLog.objects.filter(organization_id=org.pk).count() == 2

    client = signed_in(owner, "owner-pass-123", "A")
    client.post("/dashboard/settings/org/delete-logs", {"confirm": "wrong name"})
    assert RequestLog.objects.filter(organization_id=org.pk).count() == 2
    client.post("/dashboard/settings/org/delete-logs", {"confirm": org.name})
    assert not RequestLog.objects.filter(organization_id=org.pk).exists()
    assert RequestLog.objects.filter(pk=theirs.pk).exists()
    event = AuditEvent.objects.get(kind="request_logs_deleted")
    assert (event.organization, event.user, event.meta) == (org, owner, {"deleted": 2})


def test_it_saves_the_profile_name(owner: User):
    client = signed_in(owner, "owner-pass-123", "A")
    client.post("/dashboard/settings/profile", {"name": "Olivia Owner"})
    owner.refresh_from_db()
    assert owner.name == "Olivia Owner"


def test_signed_out_visitors_are_sent_to_sign_in(client: Client):
    response = client.get("/dashboard/settings/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
