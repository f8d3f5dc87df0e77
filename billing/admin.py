from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import ForeignKeyRawIdWidget
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from accounts.admin import ReadOnlyAdmin
from accounts.models import Organization, User
from billing.codes import MAX_BATCH, redemption_batch_create, redemption_batch_download
from billing.exceptions import RedemptionError
from billing.invoices import invoice_label, invoice_mark_received
from billing.models import (
    PRICE_FIELDS,
    CreditNote,
    Hold,
    Invoice,
    LedgerEntry,
    PaymentEvent,
    Plan,
    Price,
    PricingGroup,
    RedemptionBatch,
    RedemptionCode,
    Subscription,
    TopUp,
    UncollectedUsage,
    Wallet,
)
from billing.providers import ProviderError, ProviderUnavailable
from billing.services import wallet_adjust, wallet_credit_limit_set
from billing.subscriptions import (
    CURRENT,
    SubscriptionError,
    price_from_minor,
    price_to_minor,
    subscription_cancel,
    subscription_grant,
)
from billing.topups import topup_refund_request
from money import InvalidAmount, micros_to_usd, usd_to_micros


class AdjustForm(forms.Form):
    amount = forms.CharField(help_text="USD, negative to debit, e.g. 10 or -2.5")
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))

    def clean_amount(self) -> int:
        try:
            micros = usd_to_micros(self.cleaned_data["amount"])
        except InvalidAmount as exc:
            raise forms.ValidationError(str(exc)) from None
        if micros == 0:
            raise forms.ValidationError("an adjustment of zero changes nothing")
        return micros


