"""DRF permission classes built on `accounts.access` (one source of truth for roles)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext, gettext_lazy
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.access import Capability, membership_for, organization_for_request, role_allows
from accounts.models import ApiKey


class OrgCapability(BasePermission):
    """Allows the call when the caller's role in the acting organization grants
    `view.required_capability`; sets `request.organization` and `request.membership`."""

    message = gettext_lazy("your role in this organization does not allow this")

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        organization, membership = organization_for_request(request)
        request.organization = organization  # type: ignore[attr-defined]
        request.membership = membership  # type: ignore[attr-defined]
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
        request.organization = membership.organization  # type: ignore[attr-defined]
        request.membership = membership  # type: ignore[attr-defined]
        capability: Capability = view.required_capability
        return role_allows(membership.role, capability)
