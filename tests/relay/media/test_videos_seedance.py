"""Seedance through Ark's content generation tasks, driven by the OpenAI SDK's Videos API."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest

from relay.models import MediaTask
from tests.fakes.media import PNG, FakeMedia, video_bytes
from tests.relay.conftest import Customer
from tests.relay.media.conftest import SEEDANCE_PER_1M, assert_books_balance, charges_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def _refresh_every_read(settings: Any) -> None:
    settings.MEDIA_STATUS_REFRESH_SECONDS = 0


def _finish(client: openai.OpenAI, video_id: str) -> Any:
    for _ in range(10):
        video = client.videos.retrieve(video_id)
        if video.status in ("completed", "failed"):
            return video
    raise AssertionError("never finished")


def _tokens_micros(tokens: int) -> int:
    return tokens * SEEDANCE_PER_1M // 1_000_000


def test_text_to_video_is_held_at_arks_bound_and_charged_its_reported_tokens(
    seedance: Customer, media: FakeMedia
) -> None:
    client = seedance.openai()
    start = seedance.balance()

    video = client.videos.create(model="seedance-1-pro", prompt="a dragon over the sea",
                                 seconds="5", size="1280x720")  # fmt: skip

    sent = media.seen[0]
    assert sent.path == "/api/v3/contents/generations/tasks"
    assert sent.key == "sk-doubao-upstream"
    assert sent.json == {
        "model": "doubao-seedance-1-0-pro-250528",
        "content": [{"type": "text", "text": "a dragon over the sea"}],
        "ratio": "16:9",
        "resolution": "720p",
        "duration": 5,
    }
    assert seedance.wallet().held == _tokens_micros(-(-1680 * 720 * 24 * 5 // 1024))
    states = [client.videos.retrieve(video.id).status]
    done = _finish(client, video.id)
    states.append(done.status)
    assert states == ["in_progress", "completed"]

    file = client.videos.download_content(video.id)
    assert file.content == video_bytes(media.only_task().id)
    assert media.seen[-1].path.startswith("/files/") and media.seen[-1].key is None
    assert charges_for(video.id) == [-_tokens_micros(108_900)]
    assert MediaTask.objects.get(public_id=video.id).output_tokens == 108_900
    assert seedance.balance() == start - _tokens_micros(108_900)
    assert_books_balance(seedance)


def test_without_reported_usage_arks_formula_for_the_requested_frame_is_charged(
    seedance: Customer, media: FakeMedia
) -> None:
    media.seedance_tokens = None
    client = seedance.openai()
    video = client.videos.create(model="seedance-1-pro", prompt="x", seconds="5", size="1280x720")

    _finish(client, video.id)

    assert charges_for(video.id) == [-_tokens_micros(1280 * 720 * 24 * 5 // 1024)]
    assert_books_balance(seedance)


def test_image_to_video_sends_the_reference_as_the_first_frame(
    seedance: Customer, media: FakeMedia
) -> None:
    seedance.openai().videos.create(model="seedance-1-pro", prompt="animate",
                                    input_reference=("cat.png", PNG, "image/png"),
                                    size="720x1280")  # fmt: skip

    content = media.seen[0].json["content"]
    assert content[1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
        "role": "first_frame",
    }
    assert media.seen[0].json["ratio"] == "9:16"


def test_video_to_video_passes_a_reference_video(seedance: Customer, media: FakeMedia) -> None:
    seedance.openai().videos.create(
        model="seedance-1-pro",
        prompt="restyle",
        size="1920x1080",
        extra_body={"video_url": "https://example.com/in.mp4", "generate_audio": False},
    )

    sent = media.seen[0].json
    assert sent["content"][1] == {
        "type": "video_url",
        "video_url": {"url": "https://example.com/in.mp4"},
        "role": "reference_video",
    }
    assert (sent["resolution"], sent["generate_audio"]) == ("1080p", False)


def test_a_failed_seedance_task_is_refunded(seedance: Customer, media: FakeMedia) -> None:
    media.plan = ["queued", "in_progress", "failed"]
    start = seedance.balance()
    client = seedance.openai()
    video = client.videos.create(model="seedance-1-pro", prompt="blocked", seconds="5")

    done = _finish(client, video.id)

    assert done.status == "failed" and done.error.code == "OutputVideoSensitiveContentDetected"
    assert seedance.balance() == start and charges_for(video.id) == []
    assert_books_balance(seedance)


def test_cancelling_a_queued_seedance_task(seedance: Customer, media: FakeMedia) -> None:
    client = seedance.openai()
    start = seedance.balance()
    video = client.videos.create(model="seedance-1-pro", prompt="later", seconds="5")

    client.videos.delete(video.id)

    assert media.seen[-1].method == "DELETE"
    assert media.seen[-1].path == f"/api/v3/contents/generations/tasks/{media.only_task().id}"
    assert client.videos.retrieve(video.id).error.code == "cancelled"
    assert seedance.balance() == start
    assert_books_balance(seedance)
