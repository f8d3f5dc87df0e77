"""Forms for sign-up extras (name, legal acceptance, Turnstile), the settings page, and the
caps of keys and organizations (portal and admin).

allauth imports this module for SIGNUP_FORM_CLASS while building its own forms, so nothing
here may import allauth.account.forms (see accounts/signin_form.py)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from django import forms
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from accounts.audit import audit_record
from accounts.legal import legal_accept, legal_documents_current
from accounts.models import AuditEvent, User
from accounts.services import CAP_FIELDS, MAX_REQUEST_CAP, Caps
from accounts.time_zones import zone_choices
from accounts.turnstile import TurnstileFormMixin
from money import MAX_USD, MICROS_PER_USD, InvalidAmount, usd_to_micros


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
    MAX_USD, at most six decimals (money's precision). Empty is None: no cap."""

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


# --- Invoice details ----------------------------------------------------------------------
# The organization's details printed on receipts, statements and credit notes. The portal
# form and the API (accounts/serializers.py) clean them with the same functions below.

# ISO 3166-1 alpha-2, the officially assigned codes (as in the tz database's iso3166.tab).
_ISO_3166 = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
COUNTRY_CODES = frozenset(_ISO_3166.split())
LEGAL_NAME_MAX = 200
ADDRESS_MAX = 1000
TAX_ID_MAX = 64
# Control characters, and the separators that Python's splitlines() also breaks lines at.
_NOT_IN_TEXT = frozenset(("Cc", "Cs", "Zl", "Zp"))


def _line_breaks_and_controls(value: str) -> set[str]:
    return {c for c in value if unicodedata.category(c) in _NOT_IN_TEXT}


def country_clean(value: str) -> str:
    """An ISO 3166-1 alpha-2 code in any case, upper-cased; empty for none."""
    code = value.strip().upper()
    if code and code not in COUNTRY_CODES:
        raise forms.ValidationError(
            _("Enter a two-letter ISO 3166 country code, such as DE or US."), code="country"
        )
    return code


def tax_id_clean(value: str) -> str:
    """A VAT number, EIN, ...: printable characters only, at most 64; empty for none."""
    tax_id = value.strip()
    if len(tax_id) > TAX_ID_MAX:
        raise forms.ValidationError(
            _("A tax ID has at most %(max)d characters.") % {"max": TAX_ID_MAX}, code="max_length"
        )
    if not tax_id.isprintable():
        raise forms.ValidationError(
            _("A tax ID has only printable characters."), code="unprintable"
        )
    return tax_id


def legal_name_clean(value: str) -> str:
    """One line of at most 200 characters, without control characters."""
    name = value.strip()
    if len(name) > LEGAL_NAME_MAX:
        raise forms.ValidationError(
            _("A legal name has at most %(max)d characters.") % {"max": LEGAL_NAME_MAX},
            code="max_length",
        )
    if _line_breaks_and_controls(name):
        raise forms.ValidationError(
            _("A legal name is one line without control characters."), code="control"
        )
    return name


def billing_address_clean(value: str) -> str:
    """At most 1000 characters on as many lines as needed (Windows and old Mac line ends
    become newlines); no other control character. Blank lines at either end go."""
    address = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(address) > ADDRESS_MAX:
        raise forms.ValidationError(
            _("An address has at most %(max)d characters.") % {"max": ADDRESS_MAX},
            code="max_length",
        )
    if _line_breaks_and_controls(address) - {"\n"}:
        raise forms.ValidationError(
            _("An address has no control characters other than line breaks."), code="control"
        )
    return address


INVOICE_CLEANERS: dict[str, Callable[[str], str]] = {
    "legal_name": legal_name_clean,
    "billing_address": billing_address_clean,
    "billing_country": country_clean,
    "tax_id": tax_id_clean,
}


class InvoiceDetailsForm(forms.Form):
    """The organization settings page's invoice details."""

    legal_name = forms.CharField(
        label=_("Legal name"),
        max_length=LEGAL_NAME_MAX,
        required=False,
        help_text=_("As it should appear on receipts; the organization's name if empty."),
    )
    billing_address = forms.CharField(  # its length is checked once line ends are counted
        label=_("Billing address"),
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 4, "maxlength": ADDRESS_MAX}),
    )
    billing_country = forms.CharField(
        label=_("Country"),
        max_length=2,
        required=False,
        help_text=_("Two-letter ISO 3166 code, such as DE or US."),
    )
    tax_id = forms.CharField(
        label=_("Tax ID"),
        max_length=TAX_ID_MAX,
        required=False,
        help_text=_("VAT number, EIN, ..."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for field, cleaner in INVOICE_CLEANERS.items():
            if field in data:
                try:
                    data[field] = cleaner(data[field])
                except forms.ValidationError as exc:
                    self.add_error(field, exc)
        return data
