"""Management API views for accounts (thin: selectors and services do the work).

Keys act in the caller's active organization (a session's switcher choice, or a management
key's own organization); organizations and members are addressed by id in the URL.
"""

from __future__ import annotations

from typing import Any, NoReturn, cast

from django.db import transaction
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import Capability, invoice_details_editable
from accounts.api_permissions import OrgCapability, OrgIdCapability
from accounts.api_schema import ValidationErrorSerializer
from accounts.exceptions import AccountsError, RoleNotAllowed
from accounts.http import api_request
from accounts.models import ApiKey, Membership, User
from accounts.selectors import (
    invitations_pending,
    keys_visible_to,
    members_of,
    memberships_of,
    user_can_create_keys,
)
from accounts.serializers import (
    ApiKeySerializer,
    ApiKeyWithSecretSerializer,
    ApiKeyWriteSerializer,
    InvitationSerializer,
    InviteSerializer,
    MemberSerializer,
    OrganizationSerializer,
    OrganizationUpdateSerializer,
    OrganizationWriteSerializer,
    RoleSerializer,
)
from accounts.services import (
    INVOICE_FIELDS,
    invitation_create,
    invitation_revoke,
    key_create,
    key_delete,
    key_rotate,
    key_update,
    membership_remove,
    membership_set_role,
    organization_create,
    organization_invoice_details_set,
    organization_update,
)


def _refuse(exc: AccountsError) -> NoReturn:
    """A domain error as the API answers it: 403 for role rules, 400 for everything else."""
    if isinstance(exc, RoleNotAllowed):
        raise exceptions.PermissionDenied(str(exc)) from exc
    raise exceptions.ValidationError({"detail": str(exc)}) from exc


def _list_of(serializer: type[serializers.BaseSerializer[Any]], name: str) -> Any:
    return inline_serializer(name=name, fields={"data": serializer(many=True)})


class ApiRootView(APIView):
    permission_classes = (AllowAny,)

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        return Response(
            {
                "name": "TokenHub management API",
                "version": "v1",
                "endpoints": {
                    "keys": request.build_absolute_uri(reverse("api-keys")),
                    "organizations": request.build_absolute_uri(reverse("api-organizations")),
                    "topups": request.build_absolute_uri(reverse("api-topups")),
                    "redemptions": request.build_absolute_uri(reverse("api-redemptions")),
                    "schema": request.build_absolute_uri(reverse("api-schema")),
                },
            }
        )


# --- Keys -----------------------------------------------------------------------------------


class _KeyView(APIView):
    permission_classes = (IsAuthenticated, OrgCapability)
    required_capability = Capability.USE_KEYS

    def visible_keys(self, request: Request) -> QuerySet[ApiKey]:
        return keys_visible_to(membership=api_request(request).membership)

    def key(self, request: Request, key_id: int) -> ApiKey:
        return get_object_or_404(self.visible_keys(request), pk=key_id)


