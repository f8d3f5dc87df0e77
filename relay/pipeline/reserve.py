"""Step 6: hold the request's worst-case cost before any upstream is called.

The hold is funded by the organization's plan when the plan covers the model and its
windows have room, else by the wallet (when the organization allows falling back). The
key's and organization's caps are checked with it, in the same atomic step
(billing/caps.py). On PostgreSQL, a request with no plan, caps or key spend limit to
count is admitted against this event loop's credit lease when it has one, with no round
trip; its hold is written behind it (billing/credit_leases.py)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from django.conf import settings

from billing import caps as billing_caps
from billing import fastledger
from billing.caps import CONCURRENT, USD, Cap
from billing.exceptions import CapReached, InsufficientBalance
from billing.holds import Admission, KeyLimitExceeded, Placed, hold_place, hold_release
from billing.windows import CapUse, cap_use
from money import micros_to_usd
from relay.catalog import KeyInfo
from relay.db import in_db_thread
from relay.errors import RelayError, insufficient_quota
from relay.pipeline.call import Call
from relay.pipeline.lease import current_lease

_place = in_db_thread(hold_place)
_release = in_db_thread(hold_release)
_cap_use = in_db_thread(cap_use)


def admission(key: KeyInfo, model: str) -> Admission:
    plan = key.plan
    if plan is None or not plan.covers(model):
        return Admission(caps=key.caps) if key.caps else Admission()
    return Admission(
        subscription_id=plan.subscription_id,
        plan_caps=plan.caps,
        fallback=key.plan_fallback,
        caps=key.caps,
    )


async def reserve(
    call: Call, *, key: KeyInfo, model: str, amount: int, progress: dict[str, Any]
) -> None:
    """Hold AMOUNT under this process's lease; PROGRESS is what the sweep would settle
    if the process died now (the log row, nothing charged). Sets call.hold, call.funding
    and call.available."""
    lease = await current_lease()
    terms = admission(key, model)
    placed: Placed
    try:
        if fastledger.enabled():
            ledger = fastledger.ledger()
            leasable = _leasable(key, terms)
            if leasable and ledger.credit.admit(
                reference=call.request_id,
                wallet_id=key.wallet_id,
                api_key_id=key.id,
                amount=amount,
                ttl=settings.HOLD_TTL_SECONDS,
                lease=lease,
                progress=progress,
            ):
                # The balance after it is not known here: no X-TokenHub-Balance.
                call.hold, call.funding, call.available = amount, "balance", None
                return
            placed = await _place_fast(
                ledger, call, key=key, amount=amount, lease=lease, progress=progress,
                terms=terms, leasable=leasable,
            )  # fmt: skip
        else:
            placed = await _place(
                reference=call.request_id,
                wallet_id=key.wallet_id,
                api_key_id=key.id,
                amount=amount,
                ttl_seconds=settings.HOLD_TTL_SECONDS,
                lease=lease,
                progress=progress,
                admission=terms,
            )
    except CapReached as exc:
        cap = (terms.plan_caps if exc.window else terms.caps)[exc.index]
        raise await cap_refusal(cap, amount) from None
    except KeyLimitExceeded:
        raise insufficient_quota(
            "This API key has reached its spend limit. Raise the limit or use another key."
        ) from None
    except InsufficientBalance:
        raise insufficient_quota(
            "Your balance is too low for this request. Top up your account to continue."
        ) from None
    call.hold = amount
    call.funding = placed.funding
    call.available = placed.available


def _leasable(key: KeyInfo, terms: Admission) -> bool:
    """Whether a credit lease may admit the request: nothing to count but the wallet."""
    return (
        settings.RELAY_CREDIT_LEASE_MICROS > 0
        and terms.subscription_id is None
        and not terms.caps
        and not key.spend_limited
    )


async def _place_fast(
    ledger: fastledger.FastLedger,
    call: Call,
    *,
    key: KeyInfo,
    amount: int,
    lease: str,
    progress: dict[str, Any],
    terms: Admission,
    leasable: bool,
) -> Placed:
    """The hold in one round trip. A leasable request asks for a credit lease after it;
    one refused while this loop's lease holds some of the wallet's credit gives that
    back and asks once more (the credit it lacked may be in that lease)."""

    async def place() -> Placed:
        return await ledger.place(
            reference=call.request_id,
            wallet_id=key.wallet_id,
            api_key_id=key.id,
            amount=amount,
            ttl=settings.HOLD_TTL_SECONDS,
            lease=lease,
            progress=progress,
            admission=terms,
        )

    try:
        placed = await place()
    except InsufficientBalance:
        if not ledger.credit.holds_credit(key.wallet_id):
            raise
        await ledger.credit.give_back(wallet_id=key.wallet_id, lease=lease)
        placed = await place()
    if leasable and placed.funding == "balance":
        ledger.credit.want(wallet_id=key.wallet_id, amount=amount, lease=lease)
    return placed


async def release(*, reference: str) -> None:
    await _release(reference=reference)


def _usd(micros: int) -> str:
    """$4.80, $0.000125: cents at least, every micro-dollar that is there."""
    whole, _, frac = micros_to_usd(micros).partition(".")
    return f"${whole}.{frac.rstrip('0').ljust(2, '0')}"


async def cap_refusal(cap: Cap, amount: int) -> RelayError:
    """429 naming CAP, with Retry-After set to when it frees enough for this request; 400
    when the request could never fit in it."""
    now = billing_caps.clock()
    use = await _cap_use(cap, now=now)
    need = amount if cap.unit == USD else 1
    label = cap.label[0].upper() + cap.label[1:]
    if need > cap.limit:
        return RelayError(
            400,
            f"{label}: this request may cost up to {_usd(need)}, more than the "
            f"{_usd(cap.limit)} it allows. Ask for fewer output tokens (max_tokens).",
            code="request_exceeds_cap",
        )
    message, code = _describe(cap, use, need)
    retry = use.retry_at(need, now)
    if retry is None:  # only requests in flight stand in the way
        seconds = 1
        message += " Retry when a request in flight finishes."
    else:
        seconds = max(1, math.ceil((retry - now).total_seconds()))
        if cap.unit != CONCURRENT:
            message += f" It frees up enough at {_when(retry)}."
    return RelayError(
        429,
        message,
        type="rate_limit_error",
        code=code,
        headers={"retry-after": str(seconds)},
    )


def _describe(cap: Cap, use: CapUse, need: int) -> tuple[str, str]:
    label = cap.label[0].upper() + cap.label[1:]
    if cap.unit == CONCURRENT:
        return f"{label}: at most {cap.limit}, all in use.", "concurrency_limit_reached"
    code = "plan_window_exhausted" if cap.meter.startswith("s") else (
        "spend_cap_reached" if cap.unit == USD else "request_cap_reached"
    )  # fmt: skip
    if cap.unit == USD:
        in_flight = f", {_usd(use.in_flight)} held by requests in flight" if use.in_flight else ""
        return (
            f"{label} is used up: {_usd(use.used)} of {_usd(cap.limit)} used{in_flight}; "
            f"this request may cost up to {_usd(need)}.",
            code,
        )
    in_flight = f", {use.in_flight} in flight" if use.in_flight else ""
    return f"{label} is used up: {use.used} of {cap.limit} requests{in_flight}.", code


def _when(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
