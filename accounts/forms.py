"""Forms for sign-up extras (name, legal acceptance, Turnstile) and the settings page.

allauth imports this module for SIGNUP_FORM_CLASS while building its own forms, so nothing
here may import allauth.account.forms (see accounts/signin_form.py)."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from accounts.legal import legal_accept, legal_documents_current
from accounts.models import User
from accounts.time_zones import zone_choices
from accounts.turnstile import TurnstileFormMixin
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
