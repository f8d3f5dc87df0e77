"""/dashboard/logs/: who sees which logs, filters, keyset pages and the CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client

from accounts.access import ACTIVE_ORG_SESSION_KEY
from accounts.models import ApiKey, Organization, User
from accounts.services import key_create
from logs.models import RequestLog
from relay.services import channel_create

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]
URL = "/dashboard/logs/"
T0 = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)


def _log(org: Organization, n: int, **fields: Any) -> RequestLog:
    values: dict[str, Any] = {
        "request_id": f"req_{org.pk}_{n}",
        "organization_id": org.pk,
        "endpoint": "chat/completions",
        "model": "gpt-4o-mini",
        "status_code": 200,
        "created_at": T0 - dt.timedelta(minutes=n),
        **fields,
    }
    return RequestLog.objects.create(**values)


def _ids(response: Any) -> list[str]:
    text = response.content.decode()
    return [part.split("</code>")[0] for part in text.split("<code>")[1:]]


@pytest.fixture
def keys(org: Organization, owner: User, teammate: User) -> tuple[ApiKey, ApiKey]:
    """One key each, both in the owner's organization."""
    return (
        key_create(organization=org, created_by=owner, name="owner-key")[0],
        key_create(organization=org, created_by=teammate, name="mate-key")[0],
    )


def test_it_shows_owners_every_log_and_members_only_their_keys(
    client: Client, org: Organization, owner: User, teammate: User, keys: tuple[ApiKey, ApiKey]
) -> None:
    owner_key, mate_key = keys
    _log(org, 1, api_key_id=owner_key.pk)
    _log(org, 2, api_key_id=mate_key.pk)

    client.force_login(owner)
    assert sorted(_ids(client.get(URL))) == [f"req_{org.pk}_1", f"req_{org.pk}_2"]
    client.force_login(teammate)
    session = client.session
    session[ACTIVE_ORG_SESSION_KEY] = org.pk  # the owner's organization, not their own
    session.save()
    assert _ids(client.get(URL)) == [f"req_{org.pk}_2"]


def test_a_stranger_sees_none_of_the_organizations_logs(
    client: Client, org: Organization, stranger: User
) -> None:
    _log(org, 1)
    client.force_login(stranger)
    response = client.get(URL)
    assert response.status_code == 200 and _ids(response) == []


def test_it_sends_anonymous_visitors_to_sign_in(client: Client) -> None:
    response = client.get(URL)
    assert response.status_code == 302 and "login" in response["Location"]


