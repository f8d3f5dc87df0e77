"""Staff handle work orders here: a queue (longest waiting on staff first, filtered by
status, category and assignee), assignment, status, answers and internal notes, the
first-response and resolution times, and the metadata of the requests the customer named.

Edits go through the services: the form's status, assignee, reply and note fields are
handed to them, so the admin and the portal keep the same rules and emails.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.models import User, WorkOrder, WorkOrderAttachment
from accounts.support.forms import BODY_LENGTH
from accounts.support.selectors import QUEUE_ORDER, duration, staff_thread, workorder_queue
from accounts.support.services import (
    workorder_assign,
    workorder_set_status,
    workorder_staff_reply,
)
from accounts.support.views import attachment_response
from logs.selectors import REQUEST_FIELDS, workorder_requests
from sealed.fields import reveal


def _span(value: dt.timedelta | None) -> str:
    if value is None:
        return "—"
    minutes = int(value.total_seconds()) // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m"


class WorkOrderAdminForm(forms.ModelForm[WorkOrder]):
    reply = forms.CharField(
        required=False,
        max_length=BODY_LENGTH,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Sent to the customer, who is emailed.",
    )
    internal_note = forms.CharField(
        required=False,
        max_length=BODY_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Staff only: never shown or emailed to the customer.",
    )

    class Meta:
        model = WorkOrder
        fields = ("status", "assignee")


@admin.register(WorkOrder)
class WorkOrderAdmin(admin.ModelAdmin[WorkOrder]):
    form = WorkOrderAdminForm
    list_display = (
        "number",
        "subject",
        "organization",
        "category",
        "status",
        "assignee",
        "waiting_since",
        "first_response_time",
        "resolution_time",
    )
    list_filter = ("status", "category", ("assignee", admin.RelatedOnlyFieldListFilter))
    search_fields = ("subject", "organization__name", "opened_by__email")
    # The changelist applies its own ordering over get_queryset's: the queue's, here.
    # django-stubs 5.2 types `ordering` as strings only (expressions allowed from 6.0 on).
    ordering = QUEUE_ORDER  # type: ignore[assignment]
    list_select_related = ("organization", "assignee")
    readonly_fields = (
        "organization",
        "opened_by",
        "category",
        "subject",
        "created_at",
        "waiting_since",
        "first_response_time",
        "resolution_time",
        "requests",
        "thread",
    )
    fieldsets = (
        (None, {"fields": ("organization", "opened_by", "category", "subject", "created_at")}),
        (
            "Handling",
            {
                "fields": (
                    "status",
                    "assignee",
                    "waiting_since",
                    "first_response_time",
                    "resolution_time",
                )
            },
        ),
        ("Thread", {"fields": ("thread", "reply", "internal_note")}),
        ("Requests named by the customer", {"fields": ("requests",)}),
    )
    actions = ("assign_to_me", "mark_resolved")

    def get_queryset(self, request: HttpRequest) -> Any:
        return workorder_queue()

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # customers open work orders from the portal

    def get_urls(self) -> list[URLPattern]:
        download = path(
            "<int:order_id>/attachments/<int:attachment_id>",
            self.admin_site.admin_view(self.attachment_view),
            name="accounts_workorder_attachment",
        )
        return [download, *super().get_urls()]

    def attachment_view(
        self, request: HttpRequest, order_id: int, attachment_id: int
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        attachment = get_object_or_404(
            WorkOrderAttachment, pk=attachment_id, message__work_order_id=order_id
        )
        if not attachment.data:
            raise Http404
        return attachment_response(
            attachment.name, attachment.content_type, reveal(attachment.data)
        )

    @admin.display(description="#", ordering="pk")
    def number(self, obj: WorkOrder) -> str:
        return f"#{obj.pk}"

    @admin.display(description="first response")
    def first_response_time(self, obj: WorkOrder) -> str:
        return _span(duration(obj.created_at, obj.first_response_at))

    @admin.display(description="resolution")
    def resolution_time(self, obj: WorkOrder) -> str:
        return _span(duration(obj.created_at, obj.resolved_at))

    @admin.display(description="thread")
    def thread(self, obj: WorkOrder) -> SafeString:
        items = []
        for message in staff_thread(work_order=obj):
            who = message.author.email if message.author else "(deleted)"
            label = (
                "internal note"
                if message.internal
                else ("staff" if message.from_staff else "customer")
            )
            files = format_html_join(
                " ",
                '<a href="{}">{}</a> ({} bytes)',
                (
                    (
                        reverse("admin:accounts_workorder_attachment", args=[obj.pk, a.pk]),
                        a.name,
                        a.size,
                    )
                    for a in message.attachments.all()
                ),
            )
            items.append(
                format_html(
                    '<div class="{}" style="margin-bottom:1em;{}"><strong>{}</strong> · {} · {}'
                    '<div style="white-space:pre-wrap">{}</div>{}</div>',
                    "work-order-note" if message.internal else "work-order-message",
                    "border-left:3px solid #b45309;padding-left:.5em" if message.internal else "",
                    label,
                    who,
                    message.created_at.strftime("%Y-%m-%d %H:%M UTC"),
                    message.body,
                    files,
                )
            )
        return format_html_join("", "{}", ((item,) for item in items))

    @admin.display(description="requests")
    def requests(self, obj: WorkOrder) -> SafeString | str:
        rows = workorder_requests(work_order=obj)
        if not rows:
            return "None named." if not obj.request_ids else "No longer kept."
        head = format_html_join("", "<th>{}</th>", ((name,) for name in REQUEST_FIELDS))
        body = format_html_join(
            "",
            "<tr>{}</tr>",
            (
                (format_html_join("", "<td>{}</td>", ((row[n],) for n in REQUEST_FIELDS)),)
                for row in rows
            ),
        )
        return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)

    def save_model(self, request: HttpRequest, obj: WorkOrder, form: Any, change: bool) -> None:
        # Nothing is saved directly: each change goes through its service.
        staff = cast(User, request.user)
        data = form.cleaned_data
        if "assignee" in form.changed_data:
            workorder_assign(work_order=obj, assignee=data["assignee"])
        if data.get("internal_note"):
            workorder_staff_reply(
                work_order=obj, staff=staff, body=data["internal_note"], internal=True
            )
        if data.get("reply"):
            workorder_staff_reply(work_order=obj, staff=staff, body=data["reply"])
        if "status" in form.changed_data:
            workorder_set_status(work_order=obj, status=data["status"])

    @admin.action(description="Assign the selected work orders to me")
    def assign_to_me(self, request: HttpRequest, queryset: Any) -> None:
        for order in queryset:
            workorder_assign(work_order=order, assignee=cast(User, request.user))
        self.message_user(request, f"{queryset.count()} work order(s) assigned to you.")

    @admin.action(description="Mark the selected work orders resolved")
    def mark_resolved(self, request: HttpRequest, queryset: Any) -> None:
        for order in queryset:
            workorder_set_status(work_order=order, status=WorkOrder.Status.RESOLVED)
        self.message_user(request, f"{queryset.count()} work order(s) resolved.")
