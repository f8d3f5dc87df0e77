"""An invoice unpaid past its grace suspends the organization: every request is refused with
402 `invoice_overdue`, naming the invoice, in the caller's API format; staff marking the
transfer received serves the very next request (no wait for the key cache)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import openai
import pytest
from django.utils import timezone

from billing.invoices import invoice_mark_received, invoices_suspend_overdue
from billing.models import Invoice, Wallet
from tests.relay.conftest import Customer

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def overdue(ready: Customer) -> Invoice:
    """An open invoice of the customer, past its due date and grace, and the suspension."""
    Wallet.objects.filter(organization=ready.org).update(credit_limit=50_000_000)
    now = timezone.now()
    invoice = Invoice.objects.create(
        number=42,
        organization=ready.org,
        amount=7_000_000,
        issued_at=now - dt.timedelta(days=40),
        due_at=now - dt.timedelta(days=10),
    )
    assert invoices_suspend_overdue(now=now) == [ready.org.pk]
    return invoice


def _post(customer: Customer, path: str, body: dict[str, Any], headers: dict[str, str]):
    return httpx.post(customer.relay.url + path, json=body, headers=headers, timeout=30)


def test_an_overdue_invoice_refuses_requests_in_each_format(
    ready: Customer, overdue: Invoice, fake
) -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        ready.openai().chat.completions.create(**CHAT)
    assert refused.value.status_code == 402
    error = refused.value.body
    assert isinstance(error, dict) and error["code"] == "invoice_overdue"
    assert "Invoice INV-000042 is overdue" in error["message"]
    assert "/dashboard/billing/" in error["message"]

    anthropic = _post(
        ready, "/v1/messages", {**CHAT, "max_tokens": 50},
        {"x-api-key": ready.secret, "anthropic-version": "2023-06-01"},
    )  # fmt: skip
    assert anthropic.status_code == 402
    assert anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "billing_error"
    assert "INV-000042" in anthropic.json()["error"]["message"]

    gemini = _post(
        ready, "/v1beta/models/gpt-4o-mini:generateContent",
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        {"x-goog-api-key": ready.secret},
    )  # fmt: skip
    assert gemini.status_code == 402 and "INV-000042" in gemini.json()["error"]["message"]
    assert fake.requests == []  # refused before any upstream call


def test_marking_it_received_serves_the_next_request_at_once(
    ready: Customer, overdue: Invoice, settings
) -> None:
    settings.RELAY_KEY_CACHE_SECONDS = 3600  # only the key-change broadcast can lift it
    headers = {"authorization": f"Bearer {ready.secret}"}
    assert _post(ready, "/v1/chat/completions", CHAT, headers).status_code == 402

    assert invoice_mark_received(invoice_id=overdue.pk, reference="wire 9", marked_by=None)

    assert _post(ready, "/v1/chat/completions", CHAT, headers).status_code == 200
