"""Credit leases: admit a request with no round trip, and write its hold behind it.

An event loop serving a busy wallet reserves a slice of the wallet's free credit
(th_lease_grant): at most RELAY_CREDIT_LEASE_MICROS and an eighth of what is free. A
request that fits in what is left of its loop's slice is admitted at once. Its hold is
written behind it by the ledger's writer, before the writer's settlements
(th_hold_carve_many): drawn from the slice, which the wallet's free credit tops up again
while the loop still uses it. A request's settlement waits for its hold, so from there on
it is settled like any other. What a slice admits was reserved in PostgreSQL before, so
no wallet funds more than it has, whatever the processes do.

A slice unused for a whole keeper tick goes back (relay/pipeline/lease.py), all of them
when the loop's lease ends, and the sweep gives back the slices of a lease that lapsed
(billing/leases.py). Failure cases: docs/architecture.md, "Credit leases".
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from django.conf import settings
from psycopg.types.json import Jsonb

from billing.holds import HoldAsked

if TYPE_CHECKING:
    from billing.fastledger import FastLedger

log = logging.getLogger(__name__)

SHARE = 8  # a slice takes at most this fraction of the wallet's free credit
WORTH = 4  # a slice is taken only if it can admit this many requests like the one asking
# Admitting costs no round trip, so nothing else holds requests back when the database
# falls behind: past this many holds or settlements waiting to be written, requests are
# held the usual way again (they wait for the database, and so do their clients).
BACKLOG = 128
BATCH_MAX = 256


@dataclass
class _Slice:
    remaining: int  # what this loop may still admit against
    size: int  # what it was granted, to refill up to
    used: bool = True  # since the last keeper tick


@dataclass
class _Carve(HoldAsked):
    done: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def json(self, ord_: int, *, refill: bool) -> dict[str, Any]:
        return {**self.batch_json(ord_), "refill": refill}


class CreditLeases:
    """One event loop's slices, on its fast ledger's connection pool."""

    def __init__(self, ledger: FastLedger) -> None:
        self._ledger = ledger
        self._slices: dict[int, _Slice] = {}
        self._parked: set[int] = set()  # wallets whose lease row may hold credit
        self._granting: set[int] = set()
        self._refused: set[int] = set()  # wallets with no slice to give, this keeper tick
        self._queue: list[_Carve] = []
        self._unwritten: dict[str, _Carve] = {}  # admitted, hold not written yet
        self._tasks: set[asyncio.Task[Any]] = set()
        # Grants and give-backs one at a time: a give-back must not race a grant in
        # flight for the same wallet and take back credit this loop then counts on.
        self._granting_lock = asyncio.Lock()

    def admit(
        self,
        *,
        reference: str,
        wallet_id: int,
        api_key_id: int | None,
        amount: int,
        ttl: float,
        lease: str,
        progress: dict[str, Any],
    ) -> bool:
        """Admit a request against this loop's slice of the wallet, its hold written
        behind it; False (nothing changed) when the slice cannot fund AMOUNT."""
        found = self._slices.get(wallet_id)
        if found is None or found.remaining < amount or amount <= 0:
            return False
        if len(self._unwritten) >= BACKLOG or self._ledger.backlog() >= BACKLOG:
            return False
        found.remaining -= amount
        found.used = True
        carve = _Carve(reference, wallet_id, api_key_id, amount, ttl, lease, progress)
        self._queue.append(carve)
        self._unwritten[reference] = carve
        self._ledger.wake()
        return True

    def written(self, reference: str) -> asyncio.Future[str] | None:
        """The future of REFERENCE's hold while it is being written behind, else None."""
        found = self._unwritten.get(reference)
        return found.done if found is not None else None

    def holds_credit(self, wallet_id: int) -> bool:
        """Whether this loop's lease may hold some of the wallet's credit."""
        return wallet_id in self._parked

    def want(self, *, wallet_id: int, amount: int, lease: str) -> None:
        """A request of AMOUNT was held the usual way: take a slice of its wallet (or top
        it up) in the background, if one can admit WORTH like it. A wallet that had none
        to give is asked again a keeper tick later, not at every request."""
        if wallet_id in self._granting:
            return
        found = self._slices.get(wallet_id)
        remaining = found.remaining if found is not None else 0
        if found is not None and remaining >= found.size // 2:
            return
        if wallet_id in self._refused:
            return
        most = settings.RELAY_CREDIT_LEASE_MICROS - remaining
        if most < amount * WORTH:
            return
        self._granting.add(wallet_id)
        self._spawn(self._grant(wallet_id, most, amount * WORTH, lease))

    async def give_back(self, *, wallet_id: int, lease: str) -> int:
        """End this loop's slice of the wallet now: what its lease row holds beyond the
        requests admitted and not yet written goes back. Returns how much went back."""
        async with self._granting_lock:
            self._slices.pop(wallet_id, None)
            keep = sum(c.amount for c in self._unwritten.values() if c.wallet_id == wallet_id)
            async with self._ledger.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT th_lease_return(%s, %s, %s)", (lease, wallet_id, keep)
                )
                row = await cur.fetchone()
        if not keep:
            self._parked.discard(wallet_id)
        return int(row[0]) if row else 0

    async def give_back_idle(self, *, lease: str) -> None:
        """A keeper tick: slices unused since the last tick go back."""
        self._refused.clear()
        for wallet_id, found in list(self._slices.items()):
            if found.used:
                found.used = False
            else:
                del self._slices[wallet_id]
        for wallet_id in list(self._parked - self._slices.keys()):
            try:
                await self.give_back(wallet_id=wallet_id, lease=lease)
            except Exception as exc:  # kept for the next tick, or the lease's end
                log.warning("credit lease of wallet %s not given back: %s", wallet_id,
                            type(exc).__name__)  # fmt: skip

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _grant(self, wallet_id: int, most: int, least: int, lease: str) -> None:
        try:
            await self._ledger._open()
            async with self._granting_lock:
                async with self._ledger.pool.connection() as conn:
                    cur = await conn.execute(
                        "SELECT th_lease_grant(%s, %s, %s, %s, %s)",
                        (lease, wallet_id, most, least, SHARE),
                    )
                    row = await cur.fetchone()
                granted = int(row[0]) if row else 0
                if not granted:
                    self._refused.add(wallet_id)
                else:
                    self._parked.add(wallet_id)
                    found = self._slices.get(wallet_id)
                    if found is None:
                        self._slices[wallet_id] = _Slice(remaining=granted, size=granted)
                    else:
                        found.remaining += granted
                        found.size = max(found.size, found.remaining)
        except Exception as exc:  # requests go on being held the usual way
            log.warning("credit lease of wallet %s not granted: %s", wallet_id,
                        type(exc).__name__)  # fmt: skip
        finally:
            self._granting.discard(wallet_id)

    def queued(self) -> bool:
        return bool(self._queue)

    async def flush(self) -> None:
        """Write the holds queued so far (the ledger's writer, before its settlements)."""
        while self._queue:
            batch, self._queue = self._queue[:BATCH_MAX], self._queue[BATCH_MAX:]
            outcomes: list[str]
            try:
                outcomes = await self._write(batch)
            except Exception:
                outcomes = []
                for carve in batch:  # one bad hold must not fail the others
                    try:
                        outcomes += await self._write([carve])
                    except Exception as exc:
                        log.error("hold of request %s not written: %s", carve.reference,
                                  type(exc).__name__)  # fmt: skip
                        outcomes.append("error")
            for carve, outcome in zip(batch, outcomes, strict=True):
                self._written(carve, outcome)

    async def _write(self, batch: list[_Carve]) -> list[str]:
        order = sorted(range(len(batch)), key=lambda n: (batch[n].wallet_id,
                                                         batch[n].api_key_id or 0))  # fmt: skip
        # A slice still in use is topped up again from the free credit; one given back
        # meanwhile is drawn down, so that nothing this loop no longer counts on stays
        # reserved.
        items = [batch[n].json(n, refill=batch[n].wallet_id in self._slices) for n in order]
        async with self._ledger.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT ord, outcome FROM th_hold_carve_many(%s)", (Jsonb(items, dumps=_dumps),)
            )
            rows = await cur.fetchall()
        found: dict[int, str] = dict(rows)
        return [found.get(n, "error") for n in range(len(batch))]

    def _written(self, carve: _Carve, outcome: str) -> None:
        self._unwritten.pop(carve.reference, None)
        found = self._slices.get(carve.wallet_id)
        if outcome == "free":
            if found is not None:  # the wallet's free credit topped the slice up again
                found.remaining = min(found.size, found.remaining + carve.amount)
        elif outcome != "drawn":
            # The slice is gone: the sweep gave it back while this loop stalled (the hold
            # was then funded by the free credit, 'unleased'), or neither could fund it or
            # the database failed: the request settles without a hold, logged and charged
            # nothing (billing/pg_functions.SETTLE_BATCH). No more admissions against it.
            level = logging.WARNING if outcome == "unleased" else logging.ERROR
            log.log(level, "hold of request %s written %s: its slice is dropped",
                    carve.reference, outcome)  # fmt: skip
            self._slices.pop(carve.wallet_id, None)
        if not carve.done.done():
            carve.done.set_result(outcome)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()
