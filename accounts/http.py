"""Typed requests: what the access checks attach to a request, as mypy sees it.

`capability_required` (portal views) and the `/api/v1` permission classes bind the acting
organization and the caller's membership here, in one place; views annotate their request
as `PortalRequest` (as healthchecks types its authenticated requests) instead of casting.
"""

from __future__ import annotations

from typing import cast

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from rest_framework.request import Request

from accounts.models import Membership, Organization, User


class PortalRequest(HttpRequest):
    """A request that passed an access check: signed in, acting in `organization`."""

    user: User
    organization: Organization
    membership: Membership


def portal_request_bind(
    request: HttpRequest, *, organization: Organization, membership: Membership
) -> PortalRequest:
    """Attach the acting organization and membership; the one place they are set."""
    portal = cast(PortalRequest, request)
    portal.organization = organization
    portal.membership = membership
    return portal


def portal_request(request: HttpRequest) -> PortalRequest:
    """`request` as bound by `portal_request_bind`; fails loudly when no access check ran."""
    if not isinstance(getattr(request, "membership", None), Membership):
        raise ImproperlyConfigured("no access check bound an organization to this request")
    return cast(PortalRequest, request)


def api_request(request: Request) -> PortalRequest:
    """The Django request behind a DRF `Request` that passed `OrgCapability` or
    `OrgIdCapability`. DRF views keep `Request` in their signatures (Liskov), so they read
    the acting organization, membership and user through this."""
    return portal_request(request._request)
