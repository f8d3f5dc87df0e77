"""Writes for people, organizations and API keys."""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.access import Capability, role_allows
from accounts.audit import audit_record
from accounts.exceptions import (
    AccountsError,
    InvalidKeySettings,
    InvalidOrganizationSettings,
    InvitationInvalid,
    MembershipRuleBroken,
    RoleNotAllowed,
)
from accounts.keysecrets import display_prefix, generate_secret, hash_secret
from accounts.models import ApiKey, AuditEvent, Invitation, Membership, Organization, User
from accounts.revocations import key_change_publish
from accounts.signals import organization_created
from money import MAX_USD, MICROS_PER_USD

if TYPE_CHECKING:
    # Annotations only: a key's pricing group is billing's, set by staff pages.
    from billing.models import PricingGroup


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
    # The body lives on the manager so Django's createsuperuser creates users the same way.
    return User.objects.create_user(
        email,
        password,
        name=name,
        is_admin=is_admin,
        email_verified=email_verified,
        validate=validate,
    )


def organization_create_personal(*, user: User) -> Organization:
    """The user's own billed organization (owner role) with its empty wallet."""
    return Organization.objects.create_personal(user=user)


def _validate_ips(networks: Sequence[str]) -> list[str]:
    out = []
    for raw in networks:
        try:
            out.append(str(ipaddress.ip_network(raw.strip(), strict=False)))
        except ValueError:
            raise InvalidKeySettings(
                _("not an IP network: %(value)s") % {"value": repr(raw)}
            ) from None
    return out


def _validate_models(patterns: Sequence[str]) -> list[str]:
    out = [p.strip() for p in patterns if p.strip()]
    for pattern in out:
        # Wildcards (gpt-4o*) are fnmatch patterns; whitespace is never part of a name.
        if any(c.isspace() for c in pattern):
            raise InvalidKeySettings(_("not a model pattern: %(value)s") % {"value": repr(pattern)})
    return out


# The caps a key and an organization both carry, enforced with the hold on the request path
# (billing/caps.py): requests per UTC day, requests in flight at once, and spend per UTC
# day, ISO week and calendar month. None is no cap.
CAP_FIELDS = (
    "requests_per_day",
    "max_concurrent",
    "spend_cap_day",
    "spend_cap_week",
    "spend_cap_month",
)
SPEND_CAP_FIELDS = ("spend_cap_day", "spend_cap_week", "spend_cap_month")


class Caps(TypedDict):
    """Every cap of a key or an organization: requests, or micro-USD; None for no cap."""

    requests_per_day: int | None
    max_concurrent: int | None
    spend_cap_day: int | None
    spend_cap_week: int | None
    spend_cap_month: int | None


# Request counts fit a PositiveIntegerField on every database; spend caps (micro-USD) stop
# at the largest amount anyone may type anywhere (money.MAX_USD).
MAX_REQUEST_CAP = 2**31 - 1
MAX_SPEND_CAP = MAX_USD * MICROS_PER_USD


def _validate_caps(caps: Mapping[str, Any], error: type[AccountsError]) -> None:
    for name, value in caps.items():
        if value is None:
            continue
        spend = name in SPEND_CAP_FIELDS
        top = MAX_SPEND_CAP if spend else MAX_REQUEST_CAP
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            if spend:
                raise error(
                    _("%(name)s must be between 1 and %(max)s micro-USD (null for no cap)")
                    % {"name": name, "max": top}
                )
            raise error(
                _("%(name)s must be between 1 and %(max)s (null for no cap)")
                % {"name": name, "max": top}
            )


def _caps_given(*values: Any) -> dict[str, Any]:
    """The caps a caller gave (VALUES in CAP_FIELDS order), by name; _UNSET ones left out."""
    return {
        field: value for field, value in zip(CAP_FIELDS, values, strict=True) if value is not _UNSET
    }


