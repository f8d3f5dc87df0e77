from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from logs.models import DailyUsage, RequestLog


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin[RequestLog]):
    list_display = (
        "created_at",
        "request_id",
        "organization_id",
        "model",
        "status_code",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "latency_ms",
    )
    list_filter = ("status_code", "stream", "usage_estimated")
    search_fields = ("request_id", "model")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DailyUsage)
class DailyUsageAdmin(admin.ModelAdmin[DailyUsage]):
    list_display = (
        "day",
        "organization_id",
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

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
