"""Redemption codes: generation (command and admin), hashed storage, one CSV download,
redemption through the API with clear errors, rate limits and per-user limits."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import Organization, User
from accounts.services import user_create
from billing.codes import ALPHABET, redemption_batch_create
from billing.models import LedgerEntry, RedemptionBatch, RedemptionCode
from tests.billing.conftest import balance

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

CODE_RE = re.compile(rf"^[{ALPHABET}]{{4}}(-[{ALPHABET}]{{4}}){{3}}$")


@pytest.fixture(autouse=True)
def _clean_rate_limits() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def _redeem(client: Client, code: str, ip: str = "203.0.113.7") -> tuple[int, dict[str, str]]:
    response = client.post(
        "/api/v1/redemptions",
        data=json.dumps({"code": code}),
        content_type="application/json",
        REMOTE_ADDR=ip,
    )
    return response.status_code, response.json()


def _one_code(amount: int = 5_000_000, expires_at: dt.datetime | None = None) -> str:
    return redemption_batch_create(name="t", count=1, amount=amount, expires_at=expires_at).codes[0]


def test_the_command_prints_codes_and_stores_only_hashes() -> None:
    out = io.StringIO()
    call_command(
        "codes", "generate", "--count", "5", "--amount", "2.5", "--name", "launch",
        "--expires", "2030-01-01T00:00:00Z", stdout=out, stderr=io.StringIO(),
    )  # fmt: skip

    codes = out.getvalue().split()
    assert len(codes) == 5 and len(set(codes)) == 5
    assert all(CODE_RE.match(c) for c in codes), codes
    batch = RedemptionBatch.objects.get()
    assert (batch.name, batch.amount, batch.count) == ("launch", 2_500_000, 5)
    assert batch.expires_at == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    stored = set(RedemptionCode.objects.values_list("code_hash", flat=True))
    assert stored == {hashlib.sha256(c.replace("-", "").encode()).hexdigest() for c in codes}
    assert not batch.pending_csv  # printed once; nothing kept for a download


def test_it_redeems_a_code_once_with_clear_messages(
    owner: User, org: Organization, client: Client
) -> None:
    code = _one_code()
    client.force_login(owner)

    status, body = _redeem(client, code.lower().replace("-", " "))  # typed loosely
    again_status, again = _redeem(client, code)

    assert (status, body["amount_usd"]) == (200, "5.000000")
    assert again_status == 400 and again["detail"] == "This code has already been redeemed."
    assert balance(org) == 5_000_000
    assert RedemptionCode.objects.get().redeemed_by == owner


def test_it_refuses_expired_and_unknown_codes(
    owner: User, org: Organization, client: Client
) -> None:
    expired = _one_code(expires_at=timezone.now() - dt.timedelta(seconds=1))
    client.force_login(owner)

    assert _redeem(client, expired) == (400, {"detail": "This code has expired."})
    assert _redeem(client, "AAAA-BBBB-CCCC-DDDD") == (400, {"detail": "This is not a valid code."})
    assert _redeem(client, "O0I1-L")[1] == {"detail": "This is not a valid code."}
    assert balance(org) == 0


def test_a_member_redeems_into_the_active_organization(
    teammate: User, org: Organization, client: Client
) -> None:
    code = _one_code()
    client.force_login(teammate)
    session = client.session
    session["active_org_id"] = org.pk
    session.save()

    assert _redeem(client, code)[0] == 200
    assert balance(org) == 5_000_000


def test_strangers_and_anonymous_callers_cannot_redeem(client: Client) -> None:
    assert _redeem(client, _one_code())[0] in (401, 403)
    assert not LedgerEntry.objects.exists()


def test_it_enforces_the_per_user_limit(owner: User, org: Organization, client: Client) -> None:
    new = redemption_batch_create(name="promo", count=3, amount=1_000_000, per_user_limit=2)
    client.force_login(owner)

    results = [_redeem(client, c) for c in new.codes]

    assert [s for s, _ in results] == [200, 200, 400]
    assert "maximum number" in results[2][1]["detail"]
    assert balance(org) == 2_000_000


def test_it_rate_limits_failed_attempts_per_user(
    owner: User, org: Organization, client: Client, settings: SettingsWrapper
) -> None:
    settings.REDEEM_MAX_FAILURES = 3
    good = _one_code()
    client.force_login(owner)
    for n in range(3):
        assert _redeem(client, "AAAA-BBBB-CCCC-DDDD", ip=f"198.51.100.{n}")[0] == 400

    status, body = _redeem(client, good, ip="198.51.100.99")

    assert status == 429 and "Too many failed attempts" in body["detail"]
    assert balance(org) == 0


def test_it_rate_limits_failed_attempts_per_ip(client: Client, settings: SettingsWrapper) -> None:
    settings.REDEEM_MAX_FAILURES = 3
    for n in range(3):
        user = user_create(email=f"brute{n}@example.com")
        client.force_login(user)
        assert _redeem(client, "AAAA-BBBB-CCCC-DDDD")[0] == 400
    client.force_login(user_create(email="next@example.com"))

    assert _redeem(client, _one_code())[0] == 429
    assert _redeem(client, _one_code(), ip="192.0.2.1")[0] == 200  # another address is fine


def test_admins_generate_a_batch_and_download_its_csv_once(
    admin_client: Client, admin_user: User
) -> None:
    response = admin_client.post(
        reverse("admin:billing_redemptionbatch_generate"),
        {
            "name": "conference",
            "count": "4",
            "amount": "3",
            "expires_at": "",
            "per_user_limit": "1",
        },
    )
    assert response.status_code == 302
    batch = RedemptionBatch.objects.get()
    assert batch.created_by == admin_user and batch.per_user_limit == 1
    assert batch.pending_csv.startswith("fernet:")  # encrypted at rest until downloaded
    url = reverse("admin:billing_redemptionbatch_download", args=[batch.pk])

    first = admin_client.get(url)
    second = admin_client.get(url, follow=True)

    assert first["Content-Type"] == "text/csv"
    rows = first.content.decode().splitlines()
    assert rows[0] == "code,amount_usd,expires_at,batch" and len(rows) == 5
    codes = [row.split(",")[0] for row in rows[1:]]
    assert all(CODE_RE.match(c) for c in codes)
    assert "already downloaded" in second.content.decode()
    batch.refresh_from_db()
    assert batch.pending_csv == "" and batch.downloaded_at is not None
    listing = admin_client.get(reverse("admin:billing_redemptionbatch_changelist")).content.decode()
    assert "conference" in listing and codes[0] not in listing


def test_staff_who_are_not_superusers_cannot_generate_codes(client: Client) -> None:
    staff = user_create(email="staff@example.com")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)

    client.post(
        reverse("admin:billing_redemptionbatch_generate"),
        {"name": "x", "count": "1", "amount": "1000"},
    )

    assert not RedemptionBatch.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_redemptions_of_one_code_credit_once() -> None:
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("row-lock concurrency is only meaningful on PostgreSQL")
    code = _one_code(amount=7_000_000)
    users = [user_create(email=f"racer{n}@example.com") for n in range(20)]
    clients = []
    for user in users:
        c = Client()
        c.force_login(user)
        clients.append(c)
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def run(n: int, c: Client) -> None:
        try:
            barrier.wait()
            statuses.append(_redeem(c, code, ip=f"10.0.0.{n}")[0])
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n, c)) for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(statuses) == [200] + [400] * 19
    entries = LedgerEntry.objects.filter(kind="redeem")
    assert [e.amount for e in entries] == [7_000_000]
    winner = RedemptionCode.objects.get().redeemed_organization
    assert winner is not None and balance(winner) == 7_000_000
