"""The overview's usage charts: buckets, ranges, the split by model or key, the error rate,
who sees what, and the first-run steps when there is nothing to chart."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from accounts.access import ACTIVE_ORG_SESSION_KEY
from accounts.models import Membership, Organization, User
from accounts.selectors import organization_personal
from accounts.services import key_create
from logs.models import RequestLog
from logs.selectors import (
    FilterError,
    UsageRange,
    usage_chart,
    usage_range_from,
)
from logs.services import daily_usage_rollup

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]
URL = "/dashboard/"
NOW = dt.datetime(2026, 5, 10, 12, 10, tzinfo=dt.UTC)
UTC = ZoneInfo("UTC")
_counter = iter(range(1_000_000))


def _log(org: Organization, at: dt.datetime, **fields: Any) -> None:
    values: dict[str, Any] = {"model": "gpt-4o-mini", "status_code": 200, **fields}
    RequestLog.objects.create(
        request_id=f"u{next(_counter)}", organization_id=org.pk, endpoint="chat/completions",
        created_at=at, **values,
    )  # fmt: skip


def _owner_membership(org: Organization) -> Membership:
    return Membership.objects.get(organization=org, role=Membership.Role.OWNER)


def _chart(org: Organization, span: UsageRange, split: str = "model", zone: Any = UTC) -> Any:
    return usage_chart(membership=_owner_membership(org), span=span, split=split, zone=zone)


def _data(response: Any) -> dict[str, Any]:
    text = response.content.decode()
    match = re.search(r'<script id="usage-data" type="application/json">(.*?)</script>', text, re.S)
    assert match, "no chart data in the page"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


# --- Ranges ----------------------------------------------------------------------------------


def test_it_buckets_the_last_24_hours_on_the_viewers_hours() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+5:30: its hours start at :30 UTC

    span = usage_range_from({"range": "24h"}, zone=kolkata, now=NOW)

    assert span.step == "hour" and len(span.starts) == 24
    assert span.starts[-1] == dt.datetime(2026, 5, 10, 11, 30, tzinfo=dt.UTC)  # 17:00 there
    assert span.until == dt.datetime(2026, 5, 10, 12, 30, tzinfo=dt.UTC)
    assert all(s.astimezone(kolkata).minute == 0 for s in span.starts)


@pytest.mark.parametrize(("name", "days"), [("7d", 7), ("30d", 30)])
def test_presets_of_days_end_today_in_utc_days(name: str, days: int) -> None:
    span = usage_range_from({"range": name}, zone=ZoneInfo("America/New_York"), now=NOW)

    assert span.step == "day" and len(span.starts) == days
    assert span.starts[-1] == dt.datetime(2026, 5, 10, tzinfo=dt.UTC)
    assert span.until == dt.datetime(2026, 5, 11, tzinfo=dt.UTC)


def test_the_default_range_is_30_days() -> None:
    assert usage_range_from({}, zone=UTC, now=NOW).name == "30d"


def test_a_custom_range_includes_both_days() -> None:
    span = usage_range_from({"range": "custom", "from": "2026-04-01", "to": "2026-04-10"},
                            zone=UTC, now=NOW)  # fmt: skip

    assert span.step == "day" and len(span.starts) == 10
    assert (span.first_day, span.last_day) == (dt.date(2026, 4, 1), dt.date(2026, 4, 10))


def test_a_custom_range_of_a_day_or_two_is_drawn_by_the_hour_in_the_viewers_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")

    span = usage_range_from({"range": "custom", "from": "2026-03-29", "to": "2026-03-29"},
                            zone=berlin, now=NOW)  # fmt: skip

    assert span.step == "hour"
    assert len(span.starts) == 23  # the day clocks go forward
    assert span.starts[0].astimezone(berlin) == dt.datetime(2026, 3, 29, tzinfo=berlin)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"range": "1y"}, "must be 24h, 7d, 30d or custom"),
        ({"range": "custom"}, "needs a first and a last day"),
        ({"range": "custom", "from": "May 1", "to": "2026-05-02"}, "is not a date"),
        ({"range": "custom", "from": "2026-05-03", "to": "2026-05-02"}, "must not be after"),
        ({"range": "custom", "from": "2026-06-01", "to": "2026-06-02"}, "starts in the future"),
        ({"range": "custom", "from": "2020-01-01", "to": "2026-05-02"}, "at most 366 days"),
    ],
)
def test_bad_ranges_are_explained(params: dict[str, str], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        usage_range_from(params, zone=UTC, now=NOW)


# --- Numbers ---------------------------------------------------------------------------------


def test_hours_hold_the_requests_made_in_them(org: Organization) -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    _log(org, dt.datetime(2026, 5, 10, 11, 45, tzinfo=dt.UTC), cost=300)  # 17:15 there
    _log(org, dt.datetime(2026, 5, 10, 11, 20, tzinfo=dt.UTC), cost=200)  # 16:50 there
    _log(org, dt.datetime(2026, 5, 9, 12, 20, tzinfo=dt.UTC), cost=100)  # before the range
    span = usage_range_from({"range": "24h"}, zone=kolkata, now=NOW)

    chart = _chart(org, span, zone=kolkata)

    assert chart.total.cost[-1] == 300 and chart.total.cost[-2] == 200
    assert sum(chart.total.cost) == 500


def test_days_add_the_rollup_and_live_logs_without_double_counting(org: Organization) -> None:
    old = dt.datetime(2026, 5, 7, 9, tzinfo=dt.UTC)
    _log(org, old, cost=1_000_000, prompt_tokens=10, completion_tokens=5)
    _log(org, old, cost=500_000, status_code=500)
    daily_usage_rollup(day=old.date())  # its logs stay too, until purged
    _log(org, NOW - dt.timedelta(minutes=5), cost=250_000, prompt_tokens=1, completion_tokens=2)

    chart = _chart(org, usage_range_from({"range": "7d"}, zone=UTC, now=NOW))

    assert chart.total.cost == [0, 0, 0, 1_500_000, 0, 0, 250_000]
    assert chart.total.requests == [0, 0, 0, 2, 0, 0, 1]
    assert chart.total.tokens == [0, 0, 0, 15, 0, 0, 3]
    assert chart.total.error_rate == [None, None, None, 50.0, None, None, 0.0]


def test_it_splits_by_model_with_the_smaller_ones_summed(org: Organization) -> None:
    for n, model in enumerate(["a", "b", "c", "d", "e", "f", "g"]):
        _log(org, NOW - dt.timedelta(hours=1), model=model, cost=(n + 1) * 100)

    chart = _chart(org, usage_range_from({"range": "24h"}, zone=UTC, now=NOW))

    assert [g.name for g in chart.groups] == ["g", "f", "e", "d", "c", "Other models"]
    assert chart.groups[-1].other and sum(chart.groups[-1].cost) == 100 + 200
    assert sum(chart.total.cost) == 2800


def test_it_splits_by_key_with_key_names(org: Organization, owner: User) -> None:
    key = key_create(organization=org, created_by=owner, name="backend")[0]
    _log(org, NOW - dt.timedelta(hours=2), api_key_id=key.pk, cost=70)
    _log(org, NOW - dt.timedelta(hours=2), api_key_id=None, cost=5)

    chart = _chart(org, usage_range_from({"range": "24h"}, zone=UTC, now=NOW), split="key")

    assert [(g.name, sum(g.cost)) for g in chart.groups] == [("backend", 70), ("(no key)", 5)]


def test_an_unknown_split_is_refused(org: Organization) -> None:
    with pytest.raises(FilterError, match="split by model or by key"):
        _chart(org, usage_range_from({}, zone=UTC, now=NOW), split="channel")


# --- The page --------------------------------------------------------------------------------


def test_the_page_embeds_only_the_organizations_own_usage(
    client: Client, org: Organization, owner: User, stranger: User
) -> None:
    now = dt.datetime.now(dt.UTC)
    _log(org, now, model="ours", cost=1_000)
    _log(organization_personal(user=stranger), now, model="theirs", cost=9_000)
    client.force_login(owner)

    data = _data(client.get(URL, {"range": "24h"}))

    assert [g["name"] for g in data["groups"]] == ["ours"]
    assert sum(data["total"]["cost"]) == 1_000 and data["step"] == "hour"
    assert len(data["buckets"]) == 24


def test_members_chart_only_their_own_keys(
    client: Client, org: Organization, owner: User, teammate: User
) -> None:
    mine = key_create(organization=org, created_by=teammate, name="mine")[0]
    theirs = key_create(organization=org, created_by=owner, name="theirs")[0]
    now = dt.datetime.now(dt.UTC)
    _log(org, now, api_key_id=mine.pk, cost=100)
    _log(org, now, api_key_id=theirs.pk, cost=9_000)
    client.force_login(teammate)
    session = client.session
    session[ACTIVE_ORG_SESSION_KEY] = org.pk
    session.save()

    response = client.get(URL, {"split": "key"})

    assert [g["name"] for g in _data(response)["groups"]] == ["mine"]
    assert "theirs" not in response.content.decode()


def test_a_bad_range_is_a_clear_400_not_a_500(
    client: Client, org: Organization, owner: User
) -> None:
    _log(org, dt.datetime.now(dt.UTC))
    client.force_login(owner)

    response = client.get(URL, {"range": "custom", "from": "2026-05-03", "to": "yesterday"})

    assert response.status_code == 400
    assert "is not a date" in response.content.decode()
    assert _data(response)["range"] == "30d"  # the default range is still drawn


def test_the_numbers_are_in_the_page_without_javascript(
    client: Client, org: Organization, owner: User
) -> None:
    _log(org, dt.datetime.now(dt.UTC), cost=1_234_567, model="gpt-4o")
    client.force_login(owner)

    text = client.get(URL).content.decode()

    groups = text.split('class="usage-groups"', 1)[1].split("</table>", 1)[0]
    assert "gpt-4o" in groups and "$1.23" in groups and 'title="$1.234567"' in groups


def test_anonymous_visitors_are_sent_to_sign_in(client: Client) -> None:
    response = client.get(URL)
    assert response.status_code == 302 and "login" in response["Location"]


# --- First run -------------------------------------------------------------------------------

NEXT_STEPS = ["/dashboard/keys/", "/dashboard/billing/", "/playground/", "/dashboard/connect/"]


def _links(text: str) -> list[str]:
    steps = text.split('class="first-steps"', 1)[1].split("</ol>", 1)[0]
    return re.findall(r'href="([^"]+)"', steps)


def test_an_overview_without_traffic_shows_the_next_steps(client: Client, owner: User) -> None:
    client.force_login(owner)

    text = client.get(URL).content.decode()

    assert _links(text) == NEXT_STEPS
    assert "usage-data" not in text and "<canvas" not in text


def test_the_empty_logs_page_leads_to_the_same_steps(client: Client, owner: User) -> None:
    client.force_login(owner)

    text = client.get("/dashboard/logs/").content.decode()

    assert "No requests yet." in text and _links(text) == NEXT_STEPS


def test_logs_filtered_to_nothing_say_so(client: Client, org: Organization, owner: User) -> None:
    _log(org, dt.datetime.now(dt.UTC))
    client.force_login(owner)

    text = client.get("/dashboard/logs/", {"model": "nothing-like-it"}).content.decode()

    assert "No requests match these filters." in text and 'class="first-steps"' not in text
