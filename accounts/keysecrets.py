"""API key secrets: generation, hashing and the readable prefix."""

from __future__ import annotations

import hashlib
import secrets
import string

KEY_PREFIX = "sk-th-"
_ALPHABET = string.ascii_letters + string.digits
_RANDOM_CHARS = 40  # ~238 bits
PREFIX_LENGTH = len(KEY_PREFIX) + 6


def generate_secret() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_CHARS))


def hash_secret(secret: str) -> str:
    # The secret carries ~238 bits of entropy, so a fast unsalted hash is safe and
    # lets the relay look keys up by hash in one indexed read.
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[:PREFIX_LENGTH]


def looks_like_key(secret: str) -> bool:
    return secret.startswith(KEY_PREFIX) and len(secret) == len(KEY_PREFIX) + _RANDOM_CHARS
