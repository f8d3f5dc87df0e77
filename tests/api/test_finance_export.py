"""/api/v1/finance/*: the operator's finance export. Who may read it, cursor pages that
neither skip nor repeat a row, the date range and organization filters, the fields of every
kind, the streamed CSV (formula-safe), and refusals of bad parameters (never a 5xx)."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from asgiref.sync import sync_to_async
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection, transaction
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Organization, User
from accounts.selectors import organization_personal
from accounts.services import key_create, user_create
from billing import finance_api
from billing.finance_api import cursor_decode, cursor_encode
from billing.finance_selectors import Position
from billing.models import (
    CreditNote,
    LedgerEntry,
    Plan,
    PlanPayment,
    Statement,
    Subscription,
    TopUp,
)
from billing.services import wallet_adjust, wallet_credit
from billing.topups import topup_confirm, topup_dispute_record
from tests.api.test_schemathesis import CHECKS, schema

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

BASE = "/api/v1/finance/"
KINDS = ("ledger", "topups", "refunds", "statements", "credit-notes", "plan-payments")
T0 = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def staff_secret(db: None) -> str:
    """A management key of an operator's staff member (staff, not superuser)."""
    user = user_create(email="finance@example.com", email_verified=True)
    User.objects.filter(pk=user.pk).update(is_staff=True)
    _, secret = key_create(
        organization=organization_personal(user=user), created_by=user, scopes=["manage"]
    )
    return secret


@pytest.fixture
def customer(db: None) -> Organization:
    return organization_personal(user=user_create(email="alice@example.com"))


@pytest.fixture
def other_customer(db: None) -> Organization:
    return organization_personal(user=user_create(email="bob@example.com"))


def _adjust(
    org: Organization, amount: int, *, at: dt.datetime | None = None, reason: str = "test"
) -> int:
    entry = wallet_adjust(organization=org, amount=amount, reason=reason, created_by=None)
    if at is not None:  # a fixed time for the range and order tests
        LedgerEntry.objects.filter(pk=entry.pk).update(created_at=at)
    return entry.pk


def _get(client: Client, kind: str, secret: str, **params: Any) -> Any:
    return client.get(BASE + kind, params, headers=_auth(secret))


def _all_pages(client: Client, secret: str, kind: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        body = _get(client, kind, secret, **params).json()
        rows += body["data"]
        if not body["has_more"]:
            return rows
        params["cursor"] = body["next_cursor"]


def _csv(response: Any) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


# --- Who may read it ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_it_answers_anonymous_callers_401_and_non_staff_403(
    client: Client, kind: str, owner: User, make_key: Any
) -> None:
    anonymous = client.get(BASE + kind)
    _, secret = make_key(owner, scopes=["manage"])
    by_key = _get(client, kind, secret)
    client.force_login(owner)
    by_session = client.get(BASE + kind)

    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "Authentication credentials were not provided."}
    assert by_key.status_code == 403
    assert by_key.json() == {"detail": "only the operator's staff may read the finance export"}
    assert by_session.status_code == 403


@pytest.mark.parametrize("kind", KINDS)
def test_staff_read_it_with_a_management_key_or_a_session(
    client: Client, kind: str, staff_secret: str, admin_user: User
) -> None:
    by_key = _get(client, kind, staff_secret)
    client.force_login(admin_user)
    by_session = client.get(BASE + kind)

    assert by_key.status_code == 200
    assert by_key.json() == {"data": [], "has_more": False, "next_cursor": None}
    assert by_session.status_code == 200


def test_an_unknown_format_is_a_401_before_it_is_a_400(client: Client, staff_secret: str) -> None:
    assert client.get(BASE + "ledger", {"format": "xml"}).status_code == 401
    refused = _get(client, "ledger", staff_secret, format="xml")
    assert refused.status_code == 400
    assert set(refused.json()) == {"format"}


# --- Pages --------------------------------------------------------------------------------


