"""An upstream that reports more usage than a request could produce is never billed past the
request's hold: balances stay >= 0, keys stay within their limits, the excess is recorded."""

from __future__ import annotations

import httpx
import openai
import pytest

from accounts.models import ApiKey
from accounts.services import key_create
from billing.models import LedgerEntry, UncollectedUsage, Wallet
from billing.services import price_set
from logs.models import RequestLog
from money import micros_to_usd
from tests.conftest import balance_set
from tests.fakes.upstream import Usage
from tests.relay.conftest import Customer, wait_for

MODEL = "gpt-4o-mini"


def _chat(customer: Customer, secret: str | None = None, **kwargs: object) -> object:
    return customer.openai(secret).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], **kwargs
    )


def _settled(n: int = 1) -> list[RequestLog]:
    wait_for(lambda: RequestLog.objects.count() >= n)
    return list(RequestLog.objects.all())


def test_a_charge_never_exceeds_its_hold(ready: Customer, fake) -> None:
    price_set(model=MODEL, input_per_1m=1_000_000, output_per_1m=100_000_000)
    balance_set(ready.org, 5_000_000)
    # 500,000 output tokens at 100 USD per 1M: 50 USD, for a request allowed one token.
    fake.configure(usage=Usage(prompt_tokens=10, completion_tokens=500_000))

    _chat(ready, max_tokens=1)

    (log,) = _settled()
    charge = -LedgerEntry.objects.get(source_id=log.request_id).amount
    uncollected = UncollectedUsage.objects.get(reference=log.request_id)
    full = 10 * 1 + 500_000 * 100  # micro-USD the report was worth
    assert 0 < charge < 1_000  # the hold: the prompt estimate and one output token
    assert (log.cost, uncollected.cost, uncollected.amount) == (charge, full, full - charge)
    assert (uncollected.channel_id, uncollected.model) == (log.channel_id, MODEL)
    assert ready.balance() == 5_000_000 - charge >= 0


def test_a_key_never_spends_past_its_limit_whatever_the_upstream_reports(
    ready: Customer, fake
) -> None:
    price_set(model=MODEL, input_per_1m=1_000_000, output_per_1m=10_000_000)
    key, secret = key_create(
        organization=ready.org, created_by=ready.user, name="capped", spend_limit=2_000_000
    )
    fake.configure(usage=Usage(prompt_tokens=10, completion_tokens=1_000_000))  # 10 USD each

    answered = 0
    for _ in range(6):
        try:
            _chat(ready, secret, max_tokens=90_000)  # holds 0.9 USD
            answered += 1
        except openai.APIStatusError as exc:
            assert exc.status_code == 402
    _settled(answered)

    key.refresh_from_db()
    assert answered == 2  # 2 x 0.9 USD held and charged, then the limit refuses
    assert key.spent <= 2_000_000 and key.held == 0
    assert UncollectedUsage.objects.count() == 2


def test_the_hold_covers_every_choice(ready: Customer, fake) -> None:
    price_set(model=MODEL, input_per_1m=1_000_000, output_per_1m=1_000_000)
    fake.configure(usage=Usage(prompt_tokens=10, completion_tokens=4 * 50))

    _chat(ready, max_tokens=50, n=4)

    (log,) = _settled()
    assert log.cost == 10 + 200  # charged in full: four choices of 50 tokens were held
    assert not UncollectedUsage.objects.exists()


def test_a_hold_asks_no_more_than_the_model_can_write(ready: Customer, fake) -> None:
    price_set(model=MODEL, input_per_1m=1_000_000, output_per_1m=1_000_000, max_output_tokens=100)
    balance_set(ready.org, 1_000)  # covers 100 output tokens, not a million
    fake.configure(usage=Usage(prompt_tokens=10, completion_tokens=100))

    _chat(ready, max_tokens=1_000_000)

    (log,) = _settled()
    assert log.cost == 110


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_tokens", 2**63), ("max_tokens", 0), ("n", 0), ("n", 1000), ("n", "2")],
)
def test_out_of_range_sizes_are_refused_before_anything_is_held(
    ready: Customer, fake, field: str, value: object
) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], field: value}

    answer = httpx.post(
        ready.base_url + "/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {ready.secret}"},
    )

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == field
    assert fake.requests == []
    assert Wallet.objects.get(organization=ready.org).held == 0
    assert ApiKey.objects.get(pk=ready.key.pk).held == 0


def test_over_reporting_is_shown_to_the_operators(ready: Customer, fake, admin_user) -> None:
    from django.test import Client

    from billing.reconcile import reconcile_run
    from tests.relay.test_metrics import _scrape

    price_set(model=MODEL, input_per_1m=1_000_000, output_per_1m=100_000_000)
    fake.configure(usage=Usage(prompt_tokens=10, completion_tokens=500_000))
    _chat(ready, max_tokens=1)
    (log,) = _settled()
    missing = UncollectedUsage.objects.get(reference=log.request_id).amount

    findings = [d for d in reconcile_run() if d.check == "uncollected"]
    assert [d.subject for d in findings] == [f"channel {log.channel_id}"]
    metrics = _scrape(ready).text
    assert f'tokenhub_uncollected_usd_total{{channel="{log.channel_id}"}} ' in metrics
    admin = Client()
    admin.force_login(admin_user)
    page = admin.get("/admin/relay/channel/").content.decode()
    assert f'field-over_reported">⚠ {micros_to_usd(missing)} USD<' in page


def test_reconcile_reports_a_key_past_its_limit_and_an_unexplained_negative_balance(
    ready: Customer,
) -> None:
    from billing.reconcile import reconcile_run
    from billing.services import wallet_credit

    ApiKey.objects.filter(pk=ready.key.pk).update(spend_limit=100, spent=101)
    wallet_credit(
        organization=ready.org, amount=-(ready.balance() + 5), kind="charge",
        source_type="request", source_id="req_overdrawn",
    )  # fmt: skip

    checks = {d.check for d in reconcile_run()}

    assert {"key", "negative"} <= checks
