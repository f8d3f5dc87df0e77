"""Request metadata. Never prompt or completion content: see docs/architecture.md."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone


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
    reasoning_tokens = models.PositiveIntegerField(default=0)
    usage_estimated = models.BooleanField(default=False)
    cost = models.BigIntegerField(default=0, help_text="micro-USD")
    latency_ms = models.PositiveIntegerField(default=0)
    ttfb_ms = models.PositiveIntegerField(null=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    client_ip = models.GenericIPAddressField(null=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["organization_id", "-created_at"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return self.request_id


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
