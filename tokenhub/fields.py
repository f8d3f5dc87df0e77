"""Model fields shared by the apps: secrets encrypted at rest with rotating Fernet keys."""

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


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """Text stored as a Fernet token; the first key in TOKENHUB_ENCRYPTION_KEYS encrypts.

    `manage.py rotate_encryption` re-encrypts rows after a new key is put first.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return None if value is None else decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return None if value is None else encrypt(str(value))
