"""Portal forms for billing (validation only; services do the writes)."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.utils.translation import gettext_lazy as _

from billing.models import Plan
from billing.providers import plan_sellers_configured, providers_configured
from money import InvalidAmount, usd_to_micros

PROVIDER_LABELS = {
    "stripe": _("Card (Stripe)"),
    "epay": _("Alipay / WeChat Pay (EPay)"),
    "demo": _("Demo payment (no money moves)"),
}


class TopUpForm(forms.Form):
    """A preset amount or a custom one; the custom amount wins when both are sent."""

    amount_usd = forms.DecimalField(
        label=_("Amount (USD)"), max_digits=12, decimal_places=2, min_value=0, required=False
    )
    custom_amount_usd = forms.DecimalField(
        label=_("Or another amount"), max_digits=12, decimal_places=2, min_value=0, required=False
    )
    provider = forms.ChoiceField(label=_("Pay with"))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        amount = data.get("custom_amount_usd") or data.get("amount_usd")
        if amount is None and not self.errors:
            raise forms.ValidationError(_("Choose or enter an amount."))
        data["amount"] = amount
        return data

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choice = cast(forms.ChoiceField, self.fields["provider"])
        choice.choices = [
            (name, PROVIDER_LABELS.get(name, name)) for name in providers_configured()
        ]


class RedeemForm(forms.Form):
    code = forms.CharField(label=_("Redemption code"), max_length=64)


class AlertForm(forms.Form):
    threshold_usd = forms.CharField(
        label=_("Email me when the balance falls below (USD)"),
        required=False,
        help_text=_("Leave empty to turn the alert off."),
    )

    def clean_threshold_usd(self) -> int | None:
        raw = (self.cleaned_data.get("threshold_usd") or "").strip()
        if not raw:
            return None
        try:
            micros = usd_to_micros(raw)
        except InvalidAmount:
            raise forms.ValidationError(_("Enter an amount in USD, e.g. 5 or 12.50.")) from None
        if micros <= 0:
            raise forms.ValidationError(_("The threshold must be positive."))
        return micros


class PlanSubscribeForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.filter(active=True))
    provider = forms.ChoiceField(label=_("Pay with"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choice = cast(forms.ChoiceField, self.fields["provider"])
        choice.choices = [
            (name, PROVIDER_LABELS.get(name, name)) for name in plan_sellers_configured()
        ]


class PlanChangeForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.filter(active=True), label=_("Change to"))
