"""/api/v1/finance/*: the operator's finance export (staff only, read only): ledger entries,
top-ups, refunds, statements, credit notes and plan payments of every organization, as
JSON pages behind an opaque cursor or as one streamed CSV. See docs/finance-export.md.

The CSV is chosen with `?format=csv`, DRF's own format override (URL_FORMAT_OVERRIDE), or
`Accept: text/csv`: CsvRenderer exists so that content negotiation knows the format; the
view streams the rows itself. Every other answer (pages, refusals) is JSON.
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any, ClassVar

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, QueryDict, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import exceptions, serializers
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_schema import (
    ErrorSerializer,
    ManagementApiSchema,
    ValidationErrorSerializer,
)
from accounts.models import Organization
from billing.finance_selectors import (
    CREDIT_NOTES,
    LEDGER,
    PLAN_PAYMENTS,
    REFUNDS,
    STATEMENTS,
    TOPUPS,
    FinanceKind,
    FinanceQuery,
    Position,
    finance_position,
    finance_rows,
)
from logs.csv_export import spreadsheet_safe

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
CSV_BATCH = 1000
_BIGINT = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


# --- Who may read it ----------------------------------------------------------------------


class IsStaff(BasePermission):
    """The operator's staff (User.is_staff), by session or by a management key of theirs."""

    message = gettext_lazy("only the operator's staff may read the finance export")

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class CsvRenderer(BaseRenderer):
    """Makes `?format=csv` and `Accept: text/csv` known to content negotiation; the view
    streams the CSV itself and renders every other answer in JSON: nothing comes here."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Any = None,
    ) -> bytes:
        raise NotImplementedError("finance views stream their CSV")


# --- Query parameters ---------------------------------------------------------------------


def _instant(value: str) -> dt.datetime | None:
    """An ISO 8601 date (midnight UTC) or date-time (UTC when it names no offset)."""
    if len(value) > 64 or not value.isascii():
        return None
    try:
        at = dt.datetime.fromisoformat(value)
        return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
        return None


def _integer(value: str, *, low: int, high: int) -> int | None:
    if not _DIGITS.fullmatch(value):
        return None
    number = int(value)
    return number if low <= number <= high else None


def cursor_encode(position: Position) -> str:
    raw = f"{position.at.astimezone(dt.UTC).isoformat()}|{position.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_decode(text: str) -> Position | None:
    """The position a cursor of cursor_encode's names, or None for any other string."""
    if len(text) > 200 or not text.isascii():
        return None
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        at_text, _, id_text = raw.decode("ascii").partition("|")
        at = dt.datetime.fromisoformat(at_text)
    except (ValueError, binascii.Error):
        return None
    pk = _integer(id_text, low=1, high=_BIGINT)
    if at.utcoffset() != dt.timedelta(0) or pk is None:  # UTC only: no overflow converting it
        return None
    position = Position(at=at, id=pk)
    # Only the exact text this API gives out: one cursor per position, nothing smuggled in.
    return position if cursor_encode(position) == text else None


def _query_from(params: QueryDict, *, format_unknown: bool) -> tuple[FinanceQuery, int]:
    """The page asked for, or a 400 naming every parameter that is wrong."""
    errors: dict[str, list[str]] = {}
    instants: dict[str, dt.datetime | None] = {}
    for name in ("from", "to"):
        value = params.get(name)
        instants[name] = None if value is None else _instant(value)
        if value is not None and instants[name] is None:
            errors[name] = [_("an ISO 8601 date or date-time, e.g. 2026-05-01 (UTC)")]
    start, end = instants["from"], instants["to"]
    if start is not None and end is not None and end < start:
        errors["to"] = [_("must not be before 'from'")]
    organization_id = None
    if (value := params.get("organization")) is not None:
        organization_id = _integer(value, low=1, high=_BIGINT)
        if organization_id is None or not Organization.objects.filter(pk=organization_id).exists():
            errors["organization"] = [_("no such organization")]
    after = None
    if (value := params.get("cursor")) is not None:
        after = cursor_decode(value)
        if after is None:
            errors["cursor"] = [_("not a cursor this API gave out")]
    limit = DEFAULT_LIMIT
    if (value := params.get("limit")) is not None:
        limit = _integer(value, low=1, high=MAX_LIMIT) or 0
        if not limit:
            errors["limit"] = [_("a whole number from 1 to %(max)d") % {"max": MAX_LIMIT}]
    if format_unknown:
        errors["format"] = [_("'json' or 'csv'")]
    if errors:
        raise exceptions.ValidationError(errors)
    return FinanceQuery(start, end, organization_id, after), limit