class CreditLineForm(forms.Form):
    limit = forms.CharField(
        label="Credit line (USD)",
        max_length=32,
        help_text="The balance may go down to minus this. 0 withdraws the credit line.",
    )
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))

    def clean_limit(self) -> int:
        try:
            micros = usd_to_micros(self.cleaned_data["limit"])
        except InvalidAmount as exc:
            raise forms.ValidationError(str(exc)) from None
        if micros < 0:
            raise forms.ValidationError("a credit line cannot be negative")
        return micros


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin[Wallet]):
    list_display = (
        "organization",
        "balance_usd",
        "held_usd",
        "leased_usd",
        "credit_line_usd",
        "updated_at",
        "adjust_link",
    )
    search_fields = ("organization__name",)
    list_select_related = ("organization",)

    @admin.display(description="balance (USD)")
    def balance_usd(self, obj: Wallet) -> str:
        return micros_to_usd(obj.balance)

    @admin.display(description="held (USD)")
    def held_usd(self, obj: Wallet) -> str:
        return micros_to_usd(obj.held)

    @admin.display(description="leased (USD)")
    def leased_usd(self, obj: Wallet) -> str:
        # Reserved by serving processes to admit requests without a round trip.
        return micros_to_usd(obj.leased) if obj.leased else "-"

    @admin.display(description="credit line (USD)")
    def credit_line_usd(self, obj: Wallet) -> str:
        return micros_to_usd(obj.credit_limit) if obj.credit_limit else "-"

    @admin.display(description="")
    def adjust_link(self, obj: Wallet) -> str:
        adjust = reverse("admin:billing_wallet_adjust", args=[obj.pk])
        line = reverse("admin:billing_wallet_credit_line", args=[obj.pk])
        return format_html(
            '<a href="{}">Adjust balance</a> · <a href="{}">Credit line</a>', adjust, line
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<int:pk>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="billing_wallet_adjust",
            ),
            path(
                "<int:pk>/credit-line/",
                self.admin_site.admin_view(self.credit_line_view),
                name="billing_wallet_credit_line",
            ),
        ]
        return custom + super().get_urls()

    def credit_line_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Grant, change or withdraw a credit line: superusers only, with a reason."""
        if not request.user.is_superuser:
            messages.error(request, "Only superusers may grant credit lines.")
            return HttpResponseRedirect(reverse("admin:billing_wallet_changelist"))
        wallet = get_object_or_404(Wallet.objects.select_related("organization"), pk=pk)
        form = CreditLineForm(
            request.POST or None, initial={"limit": micros_to_usd(wallet.credit_limit)}
        )
        if request.method == "POST" and form.is_valid():
            try:
                wallet = wallet_credit_limit_set(
                    organization=wallet.organization,
                    limit=form.cleaned_data["limit"],
                    reason=form.cleaned_data["reason"],
                    set_by=request.user,
                )
            except ValueError as exc:  # e.g. the organization is not verified
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request, f"Credit line set to {micros_to_usd(wallet.credit_limit)} USD."
                )
                return HttpResponseRedirect(reverse("admin:billing_wallet_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Credit line: {wallet.organization}",
            "wallet": wallet,
            "balance": micros_to_usd(wallet.balance),
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/billing/wallet_credit_line.html", context)

    def adjust_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.is_superuser:
            messages.error(request, "Only superusers may adjust balances.")
            return HttpResponseRedirect(reverse("admin:billing_wallet_changelist"))
        wallet = get_object_or_404(Wallet.objects.select_related("organization"), pk=pk)
        form = AdjustForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            entry = wallet_adjust(
                organization=wallet.organization,
                amount=form.cleaned_data["amount"],
                reason=form.cleaned_data["reason"],
                created_by=request.user,
            )
            messages.success(
                request, f"Adjusted by {micros_to_usd(entry.amount)} USD; ledger entry {entry.pk}."
            )
            return HttpResponseRedirect(reverse("admin:billing_wallet_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Adjust balance: {wallet.organization}",
            "wallet": wallet,
            "balance": micros_to_usd(wallet.balance),
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/billing/wallet_adjust.html", context)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin[LedgerEntry]):
    list_display = (
        "created_at",
        "wallet",
        "kind",
        "amount_usd",
        "balance_after_usd",
        "source",
        "note",
        "created_by",
    )
    list_filter = ("kind",)
    search_fields = ("source_id", "wallet__organization__name", "note")
    list_select_related = ("wallet__organization",)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)

    @admin.display(description="amount (USD)")
    def amount_usd(self, obj: LedgerEntry) -> str:
        return micros_to_usd(obj.amount)

    @admin.display(description="balance after (USD)")
    def balance_after_usd(self, obj: LedgerEntry) -> str:
        return micros_to_usd(obj.balance_after)

    @admin.display(description="source")
    def source(self, obj: LedgerEntry) -> str:
        return f"{obj.source_type}:{obj.source_id}"


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin[Hold]):
    list_display = ("reference", "wallet", "amount", "created_at", "expires_at")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)


@admin.register(UncollectedUsage)
class UncollectedUsageAdmin(ReadOnlyAdmin[UncollectedUsage]):
    """What upstreams reported beyond the requests' holds: paid to them, not charged."""

    list_display = ("created_at", "reference", "channel_id", "model", "cost_usd", "amount_usd")
    list_filter = ("channel_id",)
    search_fields = ("reference", "model")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)

    @admin.display(description="usage worth (USD)")
    def cost_usd(self, obj: UncollectedUsage) -> str:
        return micros_to_usd(obj.cost)

    @admin.display(description="not charged (USD)")
    def amount_usd(self, obj: UncollectedUsage) -> str:
        return micros_to_usd(obj.amount)


@admin.register(PricingGroup)
class PricingGroupAdmin(admin.ModelAdmin[PricingGroup]):
    list_display = ("name", "multiplier", "topup_rate", "description")


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin[Price]):
    list_display = ("model", *PRICE_FIELDS, "updated_at")
    search_fields = ("model",)


# --- Payments and codes -------------------------------------------------------------------


# "Top ups" is Django's spelling of the class name; named here, not in TopUp.Meta, so that
# no migration is needed (verbose names are migration state).
TopUp._meta.verbose_name = "top-up"
TopUp._meta.verbose_name_plural = "top-ups"


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdmin[TopUp]):
    list_display = ("pk", "organization", "provider", "state", "credit_usd", "pay", "created_at")
    list_filter = ("provider", "state")
    search_fields = ("provider_ref", "provider_payment_id", "organization__name")
    list_select_related = ("organization",)
    exclude = ("redirect_url",)
    actions = ("refund_at_provider",)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)

    @admin.action(description="Refund in full at the payment provider")
    def refund_at_provider(self, request: HttpRequest, queryset: Any) -> None:
        if not request.user.is_superuser:
            messages.error(request, "Only superusers may refund payments.")
            return
        for topup in queryset:
            try:
                refund_id = topup_refund_request(topup_id=topup.pk)
            except (ProviderError, ProviderUnavailable) as exc:
                messages.error(request, f"Top-up {topup.pk}: {exc}")
            else:
                messages.success(
                    request,
                    f"Top-up {topup.pk}: refund {refund_id} requested; the balance is debited "
                    "when the provider confirms it.",
                )

    @admin.display(description="credit (USD)")
    def credit_usd(self, obj: TopUp) -> str:
        return micros_to_usd(obj.credit)

    @admin.display(description="paid")
    def pay(self, obj: TopUp) -> str:
        return f"{obj.pay_amount // 100}.{obj.pay_amount % 100:02d} {obj.currency}"


