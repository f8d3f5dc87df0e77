""" "Delete my account": afterwards no email, name, address or user agent of the person is
anywhere in the database, and every balance still equals the sum of its ledger rows."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Sum
from django.test import Client

from accounts.exceptions import AccountDeletionBlocked
from accounts.models import (
    ApiKey,
    AuditEvent,
    DataExport,
    Invitation,
    Membership,
    Organization,
    User,
)
from accounts.privacy import account_delete, data_export_build
from accounts.selectors import organization_personal
from accounts.services import key_create, user_create
from billing.models import LedgerEntry, PaymentEvent, Wallet
from billing.services import wallet_adjust, wallet_credit
from logs.models import RequestLog

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

EMAIL = "zebulon.quixote@example.org"
NAME = "Zebulon Quixote"
IP = "203.0.113.99"
AGENT = "SecretAgent/7.7 (quixote)"
PASSWORD = "zebulon-pass-123"


def database_hits(needle: str) -> list[str]:
    """Every table.column whose text form contains NEEDLE (case-insensitive)."""
    hits = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            for column in connection.introspection.get_table_description(cursor, table):
                name = connection.ops.quote_name(column.name)
                cursor.execute(
                    f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)} "  # noqa: S608
                    f"WHERE LOWER(CAST({name} AS TEXT)) LIKE %s",
                    [f"%{needle.lower()}%"],
                )
                if cursor.fetchone()[0]:
                    hits.append(f"{table}.{column.name}")
    return hits


def ledger_holds() -> bool:
    return all(
        w.balance == (LedgerEntry.objects.filter(wallet=w).aggregate(s=Sum("amount"))["s"] or 0)
        for w in Wallet.objects.all()
    )


@pytest.fixture
def person(admin_user: User, owner: User, org: Organization) -> User:
    """Someone with a footprint everywhere: sessions, events, keys, logs, ledger, a team,
    a linked provider, a second factor, an export, an admin log entry."""
    user = user_create(email=EMAIL, password=PASSWORD, name=NAME, email_verified=True)
    personal = organization_personal(user=user)
    Membership.objects.create(user=user, organization=org, role=Membership.Role.ADMIN)
    wallet_credit(
        organization=personal, amount=5_000_000, kind="topup", source_type="t", source_id="z1"
    )
    wallet_adjust(organization=personal, amount=-1_000, reason="goodwill", created_by=admin_user)
    key, _ = key_create(organization=personal, created_by=user, name="laptop")
    team_key, _ = key_create(organization=org, created_by=user, name="ci")
    for i, k in enumerate((key, team_key)):
        RequestLog.objects.create(
            request_id=f"req_{i}",
            organization_id=k.organization_id,
            api_key_id=k.pk,
            endpoint="chat",
            status_code=200,
            client_ip=IP,
            user_agent=AGENT,
            cost=10,
        )
    SocialAccount.objects.create(
        user=user, provider="github", uid="99", extra_data={"email": EMAIL, "name": NAME}
    )
    Invitation.objects.create(
        organization=org, email=EMAIL.upper(), token_hash="0" * 64,
        expires_at="2999-01-01T00:00:00Z",
    )  # fmt: skip
    PaymentEvent.objects.create(
        provider="stripe", event_id="evt_1", event_type="checkout.session.completed",
        payload=f'{{"customer_details": {{"email": "{EMAIL}"}}}}',
    )  # fmt: skip
    export = DataExport.objects.create(user=user, expires_at="2999-01-01T00:00:00Z")
    data_export_build(export=export)
    LogEntry.objects.create(
        user=admin_user,
        content_type=ContentType.objects.get_for_model(User),
        object_id=str(user.pk),
        object_repr=EMAIL,
        action_flag=CHANGE,
        change_message=f"Changed name to {NAME}.",
    )
    return user


def signed_in(user_email: str) -> Client:
    client = Client(REMOTE_ADDR=IP, HTTP_USER_AGENT=AGENT)
    response = client.post("/accounts/login/", {"login": user_email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    return client


def test_it_leaves_no_trace_of_the_person_and_keeps_the_ledger(person: User, org: Organization):
    client = signed_in(EMAIL)
    client.get("/dashboard/settings/")  # a tracked session with address and agent
    Authenticator.objects.create(user=person, type=Authenticator.Type.TOTP, data={"secret": "x"})
    for needle in (EMAIL, NAME, IP, AGENT):
        assert database_hits(needle), f"the fixture should have stored {needle}"
    entries_before = LedgerEntry.objects.count()

    # Deleting needs a fresh password (allauth reauthentication).
    response = client.post("/dashboard/settings/delete")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/reauthenticate/")
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    assert client.get("/dashboard/settings/delete").status_code == 200
    response = client.post("/dashboard/settings/delete")
    assert (response.status_code, response["Location"]) == (302, "/accounts/login/")

    for needle in (EMAIL, NAME, IP, AGENT):
        assert database_hits(needle) == [], needle
    assert LedgerEntry.objects.count() == entries_before
    assert ledger_holds()
    person.refresh_from_db()
    assert not person.is_active and not person.has_usable_password()
    assert not ApiKey.objects.filter(created_by=person).exclude(status="revoked").exists()
    assert not Membership.objects.filter(user=person, organization=org).exists()
    assert not EmailAddress.objects.filter(user=person).exists()
    assert AuditEvent.objects.filter(user=person, kind="account_deleted").exists()
    # Signed out here and unable to sign in again.
    assert client.get("/dashboard/").status_code == 302
    again = Client().post("/accounts/login/", {"login": EMAIL, "password": PASSWORD})
    assert again.status_code == 200 and "_auth_user_id" not in again.wsgi_request.session


def test_the_only_owner_of_a_team_must_hand_it_over_first(owner: User, teammate: User, org):
    org.is_personal = False
    org.save()
    with pytest.raises(AccountDeletionBlocked, match="only owner"):
        account_delete(user=owner)
    owner.refresh_from_db()
    assert owner.is_active and owner.email == "owner@example.com"