def _audit_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


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
    requests_per_day: int | None = None,
    max_concurrent: int | None = None,
    spend_cap_day: int | None = None,
    spend_cap_week: int | None = None,
    spend_cap_month: int | None = None,
    show_cost: bool = True,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never retrievable again."""
    caps = {
        "requests_per_day": requests_per_day,
        "max_concurrent": max_concurrent,
        "spend_cap_day": spend_cap_day,
        "spend_cap_week": spend_cap_week,
        "spend_cap_month": spend_cap_month,
    }
    _validate_caps(caps, InvalidKeySettings)
    bad_scopes = set(scopes) - set(ApiKey.Scope.values)
    if bad_scopes or not scopes:
        raise InvalidKeySettings(
            _("scopes must be among %(values)s") % {"values": ApiKey.Scope.values}
        )
    if spend_limit is not None and spend_limit < 0:
        raise InvalidKeySettings(_("spend limit cannot be negative"))
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidKeySettings(_("expiry must be in the future"))
    for limit in (rpm_limit, tpm_limit):
        if limit is not None and limit <= 0:
            raise InvalidKeySettings(_("rate limits must be positive"))
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
        show_cost=show_cost,
        **caps,
    )
    audit_record(
        kind="key_created", user=created_by, organization=organization, key_id=key.pk,
        prefix=key.prefix,
    )  # fmt: skip
    return key, secret


def key_set_status(*, key: ApiKey, status: str) -> ApiKey:
    """Enable, disable or revoke a key; the relay honours it from the next request on."""
    if status not in ApiKey.Status.values:
        raise InvalidKeySettings(_("unknown key status %(value)s") % {"value": repr(status)})
    key.status = status
    key.save(update_fields=["status"])
    key_change_publish()
    if status == ApiKey.Status.REVOKED:
        audit_record(
            kind="key_revoked", user=key.created_by, organization=key.organization,
            key_id=key.pk, prefix=key.prefix,
        )  # fmt: skip
    return key


# --- Key management (dashboard and /api/v1/keys) ------------------------------------------

# "Not given" for key_update, distinct from None (which clears a limit).
_UNSET: Any = object()


def key_update(
    *,
    key: ApiKey,
    actor: User | None = None,
    name: str = _UNSET,
    status: str = _UNSET,
    expires_at: dt.datetime | None = _UNSET,
    allowed_models: Sequence[str] = _UNSET,
    allowed_ips: Sequence[str] = _UNSET,
    spend_limit: int | None = _UNSET,
    spend_limit_period: str = _UNSET,
    rpm_limit: int | None = _UNSET,
    tpm_limit: int | None = _UNSET,
    pricing_group: PricingGroup | None = _UNSET,
    requests_per_day: int | None = _UNSET,
    max_concurrent: int | None = _UNSET,
    spend_cap_day: int | None = _UNSET,
    spend_cap_week: int | None = _UNSET,
    spend_cap_month: int | None = _UNSET,
    show_cost: bool = _UNSET,
) -> ApiKey:
    """Change the given settings of a key (others untouched); the relay honours the change
    from the next request on. A revoked key cannot be changed. Never touches spend counters
    except to re-base the period when the spend-limit period changes. Atomic; a change
    that changes something is audited (`key_changed`: each changed setting, before and
    after; ACTOR is who made it when not the key's creator)."""
    if key.status == ApiKey.Status.REVOKED:
        raise InvalidKeySettings(_("a revoked key cannot be changed"))
    caps = _caps_given(
        requests_per_day, max_concurrent, spend_cap_day, spend_cap_week, spend_cap_month
    )
    _validate_caps(caps, InvalidKeySettings)
    before = {field: _audit_value(getattr(key, field)) for field in _KEY_AUDITED}
    fields: list[str] = []
    if name is not _UNSET:
        key.name = name.strip()[:100]
        fields.append("name")
    if status is not _UNSET:
        if status not in (ApiKey.Status.ACTIVE, ApiKey.Status.DISABLED):
            raise InvalidKeySettings(_("status must be 'active' or 'disabled' (delete to revoke)"))
        key.status = status
        fields.append("status")
    if expires_at is not _UNSET:
        if expires_at is not None and expires_at <= timezone.now():
            raise InvalidKeySettings(_("expiry must be in the future"))
        key.expires_at = expires_at
        fields.append("expires_at")
    if allowed_models is not _UNSET:
        key.allowed_models = _validate_models(allowed_models)
        fields.append("allowed_models")
    if allowed_ips is not _UNSET:
        key.allowed_ips = _validate_ips(allowed_ips)
        fields.append("allowed_ips")
    if spend_limit is not _UNSET:
        if spend_limit is not None and spend_limit < 0:
            raise InvalidKeySettings(_("spend limit cannot be negative"))
        key.spend_limit = spend_limit
        fields.append("spend_limit")
    for field_name, limit in (("rpm_limit", rpm_limit), ("tpm_limit", tpm_limit)):
        if limit is not _UNSET:
            if limit is not None and limit <= 0:
                raise InvalidKeySettings(_("rate limits must be positive (null for no limit)"))
            setattr(key, field_name, limit)
            fields.append(field_name)
    if pricing_group is not _UNSET:
        key.pricing_group = pricing_group
        fields.append("pricing_group")
    for field_name, value in caps.items():
        setattr(key, field_name, value)
        fields.append(field_name)
    if show_cost is not _UNSET:
        key.show_cost = bool(show_cost)
        fields.append("show_cost")
    with transaction.atomic():
        if fields:
            key.save(update_fields=fields)
        if spend_limit_period is not _UNSET and spend_limit_period != key.spend_limit_period:
            if spend_limit_period not in ApiKey.LimitPeriod.values:
                raise InvalidKeySettings(
                    _("spend limit period must be among %(values)s")
                    % {"values": ApiKey.LimitPeriod.values}
                )
            # Total: the period is all time. Month: re-based by the next reservation.
            rebase: dict[str, Any] = (
                {"period_spent": F("spent")}
                if spend_limit_period == ApiKey.LimitPeriod.TOTAL
                else {"period_start": None}
            )
            ApiKey.objects.filter(pk=key.pk).update(spend_limit_period=spend_limit_period, **rebase)
            key.refresh_from_db()
        changes = _changes(key, before)
        if changes:
            audit_record(
                kind="key_changed", user=key.created_by, actor=actor,
                organization=key.organization, key_id=key.pk, prefix=key.prefix,
                changes=changes,
            )  # fmt: skip
        key_change_publish()
    return key


# What key_update's audit event reports when it changes (the pricing group by id).
_KEY_AUDITED = (
    "name",
    "status",
    "expires_at",
    "allowed_models",
    "allowed_ips",
    "spend_limit",
    "spend_limit_period",
    "rpm_limit",
    "tpm_limit",
    "pricing_group_id",
    *CAP_FIELDS,
    "show_cost",
)


def _changes(row: ApiKey | Organization, before: Mapping[str, Any]) -> dict[str, list[Any]]:
    """{field: [before, after]} of the fields of ROW that changed since BEFORE."""
    changes = {}
    for field, old in before.items():
        new = _audit_value(getattr(row, field))
        if new != old:
            changes[field] = [old, new]
    return changes


def key_rotate(*, key: ApiKey, actor: User | None = None) -> tuple[ApiKey, str]:
    """Give the key a new secret; settings, id and spend stay. The old secret stops working
    on the next request (the hash it maps to no longer exists). Returns the new secret once."""
    if key.status == ApiKey.Status.REVOKED:
        raise InvalidKeySettings(_("a revoked key cannot be rotated"))
    secret = generate_secret()
    with transaction.atomic():
        key.prefix = display_prefix(secret)
        key.key_hash = hash_secret(secret)
        key.save(update_fields=["prefix", "key_hash"])
        key_change_publish()
        audit_record(
            kind="key_rotated", user=key.created_by, actor=actor,
            organization=key.organization, key_id=key.pk, prefix=key.prefix,
        )  # fmt: skip
    return key, secret


def key_delete(*, key: ApiKey, actor: User | None = None) -> None:
    """Delete a key: revoked at once everywhere and hidden from every list. The row stays
    for the holds in flight, the ledger and the request logs that refer to it."""
    with transaction.atomic():
        audit_record(
            kind="key_revoked", user=key.created_by, actor=actor,
            organization=key.organization, key_id=key.pk, prefix=key.prefix, deleted=True,
        )  # fmt: skip
        ApiKey.objects.filter(pk=key.pk).update(
            status=ApiKey.Status.REVOKED, deleted_at=timezone.now()
        )
        key_change_publish()


# --- Organizations, memberships and invitations -------------------------------------------

INVITATION_DAYS = 7
_LAST_OWNER = gettext_lazy("an organization needs an owner: make someone else owner first")


def organization_create(*, name: str, owner: User) -> Organization:
    """A team organization with OWNER as its owner and an empty wallet. Atomic."""
    name = name.strip()
    if not name:
        raise MembershipRuleBroken(_("an organization needs a name"))
    with transaction.atomic():
        org = Organization.objects.create(name=name[:150], is_personal=False)
        Membership.objects.create(user=owner, organization=org, role=Membership.Role.OWNER)
        organization_created.send(sender=Organization, organization=org)
    return org


def organization_rename(*, organization: Organization, name: str) -> Organization:
    name = name.strip()
    if not name:
        raise MembershipRuleBroken(_("an organization needs a name"))
    organization.name = name[:150]
    organization.save(update_fields=["name"])
    return organization


# The organization settings organization_update changes and audits.
_ORG_AUDITED = (*CAP_FIELDS, "plan_fallback")


def organization_update(
    *,
    organization: Organization,
    actor: User | None = None,
    request: HttpRequest | None = None,
    name: str = _UNSET,
    requests_per_day: int | None = _UNSET,
    max_concurrent: int | None = _UNSET,
    spend_cap_day: int | None = _UNSET,
    spend_cap_week: int | None = _UNSET,
    spend_cap_month: int | None = _UNSET,
    plan_fallback: bool = _UNSET,
) -> Organization:
    """Change the given settings of an organization (others untouched): its name, its caps
    across all its keys, and whether what a plan does not cover is paid from the balance.
    Atomic. A change of caps or fallback is audited (`org_settings_changed`: each changed
    setting, before and after) and reaches the relay from the next request on (the
    key-change broadcast: the relay's key snapshot carries the organization's caps)."""
    caps = _caps_given(
        requests_per_day, max_concurrent, spend_cap_day, spend_cap_week, spend_cap_month
    )
    _validate_caps(caps, InvalidOrganizationSettings)
    before = {field: getattr(organization, field) for field in _ORG_AUDITED}
    with transaction.atomic():
        if name is not _UNSET:
            organization_rename(organization=organization, name=name)
        fields = list(caps)
        for field, value in caps.items():
            setattr(organization, field, value)
        if plan_fallback is not _UNSET:
            organization.plan_fallback = bool(plan_fallback)
            fields.append("plan_fallback")
        if fields:
            organization.save(update_fields=fields)
        changes = _changes(organization, before)
        if changes:
            audit_record(
                kind="org_settings_changed", user=actor, organization=organization,
                request=request, changes=changes,
            )  # fmt: skip
            key_change_publish()
    return organization


def _check_role_change(*, actor: Membership, role: str) -> None:
    if role not in Membership.Role.values:
        raise MembershipRuleBroken(
            _("role must be among %(values)s") % {"values": Membership.Role.values}
        )
    if role == Membership.Role.OWNER and actor.role != Membership.Role.OWNER:
        raise RoleNotAllowed(_("only an owner can make someone an owner"))


def _owner_count(organization_id: int) -> int:
    return Membership.objects.filter(
        organization_id=organization_id, role=Membership.Role.OWNER
    ).count()


def invitation_create(
    *, actor: Membership, email: str, role: str = Membership.Role.MEMBER
) -> tuple[Invitation, str]:
    """Invite EMAIL into the actor's organization and email them the link (after commit).

    Returns the invitation and its token (shown nowhere else; only its hash is stored).
    Replaces any pending invitation for the same address.
    """
    organization = actor.organization
    if organization.is_personal:
        raise MembershipRuleBroken(_("create a team organization to invite people"))
    _check_role_change(actor=actor, role=role)
    email = User.objects.normalize_email(email.strip()).lower()
    if "@" not in email or len(email) > 254:
        raise MembershipRuleBroken(_("a valid email address is required"))
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise MembershipRuleBroken(_("%(email)s is already a member") % {"email": email})
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        Invitation.objects.filter(
            organization=organization,
            email__iexact=email,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
        ).update(revoked_at=now)
        invitation = Invitation.objects.create(
            organization=organization,
            email=email,
            role=role,
            token_hash=hash_secret(token),
            invited_by=actor.user,
            expires_at=now + dt.timedelta(days=INVITATION_DAYS),
        )
        transaction.on_commit(lambda: _invitation_send(invitation=invitation, token=token))
    return invitation, token


def _invitation_send(*, invitation: Invitation, token: str) -> None:
    # Sent right after commit rather than from a Celery task, so that the token never sits
    # in a broker queue; a failed send leaves an invitation the inviter can send again.
    link = settings.SITE_URL.rstrip("/") + reverse("invitation-accept", args=[token])
    inviter = invitation.invited_by.email if invitation.invited_by else "TokenHub"
    context = {
        "organization": invitation.organization.name,
        "inviter": inviter,
        "role": invitation.get_role_display(),
        "link": link,
        "days": INVITATION_DAYS,
    }
    send_mail(
        subject=render_to_string("accounts/email/invitation_subject.txt", context).strip(),
        message=render_to_string("accounts/email/invitation_body.txt", context),
        from_email=None,
        recipient_list=[invitation.email],
    )


def invitation_revoke(*, invitation: Invitation) -> None:
    Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def invitation_accept(*, token: str, user: User) -> Membership:
    """Join the invitation's organization. Single use: the invitation row is locked, and
    only a pending invitation addressed to the user's verified email (case-insensitive)
    succeeds."""
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .select_related("organization")
            .filter(token_hash=hash_secret(token))
            .first()
        )
        if invitation is None or not invitation.is_pending():
            raise InvitationInvalid(_("this invitation is unknown, expired or already used"))
        if invitation.email.lower() != user.email.lower():
            raise InvitationInvalid(
                _("this invitation was sent to another email address; sign in with that one")
            )
        if not user.email_verified:
            # Whoever holds the link must also have proved they own the address.
            raise InvitationInvalid(_("verify your email address, then open the link again"))
        membership, _created = Membership.objects.get_or_create(
            user=user, organization=invitation.organization, defaults={"role": invitation.role}
        )
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        audit_record(
            kind="member_added", user=user, actor=invitation.invited_by,
            organization=invitation.organization, role=membership.role,
        )  # fmt: skip
    return membership