def test_pages_list_every_entry_once_in_time_order_while_entries_arrive(
    client: Client, staff_secret: str, customer: Organization, other_customer: Organization
) -> None:
    ids = [_adjust(customer, 1_000 + n) for n in range(13)]
    ids += [_adjust(other_customer, 2_000 + n) for n in range(12)]
    # Five entries at one instant: their ids order them.
    tie = LedgerEntry.objects.get(pk=ids[8]).created_at
    LedgerEntry.objects.filter(pk__in=ids[8:13]).update(created_at=tie)
    seen: list[dict[str, Any]] = []

    first = _get(client, "ledger", staff_secret, limit=10).json()
    seen += first["data"]
    ids += [_adjust(customer, 3_000 + n) for n in range(4)]  # arrive between pages
    cursor = first["next_cursor"]
    while True:
        page = _get(client, "ledger", staff_secret, limit=10, cursor=cursor).json()
        seen += page["data"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break

    assert first["has_more"] is True and len(first["data"]) == 10
    assert sorted(row["id"] for row in seen) == sorted(ids)  # no gap, no repeat
    keys = [(row["created_at"], row["id"]) for row in seen]
    assert keys == sorted(keys)
    # The last cursor resumes later: only what arrives after it.
    late = _adjust(customer, 4_000)
    after = _get(client, "ledger", staff_secret, cursor=cursor).json()
    assert [row["id"] for row in after["data"]] == [late]


def test_an_empty_page_hands_its_cursor_back(client: Client, staff_secret: str) -> None:
    cursor = cursor_encode(Position(at=T0, id=5))

    body = _get(client, "statements", staff_secret, cursor=cursor).json()

    assert body == {"data": [], "has_more": False, "next_cursor": cursor}


def test_the_range_includes_from_and_excludes_to(
    client: Client, staff_secret: str, customer: Organization
) -> None:
    tick = dt.timedelta(microseconds=1)
    before = _adjust(customer, 1, at=T0 - tick)
    first = _adjust(customer, 2, at=T0)
    last = _adjust(customer, 3, at=T0 + dt.timedelta(days=1) - tick)
    after = _adjust(customer, 4, at=T0 + dt.timedelta(days=1))

    by_date = _all_pages(
        client, staff_secret, "ledger", **{"from": "2026-05-01", "to": "2026-05-02"}
    )
    # 14:00 at +02:00 is noon UTC; a time without an offset is UTC.
    by_time = _all_pages(
        client,
        staff_secret,
        "ledger",
        **{"from": "2026-05-01T02:00:00+02:00", "to": "2026-05-02T00:00:00"},
    )
    open_start = _all_pages(client, staff_secret, "ledger", to="2026-05-01")
    open_end = _all_pages(client, staff_secret, "ledger", **{"from": "2026-05-02"})

    assert [r["id"] for r in by_date] == [first, last]
    assert [r["id"] for r in by_time] == [first, last]
    assert before in [r["id"] for r in open_start] and first not in [r["id"] for r in open_start]
    assert [r["id"] for r in open_end] == [after]
    assert by_date[0]["created_at"] == "2026-05-01T00:00:00Z"


def test_the_organization_filter_keeps_that_organization_only(
    client: Client, staff_secret: str, customer: Organization, other_customer: Organization
) -> None:
    mine = {_adjust(customer, 5), _adjust(customer, 6)}
    _adjust(other_customer, 7)

    rows = _all_pages(client, staff_secret, "ledger", organization=customer.pk)

    assert {r["id"] for r in rows} == mine
    assert {r["organization"] for r in rows} == {customer.pk}


# --- What each kind shows -------------------------------------------------------------------


def test_ledger_rows_carry_signed_micro_usd_amounts(
    client: Client, staff_secret: str, customer: Organization
) -> None:
    _adjust(customer, 5_000_000, reason="goodwill")
    _adjust(customer, -1_250_000, reason="correction")

    rows = _get(client, "ledger", staff_secret, organization=customer.pk).json()["data"]

    assert [(r["kind"], r["amount"], r["balance_after"], r["note"]) for r in rows] == [
        ("adjust", 5_000_000, 5_000_000, "goodwill"),
        ("adjust", -1_250_000, 3_750_000, "correction"),
    ]
    assert rows[0]["source_type"] == "adjust" and rows[0]["source_id"]


def _paid_topup(org: Organization, *, credit: int = 10_000_000, pay: int = 1_000) -> TopUp:
    topup = TopUp.objects.create(
        organization=org, provider="stripe", credit=credit, pay_amount=pay, currency="usd"
    )
    topup_confirm(topup_id=topup.pk, payment_id=f"pi_{topup.pk}", amount=pay, currency="usd")
    topup.refresh_from_db()
    return topup


def test_topups_are_the_paid_ones_with_what_was_disputed(
    client: Client, staff_secret: str, customer: Organization
) -> None:
    TopUp.objects.create(
        organization=customer, provider="stripe", credit=1_000_000, pay_amount=100, currency="usd"
    )  # pending: moved no money
    paid = _paid_topup(customer)
    topup_dispute_record(topup_id=paid.pk, dispute_id="dp_1", amount=400)

    rows = _get(client, "topups", staff_secret).json()["data"]

    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == paid.pk and row["organization"] == customer.pk
    assert (row["state"], row["credit"], row["pay_amount"], row["currency"]) == (
        "paid", 10_000_000, 1_000, "usd",
    )  # fmt: skip
    assert (row["refunded_amount"], row["disputed_amount"]) == (0, 400)
    assert row["provider_payment_id"] == f"pi_{paid.pk}"
    assert row["paid_at"].endswith("Z")


def _refund(org: Organization, amount: int, source_id: str) -> LedgerEntry:
    entry, _ = wallet_credit(
        organization=org,
        amount=-amount,
        kind=LedgerEntry.Kind.REFUND,
        source_type="topup_reversal",
        source_id=source_id,
        note="stripe refund",
    )
    return entry


def test_refunds_carry_their_credit_note_number_when_there_is_one(
    client: Client, staff_secret: str, customer: Organization
) -> None:
    topup = _paid_topup(customer)
    noted = _refund(customer, 2_000_000, f"{topup.pk}:refund:200")
    bare = _refund(customer, 1_000_000, f"{topup.pk}:dispute:dp_2")
    CreditNote.objects.create(
        number=41, organization=customer, ledger_entry=noted, topup=topup,
        credit=2_000_000, amount=200, currency="usd",
    )  # fmt: skip
    _adjust(customer, -1)  # not a refund

    rows = _get(client, "refunds", staff_secret).json()["data"]

    assert [(r["id"], r["amount"], r["credit_note"]) for r in rows] == [
        (noted.pk, -2_000_000, 41),
        (bare.pk, -1_000_000, None),
    ]
    assert "kind" not in rows[0]


def _documents(org: Organization) -> None:
    """One statement, credit note and plan payment for ORG."""
    Statement.objects.create(
        organization=org, period=dt.date(2026, 4, 1), opening_balance=1_000_000,
        topups=10_000_000, usage=2_500_000, closing_balance=8_500_000,
        plan_charges={"usd": 2_000},
        usage_by_model=[{"model": "gpt-4o", "requests": 3, "cost": 2_500_000, "plan_cost": 0}],
        billed_to={"legal_name": "=cmd|' /C calc'!A0"}, issuer={"name": "Operator Ltd"},
        issued_at=T0,
    )  # fmt: skip
    topup = _paid_topup(org)
    entry = _refund(org, 1_000_000, f"{topup.pk}:refund:100")
    CreditNote.objects.create(
        number=7, organization=org, ledger_entry=entry, topup=topup, credit=1_000_000,
        amount=100, currency="usd", tax_rate=Decimal("20.000"), reason="-refund", issued_at=T0,
    )  # fmt: skip
    plan = Plan.objects.create(name="Pro", slug="pro", price=2_000)
    subscription = Subscription.objects.create(
        organization=org, plan=plan, provider=Subscription.Provider.STRIPE,
        current_period_start=T0, current_period_end=T0 + dt.timedelta(days=31),
    )  # fmt: skip
    PlanPayment.objects.create(
        subscription=subscription, organization=org, provider="stripe", provider_ref="in_1",
        amount=2_000, period_start=T0, period_end=T0 + dt.timedelta(days=31), paid_at=T0,
    )  # fmt: skip


def test_statements_credit_notes_and_plan_payments_show_their_figures(
    client: Client, staff_secret: str, customer: Organization
) -> None:
    _documents(customer)

    statement = _get(client, "statements", staff_secret).json()["data"][0]
    note = _get(client, "credit-notes", staff_secret).json()["data"][0]
    payment = _get(client, "plan-payments", staff_secret).json()["data"][0]

    assert statement["period"] == "2026-04-01"
    assert (statement["opening_balance"], statement["closing_balance"]) == (1_000_000, 8_500_000)
    assert statement["plan_charges"] == {"usd": 2_000}
    assert statement["usage_by_model"][0]["cost"] == 2_500_000
    assert statement["emailed_at"] is None
    assert (note["number"], note["credit"], note["amount"], note["tax_rate"]) == (
        7, 1_000_000, 100, "20.000",
    )  # fmt: skip
    assert (payment["amount"], payment["currency"], payment["provider_ref"]) == (
        2_000,
        "usd",
        "in_1",
    )
    assert payment["period_end"] == "2026-06-01T00:00:00Z"


# --- CSV ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_the_csv_has_the_json_fields_as_columns(
    client: Client, staff_secret: str, customer: Organization, kind: str
) -> None:
    _documents(customer)
    _adjust(customer, 1)

    page = _get(client, kind, staff_secret).json()["data"]
    response = _get(client, kind, staff_secret, format="csv")
    by_accept = client.get(BASE + kind, headers={**_auth(staff_secret), "Accept": "text/csv"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(f'attachment; filename="tokenhub-{kind}-')
    rows = _csv(response)
    assert list(rows[0]) == list(page[0])
    assert [r["id"] for r in rows] == [str(r["id"]) for r in page]
    assert _csv(by_accept) == rows


def test_the_csv_streams_every_row_of_the_range_in_batches_and_defuses_formulas(
    client: Client,
    staff_secret: str,
    customer: Organization,
    other_customer: Organization,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(finance_api, "CSV_BATCH", 3)  # several batches from a few rows
    ids = [_adjust(customer, 1_000_000 + n) for n in range(7)]
    ids.append(_adjust(customer, -500_000, reason='=HYPERLINK("http://evil.example")'))
    _adjust(other_customer, 9)
    _documents(customer)

    response = _get(client, "ledger", staff_secret, format="csv", limit=2, organization=customer.pk)
    statements = _csv(_get(client, "statements", staff_secret, format="csv"))

    rows = _csv(response)
    assert [int(r["id"]) for r in rows[:8]] == ids  # limit is for JSON pages only
    evil = rows[7]
    assert evil["note"] == '\'=HYPERLINK("http://evil.example")'
    assert evil["amount"] == "-500000"  # a number stays a number
    assert rows[0]["created_at"].endswith("Z")
    assert statements[0]["billed_to"] == '{"legal_name": "=cmd|\' /C calc\'!A0"}'
    assert statements[0]["emailed_at"] == ""


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_csv_streams_from_an_async_iterator(
    async_client: AsyncClient, staff_secret: str, customer: Organization
) -> None:
    await sync_to_async(lambda: [_adjust(customer, 10 + n) for n in range(3)])()

    response = await async_client.get(
        BASE + "ledger", {"format": "csv"}, headers=_auth(staff_secret)
    )

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse) and response.is_async
    chunks = response.streaming_content
    assert isinstance(chunks, AsyncIterator)
    body = b"".join([chunk async for chunk in chunks]).decode()
    assert [r["amount"] for r in csv.DictReader(io.StringIO(body))] == ["10", "11", "12"]
    await sync_to_async(lambda: connection.close())()  # the view thread's connection


# --- Refusals ----------------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-02-30"}, "from"),
        ({"to": "2026-05-01T25:00:00"}, "to"),
        ({"from": "2026-05-02", "to": "2026-05-01"}, "to"),
        ({"to": "0001-01-01T00:00:00+01:00"}, "to"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "+5"}, "limit"),
        ({"organization": "abc"}, "organization"),
        ({"organization": "999999"}, "organization"),
        ({"organization": str(2**64)}, "organization"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
        ({"cursor": "***"}, "cursor"),
        ({"cursor": _b64("0001-01-01T00:00:00+01:00|1")}, "cursor"),
        ({"cursor": _b64("2026-05-01T00:00:00|1")}, "cursor"),
        ({"format": "api"}, "format"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(
    client: Client, staff_secret: str, params: dict[str, str], named: str
) -> None:
    response = _get(client, "ledger", staff_secret, **params)

    assert response.status_code == 400
    assert set(response.json()) == {named}


_PARAM = st.sampled_from(["from", "to", "organization", "cursor", "limit", "format", "other"])
_VALUE = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.dates().map(str),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.builds(lambda p: cursor_encode(p), st.builds(
        Position, at=st.datetimes(timezones=st.just(dt.UTC)), id=st.integers(1, 2**63 - 1)
    )),
)  # fmt: skip


@given(query=st.dictionaries(_PARAM, _VALUE, max_size=4), kind=st.sampled_from(KINDS))
@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_query_string_gets_a_server_error(
    client: Client, staff_secret: str, query: dict[str, str], kind: str
) -> None:
    response = _get(client, kind, staff_secret, **query)

    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert set(response.json()) <= {
            "from",
            "to",
            "organization",
            "cursor",
            "limit",
            "format",
            "detail",
        }
    elif query.get("format") == "csv":
        _csv(response)
    else:
        assert set(response.json()) == {"data", "has_more", "next_cursor"}


_OFFSETS = st.integers(-1439, 1439).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
# Near-cursors: base64 of "<a date-time, any offset or none>|<any integer text>".
_NEAR_CURSORS = st.builds(
    lambda at, pk: _b64(f"{at.isoformat()}|{pk}"),
    st.datetimes(timezones=st.none() | _OFFSETS),
    st.integers(-(2**64), 2**64) | st.text(max_size=5),
)


@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=80).map(bytes.hex), _NEAR_CURSORS))
def test_a_cursor_decodes_only_from_what_the_api_gave_out(text: str) -> None:
    position = cursor_decode(text)

    assert position is None or cursor_encode(position) == text


@given(
    at=st.datetimes(
        min_value=dt.datetime(2, 1, 1),
        max_value=dt.datetime(9998, 12, 31),
        timezones=_OFFSETS,
    ),
    pk=st.integers(1, 2**63 - 1),
)
def test_every_position_survives_its_cursor(at: dt.datetime, pk: int) -> None:
    position = cursor_decode(cursor_encode(Position(at=at, id=pk)))

    assert position is not None
    assert (position.at, position.id) == (at, pk)


# --- Schemathesis with a staff key ----------------------------------------------------------


@pytest.fixture
def staff_world(staff_secret: str, customer: Organization) -> Iterator[str]:
    """Rows of every kind, and the request signals kept off the test's connection (the
    requests run in this thread, in the test's transaction), as in test_schemathesis."""
    _documents(customer)
    _adjust(customer, -3, reason="@SUM(A1)")
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield staff_secret
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.include(tag="finance").parametrize()
@settings(
    max_examples=10,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_finance_export_answers_a_staff_key_as_its_schema_says(
    case: schemathesis.Case[Any], staff_world: str
) -> None:
    with transaction.atomic():
        case.call_and_validate(headers=_auth(staff_world), checks=CHECKS)
        transaction.set_rollback(True)