@admin.register(PaymentEvent)
class PaymentEventAdmin(ReadOnlyAdmin[PaymentEvent]):
    list_display = ("received_at", "provider", "event_type", "event_id", "processed_at", "error")
    list_filter = ("provider", "event_type")
    search_fields = ("event_id",)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)


class BatchForm(forms.Form):
    name = forms.CharField(max_length=150)
    count = forms.IntegerField(min_value=1, max_value=MAX_BATCH)
    amount = forms.CharField(
        help_text="USD per code, e.g. 10 (0 for a code that only grants a plan)"
    )
    expires_at = forms.DateTimeField(required=False, help_text="optional, e.g. 2027-01-01 00:00")
    per_user_limit = forms.IntegerField(
        required=False, min_value=1, help_text="optional: codes of this batch one user may redeem"
    )
    plan = forms.ModelChoiceField(
        queryset=Plan.objects.all(),
        required=False,
        help_text="optional: each code also grants this plan (or extends it when current)",
    )
    plan_days = forms.IntegerField(
        required=False, min_value=1, max_value=3660, help_text="days of the plan per code"
    )

    def clean_amount(self) -> int:
        try:
            micros = usd_to_micros(self.cleaned_data["amount"])
        except InvalidAmount as exc:
            raise forms.ValidationError(str(exc)) from None
        if micros < 0:
            raise forms.ValidationError("the amount cannot be negative")
        return micros

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (data.get("plan") is None) != (data.get("plan_days") is None):
            raise forms.ValidationError("A plan needs its number of days, and days a plan.")
        if data.get("amount") == 0 and data.get("plan") is None:
            self.add_error("amount", "the amount must be positive for a code without a plan")
        return data


