"""Step 1: find the caller's key (any of the four places SDKs put it) in the key cache."""

from __future__ import annotations

from accounts.keysecrets import hash_secret, looks_like_key
from relay.asgi_io import Request
from relay.catalog import KeyInfo, catalog
from relay.errors import forbidden, unauthorized


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


async def authenticate(request: Request) -> KeyInfo:
    secret = extract_secret(request)
    if not secret:
        raise unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer sk-th-…'."
        )
    if not looks_like_key(secret):
        raise unauthorized()
    key = await catalog.key(hash_secret(secret))
    if key is None:
        raise unauthorized()
    if "relay" not in key.scopes:
        raise forbidden("This API key is not allowed to call models.", "scope_not_allowed")
    return key
