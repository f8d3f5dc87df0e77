from __future__ import annotations

from typing import ClassVar

from rest_framework import serializers

from accounts.models import ApiKey


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    class Meta:
        model = ApiKey
        fields: ClassVar = [
            "id",
            "name",
            "prefix",
            "status",
            "scopes",
            "expires_at",
            "allowed_models",
            "allowed_ips",
            "spend_limit",
            "spend_limit_period",
            "spent",
            "rpm_limit",
            "tpm_limit",
            "last_used_at",
            "created_at",
        ]
        read_only_fields = fields
