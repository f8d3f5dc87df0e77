"""Cloudflare Turnstile on sign-up and sign-in, only when TURNSTILE_SITE_KEY and
TURNSTILE_SECRET_KEY are set. The widget posts a token (`cf-turnstile-response`) that the
server checks with Cloudflare's siteverify endpoint; any failure refuses the form."""

from __future__ import annotations

import logging
from typing import Any

import requests
from django import forms
from django.conf import settings
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

log = logging.getLogger(__name__)
RESPONSE_FIELD = "cf-turnstile-response"
SCRIPT_URL = "https://challenges.cloudflare.com/turnstile/v0/api.js"


def turnstile_enabled() -> bool:
    return bool(settings.TURNSTILE_SITE_KEY and settings.TURNSTILE_SECRET_KEY)


def turnstile_verify(*, token: str, ip: str | None = None) -> bool:
    """Ask Cloudflare whether TOKEN is a solved challenge. Fails closed on any error."""
    if not token:
        return False
    data = {"secret": settings.TURNSTILE_SECRET_KEY, "response": token}
    if ip:
        data["remoteip"] = ip
    try:
        reply = requests.post(settings.TURNSTILE_VERIFY_URL, data=data, timeout=5)
        return bool(reply.json().get("success"))
    except (requests.RequestException, ValueError):
        log.warning("turnstile verification unavailable")
        return False


class TurnstileWidget(forms.Widget):
    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        return format_html(
            '<div class="cf-turnstile" data-sitekey="{}"></div>'
            '<script src="{}" async defer></script>',
            settings.TURNSTILE_SITE_KEY,
            SCRIPT_URL,
        )


class TurnstileFormMixin:
    """Adds the challenge to a form when Turnstile is configured and checks it in clean()."""

    fields: dict[str, forms.Field]
    data: Any

    def add_turnstile(self) -> None:
        if turnstile_enabled():
            self.fields["turnstile"] = forms.CharField(
                label="", required=False, widget=TurnstileWidget()
            )

    def turnstile_error(self, ip: str | None) -> forms.ValidationError | None:
        if "turnstile" not in self.fields:
            return None
        if turnstile_verify(token=str(self.data.get(RESPONSE_FIELD, "")), ip=ip):
            return None
        return forms.ValidationError(_("Please complete the check that you are not a robot."))
