"""Client addresses: who is calling (behind TRUSTED_PROXIES) and is that allowed."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(address: str) -> bool:
    """Is ADDRESS one of TRUSTED_PROXIES (addresses or CIDR networks)?"""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_ip(peer: str | None, forwarded_for: str) -> str | None:
    """The socket peer, or the X-Forwarded-For hop just before our trusted proxies.

    The ASGI server must not rewrite the peer itself (uvicorn runs with
    --no-proxy-headers): TRUSTED_PROXIES is the only place that decides.
    """
    if not settings.TRUSTED_PROXIES or peer is None or not _trusted(peer):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    # Walk from the nearest hop outwards, skipping our own proxies.
    for hop in reversed(hops):
        if not _trusted(hop):
            return hop
    return peer


def ip_allowed(ip: str | None, networks: Iterable[IPNetwork]) -> bool:
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return False
    return any(address in net for net in networks)
