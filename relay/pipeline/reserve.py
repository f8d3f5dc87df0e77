"""Step 3: hold the request's worst-case cost before any upstream is called.

The hold is funded by the organization's plan when the plan covers the model and its
windows have room, else by the wallet (when the organization allows falling back). The
key's and organization's caps are checked with it, in the same atomic step."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from billing import fastledger
from billing.exceptions import InsufficientBalance
from billing.holds import KeyLimitExceeded, hold_place, hold_release
from relay.call import Call
from relay.catalog import KeyInfo
from relay.db import in_db_thread
from relay.errors import insufficient_quota
from relay.pipeline.lease import current_lease

_place = in_db_thread(hold_place)
_release = in_db_thread(hold_release)


async def reserve(
    call: Call, *, key: KeyInfo, model: str, amount: int, progress: dict[str, Any]
) -> None:
    """Hold AMOUNT under this process's lease; PROGRESS is what the sweep would settle
    if the process died now (the log row, nothing charged). Sets call.hold, call.funding
    and call.available."""
    lease = await current_lease()
    reference = call.request_id
    try:
        if fastledger.enabled():
            await fastledger.ledger().place(
                reference=reference,
                wallet_id=key.wallet_id,
                api_key_id=key.id,
                amount=amount,
                ttl=settings.HOLD_TTL_SECONDS,
                lease=lease,
                progress=progress,
            )
        else:
            await _place(
                reference=reference,
                wallet_id=key.wallet_id,
                api_key_id=key.id,
                amount=amount,
                ttl_seconds=settings.HOLD_TTL_SECONDS,
                lease=lease,
                progress=progress,
            )
    except KeyLimitExceeded:
        raise insufficient_quota(
            "This API key has reached its spend limit. Raise the limit or use another key."
        ) from None
    except InsufficientBalance:
        raise insufficient_quota(
            "Your balance is too low for this request. Top up your account to continue."
        ) from None
    call.hold = amount
    call.funding = "balance"


async def release(*, reference: str) -> None:
    await _release(reference=reference)
