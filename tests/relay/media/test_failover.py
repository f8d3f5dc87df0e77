"""Media calls run in the chat relay's request frame and failover: channels tried in order,
never the same twice, attempts and upstream errors logged as chat logs them, refusals
answered in the caller's (OpenAI's) error format."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from billing.models import Hold
from billing.services import price_set
from logs.models import RequestLog
from relay.models import Channel, MediaTask
from tests.fakes.media import FakeMedia
from tests.fakes.upstream import FakeUpstream
from tests.relay.conftest import Customer, wait_for
from tests.relay.media.conftest import IMAGE_PRICE, SORA_PER_SECOND, assert_books_balance


def test_an_image_call_fails_over_to_the_next_channel(
    customer: Customer, media: FakeMedia, make_channel: Callable[..., Channel]
) -> None:
    make_channel("openai", ("dall-e-3",), name="first", priority=10)
    second = make_channel("doubao", ("dall-e-3",), name="second")
    price_set(model="dall-e-3", per_image=IMAGE_PRICE)
    media.fail_submit = 500  # the OpenAI images endpoint only; Ark's answers
    start = customer.balance()

    result = customer.openai().images.generate(model="dall-e-3", prompt="x", response_format="url")

    assert result.data is not None and result.data[0].url == media.url + "/files/image.png"
    assert [s.path for s in media.seen] == [
        "/v1/images/generations",
        "/api/v3/images/generations",
    ]
    log = wait_for(lambda: RequestLog.objects.first())
    assert (log.status_code, log.attempts, log.channel_id) == (200, 2, second.pk)
    assert customer.balance() == start - IMAGE_PRICE
    assert_books_balance(customer)


def test_an_image_call_failing_everywhere_is_logged_as_chat_logs_it(
    customer: Customer,
    media: FakeMedia,
    make_channel: Callable[..., Channel],
    openai_channel: Callable[..., Channel],
    fake: FakeUpstream,
) -> None:
    make_channel("openai", ("dall-e-3",), name="images")
    price_set(model="dall-e-3", per_image=IMAGE_PRICE)
    media.fail_submit = 503
    openai_channel(name="chat")
    price_set(model="gpt-4o-mini", input_per_1m=150_000, output_per_1m=600_000)
    fake.fail(503, message="upstream overloaded")
    client = customer.openai()

    with pytest.raises(openai.InternalServerError) as image_error:
        client.images.generate(model="dall-e-3", prompt="x")
    with pytest.raises(openai.InternalServerError) as chat_error:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )

    assert image_error.value.status_code == chat_error.value.status_code == 503
    assert "Upstream refused." in str(image_error.value)  # the upstream's own message
    wait_for(lambda: RequestLog.objects.count() == 2)
    image_log = RequestLog.objects.get(endpoint="images/generations")
    chat_log = RequestLog.objects.get(endpoint="chat/completions")
    seen = (image_log.status_code, image_log.error_code, image_log.attempts, image_log.cost)
    assert seen == (503, "upstream_error", 1, 0)
    assert seen == (chat_log.status_code, chat_log.error_code, chat_log.attempts, chat_log.cost)
    assert_books_balance(customer)


@pytest.mark.parametrize(
    ("priced", "status", "kind", "code"),
    [
        (True, 503, "service_unavailable", "no_available_channel"),
        (False, 404, "invalid_request_error", "model_not_found"),
    ],
)
def test_a_video_for_a_model_without_a_channel_gets_an_openai_error(
    customer: Customer, media: FakeMedia, priced: bool, status: int, kind: str, code: str
) -> None:
    if priced:  # offered by the operator, but no channel serves it now
        price_set(model="sora-2", per_second=SORA_PER_SECOND)

    response = httpx.post(
        customer.base_url + "/videos",
        json={"model": "sora-2", "prompt": "a wave", "seconds": "4"},
        headers={"authorization": f"Bearer {customer.secret}"},
    )

    assert response.status_code == status
    error = response.json()["error"]
    assert (error["code"], error["type"]) == (code, kind)
    assert "sora-2" in error["message"]
    assert response.headers["x-request-id"]
    assert media.seen == [] and not MediaTask.objects.exists()
    assert not Hold.objects.exists()