# --- Rows as the API shows them -------------------------------------------------------------

_MICROS = "micro-USD (1 = 0.000001 USD)"
_MINOR = "minor units of `currency` (cents)"


def _micros(text: str) -> serializers.IntegerField:
    return serializers.IntegerField(help_text=f"{text}, {_MICROS}")


def _minor(text: str) -> serializers.IntegerField:
    return serializers.IntegerField(help_text=f"{text}, {_MINOR}")


class FinanceLedgerEntrySerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField(help_text="when the balance changed (UTC)")
    organization = serializers.IntegerField(help_text="the organization's id")
    kind = serializers.ChoiceField(choices=["topup", "redeem", "charge", "refund", "adjust"])
    amount = _micros("signed: positive credits the balance, negative debits it")
    balance_after = _micros("the balance after this entry")
    source_type = serializers.CharField(help_text="what the entry records (topup, adjust...)")
    source_id = serializers.CharField(help_text="its id; unique with source_type")
    note = serializers.CharField(allow_blank=True)


class FinanceRefundSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="the refund's ledger entry")
    created_at = serializers.DateTimeField(help_text="when the balance was debited (UTC)")
    organization = serializers.IntegerField(help_text="the organization's id")
    amount = _micros("the credit taken back, negative")
    balance_after = _micros("the balance after the refund")
    source_type = serializers.CharField()
    source_id = serializers.CharField(help_text="the top-up and the provider's refund or dispute")
    note = serializers.CharField(allow_blank=True)
    credit_note = serializers.IntegerField(
        allow_null=True, help_text="the number of the refund's credit note; null when none"
    )


class FinanceTopUpSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    organization = serializers.IntegerField(help_text="the organization's id")
    provider = serializers.CharField(help_text="stripe, epay...")
    state = serializers.ChoiceField(choices=["paid"], help_text="only paid top-ups are listed")
    credit = _micros("credited when paid, bonus included")
    bonus = _micros("the bonus part of `credit`")
    pay_amount = _minor("what the customer paid")
    currency = serializers.CharField(help_text="ISO 4217 code")
    refunded_amount = _minor("refunded so far")
    disputed_amount = _minor("taken back by disputes so far")
    created_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(help_text="when the payment was confirmed (UTC)")
    provider_payment_id = serializers.CharField(
        allow_blank=True, help_text="Stripe's payment intent, EPay's trade_no"
    )


class FinanceStatementSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    organization = serializers.IntegerField(help_text="the organization's id")
    period = serializers.DateField(help_text="the first day of the month it covers (UTC)")
    opening_balance = _micros("the balance at the start of the month")
    topups = _micros("credited by top-ups")
    redemptions = _micros("credited by redemption codes")
    usage = _micros("charged to the balance for usage")
    refunds = _micros("taken back by refunds and disputes")
    adjustments = _micros("the operator's corrections")
    closing_balance = _micros("the balance at the end of the month")
    plan_charges = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="paid for plans in the month, per currency, in its minor units",
    )
    usage_by_model = serializers.ListField(
        child=serializers.DictField(),
        help_text=f"per model: requests, cost and plan_cost ({_MICROS})",
    )
    billed_to = serializers.DictField(help_text="the organization's invoice details then")
    issuer = serializers.DictField(help_text="the operator's invoice details then")
    issued_at = serializers.DateTimeField()
    emailed_at = serializers.DateTimeField(allow_null=True)


class FinanceCreditNoteSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    number = serializers.IntegerField(help_text="in one unbroken sequence per operator")
    organization = serializers.IntegerField(help_text="the organization's id")
    ledger_entry = serializers.IntegerField(help_text="the refund's ledger entry")
    topup = serializers.IntegerField(allow_null=True, help_text="the refunded top-up")
    credit = _micros("credit taken back")
    amount = _minor("refunded")
    currency = serializers.CharField(help_text="ISO 4217 code")
    tax_rate = serializers.DecimalField(
        max_digits=6, decimal_places=3, help_text="percent, as a decimal string"
    )
    reason = serializers.CharField(allow_blank=True)
    billed_to = serializers.DictField(help_text="the organization's invoice details then")
    issuer = serializers.DictField(help_text="the operator's invoice details then")
    issued_at = serializers.DateTimeField()


class FinancePlanPaymentSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    organization = serializers.IntegerField(help_text="the organization's id")
    subscription = serializers.IntegerField(help_text="the subscription's id")
    provider = serializers.CharField()
    provider_ref = serializers.CharField(help_text="e.g. Stripe's invoice id")
    amount = _minor("paid")
    currency = serializers.CharField(help_text="ISO 4217 code")
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    paid_at = serializers.DateTimeField()


# --- CSV ----------------------------------------------------------------------------------


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return spreadsheet_safe(value)


def _csv_lines(
    kind: FinanceKind, serializer: type[serializers.Serializer[Any]], query: FinanceQuery
) -> Iterator[bytes]:
    """The CSV of every row QUERY covers (from its cursor on), one database batch at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(kind.fields)
    while True:
        rows = finance_rows(kind=kind, query=query, limit=CSV_BATCH)
        for row in serializer(rows, many=True).data:
            writer.writerow([_csv_cell(row[name]) for name in kind.fields])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < CSV_BATCH:
            return
        query = replace(query, after=finance_position(kind=kind, row=rows[-1]))


def _next_line(lines: Iterator[bytes]) -> bytes | None:
    return next(lines, None)


async def _async_lines(lines: Iterator[bytes]) -> AsyncIterator[bytes]:
    # Each batch in the request's own thread (thread-sensitive): its database connection.
    read = sync_to_async(_next_line)
    while (part := await read(lines)) is not None:
        yield part


# --- Views --------------------------------------------------------------------------------


class FinanceExportSchema(ManagementApiSchema):
    """Refusals are JSON even when CSV was asked for: the schema says so."""

    def _get_response_for_code(
        self,
        serializer: Any,
        status_code: str,
        media_types: Any = None,
        direction: Any = "response",
    ) -> Any:
        if media_types is None and status_code >= "400":
            media_types = ["application/json"]
        return super()._get_response_for_code(serializer, status_code, media_types, direction)


def _date_or_time(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        {
            "anyOf": [
                {"type": "string", "format": "date"},
                {"type": "string", "format": "date-time"},
            ]
        },
        description=description,
    )


PARAMETERS = [
    _date_or_time("from", "First instant covered (inclusive): an ISO 8601 date or date-time, UTC "
                  "unless it names an offset."),
    _date_or_time("to", "End of the range (exclusive), like `from`; not before `from`."),
    OpenApiParameter(
        "organization", {"type": "integer", "minimum": 1},
        description="Only this organization's rows (its id; an unknown id is a 400).",
    ),
    OpenApiParameter(
        "cursor", str, description="`next_cursor` of the page before: the rows after it. Pass "
        "the same `from`, `to` and `organization` as for that page."
    ),
    OpenApiParameter(
        "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        description=f"Rows per page, {DEFAULT_LIMIT} by default, at most {MAX_LIMIT}. "
        "The CSV has every row of the range, however many.",
    ),
    OpenApiParameter(
        "format", str, enum=["json", "csv"], description="`csv`: every row of the range as one "
        "streamed CSV (as does `Accept: text/csv`); JSON pages otherwise.",
    ),
]  # fmt: skip


def _page_of(name: str, serializer: type[serializers.Serializer[Any]]) -> Any:
    return inline_serializer(
        name=name,
        fields={
            "data": serializer(many=True),
            "has_more": serializers.BooleanField(help_text="more rows after this page"),
            "next_cursor": serializers.CharField(
                allow_null=True,
                help_text="resumes after this page's last row (or the cursor given, for an "
                "empty page): keep it to fetch later rows; null when there were none",
            ),
        },
    )


def _finance_schema(
    kind: FinanceKind, serializer: type[serializers.Serializer[Any]], summary: str, about: str
) -> Any:
    """The operation's documentation: its parameters, a JSON page or the CSV, its refusals."""
    page = _page_of(serializer.__name__.removesuffix("Serializer") + "Page", serializer)
    return extend_schema_view(
        get=extend_schema(
            operation_id=f"finance_{kind.name.replace('-', '_')}_list",
            summary=summary,
            description=f"{about} Oldest first, by `{kind.time}` then `id`. Staff only.",
            parameters=PARAMETERS,
            responses={
                (200, "application/json"): OpenApiResponse(
                    page, description="a page of rows, oldest first"
                ),
                (200, "text/csv"): OpenApiResponse(
                    OpenApiTypes.STR, description="every row, the same fields as CSV columns"
                ),
                400: OpenApiResponse(
                    ValidationErrorSerializer, description="a query parameter is not valid"
                ),
                403: OpenApiResponse(
                    ErrorSerializer,
                    description="not the operator's staff (or a key refused: scope, address)",
                ),
            },
            tags=["finance"],
        )
    )


