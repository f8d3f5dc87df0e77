"""/admin/status/: the last hour's rates and per-channel error rates, for staff only."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client

from accounts.models import User
from logs.models import RequestLog
from relay.services import channel_create

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]


def test_it_shows_rates_for_the_last_hour_by_channel(client: Client, admin_user: User) -> None:
    channel = channel_create(
        name="east", type="openai", base_url="https://e.example/v1", api_keys=["k"], models=["m"]
    )
    now = dt.datetime.now(dt.UTC)
    statuses = [200, 200, 200, 502, 200, 429]
    for n, status in enumerate(statuses):
        RequestLog.objects.create(
            request_id=f"r{n}", organization_id=1, endpoint="e", status_code=status,
            channel_id=channel.pk, prompt_tokens=50, completion_tokens=10,
            cache_read_tokens=40 if n < 3 else 0, created_at=now - dt.timedelta(minutes=n),
        )  # fmt: skip
    RequestLog.objects.create(  # older than an hour: not counted
        request_id="old", organization_id=1, endpoint="e", status_code=500,
        channel_id=channel.pk, created_at=now - dt.timedelta(hours=2),
    )  # fmt: skip
    client.force_login(admin_user)

    text = client.get("/admin/status/").content.decode()

    assert re.search(r'data-stat="rpm">0\.1<', text)  # 6 requests in 60 minutes
    assert re.search(r'data-stat="tpm">6<', text)  # 360 tokens in 60 minutes
    assert re.search(r'data-stat="errors">33%<', text)
    row = text.split('data-channel="east"', 1)[1].split("</tr>", 1)[0]
    # 120 of 300 prompt tokens came from the provider's cache.
    assert re.findall(r"<td>([^<]*)</td>", row) == ["east", "6", "360", "2", "33%", "40%"]


def test_it_is_for_staff_only(client: Client, owner: User) -> None:
    client.force_login(owner)
    response = client.get("/admin/status/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
