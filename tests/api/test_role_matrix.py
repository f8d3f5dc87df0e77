"""Every accounts endpoint (API and portal) against each role in a team and a stranger.

The caller works in the team (switched to it with the portal's switcher); the stranger
cannot switch to it and so acts in their own personal organization. Each row gives the
status per caller and, for writes, the change it must (or must not) have made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client

from accounts.models import ApiKey, Invitation, Membership, Organization, User
from accounts.services import invitation_create, key_create, organization_create, user_create

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

CALLERS = ("owner", "admin", "member", "billing", "stranger")


@dataclass
class Team:
    org: Organization
    users: dict[str, User]
    owner_key: ApiKey  # made by the owner: only owners and admins reach it
    member_key: ApiKey  # made by the member: they reach their own
    victim: User  # a plain member that role changes and removals aim at
    invitation: Invitation  # a pending one


@pytest.fixture
def team(db: None) -> Team:
    users = {
        name: user_create(email=f"{name}@example.com", password="pw-123456789", email_verified=True)
        for name in (*CALLERS, "victim")
    }
    org = organization_create(name="Acme", owner=users["owner"])
    for role in ("admin", "member", "billing"):
        Membership.objects.create(user=users[role], organization=org, role=role)
    Membership.objects.create(user=users["victim"], organization=org, role="member")
    owner_key, _ = key_create(organization=org, created_by=users["owner"], name="owner's")
    member_key, _ = key_create(organization=org, created_by=users["member"], name="member's")
    invitation, _ = invitation_create(
        actor=Membership.objects.get(user=users["owner"], organization=org),
        email="pending@example.com",
    )
    return Team(org, users, owner_key, member_key, users["victim"], invitation)


@dataclass
class Row:
    method: str
    path: str  # formatted with team=, owner_key=, member_key=, victim=
    expected: dict[str, int]
    body: dict[str, Any] = field(default_factory=dict)
    json: bool = True
    # For writes: did the change happen in the team? Must be True exactly for 2xx/3xx.
    changed: Callable[[Team], bool] | None = None


def _key_gone(attr: str) -> Callable[[Team], bool]:
    # Deleted keys are revoked and hidden; the row stays for the ledger and the logs.
    return lambda t: ApiKey.objects.filter(
        pk=getattr(t, attr).pk, deleted_at__isnull=False, status=ApiKey.Status.REVOKED
    ).exists()


def _key_status(status: str) -> Callable[[Team], bool]:
    return lambda t: ApiKey.objects.get(pk=t.owner_key.pk).status == status


def _key_renamed(t: Team) -> bool:
    return ApiKey.objects.get(pk=t.owner_key.pk).name == "renamed"


def _rotated(t: Team) -> bool:
    return ApiKey.objects.get(pk=t.owner_key.pk).key_hash != t.owner_key.key_hash


def _team_keys(t: Team) -> int:
    return ApiKey.objects.filter(organization=t.org).count()


def _org_renamed(t: Team) -> bool:
    return Organization.objects.get(pk=t.org.pk).name == "Renamed"


def _invited(t: Team) -> bool:
    return Invitation.objects.filter(organization=t.org, email="new@example.com").exists()


def _victim_role_changed(t: Team) -> bool:
    return Membership.objects.get(user=t.victim, organization=t.org).role == "billing"


def _victim_removed(t: Team) -> bool:
    return not Membership.objects.filter(user=t.victim, organization=t.org).exists()


OK, NO, HIDDEN = 200, 403, 404
ALL = dict.fromkeys(CALLERS, OK)


def _only(status: int, **overrides: int) -> dict[str, int]:
    return {caller: overrides.get(caller, status) for caller in CALLERS}


ROWS = {
    # --- /api/v1/keys
    "api list keys": Row("get", "/api/v1/keys", _only(OK, billing=NO)),
    "api create key": Row(
        "post",
        "/api/v1/keys",
        _only(201, billing=NO),
        {"name": "new"},
        changed=lambda t: _team_keys(t) == 3,
    ),
    "api get key": Row(
        "get", "/api/v1/keys/{owner_key}", _only(OK, member=HIDDEN, billing=NO, stranger=HIDDEN)
    ),
    "api get own key": Row(
        "get", "/api/v1/keys/{member_key}", _only(OK, billing=NO, stranger=HIDDEN)
    ),
    "api patch key": Row(
        "patch",
        "/api/v1/keys/{owner_key}",
        _only(OK, member=HIDDEN, billing=NO, stranger=HIDDEN),
        {"name": "renamed"},
        changed=_key_renamed,
    ),
    "api rotate key": Row(
        "post",
        "/api/v1/keys/{owner_key}/rotate",
        _only(OK, member=HIDDEN, billing=NO, stranger=HIDDEN),
        changed=_rotated,
    ),
    "api delete key": Row(
        "delete",
        "/api/v1/keys/{owner_key}",
        _only(204, member=HIDDEN, billing=NO, stranger=HIDDEN),
        changed=_key_gone("owner_key"),
    ),
    "api delete own key": Row(
        "delete",
        "/api/v1/keys/{member_key}",
        _only(204, billing=NO, stranger=HIDDEN),
        changed=_key_gone("member_key"),
    ),
    # --- /api/v1/organizations
    "api list orgs": Row("get", "/api/v1/organizations", ALL),
    "api create org": Row(
        "post", "/api/v1/organizations", dict.fromkeys(CALLERS, 201), {"name": "Side project"}
    ),
    "api get org": Row("get", "/api/v1/organizations/{team}", _only(OK, stranger=HIDDEN)),
    "api rename org": Row(
        "patch",
        "/api/v1/organizations/{team}",
        _only(NO, owner=OK, stranger=HIDDEN),
        {"name": "Renamed"},
        changed=_org_renamed,
    ),
    "api list members": Row(
        "get",
        "/api/v1/organizations/{team}/members",
        _only(NO, owner=OK, admin=OK, stranger=HIDDEN),
    ),
    "api invite": Row(
        "post",
        "/api/v1/organizations/{team}/members",
        _only(NO, owner=201, admin=201, stranger=HIDDEN),
        {"email": "new@example.com", "role": "member"},
        changed=_invited,
    ),
    "api change role": Row(
        "patch",
        "/api/v1/organizations/{team}/members/{victim}",
        _only(NO, owner=OK, admin=OK, stranger=HIDDEN),
        {"role": "billing"},
        changed=_victim_role_changed,
    ),
    "api remove member": Row(
        "delete",
        "/api/v1/organizations/{team}/members/{victim}",
        _only(NO, owner=204, admin=204, stranger=HIDDEN),
        changed=_victim_removed,
    ),
    "api withdraw invitation": Row(
        "delete",
        "/api/v1/organizations/{team}/invitations/{invitation}",
        _only(NO, owner=204, admin=204, stranger=HIDDEN),
        changed=lambda t: Invitation.objects.get(pk=t.invitation.pk).revoked_at is not None,
    ),
    # --- portal
    "portal keys": Row("get", "/dashboard/keys/", _only(OK, billing=NO), json=False),
    "portal create key": Row(
        "post",
        "/dashboard/keys/",
        _only(OK, billing=NO),
        {"name": "new", "scopes": "relay"},
        json=False,
        changed=lambda t: _team_keys(t) == 3,
    ),
    "portal edit key page": Row(
        "get",
        "/dashboard/keys/{owner_key}/",
        _only(OK, member=HIDDEN, billing=NO, stranger=HIDDEN),
        json=False,
    ),
    "portal edit key": Row(
        "post",
        "/dashboard/keys/{owner_key}/",
        _only(302, member=HIDDEN, billing=NO, stranger=HIDDEN),
        {"name": "renamed", "spend_limit_period": "total"},
        json=False,
        changed=_key_renamed,
    ),
    "portal disable key": Row(
        "post",
        "/dashboard/keys/{owner_key}/status",
        _only(302, member=HIDDEN, billing=NO, stranger=HIDDEN),
        {"status": "disabled"},
        json=False,
        changed=_key_status("disabled"),
    ),
    "portal rotate key": Row(
        "post",
        "/dashboard/keys/{owner_key}/rotate",
        _only(OK, member=HIDDEN, billing=NO, stranger=HIDDEN),
        json=False,
        changed=_rotated,
    ),
    "portal delete key": Row(
        "post",
        "/dashboard/keys/{owner_key}/delete",
        _only(302, member=HIDDEN, billing=NO, stranger=HIDDEN),
        json=False,
        changed=_key_gone("owner_key"),
    ),
    "portal create org": Row(
        "post",
        "/dashboard/org/create",
        dict.fromkeys(CALLERS, 302),
        {"name": "Side project"},
        json=False,
    ),
    "portal org": Row("get", "/dashboard/org/", ALL, json=False),
    # The stranger acts in their own organization: 302 there, nothing changes in the team.
    "portal rename org": Row(
        "post",
        "/dashboard/org/rename",
        _only(NO, owner=302, stranger=302),
        {"name": "Renamed"},
        json=False,
        changed=_org_renamed,
    ),
    "portal invite": Row(
        "post",
        "/dashboard/org/invite",
        _only(NO, owner=302, admin=302, stranger=302),
        {"email": "new@example.com", "role": "member"},
        json=False,
        changed=_invited,
    ),
    "portal withdraw invitation": Row(
        "post",
        "/dashboard/org/invitations/{invitation}/revoke",
        _only(NO, owner=302, admin=302, stranger=HIDDEN),
        json=False,
        changed=lambda t: Invitation.objects.get(pk=t.invitation.pk).revoked_at is not None,
    ),
    "portal change role": Row(
        "post",
        "/dashboard/org/members/{victim}/role",
        _only(NO, owner=302, admin=302, stranger=HIDDEN),
        {"role": "billing"},
        json=False,
        changed=_victim_role_changed,
    ),
    "portal remove member": Row(
        "post",
        "/dashboard/org/members/{victim}/remove",
        _only(NO, owner=302, admin=302, stranger=HIDDEN),
        json=False,
        changed=_victim_removed,
    ),
}

STRANGERS_OWN_WORLD = {"api create key", "portal create key", "portal rename org", "portal invite"}


def _client_for(team: Team, caller: str) -> Client:
    client = Client()
    client.force_login(team.users[caller])
    switched = client.post("/dashboard/org/switch", {"organization": team.org.pk})
    assert switched.status_code == (403 if caller == "stranger" else 302)
    return client


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("name", list(ROWS))
def test_role_matrix(team: Team, name: str, caller: str) -> None:
    row = ROWS[name]
    path = row.path.format(
        team=team.org.pk,
        owner_key=team.owner_key.pk,
        member_key=team.member_key.pk,
        victim=team.victim.pk,
        invitation=team.invitation.pk,
    )
    client = _client_for(team, caller)
    call = getattr(client, row.method)
    response = (
        call(path, row.body, content_type="application/json") if row.json else call(path, row.body)
    )

    assert response.status_code == row.expected[caller], response.content[:300]
    if row.changed is not None:
        succeeded = response.status_code < 400 and not (
            caller == "stranger" and name in STRANGERS_OWN_WORLD
        )
        assert row.changed(team) is succeeded


@pytest.mark.parametrize("caller", CALLERS)
def test_the_key_list_shows_each_role_what_it_may_see(team: Team, caller: str) -> None:
    response = _client_for(team, caller).get("/api/v1/keys")
    if caller == "billing":
        assert response.status_code == 403
        return
    ids = {k["id"] for k in response.json()["data"]}
    expected = {
        "owner": {team.owner_key.pk, team.member_key.pk},
        "admin": {team.owner_key.pk, team.member_key.pk},
        "member": {team.member_key.pk},
        "stranger": set(),
    }[caller]
    assert ids == expected


def test_anonymous_callers_are_refused_everywhere(team: Team) -> None:
    client = Client()
    for name, row in ROWS.items():
        path = row.path.format(
            team=team.org.pk,
            owner_key=team.owner_key.pk,
            member_key=team.member_key.pk,
            victim=team.victim.pk,
            invitation=team.invitation.pk,
        )
        response = getattr(client, row.method)(path)
        expected = (401,) if row.json else (302,)
        assert response.status_code in expected, name
        if not row.json:
            assert "/login/" in response["location"], name
