"""Step 1: find the caller's key (any of the four places SDKs put it) in the key cache.

Before trusting a cached key the step reads the key-change epoch (`accounts/revocations.py`):
one Redis GET, or a process-local counter in embedded mode. When it moved, a key was rotated,
revoked, disabled, deleted or edited somewhere, and the whole key cache is emptied, so the
change holds from the next request on, in every process.
"""

from __future__ import annotations

from typing import Any

from accounts.keysecrets import hash_secret, looks_like_key
from accounts.revocations import REDIS_EPOCH_KEY, local_epoch
from relay.asgi_io import Request
from relay.catalog import KeyInfo, catalog
from relay.errors import forbidden, unauthorized
from relay.redis_client import redis

_seen_epoch: Any = None


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


async def _honour_key_changes() -> None:
    global _seen_epoch
    client = redis()
    epoch = (await client.get(REDIS_EPOCH_KEY)) if client is not None else local_epoch()
    if epoch != _seen_epoch:
        # Channels and prices are reloaded too: one extra catalog read per key change.
        catalog.clear()
        _seen_epoch = epoch


async def authenticate(request: Request) -> KeyInfo:
    secret = extract_secret(request)
    if not secret:
        raise unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer sk-th-…'."
        )
    if not looks_like_key(secret):
        raise unauthorized()
    await _honour_key_changes()
    seen = _seen_epoch
    key_hash = hash_secret(secret)
    key = await catalog.key(key_hash)
    if _seen_epoch != seen:
        # A key change was noticed while this lookup waited on the database: what it read
        # (and cached) may predate the change.
        catalog.clear()
        key = await catalog.key(key_hash)
    if key is None:
        raise unauthorized()
    if "relay" not in key.scopes:
        raise forbidden("This API key is not allowed to call models.", "scope_not_allowed")
    return key
