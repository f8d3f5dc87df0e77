"""The key-change epoch: how every relay process learns at once that a key changed.

Key services bump the epoch after their transaction commits (rotate, revoke, disable,
delete, any settings change). The relay compares it with the epoch its key cache was
filled under and empties the cache when they differ, so an old secret stops working on
the very next request instead of when the cache entry ages out. With Redis the epoch is a
shared random value replaced on every change (one GET per relayed request); in embedded
mode (no Redis, one server process) it is a counter in this process.
"""

from __future__ import annotations

import secrets
import threading
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import transaction

REDIS_EPOCH_KEY = "th:keys:epoch"

_local_epoch = 0
_lock = threading.Lock()


@lru_cache(maxsize=4)
def _sync_redis(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=2)


def local_epoch() -> int:
    return _local_epoch


def _bump() -> None:
    global _local_epoch
    with _lock:
        _local_epoch += 1
    if settings.REDIS_URL:
        # A fresh random value rather than a counter: a Redis restart that lost the key
        # cannot bring back a value some process already saw.
        _sync_redis(settings.REDIS_URL).set(REDIS_EPOCH_KEY, secrets.token_hex(8))


def key_change_publish() -> None:
    """Tell every relay process, once the current transaction commits, to drop cached keys."""
    transaction.on_commit(_bump)
