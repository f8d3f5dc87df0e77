"""Step 2: may this key make this call now? Status, expiry, IP, model scope, rate limits."""

from __future__ import annotations

import datetime as dt
import fnmatch

from django.conf import settings

from accounts.network import client_ip as resolve_client_ip
from accounts.network import ip_allowed
from relay.asgi_io import Request
from relay.catalog import KeyInfo
from relay.errors import forbidden, invoice_overdue, unauthorized
from relay.ratelimit import Limit, limiter


def client_ip(request: Request) -> str | None:
    return resolve_client_ip(request.client_host, request.headers.get("x-forwarded-for", ""))


def model_allowed(key: KeyInfo, model: str) -> bool:
    if not key.verified and verified_only(model):
        return False
    if not key.allowed_models:
        return True
    return any(fnmatch.fnmatchcase(model, pattern) for pattern in key.allowed_models)


def verified_only(model: str) -> bool:
    """MODEL is one verification unlocks (VERIFIED_ONLY_MODELS, shell-style patterns)."""
    return any(fnmatch.fnmatchcase(model, p) for p in settings.VERIFIED_ONLY_MODELS)


def authorize(key: KeyInfo, ip: str | None, now: dt.datetime) -> None:
    if not key.active:
        raise unauthorized("This API key has been disabled or revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise unauthorized("This API key has expired.")
    if key.allowed_networks and not ip_allowed(ip, key.allowed_networks):
        raise forbidden(f"Your IP address {ip} is not allowed to use this key.", "ip_not_allowed")
    if key.overdue_invoice:  # last: only a caller who may use the key learns of the invoice
        billing_url = settings.SITE_URL.rstrip("/") + "/dashboard/billing/"
        raise invoice_overdue(key.overdue_invoice, billing_url)


def authorize_model(key: KeyInfo, model: str) -> None:
    if not key.verified and verified_only(model):
        raise forbidden(
            f"The model '{model[:200]}' is available to verified organizations only: ask for "
            "verification on your organization's page.",
            "verification_required",
        )
    if not model_allowed(key, model):
        raise forbidden(
            f"This API key is not allowed to use the model '{model[:200]}'.", "model_not_allowed"
        )


def tpm_keys(key: KeyInfo) -> list[str]:
    keys = []
    if key.tpm_limit:
        keys.append(f"k{key.id}:tpm")
    if key.org_tpm_limit:
        keys.append(f"o{key.organization_id}:tpm")
    return keys


async def check_rate_limits(key: KeyInfo, estimated_tokens: int) -> None:
    limits: list[Limit] = []
    if key.rpm_limit:
        limits.append(Limit("requests per minute for this key", f"k{key.id}:rpm", key.rpm_limit, 1))
    if key.tpm_limit:
        limits.append(
            Limit(
                "tokens per minute for this key", f"k{key.id}:tpm", key.tpm_limit, estimated_tokens
            )
        )
    if key.org_rpm_limit:
        limits.append(
            Limit(
                "requests per minute for your organization",
                f"o{key.organization_id}:rpm",
                key.org_rpm_limit,
                1,
            )
        )
    if key.org_tpm_limit:
        limits.append(
            Limit(
                "tokens per minute for your organization",
                f"o{key.organization_id}:tpm",
                key.org_tpm_limit,
                estimated_tokens,
            )
        )
    await limiter.acquire(limits)
