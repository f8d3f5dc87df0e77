"""In-process snapshots of keys, channels and prices, so the hot path reads no database.

Key snapshots live at most RELAY_KEY_CACHE_SECONDS (1 s): a revoked key stops working on
every process within that time without any cross-process signal. Channels and prices
are reloaded as a whole every RELAY_CATALOG_SECONDS.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Q

from accounts.network import IPNetwork
from billing.caps import Cap, key_caps
from billing.plans import PlanInfo, plan_info, subscription_current
from billing.pricing import PriceSheet
from relay.db import in_db_thread

if TYPE_CHECKING:
    from relay.models import Channel

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: int
    organization_id: int
    wallet_id: int
    active: bool
    expires_at: dt.datetime | None
    scopes: frozenset[str]
    allowed_models: tuple[str, ...]
    allowed_networks: tuple[IPNetwork, ...]
    rpm_limit: int | None
    tpm_limit: int | None
    org_rpm_limit: int | None
    org_tpm_limit: int | None
    group: str
    multiplier: Decimal
    store_responses: bool = False  # the organization keeps Responses conversations
    show_cost: bool = True  # answers carry the call's cost
    caps: tuple[Cap, ...] = ()  # the key's and its organization's (billing/caps.py)
    plan: PlanInfo | None = None  # the organization's current subscription
    plan_fallback: bool = True  # beyond the plan, pay from the balance (else 429)
    overdue_invoice: str = ""  # an unpaid invoice's number: every request is refused (402)
    verified: bool = False  # staff verified the organization (accounts/verification)


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: int
    name: str
    type: str
    base_url: str
    keys: tuple[str, ...]
    models: frozenset[str]
    model_map: dict[str, str]
    groups: frozenset[str]
    priority: int
    weight: int
    options: dict[str, Any] = field(default_factory=dict)
    strict_fields: bool = False
    # What the operator pays this channel's upstream (relay.CostPrice by upstream model,
    # this channel's rows over its type's), times cost_multiplier.
    costs: Mapping[str, PriceSheet] = field(default_factory=dict)
    cost_multiplier: Decimal = Decimal(1)

    def upstream_model(self, model: str) -> str:
        return self.model_map.get(model, model)


def _load_key(key_hash: str) -> KeyInfo | None:
    from accounts.models import ApiKey
    from billing.models import PricingGroup
    from billing.services import DEFAULT_GROUP

    key = (
        ApiKey.objects.select_related(
            "organization__wallet", "organization__pricing_group", "pricing_group"
        )
        .filter(key_hash=key_hash)
        .first()
    )
    if key is None:
        return None
    org = key.organization
    subscription = subscription_current(organization_id=org.pk)
    plan_group = subscription.plan.pricing_group if subscription else None
    verified = org.verified_at is not None
    # A key's own group wins, then the plan's, then the organization's, then the one
    # verification unlocks (VERIFIED_PRICING_GROUP).
    group = key.pricing_group or plan_group or org.pricing_group
    if group is None and verified and settings.VERIFIED_PRICING_GROUP:
        group = PricingGroup.objects.filter(name=settings.VERIFIED_PRICING_GROUP).first()
    return KeyInfo(
        id=key.pk,
        organization_id=org.pk,
        wallet_id=org.wallet.pk,
        active=key.status == ApiKey.Status.ACTIVE,
        expires_at=key.expires_at,
        scopes=frozenset(key.scopes),
        allowed_models=tuple(key.allowed_models),
        allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in key.allowed_ips),
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        # Unverified organizations without their own limit get UNVERIFIED_RPM_LIMIT.
        org_rpm_limit=org.rpm_limit
        if org.rpm_limit is not None or verified
        else settings.UNVERIFIED_RPM_LIMIT,
        org_tpm_limit=org.tpm_limit,
        group=group.name if group else DEFAULT_GROUP,
        multiplier=group.multiplier if group else Decimal(1),
        store_responses=org.store_responses,
        show_cost=key.show_cost,
        caps=key_caps(
            key_id=key.pk,
            organization_id=org.pk,
            key={name: getattr(key, name) for name in _CAP_FIELDS},
            org={name: getattr(org, name) for name in _CAP_FIELDS},
        ),
        plan=plan_info(subscription) if subscription else None,
        plan_fallback=org.plan_fallback,
        overdue_invoice=org.wallet.overdue_invoice,
        verified=verified,
    )


_CAP_FIELDS = (
    "requests_per_day",
    "max_concurrent",
    "spend_cap_day",
    "spend_cap_week",
    "spend_cap_month",
)


def channel_info(c: Channel, costs: Mapping[str, PriceSheet] | None = None) -> ChannelInfo:
    """The relay's view of a channel row; raises ValueError when its keys won't decrypt."""
    return ChannelInfo(
        id=c.pk,
        name=c.name,
        type=c.type,
        base_url=c.base_url,
        keys=tuple(c.key_list()),
        models=frozenset(c.model_names),
        model_map=dict(c.model_map),
        groups=frozenset(c.groups),
        priority=c.priority,
        weight=max(1, c.weight),
        options=dict(c.options),
        strict_fields=c.strict_fields,
        costs=costs or {},
        cost_multiplier=c.cost_multiplier,
    )


def price_sheet(p: Any) -> PriceSheet:
    """A Price or CostPrice row as the sheet the relay prices with."""
    return PriceSheet(
        input_per_1m=p.input_per_1m,
        output_per_1m=p.output_per_1m,
        cache_read_per_1m=p.cache_read_per_1m,
        cache_write_per_1m=p.cache_write_per_1m,
        cache_write_1h_per_1m=p.cache_write_1h_per_1m,
        per_request=p.per_request,
        per_image=p.per_image,
        per_second=p.per_second,
        max_output_tokens=getattr(p, "max_output_tokens", None),
    )


def cost_sheets() -> tuple[dict[str, dict[str, PriceSheet]], dict[int, dict[str, PriceSheet]]]:
    """Every cost price: by channel type, and by channel (its own rows only)."""
    from relay.models import CostPrice

    by_type: dict[str, dict[str, PriceSheet]] = {}
    by_channel: dict[int, dict[str, PriceSheet]] = {}
    for row in CostPrice.objects.all():
        if row.channel_id is not None:
            by_channel.setdefault(row.channel_id, {})[row.model] = price_sheet(row)
        else:
            by_type.setdefault(row.channel_type, {})[row.model] = price_sheet(row)
    return by_type, by_channel


def channel_cost_sheet(*, channel_id: int | None, model: str) -> tuple[PriceSheet | None, Decimal]:
    """A channel's cost sheet for MODEL (its own row, else its type's) and its cost
    multiplier, read from the database (media tasks settle outside the relay's loop)."""
    from relay.models import Channel, CostPrice

    channel = Channel.objects.filter(pk=channel_id).first() if channel_id else None
    if channel is None:
        return None, Decimal(1)
    rows = CostPrice.objects.filter(model=model).filter(
        Q(channel=channel) | Q(channel__isnull=True, channel_type=channel.type)
    )
    own = sorted(rows, key=lambda row: row.channel_id is None)  # the channel's own first
    return (price_sheet(own[0]) if own else None), channel.cost_multiplier


def channel_costs(
    channel: Channel,
    by_type: dict[str, dict[str, PriceSheet]],
    by_channel: dict[int, dict[str, PriceSheet]],
) -> dict[str, PriceSheet]:
    return {**by_type.get(channel.type, {}), **by_channel.get(channel.pk, {})}


def _load_catalog() -> tuple[list[ChannelInfo], dict[str, PriceSheet]]:
    from billing.models import Price
    from relay.models import Channel

    channels = []
    by_type, by_channel = cost_sheets()
    for c in Channel.objects.filter(status=Channel.Status.ENABLED):
        try:
            channels.append(channel_info(c, channel_costs(c, by_type, by_channel)))
        except ValueError:
            # One channel with keys from a lost encryption key must not stop the others.
            log.error("channel %s skipped: its keys cannot be decrypted", c.pk)
    prices = {p.model: price_sheet(p) for p in Price.objects.all()}
    return channels, prices


class Catalog:
    """Per-process cache. Safe to share between tasks of one event loop."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[float, KeyInfo | None]] = {}
        self._channels: list[ChannelInfo] = []
        self._prices: dict[str, PriceSheet] = {}
        self._catalog_at = -1e9
        # One lock per event loop: an asyncio.Lock belongs to the loop it first waited in,
        # and a process may run more than one loop (tests, the admin's sync-to-async calls).
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def clear(self) -> None:
        self._keys.clear()
        self._catalog_at = -1e9

    async def key(self, key_hash: str) -> KeyInfo | None:
        now = time.monotonic()
        hit = self._keys.get(key_hash)
        if hit is not None and now - hit[0] < settings.RELAY_KEY_CACHE_SECONDS:
            return hit[1]
        info = await in_db_thread(_load_key)(key_hash)
        if len(self._keys) > 100_000:  # bogus keys must not grow memory without bound
            self._keys.clear()
        self._keys[key_hash] = (time.monotonic(), info)
        return info

    async def _refresh(self) -> None:
        if time.monotonic() - self._catalog_at < settings.RELAY_CATALOG_SECONDS:
            return
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        async with lock:
            if time.monotonic() - self._catalog_at < settings.RELAY_CATALOG_SECONDS:
                return
            self._channels, self._prices = await in_db_thread(_load_catalog)()
            self._catalog_at = time.monotonic()

    async def channels(self) -> list[ChannelInfo]:
        await self._refresh()
        return self._channels

    async def price(self, model: str) -> PriceSheet | None:
        await self._refresh()
        return self._prices.get(model)


catalog = Catalog()
