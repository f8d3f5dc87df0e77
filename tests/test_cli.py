"""The operator CLI, run for real: `python manage.py ...` in a subprocess against the test
database. Results go to stdout and nothing else; errors to stderr with a non-zero exit.

transaction=True: the subprocess has its own connection, so fixtures must really commit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from accounts.models import ApiKey, User
from billing.models import LedgerEntry, Price, Wallet
from relay.models import Channel

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parent.parent
Manage = Callable[..., subprocess.CompletedProcess[str]]


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"], safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{quote(db['NAME'], safe='')}"


@pytest.fixture
def manage(tmp_path: Path) -> Manage:
    """manage("wallet", "show", EMAIL) -> CompletedProcess with text stdout/stderr."""
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "TOKENHUB_ENCRYPTION_KEYS": ",".join(settings.ENCRYPTION_KEYS),
        "TOKENHUB_VAR_DIR": str(tmp_path),
        "DEBUG": "0",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.strip()


def test_it_creates_a_verified_user_and_prints_its_id(manage: Manage) -> None:
    user_id = _ok(manage("create_user", "ann@example.com"))

    user = User.objects.get(pk=int(user_id))
    assert user.email == "ann@example.com"
    assert user.email_verified
    assert not user.is_staff
    assert Wallet.objects.filter(organization__membership__user=user).exists()


def test_it_creates_an_admin_with_a_password(manage: Manage) -> None:
    user_id = _ok(manage("create_user", "root@example.com", "--admin", "--password", "s3cret-pw!"))

    user = User.objects.get(pk=int(user_id))
    assert user.is_staff and user.is_superuser
    assert user.check_password("s3cret-pw!")


def test_it_credits_a_wallet_and_prints_the_new_balance(manage: Manage, owner: User) -> None:
    assert _ok(manage("wallet", "credit", owner.email, "10", "--note", "invoice 7")) == "10.000000"
    assert _ok(manage("wallet", "credit", owner.email, "2.5")) == "12.500000"

    entry = LedgerEntry.objects.order_by("id").first()
    assert entry is not None
    assert (entry.amount, entry.note) == (10_000_000, "invoice 7")


def test_it_shows_the_balance_in_usd(manage: Manage, owner: User) -> None:
    _ok(manage("wallet", "credit", owner.email, "12.5"))

    assert _ok(manage("wallet", "show", owner.email.upper())) == "12.500000"


def test_it_creates_a_key_with_every_flag_and_prints_only_its_secret(
    manage: Manage, owner: User, client: Client
) -> None:
    out = manage(
        "key", "create", owner.email,
        "--name", "ci",
        "--models", "gpt-4o*,o3",
        "--allow-ips", "10.0.0.0/8,::1",
        "--limit", "25.5",
        "--expires", "2999-01-01T00:00:00Z",
        "--rpm", "60",
        "--tpm", "100000",
        "--scopes", "relay,manage",
    )  # fmt: skip
    secret = _ok(out)

    assert "\n" not in secret
    key = ApiKey.objects.get()
    assert secret.startswith(key.prefix)
    assert key.name == "ci"
    assert key.allowed_models == ["gpt-4o*", "o3"]
    assert key.allowed_ips == ["10.0.0.0/8", "::1/128"]
    assert key.spend_limit == 25_500_000
    assert key.expires_at is not None and key.expires_at.year == 2999
    assert (key.rpm_limit, key.tpm_limit) == (60, 100_000)
    assert key.scopes == ["manage", "relay"]
    response = client.get(
        "/api/v1/keys", headers={"authorization": f"Bearer {secret}"}, REMOTE_ADDR="10.1.2.3"
    )
    assert response.status_code == 200
    assert [k["prefix"] for k in response.json()["data"]] == [key.prefix]


def test_it_creates_a_relay_only_key_by_default(manage: Manage, owner: User) -> None:
    _ok(manage("key", "create", owner.email))

    assert ApiKey.objects.get().scopes == ["relay"]


def test_it_adds_a_channel_with_its_keys_encrypted(manage: Manage) -> None:
    out = manage(
        "channel", "add",
        "--name", "openai-main",
        "--type", "openai",
        "--base-url", "https://api.openai.com/v1/",
        "--api-key", "sk-upstream-one,sk-upstream-two",
        "--models", "gpt-4o,gpt-4o-mini",
        "--priority", "5",
        "--weight", "3",
        "--map", "gpt-4o=gpt-4o-2024-08-06",
        "--group", "default,vip",
    )  # fmt: skip
    channel_id = int(_ok(out))

    channel = Channel.objects.get(pk=channel_id)
    assert channel.key_list() == ["sk-upstream-one", "sk-upstream-two"]
    assert channel.base_url == "https://api.openai.com/v1"
    assert channel.model_names == ["gpt-4o", "gpt-4o-mini"]
    assert channel.model_map == {"gpt-4o": "gpt-4o-2024-08-06"}
    assert channel.groups == ["default", "vip"]
    assert (channel.priority, channel.weight) == (5, 3)
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_keys FROM relay_channel WHERE id = %s", [channel_id])
        (stored,) = cursor.fetchone()
    assert "sk-upstream" not in stored


def test_it_sets_prices_in_usd(manage: Manage) -> None:
    out = manage(
        "price", "set", "gpt-4o",
        "--input", "2.5", "--output", "10", "--cache-read", "1.25", "--cache-write", "3.75",
        "--cache-write-1h", "6", "--per-request", "0.001", "--per-image", "0.04",
        "--per-second", "0.1",
    )  # fmt: skip

    assert _ok(out) == "gpt-4o"
    price = Price.objects.get(model="gpt-4o")
    assert (price.input_per_1m, price.output_per_1m) == (2_500_000, 10_000_000)
    assert (price.cache_read_per_1m, price.cache_write_per_1m) == (1_250_000, 3_750_000)
    assert price.cache_write_1h_per_1m == 6_000_000
    assert (price.per_request, price.per_image, price.per_second) == (1_000, 40_000, 100_000)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("wallet", "show", "nobody@example.com"), "no user with email"),
        (("wallet", "credit", "owner@example.com", "1.0000001"), "more precision"),
        (("wallet", "credit", "owner@example.com", "ten"), "not a number"),
        (("wallet", "credit", "owner@example.com", "-5"), "must be positive"),
        (("key", "create", "owner@example.com", "--allow-ips", "10.0.0.0/33"), "IP network"),
        (("key", "create", "owner@example.com", "--scopes", "admin"), "unknown scopes"),
        (("key", "create", "owner@example.com", "--expires", "soon"), "ISO 8601"),
        (("create_user", "OWNER@example.com"), "already exists"),
        (("price", "set", "gpt-4o"), "at least one price"),
        (
            (
                "channel", "add", "--name", "x", "--type", "openia", "--base-url",
                "https://api.openai.com/v1", "--api-key", "k", "--models", "m",
            ),
            "invalid choice",
        ),
        (
            (
                "channel", "add", "--name", "x", "--type", "openai", "--base-url",
                "ftp://example.com", "--api-key", "k", "--models", "m",
            ),
            "base URL",
        ),
    ],
)  # fmt: skip
def test_it_reports_errors_on_stderr_only(
    manage: Manage, owner: User, args: tuple[str, ...], message: str
) -> None:
    result = manage(*args)

    assert result.returncode != 0
    assert result.stdout == ""
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not LedgerEntry.objects.exists()
    assert not ApiKey.objects.exists()
