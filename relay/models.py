"""Upstream channels: where requests for a model are sent, and how."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import PriceFields
from sealed.fields import EncryptedTextField, reveal


class Channel(models.Model):
    class Type(models.TextChoices):
        OPENAI = "openai", _("OpenAI-compatible")  # the rest are brand names
        OPENAI_RESPONSES = "openai-responses", "OpenAI Responses"
        ANTHROPIC = "anthropic", "Anthropic"
        GEMINI = "gemini", "Google Gemini"
        AZURE_OPENAI = "azure-openai", "Azure OpenAI"
        DOUBAO = "doubao", "Doubao / Ark"

    class Status(models.TextChoices):
        ENABLED = "enabled"
        DISABLED = "disabled"  # by an admin
        AUTO_DISABLED = "auto_disabled"  # by the relay, e.g. upstream said 401

    name = models.CharField(max_length=100)
    type = models.CharField(max_length=32, choices=Type.choices)
    base_url = models.URLField(max_length=500)
    # One or more upstream keys, newline separated, encrypted with TOKENHUB_ENCRYPTION_KEYS.
    api_keys = EncryptedTextField()
    model_names = models.JSONField(default=list, help_text="Model names customers may call here.")
    model_map = models.JSONField(
        default=dict, blank=True, help_text="Customer model name → upstream model name."
    )
    groups = models.JSONField(
        default=list, blank=True, help_text="Pricing groups served; empty means every group."
    )
    priority = models.IntegerField(default=0)
    weight = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ENABLED)
    disabled_reason = models.CharField(max_length=300, blank=True)
    options = models.JSONField(default=dict, blank=True, help_text="e.g. azure api_version.")
    strict_fields = models.BooleanField(
        default=False,
        help_text="Refuse requests with fields this channel's protocol would drop "
        "(advisory fields such as top_k), instead of dropping them.",
    )
    # The last health probe (relay/channel_health.py): a tiny request, never customer data.
    probed_at = models.DateTimeField(null=True, blank=True)
    probe_ok = models.BooleanField(null=True)
    probe_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    probe_error = models.CharField(max_length=300, blank=True)
    # Set while the upstream keeps reporting usage beyond the requests' holds
    # (relay/services.channels_overreport_check). The channel keeps serving: the customer is
    # never charged past the hold, so the flag tells the operator where they lose money.
    overreport_flagged_at = models.DateTimeField(null=True, blank=True)
    overreport_note = models.CharField(max_length=300, blank=True)
    # Over-reports before an admin's acknowledgement do not count towards flagging again.
    overreport_acknowledged_at = models.DateTimeField(null=True, blank=True)
    # What the operator pays: the upstream's list prices (CostPrice) times this, e.g.
    # 0.8 for a reseller's 20% discount, 1.05 for a marked-up wholesaler.
    cost_multiplier = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        default=Decimal("1"),
        help_text="Your discount on the upstream's list prices: 0.8 means you pay 80%.",
    )
    # Alert the operator when this channel's margin over the last day falls below this
    # percentage of revenue (empty: never). One alert per channel per day.
    margin_alert_below = models.DecimalField(
        max_digits=6, decimal_places=2, null=True, blank=True, help_text="percent of revenue"
    )
    margin_alerted_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes: ClassVar = [models.Index(fields=["status", "-priority"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"

    def key_list(self) -> list[str]:
        """The upstream keys in clear; raises ValueError if they cannot be decrypted."""
        return [k.strip() for k in reveal(self.api_keys).splitlines() if k.strip()]


class CostPrice(PriceFields):
    """What an upstream charges the operator for a model: its list prices, in micro-USD
    per 1M tokens or per unit, keyed by the upstream's model name (after the channel's
    model map). A row for one channel wins over the row for every channel of its type;
    the channel's cost multiplier applies to both. Without either, a request's upstream
    cost is taken from the sale price sheet at list price (docs/economics.md)."""

    channel = models.ForeignKey(
        Channel,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="cost_prices",
        help_text="Only this channel (a negotiated price); empty: every channel of the type.",
    )
    channel_type = models.CharField(max_length=32, choices=Channel.Type.choices, blank=True)
    model = models.CharField(max_length=200, help_text="The upstream's model name.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["channel", "model"],
                condition=models.Q(channel__isnull=False),
                name="uniq_cost_price_channel_model",
            ),
            models.UniqueConstraint(
                fields=["channel_type", "model"],
                condition=models.Q(channel__isnull=True),
                name="uniq_cost_price_type_model",
            ),
            models.CheckConstraint(
                condition=models.Q(channel__isnull=False) | ~models.Q(channel_type=""),
                name="cost_price_channel_or_type",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} cost ({self.channel_id or self.channel_type})"


class StoredResponse(models.Model):
    """A Responses conversation kept for `previous_response_id`, for organizations that opt
    in (`Organization.store_responses`). The items are encrypted with a key derived from the
    calling API key's secret, which TokenHub does not keep (only its hash): at rest they
    cannot be read without the caller. Deleted when they expire (relay/response_store.py)."""

    response_id = models.CharField(max_length=100, unique=True)
    organization_id = models.BigIntegerField()
    api_key_id = models.BigIntegerField()
    ciphertext = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.response_id


class MediaTask(models.Model):
    """One asynchronous video job: TokenHub's id, the upstream's task, its hold and its state.

    The hold's reference is `public_id`. State changes out of an unfinished state are
    compare-and-set (`UPDATE ... WHERE state IN UNFINISHED`), so a task is settled or
    refunded exactly once whoever polls it.
    """

    class State(models.TextChoices):
        SUBMITTING = "submitting"  # hold placed, upstream not (yet) accepted
        QUEUED = "queued"
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"
        FAILED = "failed"

    UNFINISHED: ClassVar = (State.SUBMITTING, State.QUEUED, State.IN_PROGRESS)

    public_id = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, default="video")
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="media_tasks"
    )
    wallet_id = models.BigIntegerField()
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="media_tasks"
    )
    channel_type = models.CharField(max_length=32)
    model = models.CharField(max_length=200)
    upstream_model = models.CharField(max_length=200, blank=True)
    upstream_id = models.CharField(max_length=200, blank=True)
    # Which of the channel's keys created the upstream task (a SHA-256 prefix, not the key):
    # an upstream task is visible only to the account that created it.
    key_fingerprint = models.CharField(max_length=16, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.SUBMITTING)
    progress = models.PositiveSmallIntegerField(default=0)
    seconds = models.PositiveIntegerField(help_text="requested duration")
    size = models.CharField(max_length=32, blank=True)
    resolution = models.CharField(max_length=16, blank=True)
    actual_seconds = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.BigIntegerField(null=True, blank=True)
    hold_amount = models.BigIntegerField(help_text="micro-USD held at submit")
    cost = models.BigIntegerField(default=0, help_text="micro-USD charged")
    multiplier = models.DecimalField(max_digits=10, decimal_places=4)
    # The model's prices at submit (micro-USD): a later price change does not reprice it.
    price = models.JSONField(default=dict)
    # Where the finished file can be fetched (Seedance: a signed URL; Sora: none, the
    # content endpoint is asked with the channel's key). Never the file itself.
    result_url = models.URLField(max_length=2000, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="upstream file expiry")
    next_poll_at = models.DateTimeField(default=timezone.now)
    polled_at = models.DateTimeField(null=True, blank=True)
    polls = models.PositiveIntegerField(default=0)

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["state", "next_poll_at"]),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def finished(self) -> bool:
        return self.state not in self.UNFINISHED


class UpstreamBill(models.Model):
    """An upstream's own cost export for one channel and period, imported to check the
    upstream cost TokenHub recorded against what the provider actually billed
    (relay/upstream_bills). One bill per channel and period: importing the same channel and
    period again replaces the previous import."""

    class Source(models.TextChoices):
        OPENAI_COSTS_CSV = "openai-costs-csv", "OpenAI cost export (CSV)"
        OPENAI_COSTS_JSON = "openai-costs-json", "OpenAI Costs API (JSON)"
        ANTHROPIC_COST_CSV = "anthropic-cost-csv", "Anthropic Console cost export (CSV)"
        ANTHROPIC_COST_REPORT = "anthropic-cost-report", "Anthropic Admin API cost report (JSON)"
        OPENROUTER_ACTIVITY_CSV = "openrouter-activity-csv", "OpenRouter activity export (CSV)"
        OPENROUTER_GENERATIONS = "openrouter-generations", "OpenRouter generations (JSON)"

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="upstream_bills")
    source = models.CharField(max_length=32, choices=Source.choices)
    period_start = models.DateField(help_text="first UTC day, inclusive")
    period_end = models.DateField(help_text="last UTC day, inclusive")
    tolerance_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("2"),
        help_text="Flag a day and model whose drift exceeds this percentage of the bill.",
    )
    filename = models.CharField(max_length=255, blank=True)
    imported_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    imported_at = models.DateTimeField(default=timezone.now)
    # Totals of the lines kept (micro-USD), and of the file's lines outside the period.
    total_cost = models.BigIntegerField(default=0, help_text="micro-USD")
    line_count = models.PositiveIntegerField(default=0)
    skipped_cost = models.BigIntegerField(default=0, help_text="micro-USD outside the period")
    skipped_lines = models.PositiveIntegerField(default=0)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["channel", "period_start", "period_end"], name="uniq_upstream_bill_period"
            ),
            models.CheckConstraint(
                condition=models.Q(period_start__lte=models.F("period_end")),
                name="upstream_bill_period_order",
            ),
        ]

    def __str__(self) -> str:
        return f"Bill {self.period_start} to {self.period_end}, channel {self.channel_id}"


class UpstreamBillLine(models.Model):
    """What the upstream billed for one UTC day and model, summed over the file's rows.
    An empty model is a charge the provider did not attribute to a model (or a file
    not broken down by model at all)."""

    bill = models.ForeignKey(UpstreamBill, on_delete=models.CASCADE, related_name="lines")
    day = models.DateField()
    model = models.CharField(max_length=200, blank=True)
    cost = models.BigIntegerField(help_text="micro-USD")
    input_tokens = models.BigIntegerField(null=True, blank=True)
    output_tokens = models.BigIntegerField(null=True, blank=True)
    requests = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["bill", "day", "model"], name="uniq_upstream_bill_line")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model or '-'}"
