"""Management API for the monthly statements of the active organization (BILLING
capability): the list, one month as JSON, and its PDF."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import Capability
from accounts.api_permissions import OrgCapability
from accounts.api_schema import ErrorSerializer
from accounts.http import api_request
from billing.models import Statement
from billing.statements import (
    statement_filename,
    statement_for_month,
    statement_pdf,
    statements_for_organization,
)
from billing.subscriptions import price_from_minor
from money import micros_to_usd

_LIMIT = 120  # ten years of months


class UsageByModelSerializer(serializers.Serializer[Any]):
    model = serializers.CharField()
    requests = serializers.IntegerField()
    cost_usd = serializers.CharField(help_text="charged to the balance")
    plan_cost_usd = serializers.CharField(help_text="drawn from a plan instead")


class StatementSerializer(serializers.Serializer[Any]):
    """A statement's figures: USD decimal strings, signed as in the ledger (usage and
    refunds negative), so opening + movements = closing."""

    period = serializers.CharField(help_text="YYYY-MM, a calendar month in UTC")
    opening_balance_usd = serializers.CharField()
    topups_usd = serializers.CharField()
    redemptions_usd = serializers.CharField()
    usage_usd = serializers.CharField()
    refunds_usd = serializers.CharField()
    adjustments_usd = serializers.CharField()
    closing_balance_usd = serializers.CharField()
    plan_charges = serializers.DictField(
        child=serializers.CharField(),
        help_text='paid for plans in the month, per currency: {"usd": "20.00"}',
    )
    usage_by_model = UsageByModelSerializer(many=True)
    billed_to = serializers.DictField(child=serializers.CharField())
    issuer = serializers.DictField(child=serializers.CharField())
    issued_at = serializers.DateTimeField()
    pdf_url = serializers.CharField()


def _body(statement: Statement) -> dict[str, Any]:
    month = f"{statement.period:%Y-%m}"
    return {
        "period": month,
        "opening_balance_usd": micros_to_usd(statement.opening_balance),
        "topups_usd": micros_to_usd(statement.topups),
        "redemptions_usd": micros_to_usd(statement.redemptions),
        "usage_usd": micros_to_usd(statement.usage),
        "refunds_usd": micros_to_usd(statement.refunds),
        "adjustments_usd": micros_to_usd(statement.adjustments),
        "closing_balance_usd": micros_to_usd(statement.closing_balance),
        "plan_charges": {
            currency: str(price_from_minor(int(amount), currency))
            for currency, amount in statement.plan_charges.items()
        },
        "usage_by_model": [
            {
                "model": row["model"],
                "requests": row["requests"],
                "cost_usd": micros_to_usd(row["cost"]),
                "plan_cost_usd": micros_to_usd(row["plan_cost"]),
            }
            for row in statement.usage_by_model
        ],
        "billed_to": statement.billed_to,
        "issuer": statement.issuer,
        "issued_at": statement.issued_at,
        "pdf_url": reverse("api-statement-pdf", args=[month]),
    }


def _statement(request: Request, month: str) -> Statement:
    organization = api_request(request).organization
    found = statement_for_month(organization=organization, month=month)
    if found is None:
        raise NotFound("no statement for that month")
    return found


class StatementListView(APIView):
    permission_classes = (OrgCapability,)
    required_capability = Capability.BILLING

    @extend_schema(
        summary="List the organization's monthly statements, newest first",
        operation_id="statements_list",
        responses=inline_serializer(
            name="StatementList", fields={"data": StatementSerializer(many=True)}
        ),
        tags=["billing"],
    )
    def get(self, request: Request) -> Response:
        organization = api_request(request).organization
        statements = statements_for_organization(organization=organization)[:_LIMIT]
        return Response(
            {"data": StatementSerializer([_body(s) for s in statements], many=True).data}
        )


class StatementDetailView(APIView):
    permission_classes = (OrgCapability,)
    required_capability = Capability.BILLING

    @extend_schema(
        summary="One month's statement",
        responses={
            200: StatementSerializer,
            404: OpenApiResponse(ErrorSerializer, description="no statement for that month"),
        },
        tags=["billing"],
    )
    def get(self, request: Request, month: str) -> Response:
        return Response(StatementSerializer(_body(_statement(request, month))).data)


class StatementPdfView(APIView):
    permission_classes = (OrgCapability,)
    required_capability = Capability.BILLING

    @extend_schema(
        summary="One month's statement as a PDF",
        responses={
            (200, "application/pdf"): OpenApiTypes.BINARY,
            404: OpenApiResponse(ErrorSerializer, description="no statement for that month"),
        },
        tags=["billing"],
    )
    def get(self, request: Request, month: str) -> HttpResponse:
        statement = _statement(request, month)
        response = HttpResponse(statement_pdf(statement), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{statement_filename(statement)}"'
        return response
