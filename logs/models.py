"""Request metadata. Never prompt or completion content: see docs/architecture.md."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class RequestLog(models.Model):
    created_at = models.DateTimeField(default=timezone.now)
    request_id = models.CharField(max_length=64, unique=True)
    # The caller's own X-Request-Id, echoed back; never used as an idempotency key
    # (a client could replay it), so it is not unique.
    client_request_id = models.CharField(max_length=64, blank=True)
    # Plain ids, not foreign keys: logs outlive keys and channels, and the relay's
    # batch writer inserts them without joins.
    organization_id = models.BigIntegerField()
    api_key_id = models.BigIntegerField(null=True)
    channel_id = models.BigIntegerField(null=True)
    endpoint = models.CharField(max_length=64)
    model = models.CharField(max_length=200, blank=True)
    upstream_model = models.CharField(max_length=200, blank=True)
    stream = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    cache_write_1h_tokens = models.PositiveIntegerField(default=0)  # part of cache writes
    reasoning_tokens = models.PositiveIntegerField(default=0)
    usage_estimated = models.BooleanField(default=False)
    cost = models.BigIntegerField(default=0, help_text="micro-USD charged to the balance")
    # Usage drawn from a plan's windows instead (priced the same way), and that plan.
    plan_cost = models.BigIntegerField(default=0, db_default=0, help_text="micro-USD")
    subscription_id = models.BigIntegerField(null=True, blank=True)
    # What the upstream charges the operator for this request (relay.CostPrice), from
    # the full usage it reported; empty when no upstream served it.
    upstream_cost = models.BigIntegerField(null=True, blank=True, help_text="micro-USD")
    # The hold the request was admitted with: what it could be charged at most
    # (cost + plan_cost <= hold; billing/reconcile.py checks it). Empty before 2026-12.
    hold = models.BigIntegerField(null=True, blank=True, help_text="micro-USD")
    latency_ms = models.PositiveIntegerField(default=0)
    ttfb_ms = models.PositiveIntegerField(null=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    client_ip = models.GenericIPAddressField(null=True)
    user_agent = models.CharField(max_length=300, blank=True)
    # Names (never values) of the advisory fields dropped in translation, comma-separated.
    dropped_params = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["organization_id", "-created_at"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return self.request_id


# A billed request (charged, or drawn from a plan) whose upstream cost was not recorded.
UNCOSTED = models.Q(upstream_cost__isnull=True) & (models.Q(cost__gt=0) | models.Q(plan_cost__gt=0))


class DailyUsage(models.Model):
    """Usage totals per day, organization, key, channel and model.

    Rolled up from `RequestLog` before its rows are purged and kept indefinitely. Holds no
    IP address or user agent. `api_key_id` and `channel_id` use 0 for "none" so that the
    unique constraint also covers rows without them.
    """

    day = models.DateField()
    organization_id = models.BigIntegerField()
    api_key_id = models.BigIntegerField(default=0)
    channel_id = models.BigIntegerField(default=0)
    model = models.CharField(max_length=200, blank=True)
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost = models.BigIntegerField(default=0, help_text="micro-USD")
    plan_cost = models.BigIntegerField(default=0, db_default=0, help_text="micro-USD")
    upstream_cost = models.BigIntegerField(default=0, db_default=0, help_text="micro-USD")
    # Billed requests without a recorded upstream cost (UNCOSTED): their margin is unknown.
    uncosted_requests = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        verbose_name_plural = "daily usage"
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["day", "organization_id", "api_key_id", "channel_id", "model"],
                name="uniq_daily_usage",
            )
        ]
        indexes: ClassVar = [models.Index(fields=["organization_id", "day"])]

    def __str__(self) -> str:
        return f"{self.day} org {self.organization_id} {self.model}"


class RolledUpDay(models.Model):
    """A UTC day whose request logs are in `DailyUsage`; only such days may be purged."""

    day = models.DateField(primary_key=True)
    rolled_at = models.DateTimeField(default=timezone.now)
    source_rows = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return str(self.day)


# --- Abuse and anomaly detection (logs/anomalies/) ----------------------------------------


class AnomalyPolicy(models.Model):
    """What an organization wants done when one of its keys spends far above its baseline
    or is used from a new network. No row: both off."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="anomaly_policy"
    )
    suspend_keys = models.BooleanField(default=False)
    alert_new_network = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "anomaly policies"

    def __str__(self) -> str:
        return f"org {self.organization_id}"


class AnomalyAlert(models.Model):
    """One alert that was sent: a spend anomaly of a key or organization, or a key's new
    network. `api_key_id` 0 is the whole organization. `detail` holds amounts and the
    network, never request content."""

    class Kind(models.TextChoices):
        KEY_SPEND = "key_spend", _("Key spend anomaly")
        ORG_SPEND = "org_spend", _("Organization spend anomaly")
        NEW_NETWORK = "new_network", _("Key used from a new network")

    organization_id = models.BigIntegerField()
    api_key_id = models.BigIntegerField(default=0)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes: ClassVar = [models.Index(fields=["organization_id", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} org {self.organization_id} key {self.api_key_id}"


class AnomalyCooldown(models.Model):
    """Until when a subject (kind, organization, key) stays quiet after an alert. Claimed
    with a conditional update, so two overlapping scans alert once."""

    kind = models.CharField(max_length=16)
    organization_id = models.BigIntegerField()
    api_key_id = models.BigIntegerField(default=0)
    until = models.DateTimeField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["kind", "organization_id", "api_key_id"], name="uniq_anomaly_cooldown"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.organization_id}/{self.api_key_id} until {self.until}"


class KeyNetwork(models.Model):
    """A client network (IPv4 /24, IPv6 /48) a key was used from, and when first."""

    api_key_id = models.BigIntegerField()
    network = models.CharField(max_length=64)
    first_seen = models.DateTimeField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["api_key_id", "network"], name="uniq_key_network")
        ]

    def __str__(self) -> str:
        return f"key {self.api_key_id} {self.network}"


class AnomalyWatermark(models.Model):
    """The last RequestLog id a scan has read (name: what the scan is)."""

    name = models.CharField(max_length=32, primary_key=True)
    last_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}: {self.last_id}"


class ReviewFlag(models.Model):
    """An organization flagged for review by the payment velocity rules. While a flag is
    open (not cleared) the organization's new top-ups are refused; redemption codes still
    work. At most one open flag per reason."""

    class Reason(models.TextChoices):
        FAILED_PAYMENTS = "failed_payments", _("Repeated failed payments")
        SMALL_TOPUPS = "small_topups", _("Many small top-ups")
        DISPUTE = "dispute", _("Payment disputed")

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+"
    )
    reason = models.CharField(max_length=20, choices=Reason.choices)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    clear_note = models.TextField(blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["organization", "reason"],
                condition=models.Q(cleared_at__isnull=True),
                name="uniq_open_review_flag",
            )
        ]
        indexes: ClassVar = [models.Index(fields=["organization", "cleared_at"])]

    def __str__(self) -> str:
        return f"{self.reason} org {self.organization_id}"
