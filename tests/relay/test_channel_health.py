"""Channel health probes, re-enabling and the last-channel alert."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.conf import settings
from django.core import mail

from accounts.models import User
from relay import cooldown
from relay.channel_health import channel_test, channels_probe, last_channel_alert
from relay.models import Channel
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.django_db


def _auto_disable(channel: Channel) -> None:
    Channel.objects.filter(pk=channel.pk).update(
        status=Channel.Status.AUTO_DISABLED, disabled_reason="upstream answered 401"
    )


def test_it_probes_with_one_tiny_request_and_records_the_result(
    fake: FakeUpstream, openai_channel: Callable[..., Channel]
) -> None:
    channel = openai_channel(models=("gpt-4o-mini",), model_map={"gpt-4o-mini": "gpt-4o-2024"})

    result = channel_test(channel=channel)

    assert result.ok and result.error == ""
    [sent] = fake.requests
    body = sent.json
    assert body["model"] == "gpt-4o-2024" and body["max_completion_tokens"] == 1
    channel.refresh_from_db()
    assert channel.probe_ok is True and channel.probed_at is not None
    assert channel.probe_latency_ms is not None


def test_it_records_a_failing_probe_without_the_upstream_body(
    fake: FakeUpstream, openai_channel: Callable[..., Channel]
) -> None:
    channel = openai_channel(api_keys=["sk-upstream-revoked"])
    fake.reject_key("sk-upstream-revoked")

    result = channel_test(channel=channel)

    assert not result.ok and result.error == "upstream answered 401"
    channel.refresh_from_db()
    assert channel.probe_ok is False and channel.probe_error == "upstream answered 401"


def test_it_enables_an_auto_disabled_channel_that_answers_again(
    fake: FakeUpstream, openai_channel: Callable[..., Channel]
) -> None:
    broken = openai_channel(name="broken", api_keys=["sk-upstream-bad"])
    healed = openai_channel(name="healed", api_keys=["sk-upstream-good"])
    fake.reject_key("sk-upstream-bad")
    _auto_disable(broken)
    _auto_disable(healed)

    results = channels_probe()

    assert set(results) == {broken.pk, healed.pk}
    broken.refresh_from_db()
    healed.refresh_from_db()
    assert broken.status == Channel.Status.AUTO_DISABLED
    assert healed.status == Channel.Status.ENABLED and healed.disabled_reason == ""


def test_it_leaves_channels_an_admin_disabled_alone(
    fake: FakeUpstream, openai_channel: Callable[..., Channel]
) -> None:
    channel = openai_channel()
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.DISABLED)

    assert channels_probe() == {}
    assert fake.requests == []
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.DISABLED


@pytest.mark.postgres
def test_it_ends_the_cooldown_of_a_channel_that_answers(
    fake: FakeUpstream, openai_channel: Callable[..., Channel]
) -> None:
    if not settings.REDIS_URL:
        pytest.skip("cooldowns are shared through Redis only")
    channel = openai_channel()
    client = cooldown._sync_redis()
    client.hset(cooldown._COOL, str(channel.pk), str(time.time() + 600))
    assert cooldown.cooling_channel_ids() == {channel.pk}

    channels_probe()

    assert cooldown.cooling_channel_ids() == set()


def test_it_alerts_operators_when_a_disabled_channel_was_the_last_for_a_model(
    openai_channel: Callable[..., Channel], admin_user: User
) -> None:
    only = openai_channel(name="only", models=("gpt-4o-mini", "o3"))
    openai_channel(name="backup", models=("gpt-4o-mini",))
    _auto_disable(only)

    assert last_channel_alert(channel_id=only.pk) == ["o3"]

    [message] = mail.outbox
    assert message.to == [admin_user.email]
    assert "o3" in message.body and "only" in message.subject
    assert "sk-upstream" not in message.body  # the channel's key never goes out


def test_it_sends_no_alert_when_other_channels_still_serve_every_model(
    openai_channel: Callable[..., Channel], admin_user: User
) -> None:
    first = openai_channel(name="first")
    openai_channel(name="second")
    _auto_disable(first)

    assert last_channel_alert(channel_id=first.pk) == []
    assert mail.outbox == []
