"""The relay's key cache: one load however many requests miss at once, bulk refreshes that
read the same snapshot as a single load, key changes honoured with or without the broadcast,
and bounded memory."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import threading
from collections.abc import Callable, Collection
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.keysecrets import hash_secret
from accounts.models import ApiKey, Organization
from accounts.selectors import organization_personal
from accounts.services import key_create, key_set_status, user_create
from billing.models import Plan, PricingGroup, Subscription, Wallet
from billing.plans import subscription_current, subscriptions_current
from relay import catalog as catalog_module
from relay.catalog import Catalog, KeyInfo, _key_bases, _load_keys
from tests.relay.conftest import Customer, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class Loads:
    """The hashes of every bulk load the catalog runs, one list per call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self._changed = threading.Condition()

    def record(self, key_hashes: Collection[str]) -> None:
        with self._changed:
            self.calls.append(list(key_hashes))
            self._changed.notify_all()

    def wait_for(self, count: int) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.calls) >= count, timeout=10)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Loads:
    found = Loads()
    real = catalog_module._load_keys

    def counted(key_hashes: Collection[str]) -> dict[str, KeyInfo | None]:
        found.record(key_hashes)
        return real(key_hashes)

    monkeypatch.setattr(catalog_module, "_load_keys", counted)
    return found


def org_with_key(email: str, **key_fields: Any) -> tuple[Organization, ApiKey, str]:
    user = user_create(email=email, password="pw-123456789")
    org = organization_personal(user=user)
    key, secret = key_create(organization=org, created_by=user, name="k", **key_fields)
    return org, key, hash_secret(secret)


def subscribe(org: Organization, slug: str, **fields: Any) -> Subscription:
    plan_fields = {k: fields.pop(k) for k in ("pricing_group", "week_limit") if k in fields}
    plan = Plan.objects.create(name=slug, slug=slug, price=1000, **plan_fields)
    now = timezone.now()
    fields.setdefault("provider", "admin")
    fields.setdefault("current_period_end", now + dt.timedelta(days=30))
    return Subscription.objects.create(
        organization=org, plan=plan, current_period_start=now - dt.timedelta(days=30), **fields
    )


def test_concurrent_first_lookups_of_a_key_run_one_load(loads: Loads) -> None:
    _, key, key_hash = org_with_key("one@example.com")
    _, _, other_hash = org_with_key("two@example.com")
    cache = Catalog()

    async def lookups() -> list[KeyInfo | None]:
        return await asyncio.gather(
            *(cache.key(key_hash) for _ in range(20)), *(cache.key(other_hash) for _ in range(5))
        )

    found = asyncio.run(lookups())
    # The misses of one loop iteration share one load of both keys.
    assert [sorted(call) for call in loads.calls] == [sorted([key_hash, other_hash])]
    assert {info.id for info in found[:20] if info} == {key.pk}
    # Cached: later lookups read no database.
    again = asyncio.run(cache.key(key_hash))
    assert again == found[0]
    assert len(loads.calls) == 1


def test_a_request_that_gives_up_does_not_cancel_the_load_others_wait_for(
    loads: Loads,
) -> None:
    _, key, key_hash = org_with_key("one@example.com")
    cache = Catalog()

    async def lookups() -> KeyInfo | None:
        impatient = asyncio.create_task(cache.key(key_hash))
        patient = asyncio.create_task(cache.key(key_hash))
        await asyncio.sleep(0)
        impatient.cancel()
        return await patient

    info = asyncio.run(lookups())
    assert info is not None and info.id == key.pk
    assert len(loads.calls) == 1


def test_a_key_changed_without_broadcast_is_reread_by_the_next_refresh(
    loads: Loads, settings: Any
) -> None:
    settings.RELAY_KEY_CACHE_SECONDS = 3600  # only the refresh can bring the change
    _, key, key_hash = org_with_key("one@example.com")
    cache = Catalog()

    async def scenario() -> tuple[KeyInfo | None, KeyInfo | None, KeyInfo | None]:
        before = await cache.key(key_hash)
        await asyncio.to_thread(
            ApiKey.objects.filter(pk=key.pk).update, status=ApiKey.Status.DISABLED
        )
        cached = await cache.key(key_hash)
        await cache.refresh_keys()
        return before, cached, await cache.key(key_hash)

    before, cached, after = asyncio.run(scenario())
    assert before is not None and before.active
    assert cached == before
    assert after is not None and not after.active
    # The first sight, then the refresh: no load on demand.
    assert loads.calls == [[key_hash], [key_hash]]


