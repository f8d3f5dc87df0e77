"""Receivers that turn Django's and allauth's auth signals into audit events.

Connected in AccountsConfig.ready(). Each receiver records one event through
accounts.audit.audit_record; none stores an email address, password or token.
"""

from __future__ import annotations

from typing import Any

from allauth.account import signals as account_signals
from allauth.account.adapter import get_adapter as get_account_adapter
from allauth.account.models import EmailAddress
from allauth.mfa import signals as mfa_signals
from allauth.socialaccount import signals as social_signals
from django.contrib.auth import signals as auth_signals
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.audit import audit_ip_seen_before, audit_record, request_ip
from accounts.models import AuditEvent, User

Kind = AuditEvent.Kind


@receiver(auth_signals.user_logged_in)
def on_logged_in(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    if request is None:
        return
    ip = request_ip(request)
    had_signed_in = AuditEvent.objects.filter(user=user, kind=Kind.SIGN_IN).exists()
    event = audit_record(kind=Kind.SIGN_IN, user=user, request=request)
    if had_signed_in and not audit_ip_seen_before(user=user, ip=ip, before_pk=event.pk):
        audit_record(kind=Kind.SIGN_IN_NEW_IP, user=user, request=request)
        get_account_adapter(request).send_notification_mail("account/email/new_sign_in", user)


@receiver(auth_signals.user_login_failed)
def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # The attempted address is not stored: it may be a stranger's, or a typo of one.
    email = str(credentials.get("email") or credentials.get("username") or "").strip()
    user = User.objects.filter(email__iexact=email).first() if email else None
    audit_record(kind=Kind.SIGN_IN_FAILED, user=user, request=request)


@receiver(auth_signals.user_logged_out)
def on_logged_out(sender: Any, request: HttpRequest, user: User | None, **kwargs: Any) -> None:
    if user is not None:
        audit_record(kind=Kind.SIGN_OUT, user=user, request=request)


@receiver(mfa_signals.authentication_failed)
def on_mfa_failed(
    sender: Any, request: HttpRequest, user: User, authenticator: Any = None, **kwargs: Any
) -> None:
    method = getattr(authenticator, "type", "")
    audit_record(kind=Kind.SIGN_IN_FAILED, user=user, request=request, step="mfa", method=method)


@receiver(account_signals.user_signed_up)
def on_signed_up(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    audit_record(kind=Kind.SIGN_UP, user=user, request=request)


@receiver(account_signals.password_changed)
@receiver(account_signals.password_set)
def on_password_changed(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    audit_record(kind=Kind.PASSWORD_CHANGED, user=user, request=request)


@receiver(account_signals.password_reset)
def on_password_reset(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    audit_record(kind=Kind.PASSWORD_RESET, user=user, request=request)


@receiver(account_signals.email_confirmed)
def on_email_confirmed(
    sender: Any, request: HttpRequest, email_address: EmailAddress, **kwargs: Any
) -> None:
    user = User.objects.get(pk=email_address.user_id)
    audit_record(kind=Kind.EMAIL_VERIFIED, user=user, request=request)


@receiver(post_save, sender=EmailAddress)
def on_email_address_saved(sender: Any, instance: EmailAddress, **kwargs: Any) -> None:
    """Keep User.email_verified equal to "the primary address is verified"."""
    if instance.primary:
        User.objects.filter(pk=instance.user_id, email__iexact=instance.email).exclude(
            email_verified=instance.verified
        ).update(email_verified=instance.verified)


@receiver(mfa_signals.authenticator_added)
def on_authenticator_added(
    sender: Any, request: HttpRequest, user: User, authenticator: Any, **kwargs: Any
) -> None:
    audit_record(kind=Kind.MFA_ENABLED, user=user, request=request, method=authenticator.type)


@receiver(mfa_signals.authenticator_removed)
def on_authenticator_removed(
    sender: Any, request: HttpRequest, user: User, authenticator: Any, **kwargs: Any
) -> None:
    audit_record(kind=Kind.MFA_DISABLED, user=user, request=request, method=authenticator.type)


@receiver(mfa_signals.authenticator_reset)
def on_authenticator_reset(
    sender: Any, request: HttpRequest, user: User, authenticator: Any, **kwargs: Any
) -> None:
    audit_record(
        kind=Kind.RECOVERY_CODES_GENERATED, user=user, request=request, method=authenticator.type
    )


@receiver(social_signals.social_account_added)
def on_social_added(sender: Any, request: HttpRequest, sociallogin: Any, **kwargs: Any) -> None:
    account = sociallogin.account
    audit_record(
        kind=Kind.SOCIAL_LINKED, user=account.user, request=request, provider=account.provider
    )


@receiver(social_signals.social_account_removed)
def on_social_removed(sender: Any, request: HttpRequest, socialaccount: Any, **kwargs: Any) -> None:
    audit_record(
        kind=Kind.SOCIAL_UNLINKED,
        user=socialaccount.user,
        request=request,
        provider=socialaccount.provider,
    )
