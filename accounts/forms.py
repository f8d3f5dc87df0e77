"""Forms for sign-up extras (name, legal acceptance, Turnstile), the settings page, and the
caps of keys and organizations (portal and admin).

allauth imports this module for SIGNUP_FORM_CLASS while building its own forms, so nothing
here may import allauth.account.forms (see accounts/signin_form.py)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, cast

from django import forms
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from accounts.legal import legal_accept, legal_documents_current
from accounts.models import User
from accounts.services import CAP_FIELDS, MAX_REQUEST_CAP, Caps
from accounts.time_zones import zone_choices
from accounts.turnstile import TurnstileFormMixin
from billing.money import MAX_USD, MICROS_PER_USD, InvalidAmount, usd_to_micros
from logs.models import AuditEvent
from logs.services import audit_record


class SignupForm(TurnstileFormMixin, forms.Form):
    """allauth's SIGNUP_FORM_CLASS: its fields join the email and password fields."""

    field_order = ("email", "name", "password1", "password2", "accept_legal", "turnstile")

    name = forms.CharField(label=_("Name"), max_length=150, required=False)
    accept_legal = forms.BooleanField(
        label=_("I accept the Terms of Service and the Privacy Policy"),
        required=True,
        # Django renders help text as HTML; this one is ours, not the visitor's.
        help_text=_(
            'Read the <a href="/legal/terms/" target="_blank">Terms of Service</a> and the '
            '<a href="/legal/privacy/" target="_blank">Privacy Policy</a>.'
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Nothing to accept until an admin publishes the documents.
        self.legal_documents = legal_documents_current()
        if not self.legal_documents:
            del self.fields["accept_legal"]
        self.add_turnstile()

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        error = self.turnstile_error(ip=None)
        if error is not None:
            raise error
        return cleaned

    def signup(self, request: HttpRequest, user: User) -> None:
        name = self.cleaned_data.get("name", "").strip()
        if name:
            user.name = name
            user.save(update_fields=["name"])
        if self.legal_documents:
            legal_accept(user=user, documents=self.legal_documents)
            audit_record(
                kind=AuditEvent.Kind.LEGAL_ACCEPTED,
                user=user,
                request=request,
                documents=[f"{d.kind}:{d.version}" for d in self.legal_documents],
            )


class ProfileForm(forms.ModelForm[User]):
    # A select of the tz database's zones; blank follows the browser (TimeZoneMiddleware).
    time_zone = forms.ChoiceField(label=_("Time zone"), required=False)

    class Meta:
        model = User
        fields = ("name", "time_zone")
        labels = {"name": _("Name")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast(forms.ChoiceField, self.fields["time_zone"])
        field.choices = [("", _("Browser default")), *zone_choices()]


class LegalAcceptForm(forms.Form):
    accept = forms.BooleanField(label=_("I accept these documents"), required=True)


# --- Caps of keys and organizations -----------------------------------------------------


def usd_text(micros: int) -> str:
    """Micro-USD as a person would type it back: 2500000 -> "2.5", 5000000 -> "5"."""
    return format((Decimal(micros) / MICROS_PER_USD).normalize(), "f")


class UsdAmountField(forms.Field):
    """An amount typed in USD ("5", "2.50"), cleaned to micro-USD: more than 0, at most
    MAX_USD, at most six decimals (billing.money's precision). Empty is None: no cap."""

    widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"})
    default_error_messages = {
        "invalid": _("Enter an amount in USD, like 5 or 2.50."),
        "not_positive": _("Enter an amount greater than 0, or leave it empty for no cap."),
        "too_large": _("Enter at most %(max)s USD."),
        "too_precise": _("Enter at most 6 decimal places."),
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> int | None:
        text = str(value if value is not None else "").strip()
        if not text:
            return None
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
        if not amount.is_finite():
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        if amount <= 0:
            raise forms.ValidationError(self.error_messages["not_positive"], code="not_positive")
        if amount > MAX_USD:
            raise forms.ValidationError(
                self.error_messages["too_large"], code="too_large", params={"max": f"{MAX_USD:,}"}
            )
        try:
            return usd_to_micros(amount)
        except InvalidAmount:
            raise forms.ValidationError(
                self.error_messages["too_precise"], code="too_precise"
            ) from None

    def prepare_value(self, value: Any) -> Any:
        # Initial values are micro-USD; a bound form shows back what was typed.
        if isinstance(value, int) and not isinstance(value, bool):
            return usd_text(value)
        return value


def _count_field(label: Any, help_text: Any) -> forms.IntegerField:
    return forms.IntegerField(
        label=label, help_text=help_text, min_value=1, max_value=MAX_REQUEST_CAP, required=False
    )


class CapsForm(forms.Form):
    """The caps of a key or of an organization; every one optional (empty: no cap)."""

    requests_per_day = _count_field(_("Requests per day"), _("Counted per calendar day, UTC."))
    max_concurrent = _count_field(
        _("Requests in flight at once"), _("Requests answered at the same time.")
    )
    spend_cap_day = UsdAmountField(label=_("Spend per day (USD)"))
    spend_cap_week = UsdAmountField(label=_("Spend per week (USD)"))
    spend_cap_month = UsdAmountField(label=_("Spend per month (USD)"))

    def caps(self) -> Caps:
        """The cleaned caps: micro-USD and request counts, None for no cap."""
        data = self.cleaned_data
        return Caps(
            requests_per_day=data.get("requests_per_day"),
            max_concurrent=data.get("max_concurrent"),
            spend_cap_day=data.get("spend_cap_day"),
            spend_cap_week=data.get("spend_cap_week"),
            spend_cap_month=data.get("spend_cap_month"),
        )

    def cap_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in CAP_FIELDS]


class KeyCapsForm(CapsForm):
    """A key's caps and its cost switch, as the key pages post them."""

    show_cost = forms.BooleanField(
        label=_("Include the cost in answers"),
        help_text=_(
            "Answers carry what each call cost: the X-TokenHub-Cost header and usage.cost."
        ),
        required=False,
    )


class OrganizationCapsForm(CapsForm):
    """The organization's caps (across all its keys) and its plan fallback."""

    plan_fallback = forms.BooleanField(
        label=_("When the plan does not cover a request, pay from the balance"),
        help_text=_(
            "Off: requests the plan does not cover, or beyond a full window, are refused "
            "until the window frees up."
        ),
        required=False,
    )
