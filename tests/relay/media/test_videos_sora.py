"""Sora-style videos through TokenHub with the official SDK: hold, poll, settle exactly once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import openai
import pytest
from django.utils import timezone

from accounts.services import key_create, user_create
from billing.models import Hold
from billing.services import wallet_credit
from logs.models import RequestLog
from relay.models import MediaTask
from relay.tasks import poll_media_tasks
from tests.conftest import balance_set
from tests.fakes.media import FakeMedia, video_bytes
from tests.relay.conftest import Customer
from tests.relay.media.conftest import SORA_PER_SECOND, assert_books_balance, charges_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def _refresh_every_read(settings: Any) -> None:
    settings.MEDIA_STATUS_REFRESH_SECONDS = 0


def _until_finished(client: openai.OpenAI, video_id: str, reads: int = 10) -> Any:
    for _ in range(reads):
        video = client.videos.retrieve(video_id)
        if video.status in ("completed", "failed"):
            return video
    raise AssertionError(f"still {video.status} after {reads} reads")


def test_it_runs_a_video_through_the_sdk_and_charges_it_once(
    sora: Customer, media: FakeMedia
) -> None:
    client = sora.openai()
    start = sora.balance()

    video = client.videos.create(model="sora-2", prompt="a cat on a skateboard", seconds="8",
                                 size="1280x720")  # fmt: skip

    assert video.id.startswith("video_") and video.status == "queued"
    upstream = media.only_task()
    assert video.id != upstream.id
    assert media.seen[0].form["model"] == "sora-2" and media.seen[0].form["seconds"] == "8"
    assert sora.wallet().held == 8 * SORA_PER_SECOND
    states = [client.videos.retrieve(video.id).status]
    done = _until_finished(client, video.id)
    states.append(done.status)
    assert states == ["in_progress", "completed"]
    assert done.progress == 100 and done.seconds == "8"

    content = client.videos.download_content(video.id)
    assert content.content == video_bytes(upstream.id)

    client.videos.retrieve(video.id)  # reading a finished task charges nothing more
    assert charges_for(video.id) == [-8 * SORA_PER_SECOND]
    assert sora.balance() == start - 8 * SORA_PER_SECOND
    log = RequestLog.objects.get(request_id=video.id)
    assert (log.cost, log.endpoint, log.status_code) == (8 * SORA_PER_SECOND, "videos", 200)
    assert_books_balance(sora)


def test_it_charges_the_duration_the_upstream_actually_made(
    sora: Customer, media: FakeMedia
) -> None:
    media.actual_seconds = 4
    client = sora.openai()
    video = client.videos.create(model="sora-2", prompt="waves", seconds="12")
    assert sora.wallet().held == 12 * SORA_PER_SECOND

    done = _until_finished(client, video.id)

    assert done.seconds == "4"
    assert charges_for(video.id) == [-4 * SORA_PER_SECOND]
    assert_books_balance(sora)


def test_a_failed_video_releases_its_hold_and_costs_nothing(
    sora: Customer, media: FakeMedia
) -> None:
    media.plan = ["queued", "failed"]
    client = sora.openai()
    start = sora.balance()
    video = client.videos.create(model="sora-2", prompt="something blocked", seconds="4")

    done = _until_finished(client, video.id)

    assert done.status == "failed"
    assert done.error is not None and done.error.code == "moderation_blocked"
    assert sora.balance() == start and charges_for(video.id) == []
    assert RequestLog.objects.get(request_id=video.id).cost == 0
    with pytest.raises(openai.BadRequestError):
        client.videos.download_content(video.id)
    assert_books_balance(sora)


def test_another_organization_gets_404_for_the_video(sora: Customer, media: FakeMedia) -> None:
    video = sora.openai().videos.create(model="sora-2", prompt="mine", seconds="4")
    other = user_create(email="other@example.com", password="pw-123456789")
    from accounts.selectors import organization_personal

    other_org = organization_personal(user=other)
    wallet_credit(organization=other_org, amount=10_000_000, kind="adjust", source_type="t",
                  source_id="o")  # fmt: skip
    _, secret = key_create(organization=other_org, created_by=other, name="other")
    stranger = sora.openai(secret)

    with pytest.raises(openai.NotFoundError):
        stranger.videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        stranger.videos.download_content(video.id)
    with pytest.raises(openai.NotFoundError):
        stranger.videos.delete(video.id)
    assert [v.id for v in stranger.videos.list()] == []
    assert [v.id for v in sora.openai().videos.list()] == [video.id]
    assert media.status_reads() == 0  # a stranger's read never reaches the upstream


def test_it_polls_the_upstream_at_most_once_per_refresh_interval(
    sora: Customer, media: FakeMedia, settings: Any
) -> None:
    settings.MEDIA_STATUS_REFRESH_SECONDS = 3600
    client = sora.openai()
    video = client.videos.create(model="sora-2", prompt="slow", seconds="4")

    for _ in range(3):
        client.videos.retrieve(video.id)

    assert media.status_reads() == 1


def test_the_poller_settles_without_any_client_reading(sora: Customer, media: FakeMedia) -> None:
    video = sora.openai().videos.create(model="sora-2", prompt="unattended", seconds="4")
    task = MediaTask.objects.get(public_id=video.id)

    for _ in range(3):
        MediaTask.objects.filter(pk=task.pk).update(next_poll_at=timezone.now())
        poll_media_tasks()

    task.refresh_from_db()
    assert task.state == "completed" and task.cost == 4 * SORA_PER_SECOND
    assert task.polls == 2 and media.status_reads() == 2  # a finished task is not polled
    assert charges_for(video.id) == [-4 * SORA_PER_SECOND]
    assert_books_balance(sora)


def test_the_poller_backs_off(sora: Customer, media: FakeMedia, settings: Any) -> None:
    settings.MEDIA_POLL_MIN_SECONDS, settings.MEDIA_POLL_MAX_SECONDS = 5, 40
    media.plan = ["queued"]  # never finishes
    video = sora.openai().videos.create(model="sora-2", prompt="forever", seconds="4")
    task = MediaTask.objects.get(public_id=video.id)
    gaps = []
    for _ in range(16):
        MediaTask.objects.filter(pk=task.pk).update(next_poll_at=timezone.now())
        before = timezone.now()
        poll_media_tasks()
        task.refresh_from_db()
        gaps.append(round((task.next_poll_at - before).total_seconds()))
    assert gaps[0] == 5 and gaps[5] == 10 and gaps[10] == 20 and gaps[15] == 40
    assert gaps == sorted(gaps)


def test_an_upstream_rate_limit_defers_the_channels_batch(sora: Customer, media: FakeMedia) -> None:
    client = sora.openai()
    ids = [client.videos.create(model="sora-2", prompt=f"v{i}", seconds="4").id for i in range(3)]
    MediaTask.objects.update(next_poll_at=timezone.now())
    media.rate_limited = 1

    poll_media_tasks()

    assert media.status_reads() == 1  # the 429 stopped the batch for that channel
    later = timezone.now() + dt.timedelta(seconds=25)
    assert all(t.next_poll_at > later for t in MediaTask.objects.filter(public_id__in=ids))
    assert all(t.state == "queued" for t in MediaTask.objects.all())


def test_a_failing_upstream_costs_one_request_per_run_and_no_task(
    sora: Customer, media: FakeMedia, settings: Any
) -> None:
    client = sora.openai()
    ids = [client.videos.create(model="sora-2", prompt=f"v{i}", seconds="4").id for i in range(3)]
    MediaTask.objects.update(next_poll_at=timezone.now())
    media.status_error = 503

    poll_media_tasks()

    assert media.status_reads() == 1
    later = timezone.now() + dt.timedelta(seconds=settings.MEDIA_POLL_MAX_SECONDS - 5)
    tasks = MediaTask.objects.filter(public_id__in=ids)
    assert all(t.next_poll_at > later and t.state == "queued" for t in tasks)
    media.status_error = None
    assert client.videos.retrieve(ids[0]).status == "in_progress"  # a client read still works


def test_a_video_past_the_timeout_fails_and_is_refunded_once(
    sora: Customer, media: FakeMedia, settings: Any
) -> None:
    media.plan = ["queued"]
    start = sora.balance()
    video = sora.openai().videos.create(model="sora-2", prompt="stuck", seconds="8")
    old = timezone.now() - dt.timedelta(seconds=settings.MEDIA_TASK_TIMEOUT + 1)
    MediaTask.objects.filter(public_id=video.id).update(created_at=old)

    poll_media_tasks()
    poll_media_tasks()

    task = MediaTask.objects.get(public_id=video.id)
    assert (task.state, task.error_code) == ("failed", "timeout")
    assert sora.balance() == start
    assert RequestLog.objects.filter(request_id=video.id).count() == 1
    assert sora.openai().videos.retrieve(video.id).status == "failed"
    assert_books_balance(sora)


def test_a_video_hold_outlives_the_task_timeout(
    sora: Customer, media: FakeMedia, settings: Any
) -> None:
    from billing.holds import holds_sweep

    video = sora.openai().videos.create(model="sora-2", prompt="long", seconds="4")
    hold = Hold.objects.get(reference=video.id)
    assert hold.expires_at > timezone.now() + dt.timedelta(seconds=settings.MEDIA_TASK_TIMEOUT)

    assert (
        holds_sweep(now=timezone.now() + dt.timedelta(seconds=settings.HOLD_TTL_SECONDS + 1)) == 0
    )
    assert Hold.objects.filter(reference=video.id).exists()


def test_a_balance_too_low_is_refused_before_the_upstream(sora: Customer, media: FakeMedia) -> None:
    balance_set(sora.org, 100_000)  # 1 second's worth
    with pytest.raises(openai.APIStatusError) as caught:
        sora.openai().videos.create(model="sora-2", prompt="too long", seconds="8")
    assert caught.value.status_code == 402
    assert media.seen == [] and not MediaTask.objects.exists()
    assert sora.wallet().held == 0


def test_an_upstream_refusal_fails_the_task_and_releases_the_hold(
    sora: Customer, media: FakeMedia
) -> None:
    media.fail_submit = 400
    start = sora.balance()
    with pytest.raises(openai.BadRequestError) as caught:
        sora.openai().videos.create(model="sora-2", prompt="refused", seconds="4")
    assert "Upstream refused." in str(caught.value)
    task = MediaTask.objects.get()
    assert (task.state, task.error_code) == ("failed", "submit_failed")
    assert sora.balance() == start
    assert_books_balance(sora)


def test_deleting_an_unfinished_video_cancels_and_refunds_it(
    sora: Customer, media: FakeMedia
) -> None:
    client = sora.openai()
    start = sora.balance()
    video = client.videos.create(model="sora-2", prompt="never mind", seconds="4")

    deleted = client.videos.delete(video.id)

    assert deleted.deleted is True
    assert any(s.method == "DELETE" for s in media.seen)
    assert client.videos.retrieve(video.id).status == "failed"
    assert sora.balance() == start
    assert_books_balance(sora)


def test_bad_video_requests_get_openai_errors(sora: Customer, media: FakeMedia) -> None:
    client = sora.openai()
    with pytest.raises(openai.BadRequestError, match="seconds"):
        client.videos.create(model="sora-2", prompt="x", seconds="600")
    with pytest.raises(openai.BadRequestError, match="size"):
        client.videos.create(model="sora-2", prompt="x", size="huge")
    with pytest.raises(openai.BadRequestError, match="prompt"):
        client.videos.create(model="sora-2", prompt="")
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve("video_doesnotexist")
    assert media.seen == [] and not MediaTask.objects.exists()


def test_the_sdk_pages_through_the_organizations_videos(sora: Customer, media: FakeMedia) -> None:
    client = sora.openai()
    made = [client.videos.create(model="sora-2", prompt=f"p{i}", seconds="4").id for i in range(5)]

    listed = [v.id for v in client.videos.list(limit=2)]  # follows `after` across pages
    oldest_first = [v.id for v in client.videos.list(limit=2, order="asc")]

    assert listed == made[::-1]
    assert oldest_first == made


def test_a_resolution_tier_price_replaces_the_models_own(sora: Customer, media: FakeMedia) -> None:
    from billing.services import price_set

    price_set(model="sora-2@1792x1024", per_second=250_000)
    client = sora.openai()

    big = client.videos.create(model="sora-2", prompt="wide", seconds="4", size="1792x1024")
    assert sora.wallet().held == 4 * 250_000
    small = client.videos.create(model="sora-2", prompt="tall", seconds="4", size="720x1280")
    _until_finished(client, big.id)
    _until_finished(client, small.id)

    assert charges_for(big.id) == [-4 * 250_000]
    assert charges_for(small.id) == [-4 * SORA_PER_SECOND]
    assert_books_balance(sora)
