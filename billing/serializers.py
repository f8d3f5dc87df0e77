"""Shapes of billing objects in the management API (amounts as USD strings)."""

from __future__ import annotations

from typing import ClassVar

from rest_framework import serializers

from accounts.serializers import StrictInput
from billing.models import TopUp
from billing.providers import provider_names
from money import micros_to_usd


class TopUpCreateSerializer(StrictInput):
    amount_usd = serializers.CharField(max_length=32)
    provider = serializers.ChoiceField(choices=provider_names())


class RedemptionSerializer(StrictInput):
    code = serializers.CharField(max_length=64)


class TopUpSerializer(serializers.ModelSerializer[TopUp]):
    credit_usd = serializers.SerializerMethodField()
    bonus_usd = serializers.SerializerMethodField()
    pay_amount = serializers.SerializerMethodField()
    url = serializers.CharField(source="redirect_url")

    class Meta:
        model = TopUp
        fields: ClassVar = [
            "id",
            "provider",
            "state",
            "credit_usd",
            "bonus_usd",
            "pay_amount",
            "currency",
            "url",
            "created_at",
            "paid_at",
        ]
        read_only_fields = fields

    def get_credit_usd(self, obj: TopUp) -> str:
        return micros_to_usd(obj.credit)

    def get_bonus_usd(self, obj: TopUp) -> str:
        return micros_to_usd(obj.bonus)

    def get_pay_amount(self, obj: TopUp) -> str:
        """In the currency's major unit, e.g. '25.00' (every supported currency has 2)."""
        return f"{obj.pay_amount // 100}.{obj.pay_amount % 100:02d}"
