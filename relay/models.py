"""Upstream channels: where requests for a model are sent, and how."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tokenhub.fields import EncryptedTextField, reveal


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
    # The last health probe (relay/channel_health.py): a tiny request, never customer data.
    probed_at = models.DateTimeField(null=True, blank=True)
    probe_ok = models.BooleanField(null=True)
    probe_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    probe_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes: ClassVar = [models.Index(fields=["status", "-priority"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"

    def key_list(self) -> list[str]:
        """The upstream keys in clear; raises ValueError if they cannot be decrypted."""
        return [k.strip() for k in reveal(self.api_keys).splitlines() if k.strip()]
