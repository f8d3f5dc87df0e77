"""The opt-in Responses store: `previous_response_id` for organizations that ask for it.

TokenHub stores no content by default, and then `previous_response_id` is refused with a
400 that says how to send the earlier items instead. An organization may opt in
(`Organization.store_responses`): each Responses answer's conversation (the input items
and the output items) is then kept for RESPONSES_STORE_SECONDS, encrypted with a key
derived (HKDF-SHA256) from the calling API key's secret and the response id. TokenHub keeps
only the secret's hash, so the rows cannot be read at rest without the caller, another
key (even of the same organization) cannot read them, and rotating the key ends them.
Reasoning items without encrypted content and item ids are not kept: upstreams are always
asked to store nothing, so nothing may refer to what they would have stored.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.utils import timezone

from relay.db import in_db_thread
from relay.errors import bad_request
from relay.formats import responses
from relay.models import StoredResponse

_INFO = b"tokenhub responses store v1"


def _fernet(secret: str, response_id: str) -> Fernet:
    key = HKDF(algorithm=SHA256(), length=32, salt=response_id.encode(), info=_INFO).derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def input_items(value: Any) -> list[Any]:
    """A request's `input` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return list(value) if isinstance(value, list) else []


def _replayable(item: Any) -> dict[str, Any] | None:
    """ITEM as it can be sent again to an upstream that stores nothing, or None."""
    if not isinstance(item, dict):
        return None
    if item.get("type") == "reasoning" and not item.get("encrypted_content"):
        return None
    return {k: v for k, v in item.items() if k not in ("id", "status")}


def _load(*, response_id: str, organization_id: int) -> bytes | None:
    row = (
        StoredResponse.objects.filter(
            response_id=response_id, organization_id=organization_id, expires_at__gt=timezone.now()
        )
        .values_list("ciphertext", flat=True)
        .first()
    )
    return bytes(row) if row is not None else None


def _save(*, response_id: str, organization_id: int, api_key_id: int, ciphertext: bytes) -> None:
    now = timezone.now()
    StoredResponse.objects.update_or_create(
        response_id=response_id,
        defaults={
            "organization_id": organization_id,
            "api_key_id": api_key_id,
            "ciphertext": ciphertext,
            "created_at": now,
            "expires_at": now + dt.timedelta(seconds=settings.RESPONSES_STORE_SECONDS),
        },
    )


_load_async = in_db_thread(_load)
_save_async = in_db_thread(_save)


async def continue_conversation(
    payload: dict[str, Any], *, store: bool, organization_id: int, secret: str
) -> dict[str, Any]:
    """PAYLOAD with the items of its `previous_response_id` put before its own input.

    Without the store, or for an id this key cannot read, a 400 naming the field.
    """
    response_id = payload.get("previous_response_id")
    if not response_id:
        return payload
    if not store:
        raise bad_request(
            f"'previous_response_id' is not supported: {responses.STATELESS} "
            "(or ask your organization's administrator to turn on the Responses store).",
            param="previous_response_id",
        )
    missing = bad_request(
        "Previous response not found: it expired, or it was made with another API key.",
        param="previous_response_id",
    )
    if not isinstance(response_id, str) or len(response_id) > 100:
        raise missing
    ciphertext = await _load_async(response_id=response_id, organization_id=organization_id)
    if ciphertext is None:
        raise missing
    try:
        earlier = orjson.loads(_fernet(secret, response_id).decrypt(ciphertext))
    except InvalidToken:
        raise missing from None
    continued = {k: v for k, v in payload.items() if k != "previous_response_id"}
    continued["input"] = [*earlier, *input_items(payload.get("input"))]
    return continued


async def keep(
    *, response: dict[str, Any], payload: dict[str, Any], organization_id: int, api_key_id: int,
    secret: str,
) -> None:  # fmt: skip
    """Keep the conversation of a finished Responses RESPONSE to its request PAYLOAD."""
    response_id = response.get("id")
    output = response.get("output")
    if not isinstance(response_id, str) or not response_id or not isinstance(output, list):
        return
    items = [
        kept
        for item in (*input_items(payload.get("input")), *output)
        if (kept := _replayable(item)) is not None
    ]
    ciphertext = _fernet(secret, response_id).encrypt(orjson.dumps(items))
    await _save_async(
        response_id=response_id,
        organization_id=organization_id,
        api_key_id=api_key_id,
        ciphertext=ciphertext,
    )


def purge_expired(*, now: dt.datetime | None = None) -> int:
    """Delete kept conversations past their expiry; returns how many."""
    deleted, _ = StoredResponse.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted


class Keeper:
    """Keeps one call's conversation once its answer is complete, before the last of the
    answer goes to the client: a client that continues at once finds it stored."""

    def __init__(
        self, *, payload: dict[str, Any], organization_id: int, api_key_id: int, secret: str
    ) -> None:
        self._payload = payload
        self._owner = {"organization_id": organization_id, "api_key_id": api_key_id}
        self._secret = secret
        self._buffer = b""
        self._kept = False

    async def body(self, body: bytes) -> None:
        """A whole Responses JSON answer, about to be sent."""
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if isinstance(parsed, dict):
            await self._keep(parsed)

    async def chunk(self, chunk: bytes) -> None:
        """Part of a Responses SSE stream, about to be sent: kept at `response.completed`."""
        if self._kept:
            return
        self._buffer += chunk
        *events, self._buffer = self._buffer.split(b"\n\n")
        for event in events:
            if b"response.completed" in event:
                for line in event.split(b"\n"):
                    if line.startswith(b"data:"):
                        await self._completed_event(line[5:])

    async def _completed_event(self, data: bytes) -> None:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(parsed, dict) and parsed.get("type") == "response.completed":
            response = parsed.get("response")
            if isinstance(response, dict):
                await self._keep(response)

    async def _keep(self, response: dict[str, Any]) -> None:
        if self._kept or response.get("status") != "completed":
            return
        self._kept = True
        await keep(response=response, payload=self._payload, secret=self._secret, **self._owner)
