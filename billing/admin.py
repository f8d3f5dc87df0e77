from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from billing.models import Hold, LedgerEntry, Price, PricingGroup, Wallet
from billing.money import InvalidAmount, micros_to_usd, usd_to_micros
from billing.services import wallet_adjust


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ("organization", "balance_usd", "held_usd", "updated_at", "adjust_link")
    search_fields = ("organization__name",)
    list_select_related = ("organization",)

    @admin.display(description="balance (USD)")
    def balance_usd(self, obj: Wallet) -> str:
        return micros_to_usd(obj.balance)

    @admin.display(description="held (USD)")
    def held_usd(self, obj: Wallet) -> str:
        return micros_to_usd(obj.held)

    @admin.display(description="")
    def adjust_link(self, obj: Wallet) -> str:
        url = reverse("admin:billing_wallet_adjust", args=[obj.pk])
        return format_html('<a href="{}">Adjust balance</a>', url)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<int:pk>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="billing_wallet_adjust",
            )
        ]
        return custom + super().get_urls()

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
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "wallet", "kind", "amount_usd", "balance_after_usd", "source")
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
class HoldAdmin(ReadOnlyAdmin):
    list_display = ("reference", "wallet", "amount", "created_at", "expires_at")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)


@admin.register(PricingGroup)
class PricingGroupAdmin(admin.ModelAdmin[PricingGroup]):
    list_display = ("name", "multiplier", "description")


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin[Price]):
    list_display = (
        "model",
        "input_per_1m",
        "output_per_1m",
        "cache_read_per_1m",
        "cache_write_per_1m",
        "per_request",
        "per_image",
        "per_second",
        "updated_at",
    )
    search_fields = ("model",)
