"""Images through TokenHub with the official SDK: OpenAI, Seedream and Gemini channels,
held at the worst case and charged what came back."""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from billing.services import price_set
from logs.models import RequestLog
from relay.media.charges import IMAGE_OUTPUT_TOKENS
from relay.models import Channel
from tests.conftest import balance_set
from tests.fakes.media import GPT_IMAGE_OUTPUT_TOKENS, PNG, FakeMedia
from tests.relay.conftest import Customer, wait_for
from tests.relay.media.conftest import IMAGE_PRICE, assert_books_balance

GPT_IMAGE_IN, GPT_IMAGE_OUT = 10_000_000, 40_000_000  # USD 10 / 40 per 1M tokens


def _changed(customer: Customer, before: int) -> bool:
    return customer.balance() != before


def _charged(customer: Customer, start: int) -> int:
    wait_for(lambda: RequestLog.objects.exists())
    return start - customer.balance()


@pytest.fixture
def dalle(customer: Customer, make_channel: Callable[..., Channel]) -> Customer:
    make_channel("openai", ("dall-e-3", "gpt-image-1"))
    price_set(model="dall-e-3", per_image=IMAGE_PRICE)
    price_set(model="gpt-image-1", input_per_1m=GPT_IMAGE_IN, output_per_1m=GPT_IMAGE_OUT)
    return customer


def test_it_generates_images_per_image_priced(dalle: Customer, media: FakeMedia) -> None:
    start = dalle.balance()

    result = dalle.openai().images.generate(model="dall-e-3", prompt="a lighthouse", n=2,
                                           response_format="b64_json")  # fmt: skip

    assert result.data is not None and len(result.data) == 2
    assert base64.b64decode(result.data[0].b64_json or "") == PNG
    assert media.seen[-1].json["model"] == "dall-e-3"
    assert _charged(dalle, start) == 2 * IMAGE_PRICE
    log = RequestLog.objects.get()
    assert (log.endpoint, log.cost, log.status_code) == ("images/generations", 2 * IMAGE_PRICE, 200)
    assert_books_balance(dalle)


def test_url_format_passes_through(dalle: Customer, media: FakeMedia) -> None:
    result = dalle.openai().images.generate(model="dall-e-3", prompt="x", response_format="url")
    assert result.data is not None and result.data[0].url == media.url + "/files/image.png"


def test_gpt_image_is_charged_its_reported_tokens(dalle: Customer, media: FakeMedia) -> None:
    start = dalle.balance()

    result = dalle.openai().images.generate(model="gpt-image-1", prompt="a fox", n=1)

    assert result.usage is not None and result.usage.output_tokens == GPT_IMAGE_OUTPUT_TOKENS
    expected = (50 * GPT_IMAGE_IN + GPT_IMAGE_OUTPUT_TOKENS * GPT_IMAGE_OUT) // 1_000_000
    assert _charged(dalle, start) == expected
    log = RequestLog.objects.get()
    assert (log.prompt_tokens, log.completion_tokens) == (50, GPT_IMAGE_OUTPUT_TOKENS)
    assert_books_balance(dalle)


def test_the_hold_covers_the_worst_case(dalle: Customer, media: FakeMedia) -> None:
    # Just enough for 2 images at the per-image bound, not for 3.

    bound = 2 * IMAGE_OUTPUT_TOKENS * GPT_IMAGE_OUT // 1_000_000 + 5_000
    balance_set(dalle.org, bound)
    client = dalle.openai()

    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model="gpt-image-1", prompt="many", n=3)
    assert caught.value.status_code == 402
    assert media.seen == []
    client.images.generate(model="gpt-image-1", prompt="two", n=2)
    assert len(media.seen) == 1


def test_it_edits_an_image_with_multipart(dalle: Customer, media: FakeMedia) -> None:
    start = dalle.balance()

    result = dalle.openai().images.edit(
        model="gpt-image-1", image=("in.png", PNG, "image/png"), prompt="add a hat"
    )

    assert result.data is not None and len(result.data) == 1
    seen = media.seen[-1]
    assert seen.path == "/v1/images/edits" and seen.form["prompt"] == "add a hat"
    assert seen.form["image"] == [("in.png", "image/png", PNG)]
    expected = (350 * GPT_IMAGE_IN + GPT_IMAGE_OUTPUT_TOKENS * GPT_IMAGE_OUT) // 1_000_000
    assert _charged(dalle, start) == expected
    assert_books_balance(dalle)


