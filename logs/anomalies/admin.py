"""Staff's views of anomaly alerts and review flags. An open flag freezes the
organization's top-ups; staff clear it by writing a note (audited)."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from accounts.models import User
from billing.velocity import review_flag_clear
from logs.models import AnomalyAlert, ReviewFlag


class _OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "open"), ("cleared", "cleared")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() == "open":
            return queryset.filter(cleared_at__isnull=True)
        if self.value() == "cleared":
            return queryset.filter(cleared_at__isnull=False)
        return queryset


class ReviewFlagForm(forms.ModelForm[ReviewFlag]):
    clear_note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=True,
        help_text="Why the flag can be cleared; saving clears it and top-ups resume.",
    )

    class Meta:
        model = ReviewFlag
        fields = ("clear_note",)


@admin.register(ReviewFlag)
class ReviewFlagAdmin(admin.ModelAdmin[ReviewFlag]):
    form = ReviewFlagForm
    list_display = ("created_at", "organization", "reason", "cleared_at", "cleared_by")
    list_filter = (_OpenFilter, "reason")
    search_fields = ("organization__name",)
    list_select_related = ("organization", "cleared_by")
    readonly_fields = ("organization", "reason", "detail", "created_at", "cleared_at", "cleared_by")

    def get_readonly_fields(self, request: HttpRequest, obj: ReviewFlag | None = None) -> Any:
        if obj is not None and obj.cleared_at is not None:
            return (*self.readonly_fields, "clear_note")
        return self.readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ReviewFlag, form: Any, change: bool) -> None:
        # Clearing goes through the service (conditional, audited), not a plain save.
        review_flag_clear(
            flag=obj, actor=cast(User, request.user), note=form.cleaned_data["clear_note"]
        )


@admin.register(AnomalyAlert)
class AnomalyAlertAdmin(admin.ModelAdmin[AnomalyAlert]):
    """Read-only: what was alerted, with amounts in micro-USD."""

    list_display = ("created_at", "kind", "organization_id", "api_key_id", "detail")
    list_filter = ("kind",)
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
