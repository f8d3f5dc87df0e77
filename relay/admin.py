from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin

from relay.models import Channel, MediaTask


class ChannelForm(forms.ModelForm[Channel]):
    base_url = forms.URLField(max_length=500, assume_scheme="https")
    # Keys are write-only: the form never renders the stored value back.
    new_api_keys = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off"}),
        help_text="Upstream keys, one per line. Leave empty to keep the current keys.",
    )

    class Meta:
        model = Channel
        fields = (
            "name",
            "type",
            "base_url",
            "model_names",
            "model_map",
            "groups",
            "priority",
            "weight",
            "status",
            "disabled_reason",
            "options",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.instance.pk and not (data.get("new_api_keys") or "").strip():
            self.add_error("new_api_keys", "A new channel needs at least one key.")
        return data

    def save(self, commit: bool = True) -> Channel:
        keys = (self.cleaned_data.get("new_api_keys") or "").strip()
        if keys:
            self.instance.api_keys = "\n".join(k.strip() for k in keys.splitlines() if k.strip())
        return super().save(commit=commit)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin[Channel]):
    form = ChannelForm
    list_display = ("name", "type", "base_url", "models_short", "priority", "weight", "status")
    list_filter = ("type", "status")
    search_fields = ("name", "base_url")
    readonly_fields: ClassVar = ["created_at", "updated_at"]

    @admin.display(description="models")
    def models_short(self, obj: Channel) -> str:
        names = obj.model_names or []
        return ", ".join(names[:5]) + (f" (+{len(names) - 5})" if len(names) > 5 else "")


@admin.register(MediaTask)
class MediaTaskAdmin(admin.ModelAdmin[MediaTask]):
    """Read-only: tasks change only through relay.media.services (holds and ledger)."""

    list_display = ("public_id", "organization", "model", "state", "seconds", "cost", "created_at")
    list_filter = ("state", "channel_type")
    search_fields = ("public_id", "upstream_id")
    list_select_related = ("organization",)
    # result_url is a signed link to the file: a bearer credential, never shown.
    exclude = ("result_url", "key_fingerprint")

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: MediaTask | None = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: MediaTask | None = None) -> bool:
        return False
