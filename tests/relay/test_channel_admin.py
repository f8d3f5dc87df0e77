"""The channel admin: "test now", enable/disable, and the health columns."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from logs.models import RequestLog
from relay.models import Channel
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.django_db
CHANGELIST = "admin:relay_channel_changelist"


@pytest.fixture
def staff(client: Client, admin_user: User) -> Client:
    client.force_login(admin_user)
    return client


def test_it_tests_a_channel_now_and_shows_the_latency(
    staff: Client, fake: FakeUpstream, openai_channel: Callable[..., Channel]
) -> None:
    good = openai_channel(name="good")
    bad = openai_channel(name="bad", api_keys=["sk-upstream-rejected"])
    fake.reject_key("sk-upstream-rejected")

    page = staff.post(
        reverse(CHANGELIST),
        {"action": "test_now", "_selected_action": [good.pk, bad.pk]},
        follow=True,
    )

    text = page.content.decode()
    assert "Good: ok in" in text  # the admin capitalises messages
    assert "Bad: failed after" in text and "upstream answered 401" in text
    assert "sk-upstream-rejected" not in text
    assert len(fake.requests) == 2


def test_it_disables_and_enables_channels(
    staff: Client, openai_channel: Callable[..., Channel]
) -> None:
    channel = openai_channel()
    staff.post(reverse(CHANGELIST), {"action": "disable", "_selected_action": [channel.pk]})
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.DISABLED
    staff.post(reverse(CHANGELIST), {"action": "enable", "_selected_action": [channel.pk]})
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.ENABLED


def test_it_shows_the_last_hour_success_rate_and_median_latency(
    staff: Client, openai_channel: Callable[..., Channel]
) -> None:
    channel = openai_channel()
    for n, (status, latency) in enumerate([(200, 10), (200, 30), (502, 900), (200, 20)]):
        RequestLog.objects.create(
            request_id=f"r{n}", organization_id=1, channel_id=channel.pk, endpoint="chat",
            status_code=status, latency_ms=latency,
        )  # fmt: skip

    text = staff.get(reverse(CHANGELIST)).content.decode()

    assert "75% of 4" in text
    assert "30 ms" in text  # the upper median of 10, 20, 30, 900


def _assign(staff: Client, channels: list[Channel], models: str, mode: str) -> str:
    response = staff.post(
        reverse(CHANGELIST),
        {"action": "assign_models", "_selected_action": [c.pk for c in channels],
         "apply": "1", "models": models, "mode": mode},
        follow=True,
    )  # fmt: skip
    return response.content.decode()


def test_it_assigns_models_to_many_channels_at_once(
    staff: Client, openai_channel: Callable[..., Channel]
) -> None:
    a = openai_channel(name="a", models=("gpt-4o-mini",))
    b = openai_channel(name="b", models=("gpt-4o-mini", "o3"))

    form = staff.post(
        reverse(CHANGELIST), {"action": "assign_models", "_selected_action": [a.pk, b.pk]}
    )
    assert form.status_code == 200 and 'name="models"' in form.content.decode()

    assert "2 channel(s) changed" in _assign(staff, [a, b], "o3\ngpt-4.1", "add")
    assert Channel.objects.get(pk=a.pk).model_names == ["gpt-4o-mini", "o3", "gpt-4.1"]
    assert Channel.objects.get(pk=b.pk).model_names == ["gpt-4o-mini", "o3", "gpt-4.1"]

    _assign(staff, [a, b], "o3", "remove")
    assert Channel.objects.get(pk=b.pk).model_names == ["gpt-4o-mini", "gpt-4.1"]


def test_it_refuses_to_leave_a_channel_without_models(
    staff: Client, openai_channel: Callable[..., Channel]
) -> None:
    a = openai_channel(name="a", models=("gpt-4o-mini",))
    b = openai_channel(name="b", models=("gpt-4o-mini", "o3"))

    text = _assign(staff, [a, b], "gpt-4o-mini", "remove")

    assert "would be left without a model" in text
    assert Channel.objects.get(pk=b.pk).model_names == ["gpt-4o-mini", "o3"]  # all or nothing
