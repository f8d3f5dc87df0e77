"""Reads for people, organizations and keys, filtered by ownership."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from allauth.mfa.utils import is_mfa_enabled
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
