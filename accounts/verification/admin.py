"""Staff review verification requests here: the legal details, the documents (downloaded
decrypted, never shown inline) and a decision: approve, reject with a reason, ask for more
information, or, on an approved request, revoke the organization's verification with a
reason. Each decision goes through its service (audited, owners emailed); nothing on the
request is edited directly.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.models import User, VerificationDocument, VerificationRequest
from accounts.support.views import attachment_response
from accounts.verification.exceptions import VerificationRefused
from accounts.verification.selectors import verification_documents, verification_queue
from accounts.verification.services import (
    MESSAGE_MAX,
    organization_verification_revoke,
    verification_approve,
    verification_reject,
    verification_request_more,
)
from sealed.fields import reveal

State = VerificationRequest.State
DECISIONS = (
    ("", "—"),
    ("approve", "Approve: the organization is verified"),
    ("reject", "Reject (give the reason below)"),
    ("more", "Request more information (say what below)"),
    ("revoke", "Revoke the organization's verification (give the reason below)"),
)
# Which decisions a request in each state takes.
_ALLOWED: dict[str, set[str]] = {
    State.SUBMITTED: {"approve", "reject", "more"},
    State.MORE_INFO: {"reject"},
    State.APPROVED: {"revoke"},
}
_NEEDS_MESSAGE = {"reject", "more", "revoke"}


class VerificationDecisionForm(forms.ModelForm[VerificationRequest]):
    decision = forms.ChoiceField(choices=DECISIONS, required=False)
    message = forms.CharField(
        required=False,
        max_length=MESSAGE_MAX,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Sent to the organization's owners with a rejection, a request for more "
        "information or a revocation.",
    )

    class Meta:
        model = VerificationRequest
        fields = ()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        decision = data.get("decision", "")
        if not decision:
            return data
        allowed = _ALLOWED.get(self.instance.state, set())
        if decision == "revoke" and self.instance.organization.verified_at is None:
            allowed = set()
        if decision not in allowed:
            self.add_error("decision", "Not possible for a request in this state.")
        if decision in _NEEDS_MESSAGE and not data.get("message", "").strip():
            self.add_error("message", "This decision needs a message for the customer.")
        return data


@admin.register(VerificationRequest)
class VerificationRequestAdmin(admin.ModelAdmin[VerificationRequest]):
    form = VerificationDecisionForm
    list_display = (
        "number",
        "organization",
        "legal_name",
        "country",
        "state",
        "submitted_at",
        "decided_at",
        "organization_verified",
    )
    list_filter = ("state", "country")
    search_fields = ("legal_name", "registration_number", "organization__name", "contact_email")
    list_select_related = ("organization",)
    readonly_fields = (
        "organization",
        "organization_verified",
        "state",
        "submitted_by",
        "submitted_at",
        "decided_at",
        "reviewed_by",
        "legal_name",
        "registration_number",
        "country",
        "address",
        "contact_name",
        "contact_email",
        "customer_note",
        "staff_message",
        "document_list",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "organization",
                    "organization_verified",
                    "state",
                    "submitted_by",
                    "submitted_at",
                    "decided_at",
                    "reviewed_by",
                )
            },
        ),
        (
            "Legal details",
            {
                "fields": (
                    "legal_name",
                    "registration_number",
                    "country",
                    "address",
                    "contact_name",
                    "contact_email",
                    "customer_note",
                )
            },
        ),
        ("Documents", {"fields": ("document_list",)}),
        ("Decision", {"fields": ("staff_message", "decision", "message")}),
    )

    def get_queryset(self, request: HttpRequest) -> Any:
        return verification_queue()

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # organizations submit from the portal

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the decision is a record; documents go by the retention policy

    def get_urls(self) -> list[URLPattern]:
        download = path(
            "<int:request_id>/documents/<int:document_id>",
            self.admin_site.admin_view(self.document_view),
            name="accounts_verificationrequest_document",
        )
        return [download, *super().get_urls()]

    def document_view(
        self, request: HttpRequest, request_id: int, document_id: int
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        document = get_object_or_404(VerificationDocument, pk=document_id, request_id=request_id)
        if document.data is None:
            raise Http404  # purged after the retention period
        return attachment_response(document.name, document.content_type, reveal(document.data))

    @admin.display(description="#", ordering="pk")
    def number(self, obj: VerificationRequest) -> str:
        return f"#{obj.pk}"

    @admin.display(description="organization verified since")
    def organization_verified(self, obj: VerificationRequest) -> str:
        verified_at = obj.organization.verified_at
        return verified_at.strftime("%Y-%m-%d %H:%M UTC") if verified_at else "not verified"

    @admin.display(description="documents")
    def document_list(self, obj: VerificationRequest) -> SafeString:
        rows = []
        for document in verification_documents(verification=obj):
            if document.purged_at is None:
                link = format_html(
                    '<a href="{}">{}</a>',
                    reverse(
                        "admin:accounts_verificationrequest_document", args=[obj.pk, document.pk]
                    ),
                    document.name,
                )
            else:
                link = format_html("{} (deleted {})", document.name, document.purged_at.date())
            rows.append(
                (link, document.content_type, document.size, document.sha256, document.sha256[:16])
            )
        return format_html(
            "<table><thead><tr><th>name</th><th>type</th><th>bytes</th><th>SHA-256</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            format_html_join(
                "",
                '<tr><td>{}</td><td>{}</td><td>{}</td><td><code title="{}">{}…</code></td></tr>',
                rows,
            ),
        )

    def save_model(
        self, request: HttpRequest, obj: VerificationRequest, form: Any, change: bool
    ) -> None:
        # Nothing is saved directly: the decision goes through its service.
        staff = cast(User, request.user)
        decision, message = form.cleaned_data.get("decision"), form.cleaned_data.get("message", "")
        try:
            if decision == "approve":
                verification_approve(verification=obj, staff=staff)
            elif decision == "reject":
                verification_reject(verification=obj, staff=staff, reason=message)
            elif decision == "more":
                verification_request_more(verification=obj, staff=staff, message=message)
            elif decision == "revoke":
                organization_verification_revoke(
                    organization=obj.organization, staff=staff, reason=message
                )
        except VerificationRefused as exc:
            self.message_user(request, str(exc), level=messages.ERROR)
