"""Model field for secrets encrypted at rest with rotating Fernet keys, and the cipher it uses."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

_MARK = "fernet:"


@lru_cache(maxsize=1)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k.encode()) for k in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return _MARK + fernet().encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(_MARK):
        raise ValueError("value is not encrypted")
    try:
        return fernet().decrypt(stored[len(_MARK) :].encode()).decode()
    except InvalidToken:
        # Never echo the ciphertext or key material: just say which setting to check.
        raise ValueError("cannot decrypt: check TOKENHUB_ENCRYPTION_KEYS") from None


class Sealed:
    """A stored secret, still encrypted: decrypted only when `reveal()` is called.

    Loading a row never decrypts (lists and admin pages need no key material), and saving
    a row whose secret was not changed writes the same ciphertext back.
    """

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def reveal(self) -> str:
        return decrypt(self.token)

    def __repr__(self) -> str:
        return "<Sealed secret>"

    __str__ = __repr__


def reveal(value: str | Sealed) -> str:
    return value.reveal() if isinstance(value, Sealed) else value


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """Text stored as a Fernet token; the first key in TOKENHUB_ENCRYPTION_KEYS encrypts.

    Reads give a `Sealed` value; assign a plain string to change the secret.
    `manage.py rotate_encryption` re-encrypts rows after a new key is put first.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Sealed | None:
        return None if value is None else Sealed(value)

    def to_python(self, value: Any) -> Any:
        return value

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, Sealed):
            return value.token
        return encrypt(str(value))