def _group(name: str, multiplier: str) -> PricingGroup:
    return PricingGroup.objects.create(name=name, multiplier=Decimal(multiplier))


def _reprice(name: str) -> None:
    PricingGroup.objects.filter(name=name).update(multiplier=Decimal("1.5"))


# Each part of what a snapshot is built from: how the organization starts, a change made
# without the broadcast, and what the rebuilt snapshot shows of it.
Setup = Callable[[Organization, ApiKey], object]
BASIS_CHANGES: dict[str, tuple[Setup, Setup, Callable[[KeyInfo | None], bool]]] = {
    "key": (
        lambda org, key: None,
        lambda org, key: ApiKey.objects.filter(pk=key.pk).update(rpm_limit=5),
        lambda info: info is not None and info.rpm_limit == 5,
    ),
    "key gone": (
        lambda org, key: None,
        lambda org, key: ApiKey.objects.filter(pk=key.pk).delete(),
        lambda info: info is None,
    ),
    "organization": (
        lambda org, key: None,
        lambda org, key: Organization.objects.filter(pk=org.pk).update(tpm_limit=9),
        lambda info: info is not None and info.org_tpm_limit == 9,
    ),
    "organization's group": (
        lambda org, key: Organization.objects.filter(pk=org.pk).update(
            pricing_group=_group("orgs", "1.2")
        ),
        lambda org, key: _reprice("orgs"),
        lambda info: info is not None and info.multiplier == Decimal("1.5"),
    ),
    "wallet": (
        lambda org, key: None,
        lambda org, key: Wallet.objects.filter(organization=org).update(overdue_invoice="INV-1"),
        lambda info: info is not None and info.overdue_invoice == "INV-1",
    ),
    "plan starts": (
        lambda org, key: None,
        lambda org, key: subscribe(org, "pro"),
        lambda info: info is not None and info.plan is not None,
    ),
    "plan ends": (
        lambda org, key: subscribe(org, "pro"),
        lambda org, key: Subscription.objects.filter(organization=org).update(status="canceled"),
        lambda info: info is not None and info.plan is None,
    ),
    "plan's group": (
        lambda org, key: subscribe(org, "pro", pricing_group=_group("planned", "0.7")),
        lambda org, key: _reprice("planned"),
        lambda info: info is not None and info.multiplier == Decimal("1.5"),
    ),
    "verified group": (
        lambda org, key: Organization.objects.filter(pk=org.pk).update(verified_at=timezone.now()),
        lambda org, key: _reprice("verified"),
        lambda info: info is not None and info.multiplier == Decimal("1.5"),
    ),
}


