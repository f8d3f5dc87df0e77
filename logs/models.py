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
