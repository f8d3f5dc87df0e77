"""EPay (易支付): signed redirect, MD5-verified notify with an amount check, plain `success`,
exactly-once crediting, and the signed synchronous return page."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlparse

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import Organization
from billing.models import LedgerEntry, PaymentEvent, TopUp
from tests.billing.conftest import EPAY_KEY, EPAY_PID, balance, create_topup

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def _sign(params: dict[str, str], key: str = EPAY_KEY) -> str:
    # Written out independently of billing.providers.epay, from the protocol description.
    pairs = sorted((k, v) for k, v in params.items() if k not in ("sign", "sign_type") and v)
    text = "&".join(f"{k}={v}" for k, v in pairs) + key
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324  (the protocol's choice)


def _notify(topup: TopUp, *, money: str | None = None, status: str = "TRADE_SUCCESS",
            key: str = EPAY_KEY, trade_no: str = "2026112200001") -> dict[str, str]:  # fmt: skip
    params = {
        "pid": EPAY_PID,
        "trade_no": trade_no,
        "out_trade_no": topup.provider_ref,
        "type": "alipay",
        "name": "TokenHub credit",
        "money": money or f"{topup.pay_amount // 100}.{topup.pay_amount % 100:02d}",
        "trade_status": status,
    }
    params["sign"] = _sign(params, key)
    params["sign_type"] = "MD5"
    return params


def test_it_redirects_to_a_signed_submit_url(
    owner_client: Client, org: Organization, epay: None
) -> None:
    topup = create_topup(owner_client, "10", provider="epay")

    url = urlparse(topup.redirect_url)
    params = dict(parse_qsl(url.query))
    assert (url.scheme, url.netloc, url.path) == ("https", "pay.example.test", "/submit.php")
    assert params["pid"] == EPAY_PID and params["out_trade_no"] == topup.provider_ref
    assert params["money"] == "72.00"  # 10 USD at 7.2 CNY per USD
    assert (topup.currency, topup.pay_amount) == ("CNY", 7200)
    assert params["notify_url"].endswith("/billing/webhooks/epay/")
    assert params["return_url"].endswith("/billing/return/")
    assert params["sign_type"] == "MD5" and params["sign"] == _sign(params)


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_good_notify_credits_once_however_often_it_is_repeated(
    owner_client: Client, client: Client, org: Organization, epay: None, method: str
) -> None:
    topup = create_topup(owner_client, "10", provider="epay")
    params = _notify(topup)

    replies = [getattr(client, method)("/billing/webhooks/epay/", params) for _ in range(3)]

    assert [(r.status_code, r.content) for r in replies] == [(200, b"success")] * 3
    assert replies[0]["Content-Type"].startswith("text/plain")
    assert balance(org) == 10_000_000
    topup.refresh_from_db()
    assert topup.state == TopUp.State.PAID and topup.provider_payment_id == "2026112200001"
    assert LedgerEntry.objects.filter(kind="topup").count() == 1


@pytest.mark.parametrize("tamper", ["bad-sign", "wrong-key", "other-merchant", "no-sign"])
def test_a_notify_that_fails_verification_changes_nothing(
    owner_client: Client, client: Client, org: Organization, epay: None, tamper: str
) -> None:
    topup = create_topup(owner_client, "10", provider="epay")
    params = _notify(topup)
    if tamper == "bad-sign":
        params["money"] = "0.01"  # signed for 72.00
    elif tamper == "wrong-key":
        params = _notify(topup, key="guessed-key")
    elif tamper == "other-merchant":
        params["pid"] = "9999"
        params["sign"] = _sign(params)
    else:
        del params["sign"]

    reply = client.get("/billing/webhooks/epay/", params)

    assert (reply.status_code, reply.content) == (400, b"fail")
    assert balance(org) == 0 and not PaymentEvent.objects.exists()
    assert TopUp.objects.get(pk=topup.pk).state == TopUp.State.PENDING


def test_a_correctly_signed_notify_with_another_amount_is_rejected(
    owner_client: Client, client: Client, org: Organization, epay: None
) -> None:
    topup = create_topup(owner_client, "10", provider="epay")

    reply = client.get("/billing/webhooks/epay/", _notify(topup, money="0.72"))
    good = client.get("/billing/webhooks/epay/", _notify(topup))

    assert (reply.status_code, reply.content) == (400, b"fail")
    assert (
        "expected 7200" in PaymentEvent.objects.get(event_type="TRADE_SUCCESS", error__gt="").error
    )
    assert good.content == b"success"
    assert balance(org) == 10_000_000  # the real payment still credits, once


def test_an_unpaid_status_is_acknowledged_without_credit(
    owner_client: Client, client: Client, org: Organization, epay: None
) -> None:
    topup = create_topup(owner_client, "10", provider="epay")

    reply = client.get("/billing/webhooks/epay/", _notify(topup, status="WAIT_BUYER_PAY"))

    assert reply.content == b"success"
    assert balance(org) == 0


def test_the_signed_return_page_credits_when_the_notify_is_late(
    owner_client: Client, org: Organization, epay: None
) -> None:
    topup = create_topup(owner_client, "10", provider="epay")

    page = owner_client.get("/billing/return/", _notify(topup))
    notify = Client().get("/billing/webhooks/epay/", _notify(topup))

    assert page.status_code == 200 and "Thank you" in page.content.decode()
    assert notify.content == b"success"
    assert balance(org) == 10_000_000


def test_an_unsigned_return_page_credits_nothing(
    owner_client: Client, org: Organization, epay: None
) -> None:
    topup = create_topup(owner_client, "10", provider="epay")
    params = _notify(topup)
    params["sign"] = "0" * 32

    page = owner_client.get("/billing/return/", params)

    assert page.status_code == 200
    assert balance(org) == 0


@pytest.mark.parametrize("method", ["wxpay", ""])
def test_the_payment_type_is_configurable(
    owner_client: Client, epay: None, settings: SettingsWrapper, method: str
) -> None:
    settings.EPAY_TYPE = method

    topup = create_topup(owner_client, "10", provider="epay")

    params = dict(parse_qsl(urlparse(topup.redirect_url).query))
    assert params.get("type") == (method or None)
    assert params["sign"] == _sign(params)