@pytest.mark.parametrize("change", BASIS_CHANGES)
def test_a_refresh_rebuilds_exactly_the_snapshots_whose_basis_changed(
    change: str, loads: Loads, settings: Any
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite cannot digest rows: every refresh rebuilds every snapshot")
    settings.RELAY_KEY_CACHE_SECONDS = 3600  # only the refresh can bring the change
    settings.VERIFIED_PRICING_GROUP = "verified"
    _group("verified", "0.5")
    setup, make_change, shows = BASIS_CHANGES[change]
    org, key, key_hash = org_with_key("changed@example.com")
    _, _, other_hash = org_with_key("other@example.com")
    setup(org, key)
    cache = Catalog()
    hashes = (key_hash, other_hash)

    async def scenario() -> tuple[list[KeyInfo | None], list[KeyInfo | None]]:
        for key_hash in hashes:
            await cache.key(key_hash)
        await cache.refresh_keys()  # loaded on demand: rebuilt once, now with their bases
        before = [await cache.key(h) for h in hashes]
        loads.calls.clear()
        await cache.refresh_keys()
        assert loads.calls == []  # nothing changed: nothing rebuilt
        assert [await cache.key(h) for h in hashes] == before
        await asyncio.to_thread(make_change, org, key)
        await cache.refresh_keys()
        return before, [await cache.key(h) for h in hashes]

    before, after = asyncio.run(scenario())
    if change == "verified group":  # a fallback of every snapshot: all are rebuilt
        assert [sorted(call) for call in loads.calls] == [sorted(hashes)]
        assert after[1] == before[1]
    else:
        assert loads.calls == [[key_hash]]
        assert after[1] is before[1]  # the other organization's snapshot is kept as it was
    assert after[0] != before[0] and shows(after[0])
    assert after[0] == _load_keys([key_hash])[key_hash]


def test_a_plan_that_ends_with_time_changes_the_basis() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite cannot digest rows")
    org, _, key_hash = org_with_key("timed@example.com")
    now = timezone.now()
    subscribe(org, "pro", current_period_end=now + dt.timedelta(hours=1))
    during = _key_bases([key_hash], now)
    after = _key_bases([key_hash], now + dt.timedelta(hours=2))
    assert during is not None and after is not None
    assert during[key_hash][0] == after[key_hash][0]  # the rows did not change
    assert during[key_hash][1] is not None and after[key_hash][1] is None


def test_a_snapshot_older_than_the_lifetime_is_loaded_again(loads: Loads, settings: Any) -> None:
    settings.RELAY_KEY_CACHE_SECONDS = 3600
    _, key, key_hash = org_with_key("one@example.com")
    cache = Catalog()
    assert asyncio.run(cache.key(key_hash)) is not None
    ApiKey.objects.filter(pk=key.pk).update(status=ApiKey.Status.REVOKED)
    # No refresh ran (it failed, say): the entry's age alone makes the lookup reload it.
    settings.RELAY_KEY_CACHE_SECONDS = 0.0
    after = asyncio.run(cache.key(key_hash))
    assert after is not None and not after.active
    assert len(loads.calls) == 2


def test_what_a_load_read_before_a_key_change_is_not_cached(loads: Loads, settings: Any) -> None:
    settings.RELAY_KEY_CACHE_SECONDS = 3600
    _, _, key_hash = org_with_key("one@example.com")
    cache = Catalog()

    async def scenario() -> None:
        lookup = asyncio.create_task(cache.key(key_hash))
        await asyncio.to_thread(loads.wait_for, 1)  # the load has begun, in a thread
        cache.clear()  # what the key-change listener does
        assert (await lookup) is not None  # authenticate() looks up again after a change
        assert cache.key_count() == 0
        await cache.key(key_hash)
        refresh = asyncio.create_task(cache.refresh_keys())
        await asyncio.to_thread(loads.wait_for, 3)
        cache.clear()
        await refresh
        assert cache.key_count() == 0

    asyncio.run(scenario())


def test_a_failing_refresh_is_logged_and_the_next_one_runs(
    monkeypatch: pytest.MonkeyPatch, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.RELAY_KEY_CACHE_SECONDS = 0.2
    _, _, key_hash = org_with_key("one@example.com")
    real = catalog_module._load_keys
    refreshes: list[str] = []
    database = {"down": False}
    recovered = threading.Event()

    def load_keys(key_hashes: Collection[str]) -> dict[str, KeyInfo | None]:
        if database["down"]:
            database["down"] = False
            refreshes.append("failed")
            raise OperationalError("connection refused for user secret-value")
        found = real(key_hashes)
        refreshes.append("ok")
        if "failed" in refreshes:
            recovered.set()
        return found

    monkeypatch.setattr(catalog_module, "_load_keys", load_keys)
    cache = Catalog()

    async def scenario() -> None:
        await cache.key(key_hash)  # the first sight starts this loop's refresher
        refreshes.clear()
        database["down"] = True
        assert await asyncio.to_thread(recovered.wait, 10)

    with caplog.at_level(logging.WARNING, logger="relay.catalog"):
        asyncio.run(scenario())
    assert refreshes[:2] == ["failed", "ok"]
    assert "key cache refresh failed: OperationalError" in caplog.text
    assert "secret-value" not in caplog.text


def test_the_bulk_load_reads_what_single_loads_read(settings: Any) -> None:
    settings.VERIFIED_PRICING_GROUP = "verified"
    PricingGroup.objects.create(name="verified", multiplier=Decimal("0.5"))
    own = PricingGroup.objects.create(name="own", multiplier=Decimal("0.8"))
    planned = PricingGroup.objects.create(name="planned", multiplier=Decimal("0.7"))
    orgs_group = PricingGroup.objects.create(name="orgs", multiplier=Decimal("1.2"))

    _, _, plain = org_with_key("plain@example.com")
    verified_org, _, verified = org_with_key("verified@example.com")
    Organization.objects.filter(pk=verified_org.pk).update(verified_at=timezone.now())
    _, _, own_group = org_with_key("own@example.com", pricing_group=own, requests_per_day=50)
    plan_org, _, with_plan = org_with_key("plan@example.com")
    subscribe(plan_org, "pro", pricing_group=planned, week_limit=5_000_000)
    group_org, _, org_group = org_with_key("org@example.com")
    Organization.objects.filter(pk=group_org.pk).update(
        pricing_group=orgs_group, spend_cap_day=1_000_000, rpm_limit=7
    )
    # A second key of the planned organization: both must see its plan.
    _, second_secret = key_create(organization=plan_org, created_by=None, name="second")
    second = hash_secret(second_secret)
    unknown = hash_secret("sk-th-" + secrets.token_urlsafe(32))
    hashes = [plain, verified, own_group, with_plan, org_group, second, unknown]

    with CaptureQueriesContext(connection) as queries:
        bulk = _load_keys(hashes)
    assert len(queries) <= 3  # keys, subscriptions, the verified group
    assert bulk == {key_hash: _load_keys([key_hash])[key_hash] for key_hash in hashes}

    groups = {h: (info.group, info.verified) for h, info in bulk.items() if info}
    assert groups == {
        plain: ("default", False),
        verified: ("verified", True),
        own_group: ("own", False),
        with_plan: ("planned", False),
        org_group: ("orgs", False),
        second: ("planned", False),
    }
    assert bulk[unknown] is None
    found = {h: info for h, info in bulk.items() if info is not None}
    plan_info = found[with_plan].plan
    assert plan_info is not None and plan_info.plan_name == "pro" and plan_info.caps
    assert found[second].plan == plan_info
    assert [c.label for c in found[own_group].caps] == ["requests per day for this key"]
    assert found[org_group].org_rpm_limit == 7
    assert found[org_group].caps


def test_current_subscriptions_in_bulk_follow_the_single_rules() -> None:
    now = timezone.now()
    cases: dict[str, Callable[[Organization], object]] = {
        "none": lambda org: None,
        "active": lambda org: subscribe(org, "active"),
        "ended": lambda org: subscribe(
            org, "ended", current_period_end=now - dt.timedelta(hours=1)
        ),
        "renewing": lambda org: subscribe(
            org, "renewing", provider="stripe", current_period_end=now - dt.timedelta(hours=1)
        ),
        "cancelling": lambda org: subscribe(
            org, "cancelling", provider="stripe", cancel_at_period_end=True,
            current_period_end=now - dt.timedelta(hours=1),
        ),
        "grace": lambda org: subscribe(
            org, "grace", status="past_due", grace_until=now + dt.timedelta(days=1)
        ),
        "graceless": lambda org: subscribe(
            org, "graceless", status="past_due", grace_until=now - dt.timedelta(days=1)
        ),
        "canceled": lambda org: subscribe(org, "canceled", status="canceled"),
    }  # fmt: skip
    orgs = {}
    for name, make in cases.items():
        org, _, _ = org_with_key(f"{name}@example.com")
        make(org)
        orgs[name] = org.pk

    bulk = subscriptions_current(organization_ids=orgs.values(), now=now)
    single = {
        org_id: subscription_current(organization_id=org_id, now=now) for org_id in orgs.values()
    }
    assert bulk == {org_id: found for org_id, found in single.items() if found is not None}
    covered = {name for name, org_id in orgs.items() if org_id in bulk}
    assert covered == {"active", "renewing", "grace"}


def test_memory_is_bounded_and_unused_keys_are_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(catalog_module, "KEY_CACHE_MAX", 20)
    _, _, key_hash = org_with_key("one@example.com")
    cache = Catalog()

    async def flood() -> None:
        for _ in range(60):  # bogus keys, one at a time
            await cache.key(hash_secret("sk-th-" + secrets.token_urlsafe(32)))
            assert cache.key_count() <= 20
        await cache.key(key_hash)

    asyncio.run(flood())
    assert 1 <= cache.key_count() <= 20
    monkeypatch.setattr(catalog_module, "KEY_IDLE_SECONDS", 0.0)
    asyncio.run(cache.refresh_keys())
    assert cache.key_count() == 0


def chat(customer: Customer, secret: str) -> httpx.Response:
    return httpx.post(
        customer.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {secret}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def test_a_disabled_key_stops_at_once_with_the_broadcast(ready: Customer) -> None:
    assert chat(ready, ready.secret).status_code == 200
    key_set_status(key=ready.key, status=ApiKey.Status.DISABLED)
    assert chat(ready, ready.secret).status_code == 401


def test_a_key_revoked_in_the_database_stops_within_the_lifetime(
    ready: Customer, settings: Any
) -> None:
    settings.RELAY_KEY_CACHE_SECONDS = 0.5
    assert chat(ready, ready.secret).status_code == 200
    ApiKey.objects.filter(pk=ready.key.pk).update(status=ApiKey.Status.REVOKED)  # no broadcast
    wait_for(lambda: chat(ready, ready.secret).status_code == 401, timeout=10)
