"""What a request has consumed so far, kept where the sweep finds it if its process dies.

A hold carries a progress snapshot, `{"cost": micro-USD, "log": request log row}`: at
placement the row without usage, so a request lost in a crash still gets its log row.
A stream in flight journals a fresh snapshot about every second (relay/pipeline/journal.py):
in Redis when there is one (a write per stream per second would weigh on PostgreSQL),
else on the hold row itself. The sweep settles an orphaned hold from its newest snapshot,
so a stream cut by a crash is charged once for what it had delivered.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from django.conf import settings

from logs.records import RequestRecord

log = logging.getLogger(__name__)
PREFIX = "th:journal:"


def journal_key(reference: str) -> str:
    return PREFIX + reference


def journal_keep_seconds() -> int:
    """How long a journal entry outlives its last write: past the lease and the sweep."""
    return max(600, int(settings.LEASE_TTL_SECONDS) * 10)


def progress_snapshot(*, cost: int, record: RequestRecord) -> dict[str, Any]:
    """A JSON-ready snapshot: metadata only, like the log row it carries."""
    return {"cost": cost, "log": record.json()}


def journal_read(references: list[str]) -> dict[str, dict[str, Any]]:
    """The Redis journal's snapshots for REFERENCES (none without Redis). Raises when
    Redis cannot be read, so the sweep waits rather than settle from an older snapshot."""
    if not settings.REDIS_URL or not references:
        return {}
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    try:
        values = client.mget([journal_key(r) for r in references])
    finally:
        client.close()
    found: dict[str, dict[str, Any]] = {}
    for reference, raw in zip(references, values, strict=True):
        if not raw:
            continue
        try:
            snapshot = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("unreadable journal entry for request %s", reference)
            continue
        if isinstance(snapshot, dict):
            found[reference] = snapshot
    return found
