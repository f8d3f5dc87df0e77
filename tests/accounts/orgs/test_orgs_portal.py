"""/dashboard/org/: create a team, switch, invite, accept the emailed link, leave."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from accounts.access import ACTIVE_ORG_SESSION_KEY
from accounts.models import Membership, Organization, User
from accounts.services import user_create

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_a_team_is_created_invited_into_and_joined(
    client: Client, owner: User, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(owner)
    client.post("/dashboard/org/create", {"name": "Acme"})
    team = Organization.objects.get(name="Acme")
    assert client.session[ACTIVE_ORG_SESSION_KEY] == team.pk  # the new team is active

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/dashboard/org/invite", {"email": "Friend@Example.com", "role": "billing"})
    page = client.get("/dashboard/org/").content.decode()
    assert "friend@example.com" in page  # pending invitation listed
    link = re.search(r"http://\S+/invitations/\S+/", str(mail.outbox[0].body))
    assert link
    path = link.group(0).split("://", 1)[1].split("/", 1)[1]

    friend = user_create(email="friend@example.com", password="pw-123456789", email_verified=True)
    guest = Client()
    guest.force_login(friend)
    shown = guest.get("/" + path)
    assert shown.status_code == 200
    assert shown["referrer-policy"] == "no-referrer"
    assert "Join Acme" in shown.content.decode()
    assert guest.post("/" + path).status_code == 302
    assert Membership.objects.get(user=friend, organization=team).role == "billing"
    assert guest.session[ACTIVE_ORG_SESSION_KEY] == team.pk


def test_the_invitation_link_needs_a_signed_in_user(client: Client) -> None:
    response = client.get("/invitations/whatever/")

    assert response.status_code == 302
    assert "/login/" in response["location"]


def test_the_switcher_changes_the_active_organization_for_members_only(
    client: Client, owner: User, stranger: User
) -> None:
    client.force_login(owner)
    client.post("/dashboard/org/create", {"name": "Acme"})
    personal = Organization.objects.get(is_personal=True, membership__user=owner)

    client.post("/dashboard/org/switch", {"organization": personal.pk})
    assert client.session[ACTIVE_ORG_SESSION_KEY] == personal.pk
    assert "Now working in" in client.get("/dashboard/org/").content.decode()

    theirs = Organization.objects.get(is_personal=True, membership__user=stranger)
    assert client.post("/dashboard/org/switch", {"organization": theirs.pk}).status_code == 403
    assert client.session[ACTIVE_ORG_SESSION_KEY] == personal.pk


def test_the_switcher_only_follows_local_next_urls(client: Client, owner: User) -> None:
    client.force_login(owner)
    personal = Organization.objects.get(membership__user=owner)

    local = client.post(
        "/dashboard/org/switch", {"organization": personal.pk, "next": "/dashboard/keys/"}
    )
    evil = client.post(
        "/dashboard/org/switch", {"organization": personal.pk, "next": "https://evil.example/"}
    )

    assert local["location"] == "/dashboard/keys/"
    assert evil["location"] == "/dashboard/org/"


def test_a_member_leaves_a_team_from_the_portal(
    client: Client, owner: User, stranger: User
) -> None:
    client.force_login(owner)
    client.post("/dashboard/org/create", {"name": "Acme"})
    team = Organization.objects.get(name="Acme")
    Membership.objects.create(user=stranger, organization=team, role="member")
    other = Client()
    other.force_login(stranger)
    other.post("/dashboard/org/switch", {"organization": team.pk})

    assert other.post("/dashboard/org/leave").status_code == 302
    assert not Membership.objects.filter(user=stranger, organization=team).exists()
    # The last owner stays.
    client.post("/dashboard/org/leave")
    assert Membership.objects.filter(user=owner, organization=team, role="owner").exists()


def test_the_sidebar_switcher_lists_my_organizations_and_marks_the_active_one(
    client: Client, owner: User
) -> None:
    client.force_login(owner)
    client.post("/dashboard/org/create", {"name": "Acme"})
    team = Organization.objects.get(name="Acme")

    html = client.get("/dashboard/keys/").content.decode()

    switcher = html.split('class="org-switcher"', 1)[1].split("</form>", 1)[0]
    assert f'value="{team.pk}" selected' in switcher
    assert "owner@example.com" in switcher
    assert 'name="next" value="/dashboard/keys/"' in switcher