def membership_set_role(*, actor: Membership, member: Membership, role: str) -> Membership:
    """Change a member's role. Only owners grant or take away the owner role; an
    organization always keeps at least one owner. Atomic."""
    if actor.organization_id != member.organization_id:
        raise RoleNotAllowed(_("not a member of this organization"))
    _check_role_change(actor=actor, role=role)
    if member.role == Membership.Role.OWNER and actor.role != Membership.Role.OWNER:
        raise RoleNotAllowed(_("only an owner can change an owner's role"))
    with transaction.atomic():
        # Lock the organization's owners so two owners cannot demote each other at once.
        list(
            Membership.objects.select_for_update().filter(
                organization_id=member.organization_id, role=Membership.Role.OWNER
            )
        )
        member.refresh_from_db()
        if (
            member.role == Membership.Role.OWNER
            and role != Membership.Role.OWNER
            and _owner_count(member.organization_id) <= 1
        ):
            raise MembershipRuleBroken(str(_LAST_OWNER))
        previous = member.role
        member.role = role
        member.save(update_fields=["role"])
        if previous != role:
            audit_record(
                kind="role_changed", user=member.user, actor=actor.user,
                organization=member.organization, role=role, previous=previous,
            )  # fmt: skip
    return member


def membership_remove(*, actor: Membership, member: Membership) -> None:
    """Remove MEMBER (or leave, when actor is member). Owners are removed only by owners;
    the last owner cannot leave; nobody leaves their personal organization. The member's
    keys in the organization are revoked. Atomic."""
    if actor.organization_id != member.organization_id:
        raise RoleNotAllowed(_("not a member of this organization"))
    leaving = actor.pk == member.pk
    if not leaving and not role_allows(actor.role, Capability.MANAGE_MEMBERS):
        raise RoleNotAllowed(_("your role in this organization does not allow this"))
    if not leaving and member.role == Membership.Role.OWNER and actor.role != Membership.Role.OWNER:
        raise RoleNotAllowed(_("only an owner can remove an owner"))
    organization = member.organization
    if organization.is_personal and member.role == Membership.Role.OWNER:
        raise MembershipRuleBroken(_("nobody can leave their personal organization"))
    with transaction.atomic():
        list(
            Membership.objects.select_for_update().filter(
                organization_id=member.organization_id, role=Membership.Role.OWNER
            )
        )
        member.refresh_from_db()
        if member.role == Membership.Role.OWNER and _owner_count(member.organization_id) <= 1:
            raise MembershipRuleBroken(str(_LAST_OWNER))
        # Keys act as their creator: once the creator is gone they must stop working.
        revoked = (
            ApiKey.objects.filter(
                organization_id=member.organization_id, created_by_id=member.user_id
            )
            .exclude(status=ApiKey.Status.REVOKED)
            .update(status=ApiKey.Status.REVOKED)
        )
        audit_record(
            kind="member_removed", user=member.user, actor=actor.user,
            organization=organization, role=member.role, keys_revoked=revoked,
        )  # fmt: skip
        member.delete()
        if revoked:
            key_change_publish()


