"""A channel that keeps reporting usage beyond the requests' holds is flagged for the
operators: once per flag, shown in the admin, on the status page and in /metrics, cleared by
an acknowledgement or a quiet day. It keeps serving."""

from __future__ import annotations

import datetime as dt
import itertools
import smtplib

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from billing.models import UncollectedUsage
from logs.models import RequestLog
from relay.models import Channel
from relay.services import channel_create, channels_overreport_check
from relay.tasks import flag_overreporting_channels

pytestmark = pytest.mark.django_db
CHANGELIST = "admin:relay_channel_changelist"
_ids = itertools.count()


def _channel(name: str = "east") -> Channel:
    return channel_create(
        name=name, type="openai", base_url="https://e.example/v1", api_keys=["k"], models=["m"]
    )


def _traffic(
    channel: Channel, *, requests: int, overreported: int, at: dt.datetime | None = None
) -> None:
    """REQUESTS logged on CHANNEL, the first OVERREPORTED of them reported beyond their hold."""
    at = at or timezone.now()
    for n in range(requests):
        ref = f"req_{next(_ids)}"
        RequestLog.objects.create(
            request_id=ref, organization_id=1, channel_id=channel.pk, endpoint="chat",
            model="m", status_code=200, cost=100, created_at=at,
        )  # fmt: skip
        if n < overreported:
            UncollectedUsage.objects.create(
                reference=ref, wallet_id=1, channel_id=channel.pk, model="m",
                cost=5_000_100, amount=5_000_000, created_at=at,
            )  # fmt: skip


def _flag(channel: Channel) -> Channel:
    _traffic(channel, requests=100, overreported=5)
    assert channels_overreport_check() == [channel.pk]
    channel.refresh_from_db()
    return channel


def test_it_flags_a_channel_that_keeps_over_reporting_and_emails_the_operators_once(
    admin_user: User,
) -> None:
    channel = _channel()
    quiet = _channel("west")
    _traffic(channel, requests=100, overreported=5)  # at the thresholds: 5 and 5%
    _traffic(quiet, requests=100, overreported=0)

    assert flag_overreporting_channels() == [channel.pk]  # the beat job
    assert channels_overreport_check() == []  # idempotent: already flagged

    channel.refresh_from_db()
    assert channel.overreport_flagged_at is not None
    assert channel.overreport_note == (
        "5 of 100 requests (5.0%) reported usage beyond their hold in 24 h; "
        "25.000000 USD not charged"
    )
    assert channel.status == Channel.Status.ENABLED  # it keeps serving
    assert Channel.objects.get(pk=quiet.pk).overreport_flagged_at is None
    [message] = mail.outbox
    assert message.to == [admin_user.email]
    assert "east" in message.subject
    assert channel.overreport_note in message.body
    assert f"/admin/relay/channel/{channel.pk}/change/" in message.body
    assert "flag-overreporting-channels" in settings.CELERY_BEAT_SCHEDULE


@pytest.mark.parametrize(
    ("requests", "overreported", "hours_ago"),
    [
        (10, 4, 0),  # 40% of requests, but fewer than 5
        (1000, 5, 0),  # 5 requests, but 0.5% of them
        (100, 10, 25),  # enough, but outside the last 24 hours
    ],
)
def test_it_does_not_flag_below_the_thresholds(
    admin_user: User, requests: int, overreported: int, hours_ago: int
) -> None:
    channel = _channel()
    at = timezone.now() - dt.timedelta(hours=hours_ago)
    _traffic(channel, requests=requests, overreported=overreported, at=at)

    assert channels_overreport_check() == []

    assert Channel.objects.get(pk=channel.pk).overreport_flagged_at is None
    assert mail.outbox == []


def test_the_thresholds_are_settings(admin_user: User, settings) -> None:
    settings.CHANNEL_OVERREPORT_MIN_REQUESTS = 2
    settings.CHANNEL_OVERREPORT_MIN_PERCENT = 0.1
    channel = _channel()
    _traffic(channel, requests=1000, overreported=2)

    assert channels_overreport_check() == [channel.pk]


