"""Operators' views of request logs, usage rollups and the audit trail.

Request logs and rollups keep plain organization ids (not foreign keys, so logging never
locks an organization row); the lists look the names up once per page.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest
from django.utils.html import format_html

from accounts.models import Organization
from accounts.templatetags.portal_format import money, money_exact
from logs.models import DailyUsage, RequestLog

_NAME_WIDTH = 28  # characters of an organization or model name in a list column


def _short(text: str) -> str:
    return text if len(text) <= _NAME_WIDTH else text[: _NAME_WIDTH - 1] + "…"


class _OrganizationNamesChangeList(ChangeList):
    """Looks up the organization names of a page's rows in one query."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        ids = {row.organization_id for row in self.result_list}
        names = dict(Organization.objects.filter(pk__in=ids).values_list("pk", "name"))
        for row in self.result_list:
            row.organization_name = names.get(row.organization_id, "")


class _OrganizationColumn:
    """The `organization` column: the name (full name and id on hover), not the raw id."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return _OrganizationNamesChangeList

    @admin.display(description="organization", ordering="organization_id")
    def organization(self, obj: RequestLog | DailyUsage) -> str:
        name = getattr(obj, "organization_name", "") or f"#{obj.organization_id}"
        return format_html(
            '<span title="{} (id {})">{}</span>', name, obj.organization_id, _short(name)
        )


@admin.register(RequestLog)
class RequestLogAdmin(_OrganizationColumn, admin.ModelAdmin[RequestLog]):
    # Seven narrow columns fit a 1366 px screen beside the admin's sidebar; the rest
    # (request id, channel, cache tokens, client) is one click away on the row.
    list_display = (
        "time",
        "organization",
        "model_name",
        "status",
        "tokens",
        "cost_display",
        "latency",
    )
    list_display_links = ("time",)
    list_filter = ("status_code", "stream", "usage_estimated")
    search_fields = ("request_id", "model")
    date_hierarchy = "created_at"
    list_per_page = 50

    @admin.display(description="time (UTC)", ordering="created_at")
    def time(self, obj: RequestLog) -> str:
        return obj.created_at.strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="model", ordering="model")
    def model_name(self, obj: RequestLog) -> str:
        return format_html('<span title="{}">{}</span>', obj.model, _short(obj.model))

    @admin.display(description="status", ordering="status_code")
    def status(self, obj: RequestLog) -> int:
        return obj.status_code

    @admin.display(description="tokens in / out")
    def tokens(self, obj: RequestLog) -> str:
        return f"{obj.prompt_tokens:,} / {obj.completion_tokens:,}"

    @admin.display(description="cost", ordering="cost")
    def cost_display(self, obj: RequestLog) -> str:
        return format_html('<span title="{}">{}</span>', money_exact(obj.cost), money(obj.cost))

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, obj: RequestLog) -> str:
        return f"{obj.latency_ms:,} ms"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DailyUsage)
class DailyUsageAdmin(_OrganizationColumn, admin.ModelAdmin[DailyUsage]):
    list_display = (
        "day",
        "organization",
        "api_key_id",
        "channel_id",
        "model",
        "requests",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "cost",
    )
    list_filter = ("day",)
    search_fields = ("model",)
    date_hierarchy = "day"


# Registers the anomaly alerts and review flags (logs/anomalies/admin.py).
from logs.anomalies import admin as _anomalies_admin  # noqa: E402, F401
