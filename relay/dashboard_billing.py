"""`/dashboard/billing/subscription` and `/usage`: what OpenAI-compatible clients read to
show a key's limit and spend. Not on the hot path (one database read per call)."""

from __future__ import annotations

from decimal import Decimal

from relay.asgi_io import Send, send_json
from relay.catalog import KeyInfo
from relay.db import in_db_thread


def _billing_figures(key_id: int) -> tuple[int, int, int | None]:
    """(available credit, key spend, key limit) in micro-USD."""
    from accounts.models import ApiKey

    key = ApiKey.objects.select_related("organization__wallet").get(pk=key_id)
    wallet = key.organization.wallet
    return wallet.balance - wallet.held, key.spent, key.spend_limit


def _usd(micros: int) -> float:
    # OpenAI's billing endpoints answer in JSON numbers; converted only at this edge.
    return float(Decimal(micros) / 1_000_000)


async def billing_answer(key: KeyInfo, send: Send, kind: str, headers: dict[str, str]) -> None:
    available, spent, limit = await in_db_thread(_billing_figures)(key.id)
    if kind == "usage":
        await send_json(send, 200, {"object": "list", "total_usage": _usd(spent) * 100}, headers)
        return
    # Clients show hard_limit_usd - total_usage as what is left.
    hard = _usd(limit) if limit is not None else _usd(max(0, available) + spent)
    expires = int(key.expires_at.timestamp()) if key.expires_at else 0
    await send_json(
        send,
        200,
        {
            "object": "billing_subscription",
            "has_payment_method": True,
            "soft_limit_usd": hard,
            "hard_limit_usd": hard,
            "system_hard_limit_usd": hard,
            "access_until": expires,
        },
        headers,
    )
