"""Management API for top-ups, redemption codes and the current plan (thin: services do
the work).

Top-ups need the BILLING capability. Any member (VIEW_ORG) may redeem a code into the
active organization: a code only ever adds credit, so it needs no billing rights.
"""

from __future__ import annotations

from typing import Any, cast

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import Capability
from accounts.api_permissions import OrgCapability
from accounts.api_schema import ErrorSerializer, ValidationErrorSerializer
from accounts.http import api_request
from accounts.models import Organization, User
from accounts.network import client_ip
from billing.codes import code_redeem
from billing.exceptions import InvalidTopUp, RedemptionError
from billing.plans import subscription_current
from billing.providers import ProviderError, ProviderUnavailable
from billing.selectors import topups_for_organization
from billing.serializers import RedemptionSerializer, TopUpCreateSerializer, TopUpSerializer
from billing.topups import topup_create
from billing.windows import plan_windows
from money import micros_to_usd

_REDEEMED = inline_serializer(
    name="Redeemed",
    fields={"amount_usd": serializers.CharField(), "balance_usd": serializers.CharField()},
)


def _org(request: Request) -> Organization:
    return api_request(request).organization


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


class WindowSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="5-hour window, weekly window or monthly quota")
    unit = serializers.ChoiceField(choices=["usd", "requests"])
    limit = serializers.CharField(help_text="USD (decimal string) or a request count")
    used = serializers.CharField()
    in_flight = serializers.CharField(help_text="held by requests in flight")
    frees_at = serializers.DateTimeField(
        allow_null=True, help_text="when some counted usage next leaves the window"
    )


class SubscriptionSerializer(serializers.Serializer[Any]):
    plan = serializers.CharField()
    status = serializers.ChoiceField(choices=["active", "past_due"])
    current_period_end = serializers.DateTimeField()
    cancel_at_period_end = serializers.BooleanField()
    grace_until = serializers.DateTimeField(allow_null=True)
    covered_models = serializers.ListField(child=serializers.CharField())
    windows = WindowSerializer(many=True)


def _amount(unit: str, value: int) -> str:
    return micros_to_usd(value) if unit == "usd" else str(value)


class SubscriptionView(APIView):
    permission_classes = (OrgCapability,)
    required_capability = Capability.VIEW_ORG

    @extend_schema(
        summary="The organization's current plan and how much of each window is used",
        responses=inline_serializer(
            name="CurrentSubscription",
            fields={"subscription": SubscriptionSerializer(allow_null=True)},
        ),
        tags=["billing"],
    )
    def get(self, request: Request) -> Response:
        now = timezone.now()
        found = subscription_current(organization_id=_org(request).pk, now=now)
        if found is None:
            return Response({"subscription": None})
        windows = [
            {
                "name": use.cap.label.removeprefix("your plan's "),
                "unit": use.cap.unit,
                "limit": _amount(use.cap.unit, use.cap.limit),
                "used": _amount(use.cap.unit, use.used),
                "in_flight": _amount(use.cap.unit, use.in_flight),
                "frees_at": use.frees_at,
            }
            for use in plan_windows(subscription=found, now=now)
        ]
        body = {
            "plan": found.plan.name,
            "status": found.status,
            "current_period_end": found.current_period_end,
            "cancel_at_period_end": found.cancel_at_period_end,
            "grace_until": found.grace_until,
            "covered_models": found.plan.covered_models,
            "windows": windows,
        }
        return Response({"subscription": SubscriptionSerializer(body).data})
