"""Shapes of the /api/v1 accounts resources: keys, organizations, members, invitations."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from django.utils.translation import gettext as _
from rest_framework import serializers

from accounts.forms import (
    billing_address_clean,
    country_clean,
    legal_name_clean,
    tax_id_clean,
)
from accounts.models import ApiKey, Invitation, Membership, Organization
from accounts.services import INVOICE_FIELDS, MAX_REQUEST_CAP, MAX_SPEND_CAP
from billing.models import PricingGroup


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


class StrictInput(serializers.Serializer[Any]):
    """A request body that names only fields it knows: a typo (`rpm` for `rpm_limit`) is a
    400 naming it, not a setting silently ignored. NUL characters, which no database column
    takes, are refused by field as well."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            errors = {name: [_("unknown field")] for name in data if name not in self.fields}
            errors |= {
                name: [_("must not contain NUL characters")]
                for name, value in data.items()
                if name in self.fields and _has_nul(value)
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


# The caps of a key and of an organization, as the API reads and writes them.
_CAPS = ["requests_per_day", "max_concurrent", "spend_cap_day", "spend_cap_week", "spend_cap_month"]


class WholeNumberField(serializers.IntegerField):
    """An integer written as one: 5 or "5", never 5.0, "5.00" or true, which REST
    framework's IntegerField takes. "5.00" sent for a spend cap in micro-USD is a mistake
    (five dollars would be 5000000), refused rather than read as five micro-dollars."""

    default_error_messages = {
        "invalid": _("A whole number is required (no decimals)."),
    }

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool | float) or (
            isinstance(data, str) and not re.fullmatch(r"\s*-?\d+\s*", data)
        ):
            self.fail("invalid")
        return super().to_internal_value(data)


class CapsInput(StrictInput):
    """Caps for a key or an organization: whole numbers, null for no cap; spend in
    micro-USD like every amount of this API's key resource (1 USD = 1000000)."""

    requests_per_day = WholeNumberField(
        min_value=1,
        max_value=MAX_REQUEST_CAP,
        required=False,
        allow_null=True,
        help_text="Requests per calendar day (UTC); null for no cap.",
    )
    max_concurrent = WholeNumberField(
        min_value=1,
        max_value=MAX_REQUEST_CAP,
        required=False,
        allow_null=True,
        help_text="Requests in flight at once; null for no cap.",
    )
    spend_cap_day = WholeNumberField(
        min_value=1,
        max_value=MAX_SPEND_CAP,
        required=False,
        allow_null=True,
        help_text="micro-USD per calendar day (UTC); null for no cap.",
    )
    spend_cap_week = WholeNumberField(
        min_value=1,
        max_value=MAX_SPEND_CAP,
        required=False,
        allow_null=True,
        help_text="micro-USD per ISO week (Monday to Sunday, UTC); null for no cap.",
    )
    spend_cap_month = WholeNumberField(
        min_value=1,
        max_value=MAX_SPEND_CAP,
        required=False,
        allow_null=True,
        help_text="micro-USD per calendar month (UTC); null for no cap.",
    )


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    # Both may be null: most keys have no pricing group, and a key outlives its creator.
    pricing_group: serializers.SlugRelatedField[PricingGroup] = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True
    )
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="email", read_only=True, allow_null=True
    )

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
            *_CAPS,
            "show_cost",
            "pricing_group",
            "created_by",
            "last_used_at",
            "created_at",
        ]
        read_only_fields = fields


class ApiKeyWithSecretSerializer(ApiKeySerializer):
    secret = serializers.SerializerMethodField(
        help_text="The full key. Shown in this response only; store it now."
    )

    class Meta(ApiKeySerializer.Meta):
        fields: ClassVar = [*ApiKeySerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, key: ApiKey) -> str:
        return str(self.context["secret"])


def _model_pattern(value: str) -> None:
    value = value.strip()
    if not value or any(c.isspace() for c in value):
        raise serializers.ValidationError(
            _("not a model name or pattern: %(value)s (wildcards like gpt-4o* are fine)")
            % {"value": repr(value)}
        )


def _ip_network(value: str) -> None:
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise serializers.ValidationError(
            _("not an IP address or CIDR network: %(value)s") % {"value": repr(value)}
        ) from None


