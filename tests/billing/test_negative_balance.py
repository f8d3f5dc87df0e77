"""Policy: a refund or dispute may drive the balance below zero. The organization can still
sign in and top up, but its keys are refused (402) until the balance is positive again,
because every request must first hold credit it has available."""

from __future__ import annotations

import httpx
import pytest
from django.test import Client

from billing.codes import redemption_batch_create
from billing.models import Wallet
from billing.services import wallet_adjust
from tests.billing.conftest import create_topup, post_stripe, process_pending
from tests.billing.test_codes import _redeem
from tests.fakes.stripe_api import FakeStripe
from tests.relay.conftest import (
    Customer,
    customer,
    fake,
    fake_upstream,
    openai_channel,
    priced,
    ready,
    relay,
    relay_server,
)

__all__ = ["customer", "fake", "fake_upstream", "openai_channel", "priced", "ready", "relay",
           "relay_server"]  # fmt: skip

pytestmark = pytest.mark.embedded

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _chat(customer: Customer) -> int:
    response = httpx.post(
        customer.base_url + "/chat/completions",
        headers={"authorization": f"Bearer {customer.secret}"},
        json=CHAT,
        timeout=30,
    )
    return response.status_code


def test_a_dispute_that_makes_the_balance_negative_stops_the_keys_until_topped_up(
    ready: Customer, fake_stripe: FakeStripe
) -> None:
    client = Client()
    client.force_login(ready.user)
    topup = create_topup(client, "5")
    post_stripe(
        client, fake_stripe.event("checkout.session.completed", fake_stripe.pay(topup.provider_ref))
    )
    process_pending()
    wallet_adjust(organization=ready.org, amount=-14_000_000, reason="spent", created_by=None)
    assert _chat(ready) == 200

    dispute = fake_stripe.dispute(fake_stripe.charge_for(topup.provider_ref)["id"])
    post_stripe(client, fake_stripe.event("charge.dispute.created", dispute))
    process_pending()

    assert Wallet.objects.get(organization=ready.org).balance < 0
    assert _chat(ready) == 402
    assert client.get("/dashboard/billing/").status_code == 200  # can still sign in, pay

    code = redemption_batch_create(name="rescue", count=1, amount=10_000_000).codes[0]
    assert _redeem(client, code)[0] == 200
    assert _chat(ready) == 200
