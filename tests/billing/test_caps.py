"""Plan windows and caps, checked with the hold: on the ORM path and PostgreSQL's fast
ledger alike, against a simulated clock (billing.caps.clock), never a sleep."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import ApiKey, Organization
from accounts.selectors import organization_personal
from accounts.services import key_create, user_create
from billing import caps, fastledger
from billing.caps import FIVE_HOURS, Cap
from billing.exceptions import CapReached, InsufficientBalance
from billing.holds import (
    Admission,
    Placed,
    Settlement,
    hold_place,
    hold_release,
    hold_settle,
    holds_sweep,
)
from billing.models import Hold, Plan, Subscription, UsageBucket, Wallet
from billing.plans import plan_caps
from billing.services import wallet_credit
from billing.windows import CapUse, cap_use
from logs.models import RequestLog
from logs.records import RequestRecord

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]

START = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)  # a Thursday


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    found = Clock(START)
    monkeypatch.setattr(caps, "clock", found)
    return found


@pytest.fixture(params=["orm", "fast"])
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    if request.param == "fast" and connection.vendor != "postgresql":
        pytest.skip("the fast ledger is PostgreSQL's")
    yield Ledger(fast=request.param == "fast")


@dataclass
class Ledger:
    """One interface over both hold paths; every call commits before it returns."""

    fast: bool
    n: int = 0

    def place(self, key: ApiKey, amount: int, admission: Admission) -> Placed:
        self.n += 1
        ref = f"req_{self.n}"
        wallet_id = Wallet.objects.get(organization_id=key.organization_id).pk
        if not self.fast:
            return hold_place(
                reference=ref,
                wallet_id=wallet_id,
                api_key_id=key.pk,
                amount=amount,
                ttl_seconds=600,
                admission=admission,
            )

        async def go() -> Placed:
            try:
                return await fastledger.ledger().place(
                    reference=ref,
                    wallet_id=wallet_id,
                    api_key_id=key.pk,
                    amount=amount,
                    ttl=600,
                    admission=admission,
                )
            finally:
                await fastledger.close()

        return asyncio.run(go())

    def settle(self, key: ApiKey, ref: str, cost: int, status: int = 200) -> bool:
        wallet_id = Wallet.objects.get(organization_id=key.organization_id).pk
        settlement = Settlement(
            reference=ref,
            wallet_id=wallet_id,
            api_key_id=key.pk,
            cost=cost,
            record=RequestRecord(
                timezone.now(), key.organization_id, key.pk, "chat/completions",
                model="m", status_code=status,
            ),
        )  # fmt: skip
        if not self.fast:
            return hold_settle(settlement)

        async def go() -> bool:
            try:
                return await fastledger.ledger().settle(settlement)
            finally:
                await fastledger.close()

        return asyncio.run(go())

    @property
    def last(self) -> str:
        return f"req_{self.n}"


@pytest.fixture
def org() -> Organization:
    user = user_create(email="plans@example.com")
    found = organization_personal(user=user)
    wallet_credit(organization=found, amount=10_000_000, kind="adjust", source_type="t",
                  source_id="1")  # fmt: skip
    return found


@pytest.fixture
def key(org: Organization) -> ApiKey:
    found, _ = key_create(organization=org, created_by=None)
    return found


def subscribe(org: Organization, **quotas: object) -> Subscription:
    plan = Plan.objects.create(name="Coding", slug=f"coding-{Plan.objects.count()}", price=2000,
                               **quotas)  # fmt: skip
    return Subscription.objects.create(
        organization=org, plan=plan, provider="admin",
        current_period_start=START - dt.timedelta(days=1),
        current_period_end=START + dt.timedelta(days=30),
    )  # fmt: skip


def plan_terms(sub: Subscription, *, fallback: bool = False, extra: tuple[Cap, ...] = ()
               ) -> Admission:  # fmt: skip
    return Admission(
        subscription_id=sub.pk,
        plan_caps=plan_caps(subscription_id=sub.pk, plan=sub.plan),
        fallback=fallback,
        caps=extra,
    )


def balance(org: Organization) -> tuple[int, int]:
    wallet = Wallet.objects.get(organization=org)
    return wallet.balance, wallet.held


def test_a_plan_pays_from_its_window_and_the_wallet_is_never_touched(
    ledger: Ledger, clock: Clock, org: Organization, key: ApiKey
) -> None:
    sub = subscribe(org, window_5h_limit=1_000_000)
    before = balance(org)
    placed = ledger.place(key, 400_000, plan_terms(sub))
    assert placed.funding == "plan"
    assert balance(org) == before  # nothing held from the wallet
    assert ledger.settle(key, ledger.last, cost=250_000)
    assert balance(org) == before
    row = RequestLog.objects.get(request_id=ledger.last)
    assert (row.cost, row.plan_cost, row.subscription_id) == (0, 250_000, sub.pk)
    bucket = UsageBucket.objects.get(meter=f"s{sub.pk}", span="m")
    assert (bucket.cost, bucket.requests) == (250_000, 1)
    key.refresh_from_db()
    assert (key.spent, key.held) == (0, 0)  # a plan's request spends nothing


def test_a_full_window_refuses_until_it_rolls_past_then_admits(
    ledger: Ledger, clock: Clock, org: Organization, key: ApiKey
) -> None:
    sub = subscribe(org, window_5h_limit=1_000_000)
    terms = plan_terms(sub)
    ledger.place(key, 600_000, terms)
    ledger.settle(key, ledger.last, cost=600_000)
    clock.advance(hours=1)
    with pytest.raises(CapReached) as refused:
        ledger.place(key, 500_000, terms)  # 600k used + 500k > 1M
    assert refused.value.window and refused.value.index == 0
    # Counted until its 10-minute bucket's end is 5 hours old: 09:10 + 5 h = 14:10.
    use = cap_use(terms.plan_caps[0], now=clock.now)
    assert use.used == 600_000
    assert use.retry_at(500_000, clock.now) == START + dt.timedelta(hours=5, minutes=10)
    clock.now = START + dt.timedelta(hours=5, minutes=9, seconds=59)
    with pytest.raises(CapReached):
        ledger.place(key, 500_000, terms)
    clock.now = START + dt.timedelta(hours=5, minutes=10)
    assert ledger.place(key, 500_000, terms).funding == "plan"


def test_a_full_window_falls_back_to_the_balance_when_the_organization_allows_it(
    ledger: Ledger, clock: Clock, org: Organization, key: ApiKey
) -> None:
    sub = subscribe(org, window_5h_limit=100)
    placed = ledger.place(key, 500, plan_terms(sub, fallback=True))
    assert placed.funding == "balance"
    assert balance(org) == (10_000_000, 500)
    assert placed.available == 10_000_000 - 500
    ledger.settle(key, ledger.last, cost=300)
    row = RequestLog.objects.get(request_id=ledger.last)
    assert (row.cost, row.plan_cost, row.subscription_id) == (300, 0, None)
    assert balance(org) == (10_000_000 - 300, 0)
    # The plan's window counted nothing for a request it did not pay.
    assert not UsageBucket.objects.filter(meter=f"s{sub.pk}").exists()


def test_request_windows_count_requests_but_not_failures_that_cost_nothing(
    ledger: Ledger, clock: Clock, org: Organization, key: ApiKey
) -> None:
    sub = subscribe(org, week_limit=2, week_unit=Plan.Unit.REQUESTS)
    terms = plan_terms(sub)
    ledger.place(key, 10, terms)
    ledger.settle(key, ledger.last, cost=0, status=502)  # the upstream failed: free
    ledger.place(key, 10, terms)
    ledger.settle(key, ledger.last, cost=5)
    ledger.place(key, 10, terms)  # 1 used + 1 in flight + 1 = 3 > 2? no: 1 + 0 + 1
    with pytest.raises(CapReached):
        ledger.place(key, 10, terms)  # 1 used + 1 in flight + 1 > 2
    ledger.settle(key, ledger.last, cost=5)
    clock.advance(days=7, hours=1)
    assert ledger.place(key, 10, terms).funding == "plan"


def test_the_monthly_quota_resets_with_the_calendar_month(
    ledger: Ledger, clock: Clock, org: Organization, key: ApiKey
) -> None:
    sub = subscribe(org, month_limit=1_000)
    terms = plan_terms(sub)
    ledger.place(key, 900, terms)
    ledger.settle(key, ledger.last, cost=900)
    with pytest.raises(CapReached):
        ledger.place(key, 200, terms)
    use = cap_use(terms.plan_caps[0], now=clock.now)
    assert use.retry_at(200, clock.now) == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    clock.now = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert ledger.place(key, 200, terms).funding == "plan"


def test_concurrency_caps_count_requests_in_flight(
    ledger: Ledger, clock: Clock, org: Organization, key: ApiKey
) -> None:
    terms = Admission(caps=(Cap(f"k{key.pk}", "", 0, 2, caps.CONCURRENT, "in flight"),))
    ledger.place(key, 10, terms)
    first = ledger.last
    ledger.place(key, 10, terms)
    with pytest.raises(CapReached) as refused:
        ledger.place(key, 10, terms)
    assert not refused.value.window
    ledger.settle(key, first, cost=1)
    ledger.place(key, 10, terms)
    assert Hold.objects.count() == 2


def test_daily_spend_caps_count_holds_in_flight_and_reset_with_the_day(
    ledger: Ledger, clock: Clock, org: Organization, key: ApiKey
) -> None:
    terms = Admission(caps=(Cap(f"o{org.pk}", "d", 0, 1_000, caps.USD, "spend per day"),))
    ledger.place(key, 600, terms)
    first = ledger.last
    with pytest.raises(CapReached):
        ledger.place(key, 600, terms)  # 600 in flight + 600 > 1000
    ledger.settle(key, first, cost=300)
    ledger.place(key, 600, terms)  # 300 spent + 600 <= 1000
    ledger.settle(key, ledger.last, cost=600)
    with pytest.raises(CapReached):
        ledger.place(key, 200, terms)  # 900 + 200
    clock.now = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    ledger.place(key, 1_000, terms)


def test_a_plans_requests_spend_no_money_but_still_count_as_requests(
    ledger: Ledger, clock: Clock, org: Organization, key: ApiKey
) -> None:
    sub = subscribe(org, window_5h_limit=10_000)
    spend = Cap(f"k{key.pk}", "d", 0, 100, caps.USD, "spend per day for this key")
    daily = Cap(f"k{key.pk}", "d", 0, 2, caps.REQUESTS, "requests per day for this key")
    terms = plan_terms(sub, extra=(spend, daily))
    ledger.place(key, 5_000, terms)  # over the spend cap, but the plan pays
    ledger.settle(key, ledger.last, cost=4_000)
    ledger.place(key, 5_000, terms)
    ledger.settle(key, ledger.last, cost=10)
    with pytest.raises(CapReached) as refused:
        ledger.place(key, 5, terms)
    assert terms.caps[refused.value.index] == daily
    assert UsageBucket.objects.get(meter=f"k{key.pk}", span="d").cost == 0


def test_the_key_spend_limit_refusal_changes_nothing(
    ledger: Ledger, clock: Clock, org: Organization
) -> None:
    limited, _ = key_create(organization=org, created_by=None, spend_limit=100)
    terms = Admission(caps=(Cap(f"k{limited.pk}", "d", 0, 5, caps.REQUESTS, "per day"),))
    with pytest.raises(InsufficientBalance):
        ledger.place(limited, 500, terms)
    assert balance(org) == (10_000_000, 0)
    assert not Hold.objects.exists()


def test_a_plans_hold_released_or_swept_gives_nothing_back_to_the_wallet(
    clock: Clock, org: Organization, key: ApiKey
) -> None:
    sub = subscribe(org, window_5h_limit=10_000)
    terms = plan_terms(sub)
    hold_place(reference="gone", wallet_id=org.wallet.pk, api_key_id=key.pk, amount=500,
               ttl_seconds=600, admission=terms)  # fmt: skip
    assert hold_release(reference="gone")
    assert balance(org) == (10_000_000, 0)
    record = RequestRecord(timezone.now(), org.pk, key.pk, "chat/completions", model="m")
    hold_place(
        reference="cut", wallet_id=org.wallet.pk, api_key_id=key.pk, amount=500,
        ttl_seconds=600, lease="ls_dead", admission=terms,
        progress={"cost": 700, "log": record.json()},
    )  # fmt: skip
    Hold.objects.filter(reference="cut").update(created_at=timezone.now() - dt.timedelta(minutes=5))
    assert holds_sweep() == 1
    row = RequestLog.objects.get(request_id="cut")
    assert (row.cost, row.plan_cost, row.status_code) == (0, 500, 500)  # capped at the hold
    assert balance(org) == (10_000_000, 0)
    assert cap_use(terms.plan_caps[0], now=clock.now).used == 500


def test_rolling_windows_count_whole_buckets_never_less_than_the_window(
    clock: Clock,
) -> None:
    cap = Cap("s1", "m", FIVE_HOURS, 10, caps.USD, "w")
    for minute in range(0, 600, 7):
        at = START + dt.timedelta(minutes=minute)
        since = caps.counted_since(cap, at)
        assert at - since >= dt.timedelta(hours=5)
        assert at - since < dt.timedelta(hours=5, minutes=10)


def test_concurrent_admissions_never_overshoot_a_window_or_a_cap(
    clock: Clock, org: Organization, key: ApiKey
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("concurrent admissions on PostgreSQL's fast ledger")
    sub = subscribe(org, window_5h_limit=550)
    other, _ = key_create(organization=org, created_by=None)
    per_key = Cap(f"k{other.pk}", "", 0, 3, caps.CONCURRENT, "in flight for this key")
    wallet_id = org.wallet.pk

    async def go() -> list[str]:
        ledger = fastledger.ledger()

        async def one(i: int, key_id: int, admission: Admission) -> str:
            try:
                placed = await ledger.place(reference=f"c{i}", wallet_id=wallet_id,
                                            api_key_id=key_id, amount=100, ttl=60,
                                            admission=admission)  # fmt: skip
                return placed.funding
            except CapReached:
                return "refused"

        try:
            return list(
                await asyncio.gather(
                    *(one(i, key.pk, plan_terms(sub)) for i in range(20)),
                    *(one(100 + i, other.pk, Admission(caps=(per_key,))) for i in range(20)),
                )
            )
        finally:
            await fastledger.close()

    outcomes = asyncio.run(go())
    assert outcomes[:20].count("plan") == 5 and outcomes[:20].count("refused") == 15
    assert outcomes[20:].count("balance") == 3 and outcomes[20:].count("refused") == 17
    assert Hold.objects.filter(subscription_id=sub.pk).count() == 5
    assert balance(org) == (10_000_000, 300)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    at=st.datetimes(
        min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1),
        timezones=st.just(dt.UTC),
    ),
    span=st.sampled_from(["m", "h", "d", "w", "M"]),
)  # fmt: skip
def test_buckets_start_at_the_same_time_in_python_and_in_postgresql(
    at: dt.datetime, span: str
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("th_bucket_start is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SELECT th_bucket_start(%s, %s)", [span, at])
        (in_sql,) = cursor.fetchone()
    start = caps.bucket_start(span, at)
    assert in_sql == start
    assert start <= at < caps.next_start(span, start)


@settings(max_examples=200, deadline=None)
@given(
    amounts=st.lists(st.integers(min_value=0, max_value=50), max_size=40),
    limit=st.integers(min_value=1, max_value=400),
    in_flight=st.integers(min_value=0, max_value=100),
    need=st.integers(min_value=1, max_value=100),
)
def test_retry_at_is_the_first_moment_the_window_takes_the_request(
    amounts: list[int], limit: int, in_flight: int, need: int
) -> None:
    """Against a brute force over every 10-minute bucket boundary of the next 6 hours."""
    cap = Cap("s1", "m", FIVE_HOURS, limit, caps.USD, "w")
    now = START
    first = caps.counted_since(cap, now)
    buckets = tuple(
        (first + dt.timedelta(minutes=10 * n), amount)
        for n, amount in enumerate(amounts[:31])
        if amount and first + dt.timedelta(minutes=10 * n) <= now
    )
    use = CapUse(cap=cap, used=sum(a for _, a in buckets), in_flight=in_flight,
                 frees_at=None, buckets=buckets)  # fmt: skip

    def fits(at: dt.datetime) -> bool:
        since = caps.counted_since(cap, at)
        used = sum(amount for start, amount in buckets if start >= since)
        return used + in_flight + need <= limit

    found = use.retry_at(need, now)
    if in_flight + need > limit:
        assert found is None
        return
    candidates = [now] + [now + dt.timedelta(minutes=m) for m in range(1, 6 * 60 + 11)]
    expected = next(at for at in candidates if fits(at))
    assert found == expected


def test_buckets_no_window_counts_are_purged(org: Organization) -> None:
    from billing.services import usage_buckets_purge

    old = START - dt.timedelta(days=41)
    UsageBucket.objects.create(meter="s1", span="M", start=old, cost=5, requests=1)
    kept = UsageBucket.objects.create(meter="s1", span="M", start=START, cost=5, requests=1)
    assert usage_buckets_purge(now=START) == 1
    assert list(UsageBucket.objects.all()) == [kept]
