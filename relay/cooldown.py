"""Channel cooldowns: a channel that keeps failing is skipped for a growing while.

RELAY_COOLDOWN_FAILURES retryable failures put a channel in cooldown for
RELAY_COOLDOWN_SECONDS, doubling with each further strike up to the maximum.

With Redis the state is shared by every process (a hash of channel id → until, read at
most once a second per process); without it, it lives in this process.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from relay.redis_client import redis

_FAILS = "th:relay:fails:"
_COOL = "th:relay:cooldown"
_STRIKES = "th:relay:strikes:"


class Cooldowns:
    def __init__(self) -> None:
        self._until: dict[int, float] = {}
        self._fails: dict[int, int] = {}
        self._strikes: dict[int, int] = {}
        self._synced_at = -1e9

    def clear(self) -> None:
        self._until.clear()
        self._fails.clear()
        self._strikes.clear()
        self._synced_at = -1e9

    async def cooling(self) -> set[int]:
        now = time.time()
        client = redis()
        if client is not None and time.monotonic() - self._synced_at > 1.0:
            raw = await client.hgetall(_COOL)
            self._until = {int(k): float(v) for k, v in raw.items()}
            self._synced_at = time.monotonic()
        return {cid for cid, until in self._until.items() if until > now}

    def _backoff(self, strikes: int) -> float:
        base = settings.RELAY_COOLDOWN_SECONDS
        return float(min(settings.RELAY_COOLDOWN_MAX_SECONDS, base * 2 ** max(0, strikes - 1)))

    async def failure(self, channel_id: int) -> None:
        """Count a retryable failure; after RELAY_COOLDOWN_FAILURES in a row, cool down."""
        threshold = settings.RELAY_COOLDOWN_FAILURES
        client = redis()
        if client is None:
            fails = self._fails.get(channel_id, 0) + 1
            self._fails[channel_id] = fails
            if fails >= threshold:
                self._fails[channel_id] = 0
                strikes = self._strikes.get(channel_id, 0) + 1
                self._strikes[channel_id] = strikes
                self._until[channel_id] = time.time() + self._backoff(strikes)
            return
        pipe = client.pipeline()
        pipe.incr(_FAILS + str(channel_id))
        pipe.expire(_FAILS + str(channel_id), 300)
        fails, _ = await pipe.execute()
        if int(fails) >= threshold:
            await client.delete(_FAILS + str(channel_id))
            strikes = int(await client.incr(_STRIKES + str(channel_id)))
            await client.expire(_STRIKES + str(channel_id), 3600)
            until = time.time() + self._backoff(strikes)
            await client.hset(_COOL, str(channel_id), str(until))
            self._until[channel_id] = until

    def success(self, channel_id: int) -> None:
        # In-process, failures must be consecutive. With Redis, successes cost no round
        # trip: failures count within a 5-minute window instead.
        if self._fails:
            self._fails.pop(channel_id, None)
            self._strikes.pop(channel_id, None)


cooldowns = Cooldowns()


def _sync_redis() -> Any:
    import redis as sync_redis

    return sync_redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)


def cooling_until() -> dict[int, float]:
    """Channel id -> unix time its cooldown ends, for channels cooling now (synchronous)."""
    if not settings.REDIS_URL:
        return {}
    now = time.time()
    raw = _sync_redis().hgetall(_COOL)
    return {int(k): float(v) for k, v in raw.items() if float(v) > now}


def cooling_channel_ids() -> set[int]:
    """Channels cooling right now, for jobs and the admin (synchronous).

    Without Redis the state lives in each relay process, which a Celery worker cannot
    see; there cooldowns simply run out on their own.
    """
    return set(cooling_until())


def cooldown_clear(channel_id: int) -> None:
    """End CHANNEL's cooldown and forget its strikes (it answered a probe)."""
    if not settings.REDIS_URL:
        return
    client = _sync_redis()
    client.hdel(_COOL, str(channel_id))
    client.delete(_STRIKES + str(channel_id), _FAILS + str(channel_id))
