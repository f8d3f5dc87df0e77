"""Step 1: find the caller's key (any of the four places SDKs put it) in the key cache.

Key changes (rotation, revocation, disabling, deletion, edits) empty the key cache at once
(`accounts/revocations.py`): with Redis a listener task per event loop, subscribed before
the first lookup, forgets the cached keys and acknowledges each change; without Redis a
process-local counter is compared on each request. Neither costs a round trip per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from accounts.keysecrets import hash_secret, looks_like_key
from accounts.revocations import KEY_CHANGES_CHANNEL, ack_list, local_epoch
from relay.asgi_io import Request
from relay.catalog import KeyInfo, catalog
from relay.errors import forbidden, unauthorized
from relay.redis_client import redis

log = logging.getLogger(__name__)

_ACK_TTL_SECONDS = 10
# Bumped each time the key cache is emptied for a key change.
_generation = 0
_seen_local_epoch = 0


@dataclass(slots=True)
class _Listener:
    task: asyncio.Task[None]
    ready: asyncio.Event


_listeners: dict[int, _Listener] = {}  # by id of the event loop


def extract_secret(request: Request) -> str | None:
    headers = request.headers
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    for name in ("x-api-key", "x-goog-api-key", "api-key"):
        found = headers.get(name)
        if found:
            return found.strip()
    if request.query_string and b"key=" in request.query_string:
        return request.query.get("key") or None
    return None


def _forget_keys() -> None:
    global _generation
    _generation += 1
    # Channels and prices are reloaded too: one extra catalog read per key change.
    catalog.clear()


async def _listen(client: Any, ready: asyncio.Event) -> None:
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(KEY_CHANGES_CHANNEL)
        _forget_keys()  # changes made while nobody listened
        ready.set()
        async for message in pubsub.listen():
            _forget_keys()
            change = message["data"].decode()
            async with client.pipeline(transaction=False) as pipe:
                pipe.rpush(ack_list(change), 1)
                pipe.expire(ack_list(change), _ACK_TTL_SECONDS)
                await pipe.execute()
    except Exception as exc:
        # Redis went away, or the server is stopping and closed the client; the next request
        # listens again (and forgets cached keys first). Meanwhile the cache lifetime holds.
        log.info("key-change listener stopped: %s", type(exc).__name__)
    finally:
        ready.set()
        with contextlib.suppress(Exception):
            await pubsub.aclose()


async def _honour_key_changes() -> None:
    global _seen_local_epoch
    client = redis()
    if client is None:
        epoch = local_epoch()
        if epoch != _seen_local_epoch:
            _seen_local_epoch = epoch
            _forget_keys()
        return
    loop = asyncio.get_running_loop()
    listener = _listeners.get(id(loop))
    if listener is None or listener.task.done():
        ready = asyncio.Event()
        listener = _Listener(loop.create_task(_listen(client, ready)), ready)
        _listeners[id(loop)] = listener
    if not listener.ready.is_set():
        await listener.ready.wait()


async def authenticate(request: Request) -> KeyInfo:
    secret = extract_secret(request)
    if not secret:
        raise unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer sk-th-…'."
        )
    if not looks_like_key(secret):
        raise unauthorized()
    await _honour_key_changes()
    generation = _generation
    key_hash = hash_secret(secret)
    key = await catalog.key(key_hash)
    if _generation != generation:
        # A key change arrived while this lookup waited on the database: what it read (and
        # cached) may predate the change.
        catalog.clear()
        key = await catalog.key(key_hash)
    if key is None:
        raise unauthorized()
    if "relay" not in key.scopes:
        raise forbidden("This API key is not allowed to call models.", "scope_not_allowed")
    return key
