from __future__ import annotations

from typing import Any, ClassVar, TypeVar, cast

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import Model
from django.http import HttpRequest

from accounts.forms import UsdAmountField
from accounts.models import (
    Announcement,
    ApiKey,
    AuditEvent,
    Invitation,
    LegalAcceptance,
    LegalDocument,
    Membership,
    Organization,
    User,
)
from accounts.revocations import key_change_publish
from accounts.services import (
    CAP_FIELDS,
    MAX_REQUEST_CAP,
    key_update,
    organization_create_personal,
    organization_update,
)


# The stubs bind UserAdmin to AbstractUser; ours is AbstractBaseUser + PermissionsMixin.
@admin.register(User)
class UserAdmin(BaseUserAdmin[Any]):
    ordering = ("email",)
    list_display = ("email", "name", "is_staff", "email_verified", "is_active", "date_joined")
    list_filter = ("is_staff", "is_active", "email_verified")
    search_fields = ("email", "name")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name", "email_verified")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    filter_horizontal = ("groups",)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            # Same guarantee as accounts.services.user_create: every user is billable.
            organization_create_personal(user=obj)


class MembershipInline(admin.TabularInline[Membership, Organization]):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)


# --- Caps: typed in USD and whole requests; saved through the services -----------------


def _count_field(help_text: str) -> forms.IntegerField:
    return forms.IntegerField(
        required=False, min_value=1, max_value=MAX_REQUEST_CAP, help_text=help_text
    )


class CapsAdminForm(forms.ModelForm[Any]):
    """The caps of a key or an organization: spend in USD (like the wallet's adjustments),
    requests as whole numbers; empty is no cap. No Meta: the admin names the model and the
    fields (its `exclude` and read-only fields)."""

    requests_per_day = _count_field("Requests per calendar day (UTC). Empty: no cap.")
    max_concurrent = _count_field("Requests in flight at once. Empty: no cap.")
    spend_cap_day = UsdAmountField(
        label="Spend cap per day (USD)", help_text="Per calendar day (UTC), e.g. 5 or 2.50."
    )
    spend_cap_week = UsdAmountField(
        label="Spend cap per week (USD)", help_text="Per ISO week (Monday to Sunday, UTC)."
    )
    spend_cap_month = UsdAmountField(
        label="Spend cap per month (USD)", help_text="Per calendar month (UTC)."
    )


def _through_service(
    form: forms.ModelForm[Any], obj: Any, names: tuple[str, ...]
) -> dict[str, Any]:
    """The changed fields among NAMES, put back to their stored values on OBJ so that the
    admin's own save leaves them to the service, which validates, audits and broadcasts."""
    changes = {name: form.cleaned_data[name] for name in names if name in form.changed_data}
    for name in changes:
        setattr(obj, name, form.initial.get(name))
    return changes


# Organization fields the relay's key snapshot carries besides the caps.
_ORG_SNAPSHOT_FIELDS = {"rpm_limit", "tpm_limit", "pricing_group", "store_responses"}


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin[Organization]):
    form = CapsAdminForm
    list_display = ("name", "is_personal", "pricing_group", "balance", "created_at")
    search_fields = ("name", "membership__user__email")
    inlines: ClassVar = [MembershipInline]
    list_select_related = ("wallet", "pricing_group")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        changes = _through_service(form, obj, (*CAP_FIELDS, "plan_fallback"))
        super().save_model(request, obj, form, change)
        if changes:
            # Audited; broadcasts the key change itself.
            organization_update(
                organization=obj, actor=cast(User, request.user), request=request, **changes
            )
        elif _ORG_SNAPSHOT_FIELDS & set(form.changed_data):
            key_change_publish()

    @admin.display(description="balance (USD)")
    def balance(self, obj: Organization) -> str:
        from money import micros_to_usd

        return micros_to_usd(obj.wallet.balance)


# "Api keys" is Django's capitalisation of the class name. Named here rather than in
# ApiKey.Meta so that no migration is needed (verbose names are migration state).
ApiKey._meta.verbose_name = "API key"
ApiKey._meta.verbose_name_plural = "API keys"


