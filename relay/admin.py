from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from billing.models import PRICE_FIELDS
from billing.selectors import uncollected_recent
from money import micros_to_usd
from relay import cooldown
from relay.channel_health import channel_test
from relay.models import Channel, CostPrice, MediaTask
from relay.selectors import channel_stats
from relay.services import (
    InvalidChannel,
    channels_assign_models,
    channels_overreport_acknowledge,
)


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
            "strict_fields",
            "cost_multiplier",
            "margin_alert_below",
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


class AssignModelsForm(forms.Form):
    models = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), help_text="Model names, one per line."
    )
    mode = forms.ChoiceField(
        choices=[("add", "Add"), ("remove", "Remove"), ("replace", "Replace all with these")],
        initial="add",
        widget=forms.RadioSelect,
    )


class HealthChangeList(ChangeList):
    """Attaches last-hour stats and cooldowns to the page's rows: two queries per page,
    not per row, and nothing shared between concurrent requests."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows = list(self.result_list)
        ids = [c.pk for c in rows]
        stats = channel_stats(channel_ids=ids)
        cooling = cooldown.cooling_until()
        since = timezone.now() - dt.timedelta(days=1)
        over = uncollected_recent(channel_ids=ids, since=since)
        for row in rows:
            row.health_stats = stats.get(row.pk)
            row.cooldown_ends = cooling.get(row.pk)
            row.uncollected = over.get(row.pk, 0)
        self.result_list = rows


class OverreportFilter(admin.SimpleListFilter):
    title = "over-reporting"
    parameter_name = "overreport"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("flagged", "Flagged"), ("no", "Not flagged")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Channel]) -> QuerySet[Channel]:
        if self.value() == "flagged":
            return queryset.filter(overreport_flagged_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(overreport_flagged_at__isnull=True)
        return queryset


_COST_FIELDS = ("model", *PRICE_FIELDS)


class CostPriceInline(admin.TabularInline[CostPrice, Channel]):
    """Prices negotiated for this channel only (micro-USD per 1M tokens or per unit)."""

    model = CostPrice
    fields = _COST_FIELDS
    extra = 0
    verbose_name = "cost price for this channel only"
    verbose_name_plural = "cost prices for this channel only (micro-USD per 1M tokens or unit)"


@admin.register(CostPrice)
class CostPriceAdmin(admin.ModelAdmin[CostPrice]):
    """The upstreams' list prices: what the operator pays per model, before each channel's
    cost multiplier (docs/economics.md)."""

    list_display = ("model", "channel_type", "channel", *_COST_FIELDS[1:], "updated_at")
    list_filter = ("channel_type",)
    search_fields = ("model",)
    fields = ("channel_type", "channel", *_COST_FIELDS)


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin[Channel]):
    form = ChannelForm
    inlines = (CostPriceInline,)
    list_display = (
        "name",
        "type",
        "models_short",
        "priority",
        "weight",
        "status",
        "success_rate",
        "p50_latency",
        "cooling_until",
        "over_reported",
        "overreport_flag",
        "last_probe",
        "disabled_reason",
    )
    list_filter = ("type", "status", OverreportFilter)
    search_fields = ("name", "base_url")
    readonly_fields: ClassVar = [
        "probed_at",
        "probe_ok",
        "probe_latency_ms",
        "probe_error",
        "overreport_flagged_at",
        "overreport_note",
        "overreport_acknowledged_at",
        "created_at",
        "updated_at",
    ]
    actions = ("test_now", "enable", "disable", "assign_models", "acknowledge_overreport")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return HealthChangeList

    @admin.display(description="over-reported (24h)")
    def over_reported(self, obj: Channel) -> str:
        """Usage the upstream reported beyond the requests' holds: not charged to anyone."""
        micros = getattr(obj, "uncollected", 0)
        return f"⚠ {micros_to_usd(micros)} USD" if micros else "-"

    @admin.display(description="over-reporting", ordering="overreport_flagged_at")
    def overreport_flag(self, obj: Channel) -> SafeString | str:
        """Set by the flag-overreporting-channels job; the note says why."""
        if obj.overreport_flagged_at is None:
            return "-"
        since = timezone.localtime(obj.overreport_flagged_at).strftime("%Y-%m-%d %H:%M")
        return format_html(
            '<strong class="overreport-flag" title="{}">⚑ flagged since {}</strong>',
            obj.overreport_note,
            since,
        )

    @admin.display(description="success (1h)")
    def success_rate(self, obj: Channel) -> str:
        stats = getattr(obj, "health_stats", None)
        if stats is None or stats.success_rate is None:
            return "-"
        return f"{stats.success_rate:.0%} of {stats.requests}"

    @admin.display(description="p50 (1h)")
    def p50_latency(self, obj: Channel) -> str:
        stats = getattr(obj, "health_stats", None)
        if stats is None or stats.p50_latency_ms is None:
            return "-"
        return f"{stats.p50_latency_ms} ms"

    @admin.display(description="cooling until")
    def cooling_until(self, obj: Channel) -> str:
        until = getattr(obj, "cooldown_ends", None)
        if until is None:
            return "-"
        return timezone.localtime(dt.datetime.fromtimestamp(until, tz=dt.UTC)).strftime("%H:%M:%S")

    @admin.display(description="last probe")
    def last_probe(self, obj: Channel) -> str:
        if obj.probed_at is None:
            return "-"
        if obj.probe_ok:
            return f"ok, {obj.probe_latency_ms} ms"
        return f"failed: {obj.probe_error}"

    @admin.action(description="Test now (send a tiny request)")
    def test_now(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset[:20]:
            result = channel_test(channel=channel)
            if result.ok:
                self.message_user(
                    request, f"{channel.name}: ok in {result.latency_ms} ms", messages.SUCCESS
                )
            else:
                self.message_user(
                    request,
                    f"{channel.name}: failed after {result.latency_ms} ms: {result.error}",
                    messages.ERROR,
                )

    @admin.action(description="Enable")
    def enable(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        count = queryset.update(status=Channel.Status.ENABLED, disabled_reason="")
        self.message_user(request, f"{count} channel(s) enabled.", messages.SUCCESS)

    @admin.action(description="Disable")
    def disable(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        count = queryset.update(status=Channel.Status.DISABLED, disabled_reason="by an admin")
        self.message_user(request, f"{count} channel(s) disabled.", messages.SUCCESS)

    @admin.action(description="Acknowledge over-reporting (clear the flag)")
    def acknowledge_overreport(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        notes = dict(queryset.values_list("pk", "overreport_note"))
        cleared = channels_overreport_acknowledge(channel_ids=list(notes))
        # The admin's history of each channel records who acknowledged what.
        for channel in queryset.filter(pk__in=cleared):
            self.log_change(request, channel, f"Acknowledged over-reporting: {notes[channel.pk]}")
        self.message_user(
            request, f"{len(cleared)} over-reporting flag(s) acknowledged.", messages.SUCCESS
        )

    @admin.action(description="Add, remove or replace models")
    def assign_models(
        self, request: HttpRequest, queryset: QuerySet[Channel]
    ) -> TemplateResponse | None:
        form = AssignModelsForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            try:
                changed = channels_assign_models(
                    channel_ids=list(queryset.values_list("pk", flat=True)),
                    models=form.cleaned_data["models"].split(),
                    mode=form.cleaned_data["mode"],
                )
            except InvalidChannel as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{changed} channel(s) changed.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Add, remove or replace models",
            "channels": queryset,
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/relay/channel/assign_models.html", context)

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


from relay.upstream_bills import admin as _upstream_bills_admin  # noqa: E402,F401
