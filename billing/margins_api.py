"""GET /api/v1/margins: the operator's margins for staff (definitions in billing/margins.py).
Amounts are integer micro-USD; channels and organizations are ids."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_schema import ValidationErrorSerializer
from billing.margins import GROUPS, MarginQueryError, MarginRow, margin_query_from, margin_report


class MarginFiguresSerializer(serializers.Serializer[Any]):
    requests = serializers.IntegerField()
    revenue = serializers.IntegerField(help_text="micro-USD: charged plus drawn from plans")
    cost = serializers.IntegerField(help_text="micro-USD charged to balances")
    plan_cost = serializers.IntegerField(help_text="micro-USD drawn from plans (sale prices)")
    upstream_cost = serializers.IntegerField(help_text="micro-USD the channels charge, recorded")
    margin = serializers.IntegerField(help_text="micro-USD: revenue - upstream_cost")
    margin_percent = serializers.DecimalField(
        max_digits=30,
        decimal_places=1,
        allow_null=True,
        help_text="margin in percent of revenue; null without revenue",
    )
    negative = serializers.BooleanField()
    uncosted_requests = serializers.IntegerField(
        help_text="requests without a recorded upstream cost (not counted on rolled-up days)"
    )
    uncollected = serializers.IntegerField(
        help_text="micro-USD reported beyond the holds and not charged; part of upstream_cost"
    )


class MarginRowSerializer(MarginFiguresSerializer):
    day = serializers.DateField(required=False, help_text="group=day: the UTC day")
    model = serializers.CharField(required=False, help_text="group=model")
    channel_id = serializers.IntegerField(
        required=False, allow_null=True, help_text="group=channel; null: no channel"
    )
    organization_id = serializers.IntegerField(
        required=False, allow_null=True, help_text="group=organization"
    )


class MarginReportSerializer(serializers.Serializer[Any]):
    # "from" is a Python keyword: declared below.
    to = serializers.DateField()
    group = serializers.ChoiceField(choices=GROUPS)
    rows = MarginRowSerializer(many=True)
    totals = MarginFiguresSerializer()
    rolled_up_days = serializers.IntegerField(
        help_text="days of the range read from the daily rollup"
    )

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        return {"from": serializers.DateField(), **fields}


_ROW_KEY = {
    "day": "day",
    "model": "model",
    "channel": "channel_id",
    "organization": "organization_id",
}


def _figures(row: MarginRow) -> dict[str, Any]:
    return {
        "requests": row.requests,
        "revenue": row.revenue,
        "cost": row.cost,
        "plan_cost": row.plan_cost,
        "upstream_cost": row.upstream_cost,
        "margin": row.margin,
        "margin_percent": None if row.margin_percent is None else str(row.margin_percent),
        "negative": row.negative,
        "uncosted_requests": row.uncosted,
        "uncollected": row.uncollected,
    }


class MarginsView(APIView):
    permission_classes = (IsAuthenticated, IsAdminUser)

    @extend_schema(
        summary="Revenue, upstream cost and margin (staff only)",
        description="Per UTC day, model, channel or organization over a range of days (at "
        "most 366, default the last 30), with totals. Amounts are integer micro-USD. Revenue "
        "is what balances were charged plus what plans paid; margin is revenue minus the "
        "recorded upstream cost.",
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, description="first UTC day, included"),
            OpenApiParameter("to", OpenApiTypes.DATE, description="last UTC day, included"),
            OpenApiParameter("group", str, enum=list(GROUPS), description="default: day"),
        ],
        responses={
            200: MarginReportSerializer,
            400: OpenApiResponse(ValidationErrorSerializer, description="a bad parameter"),
        },
        tags=["billing"],
    )
    def get(self, request: Request) -> Response:
        try:
            query = margin_query_from(request.query_params.dict())
        except MarginQueryError as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None
        report = margin_report(query=query)
        key = _ROW_KEY[query.group]
        body = {
            "from": query.first,
            "to": query.last,
            "group": query.group,
            "rows": [{key: row.key, **_figures(row)} for row in report.rows],
            "totals": _figures(report.totals),
            "rolled_up_days": len(report.rolled_days),
        }
        # Built by hand: a row carries only its own group's key, which a serializer with
        # the four optional keys would fill with nulls. The serializers above document it.
        return Response(body)
