"""A stream's journal: what it has delivered so far, written about once a second, so a
stream cut by its process's death is charged for that by the sweep (billing/journal.py).

The write never delays the stream: it runs in its own task, at most one at a time per
stream, and a failed write is logged and skipped (the previous snapshot stands).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from django.conf import settings

from billing.holds import hold_progress_set
from billing.journal import journal_keep_seconds, journal_key
from relay import redis_client
from relay.db import in_db_thread

log = logging.getLogger(__name__)
_progress_set = in_db_thread(hold_progress_set)


async def _write(reference: str, snapshot: dict[str, Any]) -> None:
    try:
        client = redis_client.redis()
        if client is None:
            await _progress_set(reference=reference, progress=snapshot)
        else:
            await client.set(
                journal_key(reference), orjson.dumps(snapshot), ex=journal_keep_seconds()
            )
    except Exception as exc:
        log.warning("journal write failed for request %s: %s", reference, type(exc).__name__)


class StreamJournal:
    __slots__ = ("_next", "_reference", "_snapshot", "_writing", "recorded")

    def __init__(self, reference: str, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._reference = reference
        self._snapshot = snapshot  # what the sweep would settle if the process died now
        # The first snapshot a period in: a stream shorter than that costs no round trip,
        # and a crash loses at most a period of output either way.
        self._next = time.monotonic() + settings.RELAY_JOURNAL_SECONDS
        self._writing: asyncio.Future[None] | None = None
        self.recorded = False

    def tick(self) -> None:
        """Called after each chunk sent to the client."""
        now = time.monotonic()
        if now < self._next or (self._writing is not None and not self._writing.done()):
            return
        self._next = now + settings.RELAY_JOURNAL_SECONDS
        self._writing = asyncio.ensure_future(_write(self._reference, self._snapshot()))
        self.recorded = True

    async def close(self) -> None:
        """After settlement: the journal has served its purpose."""
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)
        client = redis_client.redis()
        if self.recorded and client is not None:
            try:
                await client.delete(journal_key(self._reference))
            except Exception as exc:  # it expires on its own
                log.warning("journal cleanup failed: %s", type(exc).__name__)
