"""DRF permission classes built on `accounts.access` (one source of truth for roles)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.access import Capability, organization_for_request, role_allows


class OrgCapability(BasePermission):
    """Allows the call when the caller's role in the acting organization grants
    `view.required_capability`; sets `request.organization` and `request.membership`."""

    message = "your role in this organization does not allow this"

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        organization, membership = organization_for_request(request)
        request.organization = organization  # type: ignore[attr-defined]
        request.membership = membership  # type: ignore[attr-defined]
        capability: Capability = view.required_capability
        return role_allows(membership.role, capability)
