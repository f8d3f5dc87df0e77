"""Step 9: charge, release the hold and log — exactly once, even if the client vanished.

What a request is billed is computed once, by `call_bill`, for its settlement and for
the cost its answer shows (headers, `usage.cost`). Settlement runs in its own task:
cancelling the request (client disconnect, server shutdown) never cancels the
settlement. Shutdown waits for pending settlements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from billing import fastledger
from billing.holds import Settlement, hold_settle
from billing.journal import progress_snapshot
from billing.pricing import Usage, cost_micros
from logs.records import RequestRecord
from relay.db import in_db_thread
from relay.metrics import collector
from relay.pipeline.meter import metered_usage

if TYPE_CHECKING:
    from relay.catalog import KeyInfo
    from relay.pipeline.call import Call

log = logging.getLogger(__name__)
_settle = in_db_thread(hold_settle)
_NO_USAGE = Usage()
_pending: set[asyncio.Task[None]] = set()
_in_flight = 0
_idle: asyncio.Event | None = None  # set when the last request in flight is done (drain)


class in_flight:
    """Counts requests between their start and their settlement (for drain and tests)."""

    def __enter__(self) -> None:
        global _in_flight
        _in_flight += 1

    def __exit__(self, *exc: object) -> None:
        global _in_flight
        _in_flight -= 1
        if not _in_flight and _idle is not None:
            _idle.set()


async def _run(settlement: Settlement) -> None:
    try:
        await _settle(settlement)
    except Exception as exc:
        # The hold stays in place and the sweep releases it; never log request content.
        log.error("settlement failed for request %s: %s", settlement.reference, type(exc).__name__)


def _text(value: str, limit: int) -> str:
    """VALUE as a database can store it: no NUL, no lone surrogate, at most LIMIT long.
    A log row is written for every request, whatever the client put in its model name."""
    return value.encode("utf-8", "replace").decode().replace("\x00", "")[:limit]


def log_row(call: Call, key: KeyInfo, bill: Bill | None) -> RequestRecord:
    """The request's log row as settlement writes it: metadata only, never content."""
    usage = bill.usage if bill else _NO_USAGE
    return RequestRecord(
        created_at=call.started_at,
        client_request_id=call.client_request_id,
        organization_id=key.organization_id,
        api_key_id=key.id,
        channel_id=call.channel_id,
        endpoint=call.endpoint,
        model=_text(call.model, 200),
        upstream_model=_text(call.upstream_model, 200),
        stream=call.stream,
        status_code=call.status,
        error_code=_text(call.error_code, 64),
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        usage_estimated=usage.estimated,
        upstream_cost=bill.upstream_cost if bill else None,
        latency_ms=call.elapsed_ms(),
        ttfb_ms=call.ttfb_ms,
        attempts=max(1, call.attempts),
        client_ip=call.client_ip,
        user_agent=_text(call.user_agent, 300),
        dropped_params=call.dropped_params[:300],
    )


@dataclass(frozen=True, slots=True)
class Bill:
    """What one request is billed: the same figures for its answer and its settlement."""

    usage: Usage
    cost: int  # micro-USD the usage is worth at the price sheet
    charge: int  # micro-USD billed: the cost capped by the hold (the rest is uncollected)
    billed_to: str  # "plan" or "balance"; "" when nothing was held
    balance: int | None  # the wallet's available credit after the charge, when known
    upstream_cost: int | None = None  # micro-USD the upstream charges the operator


def bill_for(call: Call, usage: Usage, cost: int) -> Bill:
    """The bill of CALL for USAGE worth COST: never more than its hold, as settlement
    charges (billing.holds.hold_settle), whoever funds it. Its upstream cost is the full
    USAGE at the serving channel's cost sheet, whatever the customer was charged."""
    charge = max(0, min(cost, call.hold))
    balance = call.available
    if balance is not None and call.funding == "balance":
        balance += call.hold - charge  # the hold is released, the charge taken
    return Bill(usage, cost, charge, call.funding, balance, upstream_cost(call, usage))


def upstream_cost(call: Call, usage: Usage) -> int | None:
    """What CALL's upstream charges the operator for USAGE: its channel's cost sheet for
    the upstream model, else the sale price sheet at list price (docs/economics.md),
    times the channel's cost multiplier. None when no upstream served the call."""
    sheet = call.cost_price or call.price
    if not call.served or sheet is None:
        return None
    return cost_micros(usage, sheet, call.cost_multiplier)


def call_bill(call: Call, *, reported: Usage | None, output_bytes: int, complete: bool) -> Bill:
    """A relayed call's bill from the upstream's usage report, or an estimate from the
    output it relayed (relay/pipeline/meter.py). Nothing for a call no upstream served.
    A pure function of its arguments and the call's price and hold: the cost an answer
    shows and the charge settled are the same number."""
    key = call.key
    if key is None or not call.served or call.price is None:
        return bill_for(call, _NO_USAGE, 0)
    usage = metered_usage(
        reported, prompt_estimate=call.prompt_estimate, output_bytes=output_bytes,
        complete=complete,
    )  # fmt: skip
    return bill_for(call, usage, cost_micros(usage, call.price, key.multiplier))


def opening_progress(call: Call, key: KeyInfo) -> dict[str, Any]:
    """The hold's first snapshot: if the process dies before the request settles, the
    sweep writes this log row (nothing charged; a stream journals better ones)."""
    return progress_snapshot(cost=0, record=log_row(call, key, None))


async def settle_call(call: Call, key: KeyInfo, bill: Bill) -> None:
    """Settle CALL for BILL: its log row, and the charge (settlement caps it by the hold
    and records any excess as uncollected, which is why it gets the full cost)."""
    await settle(
        Settlement(
            reference=call.request_id,
            wallet_id=key.wallet_id,
            api_key_id=key.id,
            cost=bill.cost,
            record=log_row(call, key, bill),
        )
    )


async def settle(settlement: Settlement) -> None:
    collector.request(settlement.record, settlement.cost)
    if fastledger.enabled():
        # Queued synchronously and committed by the ledger's writer task, whatever
        # happens to this one; no task of our own needed.
        await fastledger.ledger().settle(settlement)
        return
    task = asyncio.ensure_future(_run(settlement))
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    await asyncio.shield(task)


def pending() -> int:
    return len(_pending) + _in_flight


async def drain(timeout: float = 30.0) -> None:
    """Server shutdown: wait for the requests uvicorn cancelled to unwind (they settle as
    they do) and for their settlements."""
    global _idle
    deadline = time.monotonic() + timeout
    if _in_flight:
        _idle = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await _idle.wait()
        _idle = None
    if _pending:
        await asyncio.wait(list(_pending), timeout=max(0.1, deadline - time.monotonic()))
