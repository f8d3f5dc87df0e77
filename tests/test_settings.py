"""Settings from the environment: production refuses unsafe secrets; upstream keys are
encrypted at rest with TOKENHUB_ENCRYPTION_KEYS (first encrypts, all decrypt)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from pytest_django.fixtures import Settings as SettingsWrapper

from relay.models import Channel
from relay.services import channel_create
from sealed.fields import _fernet

pytestmark = [pytest.mark.embedded]

REPO = Path(__file__).resolve().parent.parent
UPSTREAM_KEY = "sk-upstream-very-secret"
_SECRET_VARS = ("SECRET_KEY", "TOKENHUB_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL", "DEBUG")


def _django_setup(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-c", "import django; django.setup()"], **env)


def _run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """COMMAND in the checkout, with ENV and none of the outer secrets or databases."""
    base = {k: v for k, v in os.environ.items() if k.removesuffix("_FILE") not in _SECRET_VARS}
    return subprocess.run(
        command,
        cwd=REPO,
        env={**base, "DJANGO_SETTINGS_MODULE": "tokenhub.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _production_env(tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": "postgres://tokenhub@127.0.0.1:5432/tokenhub",
        "DEBUG": "0",
        "TOKENHUB_VAR_DIR": str(tmp_path),
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
    }


def test_it_requires_a_secret_key_in_production(tmp_path: Path) -> None:
    env = _production_env(tmp_path) | {"TOKENHUB_ENCRYPTION_KEYS": Fernet.generate_key().decode()}

    result = _django_setup(tmp_path, **env)

    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr
    assert not list(tmp_path.iterdir())  # nothing generated behind the operator's back


def test_it_requires_encryption_keys_in_production(tmp_path: Path) -> None:
    env = _production_env(tmp_path) | {"SECRET_KEY": "x" * 50}

    result = _django_setup(tmp_path, **env)

    assert result.returncode != 0
    assert "TOKENHUB_ENCRYPTION_KEYS is required when DEBUG is off" in result.stderr


def test_it_starts_in_production_with_both_secrets(tmp_path: Path) -> None:
    env = _production_env(tmp_path) | {
        "SECRET_KEY": "x" * 50,
        "TOKENHUB_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }

    result = _django_setup(tmp_path, **env)

    assert result.returncode == 0, result.stderr


def _secrets() -> dict[str, str]:
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "TOKENHUB_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }


def test_it_refuses_the_console_email_backend_in_production(tmp_path: Path) -> None:
    env = _production_env(tmp_path) | _secrets()
    env["EMAIL_BACKEND"] = "django.core.mail.backends.console.EmailBackend"

    refused = _django_setup(tmp_path, **env)
    accepted = _django_setup(tmp_path, **env, EMAIL_CONSOLE_IN_PRODUCTION="1")

    assert refused.returncode != 0
    assert "EMAIL_BACKEND is the console" in refused.stderr
    assert accepted.returncode == 0, accepted.stderr


def test_the_documented_production_configuration_passes_the_deploy_check(tmp_path: Path) -> None:
    env = _production_env(tmp_path) | _secrets()
    env |= {
        "ALLOWED_HOSTS": "hub.example.com",
        "BEHIND_TLS_PROXY": "1",
        "SECURE_SSL_REDIRECT": "1",
        "SECURE_HSTS_SECONDS": "31536000",
    }

    result = _run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], **env
    )

    assert result.returncode == 0, result.stderr


def test_it_generates_and_keeps_secrets_in_embedded_mode(tmp_path: Path) -> None:
    result = _django_setup(tmp_path, TOKENHUB_VAR_DIR=str(tmp_path))

    assert result.returncode == 0, result.stderr
    for name in ("secret_key", "encryption_key"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    Fernet((tmp_path / "encryption_key").read_bytes())  # a valid key


# --- secrets at rest --------------------------------------------------------------------


@pytest.fixture
def encryption_keys(settings: SettingsWrapper) -> Iterator[SettingsWrapper]:
    """settings, with fresh encryption keys and the cached MultiFernet forgotten."""
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    _fernet.cache_clear()
    yield settings
    _fernet.cache_clear()


def _channel() -> Channel:
    return channel_create(
        name="main",
        type="openai",
        base_url="https://api.openai.com/v1",
        api_keys=[UPSTREAM_KEY, "sk-second"],
        models=["gpt-4o"],
    )


def _use_keys(settings: SettingsWrapper, keys: list[str]) -> None:
    settings.ENCRYPTION_KEYS = keys
    _fernet.cache_clear()


@pytest.mark.django_db
def test_it_stores_channel_keys_encrypted(encryption_keys: SettingsWrapper) -> None:
    channel = _channel()

    with connection.cursor() as cursor:
        cursor.execute("SELECT api_keys FROM relay_channel WHERE id = %s", [channel.pk])
        (stored,) = cursor.fetchone()
    assert UPSTREAM_KEY not in stored
    assert "sk-second" not in stored
    assert Channel.objects.get(pk=channel.pk).key_list() == [UPSTREAM_KEY, "sk-second"]


@pytest.mark.django_db
def test_it_cannot_read_channel_keys_with_another_key(encryption_keys: SettingsWrapper) -> None:
    channel = _channel()

    _use_keys(encryption_keys, [Fernet.generate_key().decode()])

    loaded = Channel.objects.get(pk=channel.pk)  # loading never decrypts
    with pytest.raises(ValueError, match="TOKENHUB_ENCRYPTION_KEYS") as excinfo:
        loaded.key_list()
    assert UPSTREAM_KEY not in str(excinfo.value)


@pytest.mark.django_db
def test_it_reads_old_rows_after_a_new_key_is_put_first(encryption_keys: SettingsWrapper) -> None:
    old = encryption_keys.ENCRYPTION_KEYS[0]
    channel = _channel()

    _use_keys(encryption_keys, [Fernet.generate_key().decode(), old])

    assert Channel.objects.get(pk=channel.pk).key_list() == [UPSTREAM_KEY, "sk-second"]


@pytest.mark.django_db
def test_it_encrypts_new_writes_with_the_first_key(encryption_keys: SettingsWrapper) -> None:
    old, new = encryption_keys.ENCRYPTION_KEYS[0], Fernet.generate_key().decode()
    _use_keys(encryption_keys, [new, old])
    channel = _channel()

    _use_keys(encryption_keys, [new])

    assert Channel.objects.get(pk=channel.pk).key_list() == [UPSTREAM_KEY, "sk-second"]
