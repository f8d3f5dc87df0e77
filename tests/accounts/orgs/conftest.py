"""A team organization with one member in each role, made through the services."""

from __future__ import annotations

import pytest

from accounts.models import Membership, Organization, User
from accounts.services import organization_create, user_create

ROLES = ("owner", "admin", "member", "billing")


@pytest.fixture
def team(owner: User) -> Organization:
    return organization_create(name="Acme", owner=owner)


@pytest.fixture
def people(team: Organization, owner: User, stranger: User) -> dict[str, User]:
    """role name → user: `owner` owns the team, one user per other role, and a stranger."""
    found = {"owner": owner, "stranger": stranger}
    for role in ("admin", "member", "billing"):
        user = user_create(
            email=f"{role}@example.com", password="pw-123456789", email_verified=True
        )
        Membership.objects.create(user=user, organization=team, role=role)
        found[role] = user
    return found