class _FinanceExportView(APIView):
    permission_classes = (IsAuthenticated, IsStaff)
    renderer_classes = (JSONRenderer, CsvRenderer)
    schema = FinanceExportSchema()
    kind: ClassVar[FinanceKind]
    serializer: ClassVar[type[serializers.Serializer[Any]]]
    format_unknown = False

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:
            # An unknown ?format=: a 400 once the caller is known (401 and 403 come first).
            self.format_unknown = True
            return JSONRenderer(), JSONRenderer.media_type

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        if isinstance(response, Response):  # typed as one; the CSV is a StreamingHttpResponse
            # Pages, refusals, OPTIONS: all JSON whatever was asked; only the CSV streams.
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def get(self, request: Request) -> HttpResponseBase:
        query, limit = _query_from(request.query_params, format_unknown=self.format_unknown)
        if request.accepted_renderer.format == "csv":
            return self._csv(request, query)
        rows = finance_rows(kind=self.kind, query=query, limit=limit + 1)
        page = rows[:limit]
        last = finance_position(kind=self.kind, row=page[-1]) if page else query.after
        return Response(
            {
                "data": self.serializer(page, many=True).data,
                "has_more": len(rows) > limit,
                "next_cursor": cursor_encode(last) if last else None,
            }
        )

    def _csv(self, request: Request, query: FinanceQuery) -> StreamingHttpResponse:
        lines = _csv_lines(self.kind, self.serializer, query)
        # Under ASGI Django would buffer a synchronous iterator whole: give it an async one.
        under_asgi = isinstance(request._request, ASGIRequest)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        return StreamingHttpResponse(
            _async_lines(lines) if under_asgi else lines,
            content_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": (
                    f'attachment; filename="tokenhub-{self.kind.name}-{stamp}.csv"'
                )
            },
        )


@_finance_schema(
    LEDGER,
    FinanceLedgerEntrySerializer,
    "Ledger entries of every organization",
    "Every balance change: top-ups, redemptions, charges (one per billed request), refunds, "
    "adjustments.",
)
class LedgerExportView(_FinanceExportView):
    kind = LEDGER
    serializer = FinanceLedgerEntrySerializer


@_finance_schema(
    TOPUPS,
    FinanceTopUpSerializer,
    "Paid top-ups of every organization",
    "With what was refunded or disputed of each since.",
)
class TopUpExportView(_FinanceExportView):
    kind = TOPUPS
    serializer = FinanceTopUpSerializer


@_finance_schema(
    REFUNDS,
    FinanceRefundSerializer,
    "Refunds of every organization",
    "The refund ledger entries (provider refunds and disputes), with the number of the "
    "credit note issued for each, if any.",
)
class RefundExportView(_FinanceExportView):
    kind = REFUNDS
    serializer = FinanceRefundSerializer


@_finance_schema(
    STATEMENTS,
    FinanceStatementSerializer,
    "Monthly statements of every organization",
    "Their figures as issued.",
)
class StatementExportView(_FinanceExportView):
    kind = STATEMENTS
    serializer = FinanceStatementSerializer


@_finance_schema(
    CREDIT_NOTES,
    FinanceCreditNoteSerializer,
    "Credit notes of every organization",
    "One per refund, numbered in one unbroken sequence.",
)
class CreditNoteExportView(_FinanceExportView):
    kind = CREDIT_NOTES
    serializer = FinanceCreditNoteSerializer


@_finance_schema(
    PLAN_PAYMENTS,
    FinancePlanPaymentSerializer,
    "Plan payments of every organization",
    "One row per paid subscription period.",
)
class PlanPaymentExportView(_FinanceExportView):
    kind = PLAN_PAYMENTS
    serializer = FinancePlanPaymentSerializer
