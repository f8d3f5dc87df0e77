"""allauth adapters: people who sign up (by email or a provider) get what user_create gives.

Every new user gets a personal organization (owner) with an empty wallet in the same
transaction as the user row, whichever way they arrive.
"""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.forms import BaseForm
from django.http import HttpRequest

from accounts.audit import request_ip
from accounts.models import User
from accounts.services import organization_create_personal
from sealed.fields import decrypt, encrypt


class AccountAdapter(DefaultAccountAdapter):
    def save_user(
        self, request: HttpRequest, user: AbstractBaseUser, form: BaseForm, commit: bool = True
    ) -> AbstractBaseUser:
        if not commit:
            unsaved: AbstractBaseUser = super().save_user(request, user, form, commit=False)
            return unsaved
        with transaction.atomic():
            saved = super().save_user(request, user, form, commit=True)
            assert isinstance(saved, User)  # noqa: S101 - AUTH_USER_MODEL
            if saved.email:
                saved.email = saved.email.lower()
                saved.save(update_fields=["email"])
            organization_create_personal(user=saved)
        return saved

    def get_client_ip(self, request: HttpRequest) -> str:
        # The same rule as the relay and the audit trail: X-Forwarded-For from
        # TRUSTED_PROXIES only, so rate limits cannot be dodged with a forged header.
        return request_ip(request) or "0.0.0.0"  # noqa: S104 - a rate-limit bucket, not a bind


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def save_user(
        self, request: HttpRequest, sociallogin: SocialLogin, form: Any = None
    ) -> AbstractBaseUser:
        with transaction.atomic():
            user = super().save_user(request, sociallogin, form)
            assert isinstance(user, User)  # noqa: S101 - AUTH_USER_MODEL
            organization_create_personal(user=user)
        return user

    def populate_user(
        self, request: HttpRequest, sociallogin: SocialLogin, data: dict[str, Any]
    ) -> AbstractBaseUser:
        user = super().populate_user(request, sociallogin, data)
        assert isinstance(user, User)  # noqa: S101 - AUTH_USER_MODEL
        full = data.get("name") or " ".join(
            part for part in (data.get("first_name"), data.get("last_name")) if part
        )
        user.name = str(full or "")[:150]
        user.email = (user.email or "").lower()
        return user


class MFAAdapter(DefaultMFAAdapter):
    """TOTP secrets and recovery-code seeds are encrypted at rest with TOKENHUB_ENCRYPTION_KEYS."""

    def encrypt(self, text: str) -> str:
        return encrypt(text)

    def decrypt(self, encrypted_text: str) -> str:
        if encrypted_text.startswith("fernet:"):
            return decrypt(encrypted_text)
        return encrypted_text  # stored before encryption was configured