@admin.register(RedemptionBatch)
class RedemptionBatchAdmin(ReadOnlyAdmin[RedemptionBatch]):
    list_display = ("name", "amount_usd", "plan_granted", "count", "redeemed", "expires_at",
                    "created_by", "created_at", "csv")  # fmt: skip
    exclude = ("pending_csv",)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)

    def get_queryset(self, request: HttpRequest) -> Any:
        return (
            super()
            .get_queryset(request)
            .select_related("created_by", "plan")
            .annotate(n_redeemed=Count("codes", filter=Q(codes__redeemed_at__isnull=False)))
        )

    @admin.display(description="amount (USD)")
    def amount_usd(self, obj: RedemptionBatch) -> str:
        return micros_to_usd(obj.amount)

    @admin.display(description="plan")
    def plan_granted(self, obj: RedemptionBatch) -> str:
        return f"{obj.plan} for {obj.plan_days} days" if obj.plan else "-"

    @admin.display(description="redeemed")
    def redeemed(self, obj: Any) -> int:
        return int(obj.n_redeemed)

    @admin.display(description="CSV")
    def csv(self, obj: RedemptionBatch) -> str:
        if not obj.pending_csv:
            return "downloaded" if obj.downloaded_at else "-"
        url = reverse("admin:billing_redemptionbatch_download", args=[obj.pk])
        return format_html('<a href="{}">Download once</a>', url)

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "generate/",
                self.admin_site.admin_view(self.generate_view),
                name="billing_redemptionbatch_generate",
            ),
            path(
                "<int:pk>/download/",
                self.admin_site.admin_view(self.download_view),
                name="billing_redemptionbatch_download",
            ),
        ]
        return custom + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if request.user.is_superuser:
            url = reverse("admin:billing_redemptionbatch_generate")
            messages.info(request, format_html('<a href="{}">Generate a batch of codes</a>', url))
        return super().changelist_view(request, extra_context)

    def generate_view(self, request: HttpRequest) -> HttpResponse:
        changelist = reverse("admin:billing_redemptionbatch_changelist")
        if not request.user.is_superuser:
            messages.error(request, "Only superusers may generate codes.")
            return HttpResponseRedirect(changelist)
        form = BatchForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            new = redemption_batch_create(
                name=form.cleaned_data["name"],
                count=form.cleaned_data["count"],
                amount=form.cleaned_data["amount"],
                expires_at=form.cleaned_data["expires_at"],
                per_user_limit=form.cleaned_data["per_user_limit"],
                plan=form.cleaned_data["plan"],
                plan_days=form.cleaned_data["plan_days"],
                created_by=request.user,
                keep_for_download=True,
            )
            url = reverse("admin:billing_redemptionbatch_download", args=[new.batch.pk])
            messages.success(
                request,
                format_html(
                    '{} codes generated. <a href="{}">Download the CSV</a> now: it can be '
                    "downloaded only once.",
                    len(new.codes),
                    url,
                ),
            )
            return HttpResponseRedirect(changelist)
        context = {
            **self.admin_site.each_context(request),
            "title": "Generate redemption codes",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/billing/batch_generate.html", context)

    def download_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        changelist = reverse("admin:billing_redemptionbatch_changelist")
        if not request.user.is_superuser:
            messages.error(request, "Only superusers may download codes.")
            return HttpResponseRedirect(changelist)
        try:
            content = redemption_batch_download(batch_id=pk)
        except RedemptionError as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(changelist)
        response = HttpResponse(content, content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="codes-batch-{pk}.csv"'
        response["Cache-Control"] = "no-store"
        return response


@admin.register(RedemptionCode)
class RedemptionCodeAdmin(ReadOnlyAdmin[RedemptionCode]):
    list_display = ("hint", "batch", "redeemed_at", "redeemed_by", "redeemed_organization")
    list_filter = ("batch",)
    search_fields = ("hint",)
    list_select_related = ("batch", "redeemed_by", "redeemed_organization")
    exclude = ("code_hash",)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)


# --- Plans and subscriptions ----------------------------------------------------------------

# (limit field, unit field, label) of a plan's three quotas, as the form shows them.
_QUOTAS = (
    ("window_5h_limit", "window_5h_unit", "5-hour window"),
    ("week_limit", "week_unit", "weekly window"),
    ("month_limit", "month_unit", "monthly quota"),
)


def _quota_text(limit: int | None, unit: str) -> str:
    """A stored quota as the form shows it: USD ("5", "12.5") or a request count."""
    if limit is None:
        return ""
    if unit == Plan.Unit.USD:
        return micros_to_usd(limit).rstrip("0").rstrip(".")
    return str(limit)


class PlanForm(forms.ModelForm[Plan]):
    """Money as people write it: the price in the plan's currency, USD quotas in USD
    (stored in minor units and micro-USD, like every amount)."""

    price_amount = forms.DecimalField(
        label="Price",
        max_digits=12,
        decimal_places=2,
        min_value=0,
        help_text="per interval, in the plan's currency, e.g. 20 or 19.90",
    )
    covered = forms.CharField(
        label="Covered models",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One model or shell-style pattern per line (claude-*, gpt-4o); empty: all.",
    )
    window_5h = forms.CharField(label="5-hour window", required=False)
    week = forms.CharField(label="Weekly window", required=False)
    month = forms.CharField(label="Monthly quota", required=False)

    class Meta:
        model = Plan
        fields = (
            "name",
            "slug",
            "description",
            "currency",
            "interval",
            "pricing_group",
            "window_5h_unit",
            "week_unit",
            "month_unit",
            "active",
            "sort",
        )

    _LIMITS = (("window_5h", _QUOTAS[0]), ("week", _QUOTAS[1]), ("month", _QUOTAS[2]))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        help_text = (
            "USD of usage (e.g. 5) or a number of requests, as the unit says; empty: no limit"
        )
        for name, _quota in self._LIMITS:
            self.fields[name].help_text = help_text
        plan = self.instance
        if plan.pk:
            self.initial["price_amount"] = price_from_minor(plan.price, plan.currency)
            self.initial["covered"] = "\n".join(plan.covered_models)
            for name, (limit, unit, _label) in self._LIMITS:
                self.initial[name] = _quota_text(getattr(plan, limit), getattr(plan, unit))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        currency = (data.get("currency") or "usd").lower()
        data["currency"] = currency
        self.instance.currency = currency
        if data.get("price_amount") is not None:
            try:
                self.instance.price = price_to_minor(data["price_amount"], currency)
            except ValueError as exc:
                self.add_error("price_amount", str(exc))
        self.instance.covered_models = [
            line.strip() for line in (data.get("covered") or "").splitlines() if line.strip()
        ]
        for name, (limit, unit, _label) in self._LIMITS:
            raw = (data.get(name) or "").strip()
            value: int | None = None
            if raw:
                try:
                    value = usd_to_micros(raw) if data.get(unit) == Plan.Unit.USD else int(raw)
                except (InvalidAmount, ValueError):
                    self.add_error(
                        name, "Enter USD (e.g. 5 or 12.50) or a whole number of requests."
                    )
                    continue
                if value <= 0:
                    self.add_error(name, "A limit is positive; leave it empty for none.")
                    continue
            setattr(self.instance, limit, value)
        return data


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin[Plan]):
    form = PlanForm
    list_display = ("name", "slug", "price_display", "interval", "pricing_group", "quotas",
                    "active", "subscribers", "sort")  # fmt: skip
    list_filter = ("active", "interval")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (None, {"fields": ("name", "slug", "description", "active", "sort")}),
        ("Price", {"fields": ("price_amount", "currency", "interval")}),
        ("What it grants", {"fields": ("pricing_group", "covered")}),
        (
            "Quotas",
            {
                "fields": (
                    ("window_5h", "window_5h_unit"),
                    ("week", "week_unit"),
                    ("month", "month_unit"),
                ),
                "description": "Rolling 5 hours, rolling 7 days, calendar month (UTC); usage "
                "is priced with the normal price sheet (docs/plans.md).",
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> Any:
        return (
            super()
            .get_queryset(request)
            .select_related("pricing_group")
            .annotate(n_current=Count("subscriptions", filter=Q(subscriptions__status__in=CURRENT)))
        )

    @admin.display(description="price")
    def price_display(self, obj: Plan) -> str:
        return f"{price_from_minor(obj.price, obj.currency)} {obj.currency.upper()}"

    @admin.display(description="quotas")
    def quotas(self, obj: Plan) -> str:
        parts = []
        for limit, unit, label in _QUOTAS:
            value = getattr(obj, limit)
            if value is not None:
                shown = _quota_text(value, getattr(obj, unit))
                parts.append(f"{label} {shown} {'USD' if getattr(obj, unit) == 'usd' else 'req'}")
        return "; ".join(parts) or "unlimited"

    @admin.display(description="current subscribers")
    def subscribers(self, obj: Any) -> int:
        return int(obj.n_current)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Subscriptions and codes keep their plan (PROTECT); retire a plan with "active".
        return bool(request.user.is_superuser) and (
            obj is None or not Subscription.objects.filter(plan=obj).exists()
        )


class GrantForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.all())
    plan = forms.ModelChoiceField(queryset=Plan.objects.all())
    days = forms.IntegerField(min_value=1, max_value=3660, initial=30)

    def __init__(self, *args: Any, admin_site: admin.AdminSite, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A lookup by id, not a list of every organization.
        relation = Subscription._meta.get_field("organization").remote_field
        self.fields["organization"].widget = ForeignKeyRawIdWidget(relation, admin_site)


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin[Subscription]):
    list_display = ("pk", "organization", "plan", "status", "current_period_start",
                    "current_period_end", "provider", "cancel_at_period_end",
                    "grace_until")  # fmt: skip
    list_filter = ("status", "provider", "plan")
    search_fields = ("organization__name", "provider_ref")
    list_select_related = ("organization", "plan")
    actions = ("cancel_now",)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "grant/",
                self.admin_site.admin_view(self.grant_view),
                name="billing_subscription_grant",
            )
        ]
        return custom + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if request.user.is_superuser:
            url = reverse("admin:billing_subscription_grant")
            messages.info(
                request, format_html('<a href="{}">Grant a plan to an organization</a>', url)
            )
        return super().changelist_view(request, extra_context)

    @admin.action(description="Cancel now (Stripe subscriptions are canceled there too)")
    def cancel_now(self, request: HttpRequest, queryset: Any) -> None:
        if not request.user.is_superuser:
            messages.error(request, "Only superusers may cancel subscriptions.")
            return
        for subscription in queryset.select_related("plan", "organization"):
            try:
                subscription_cancel(
                    subscription=subscription, actor=request.user, at_period_end=False
                )
            except (SubscriptionError, ProviderError, ProviderUnavailable) as exc:
                messages.error(request, f"Subscription {subscription.pk}: {exc}")
            else:
                messages.success(request, f"Subscription {subscription.pk} canceled.")

    def grant_view(self, request: HttpRequest) -> HttpResponse:
        changelist = reverse("admin:billing_subscription_changelist")
        if not request.user.is_superuser:
            messages.error(request, "Only superusers may grant plans.")
            return HttpResponseRedirect(changelist)
        form = GrantForm(request.POST or None, admin_site=self.admin_site)
        if request.method == "POST" and form.is_valid():
            try:
                subscription = subscription_grant(
                    organization=form.cleaned_data["organization"],
                    plan=form.cleaned_data["plan"],
                    days=form.cleaned_data["days"],
                    provider=Subscription.Provider.ADMIN,
                    actor=request.user,
                )
            except SubscriptionError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request,
                    f"{subscription.plan} for {subscription.organization} until "
                    f"{subscription.current_period_end:%Y-%m-%d %H:%M} UTC.",
                )
                return HttpResponseRedirect(changelist)
        context = {
            **self.admin_site.each_context(request),
            "title": "Grant a plan",
            "form": form,
            "media": self.media + form.media,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/billing/subscription_grant.html", context)


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdmin[CreditNote]):
    """Issued with their refund and never edited: a mistake is corrected by a new document,
    as ledger rows are."""

    list_display = ("number", "organization", "credit", "amount", "currency", "issued_at")
    list_filter = ("currency",)
    search_fields = ("=number", "organization__name", "reason")
    raw_id_fields = ("organization", "ledger_entry", "topup")
    date_hierarchy = "issued_at"