class ApiKeyWriteSerializer(CapsInput):
    """Settings for POST (create) and PATCH (partial update) of a key; limits in micro-USD."""

    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKey.Scope.choices),
        min_length=1,
        required=False,
        help_text="Create only. 'relay' calls models; 'manage' calls this API.",
    )
    status = serializers.ChoiceField(
        choices=[ApiKey.Status.ACTIVE, ApiKey.Status.DISABLED],
        required=False,
        help_text="Update only: disable or enable the key.",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200, validators=[_model_pattern]),
        max_length=200,
        required=False,
        help_text="Model names or fnmatch patterns (gpt-4o*); empty allows every model.",
    )
    allowed_ips = serializers.ListField(
        child=serializers.CharField(max_length=64, validators=[_ip_network]),
        max_length=200,
        required=False,
        help_text="IP addresses or CIDR networks; empty allows every address.",
    )
    spend_limit = WholeNumberField(
        min_value=0,
        max_value=2**63 - 1,
        required=False,
        allow_null=True,
        help_text="micro-USD; null for none",
    )
    spend_limit_period = serializers.ChoiceField(choices=ApiKey.LimitPeriod.choices, required=False)
    rpm_limit = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, required=False, allow_null=True
    )
    tpm_limit = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, required=False, allow_null=True
    )
    show_cost = serializers.BooleanField(
        required=False,
        help_text="Answers carry what the call cost (X-TokenHub-Cost header, usage.cost).",
    )
    pricing_group = serializers.SlugRelatedField(
        slug_field="name",
        queryset=PricingGroup.objects.all(),
        required=False,
        allow_null=True,
        help_text="Staff only.",
    )

    def validate_pricing_group(self, value: PricingGroup | None) -> PricingGroup | None:
        request = self.context["request"]
        if not request.user.is_staff:
            raise serializers.ValidationError(_("only TokenHub staff can set a pricing group"))
        return value

    def validate_allowed_models(self, value: list[str]) -> list[str]:
        return [v.strip() for v in value]

    def validate_allowed_ips(self, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(v.strip(), strict=False)) for v in value]


class OrganizationSerializer(serializers.ModelSerializer[Organization]):
    role = serializers.SerializerMethodField(help_text="The caller's role in it.")

    class Meta:
        model = Organization
        fields: ClassVar = [
            "id",
            "name",
            "is_personal",
            "role",
            *_CAPS,
            "plan_fallback",
            *INVOICE_FIELDS,
            "created_at",
        ]
        read_only_fields = fields

    def get_role(self, organization: Organization) -> str:
        roles: dict[int, str] = self.context.get("roles", {})
        return roles.get(organization.pk, "")


class OrganizationWriteSerializer(StrictInput):
    name = serializers.CharField(max_length=150)


class OrganizationUpdateSerializer(CapsInput):
    """PATCH of an organization: only the fields sent change. Caps count every key of the
    organization together; a key's own caps apply as well."""

    name = serializers.CharField(max_length=150, required=False)
    plan_fallback = serializers.BooleanField(
        required=False,
        help_text="With a plan: what the plan does not cover, or beyond a full window, is "
        "paid from the balance. Off: refused (429) until the window frees up.",
    )
    # Invoice details (owners, admins and billing members): cleaned as the portal's form.
    legal_name = serializers.CharField(
        required=False, allow_blank=True, help_text="One line, at most 200 characters."
    )
    billing_address = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="At most 1000 characters; newlines, no other control characters.",
    )
    billing_country = serializers.CharField(
        required=False, allow_blank=True, help_text="ISO 3166-1 alpha-2, e.g. DE; upper-cased."
    )
    tax_id = serializers.CharField(
        required=False, allow_blank=True, help_text="Printable, at most 64 characters."
    )

    def validate_legal_name(self, value: str) -> str:
        return legal_name_clean(value)

    def validate_billing_address(self, value: str) -> str:
        return billing_address_clean(value)

    def validate_billing_country(self, value: str) -> str:
        return country_clean(value)

    def validate_tax_id(self, value: str) -> str:
        return tax_id_clean(value)


class MemberSerializer(serializers.ModelSerializer[Membership]):
    user_id = serializers.IntegerField(read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.CharField(source="user.name", read_only=True)
    joined_at = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Membership
        fields: ClassVar = ["user_id", "email", "name", "role", "joined_at"]
        read_only_fields = fields


class InvitationSerializer(serializers.ModelSerializer[Invitation]):
    class Meta:
        model = Invitation
        fields: ClassVar = ["id", "email", "role", "created_at", "expires_at"]
        read_only_fields = fields


class InviteSerializer(StrictInput):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Membership.Role.choices, default="member")


class RoleSerializer(StrictInput):
    role = serializers.ChoiceField(choices=Membership.Role.choices)
