"""The portal's Media page: the organization's video tasks, state, cost, and the file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.utils import timezone

from accounts.models import Membership
from accounts.services import key_create, user_create
from relay.models import MediaTask
from relay.tasks import poll_media_tasks
from tests.fakes.media import FakeMedia, video_bytes
from tests.relay.conftest import Customer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _finish_all() -> None:
    for _ in range(3):
        MediaTask.objects.update(next_poll_at=timezone.now())
        poll_media_tasks()


@pytest.fixture
def two_videos(sora: Customer, media: FakeMedia) -> tuple[str, str]:
    client = sora.openai()
    done = client.videos.create(model="sora-2", prompt="done", seconds="8").id
    _finish_all()
    media.plan = ["queued"]
    waiting = client.videos.create(model="sora-2", prompt="waiting", seconds="4").id
    return done, waiting


def test_the_owner_sees_state_cost_and_a_playable_file(
    sora: Customer, media: FakeMedia, two_videos: tuple[str, str], client: Client
) -> None:
    done, waiting = two_videos
    client.force_login(sora.user)

    page = client.get("/dashboard/media/")

    html = page.content.decode()
    assert page.status_code == 200
    assert done in html and waiting in html
    assert "$0.80" in html  # 8 s at 0.10 USD
    assert "$0.40 held" in html
    assert f"/dashboard/media/{done}/content" in html
    assert f"/dashboard/media/{waiting}/content" not in html
    video = client.get(f"/dashboard/media/{done}/content")
    assert video.status_code == 200 and video["Content-Type"] == "video/mp4"
    assert isinstance(video, StreamingHttpResponse)
    assert video.getvalue() == video_bytes(MediaTask.objects.get(public_id=done).upstream_id)


def test_other_organizations_and_anonymous_visitors_see_nothing(
    sora: Customer, two_videos: tuple[str, str], client: Client
) -> None:
    done, _ = two_videos
    assert client.get("/dashboard/media/").status_code == 302  # to the login page
    assert client.get(f"/dashboard/media/{done}/content").status_code == 302
    stranger = user_create(email="stranger@example.com", password="pw-123456789")
    client.force_login(stranger)

    assert done not in client.get("/dashboard/media/").content.decode()
    assert client.get(f"/dashboard/media/{done}/content").status_code == 404


def test_a_member_sees_only_videos_made_with_their_own_keys(
    sora: Customer, media: FakeMedia, two_videos: tuple[str, str], client: Client, settings: Any
) -> None:
    member = user_create(email="member@example.com", password="pw-123456789")
    Membership.objects.create(user=member, organization=sora.org, role=Membership.Role.MEMBER)
    _, secret = key_create(organization=sora.org, created_by=member, name="member key")
    mine = sora.openai(secret).videos.create(model="sora-2", prompt="mine", seconds="4").id
    client.force_login(member)
    session = client.session
    session["active_org_id"] = sora.org.pk
    session.save()

    html = client.get("/dashboard/media/").content.decode()

    assert mine in html
    assert two_videos[0] not in html and two_videos[1] not in html


def test_the_admin_lists_tasks_read_only_without_the_signed_file_url(
    seedance: Customer, media: FakeMedia, client: Client
) -> None:
    video = seedance.openai().videos.create(model="seedance-1-pro", prompt="x", seconds="5").id
    _finish_all()
    task = MediaTask.objects.get(public_id=video)
    assert "sig=fake" in task.result_url
    admin = user_create(email="ops@example.com", password="pw-123456789", is_admin=True)
    client.force_login(admin)

    listing = client.get("/admin/relay/mediatask/").content.decode()
    detail = client.get(f"/admin/relay/mediatask/{task.pk}/change/").content.decode()

    assert video in listing
    assert "Completed" in detail and "sig=fake" not in detail and "sig=fake" not in listing
    assert client.get("/admin/relay/mediatask/add/").status_code == 403


def test_under_asgi_the_file_streams_without_being_buffered(
    sora: Customer, media: FakeMedia, two_videos: tuple[str, str]
) -> None:
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    done, _ = two_videos

    async def fetch() -> tuple[Any, list[bytes]]:
        client = AsyncClient()
        await client.aforce_login(sora.user)
        response = await client.get(f"/dashboard/media/{done}/content?download=1")
        assert isinstance(response, StreamingHttpResponse)
        chunks = response.streaming_content
        assert isinstance(chunks, AsyncIterator)
        return response, [chunk async for chunk in chunks]

    response, chunks = async_to_sync(fetch)()

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{done}.mp4"'
    assert len(chunks) > 1  # streamed in pieces, not one buffered body
    assert b"".join(chunks) == video_bytes(MediaTask.objects.get(public_id=done).upstream_id)
