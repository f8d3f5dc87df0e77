"""Who may do what inside an organization: roles, capabilities and the active organization.

Every portal view and `/api/v1` endpoint resolves the organization it acts on through
`organization_for_request` and checks a `Capability`; nothing else decides access.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase
from django.utils.translation import gettext as _

from accounts.http import portal_request_bind
from accounts.models import ApiKey, Membership, Organization, User

ACTIVE_ORG_SESSION_KEY = "active_org_id"


class Capability(enum.StrEnum):
    VIEW_ORG = "view_org"  # see the organization's balance and name
    USE_KEYS = "use_keys"  # create and manage one's own keys, see one's own usage
    MANAGE_KEYS = "manage_keys"  # every key of the organization
    MANAGE_MEMBERS = "manage_members"  # invitations, roles, removals
    VIEW_USAGE = "view_usage"  # every member's usage and request logs
    BILLING = "billing"  # top-ups, receipts, ledger, low-balance alerts
    MANAGE_ORG = "manage_org"  # rename, MFA policy, delete request logs


_ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    Membership.Role.OWNER: frozenset(Capability),
    Membership.Role.ADMIN: frozenset(
        {
            Capability.VIEW_ORG,
            Capability.USE_KEYS,
            Capability.MANAGE_KEYS,
            Capability.MANAGE_MEMBERS,
            Capability.VIEW_USAGE,
        }
    ),
    Membership.Role.BILLING: frozenset(
        {Capability.VIEW_ORG, Capability.BILLING, Capability.VIEW_USAGE}
    ),
    Membership.Role.MEMBER: frozenset({Capability.VIEW_ORG, Capability.USE_KEYS}),
}


def role_allows(role: str, capability: Capability) -> bool:
    return capability in _ROLE_CAPABILITIES.get(role, frozenset())


def membership_for(*, user: User, organization_id: int) -> Membership | None:
    return (
        Membership.objects.select_related("organization")
        .filter(user=user, organization_id=organization_id)
        .first()
    )


def organization_for_request(request: HttpRequest) -> tuple[Organization, Membership]:
    """The organization a signed-in request acts on, and the caller's membership in it.

    A management API key acts in its own organization. A browser session acts in the
    organization chosen with the switcher (kept in the session), falling back to the
    personal one. Raises PermissionDenied when the user is not (or no longer) a member.
    """
    auth = getattr(request, "auth", None)
    user = cast(User, request.user)
    if isinstance(auth, ApiKey):
        membership = membership_for(user=user, organization_id=auth.organization_id)
        if membership is None:
            raise PermissionDenied(_("the key's creator is no longer a member of its organization"))
        return membership.organization, membership
    org_id = request.session.get(ACTIVE_ORG_SESSION_KEY)
    if org_id is not None:
        membership = membership_for(user=user, organization_id=int(org_id))
        if membership is not None:
            return membership.organization, membership
        del request.session[ACTIVE_ORG_SESSION_KEY]  # removed from that organization
    membership = (
        Membership.objects.select_related("organization")
        .filter(user=user, organization__is_personal=True, role=Membership.Role.OWNER)
        .first()
    ) or Membership.objects.select_related("organization").filter(user=user).first()
    if membership is None:
        raise PermissionDenied(_("you are not a member of any organization"))
    return membership.organization, membership


def organization_activate(request: HttpRequest, *, organization_id: int) -> Membership:
    """Make `organization_id` the session's active organization (members only)."""
    membership = membership_for(user=cast(User, request.user), organization_id=organization_id)
    if membership is None:
        raise PermissionDenied(_("you are not a member of that organization"))
    request.session[ACTIVE_ORG_SESSION_KEY] = organization_id
    return membership


V = TypeVar("V", bound=Callable[..., HttpResponseBase])


def capability_required(capability: Capability) -> Callable[[V], V]:
    """Portal view decorator: signed in, member of the active org, role allows `capability`.

    Hands the view a `PortalRequest` (`request.organization`, `request.membership`).
    """

    def decorator(view: V) -> V:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            organization, membership = organization_for_request(request)
            if not role_allows(membership.role, capability):
                raise PermissionDenied(_("your role in this organization does not allow this"))
            portal = portal_request_bind(request, organization=organization, membership=membership)
            return view(portal, *args, **kwargs)

        return cast(V, login_required(wrapped))

    return decorator


def invoice_details_editable(role: str) -> bool:
    """Owners, admins and billing members keep the invoice details: whoever handles the
    organization's money (BILLING) or runs it day to day (MANAGE_MEMBERS)."""
    return role_allows(role, Capability.BILLING) or role_allows(role, Capability.MANAGE_MEMBERS)
