"""The admin for upstream bills: the list of imports, an import form (the add page) and
each bill's drift table (its change page). Loaded from relay/admin.py."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from money import micros_to_usd
from relay.models import Channel, UpstreamBill
from relay.upstream_bills.reading import MAX_BYTES
from relay.upstream_bills.selectors import DRIFT_FLOOR, DriftRow, bill_drift
from relay.upstream_bills.services import InvalidBill, upstream_bill_import


class BillImportForm(forms.Form):
    channel = forms.ModelChoiceField(queryset=Channel.objects.order_by("name"))
    source = forms.ChoiceField(label="Format", choices=UpstreamBill.Source.choices)
    period_start = forms.DateField(
        label="First day (UTC)", widget=forms.DateInput(attrs={"type": "date"})
    )
    period_end = forms.DateField(
        label="Last day (UTC)", widget=forms.DateInput(attrs={"type": "date"})
    )
    tolerance_percent = forms.DecimalField(
        label="Tolerance (%)",
        min_value=Decimal(0),
        max_value=Decimal(100),
        max_digits=5,
        decimal_places=2,
        initial=Decimal(2),
        help_text="Days and models whose drift exceeds this share of the bill are flagged.",
    )
    file = forms.FileField(
        help_text=f"The provider's export as downloaded, CSV or JSON, at most "
        f"{MAX_BYTES // 2**20} MB."
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_BYTES:
            raise forms.ValidationError(f"The file is larger than {MAX_BYTES // 2**20} MB.")
        return upload


def _usd(micros: int | None) -> str:
    return "" if micros is None else micros_to_usd(micros)


@dataclass(frozen=True)
class ShownRow:
    """A drift row as the table prints it."""

    row: DriftRow
    billed: str
    recorded: str
    drift: str
    status: str


def _status(row: DriftRow) -> str:
    """The row's state in words: a flagged row is never told apart by colour alone."""
    side = ""
    if row.upstream_billed is None:
        side = "recorded, not billed"
    elif row.recorded is None:
        side = "billed, not recorded"
    if row.flagged:
        return f"Over tolerance: {side}" if side else "Over tolerance"
    return side.capitalize() if side else "OK"


@admin.register(UpstreamBill)
class UpstreamBillAdmin(admin.ModelAdmin[UpstreamBill]):
    """Imports are made with the import form and replaced by importing again; their
    lines are never edited by hand."""

    list_display = (
        "channel",
        "source",
        "period_start",
        "period_end",
        "total_display",
        "line_count",
        "imported_at",
        "imported_by",
    )
    list_filter = ("source", "channel")
    list_select_related = ("channel", "imported_by")
    date_hierarchy = "period_start"

    @admin.display(description="billed (USD)")
    def total_display(self, obj: UpstreamBill) -> str:
        return micros_to_usd(obj.total_cost)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The import form: a valid file is stored and its drift page shown."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = BillImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                bill = upstream_bill_import(
                    channel_id=form.cleaned_data["channel"].pk,
                    source=form.cleaned_data["source"],
                    data=upload.read(MAX_BYTES + 1),
                    period_start=form.cleaned_data["period_start"],
                    period_end=form.cleaned_data["period_end"],
                    tolerance_percent=form.cleaned_data["tolerance_percent"],
                    user=request.user if request.user.is_authenticated else None,
                    filename=upload.name or "",
                )
            except InvalidBill as exc:
                form.add_error(None, str(exc))
            else:
                self.log_addition(request, bill, f"Imported {bill.filename or 'a bill'}")
                self.message_user(
                    request,
                    f"Imported {bill.line_count} line(s) totalling {micros_to_usd(bill.total_cost)}"
                    " USD.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:relay_upstreambill_change", args=[bill.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Import an upstream bill",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/relay/upstream_bill_import.html", context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The bill's drift per day and model against what was recorded for its channel."""
        if not object_id.isdigit():
            raise Http404
        bill = get_object_or_404(UpstreamBill.objects.select_related("channel"), pk=object_id)
        if not self.has_view_permission(request, bill):
            raise PermissionDenied
        drift = bill_drift(bill=bill)
        rows = [
            ShownRow(
                row=r,
                billed=_usd(r.upstream_billed),
                recorded=_usd(r.recorded),
                drift=micros_to_usd(r.drift),
                status=_status(r),
            )
            for r in drift.rows
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Drift: {bill.channel.name}, {bill.period_start} to {bill.period_end}",
            "bill": bill,
            "drift": drift,
            "rows": rows,
            "totals": {
                "billed": micros_to_usd(drift.upstream_billed),
                "recorded": micros_to_usd(drift.recorded),
                "drift": micros_to_usd(drift.drift),
                "skipped": micros_to_usd(bill.skipped_cost),
            },
            "floor": micros_to_usd(DRIFT_FLOOR),
            "opts": self.model._meta,
            "original": bill,
            "has_delete_permission": self.has_delete_permission(request, bill),
        }
        return TemplateResponse(request, "admin/relay/upstream_bill_drift.html", context)
