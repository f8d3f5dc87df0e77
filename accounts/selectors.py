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


def operator_emails() -> list[str]:
    """Where operational alerts go: active superusers, plus settings.ADMINS."""
    from django.conf import settings

    emails = {e.lower() for e in User.objects.filter(is_superuser=True, is_active=True)
              .exclude(email="").values_list("email", flat=True)}  # fmt: skip
    emails.update(email.lower() for _, email in settings.ADMINS)
    return sorted(emails)
