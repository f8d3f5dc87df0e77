"""Step 3: hold the request's worst-case cost before any upstream is called."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from billing import fastledger
from billing.exceptions import InsufficientBalance
from billing.holds import KeyLimitExceeded, hold_place, hold_release
from relay.db import in_db_thread
from relay.errors import insufficient_quota
from relay.pipeline.lease import current_lease

_place = in_db_thread(hold_place)
_release = in_db_thread(hold_release)


async def reserve(
    *, reference: str, wallet_id: int, api_key_id: int, amount: int, progress: dict[str, Any]
) -> None:
    """Hold AMOUNT under this process's lease; PROGRESS is what the sweep would settle
    if the process died now (the log row, nothing charged)."""
    lease = await current_lease()
    try:
        if fastledger.enabled():
            await fastledger.ledger().place(
                reference=reference,
                wallet_id=wallet_id,
                api_key_id=api_key_id,
                amount=amount,
                ttl=settings.HOLD_TTL_SECONDS,
                lease=lease,
                progress=progress,
            )
        else:
            await _place(
                reference=reference,
                wallet_id=wallet_id,
                api_key_id=api_key_id,
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


async def release(*, reference: str) -> None:
    await _release(reference=reference)
