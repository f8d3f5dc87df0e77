"""The relay's ledger path on PostgreSQL: no ORM, no thread hop, settlements batched.

- `credit` (billing/credit_leases.py): requests admitted against this loop's slice of a
  busy wallet, with no round trip; their holds are written behind, by the writer, before
  its settlements.
- `place`: one round trip on psycopg's own async pool. Holds asked for while a round
  trip is in flight wait for it and then go together in the next (th_hold_place_many):
  an idle ledger sends a hold at once (no timer, no added latency), a busy one sends
  one round trip for many holds.
- `settle`: queued; a writer task per event loop commits queued settlements together,
  with one statement (pg_functions.SETTLE_BATCH), a batch waiting up to
  RELAY_SETTLE_WINDOW_MS for company once the writer is idle. A caller
  awaits its own commit, so nothing is reported settled before it is. A batch that fails
  (say, a deadlock victim) is retried whole, then item by item; settling is idempotent,
  so a retry never charges twice. What a killed process never settled stays a hold until
  its lease lapses and the sweep settles it from its journal (billing/journal.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from billing import caps
from billing.caps import Cap
from billing.credit_leases import CreditLeases
from billing.exceptions import CapReached, InsufficientBalance
from billing.holds import (
    NO_ADMISSION,
    Admission,
    HoldAsked,
    KeyLimitExceeded,
    Placed,
    Settlement,
)
from billing.pg_functions import SETTLE_BATCH

log = logging.getLogger(__name__)

BATCH_MAX = 256
HOLD_WAIT_SECONDS = 30.0  # a cancelled caller waits this long to learn how its hold ended


def enabled() -> bool:
    db = settings.DATABASES["default"]
    return bool(db["ENGINE"] == "django.db.backends.postgresql" and settings.RELAY_FAST_LEDGER)


def _conninfo() -> str:
    from psycopg.conninfo import make_conninfo

    db = settings.DATABASES["default"]
    return make_conninfo(
        dbname=db["NAME"],
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=str(db["PORT"]) if db.get("PORT") else None,
        application_name="tokenhub-relay",
    )


@dataclass
class _Hold(HoldAsked):
    admission: Admission
    done: asyncio.Future[tuple[str, int]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def json(self, ord_: int) -> dict[str, Any]:
        terms = self.admission
        plan = terms.subscription_id is not None
        return {
            **self.batch_json(ord_),
            "sub": terms.subscription_id,
            "fallback": terms.fallback,
            "plan_caps": [cap.json() for cap in terms.plan_caps],
            "caps": [cap.json() for cap in terms.caps],
            "meters": terms.meters(plan=plan),
        }


@dataclass
class _Item:
    settlement: Settlement
    written: asyncio.Future[str] | None  # its hold, while written behind (credit_leases)
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class FastLedger:
    """One per event loop: a connection pool and a settlement writer."""

    def __init__(self) -> None:
        self.pool = AsyncConnectionPool(
            _conninfo(),
            min_size=1,
            max_size=settings.RELAY_DB_POOL_MAX,
            kwargs={"autocommit": True},
            open=False,
        )
        self._holds: list[_Hold] = []
        self._holder: asyncio.Task[None] | None = None
        self._queue: list[_Item] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._committing: set[asyncio.Future[bool]] = set()
        self._opened = False
        self.credit = CreditLeases(self)

    async def _open(self) -> None:
        if not self._opened:
            self._opened = True
            await self.pool.open()

    async def place(
        self,
        *,
        reference: str,
        wallet_id: int,
        api_key_id: int | None,
        amount: int,
        ttl: float,
        lease: str = "",
        progress: dict[str, Any] | None = None,
        admission: Admission = NO_ADMISSION,
    ) -> Placed:
        """holds.hold_place in one round trip, shared with the holds asked for while the
        previous one was in flight; the same outcomes and exceptions."""
        hold = _Hold(reference, wallet_id, api_key_id, amount, ttl, lease, progress or {},
                     admission)  # fmt: skip
        self._holds.append(hold)
        if self._holder is None or self._holder.done():
            self._holder = asyncio.ensure_future(self._hold_loop())
        try:
            outcome, available = await asyncio.shield(hold.done)
        except asyncio.CancelledError:
            # The hold is on its way: learn how it ended, so that the caller's
            # settlement (which releases it) is queued after it, never before.
            await asyncio.wait({hold.done}, timeout=HOLD_WAIT_SECONDS)
            raise
        if outcome in ("plan", "balance"):
            return Placed(funding=outcome, available=available)
        if outcome == "key":
            raise KeyLimitExceeded("this API key has reached its spend limit")
        kind, _, index = outcome.partition(":")
        if kind in ("window", "cap"):
            raise CapReached(int(index), window=kind == "window")
        raise InsufficientBalance("insufficient balance")

    async def _hold_loop(self) -> None:
        while self._holds:
            batch, self._holds = self._holds[:BATCH_MAX], self._holds[BATCH_MAX:]
            try:
                await self._open()
                if len(batch) == 1:  # an idle ledger: the plain call, no batch overhead
                    results = [await self._place_alone(batch[0])]
                else:
                    results = await self._place_many(batch)
            except Exception:
                # One bad hold must not fail the others: each alone (th_hold_place).
                results = [await self._place_alone(hold) for hold in batch]
            for hold, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    hold.done.set_exception(result)
                else:
                    hold.done.set_result(result)

    async def _place_many(self, batch: list[_Hold]) -> list[tuple[str, int] | BaseException]:
        # Sorted in lock order: wallet, then key.
        order = sorted(range(len(batch)), key=lambda n: (batch[n].wallet_id,
                                                         batch[n].api_key_id or 0))  # fmt: skip
        items = [batch[n].json(n) for n in order]
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT ord, outcome, available FROM th_hold_place_many(%s, %s)",
                (Jsonb(items, dumps=_dumps), caps.clock()),
            )
            rows = await cur.fetchall()
        found: dict[int, tuple[str, int]] = {
            n: (outcome, available) for n, outcome, available in rows
        }
        return [found.get(n, ("low", 0)) for n in range(len(batch))]

    async def _place_alone(self, hold: _Hold) -> tuple[str, int] | BaseException:
        terms = hold.admission
        plan = terms.subscription_id is not None
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT outcome, available FROM th_hold_place("
                    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (hold.reference, hold.wallet_id, hold.api_key_id, hold.amount, hold.ttl,
                     hold.lease, Jsonb(hold.progress, dumps=_dumps), caps.clock(),
                     terms.subscription_id, terms.fallback, _caps_json(terms.plan_caps),
                     _caps_json(terms.caps), Jsonb(terms.meters(plan=plan), dumps=_dumps)),
                )  # fmt: skip
                row = await cur.fetchone()
        except Exception as exc:
            return exc
        return (row[0], row[1]) if row else ("low", 0)

    async def settle(self, settlement: Settlement) -> bool:
        """Queue SETTLEMENT and wait for its commit. Queued before the first await, so a
        cancelled caller (client gone, shutdown) still gets settled."""
        item = _Item(settlement, self.credit.written(settlement.reference))
        self._queue.append(item)
        self.wake()
        return await asyncio.shield(item.done)

    def backlog(self) -> int:
        """Settlements queued or being committed."""
        return len(self._queue) + len(self._committing)

    def wake(self) -> None:
        """Something to write: settlements, or holds written behind (credit_leases)."""
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_loop())

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if len(self._queue) < BATCH_MAX:
                # let concurrent requests join the batch
                await asyncio.sleep(settings.RELAY_SETTLE_WINDOW_MS / 1000)
            while self._queue or self.credit.queued():
                await self._open()
                # Holds written behind go first: a request's settlement finds its hold.
                await self.credit.flush()
                batch, self._queue = self._queue[:BATCH_MAX], self._queue[BATCH_MAX:]
                if batch:
                    self._committing = {item.done for item in batch}
                    await self._commit(batch)
                    self._committing = set()

    async def _commit(self, batch: list[_Item]) -> None:
        await self._open()
        # A hold written behind its request goes in before the request settles.
        unwritten = [i.written for i in batch if i.written is not None and not i.written.done()]
        if unwritten:
            await asyncio.wait(unwritten, timeout=HOLD_WAIT_SECONDS)
        # Wallet then key, like th_hold_place: concurrent batches cannot deadlock.
        batch.sort(key=lambda i: (i.settlement.wallet_id, i.settlement.api_key_id or 0))
        results: list[bool] = []
        for attempt in (1, 2):
            try:
                async with self.pool.connection() as conn:
                    results = await _settle_many(conn, [i.settlement for i in batch])
                break
            except Exception as exc:
                log.warning(
                    "settlement batch of %d failed (%s), attempt %d",
                    len(batch),
                    type(exc).__name__,
                    attempt,
                )
        else:
            for item in batch:
                try:
                    async with self.pool.connection() as conn:
                        results += await _settle_many(conn, [item.settlement])
                except Exception as item_exc:
                    log.error(
                        "settlement failed for request %s: %s",
                        item.settlement.reference,
                        type(item_exc).__name__,
                    )
                    results.append(False)
        for item, ok in zip(batch, results, strict=True):
            if not item.done.done():
                item.done.set_result(ok)

    async def drain(self) -> None:
        """Wait until everything queued so far is committed (server shutdown)."""
        pending = [item.done for item in self._queue] + list(self._committing)
        if pending:
            await asyncio.wait(pending, timeout=60)

    async def close(self) -> None:
        self.credit.close()
        if self._holder is not None:
            self._holder.cancel()
        if self._writer is not None:
            self._writer.cancel()
        if self._opened:
            await self.pool.close()


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _caps_json(found: tuple[Cap, ...]) -> Jsonb:
    return Jsonb([cap.json() for cap in found], dumps=_dumps)


def _first_of_each(items: list[Settlement]) -> dict[str, int]:
    first: dict[str, int] = {}
    for n, s in enumerate(items):
        first.setdefault(s.reference, n)
    return first


def batch_parameters(items: list[Settlement]) -> dict[str, Any]:
    """SETTLE_BATCH's parameters for ITEMS: each reference once, its first occurrence."""
    first = _first_of_each(items)
    unique = [items[n] for n in sorted(first.values())]
    rows = [
        {
            "reference": s.reference,
            "wallet_id": s.wallet_id,
            "api_key_id": s.api_key_id,
            "cost": s.cost,
            "ord": n,
        }
        for n, s in enumerate(unique)
    ]
    logs = [{**s.record.columns(), "request_id": s.reference, "cost": s.cost} for s in unique]
    return {
        "items": Jsonb(rows, dumps=_dumps),
        "logs": Jsonb(logs, dumps=_dumps),
        "now": caps.clock(),
    }


async def _settle_many(conn: AsyncConnection[Any], items: list[Settlement]) -> list[bool]:
    """Settle ITEMS with one statement (one round trip); True for each newly settled.

    A reference twice in ITEMS is settled once: only its first occurrence can be True.
    """
    first = _first_of_each(items)
    cur = await conn.execute(SETTLE_BATCH, batch_parameters(items))
    settled = {row[0] for row in await cur.fetchall()}
    return [s.reference in settled and first[s.reference] == n for n, s in enumerate(items)]


_ledgers: dict[int, FastLedger] = {}


def ledger() -> FastLedger:
    loop_id = id(asyncio.get_running_loop())
    found = _ledgers.get(loop_id)
    if found is None:
        found = _ledgers[loop_id] = FastLedger()
    return found


async def close() -> None:
    found = _ledgers.pop(id(asyncio.get_running_loop()), None)
    if found is not None:
        await found.drain()
        await found.close()
