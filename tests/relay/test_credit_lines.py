"""A credit line lowers a wallet's floor from zero to minus the line, with the guarantees of
the zero floor: N concurrent requests against a balance plus line covering K serve at most
K, none is charged past its hold, and no upstream report takes the balance below the floor.
On PostgreSQL both of th_hold_place's paths run (no caps: one conditional update; with a
cap: the wallet locked, then counted); the embedded mode runs the ORM's."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.utils import timezone

from accounts.models import Organization
from billing.models import LedgerEntry, UncollectedUsage
from billing.reconcile import reconcile_run
from billing.services import price_set, wallet_credit_limit_set
from logs.models import RequestLog
from tests.conftest import balance_set
from tests.fakes.upstream import Usage
from tests.relay.conftest import Customer, wait_for


@pytest.fixture(autouse=True)
def _verified(ready: Customer) -> None:
    """Credit lines are granted to verified organizations only (docs/enterprise.md)."""
    ready.org.verified_at = timezone.now()
    ready.org.save(update_fields=["verified_at"])


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
USD = 1_000_000


def _post(customer: Customer) -> int:
    return httpx.post(
        customer.base_url + "/chat/completions",
        json=CHAT,
        headers={"authorization": f"Bearer {customer.secret}"},
        timeout=30,
    ).status_code


@pytest.mark.parametrize("capped", [False, True], ids=["no-caps", "with-a-cap"])
def test_concurrent_requests_spend_the_balance_and_the_line_and_no_more(
    ready: Customer, fake, capped: bool
) -> None:
    # Exactly 1 USD a request, held in full: 2 USD of balance and a 3 USD line cover 5.
    price_set(model="gpt-4o-mini", input_per_1m=0, output_per_1m=0, per_request=USD)
    balance_set(ready.org, 2 * USD)
    wallet_credit_limit_set(organization=ready.org, limit=3 * USD, reason="net 30", set_by=None)
    if capped:  # a cap that never binds, to take the locked path
        Organization.objects.filter(pk=ready.org.pk).update(spend_cap_month=1_000 * USD)
    fake.configure(latency=0.3)  # every request in flight at once

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda _: _post(ready), range(12)))

    assert (statuses.count(200), statuses.count(402)) == (5, 7)
    wait_for(lambda: RequestLog.objects.count() == 12)
    wallet = ready.wallet()
    assert (wallet.balance, wallet.held, wallet.available) == (-3 * USD, 0, 0)
    assert LedgerEntry.objects.filter(kind="charge").count() == len(fake.requests) == 5
    assert not [d for d in reconcile_run() if d.check in ("balance", "held", "negative")]


def test_an_over_reporting_upstream_never_takes_the_balance_below_the_line(
    ready: Customer, fake
) -> None:
    price_set(model="gpt-4o-mini", input_per_1m=USD, output_per_1m=100 * USD)
    balance_set(ready.org, 0)
    wallet_credit_limit_set(organization=ready.org, limit=USD, reason="trial", set_by=None)
    fake.configure(usage=Usage(prompt_tokens=10, completion_tokens=500_000))  # 50 USD

    ready.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=1_000
    )

    wait_for(lambda: RequestLog.objects.exists())
    log = RequestLog.objects.get()
    assert log.hold is not None and 0 < log.cost == log.hold < USD
    assert UncollectedUsage.objects.get(reference=log.request_id).amount > 0
    assert -USD <= ready.wallet().balance == -log.cost


def test_without_a_line_the_floor_is_zero_and_withdrawing_it_stops_keys(ready: Customer) -> None:
    price_set(model="gpt-4o-mini", input_per_1m=0, output_per_1m=0, per_request=USD)
    balance_set(ready.org, 0)
    assert _post(ready) == 402

    wallet_credit_limit_set(organization=ready.org, limit=USD, reason="grant", set_by=None)
    assert _post(ready) == 200
    wait_for(lambda: RequestLog.objects.filter(status_code=200).exists())
    wallet_credit_limit_set(organization=ready.org, limit=0, reason="withdrawn", set_by=None)

    assert _post(ready) == 402
    assert ready.wallet().balance == -USD  # owed; nothing taken back
    assert not [d for d in reconcile_run() if d.check == "negative"]
