"""allauth's sign-in form with Cloudflare Turnstile (ACCOUNT_FORMS["login"])."""

from __future__ import annotations

from typing import Any

from allauth.account.forms import LoginForm as AllauthLoginForm

from accounts.audit import request_ip
from accounts.turnstile import TurnstileFormMixin


class LoginForm(TurnstileFormMixin, AllauthLoginForm):
    """allauth's sign-in form with the Turnstile challenge, checked before the password."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_turnstile()

    def clean(self) -> dict[str, Any]:
        ip = request_ip(self.request) if self.request is not None else None
        error = self.turnstile_error(ip=ip)
        if error is not None:
            raise error
        cleaned: dict[str, Any] = super().clean()
        return cleaned
