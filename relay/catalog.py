"""In-process snapshots of keys, channels and prices, so the hot path reads no database.

A key snapshot is never older than RELAY_KEY_CACHE_SECONDS (plus the time of one load): a
key changed outside the key services still stops working on every process within that
time; the key-change broadcast (accounts/revocations.py) empties the cache at once. So that
a request costs a dict lookup, one task per event loop reloads every key used in the last
KEY_IDLE_SECONDS together, in a few queries, twice per lifetime; a key seen for the first
time (or not refreshed in time) is loaded on demand, once for all the requests waiting for
it. On PostgreSQL a refresh rebuilds only the snapshots whose basis (a digest of the columns
they are built from, and the organization's covering plan) changed: a thousand unchanged
keys cost one query, not a thousand snapshots. Channels and prices are reloaded as a whole
every RELAY_CATALOG_SECONDS.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ipaddress
import logging
import time
import weakref
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Q

from accounts.network import IPNetwork
from billing.caps import Cap, key_caps
from billing.plans import PlanInfo, plan_info, subscriptions_current
from billing.pricing import PriceSheet
from relay.db import in_db_thread

if TYPE_CHECKING:
    from billing.models import PricingGroup, Subscription
    from relay.models import Channel

log = logging.getLogger(__name__)

# Keys used within this many seconds are refreshed in bulk; the others are forgotten.
KEY_IDLE_SECONDS = 60.0
# At most this many cached lookups, unknown keys included: bogus keys must not grow memory.
KEY_CACHE_MAX = 100_000
# Hashes per query of a bulk load (SQLite bounds the parameters of one statement).
_BULK_CHUNK = 500


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
    spend_limited: bool = False  # the key has a spend limit (checked by every hold)


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


def _load_keys(key_hashes: Collection[str]) -> dict[str, KeyInfo | None]:
    """Snapshots of the keys with these hashes (None: no such key), each chunk of
    _BULK_CHUNK keys in two queries (keys, their organizations' current subscriptions),
    plus one for the verified pricing group if a key falls back to it."""
    from accounts.models import ApiKey
    from billing.models import PricingGroup

    @functools.cache
    def verified_group() -> PricingGroup | None:
        return PricingGroup.objects.filter(name=settings.VERIFIED_PRICING_GROUP).first()

    found: dict[str, KeyInfo | None] = dict.fromkeys(key_hashes)
    hashes = list(found)
    for start in range(0, len(hashes), _BULK_CHUNK):
        # Plain rows, not models: a refresh reads thousands, and model instances cost 3x.
        rows = list(
            ApiKey.objects.filter(key_hash__in=hashes[start : start + _BULK_CHUNK]).values(
                *_KEY_COLUMNS
            )
        )
        subscriptions = subscriptions_current(
            organization_ids={row["organization_id"] for row in rows}
        )
        for row in rows:
            found[row["key_hash"]] = _key_info(
                row, subscriptions.get(row["organization_id"]), verified_group
            )
    return found


def _load_key(key_hash: str) -> KeyInfo | None:
    return _load_keys([key_hash])[key_hash]


# What a key's snapshot is built from: a digest of its row with the joined columns, its
# organization's covering plan at the time of reading, and the settings and verified group
# _key_info falls back to. Equal bases build equal snapshots.
Basis = tuple[str, object, object]


def _key_bases(
    key_hashes: Collection[str], now: dt.datetime | None = None
) -> dict[str, Basis] | None:
    """The basis of each existing key with these hashes, without building snapshots: one
    query digests the very columns _load_keys reads, PostgreSQL side. None where the
    database cannot digest rows (SQLite, the embedded single process): reload them all."""
    from django.db import connection

    from accounts.models import ApiKey
    from billing.models import PricingGroup

    if connection.vendor != "postgresql":
        return None
    columns, params = ApiKey.objects.values(*_KEY_COLUMNS).query.sql_with_params()
    with connection.cursor() as cursor:
        # COLUMNS is SQL Django compiled, its values in PARAMS. The hashes go as one string:
        # psycopg would quote a list's items one by one.
        cursor.execute(
            "SELECT s.key_hash, s.organization_id, md5(s::text) "  # noqa: S608
            f"FROM ({columns}) s WHERE s.key_hash = ANY(string_to_array(%s, ','))",
            [*params, ",".join(key_hashes)],
        )
        rows = cursor.fetchall()
    plans: dict[int, object] = {}
    for org_id, subscription in subscriptions_current(
        organization_ids={org_id for _, org_id, _ in rows}, now=now
    ).items():
        group = subscription.plan.pricing_group
        plans[org_id] = (plan_info(subscription), group and (group.name, group.multiplier))
    fallback = (
        settings.UNVERIFIED_RPM_LIMIT,
        settings.VERIFIED_PRICING_GROUP,
        settings.VERIFIED_PRICING_GROUP
        and PricingGroup.objects.filter(name=settings.VERIFIED_PRICING_GROUP)
        .values_list("pk", "multiplier")
        .first(),
    )
    return {key_hash: (digest, plans.get(org_id), fallback) for key_hash, org_id, digest in rows}


def _keys_rebuild_changed(
    known: Mapping[str, Basis | None],
) -> tuple[dict[str, KeyInfo | None], dict[str, Basis]]:
    """The snapshots of the keys whose basis is not the KNOWN one (a key without one, or
    gone, counts as changed; all of them where the database cannot tell), and every key's
    current basis. Bases are read first: a change in between is rebuilt again next time."""
    bases = _key_bases(known)
    if bases is None:
        return _load_keys(known), {}
    changed = [h for h, basis in known.items() if basis is None or bases.get(h) != basis]
    return (_load_keys(changed) if changed else {}), bases


def _key_info(
    row: Mapping[str, Any],
    subscription: Subscription | None,
    verified_group: Callable[[], PricingGroup | None],
) -> KeyInfo:
    from accounts.models import ApiKey
    from billing.services import DEFAULT_GROUP

    verified = row["organization__verified_at"] is not None
    plan_group = subscription.plan.pricing_group if subscription else None
    # A key's own group wins, then the plan's, then the organization's, then the one
    # verification unlocks (VERIFIED_PRICING_GROUP).
    group, multiplier = DEFAULT_GROUP, Decimal(1)
    if row["pricing_group__name"] is not None:
        group, multiplier = row["pricing_group__name"], row["pricing_group__multiplier"]
    elif plan_group is not None:
        group, multiplier = plan_group.name, plan_group.multiplier
    elif row["organization__pricing_group__name"] is not None:
        group = row["organization__pricing_group__name"]
        multiplier = row["organization__pricing_group__multiplier"]
    elif verified and settings.VERIFIED_PRICING_GROUP and (unlocked := verified_group()):
        group, multiplier = unlocked.name, unlocked.multiplier
    org_rpm_limit = row["organization__rpm_limit"]
    return KeyInfo(
        id=row["id"],
        organization_id=row["organization_id"],
        wallet_id=row["organization__wallet__id"],
        active=row["status"] == ApiKey.Status.ACTIVE,
        expires_at=row["expires_at"],
        scopes=frozenset(row["scopes"]),
        allowed_models=tuple(row["allowed_models"]),
        allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in row["allowed_ips"]),
        rpm_limit=row["rpm_limit"],
        tpm_limit=row["tpm_limit"],
        # Unverified organizations without their own limit get UNVERIFIED_RPM_LIMIT.
        org_rpm_limit=org_rpm_limit
        if org_rpm_limit is not None or verified
        else settings.UNVERIFIED_RPM_LIMIT,
        org_tpm_limit=row["organization__tpm_limit"],
        group=group,
        multiplier=multiplier,
        store_responses=row["organization__store_responses"],
        show_cost=row["show_cost"],
        caps=key_caps(
            key_id=row["id"],
            organization_id=row["organization_id"],
            key={name: row[name] for name in _CAP_FIELDS},
            org={name: row[f"organization__{name}"] for name in _CAP_FIELDS},
        ),
        plan=plan_info(subscription) if subscription else None,
        plan_fallback=row["organization__plan_fallback"],
        overdue_invoice=row["organization__wallet__overdue_invoice"],
        verified=verified,
        spend_limited=row["spend_limit"] is not None,
    )


_CAP_FIELDS = (
    "requests_per_day",
    "max_concurrent",
    "spend_cap_day",
    "spend_cap_week",
    "spend_cap_month",
)
# The columns _key_info reads.
_KEY_COLUMNS = (
    *("id", "key_hash", "status", "expires_at", "scopes", "allowed_models", "allowed_ips"),
    *("rpm_limit", "tpm_limit", "spend_limit", "show_cost", "pricing_group__name"),
    *("pricing_group__multiplier", *_CAP_FIELDS, "organization_id"),
    *(f"organization__{name}" for name in ("verified_at", "rpm_limit", "tpm_limit")),
    *(f"organization__{name}" for name in ("store_responses", "plan_fallback")),
    *(f"organization__{name}" for name in _CAP_FIELDS),
    "organization__pricing_group__name",
    "organization__pricing_group__multiplier",
    "organization__wallet__id",
    "organization__wallet__overdue_invoice",
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


@dataclass(slots=True)
class _KeyEntry:
    loaded_at: float  # when the load that read it started (time.monotonic)
    info: KeyInfo | None
    used_at: float
    basis: Basis | None = None  # None: loaded on demand, rebuilt by the next refresh


@dataclass(slots=True)
class _LoopKeys:
    """One event loop's key loads: futures can only be awaited in their own loop."""

    loading: dict[str, tuple[int, asyncio.Future[KeyInfo | None]]] = field(default_factory=dict)
    queued: list[tuple[str, asyncio.Future[KeyInfo | None]]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    refresher: asyncio.Task[None] | None = None


class Catalog:
    """Per-process cache. Safe to share between tasks of one event loop."""

    def __init__(self) -> None:
        self._keys: dict[str, _KeyEntry] = {}
        # Bumped by clear(): what a load begun before it read is not cached.
        self._keys_epoch = 0
        self._keys_refreshed_at = -1e9
        self._channels: list[ChannelInfo] = []
        self._prices: dict[str, PriceSheet] = {}
        self._catalog_at = -1e9
        # Per event loop: an asyncio.Lock or Future belongs to one loop, and a process may
        # run more than one loop (tests, the admin's sync-to-async calls).
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopKeys] = (
            weakref.WeakKeyDictionary()
        )

    def clear(self) -> None:
        self._keys_epoch += 1
        # A new dict rather than clear(): a refresh in another thread may be walking it.
        self._keys = {}
        self._catalog_at = -1e9

    def key_count(self) -> int:
        return len(self._keys)

    async def key(self, key_hash: str) -> KeyInfo | None:
        entry = self._keys.get(key_hash)
        if entry is not None:
            now = time.monotonic()
            if now - entry.loaded_at < settings.RELAY_KEY_CACHE_SECONDS:
                entry.used_at = now
                return entry.info
        # Shielded: a request that gives up must not cancel the load others wait for.
        return await asyncio.shield(self._load(key_hash))

    def _loop_keys(self) -> _LoopKeys:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _LoopKeys()
        if state.refresher is None or state.refresher.done():
            state.refresher = loop.create_task(self._refresh_keys_forever())
        return state

    def _load(self, key_hash: str) -> asyncio.Future[KeyInfo | None]:
        """The load of KEY_HASH this loop has in flight, else a new one. Misses of one
        loop iteration are loaded together."""
        state = self._loop_keys()
        loading = state.loading.get(key_hash)
        if loading is not None and loading[0] == self._keys_epoch:
            return loading[1]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[KeyInfo | None] = loop.create_future()
        state.loading[key_hash] = (self._keys_epoch, future)
        state.queued.append((key_hash, future))
        if len(state.queued) == 1:
            loop.call_soon(self._load_queued, state)
        return future

    def _load_queued(self, state: _LoopKeys) -> None:
        batch, state.queued = state.queued, []
        task = asyncio.get_running_loop().create_task(self._load_batch(state, batch))
        state.tasks.add(task)  # a task nobody references may be collected mid-flight
        task.add_done_callback(state.tasks.discard)

    async def _load_batch(
        self, state: _LoopKeys, batch: list[tuple[str, asyncio.Future[KeyInfo | None]]]
    ) -> None:
        epoch = self._keys_epoch
        started = time.monotonic()
        try:
            infos = await in_db_thread(_load_keys)([key_hash for key_hash, _ in batch])
        except BaseException as exc:  # the waiting requests fail as they did before
            for key_hash, future in batch:
                self._loaded(state, key_hash, future)
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        if epoch == self._keys_epoch:  # else a key change arrived: it may predate it
            self._store(infos, started)
        for key_hash, future in batch:
            self._loaded(state, key_hash, future)
            if not future.done():
                future.set_result(infos[key_hash])

    @staticmethod
    def _loaded(state: _LoopKeys, key_hash: str, future: asyncio.Future[KeyInfo | None]) -> None:
        loading = state.loading.get(key_hash)
        if loading is not None and loading[1] is future:
            del state.loading[key_hash]

    def _store(self, infos: dict[str, KeyInfo | None], loaded_at: float) -> None:
        keys = self._keys
        now = time.monotonic()
        if len(keys) + len(infos) > KEY_CACHE_MAX:
            for key_hash, entry in list(keys.items()):
                if now - entry.used_at > KEY_IDLE_SECONDS:
                    keys.pop(key_hash, None)
            if len(keys) + len(infos) > KEY_CACHE_MAX:
                keys.clear()  # all in use: a flood of bogus keys
        for key_hash, info in infos.items():
            keys[key_hash] = _KeyEntry(loaded_at, info, now)

    async def refresh_keys(self) -> None:
        """Reread every known key used within KEY_IDLE_SECONDS, together, and rebuild the
        snapshots whose basis changed; forget the keys used before. Unknown keys are not
        reread: they expire and load on demand."""
        started = self._keys_refreshed_at = time.monotonic()
        keys = self._keys
        epoch = self._keys_epoch
        recent: dict[str, _KeyEntry] = {}
        for key_hash, entry in list(keys.items()):
            if started - entry.used_at > KEY_IDLE_SECONDS:
                keys.pop(key_hash, None)
            elif entry.info is not None:
                recent[key_hash] = entry
        if not recent:
            return
        infos, bases = await in_db_thread(_keys_rebuild_changed)(
            {key_hash: entry.basis for key_hash, entry in recent.items()}
        )
        if epoch != self._keys_epoch:
            return  # a key change arrived meanwhile: what this read may predate it
        for key_hash, seen in recent.items():
            current = keys.get(key_hash)
            if current is None or current.loaded_at >= started:
                continue
            if key_hash in infos:
                info, basis = infos[key_hash], bases.get(key_hash)
                keys[key_hash] = _KeyEntry(started, info, current.used_at, basis)
            elif current is seen:  # its basis is unchanged: so is its snapshot
                current.loaded_at = started

    async def _refresh_keys_forever(self) -> None:
        while True:
            interval = max(settings.RELAY_KEY_CACHE_SECONDS / 2, 0.05)
            await asyncio.sleep(interval)
            if time.monotonic() - self._keys_refreshed_at < interval / 2:
                continue  # another event loop of this process just did
            try:
                await self.refresh_keys()
            except Exception as exc:
                # Database down: snapshots age out meanwhile and requests load on demand
                # (and fail as they did before). The type only: messages may hold values.
                log.warning("key cache refresh failed: %s", type(exc).__name__)

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