class InvoiceReceivedForm(forms.Form):
    reference = forms.CharField(
        max_length=200, help_text="The bank transfer's reference, as on the statement."
    )


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin[Invoice]):
    """Issued on the 1st (billing/invoices.py). Staff with the "change invoice" permission
    record a bank transfer here: the wallet is credited once and a suspension lifted."""

    list_display = ("number", "organization", "amount_usd", "state", "issued_at", "due_at",
                    "paid_at", "payment_reference", "received_link")  # fmt: skip
    list_filter = ("state",)
    search_fields = ("=number", "organization__name", "payment_reference")
    raw_id_fields = ("organization", "statement", "paid_by")
    list_select_related = ("organization",)
    date_hierarchy = "issued_at"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)

    @admin.display(description="amount (USD)")
    def amount_usd(self, obj: Invoice) -> str:
        return micros_to_usd(obj.amount)

    @admin.display(description="")
    def received_link(self, obj: Invoice) -> str:
        if obj.state != Invoice.State.OPEN:
            return ""
        url = reverse("admin:billing_invoice_received", args=[obj.pk])
        return format_html('<a href="{}">Mark received (bank transfer)</a>', url)

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<int:pk>/received/",
                self.admin_site.admin_view(self.received_view),
                name="billing_invoice_received",
            )
        ]
        return custom + super().get_urls()

    def received_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        changelist = reverse("admin:billing_invoice_changelist")
        if not request.user.has_perm("billing.change_invoice"):
            messages.error(request, "You may not record invoice payments.")
            return HttpResponseRedirect(changelist)
        invoice = get_object_or_404(Invoice.objects.select_related("organization"), pk=pk)
        label = invoice_label(invoice.number)
        form = InvoiceReceivedForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            paid = invoice_mark_received(
                invoice_id=invoice.pk,
                reference=form.cleaned_data["reference"],
                marked_by=cast(User, request.user),
            )
            if paid:
                messages.success(
                    request, f"{label} paid: {micros_to_usd(invoice.amount)} USD credited."
                )
            else:  # a double submission, or paid by its top-up meanwhile: nothing credited
                messages.warning(
                    request,
                    f"{label} was no longer open; nothing credited. Record money received "
                    "twice as a balance adjustment.",
                )
            return HttpResponseRedirect(changelist)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Mark {label} received: {invoice.organization}",
            "invoice": invoice,
            "amount": micros_to_usd(invoice.amount),
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "billing/invoice_admin_received.html", context)
