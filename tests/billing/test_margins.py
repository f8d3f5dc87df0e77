"""The operator's margins (billing/margins.py): revenue against upstream cost from the rollup
and the request logs, grouped four ways; the staff page's CSV, the staff API, and the
channel margin alert (relay/margin_alerts.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import smtplib
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import Organization, User
from accounts.services import key_create, user_create
from billing.margins import (
    GROUPS,
    MAX_DAYS,
    MarginQuery,
    MarginQueryError,
    MarginRow,
    margin_query_from,
    margin_report,
)
from billing.models import UncollectedUsage, Wallet
from logs.models import DailyUsage, RequestLog, RolledUpDay
from relay.margin_alerts import margin_alerts_check
from relay.models import Channel
from relay.services import channel_create
from tests.billing.test_payment_concurrency import _together

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

ROLLED = dt.date(2026, 3, 14)  # in DailyUsage
LIVE = dt.date(2026, 3, 15)  # only in RequestLog
_ids = itertools.count()


def _at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def _log(day_or_time: dt.date | dt.datetime, **fields: Any) -> RequestLog:
    at = day_or_time if isinstance(day_or_time, dt.datetime) else _at(day_or_time)
    values: dict[str, Any] = {
        "request_id": f"req_{next(_ids)}",
        "organization_id": 1,
        "channel_id": 7,
        "endpoint": "chat",
        "model": "gpt-4o",
        "status_code": 200,
        "created_at": at,
        **fields,
    }
    return RequestLog.objects.create(**values)


def _rolled(**fields: Any) -> DailyUsage:
    values: dict[str, Any] = {
        "day": ROLLED,
        "organization_id": 1,
        "channel_id": 7,
        "model": "gpt-4o",
        "requests": 1,
        **fields,
    }
    RolledUpDay.objects.get_or_create(day=values["day"])
    return DailyUsage.objects.create(**values)


def _figures(row: MarginRow) -> tuple[int, int, int, int, int]:
    return row.requests, row.revenue, row.upstream_cost, row.margin, row.uncosted


def _query(group: str = "day", first: dt.date = ROLLED, last: dt.date = LIVE) -> MarginQuery:
    return MarginQuery(first=first, last=last, group=group)


# --- Selectors ---------------------------------------------------------------------------


def test_it_reads_rolled_up_days_from_the_rollup_and_the_others_from_the_logs() -> None:
    _rolled(requests=40, cost=3_000_000, plan_cost=1_000_000, upstream_cost=2_500_000)
    # Still kept as logs of a rolled-up day: must not be counted a second time.
    _log(ROLLED, cost=3_000_000, plan_cost=1_000_000, upstream_cost=2_500_000)
    _log(LIVE, cost=700_000, upstream_cost=500_000)
    _log(LIVE, plan_cost=300_000, upstream_cost=100_000)
    _log(LIVE + dt.timedelta(days=1), cost=9_000_000, upstream_cost=1)  # after the range

    report = margin_report(query=_query())

    assert [row.key for row in report.rows] == [ROLLED, LIVE]
    assert _figures(report.rows[0]) == (40, 4_000_000, 2_500_000, 1_500_000, 0)
    assert _figures(report.rows[1]) == (2, 1_000_000, 600_000, 400_000, 0)
    assert _figures(report.totals) == (42, 5_000_000, 3_100_000, 1_900_000, 0)
    assert report.totals.margin_percent == Decimal("38.0")
    assert report.rolled_days == [ROLLED]


def test_every_day_of_the_range_has_a_row_even_without_traffic() -> None:
    _log(LIVE, cost=10)

    report = margin_report(query=_query(first=LIVE - dt.timedelta(days=3)))

    assert [row.key for row in report.rows] == [LIVE - dt.timedelta(days=n) for n in (3, 2, 1, 0)]
    assert [row.requests for row in report.rows] == [0, 0, 0, 1]


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ("model", {"gpt-4o": (3, 1_300_000, 900_000), "claude": (2, 400_000, 600_000)}),
        ("channel", {7: (4, 1_600_000, 1_400_000), None: (1, 100_000, 100_000)}),
        ("organization", {1: (3, 1_300_000, 900_000), 2: (2, 400_000, 600_000)}),
    ],
)
def test_it_groups_by_model_channel_and_organization(
    group: str, expected: dict[object, tuple[int, int, int]]
) -> None:
    _rolled(requests=2, cost=1_000_000, upstream_cost=500_000)
    _rolled(organization_id=2, model="claude", requests=1, cost=300_000, upstream_cost=500_000)
    _log(LIVE, cost=300_000, upstream_cost=400_000)
    _log(LIVE, organization_id=2, model="claude", channel_id=None, cost=100_000,
         upstream_cost=100_000)  # fmt: skip

    report = margin_report(query=_query(group))

    got = {row.key: (row.requests, row.revenue, row.upstream_cost) for row in report.rows}
    assert got == expected
    # Largest revenue first.
    assert [row.key for row in report.rows] == list(expected)
    assert report.totals.requests == 5


def test_uncosted_requests_are_counted_apart_never_as_zero_cost() -> None:
    _rolled(requests=9, cost=900, uncosted_requests=3)  # counted by the rollup
    _log(LIVE, cost=500_000, upstream_cost=None)  # charged, no upstream cost recorded
    _log(LIVE, plan_cost=7, upstream_cost=None)  # drawn from a plan, not costed
    _log(LIVE, channel_id=3, status_code=502, upstream_cost=None)  # failed upstream: free
    _log(LIVE, channel_id=None, status_code=401, upstream_cost=None)  # refused before routing
    _log(LIVE, cost=100_000, upstream_cost=0)  # recorded: free upstream

    totals = margin_report(query=_query()).totals

    assert totals.uncosted == 3 + 2
    assert (totals.requests, totals.revenue, totals.upstream_cost) == (14, 600_907, 0)


def test_a_loss_is_a_negative_margin() -> None:
    _log(LIVE, model="cheap", cost=100_000, upstream_cost=250_000)
    _log(LIVE, model="dear", cost=1_000_000, upstream_cost=100_000)
    _log(LIVE, model="free", upstream_cost=50_000)

    rows = {row.key: row for row in margin_report(query=_query("model")).rows}

    assert (rows["cheap"].margin, rows["cheap"].margin_percent) == (-150_000, Decimal("-150.0"))
    assert rows["cheap"].negative and not rows["dear"].negative
    assert (rows["free"].negative, rows["free"].margin_percent) == (True, None)


def test_uncollected_usage_is_shown_but_not_subtracted_again(org: Organization) -> None:
    wallet = Wallet.objects.get(organization=org)
    _log(LIVE, organization_id=org.pk, cost=1_000_000, upstream_cost=1_800_000)
    UncollectedUsage.objects.create(
        reference="r1", wallet_id=wallet.pk, channel_id=7, model="gpt-4o", cost=1_800_000,
        amount=800_000, created_at=_at(LIVE),
    )  # fmt: skip

    by_org = margin_report(query=_query("organization"))
    by_day = margin_report(query=_query("day"))

    [row] = by_org.rows
    assert (row.key, row.uncollected, row.margin) == (org.pk, 800_000, -800_000)
    assert by_day.rows[-1].uncollected == 800_000
    assert by_day.totals.margin == -800_000


# --- Parameters --------------------------------------------------------------------------

TODAY = dt.date(2026, 3, 20)


def test_the_default_range_is_the_last_30_days_by_day() -> None:
    assert margin_query_from({}, today=TODAY) == MarginQuery(
        first=TODAY - dt.timedelta(days=29), last=TODAY, group="day"
    )
    assert margin_query_from({"to": "2026-01-31", "group": "model"}, today=TODAY) == MarginQuery(
        first=dt.date(2026, 1, 2), last=dt.date(2026, 1, 31), group="model"
    )


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"from": "yesterday"}, "from", "from is not a date (YYYY-MM-DD)."),
        ({"to": "2026-02-30"}, "to", "to is not a date (YYYY-MM-DD)."),
        ({"from": "0001-01-01"}, "from", "from must be a day from 1970-01-01 to 9998-12-31."),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "from", "must not be after the last day"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "from", "at most 366 days"),
        ({"group": "key"}, "group", "Group by day, model, channel or organization."),
    ],
)
def test_bad_parameters_are_refused_with_a_message(
    params: dict[str, str], field: str, message: str
) -> None:
    with pytest.raises(
        MarginQueryError, match=message.replace("(", r"\(").replace(")", r"\)")
    ) as e:
        margin_query_from(params, today=TODAY)
    assert e.value.field == field


@given(st.dictionaries(st.sampled_from(["from", "to", "group", "x"]), st.text(max_size=30)))
def test_any_parameters_give_a_bounded_query_or_a_refusal(params: dict[str, str]) -> None:
    try:
        query = margin_query_from(params, today=TODAY)
    except MarginQueryError as exc:
        assert exc.field in ("from", "to", "group")
        assert str(exc)
        return
    assert query.first <= query.last
    assert (query.last - query.first).days < MAX_DAYS
    assert query.group in ("day", "model", "channel", "organization")


@given(st.dates(), st.dates())
def test_any_pair_of_days_parses_without_crashing(first: dt.date, last: dt.date) -> None:
    params = {"from": first.isoformat(), "to": last.isoformat()}
    try:
        query = margin_query_from(params, today=TODAY)
    except MarginQueryError:
        return
    assert (query.first, query.last) == (first, last)


# --- The staff API -------------------------------------------------------------------------


@pytest.fixture
def staff(db: None) -> User:
    user = user_create(email="staff@example.com", password="staff-pass-123")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def _signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_api_gives_staff_rows_and_totals_in_micro_usd(staff: User) -> None:
    _rolled(requests=2, cost=1_000_000, upstream_cost=1_500_000)
    _log(LIVE, cost=300_000, plan_cost=200_000, upstream_cost=None)

    response = _signed_in(staff).get(
        "/api/v1/margins", {"from": "2026-03-14", "to": "2026-03-15", "group": "day"}
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["from"], body["to"], body["group"], body["rolled_up_days"]) == (
        "2026-03-14", "2026-03-15", "day", 1,
    )  # fmt: skip
    first, second = body["rows"]
    assert first == {
        "day": "2026-03-14", "requests": 2, "revenue": 1_000_000, "cost": 1_000_000,
        "plan_cost": 0, "upstream_cost": 1_500_000, "margin": -500_000,
        "margin_percent": "-50.0", "negative": True, "uncosted_requests": 0, "uncollected": 0,
    }  # fmt: skip
    assert (second["revenue"], second["uncosted_requests"], second["margin_percent"]) == (
        500_000, 1, "100.0",
    )  # fmt: skip
    assert body["totals"]["margin"] == 0
    assert "day" not in body["totals"]


def test_the_api_names_channels_and_organizations_by_id(staff: User) -> None:
    _log(LIVE, channel_id=None, cost=5)

    rows = (
        _signed_in(staff)
        .get("/api/v1/margins?group=channel&from=2026-03-15&to=2026-03-15")
        .json()["rows"]
    )

    assert [(r["channel_id"], r["revenue"]) for r in rows] == [(None, 5)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-13-01", "from"),
        ("to=soon", "to"),
        ("from=2026-03-15&to=2026-03-14", "from"),
        ("group=week", "group"),
    ],
)
def test_the_api_refuses_bad_parameters_with_400(staff: User, query: str, field: str) -> None:
    response = _signed_in(staff).get(f"/api/v1/margins?{query}")

    assert response.status_code == 400
    [message] = response.json()[field]
    assert message


def test_the_api_is_refused_to_customers_and_strangers(owner: User, make_key: Any) -> None:
    _, secret = make_key(owner, scopes=["manage"])

    as_member = _signed_in(owner).get("/api/v1/margins")
    as_key = Client().get("/api/v1/margins", headers={"Authorization": f"Bearer {secret}"})
    anonymous = Client().get("/api/v1/margins")

    assert (as_member.status_code, as_key.status_code) == (403, 403)
    assert anonymous.status_code in (401, 403)
    assert "rows" not in as_member.json()


def test_a_staff_members_management_key_may_read_it(staff: User, org: Organization) -> None:
    _, secret = key_create(organization=org, created_by=staff, scopes=["manage"])

    response = Client().get("/api/v1/margins", headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 200


def test_the_api_answers_as_its_schema_says(staff: User, org: Organization) -> None:
    import schemathesis
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        response_schema_conformance,
        status_code_conformance,
    )

    from tokenhub.wsgi import application

    _, secret = key_create(organization=org, created_by=staff, scopes=["manage"])
    _rolled(requests=2, cost=1_000_000, upstream_cost=1_500_000)
    _log(LIVE, channel_id=None, organization_id=org.pk, cost=3, upstream_cost=None)
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    # In this thread and transaction, as tests/api/test_schemathesis.py calls the API.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
        operation = schema["/api/v1/margins"]["GET"]
        for query in (
            *({"from": "2026-03-14", "to": "2026-03-15", "group": g} for g in GROUPS),
            {"to": "2026-03-15"},
            {"group": "nope"},
        ):
            case = operation.Case(query=query)
            case.call_and_validate(headers={"Authorization": f"Bearer {secret}"}, checks=checks)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_the_schema_documents_the_operation(client: Client) -> None:
    schema = client.get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/v1/margins"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"from", "to", "group"}
    assert {"200", "400", "401", "403"} <= set(operation["responses"])


# --- The admin page and its CSV ------------------------------------------------------------


def _csv(client: Client, **params: str) -> list[list[str]]:
    response = client.get("/admin/margins/", {**params, "format": "csv"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="tokenhub-margins-')
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_the_csv_is_the_table_with_formulas_defused(admin_user: User) -> None:
    _log(LIVE, model='=HYPERLINK("https://evil.example")', cost=100, upstream_cost=2_000_100)
    _log(LIVE, model="gpt-4o", cost=3_000_000, upstream_cost=1_000_000)

    rows = _csv(_signed_in(admin_user), group="model", **{"from": "2026-03-15", "to": "2026-03-15"})

    assert rows[0] == [
        "model", "requests", "revenue_usd", "charged_usd", "plan_usd", "upstream_cost_usd",
        "margin_usd", "margin_percent", "uncosted_requests", "uncollected_usd",
    ]  # fmt: skip
    assert rows[1] == ["gpt-4o", "1", "3.000000", "3.000000", "0.000000", "1.000000",
                       "2.000000", "66.7", "0", "0.000000"]  # fmt: skip
    assert rows[2][0] == '\'=HYPERLINK("https://evil.example")'
    assert rows[2][6:8] == ["-2.000000", "-2000000.0"]
    assert rows[3][:3] == ["total", "2", "3.000100"]


def test_the_csv_by_channel_carries_ids_and_names(admin_user: User) -> None:
    channel = channel_create(
        name="@east", type="openai", base_url="https://e.example/v1", api_keys=["k"], models=["m"]
    )
    _log(LIVE, channel_id=channel.pk, cost=10, upstream_cost=5)
    _log(LIVE, channel_id=None, cost=1, upstream_cost=None)

    rows = _csv(
        _signed_in(admin_user), group="channel", **{"from": "2026-03-15", "to": "2026-03-15"}
    )

    assert rows[0][:3] == ["channel_id", "channel", "requests"]
    assert rows[1][:3] == [str(channel.pk), "'@east", "1"]
    assert rows[2][:2] == ["", "(no channel)"]
    assert rows[2][9] == "1"  # uncosted
    assert rows[3][:2] == ["", "total"]


def test_the_page_shows_totals_and_marks_negative_rows(admin_user: User) -> None:
    _log(LIVE, model="loss", cost=100, upstream_cost=300)
    _log(LIVE, model="gain", cost=1_000_000, upstream_cost=100)

    page = _signed_in(admin_user).get(
        "/admin/margins/", {"group": "model", "from": "2026-03-15", "to": "2026-03-15"}
    )

    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="margins-chart"' in html and 'id="margins-data"' in html
    assert '<tr data-key="loss" class="margin-negative">' in html
    assert '<tr data-key="gain">' in html
    assert html.count('<span class="negative-label">negative</span>') == 1
    assert 'data-total="revenue" title="$1.000100">$1.00<' in html


def test_the_page_explains_a_bad_range_and_falls_back(admin_user: User) -> None:
    page = _signed_in(admin_user).get("/admin/margins/", {"from": "2026-03-15", "to": "2026-03-01"})

    assert page.status_code == 400
    assert "The first day must not be after the last day." in page.content.decode()


def test_the_page_is_for_staff_only(owner: User) -> None:
    page = _signed_in(owner).get("/admin/margins/")
    csv_export = _signed_in(owner).get("/admin/margins/?format=csv")

    assert page.status_code == 302 and "/admin/login/" in page["Location"]
    assert csv_export.status_code == 302


# --- The channel margin alert ----------------------------------------------------------------

NOW = dt.datetime(2026, 3, 15, 18, tzinfo=dt.UTC)


def _alerting_channel(name: str = "east", below: str | None = "20") -> Channel:
    channel = channel_create(
        name=name, type="openai", base_url="https://e.example/v1", api_keys=["k"], models=["m"]
    )
    channel.margin_alert_below = None if below is None else Decimal(below)
    channel.save(update_fields=["margin_alert_below"])
    return channel


def _traffic(channel: Channel, *, cost: int, upstream: int, hours_ago: int = 1) -> None:
    _log(NOW - dt.timedelta(hours=hours_ago), channel_id=channel.pk, cost=cost,
         upstream_cost=upstream)  # fmt: skip


def test_a_channel_under_its_threshold_alerts_the_operators_once_a_day(admin_user: User) -> None:
    channel = _alerting_channel(below="20")
    _traffic(channel, cost=1_000_000, upstream=850_000)  # 15% margin
    _traffic(channel, cost=9_000_000, upstream=1, hours_ago=25)  # outside the 24 hours

    assert margin_alerts_check(now=NOW) == 1
    assert margin_alerts_check(now=NOW + dt.timedelta(hours=1)) == 0  # same UTC day

    [message] = mail.outbox
    assert message.to == [admin_user.email]
    assert "east" in message.subject and "20" in message.subject
    assert "margin: 0.150000 USD (15.0%)" in message.body
    assert f"/admin/relay/channel/{channel.pk}/change/" in message.body
    assert "/admin/margins/?group=channel" in message.body
    channel.refresh_from_db()
    assert channel.margin_alerted_on == NOW.date()

    # The next UTC day, still under: one more.
    assert margin_alerts_check(now=NOW + dt.timedelta(hours=7)) == 1
    assert len(mail.outbox) == 2


@pytest.mark.parametrize(
    ("below", "cost", "upstream"),
    [
        ("20", 1_000_000, 800_000),  # exactly at the threshold
        ("20", 1_000_000, 100_000),  # well above
        (None, 1_000_000, 5_000_000),  # no threshold set: never
        ("20", 0, 0),  # no traffic worth anything
    ],
)
def test_no_alert_at_or_above_the_threshold(
    admin_user: User, below: str | None, cost: int, upstream: int
) -> None:
    channel = _alerting_channel(below=below)
    _traffic(channel, cost=cost, upstream=upstream)

    assert margin_alerts_check(now=NOW) == 0

    assert mail.outbox == []
    assert Channel.objects.get(pk=channel.pk).margin_alerted_on is None


def test_upstream_cost_without_revenue_alerts(admin_user: User) -> None:
    channel = _alerting_channel(below="0")
    _traffic(channel, cost=0, upstream=10)

    assert margin_alerts_check(now=NOW) == 1


def test_a_failed_email_gives_the_claim_back(
    admin_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = _alerting_channel()
    _traffic(channel, cost=100, upstream=200)

    def refuse(*args: object, **kwargs: object) -> None:
        raise smtplib.SMTPServerDisconnected("down")

    monkeypatch.setattr("relay.margin_alerts.send_mail", refuse)
    assert margin_alerts_check(now=NOW) == 0
    assert Channel.objects.get(pk=channel.pk).margin_alerted_on is None

    monkeypatch.undo()
    assert margin_alerts_check(now=NOW) == 1
    assert len(mail.outbox) == 1


def test_the_alert_runs_hourly_from_beat() -> None:
    from tokenhub.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["margin-alerts"]
    app.loader.import_default_modules()
    assert entry["schedule"] == 3600.0
    assert entry["task"] in app.tasks


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_checking_at_once_send_one_email(admin_user: User) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("concurrent claims are only meaningful on PostgreSQL")
    channel = _alerting_channel()
    _traffic(channel, cost=100, upstream=200)
    sent: list[int] = []

    _together(lambda n: sent.append(margin_alerts_check(now=NOW)), threads=6)

    assert sorted(sent) == [0, 0, 0, 0, 0, 1]
    assert len(mail.outbox) == 1
