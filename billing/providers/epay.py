"""EPay (易支付): the signed-redirect protocol Chinese gateways use for Alipay and WeChat Pay.

The customer is sent to `{EPAY_URL}submit.php` with signed parameters; the gateway calls
`notify_url` (GET or POST) with pid, trade_no, out_trade_no, type, name, money,
trade_status, sign, sign_type=MD5 and expects the plain text `success`. The signature is
md5 of the non-empty parameters except sign/sign_type, sorted by name, joined as
k=v&k=v, with the merchant key appended.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse

from billing.models import TopUp
from billing.providers.base import (
    Checkout,
    InvalidCallback,
    PaymentStatus,
    ProviderError,
    StatusReport,
)

NAME = "epay"
TRADE_SUCCESS = "TRADE_SUCCESS"


def sign(params: Mapping[str, str], key: str) -> str:
    signed = "&".join(
        f"{k}={params[k]}"
        for k in sorted(params)
        if k not in ("sign", "sign_type") and params[k] != ""
    )
    # MD5 is what the protocol specifies; it authenticates with the shared key here.
    return hashlib.md5((signed + key).encode(), usedforsecurity=False).hexdigest()


def money_to_minor(money: str) -> int:
    """'12.30' -> 1230; refuses anything that is not a plain amount in whole fen."""
    try:
        value = Decimal(money.strip())
    except InvalidOperation:
        raise InvalidCallback(f"not an amount: {money!r}") from None
    minor = value * 100
    if not value.is_finite() or minor != minor.to_integral_value():
        raise InvalidCallback(f"not an amount in whole fen: {money!r}")
    return int(minor)


def minor_to_money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


class EpayProvider:
    name = NAME

    @property
    def currency(self) -> str:
        return settings.EPAY_CURRENCY.upper()

    def configured(self) -> bool:
        return bool(settings.EPAY_URL and settings.EPAY_PID and settings.EPAY_KEY)

    def minor_amount(self, usd: Decimal) -> int:
        local = usd * Decimal(settings.EPAY_PRICE_PER_USD) * 100
        return int(local.to_integral_value(rounding=ROUND_HALF_UP))

    def create_payment(self, topup: TopUp) -> Checkout:
        # EPAY_TYPE empty leaves `type` out: the gateway's cashier lets the customer choose.
        method = settings.EPAY_TYPE
        site = settings.SITE_URL.rstrip("/")
        out_trade_no = f"TH{topup.pk}{secrets.token_hex(4).upper()}"
        params = {
            "pid": settings.EPAY_PID,
            "type": method,
            "out_trade_no": out_trade_no,
            "notify_url": site + reverse("billing-webhook-epay"),
            "return_url": site + reverse("billing-return"),
            "name": "TokenHub credit",
            "money": minor_to_money(topup.pay_amount),
        }
        if not method:
            del params["type"]
        params["sign"] = sign(params, settings.EPAY_KEY)
        params["sign_type"] = "MD5"
        base = settings.EPAY_URL.rstrip("/")
        return Checkout(ref=out_trade_no, url=f"{base}/submit.php?{urlencode(params)}")

    def query_status(self, topup: TopUp) -> StatusReport:
        # Gateways differ in their query API; the notify callback (retried by the
        # gateway) and the signed return page are what confirm EPay payments.
        return StatusReport(status=PaymentStatus.UNKNOWN)

    def refund(self, topup: TopUp, amount: int) -> str:
        raise ProviderError(
            "EPay refunds are made in the gateway's console; record them as an adjustment"
        )


def callback_verify(params: Mapping[str, str]) -> dict[str, str]:
    """The callback's parameters after checking merchant id and signature (constant time)."""
    if not EpayProvider().configured():
        raise InvalidCallback("EPay is not configured on this server")
    data = {k: str(v) for k, v in params.items()}
    given = data.get("sign", "")
    if not given or not hmac.compare_digest(given.lower(), sign(data, settings.EPAY_KEY)):
        raise InvalidCallback("invalid EPay signature")
    if data.get("pid") != settings.EPAY_PID:
        raise InvalidCallback("EPay callback for another merchant")
    for required in ("out_trade_no", "trade_no", "money", "trade_status"):
        if not data.get(required):
            raise InvalidCallback(f"EPay callback without {required}")
    return data