def test_it_filters_by_model_status_cost_key_channel_type_and_time(
    client: Client, org: Organization, owner: User, keys: tuple[ApiKey, ApiKey]
) -> None:
    gemini = channel_create(
        name="g", type="gemini", base_url="https://g.example", api_keys=["k"], models=["gem"]
    )
    _log(org, 1, model="gpt-4o", cost=5_000)
    _log(org, 2, status_code=502)
    _log(org, 3, cost=2_000_000, api_key_id=keys[0].pk)
    _log(org, 4, channel_id=gemini.pk, model="gem")
    _log(org, 90)  # outside the time range below
    client.force_login(owner)

    def ids(**params: str) -> set[str]:
        return {i.rsplit("_", 1)[1] for i in _ids(client.get(URL, params))}

    assert ids(model="gpt-4o") == {"1"}
    assert ids(status="error") == {"2"}
    assert ids(status="502") == {"2"}
    assert ids(min_cost="1.5") == {"3"}
    assert ids(key=str(keys[0].pk)) == {"3"}
    assert ids(channel_type="gemini") == {"4"}
    since = (T0 - dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M")
    assert ids(since=since) == {"1", "2", "3", "4"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, "is not a date"),
        ({"min_cost": "lots"}, "Minimum cost must be a number"),
        ({"status": "maybe"}, "Status must be"),
        ({"sort": "prompt"}, "sorted by"),
        ({"cursor": "garbage!"}, "no longer valid"),
        ({"since": "2026-05-02T00:00", "until": "2026-05-01T00:00"}, "must be before"),
    ],
)
def test_it_explains_bad_filters(
    client: Client, owner: User, params: dict[str, str], message: str
) -> None:
    client.force_login(owner)
    response = client.get(URL, params)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_it_pages_with_a_cursor_without_gaps_or_repeats(
    client: Client, org: Organization, owner: User
) -> None:
    for n in range(120):
        # Pairs share a timestamp, so the id must break ties.
        _log(org, n, created_at=T0 - dt.timedelta(minutes=n // 2))
    client.force_login(owner)

    seen: list[str] = []
    params: dict[str, str] = {}
    while True:
        response = client.get(URL, params)
        seen += _ids(response)
        marker = 'rel="next" href="?'
        text = response.content.decode()
        if marker not in text:
            break
        query = text.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&")
        params = dict(part.split("=", 1) for part in query.split("&"))
    assert len(seen) == 120 and len(set(seen)) == 120
    times = [RequestLog.objects.get(request_id=i).created_at for i in seen]
    assert times == sorted(times, reverse=True)


def test_it_sorts_by_cost_within_the_default_day(
    client: Client, org: Organization, owner: User
) -> None:
    now = dt.datetime.now(dt.UTC)
    for n, cost in enumerate([30, 10, 20]):
        _log(org, n, cost=cost, created_at=now - dt.timedelta(minutes=n))
    _log(org, 9, cost=99, created_at=now - dt.timedelta(days=3))  # outside the last day
    client.force_login(owner)

    ascending = _ids(client.get(URL, {"sort": "cost"}))

    assert [i.rsplit("_", 1)[1] for i in ascending] == ["1", "2", "0"]


async def test_it_exports_the_filtered_range_as_csv(
    async_client: AsyncClient, org: Organization, owner: User, keys: tuple[ApiKey, ApiKey]
) -> None:
    @sync_to_async
    def seed() -> None:
        for n in range(2500):  # more than one export batch
            _log(org, n, cost=n, status_code=200 if n % 2 else 500)
        _log(org, 9000, status_code=500, user_agent='=HYPERLINK("http://evil")')

    await seed()
    await async_client.aforce_login(owner)

    response = await async_client.get(URL, {"format": "csv", "status": "error"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert isinstance(response, StreamingHttpResponse)
    chunks = response.streaming_content
    assert isinstance(chunks, AsyncIterator)
    body = b"".join([chunk async for chunk in chunks]).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 1251
    assert {r["status_code"] for r in rows} == {"500"}
    assert rows[0]["request_id"] == f"req_{org.pk}_0" and rows[0]["cost_usd"] == "0.000000"
    evil = next(r for r in rows if r["request_id"].endswith("_9000"))
    assert evil["user_agent"].startswith("'=")  # not a formula in a spreadsheet
    await sync_to_async(lambda: connection.close())()  # the view thread's connection


async def test_a_request_the_plan_paid_shows_what_the_plan_paid_on_the_page_and_in_the_csv(
    async_client: AsyncClient, org: Organization, owner: User
) -> None:
    @sync_to_async
    def seed() -> None:
        _log(org, 1, cost=0, plan_cost=12_345, subscription_id=7)
        _log(org, 2, cost=2_500_000)

    await seed()
    await async_client.aforce_login(owner)
    page = (await async_client.get(URL)).content.decode()
    assert "Paid by your plan: $0.012345" in page
    assert page.count('class="badge"') == 1
    response = await async_client.get(URL, {"format": "csv"})
    assert isinstance(response, StreamingHttpResponse)
    chunks = response.streaming_content
    assert isinstance(chunks, AsyncIterator)
    body = b"".join([chunk async for chunk in chunks]).decode()
    rows = {r["request_id"]: r for r in csv.DictReader(io.StringIO(body))}
    plan, paid = rows[f"req_{org.pk}_1"], rows[f"req_{org.pk}_2"]
    assert (plan["cost_usd"], plan["plan_cost_usd"]) == ("0.000000", "0.012345")
    assert (paid["cost_usd"], paid["plan_cost_usd"]) == ("2.500000", "0.000000")
    await sync_to_async(lambda: connection.close())()  # the view thread's connection
