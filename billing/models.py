"""Money: wallets, the append-only ledger, holds, prices and pricing groups.

All amounts are integer micro-USD (1 = 0.000001 USD). Balance changes happen only in
billing.services, each with its ledger row in the same transaction.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone


class PricingGroup(models.Model):
    """A customer tier: every price is multiplied by the group's multiplier."""

    name = models.SlugField(max_length=64, unique=True)
    multiplier = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("1"))
    description = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.name} (x{self.multiplier})"


class Price(models.Model):
    """What a model costs, in micro-USD per 1M tokens (or per unit)."""

    model = models.CharField(max_length=200, unique=True)
    input_per_1m = models.BigIntegerField(default=0)
    output_per_1m = models.BigIntegerField(default=0)
    cache_read_per_1m = models.BigIntegerField(null=True, blank=True)
    cache_write_per_1m = models.BigIntegerField(null=True, blank=True)
    per_request = models.BigIntegerField(default=0)
    per_image = models.BigIntegerField(default=0)
    per_second = models.BigIntegerField(default=0)
    max_output_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Output cap used to size holds when a request sets none."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.model


class Wallet(models.Model):
    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.PROTECT, related_name="wallet"
    )
    balance = models.BigIntegerField(default=0)
    # Sum of open holds; available credit is balance - held.
    held = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar = [
            models.CheckConstraint(condition=models.Q(held__gte=0), name="wallet_held_nonneg")
        ]

    def __str__(self) -> str:
        return f"wallet of org {self.organization_id}"


class LedgerEntry(models.Model):
    """One balance change. Never updated or deleted; mistakes get reversing rows."""

    class Kind(models.TextChoices):
        TOPUP = "topup"
        REDEEM = "redeem"
        CHARGE = "charge"
        REFUND = "refund"
        ADJUST = "adjust"

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = models.BigIntegerField(help_text="signed micro-USD")
    balance_after = models.BigIntegerField()
    # The external event this row records; unique so that replays credit nothing.
    source_type = models.CharField(max_length=32)
    source_id = models.CharField(max_length=128)
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["source_type", "source_id"], name="uniq_ledger_source")
        ]
        indexes: ClassVar = [models.Index(fields=["wallet", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} ({self.source_type}:{self.source_id})"


class Hold(models.Model):
    """Credit reserved for a request or media task that has not settled yet."""

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="holds")
    reference = models.CharField(max_length=64, unique=True)
    amount = models.BigIntegerField()
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"hold {self.reference} {self.amount}"
