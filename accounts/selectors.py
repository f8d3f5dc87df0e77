"""Reads for people, organizations and keys, filtered by ownership."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import ApiKey, Membership, Organization, User


def organization_personal(*, user: User) -> Organization:
    return Organization.objects.get(
        is_personal=True, membership__user=user, membership__role=Membership.Role.OWNER
    )


def user_by_email(*, email: str) -> User:
    return User.objects.get(email__iexact=email.strip())


def keys_for_organization(*, organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=organization).order_by("-created_at")
