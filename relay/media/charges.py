"""What a media request holds and costs, from the model's Price (integer micro-USD).

Every component of a price applies when set, so an operator chooses by what they fill in:
`per_image` (images), `per_second` (video), token prices (gpt-image usage, Seedance's
`completion_tokens`), `per_request`.

Tiers: a price named `MODEL@TIER` (e.g. `sora-2-pro@1792x1024`, `sora-2@1080p`,
`dall-e-3@hd@1024x1792`, `dall-e-3@hd`) replaces the model's own price for requests of
that size, resolution or quality; the most specific one that exists wins.
"""

from __future__ import annotations

from decimal import Decimal

from billing.pricing import PriceSheet, Usage, cost_micros
from relay.catalog import catalog
from relay.errors import bad_request
from relay.pipeline.route import routable_price

# gpt-image-1 at high quality, 1024x1536: its most output tokens per image. A price's
# max_output_tokens, when set, replaces it as the per-image bound.
IMAGE_OUTPUT_TOKENS = 6240
# gpt-image input images at high fidelity cost up to about this many tokens each.
INPUT_IMAGE_TOKENS = 6500
SEEDANCE_FPS = 24


async def tier_price(model: str, tiers: list[str]) -> PriceSheet | None:
    """The price of MODEL@TIER for the first tier that has one, else MODEL's own."""
    for tier in tiers:
        if tier:
            found = await catalog.price(f"{model}@{tier}")
            if found is not None:
                return found
    return await catalog.price(model)


def priced_for_images(price: PriceSheet) -> bool:
    return bool(price.per_image or price.per_request or price.output_per_1m)


def priced_for_video(price: PriceSheet) -> bool:
    return bool(price.per_second or price.per_request or price.output_per_1m)


_PRICED_FOR = {"images": priced_for_images, "videos": priced_for_video}


def checked_price(
    model: str, price: PriceSheet | None, *, routed: bool, known: bool, makes: str
) -> PriceSheet:
    """PRICE, to bill a media request making MAKES ("images", "videos") by; else its
    refusal: no channel or price (relay/pipeline/route.routable_price), or priced by input
    only like an embedding model (400: it makes none)."""
    price = routable_price(model, price, routed=routed, known=known)
    if not _PRICED_FOR[makes](price):
        raise bad_request(
            f"The model '{model[:200]}' does not generate {makes}.",
            param="model",
            code="model_not_supported",
        )
    return price


def image_hold(
    price: PriceSheet, multiplier: Decimal, *, n: int, prompt_tokens: int, input_images: int
) -> int:
    """The most N images can cost: every token bound and every image."""
    per_image_tokens = price.max_output_tokens or IMAGE_OUTPUT_TOKENS
    usage = Usage(
        input_tokens=prompt_tokens + input_images * INPUT_IMAGE_TOKENS,
        output_tokens=n * per_image_tokens if price.output_per_1m else 0,
        images=n,
    )
    return cost_micros(usage, _dearest_input(price), multiplier)


def image_cost(price: PriceSheet, multiplier: Decimal, usage: Usage) -> int:
    return cost_micros(usage, price, multiplier)


def video_hold(price: PriceSheet, multiplier: Decimal, *, seconds: int, max_tokens: int) -> int:
    """The most a video can cost: its requested seconds, and Ark's token bound if priced."""
    usage = Usage(output_tokens=max_tokens if price.output_per_1m else 0, seconds=seconds)
    return cost_micros(usage, price, multiplier)


def video_cost(
    price: PriceSheet, multiplier: Decimal, *, seconds: int, output_tokens: int | None
) -> int:
    usage = Usage(output_tokens=output_tokens or 0, seconds=seconds)
    return cost_micros(usage, price, multiplier)


def seedance_tokens(width: int, height: int, seconds: int) -> int:
    """Ark's formula, for a finished task that reported no usage."""
    return width * height * SEEDANCE_FPS * seconds // 1024


def _dearest_input(price: PriceSheet) -> PriceSheet:
    return PriceSheet(
        input_per_1m=price.dearest_input_per_1m,
        output_per_1m=price.output_per_1m,
        per_request=price.per_request,
        per_image=price.per_image,
        per_second=price.per_second,
    )
