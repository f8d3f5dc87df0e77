"""Writes for people, organizations and API keys."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence

from allauth.account.models import EmailAddress
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.exceptions import EmailTaken, InvalidKeySettings
from accounts.keysecrets import display_prefix, generate_secret, hash_secret
from accounts.models import ApiKey, Membership, Organization, User
from billing.models import PricingGroup
from billing.services import wallet_create


def user_create(
    *,
    email: str,
    password: str | None = None,
    name: str = "",
    is_admin: bool = False,
    email_verified: bool = False,
    validate: bool = False,
) -> User:
    """Create a user with a personal organization (owner) and its empty wallet. Atomic."""
    email = User.objects.normalize_email(email.strip()).lower()
    if not email or "@" not in email:
        raise ValueError("a valid email address is required")
    if User.objects.filter(email__iexact=email).exists():
        raise EmailTaken(f"a user with email {email} already exists")
    with transaction.atomic():
        user = User(
            email=email,
            name=name,
            is_staff=is_admin,
            is_superuser=is_admin,
            email_verified=email_verified or is_admin,
        )
        if password:
            if validate:
                validate_password(password, user)
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
        # allauth decides sign-in verification from its EmailAddress rows.
        EmailAddress.objects.create(
            user=user, email=email, primary=True, verified=user.email_verified
        )
        organization_create_personal(user=user)
    return user


def organization_create_personal(*, user: User) -> Organization:
    """The user's own billed organization (owner role) with its empty wallet."""
    with transaction.atomic():
        org = Organization.objects.create(name=user.email, is_personal=True)
        Membership.objects.create(user=user, organization=org, role=Membership.Role.OWNER)
        wallet_create(organization=org)
    return org


def _validate_ips(networks: Sequence[str]) -> list[str]:
    out = []
    for raw in networks:
        try:
            out.append(str(ipaddress.ip_network(raw.strip(), strict=False)))
        except ValueError:
            raise InvalidKeySettings(f"not an IP network: {raw!r}") from None
    return out


def _validate_models(patterns: Sequence[str]) -> list[str]:
    out = [p.strip() for p in patterns if p.strip()]
    for pattern in out:
        # Wildcards (gpt-4o*) are fnmatch patterns; whitespace is never part of a name.
        if any(c.isspace() for c in pattern):
            raise InvalidKeySettings(f"not a model pattern: {pattern!r}")
    return out


def key_create(
    *,
    organization: Organization,
    created_by: User | None,
    name: str = "",
    scopes: Sequence[str] = (ApiKey.Scope.RELAY,),
    allowed_models: Sequence[str] = (),
    allowed_ips: Sequence[str] = (),
    spend_limit: int | None = None,
    spend_limit_period: str = ApiKey.LimitPeriod.TOTAL,
    expires_at: dt.datetime | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    pricing_group: PricingGroup | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never retrievable again."""
    bad_scopes = set(scopes) - set(ApiKey.Scope.values)
    if bad_scopes or not scopes:
        raise InvalidKeySettings(f"scopes must be among {ApiKey.Scope.values}")
    if spend_limit is not None and spend_limit < 0:
        raise InvalidKeySettings("spend limit cannot be negative")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidKeySettings("expiry must be in the future")
    for limit in (rpm_limit, tpm_limit):
        if limit is not None and limit <= 0:
            raise InvalidKeySettings("rate limits must be positive")
    secret = generate_secret()
    key = ApiKey.objects.create(
        organization=organization,
        created_by=created_by,
        name=name.strip(),
        prefix=display_prefix(secret),
        key_hash=hash_secret(secret),
        scopes=sorted(set(scopes)),
        allowed_models=_validate_models(allowed_models),
        allowed_ips=_validate_ips(allowed_ips),
        spend_limit=spend_limit,
        spend_limit_period=spend_limit_period,
        expires_at=expires_at,
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
        pricing_group=pricing_group,
    )
    return key, secret


def key_set_status(*, key: ApiKey, status: str) -> ApiKey:
    if status not in ApiKey.Status.values:
        raise InvalidKeySettings(f"unknown key status {status!r}")
    key.status = status
    key.save(update_fields=["status"])
    return key


def organization_set_require_mfa(
    *, organization: Organization, required: bool, request: HttpRequest | None = None
) -> Organization:
    """Turn the "members must use two-factor authentication" policy on or off (audited)."""
    from logs.services import audit_record

    if organization.require_mfa != required:
        organization.require_mfa = required
        organization.save(update_fields=["require_mfa"])
        audit_record(
            kind="mfa_policy_changed", organization=organization, request=request, required=required
        )
    return organization
