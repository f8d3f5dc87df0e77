"""Reads for people, organizations and keys, filtered by ownership."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from allauth.mfa.utils import is_mfa_enabled
from django.db.models import QuerySet
from django.utils import timezone

from accounts.access import Capability, role_allows
from accounts.keysecrets import hash_secret
from accounts.models import ApiKey, Invitation, Membership, Organization, User


def organization_personal(*, user: User) -> Organization:
    return Organization.objects.get(
        is_personal=True, membership__user=user, membership__role=Membership.Role.OWNER
    )


def user_by_email(*, email: str) -> User:
    return User.objects.get(email__iexact=email.strip())


def keys_for_organization(*, organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(
        organization=organization, is_playground=False, deleted_at__isnull=True
    ).order_by("-created_at")


def operator_emails() -> list[str]:
    """Where operational alerts go: active superusers, plus settings.ADMINS."""
    from django.conf import settings

    emails = {e.lower() for e in User.objects.filter(is_superuser=True, is_active=True)
              .exclude(email="").values_list("email", flat=True)}  # fmt: skip
    emails.update(email.lower() for _, email in settings.ADMINS)
    return sorted(emails)


def keys_visible_to(*, membership: Membership) -> QuerySet[ApiKey]:
    """Keys the member may see and manage: every key of the organization for roles that
    manage keys, otherwise only the ones the member created."""
    keys = ApiKey.objects.filter(
        organization_id=membership.organization_id, is_playground=False, deleted_at__isnull=True
    )
    if not role_allows(membership.role, Capability.MANAGE_KEYS):
        keys = keys.filter(created_by_id=membership.user_id)
    return keys.select_related("created_by", "pricing_group").order_by("-created_at", "-pk")


def memberships_of(*, user: User) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("-organization__is_personal", "organization__name", "organization_id")
    )


def members_of(*, organization: Organization) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("created_at", "pk")
    )


def invitations_pending(*, organization: Organization) -> QuerySet[Invitation]:
    return Invitation.objects.filter(
        organization=organization,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
    ).order_by("-created_at")


def invitation_by_token(*, token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("organization", "invited_by")
        .filter(token_hash=hash_secret(token))
        .first()
    )


def user_can_create_keys(*, user: User) -> bool:
    """Only people with a verified primary email may create API keys.

    Users made by allauth are verified through its EmailAddress rows; users made by the CLI
    or the admin carry `User.email_verified` (kept in sync when allauth confirms an email).
    """
    if not user.is_active:
        return False
    if user.email_verified:
        return True
    verified: bool = EmailAddress.objects.filter(
        user=user, email__iexact=user.email, verified=True, primary=True
    ).exists()
    return verified


def user_mfa_required_but_missing(*, user: User) -> bool:
    """Does an organization of the user require MFA that the user has not set up?"""
    requires = Membership.objects.filter(user=user, organization__require_mfa=True).exists()
    return requires and not bool(is_mfa_enabled(user))
