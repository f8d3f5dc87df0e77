"""DRF authentication for the management API: an API key carrying the `manage` scope."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from accounts.keysecrets import hash_secret, looks_like_key
from accounts.models import ApiKey
from accounts.network import client_ip, ip_allowed


class ManagementKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer sk-th-…`; the request acts as the user who owns the key."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != b"bearer":
            return None
        secret = header[1].decode("latin-1")
        if not looks_like_key(secret):
            return None
        key = (
            ApiKey.objects.select_related("created_by", "organization")
            .filter(key_hash=hash_secret(secret))
            .first()
        )
        if key is None or not key.is_usable(timezone.now()):
            raise exceptions.AuthenticationFailed(_("invalid, disabled or expired API key"))
        if key.allowed_ips:
            ip = client_ip(
                request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR", "")
            )
            networks = [ipaddress.ip_network(n, strict=False) for n in key.allowed_ips]
            if not ip_allowed(ip, networks):
                raise exceptions.PermissionDenied(_("your IP address may not use this API key"))
        if ApiKey.Scope.MANAGE not in key.scopes:
            raise exceptions.PermissionDenied(_("this API key lacks the 'manage' scope"))
        if key.created_by is None or not key.created_by.is_active:
            raise exceptions.AuthenticationFailed(_("the key's owner is inactive"))
        return key.created_by, key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
