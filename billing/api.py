"""Management API for top-ups and redemption codes (thin: services do the work).

Top-ups need the BILLING capability. Any member (VIEW_ORG) may redeem a code into the
active organization: a code only ever adds credit, so it needs no billing rights.
"""

from __future__ import annotations

from typing import cast

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import Capability
from accounts.api_permissions import OrgCapability
from accounts.api_schema import ErrorSerializer, ValidationErrorSerializer
from accounts.models import Organization, User
from accounts.network import client_ip
from billing.codes import code_redeem
from billing.exceptions import InvalidTopUp, RedemptionError
from billing.money import micros_to_usd
from billing.providers import ProviderError, ProviderUnavailable
from billing.selectors import topups_for_organization
from billing.serializers import RedemptionSerializer, TopUpCreateSerializer, TopUpSerializer
from billing.topups import topup_create

_REDEEMED = inline_serializer(
    name="Redeemed",
    fields={"amount_usd": serializers.CharField(), "balance_usd": serializers.CharField()},
)


def _org(request: Request) -> Organization:
    return cast(Organization, request.organization)  # type: ignore[attr-defined]


class TopUpListView(APIView):
    permission_classes = (OrgCapability,)
    required_capability = Capability.BILLING

    @extend_schema(
        summary="List the organization's recent top-ups",
        responses=inline_serializer(name="TopUpList", fields={"data": TopUpSerializer(many=True)}),
        tags=["billing"],
    )
    def get(self, request: Request) -> Response:
        topups = topups_for_organization(organization=_org(request))[:100]
        return Response({"data": TopUpSerializer(topups, many=True).data})

    @extend_schema(
        summary="Start a top-up: a pending top-up and the provider's URL to pay at",
        request=TopUpCreateSerializer,
        responses={
            201: TopUpSerializer,
            400: OpenApiResponse(
                ValidationErrorSerializer, description="amount out of bounds or provider off"
            ),
            502: OpenApiResponse(ErrorSerializer, description="the payment provider failed"),
        },
        tags=["billing"],
    )
    def post(self, request: Request) -> Response:
        form = TopUpCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            topup = topup_create(
                organization=_org(request),
                created_by=cast(User, request.user),
                amount_usd=form.validated_data["amount_usd"],
                provider=form.validated_data["provider"],
            )
        except (InvalidTopUp, ProviderUnavailable) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except ProviderError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_502_BAD_GATEWAY)
        return Response(TopUpSerializer(topup).data, status=status.HTTP_201_CREATED)


class RedemptionView(APIView):
    permission_classes = (OrgCapability,)
    required_capability = Capability.VIEW_ORG

    @extend_schema(
        summary="Redeem a code into the organization's balance",
        request=RedemptionSerializer,
        responses={
            200: _REDEEMED,
            400: OpenApiResponse(
                ValidationErrorSerializer, description="unknown, used or expired code"
            ),
            429: OpenApiResponse(ErrorSerializer, description="too many failed attempts"),
        },
        tags=["billing"],
    )
    def post(self, request: Request) -> Response:
        form = RedemptionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        ip = client_ip(
            request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR", "")
        )
        try:
            entry = code_redeem(
                raw_code=form.validated_data["code"],
                user=cast(User, request.user),
                organization=_org(request),
                ip=ip or "unknown",
            )
        except RedemptionError as exc:
            return Response({"detail": str(exc)}, status=exc.status)
        return Response(
            {
                "amount_usd": micros_to_usd(entry.amount),
                "balance_usd": micros_to_usd(entry.balance_after),
            }
        )