def test_an_acknowledged_flag_clears_and_only_new_over_reports_raise_it_again(
    client: Client, admin_user: User
) -> None:
    channel = _flag(_channel())
    client.force_login(admin_user)

    client.post(
        reverse(CHANGELIST), {"action": "acknowledge_overreport", "_selected_action": [channel.pk]}
    )

    channel.refresh_from_db()
    assert channel.overreport_flagged_at is None and channel.overreport_note == ""
    assert channel.overreport_acknowledged_at is not None
    history = LogEntry.objects.get(object_id=str(channel.pk))
    assert history.user == admin_user
    assert history.change_message.startswith("Acknowledged over-reporting: 5 of 100 requests")
    # The over-reports already acknowledged do not count again ...
    assert channels_overreport_check() == []
    # ... new ones do, against the requests since the acknowledgement.
    _traffic(channel, requests=20, overreported=5)
    assert channels_overreport_check() == [channel.pk]
    assert Channel.objects.get(pk=channel.pk).overreport_note == (
        "5 of 20 requests (25.0%) reported usage beyond their hold since the last "
        "acknowledgement; 25.000000 USD not charged"
    )
    assert len(mail.outbox) == 2


def test_a_flag_clears_itself_once_a_whole_window_passes_without_over_reports(
    admin_user: User,
) -> None:
    channel = _channel()
    now = timezone.now()
    _traffic(channel, requests=100, overreported=5, at=now - dt.timedelta(hours=23))
    assert channels_overreport_check(now=now) == [channel.pk]

    # Two hours on, the over-reports are out of the window, but the flag stays for a day.
    channels_overreport_check(now=now + dt.timedelta(hours=2))
    assert Channel.objects.get(pk=channel.pk).overreport_flagged_at is not None

    channels_overreport_check(now=now + dt.timedelta(hours=24, minutes=1))
    channel.refresh_from_db()
    assert channel.overreport_flagged_at is None and channel.overreport_note == ""
    assert len(mail.outbox) == 1


def test_a_flag_stays_while_the_channel_keeps_over_reporting(admin_user: User) -> None:
    channel = _channel()
    now = timezone.now()
    _traffic(channel, requests=100, overreported=5, at=now)
    channels_overreport_check(now=now)
    _traffic(channel, requests=10, overreported=1, at=now + dt.timedelta(hours=24))

    channels_overreport_check(now=now + dt.timedelta(hours=25))

    assert Channel.objects.get(pk=channel.pk).overreport_flagged_at is not None
    assert len(mail.outbox) == 1


def test_a_flagged_channel_is_shown_in_the_admin_the_status_page_and_metrics(
    client: Client, admin_user: User
) -> None:
    channel = _flag(_channel())
    other = _channel("west")
    client.force_login(admin_user)

    page = client.get(reverse(CHANGELIST)).content.decode()
    assert page.count("⚑ flagged since") == 1
    assert f'title="{channel.overreport_note}"' in page
    flagged = client.get(reverse(CHANGELIST), {"overreport": "flagged"}).context["cl"]
    assert [c.pk for c in flagged.result_list] == [channel.pk]
    status = client.get("/admin/status/").content.decode()
    assert 'data-overreporting="east"' in status and channel.overreport_note in status
    assert 'data-overreporting="west"' not in status
    metrics = client.get("/metrics").content.decode()  # from 127.0.0.1
    assert f'tokenhub_channel_overreport_flagged{{channel="{channel.pk}"}} 1\n' in metrics
    assert f'tokenhub_channel_overreport_flagged{{channel="{other.pk}"}} 0\n' in metrics


def test_a_mail_server_that_is_down_does_not_keep_channels_unflagged(
    admin_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise smtplib.SMTPServerDisconnected("down")

    monkeypatch.setattr("relay.services.send_mail", refuse)
    first, second = _channel("east"), _channel("west")
    _traffic(first, requests=10, overreported=5)
    _traffic(second, requests=10, overreported=5)

    assert sorted(channels_overreport_check()) == sorted([first.pk, second.pk])
