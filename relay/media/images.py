"""POST /v1/images/generations (JSON) and /v1/images/edits (multipart), OpenAI format.

- `openai` channels: the request passes through (model mapped; edits re-encoded).
- `doubao` channels: Seedream through Ark's OpenAI-compatible images API; an edit's
  images go as data URLs in `image`.
- `gemini` channels: one generateContent call per image with responseModalities IMAGE,
  answered as an OpenAI images response. Gemini returns image bytes only, so
  `response_format: url` gets a `data:` URL.

Billing: the worst case (n images, and every token bound when the model has token
prices) is held first; the images actually returned and the upstream's reported tokens
are charged.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings

from billing.pricing import Usage
from relay import tokens
from relay.affinity import pick_key
from relay.asgi_io import Receive, Request, Send, read_body, send_bytes
from relay.catalog import ChannelInfo, KeyInfo
from relay.channel_types import CHANNEL_TYPES, IMAGE_TYPES
from relay.errors import bad_request
from relay.formats import openai
from relay.media import charges, multipart
from relay.media.multipart import FilePart
from relay.media.request_fields import prompt_and_model
from relay.media.upstream_calls import Target, fetch_json
from relay.pipeline import failover
from relay.pipeline.authorize import authorize_model, check_rate_limits
from relay.pipeline.call import Call
from relay.pipeline.forward import UpstreamFailure
from relay.pipeline.reserve import reserve
from relay.pipeline.route import candidates
from relay.pipeline.settle import opening_progress

DEFAULT_MODEL = "dall-e-2"
MAX_IMAGES = 10
MAX_INPUT_IMAGES = 16
_FORMATS = frozenset({"url", "b64_json"})
_GEMINI_RATIOS = {
    "1:1": 1.0, "2:3": 2 / 3, "3:2": 3 / 2, "3:4": 3 / 4, "4:3": 4 / 3, "4:5": 4 / 5,
    "5:4": 5 / 4, "9:16": 9 / 16, "16:9": 16 / 9, "21:9": 21 / 9,
}  # fmt: skip


@dataclass
class ImageRequest:
    model: str
    prompt: str
    n: int
    response_format: str | None
    size: str | None
    payload: dict[str, Any]  # every text field, as the client sent it
    images: list[FilePart] = field(default_factory=list)
    mask: FilePart | None = None
    edit: bool = False


def _int_field(value: Any, name: str, default: int, upper: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise bad_request(f"'{name}' must be a whole number.", param=name) from None
    if isinstance(value, bool) or not 1 <= number <= upper:
        raise bad_request(f"'{name}' must be between 1 and {upper}.", param=name)
    return number


def parse_request(raw: bytes, content_type: str, *, edit: bool) -> ImageRequest:
    images: list[FilePart] = []
    mask: FilePart | None = None
    if edit:
        if not multipart.is_multipart(content_type):
            raise bad_request("Image edits must be sent as multipart/form-data.")
        form = multipart.parse(raw, content_type)
        payload: dict[str, Any] = {name: form.get(name) for name in form.fields}
        images = form.files.get("image", []) + form.files.get("image[]", [])
        masks = form.files.get("mask")
        mask = masks[0] if masks else None
        if not images:
            raise bad_request("You must provide an image to edit.", param="image")
        if len(images) > MAX_INPUT_IMAGES:
            raise bad_request(f"At most {MAX_INPUT_IMAGES} images can be edited.", param="image")
    else:
        payload = openai.parse_body(raw)
    prompt, model = prompt_and_model(payload, DEFAULT_MODEL)
    response_format = payload.get("response_format")
    if response_format is not None and response_format not in _FORMATS:
        raise bad_request("'response_format' must be url or b64_json.", param="response_format")
    if payload.get("stream") in (True, "true"):
        # Partial-image streams would need their own metering; refused rather than unbilled.
        raise bad_request("Streaming image generation is not supported.", param="stream")
    size = payload.get("size")
    if size is not None and not isinstance(size, str):
        raise bad_request("'size' must be a string.", param="size")
    return ImageRequest(
        model=model,
        prompt=prompt,
        n=_int_field(payload.get("n"), "n", 1, MAX_IMAGES),
        response_format=response_format,
        size=size,
        payload=payload,
        images=images,
        mask=mask,
        edit=edit,
    )


@dataclass
class ImageResult:
    body: bytes
    usage: Usage


def _headers(key: str) -> dict[str, str]:
    return {
        "authorization": "Bearer " + key,
        "content-type": "application/json",
        "accept-encoding": "identity",
    }


def _data_url(part: FilePart) -> str:
    return f"data:{part.content_type};base64,{base64.b64encode(part.data).decode()}"


def _openai_target(channel: ChannelInfo, model: str, req: ImageRequest) -> Target:
    key = pick_key(channel)
    path = "/images/edits" if req.edit else "/images/generations"
    headers = _headers(key)
    if req.edit:
        fields = {k: str(v) for k, v in req.payload.items() if v is not None}
        fields["model"] = model
        files = [("image[]" if len(req.images) > 1 else "image", p) for p in req.images]
        if req.mask is not None:
            files.append(("mask", req.mask))
        body, headers["content-type"] = multipart.encode(fields, files)
        return Target("POST", channel.base_url + path, headers, body)
    return Target(
        "POST", channel.base_url + path, headers, orjson.dumps({**req.payload, "model": model})
    )


def _doubao_target(channel: ChannelInfo, model: str, req: ImageRequest) -> Target:
    body: dict[str, Any] = {**req.payload, "model": model}
    if req.edit:
        urls = [_data_url(p) for p in req.images]
        body["image"] = urls[0] if len(urls) == 1 else urls
    url = channel.base_url + "/images/generations"
    return Target("POST", url, _headers(pick_key(channel)), orjson.dumps(body))


def _meter(obj: dict[str, Any]) -> Usage:
    data = obj.get("data")
    usage = obj.get("usage")
    reported = openai.usage_from(usage) if isinstance(usage, dict) else None
    images = len(data) if isinstance(data, list) else 0
    return Usage(
        input_tokens=reported.input_tokens if reported else 0,
        output_tokens=reported.output_tokens if reported else 0,
        images=images,
    )


async def _pass_through(target: Target) -> ImageResult:
    obj = await fetch_json(target)
    return ImageResult(orjson.dumps(obj), _meter(obj))


def _gemini_ratio(size: str | None) -> str | None:
    if not size or "x" not in size:
        return None
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()) or not int(height):
        return None
    ratio = int(width) / int(height)
    return min(_GEMINI_RATIOS, key=lambda name: abs(_GEMINI_RATIOS[name] - ratio))


def _gemini_target(channel: ChannelInfo, model: str, req: ImageRequest) -> Target:
    parts: list[dict[str, Any]] = [{"text": req.prompt}]
    for image in req.images:
        parts.append(
            {
                "inlineData": {
                    "mimeType": image.content_type,
                    "data": base64.b64encode(image.data).decode(),
                }
            }
        )
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    ratio = _gemini_ratio(req.size)
    if ratio:
        config["imageConfig"] = {"aspectRatio": ratio}
    body = {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}
    headers = {
        "x-goog-api-key": pick_key(channel),
        "content-type": "application/json",
        "accept-encoding": "identity",
    }
    url = f"{channel.base_url}/v1beta/models/{model}:generateContent"
    return Target("POST", url, headers, orjson.dumps(body))


def _gemini_images(obj: dict[str, Any]) -> tuple[list[tuple[str, str]], Usage]:
    """(mime type, base64 data) of each image in a generateContent answer, and its usage."""
    found: list[tuple[str, str]] = []
    for candidate in obj.get("candidates") or []:
        content = candidate.get("content") if isinstance(candidate, dict) else None
        for part in (content or {}).get("parts") or []:
            inline = (
                part.get("inlineData") or part.get("inline_data")
                if isinstance(part, dict)
                else None
            )
            if isinstance(inline, dict) and isinstance(inline.get("data"), str):
                found.append((str(inline.get("mimeType") or "image/png"), inline["data"]))
    meta = obj.get("usageMetadata") or {}
    usage = Usage(
        input_tokens=int(meta.get("promptTokenCount") or 0),
        output_tokens=int(meta.get("candidatesTokenCount") or 0)
        + int(meta.get("thoughtsTokenCount") or 0),
    )
    return found, usage


async def _gemini(channel: ChannelInfo, model: str, req: ImageRequest) -> ImageResult:
    answers = await asyncio.gather(
        *(fetch_json(_gemini_target(channel, model, req)) for _ in range(req.n))
    )
    data: list[dict[str, Any]] = []
    usage = Usage()
    for answer in answers:
        images, used = _gemini_images(answer)
        usage.input_tokens += used.input_tokens
        usage.output_tokens += used.output_tokens
        for mime, encoded in images[:1]:
            if req.response_format == "url":
                data.append({"url": f"data:{mime};base64,{encoded}"})
            else:
                data.append({"b64_json": encoded})
    if not data:
        raise UpstreamFailure("the upstream returned no image", retryable=False, status=502)
    usage.images = len(data)
    body = {
        "created": int(time.time()),
        "data": data,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "input_tokens_details": {"text_tokens": usage.input_tokens, "image_tokens": 0},
        },
    }
    return ImageResult(orjson.dumps(body), usage)


async def generate(
    call: Call, key: KeyInfo, request: Request, receive: Receive, send: Send,
    headers: dict[str, str], *, edit: bool,
) -> None:  # fmt: skip
    raw = await read_body(receive, settings.RELAY_MAX_BODY_MB * 1024 * 1024)
    req = parse_request(raw, request.headers.get("content-type", ""), edit=edit)
    call.model = req.model
    authorize_model(key, req.model)
    all_routes = await candidates(req.model, key.group)
    route = [c for c in all_routes if c.type in IMAGE_TYPES]
    quality = req.payload.get("quality")
    quality = quality if isinstance(quality, str) else ""
    size = req.size or ""
    tiers = [f"{quality}@{size}" if quality and size else "", size, quality]
    price = call.price = charges.checked_price(
        req.model,
        await charges.tier_price(req.model, tiers),
        routed=bool(route),
        known=bool(all_routes),
        makes="images",
    )
    prompt_tokens = tokens.prompt_tokens(
        {"prompt": req.prompt}, bytes_per_token=tokens.HOLD_BYTES_PER_TOKEN
    )
    await check_rate_limits(key, prompt_tokens)
    amount = charges.image_hold(
        price, key.multiplier, n=req.n, prompt_tokens=prompt_tokens, input_images=len(req.images)
    )
    await reserve(
        call, key=key, model=req.model, amount=amount, progress=opening_progress(call, key)
    )

    async def exchange(channel: ChannelInfo) -> ImageResult:
        model = channel.upstream_model(req.model)
        style = CHANNEL_TYPES[channel.type].images
        if style == "gemini":
            return await _gemini(channel, model, req)
        if style == "doubao":
            return await _pass_through(_doubao_target(channel, model, req))
        return await _pass_through(_openai_target(channel, model, req))

    _, result = await failover.first_success(call, route, exchange)
    call.served = True
    call.reported_usage = result.usage
    call.response_started = True
    await send_bytes(send, 200, result.body, headers)