def test_streaming_images_are_refused_before_any_hold(dalle: Customer, media: FakeMedia) -> None:
    with pytest.raises(openai.BadRequestError, match="Streaming"):
        dalle.openai().images.generate(model="gpt-image-1", prompt="x", stream=True)
    assert media.seen == []
    assert_books_balance(dalle)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nno headers here--xyz--"),
        ("multipart/form-data", b"anything"),
        ("application/json", b'{"prompt": "x"}'),
    ],
)
def test_a_malformed_edit_is_a_400_and_costs_nothing(
    dalle: Customer, media: FakeMedia, content_type: str, body: bytes
) -> None:
    import httpx

    response = httpx.post(
        dalle.base_url + "/images/edits",
        content=body,
        headers={"authorization": f"Bearer {dalle.secret}", "content-type": content_type},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert media.seen == []
    log = wait_for(lambda: RequestLog.objects.first())
    assert (log.status_code, log.cost, log.endpoint) == (400, 0, "images/edits")
    assert_books_balance(dalle)


def test_an_upstream_failure_releases_the_image_hold(dalle: Customer, media: FakeMedia) -> None:
    media.fail_submit = 500
    start = dalle.balance()
    with pytest.raises(openai.InternalServerError):
        dalle.openai().images.generate(model="dall-e-3", prompt="x")
    wait_for(lambda: RequestLog.objects.exists())
    assert dalle.balance() == start
    assert_books_balance(dalle)


def test_seedream_through_ark(customer: Customer, media: FakeMedia, make_channel: Any) -> None:
    make_channel("doubao", ("seedream-4",), model_map={"seedream-4": "doubao-seedream-4-0-250828"})
    price_set(model="seedream-4", per_image=30_000)
    start = customer.balance()

    result = customer.openai().images.generate(model="seedream-4", prompt="a bridge",
                                               response_format="url", size="2048x2048")  # fmt: skip

    assert result.data is not None and result.data[0].url == media.url + "/files/image.png"
    sent = media.seen[-1]
    assert sent.path == "/api/v3/images/generations"
    assert sent.json["model"] == "doubao-seedream-4-0-250828" and sent.json["size"] == "2048x2048"
    assert _charged(customer, start) == 30_000
    assert_books_balance(customer)


def test_seedream_edit_sends_the_image_as_a_data_url(
    customer: Customer, media: FakeMedia, make_channel: Any
) -> None:
    make_channel("doubao", ("seedream-4",))
    price_set(model="seedream-4", per_image=30_000)

    customer.openai().images.edit(model="seedream-4", image=("a.png", PNG, "image/png"),
                                  prompt="make it blue")  # fmt: skip

    sent = media.seen[-1].json
    assert sent["image"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert sent["prompt"] == "make it blue"


def test_gemini_image_output_becomes_an_openai_images_response(
    customer: Customer, media: FakeMedia, make_channel: Any
) -> None:
    make_channel("gemini", ("gemini-2.5-flash-image",))
    price_set(model="gemini-2.5-flash-image", input_per_1m=300_000, output_per_1m=30_000_000)
    start = customer.balance()
    client = customer.openai()

    b64 = client.images.generate(model="gemini-2.5-flash-image", prompt="a kite", n=2,
                                 size="1792x1024")  # fmt: skip
    url = client.images.generate(model="gemini-2.5-flash-image", prompt="a kite",
                                 response_format="url")  # fmt: skip

    assert b64.data is not None and [base64.b64decode(d.b64_json or "") for d in b64.data] == [
        PNG,
        PNG,
    ]
    assert (
        url.data is not None
        and url.data[0].url == "data:image/png;base64," + base64.b64encode(PNG).decode()
    )
    sent = media.seen[0]
    assert sent.path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert sent.key == "sk-gemini-upstream"
    assert sent.json["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]
    assert sent.json["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9"}
    wait_for(lambda: RequestLog.objects.count() == 2)
    per_call = (10 * 300_000 + 1290 * 30_000_000) // 1_000_000
    assert start - customer.balance() == 3 * per_call
    assert_books_balance(customer)


def test_gemini_edit_sends_the_image_inline(
    customer: Customer, media: FakeMedia, make_channel: Any
) -> None:
    make_channel("gemini", ("gemini-2.5-flash-image",))
    price_set(model="gemini-2.5-flash-image", per_image=39_000)
    start = customer.balance()

    result = customer.openai().images.edit(
        model="gemini-2.5-flash-image", image=("in.png", PNG, "image/png"), prompt="add snow"
    )

    assert result.data is not None and len(result.data) == 1
    parts = media.seen[0].json["contents"][0]["parts"]
    assert parts == [
        {"text": "add snow"},
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}},
    ]
    assert _charged(customer, start) == 39_000
    assert_books_balance(customer)


def test_quality_and_size_tier_prices(dalle: Customer, media: FakeMedia) -> None:
    price_set(model="dall-e-3@hd@1024x1792", per_image=120_000)
    price_set(model="dall-e-3@hd", per_image=80_000)
    client = dalle.openai()
    costs = []
    for quality, size in [("hd", "1024x1792"), ("hd", "1024x1024"), ("standard", "1024x1024")]:
        before = dalle.balance()
        client.images.generate(model="dall-e-3", prompt="x", quality=quality, size=size)
        wait_for(functools.partial(_changed, dalle, before))
        costs.append(before - dalle.balance())
    assert costs == [120_000, 80_000, IMAGE_PRICE]
    assert_books_balance(dalle)


def test_a_model_priced_only_for_input_is_told_it_makes_no_images_or_videos(
    dalle: Customer, make_channel: Callable[..., Channel]
) -> None:
    """Found by the URL fuzzing: an embedding model on an image channel was a 503."""
    make_channel("openai", ("text-embedding-3-small",), name="embeddings")
    price_set(model="text-embedding-3-small", input_per_1m=20_000)
    client = dalle.openai()
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="text-embedding-3-small", prompt="a cat")
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "model_not_supported"
    videos = httpx.post(
        dalle.base_url + "/videos",
        json={"model": "text-embedding-3-small", "prompt": "a cat"},
        headers={"authorization": f"Bearer {dalle.secret}"},
    )
    assert videos.status_code == 400 and videos.json()["error"]["code"] == "model_not_supported"
    assert not RequestLog.objects.filter(cost__gt=0).exists()