def organization_set_require_mfa(
    *, organization: Organization, required: bool, request: HttpRequest | None = None
) -> Organization:
    """Turn the "members must use two-factor authentication" policy on or off (audited)."""
    if organization.require_mfa != required:
        organization.require_mfa = required
        organization.save(update_fields=["require_mfa"])
        audit_record(
            kind="mfa_policy_changed", organization=organization, request=request, required=required
        )
    return organization


# --- Playground -----------------------------------------------------------------------------

PLAYGROUND_KEY_MINUTES = 60


def playground_key_issue(
    *, user: User, organization: Organization, secret: str = ""
) -> tuple[ApiKey, str]:
    """The playground key of USER in ORGANIZATION and a secret for it.

    One key per person and organization, reused while it is active and unexpired: SECRET,
    when given (the page keeps the last one in the person's session), is handed back if it
    still opens that key. Otherwise the same key gets a new secret and a new expiry,
    PLAYGROUND_KEY_MINUTES away, and the old secret stops working: at most one works at a
    time. A revoked or disabled key is left alone and a new one made. The key is hidden
    from key lists; its requests are logged and billed like any other. Atomic.
    """
    now = timezone.now()
    with transaction.atomic():
        # Serializes a person's concurrent first visits (no key row to lock yet).
        Membership.objects.select_for_update().filter(user=user, organization=organization).first()
        keys = list(
            ApiKey.objects.filter(
                organization=organization,
                created_by=user,
                is_playground=True,
                status=ApiKey.Status.ACTIVE,
                deleted_at__isnull=True,
            ).order_by("-created_at", "-pk")
        )
        key = keys[0] if keys else None
        if len(keys) > 1:  # left over from when every visit made a key
            ApiKey.objects.filter(pk__in=[k.pk for k in keys[1:]]).update(
                status=ApiKey.Status.REVOKED
            )
            key_change_publish()
        if (
            key is not None
            and key.is_usable(now)
            and secret
            and constant_time_compare(hash_secret(secret), key.key_hash)
        ):
            return key, secret
        secret = generate_secret()
        expires_at = now + dt.timedelta(minutes=PLAYGROUND_KEY_MINUTES)
        if key is None:
            key = ApiKey.objects.create(
                organization=organization,
                created_by=user,
                name="Playground",
                prefix=display_prefix(secret),
                key_hash=hash_secret(secret),
                scopes=[ApiKey.Scope.RELAY],
                expires_at=expires_at,
                is_playground=True,
            )
        else:
            key.prefix = display_prefix(secret)
            key.key_hash = hash_secret(secret)
            key.expires_at = expires_at
            key.save(update_fields=["prefix", "key_hash", "expires_at"])
            key_change_publish()
    return key, secret


# --- Invoice details ----------------------------------------------------------------------

INVOICE_FIELDS = ("legal_name", "billing_address", "billing_country", "tax_id")


def organization_invoice_details_set(
    *,
    organization: Organization,
    details: Mapping[str, str],
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> list[str]:
    """Set the invoice details given in DETAILS (cleaned values; others untouched).
    Returns the fields that changed, which are audited by name (their values are the
    customer's personal data and stay out of the audit log). Documents already issued
    keep the details they were issued with."""
    changed = [f for f in INVOICE_FIELDS if f in details and details[f] != getattr(organization, f)]
    if not changed:
        return []
    with transaction.atomic():
        for field in changed:
            setattr(organization, field, details[field])
        organization.save(update_fields=changed)
        audit_record(
            kind=AuditEvent.Kind.ORG_SETTINGS_CHANGED,
            user=actor,
            organization=organization,
            request=request,
            invoice_details=changed,
        )
    return changed
