"""Cache affinity: the calls of one conversation go to the same channel and upstream key.

An agent re-sends the same long prefix on every turn; the provider caches it per account
(and per server). Spreading the turns over channels or keys throws that cache away and
multiplies the cost. So each call gets an affinity key, from the client's own
conversation id where it sends one, else from the caller's key and the start of the
body, and routing ranks channels (and picks a channel's upstream key) by rendezvous
hashing on it: the same conversation lands on the same healthy channel in every process
with no shared state, and moves only when that channel cools down, fails or goes away.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any

from relay.catalog import ChannelInfo

# Headers the coding agents and SDKs send that name a conversation.
_SESSION_HEADERS = (
    "x-claude-code-session-id",
    "session_id",
    "session-id",
    "x-session-id",
    "conversation_id",
)
# How much of the body stands for "the prefix" when the client names no conversation:
# the system prompt and tools come first, and they are the part worth caching.
PREFIX_BYTES = 4096
_SCALE = float(1 << 64)


def affinity_key(
    *, key_id: int, headers: dict[str, str], payload: dict[str, Any], raw: bytes
) -> bytes:
    """The conversation this call belongs to, as a short digest (never content)."""
    hint = _client_hint(headers, payload)
    material = hint.encode() if hint else raw[:PREFIX_BYTES]
    prefix = b"c:" if hint else b"p:"
    return hashlib.blake2b(prefix + material, digest_size=16, key=str(key_id).encode()).digest()


def _client_hint(headers: dict[str, str], payload: dict[str, Any]) -> str:
    for name in _SESSION_HEADERS:
        value = headers.get(name)
        if value:
            return value[:200]
    for name in ("prompt_cache_key", "conversation_id"):
        value = payload.get(name)
        if isinstance(value, str) and value:
            return value[:200]
    metadata = payload.get("metadata")
    if isinstance(metadata, dict):
        user = metadata.get("user_id")
        if isinstance(user, str) and user:
            return user[:500]
    return ""


def _unit(affinity: bytes, salt: int) -> float:
    """A uniform number in (0, 1) for this conversation and SALT (a channel id...)."""
    digest = hashlib.blake2b(salt.to_bytes(8, "big", signed=True), key=affinity, digest_size=8)
    return (int.from_bytes(digest.digest(), "big") + 0.5) / _SCALE


def rank(affinity: bytes, channel_id: int, weight: int) -> float:
    """Weighted rendezvous score: higher wins; a channel of weight 2 wins twice as often."""
    return -max(1, weight) / math.log(_unit(affinity, channel_id))


def pick(affinity: bytes, channel_id: int, count: int) -> int:
    """Which of a channel's COUNT upstream keys this conversation uses."""
    return int(_unit(affinity, -channel_id - 1) * count) % count


_rng = random.SystemRandom()


def pick_key(channel: ChannelInfo, affinity: bytes = b"") -> str:
    """One of the channel's upstream keys: the conversation's own given an AFFINITY (the
    provider's prompt cache is per account), else one at random, to spread load."""
    keys = channel.keys
    if len(keys) == 1:
        return keys[0]
    if affinity:
        return keys[pick(affinity, channel.id, len(keys))]
    return _rng.choice(keys)
