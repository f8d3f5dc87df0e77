"""/api/v1/organizations and members: teams, invitations by email, roles, removal, leaving."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.keysecrets import hash_secret
from accounts.models import ApiKey, Invitation, Membership, Organization, User
from accounts.services import key_create, user_create
from billing.models import Wallet

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def _as(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def _json(client: Client, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return getattr(client, method)(path, body or {}, content_type="application/json")


def _invite(client: Client, team: Organization, email: str, role: str = "member") -> Any:
    return _json(
        client, "post", f"/api/v1/organizations/{team.pk}/members", {"email": email, "role": role}
    )


def _link_token(message: Any) -> str:
    match = re.search(r"/invitations/([A-Za-z0-9_-]+)/", message.body)
    assert match, message.body
    return match.group(1)


def test_it_creates_a_team_with_the_creator_as_owner_and_a_wallet(
    client: Client, owner: User
) -> None:
    response = _json(_as(client, owner), "post", "/api/v1/organizations", {"name": " Acme "})

    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["is_personal"], body["role"]) == ("Acme", False, "owner")
    org = Organization.objects.get(pk=body["id"])
    assert Membership.objects.get(organization=org).user == owner
    assert Wallet.objects.get(organization=org).balance == 0


def test_it_lists_my_organizations_with_my_role(
    client: Client, people: dict[str, User], team: Organization
) -> None:
    response = _as(client, people["billing"]).get("/api/v1/organizations")

    rows = {row["name"]: row["role"] for row in response.json()["data"]}
    assert rows == {"billing@example.com": "owner", "Acme": "billing"}


def test_a_management_key_sees_only_its_own_organization(
    client: Client, people: dict[str, User], team: Organization
) -> None:
    _, secret = key_create(organization=team, created_by=people["admin"], scopes=["manage"])

    response = client.get("/api/v1/organizations", headers={"authorization": f"Bearer {secret}"})

    assert [row["id"] for row in response.json()["data"]] == [team.pk]
    other = people["admin"].membership_set.exclude(organization=team).get().organization_id
    assert (
        client.get(
            f"/api/v1/organizations/{other}/members", headers={"authorization": f"Bearer {secret}"}
        ).status_code
        == 404
    )


def test_it_renames_for_owners_only(
    client: Client, people: dict[str, User], team: Organization
) -> None:
    path = f"/api/v1/organizations/{team.pk}"
    assert _json(_as(client, people["admin"]), "patch", path, {"name": "X"}).status_code == 403
    assert _json(_as(client, people["owner"]), "patch", path, {"name": "Acme 2"}).status_code == 200
    team.refresh_from_db()
    assert team.name == "Acme 2"


def test_an_invitation_is_emailed_stored_hashed_and_accepted_once(
    client: Client,
    people: dict[str, User],
    team: Organization,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = _invite(_as(client, people["admin"]), team, "New.Person@Example.com", "admin")

    assert response.status_code == 201
    assert response.json()["email"] == "new.person@example.com"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new.person@example.com"]
    assert "Acme" in message.subject
    token = _link_token(message)
    invitation = Invitation.objects.get()
    assert invitation.token_hash == hash_secret(token)
    assert token not in str(Invitation.objects.values_list())

    newcomer = user_create(
        email="NEW.person@example.com", password="pw-123456789", email_verified=True
    )
    accepted = _as(Client(), newcomer).post(f"/invitations/{token}/")
    assert accepted.status_code == 302
    assert Membership.objects.get(user=newcomer, organization=team).role == "admin"

    again = user_create(email="other@example.com", password="pw-123456789", email_verified=True)
    assert _as(Client(), again).post(f"/invitations/{token}/").status_code == 404
    assert not Membership.objects.filter(user=again, organization=team).exists()


def test_an_invitation_for_another_address_is_refused(
    client: Client, people: dict[str, User], team: Organization
) -> None:
    _invite(_as(client, people["owner"]), team, "invited@example.com")
    invitation = Invitation.objects.get()
    # The token is only in the email; make a known one for this test.
    Invitation.objects.filter(pk=invitation.pk).update(token_hash=hash_secret("tok"))

    page = _as(Client(), people["stranger"]).post("/invitations/tok/")

    assert page.status_code == 400
    assert b"another email address" in page.content
    assert not Membership.objects.filter(user=people["stranger"], organization=team).exists()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_an_expired_invitation_is_refused(
    client: Client, people: dict[str, User], team: Organization
) -> None:
    _invite(_as(client, people["owner"]), team, "stranger@example.com")
    Invitation.objects.update(
        token_hash=hash_secret("tok"), expires_at=timezone.now() - dt.timedelta(seconds=1)
    )

    assert _as(Client(), people["stranger"]).post("/invitations/tok/").status_code == 404
    assert not Membership.objects.filter(user=people["stranger"], organization=team).exists()


def test_a_new_invitation_replaces_the_pending_one(
    client: Client, people: dict[str, User], team: Organization
) -> None:
    _as(client, people["owner"])
    _invite(client, team, "x@example.com")
    _invite(client, team, "x@example.com", "billing")

    pending = client.get(f"/api/v1/organizations/{team.pk}/members").json()["invitations"]
    assert [(i["email"], i["role"]) for i in pending] == [("x@example.com", "billing")]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"email": "not-an-email"}, 400),
        ({"email": "a@example.com", "role": "boss"}, 400),
        ({"email": "member@example.com"}, 400),  # already a member
    ],
)
def test_it_refuses_bad_invitations(
    client: Client, people: dict[str, User], team: Organization, body: dict[str, str], status: int
) -> None:
    response = _json(
        _as(client, people["owner"]), "post", f"/api/v1/organizations/{team.pk}/members", body
    )

    assert response.status_code == status
    assert not Invitation.objects.exists()


def test_only_owners_invite_or_make_owners(
    client: Client, people: dict[str, User], team: Organization
) -> None:
    _as(client, people["admin"])
    assert _invite(client, team, "boss@example.com", "owner").status_code == 403
    member_path = f"/api/v1/organizations/{team.pk}/members/{people['member'].pk}"
    assert _json(client, "patch", member_path, {"role": "owner"}).status_code == 403
    owner_path = f"/api/v1/organizations/{team.pk}/members/{people['owner'].pk}"
    assert _json(client, "patch", owner_path, {"role": "member"}).status_code == 403
    assert client.delete(owner_path).status_code == 403
    assert Membership.objects.get(user=people["owner"], organization=team).role == "owner"


def test_an_owner_promotes_and_the_last_owner_cannot_step_down(
    client: Client, people: dict[str, User], team: Organization
) -> None:
    _as(client, people["owner"])
    me = f"/api/v1/organizations/{team.pk}/members/{people['owner'].pk}"

    refused = _json(client, "patch", me, {"role": "admin"})
    assert refused.status_code == 400
    assert "needs an owner" in refused.json()["detail"]
    assert client.delete(me).status_code == 400

    admin = f"/api/v1/organizations/{team.pk}/members/{people['admin'].pk}"
    assert _json(client, "patch", admin, {"role": "owner"}).json()["role"] == "owner"
    assert _json(client, "patch", me, {"role": "member"}).status_code == 200
    assert Membership.objects.get(user=people["owner"], organization=team).role == "member"


def test_removing_a_member_revokes_their_keys_here_only(
    client: Client, people: dict[str, User], team: Organization
) -> None:
    member = people["member"]
    team_key, _ = key_create(organization=team, created_by=member)
    own_key, _ = key_create(
        organization=member.membership_set.get(organization__is_personal=True).organization,
        created_by=member,
    )

    response = _as(client, people["admin"]).delete(
        f"/api/v1/organizations/{team.pk}/members/{member.pk}"
    )

    assert response.status_code == 204
    assert not Membership.objects.filter(user=member, organization=team).exists()
    assert ApiKey.objects.get(pk=team_key.pk).status == "revoked"
    assert ApiKey.objects.get(pk=own_key.pk).status == "active"


def test_a_member_can_leave_but_not_remove_others(
    client: Client, people: dict[str, User], team: Organization
) -> None:
    _as(client, people["member"])
    other = f"/api/v1/organizations/{team.pk}/members/{people['billing'].pk}"
    assert client.delete(other).status_code == 403

    me = f"/api/v1/organizations/{team.pk}/members/{people['member'].pk}"
    assert client.delete(me).status_code == 204
    assert not Membership.objects.filter(user=people["member"], organization=team).exists()
    assert client.get(f"/api/v1/organizations/{team.pk}").status_code == 404


def test_nobody_leaves_or_is_invited_into_a_personal_organization(
    client: Client, owner: User, org: Organization
) -> None:
    _as(client, owner)
    assert client.delete(f"/api/v1/organizations/{org.pk}/members/{owner.pk}").status_code == 400
    assert _invite(client, org, "friend@example.com").status_code == 400


def test_an_unverified_address_cannot_accept_until_verified(
    client: Client, people: dict[str, User], team: Organization
) -> None:
    _invite(_as(client, people["owner"]), team, "late@example.com")
    Invitation.objects.update(token_hash=hash_secret("tok"))
    late = user_create(email="late@example.com", password="pw-123456789")
    guest = _as(Client(), late)

    page = guest.post("/invitations/tok/", follow=True)
    assert "verify your email address" in page.content.decode()
    assert not Membership.objects.filter(user=late, organization=team).exists()

    late.email_verified = True
    late.save(update_fields=["email_verified"])
    assert guest.post("/invitations/tok/").status_code == 302
    assert Membership.objects.get(user=late, organization=team).role == "member"
