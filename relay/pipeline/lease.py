"""This event loop's lease: every hold it places names it (billing/leases.py).

Registered before the loop's first hold, renewed every LEASE_RENEW_SECONDS by a
background task that also runs the hold sweep, so the survivors (or a successor) of a
process that died settle its holds within about a minute, and gives back the credit
leases the loop no longer uses (billing/credit_leases.py). Ended at shutdown, after the
loop's settlements are committed, with its credit leases.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref

from django.conf import settings

from billing import fastledger
from billing.holds import holds_sweep
from billing.leases import lease_end, lease_renew
from relay.db import in_db_thread
from relay.errors import stack_of

log = logging.getLogger(__name__)
_renew = in_db_thread(lease_renew)
_end = in_db_thread(lease_end)
_sweep = in_db_thread(holds_sweep)


class _Lease:
    def __init__(self) -> None:
        self.id = "ls_" + uuid.uuid4().hex
        self.registered = False
        self.lock = asyncio.Lock()
        self.keeper: asyncio.Task[None] | None = None

    async def keep(self) -> None:
        while True:
            await asyncio.sleep(settings.LEASE_RENEW_SECONDS)
            try:
                await _renew(lease_id=self.id, ttl_seconds=settings.LEASE_TTL_SECONDS)
                if fastledger.enabled():
                    await fastledger.ledger().credit.give_back_idle(lease=self.id)
                if settings.HOLD_SWEEP_IN_SERVER:
                    await _sweep()
            except Exception as exc:
                log.warning("lease %s renewal or sweep failed: %s", self.id, stack_of(exc))


_leases: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lease] = weakref.WeakKeyDictionary()


async def current_lease() -> str:
    """The running loop's lease id, registered on first use (one round trip, once)."""
    loop = asyncio.get_running_loop()
    lease = _leases.get(loop)
    if lease is None:
        lease = _leases[loop] = _Lease()
    if not lease.registered:
        async with lease.lock:
            if not lease.registered:
                await _renew(lease_id=lease.id, ttl_seconds=settings.LEASE_TTL_SECONDS)
                lease.registered = True
                lease.keeper = asyncio.ensure_future(lease.keep())
    return lease.id


async def start_lease() -> None:
    """Server startup: register now (else at the first hold) and start keeping it."""
    try:
        await current_lease()
    except Exception as exc:  # the database is not there yet: the first hold retries
        log.warning("lease registration failed at startup: %s", stack_of(exc))


async def end_lease() -> None:
    """Server shutdown, once the loop's settlements are committed."""
    lease = _leases.pop(asyncio.get_running_loop(), None)
    if lease is None or not lease.registered:
        return
    if lease.keeper is not None:
        lease.keeper.cancel()
    try:
        await _end(lease_id=lease.id)
    except Exception as exc:  # it lapses on its own
        log.warning("lease %s could not be ended: %s", lease.id, stack_of(exc))
