"""DRF permission classes built on `accounts.access` (one source of truth for roles)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext, gettext_lazy
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.access import Capability, membership_for, organization_for_request, role_allows
from accounts.http import portal_request_bind
from accounts.models import ApiKey


class OrgCapability(BasePermission):
    """Allows the call when the caller's role in the acting organization grants
    `view.required_capability`; binds the organization and membership for
    `accounts.http.api_request`."""

    message = gettext_lazy("your role in this organization does not allow this")

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        organization, membership = organization_for_request(request)
        portal_request_bind(request._request, organization=organization, membership=membership)
        capability: Capability = view.required_capability
        return role_allows(membership.role, capability)


class OrgIdCapability(BasePermission):
    """Like OrgCapability, for `/organizations/{org_id}/...`: the organization named in
    the URL. Non-members (and keys of another organization) get a 404, not a hint that it
    exists; members whose role lacks `view.required_capability` get a 403."""

    message = gettext_lazy("your role in this organization does not allow this")

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        org_id = int(view.kwargs["org_id"])
        auth = request.auth
        if isinstance(auth, ApiKey) and auth.organization_id != org_id:
            raise NotFound(gettext("no such organization"))
        membership = membership_for(user=request.user, organization_id=org_id)
        if membership is None:
            raise NotFound(gettext("no such organization"))
        portal_request_bind(
            request._request, organization=membership.organization, membership=membership
        )
        capability: Capability = view.required_capability
        return role_allows(membership.role, capability)
