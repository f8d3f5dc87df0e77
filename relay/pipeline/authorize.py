"""Step 2: may this key make this call now? Status, expiry, IP, model scope, rate limits."""

from __future__ import annotations

import datetime as dt
import fnmatch
import ipaddress

from django.conf import settings

from relay.asgi_io import Request
from relay.catalog import KeyInfo
from relay.errors import RelayError, forbidden, unauthorized
from relay.ratelimit import Limit, limiter


def client_ip(request: Request) -> str | None:
    """The socket peer, or the X-Forwarded-For hop just before our trusted proxies.

    The ASGI server must not rewrite the peer itself (uvicorn runs with
    --no-proxy-headers): TRUSTED_PROXIES is the only place that decides.
    """
    peer = request.client_host
    trusted = settings.TRUSTED_PROXIES
    if not trusted or peer is None or peer not in trusted:
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    # Walk from the nearest hop outwards, skipping our own proxies.
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return peer


def model_allowed(key: KeyInfo, model: str) -> bool:
    if not key.allowed_models:
        return True
    return any(fnmatch.fnmatchcase(model, pattern) for pattern in key.allowed_models)


def authorize(key: KeyInfo, ip: str | None, now: dt.datetime) -> None:
    if not key.active:
        raise unauthorized("This API key has been disabled or revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise unauthorized("This API key has expired.")
    if key.allowed_networks:
        try:
            address = ipaddress.ip_address(ip or "")
        except ValueError:
            raise forbidden(
                "Your IP address is not allowed to use this key.", "ip_not_allowed"
            ) from None
        if not any(address in net for net in key.allowed_networks):
            raise forbidden(
                f"Your IP address {address} is not allowed to use this key.", "ip_not_allowed"
            )


def authorize_model(key: KeyInfo, model: str) -> None:
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


__all__ = ["RelayError", "authorize", "authorize_model", "check_rate_limits", "client_ip"]