class KeyListView(_KeyView):
    @extend_schema(
        summary="List keys",
        operation_id="keys_list",
        description="Keys of the active organization: all of them for owners and admins, "
        "only your own for members.",
        responses=_list_of(ApiKeySerializer, "ApiKeyList"),
        tags=["keys"],
    )
    def get(self, request: Request) -> Response:
        keys = self.visible_keys(request)
        return Response({"data": ApiKeySerializer(keys, many=True).data})

    @extend_schema(
        summary="Create a key",
        description="Returns the secret once, in `secret`. Needs a verified email address.",
        request=ApiKeyWriteSerializer,
        responses={201: ApiKeyWithSecretSerializer},
        tags=["keys"],
    )
    def post(self, request: Request) -> Response:
        user = cast(User, request.user)
        if not user_can_create_keys(user=user):
            raise exceptions.PermissionDenied(_("verify your email address before creating keys"))
        form = ApiKeyWriteSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        settings = dict(form.validated_data)
        settings.pop("status", None)
        try:
            key, secret = key_create(
                organization=api_request(request).organization,
                created_by=user,
                **settings,
            )
        except AccountsError as exc:
            _refuse(exc)
        body = ApiKeyWithSecretSerializer(key, context={"secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED)


class KeyDetailView(_KeyView):
    @extend_schema(summary="Get a key", responses=ApiKeySerializer, tags=["keys"])
    def get(self, request: Request, key_id: int) -> Response:
        return Response(ApiKeySerializer(self.key(request, key_id)).data)

    @extend_schema(
        summary="Change a key's settings",
        description="Only the fields sent change. `status` disables or enables the key; "
        "the relay honours every change from the next request on. A change is recorded in "
        "the organization's security events.",
        request=ApiKeyWriteSerializer,
        responses=ApiKeySerializer,
        tags=["keys"],
    )
    def patch(self, request: Request, key_id: int) -> Response:
        key = self.key(request, key_id)
        form = ApiKeyWriteSerializer(data=request.data, partial=True, context={"request": request})
        form.is_valid(raise_exception=True)
        changes = dict(form.validated_data)
        if "scopes" in changes:
            raise exceptions.ValidationError(
                {"scopes": _("scopes are fixed when a key is created")}
            )
        try:
            key = key_update(key=key, actor=cast(User, request.user), **changes)
        except AccountsError as exc:
            _refuse(exc)
        return Response(ApiKeySerializer(key).data)

    @extend_schema(
        summary="Delete a key",
        description="The key stops working at once.",
        responses={204: None},
        tags=["keys"],
    )
    def delete(self, request: Request, key_id: int) -> Response:
        key_delete(key=self.key(request, key_id), actor=api_request(request).user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class KeyRotateView(_KeyView):
    @extend_schema(
        summary="Rotate a key",
        description="A new secret with the same id and settings; the old secret stops "
        "working at once. Returns the new secret once, in `secret`.",
        request=None,
        responses={
            200: ApiKeyWithSecretSerializer,
            400: OpenApiResponse(
                ValidationErrorSerializer, description="a revoked key cannot be rotated"
            ),
        },
        tags=["keys"],
    )
    def post(self, request: Request, key_id: int) -> Response:
        try:
            key, secret = key_rotate(key=self.key(request, key_id), actor=api_request(request).user)
        except AccountsError as exc:
            _refuse(exc)
        return Response(ApiKeyWithSecretSerializer(key, context={"secret": secret}).data)


# --- Organizations and members --------------------------------------------------------------


class OrganizationListView(APIView):
    @extend_schema(
        summary="List my organizations",
        operation_id="organizations_list",
        description="With a management key: only the key's organization.",
        responses=_list_of(OrganizationSerializer, "OrganizationList"),
        tags=["organizations"],
    )
    def get(self, request: Request) -> Response:
        memberships = memberships_of(user=cast(User, request.user))
        if isinstance(request.auth, ApiKey):
            memberships = memberships.filter(organization_id=request.auth.organization_id)
        roles = {m.organization_id: m.role for m in memberships}
        orgs = [m.organization for m in memberships]
        data = OrganizationSerializer(orgs, many=True, context={"roles": roles}).data
        return Response({"data": data})

    @extend_schema(
        summary="Create a team organization",
        description="You become its owner; it starts with an empty wallet.",
        request=OrganizationWriteSerializer,
        responses={201: OrganizationSerializer},
        tags=["organizations"],
    )
    def post(self, request: Request) -> Response:
        form = OrganizationWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            org = organization_create(
                name=form.validated_data["name"], owner=cast(User, request.user)
            )
        except AccountsError as exc:
            _refuse(exc)
        body = OrganizationSerializer(org, context={"roles": {org.pk: Membership.Role.OWNER}})
        return Response(body.data, status=status.HTTP_201_CREATED)


class OrganizationDetailView(APIView):
    permission_classes = (IsAuthenticated, OrgIdCapability)

    @property
    def required_capability(self) -> Capability:
        if self.request.method != "PATCH":
            return Capability.VIEW_ORG
        # The invoice details alone are also kept by admins and billing members (see patch).
        data = self.request.data
        invoice_only = isinstance(data, dict) and data and set(data) <= set(INVOICE_FIELDS)
        return Capability.VIEW_ORG if invoice_only else Capability.MANAGE_ORG

    def _body(self, request: Request) -> Any:
        membership = api_request(request).membership
        roles = {membership.organization_id: membership.role}
        return OrganizationSerializer(membership.organization, context={"roles": roles}).data

    @extend_schema(
        summary="Get an organization", responses=OrganizationSerializer, tags=["organizations"]
    )
    def get(self, request: Request, org_id: int) -> Response:
        return Response(self._body(request))

    @extend_schema(
        summary="Change an organization's name, caps, plan fallback or invoice details",
        description="Only the fields sent change. Owners change anything; admins and "
        "billing members only the invoice details (legal_name, billing_address, "
        "billing_country, tax_id), which receipts, statements and credit notes print. Caps "
        "count the requests and spend of all the organization's keys together (each key's "
        "own caps apply too); the relay honours a change from the next request on. A change "
        "of caps, fallback or invoice details is recorded in the organization's security "
        "events.",
        request=OrganizationUpdateSerializer,
        responses=OrganizationSerializer,
        tags=["organizations"],
    )
    def patch(self, request: Request, org_id: int) -> Response:
        membership = api_request(request).membership
        if not invoice_details_editable(membership.role):
            raise exceptions.PermissionDenied(
                _("your role in this organization does not allow this")
            )
        form = OrganizationUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        settings = dict(form.validated_data)
        details = {f: settings.pop(f) for f in INVOICE_FIELDS if f in settings}
        try:
            with transaction.atomic():
                if settings or not details:
                    organization_update(
                        organization=membership.organization,
                        actor=cast(User, request.user),
                        **settings,
                    )
                organization_invoice_details_set(
                    organization=membership.organization,
                    details=details,
                    actor=cast(User, request.user),
                    request=request._request,
                )
        except AccountsError as exc:
            _refuse(exc)
        return Response(self._body(request))


class MemberListView(APIView):
    """Members and pending invitations: owners and admins."""

    permission_classes = (IsAuthenticated, OrgIdCapability)
    required_capability = Capability.MANAGE_MEMBERS

    @extend_schema(
        summary="List members",
        responses=inline_serializer(
            name="MemberList",
            fields={
                "data": MemberSerializer(many=True),
                "invitations": InvitationSerializer(many=True),
            },
        ),
        tags=["members"],
    )
    def get(self, request: Request, org_id: int) -> Response:
        org = api_request(request).organization
        return Response(
            {
                "data": MemberSerializer(members_of(organization=org), many=True).data,
                "invitations": InvitationSerializer(
                    invitations_pending(organization=org), many=True
                ).data,
            }
        )

    @extend_schema(
        summary="Invite a member by email",
        description="Emails a single-use link valid for 7 days. Only owners invite owners.",
        request=InviteSerializer,
        responses={201: InvitationSerializer},
        tags=["members"],
    )
    def post(self, request: Request, org_id: int) -> Response:
        form = InviteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            invitation, _token = invitation_create(
                actor=api_request(request).membership,
                email=form.validated_data["email"],
                role=form.validated_data["role"],
            )
        except AccountsError as exc:
            _refuse(exc)
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class MemberDetailView(APIView):
    """One member: change the role (owners and admins) or remove; anyone may remove
    themself (leave), except the last owner."""

    permission_classes = (IsAuthenticated, OrgIdCapability)

    @property
    def required_capability(self) -> Capability:
        leaving = self.request.method == "DELETE" and str(self.kwargs.get("user_id")) == str(
            getattr(self.request.user, "pk", None)
        )
        return Capability.VIEW_ORG if leaving else Capability.MANAGE_MEMBERS

    def member(self, request: Request, user_id: int) -> Membership:
        org = api_request(request).organization
        return get_object_or_404(members_of(organization=org), user_id=user_id)

    @extend_schema(
        summary="Change a member's role",
        description="Only owners grant or take away the owner role; the last owner stays.",
        request=RoleSerializer,
        responses=MemberSerializer,
        tags=["members"],
    )
    def patch(self, request: Request, org_id: int, user_id: int) -> Response:
        form = RoleSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            member = membership_set_role(
                actor=api_request(request).membership,
                member=self.member(request, user_id),
                role=form.validated_data["role"],
            )
        except AccountsError as exc:
            _refuse(exc)
        return Response(MemberSerializer(member).data)

    @extend_schema(
        summary="Remove a member, or leave",
        description="Their keys in this organization are revoked.",
        responses={
            204: OpenApiResponse(description="removed"),
            400: OpenApiResponse(
                ValidationErrorSerializer, description="the last owner cannot leave"
            ),
        },
        tags=["members"],
    )
    def delete(self, request: Request, org_id: int, user_id: int) -> Response:
        try:
            membership_remove(
                actor=api_request(request).membership,
                member=self.member(request, user_id),
            )
        except AccountsError as exc:
            _refuse(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationDetailView(APIView):
    permission_classes = (IsAuthenticated, OrgIdCapability)
    required_capability = Capability.MANAGE_MEMBERS

    @extend_schema(
        summary="Withdraw a pending invitation",
        description="Its link stops working.",
        responses={204: OpenApiResponse(description="withdrawn")},
        tags=["members"],
    )
    def delete(self, request: Request, org_id: int, invitation_id: int) -> Response:
        org = api_request(request).organization
        invitation_revoke(
            invitation=get_object_or_404(invitations_pending(organization=org), pk=invitation_id)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
