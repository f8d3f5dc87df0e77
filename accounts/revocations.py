"""Key changes reach every relay process before the change's request returns.

The relay keeps key lookups for up to RELAY_KEY_CACHE_SECONDS. Key services publish every
change (rotate, revoke, disable, delete, settings) after their transaction commits:

- with Redis, on the pub/sub channel `th:keys:changes`; each relay process's listener
  empties its key cache and acknowledges on a list named after the change, and the publisher
  waits (at most KEY_CHANGE_ACK_SECONDS) for as many acknowledgements as Redis delivered
  messages. The hot path reads nothing per request;
- without Redis (embedded mode: one server process), by bumping a counter in this process
  that the relay compares on each request.

A listener that is not subscribed (Redis restarting, a stuck process) is covered by the
cache lifetime: the change then holds within a second instead of at once.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

KEY_CHANGES_CHANNEL = "th:keys:changes"
KEY_CHANGE_ACK_SECONDS = 0.5

_local_epoch = 0
_lock = threading.Lock()


def ack_list(change: str) -> str:
    """The Redis list a relay process pushes to once it has forgotten its cached keys."""
    return f"th:keys:ack:{change}"


@lru_cache(maxsize=4)
def _sync_redis(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=2)


def local_epoch() -> int:
    return _local_epoch


def _publish() -> None:
    global _local_epoch
    with _lock:
        _local_epoch += 1
    if not settings.REDIS_URL:
        return
    client = _sync_redis(settings.REDIS_URL)
    change = secrets.token_hex(8)
    receivers = int(client.publish(KEY_CHANGES_CHANNEL, change))
    deadline = time.monotonic() + KEY_CHANGE_ACK_SECONDS
    acked = 0
    while acked < receivers:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or client.blpop([ack_list(change)], timeout=remaining) is None:
            log.warning(
                "key change acknowledged by %d of %d relay listeners; the rest follow within "
                "RELAY_KEY_CACHE_SECONDS",
                acked,
                receivers,
            )
            break
        acked += 1
    client.delete(ack_list(change))


def key_change_publish() -> None:
    """Once the current transaction commits, make every relay process forget cached keys.

    Returns (from the commit) after every listening relay process has done so.
    """
    transaction.on_commit(_publish)
