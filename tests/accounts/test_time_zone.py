"""The viewer's time zone: the profile's choice, else the browser's `tz` cookie, else UTC;
the management API stays in UTC."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client

from accounts.models import ApiKey, User
from tests.conftest import MakeKey

pytestmark = pytest.mark.django_db


def _zone_shown(client: Client) -> str:
    text = client.get("/dashboard/settings/").content.decode()
    match = re.search(r'data-testid="time-zone">Times are shown in ([^.<]+)\.', text)
    assert match is not None
    return match.group(1)


@pytest.fixture
def owner_client(owner: User) -> Client:
    client = Client()
    client.force_login(owner)
    return client


def test_it_shows_utc_when_nothing_names_a_zone(owner_client: Client) -> None:
    assert _zone_shown(owner_client) == "UTC"


def test_the_browsers_zone_is_used_when_the_profile_names_none(owner_client: Client) -> None:
    owner_client.cookies["tz"] = "Europe/Berlin"

    assert _zone_shown(owner_client) == "Europe/Berlin"


def test_the_profiles_zone_wins_over_the_browsers(owner_client: Client, owner: User) -> None:
    owner.time_zone = "Asia/Shanghai"
    owner.save(update_fields=["time_zone"])
    owner_client.cookies["tz"] = "Europe/Berlin"

    assert _zone_shown(owner_client) == "Asia/Shanghai"


@pytest.mark.parametrize("cookie", ["Mars/Olympus_Mons", "../../etc/passwd", "", "utc+8"])
def test_an_unknown_browser_zone_is_ignored(owner_client: Client, cookie: str) -> None:
    owner_client.cookies["tz"] = cookie

    assert _zone_shown(owner_client) == "UTC"


def test_portal_times_are_shown_in_the_viewers_zone(
    owner_client: Client, owner: User, make_key: MakeKey
) -> None:
    key, _ = make_key(owner, name="laptop")
    used = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=used)
    owner_client.cookies["tz"] = "Asia/Shanghai"

    text = owner_client.get("/dashboard/keys/").content.decode()

    assert "2026-06-01 20:00" in text and "(CST)" in text


def test_the_management_api_stays_in_utc(
    owner_client: Client, owner: User, make_key: MakeKey
) -> None:
    make_key(owner, name="laptop", expires_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    owner_client.cookies["tz"] = "Asia/Shanghai"

    [listed] = owner_client.get("/api/v1/keys").json()["data"]

    assert listed["expires_at"] in ("2030-01-01T00:00:00Z", "2030-01-01T00:00:00+00:00")


def test_the_settings_form_offers_browser_default_and_every_zone(owner_client: Client) -> None:
    text = owner_client.get("/dashboard/settings/").content.decode()

    assert '<option value="" selected>Browser default</option>' in text
    assert '<option value="Europe/Paris">Europe/Paris</option>' in text


def test_the_settings_form_saves_a_zone_and_refuses_an_unknown_one(
    owner_client: Client, owner: User
) -> None:
    owner_client.post("/dashboard/settings/profile", {"name": "O", "time_zone": "Europe/Paris"})
    owner.refresh_from_db()
    assert owner.time_zone == "Europe/Paris"

    refused = owner_client.post(
        "/dashboard/settings/profile", {"name": "O", "time_zone": "Mars/Olympus_Mons"}, follow=True
    )
    owner.refresh_from_db()
    assert owner.time_zone == "Europe/Paris"
    assert "The profile could not be saved." in refused.content.decode()

    owner_client.post("/dashboard/settings/profile", {"name": "O", "time_zone": ""})
    owner.refresh_from_db()
    assert owner.time_zone == ""  # back to the browser's zone