class ApiKeyAdminForm(CapsAdminForm):
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        changing = set(self.changed_data) & {*CAP_FIELDS, "show_cost"}
        if changing and data.get("status") == ApiKey.Status.REVOKED:
            raise forms.ValidationError("A revoked key's caps and cost switch cannot be changed.")
        return data


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    form = ApiKeyAdminForm
    # The secret is never stored; the hash is not shown either (it is a lookup handle).
    list_display = (
        "prefix",
        "name",
        "organization",
        "status",
        "scopes",
        "expires_at",
        "last_used_at",
    )
    list_filter = ("status",)
    search_fields = ("prefix", "name", "organization__name")
    exclude = ("key_hash",)
    # Spend and hold counters are the ledger's business: never hand-edited.
    readonly_fields = (
        "prefix",
        "organization",
        "created_by",
        "spent",
        "period_spent",
        "period_start",
        "held",
        "last_used_at",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Keys are created through the dashboard, API or CLI, which show the secret once.
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        changes = _through_service(form, obj, (*CAP_FIELDS, "show_cost"))
        super().save_model(request, obj, form, change)
        if changes:
            # Audited; broadcasts the key change itself.
            key_update(key=obj, actor=cast(User, request.user), **changes)
        else:
            # The relay honours an operator's edit from the next request on.
            key_change_publish()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        key_change_publish()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        super().delete_queryset(request, queryset)
        key_change_publish()


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin[Invitation]):
    # Only the token's hash is stored, and it is not shown.
    list_display = ("email", "organization", "role", "created_at", "expires_at", "accepted_at")
    list_filter = ("role",)
    search_fields = ("email", "organization__name")
    exclude = ("token_hash",)
    readonly_fields = (
        "organization",
        "email",
        "role",
        "invited_by",
        "created_at",
        "accepted_at",
        "accepted_by",
    )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # invitations are sent from the dashboard or the API, with their email


# --- Legal documents ------------------------------------------------------------------


@admin.register(LegalDocument)
class LegalDocumentAdmin(admin.ModelAdmin[LegalDocument]):
    list_display = ("kind", "version", "effective_at", "material", "announced_at")
    list_filter = ("kind", "material")
    readonly_fields = ("announced_at",)
    actions = ("announce",)

    @admin.action(description="Email every user about the selected update")
    def announce(self, request: HttpRequest, queryset: Any) -> None:
        from accounts.tasks import announce_legal_document

        for document in queryset:
            announce_legal_document.delay(document.pk)
        self.message_user(request, f"Announcement of {queryset.count()} document(s) queued.")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Accepted versions are evidence; a version nobody accepted may go.
        return obj is None or not LegalAcceptance.objects.filter(document=obj).exists()


@admin.register(Announcement)
class AnnouncementAdmin(admin.ModelAdmin[Announcement]):
    list_display = ("title_en", "level", "starts_at", "ends_at", "emailed_at")
    list_filter = ("level",)
    search_fields = ("title_en", "title_zh_hans")
    readonly_fields = ("emailed_at",)
    actions = ("email_everyone",)

    @admin.action(description="Email the selected announcements to every verified user")
    def email_everyone(self, request: HttpRequest, queryset: Any) -> None:
        from accounts.tasks import email_announcement

        pending = list(queryset.filter(emailed_at__isnull=True).values_list("pk", flat=True))
        for pk in pending:
            email_announcement.delay(pk)
        self.message_user(request, f"Emailing of {len(pending)} announcement(s) queued.")


_M = TypeVar("_M", bound=Model)


class ReadOnlyAdmin(admin.ModelAdmin[_M]):
    """Rows only their own code writes (the audit trail, the ledger, payments): staff read."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin[AuditEvent]):
    """Read-only: the audit trail is append-only, admins see every event."""

    list_display = ("created_at", "kind", "user", "actor", "organization", "ip")
    list_filter = ("kind",)
    search_fields = ("user__email", "actor__email", "organization__name")
    date_hierarchy = "created_at"
    list_select_related = ("user", "actor", "organization")
    raw_id_fields = ("user", "actor", "organization")


# Support work orders: their admin lives with them.
import accounts.support.admin  # noqa: E402, F401

# Verified organizations: their admin lives with them.
from accounts.verification import admin as _verification_admin  # noqa: E402, F401
